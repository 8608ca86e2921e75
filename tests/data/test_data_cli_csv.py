"""``clss train`` on real tiny CSV files, end to end: unlabelled rows from empty target cells, few labels,
the CSV feature flags, and errors whose advice is a flag."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from clss.config import resolve_config
from clss_cli.main import main

FAST = ["--steps", "4", "--eval-every", "2", "--threads", "1", "--no-progress", "--set", "plots=false"]


def _invoke(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["train", *map(str, args)])
    return result.exit_code, result.output


def _csv(path: Path, n: int, *, labelled_every: int = 1, color: bool = False) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = x @ [1.5, -1.0] + 0.3
    header = "a,b,color,y" if color else "a,b,y"
    lines = [header]
    for i in range(n):
        target = f"{y[i]:.5f}" if i % labelled_every == 0 else ""
        extra = f",{'xyz'[i % 3]}" if color else ""
        lines.append(f"{x[i, 0]:.5f},{x[i, 1]:.5f}{extra},{target}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_empty_target_cells_train_as_unlabelled_rows(tmp_path: Path) -> None:
    path = _csv(tmp_path / "my data.csv", 90, labelled_every=3, color=True)
    code, out = _invoke("--dataset", f"csv:{path}", "--target", "y", "--method", "gclss", "--categorical",
                        "onehot", "--batch-size", "8", "--out", tmp_path / "run", *FAST)
    assert code == 0, out
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    # 30 rows with a target: 6 val, 6 test, 18 labelled; the 60 rows without one are all unlabelled.
    assert (splits["n_labeled"], splits["n_unlabeled"], splits["n_no_target"]) == (18, 60, 60)
    assert splits["no_target"] == splits["unlabeled"] and splits["spec"] == "all"
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "categorical: onehot" in config
    # Scoring the training split uses the 18 rows with a target only.
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "run"), "--split", "train", "--json"])
    assert result.exit_code == 0, result.output
    assert np.isfinite(json.loads(result.output)["mae"])


def test_few_labels_use_the_whole_labelled_set(tmp_path: Path) -> None:
    """The issue's case: 215 rows at --labeled 10% gives 12 labelled rows, fewer than batch_size 32."""
    path = _csv(tmp_path / "small.csv", 215)
    with pytest.warns(UserWarning, match="batch_size 32 is larger than the 12 labeled rows"):
        code, out = _invoke("--dataset", f"csv:{path}", "--target", "y", "--labeled", "10%", "--method",
                            "clss", "--out", tmp_path / "run", *FAST)
    assert code == 0, out
    assert json.loads((tmp_path / "run" / "splits.json").read_text())["n_labeled"] == 12


def test_one_labelled_row_and_tiny_unlabelled_pool(tmp_path: Path) -> None:
    # 12 rows with a target (val 2, test 2, 8 train), 3 without: --labeled 1 leaves 7 + 3 unlabelled.
    lines = ["a,y"] + [f"{i},{i * 2}" for i in range(12)] + ["20,", "21,", "22,"]
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="larger than the 1 labeled rows"):
        code, out = _invoke("--dataset", f"csv:{tmp_path / 't.csv'}", "--target", "y", "--labeled", "1",
                            "--method", "supervised", "--out", tmp_path / "run", *FAST)
    assert code == 0, out


@pytest.mark.parametrize(("args", "phrase"), [
    (["--missing", "mean"], None),
    (["--exclude", "color"], r"missing feature values in 'a' \(1 rows, lines \[6\]\); fill them with "
                             r"--missing mean"),
    (["--features", "a,colour"], r"no feature column 'colour'; columns are \['a', 'b', 'color', 'y'\]"),
    (["--exclude", "color", "--features", "a"], r"--features\) or exclude= \(--exclude\), not both"),
    (["--missing", "drop", "--categorical", "error"], "one-hot encode them with --categorical onehot"),
])
def test_feature_flags(tmp_path: Path, args: list[str], phrase: str | None) -> None:
    path = _csv(tmp_path / "c.csv", 40, color=True)
    text = path.read_text().splitlines()
    text[5] = ",".join(["", *text[5].split(",")[1:]])  # one missing feature cell (column a, line 6)
    path.write_text("\n".join(text) + "\n")
    base = ["--dataset", f"csv:{path}", "--target", "y", "--method", "supervised", "--labeled", "all",
            "--set", "batch_size=all", "--out", tmp_path / "run", *FAST]
    if phrase is None:
        code, out = _invoke(*base, *args, "--exclude", "color")
        assert code == 0, out
        return
    code, out = _invoke(*base, *args)
    assert code != 0
    assert re.search(phrase, " ".join(out.split())), out


def test_config_keys_and_defaults() -> None:
    cfg = resolve_config({"dataset": "csv:x.csv", "features": ["a"], "missing": "median"}, {})
    assert cfg.data_options() == {"features": ["a"], "missing": "median"}
    assert resolve_config({}, {}).data_options() == {} and resolve_config({}, {}).labeled is None
    assert resolve_config({"dataset": "operator-sde"}, {}).labeled == "20%"


@pytest.mark.parametrize(("args", "phrase"), [
    (["--target", "y"], "is a directory, not a CSV file"),
    (["--target", "y", "--labeled", "0"], "labeled count must be >= 1"),
    (["--target", "y", "--labeled", "abc"], "cannot parse labeled amount 'abc'"),
    (["--target", "y", "--labeled", "101%"], r"labeled percent must be in \(0, 100\]"),
    (["--target", "y", "--batch-size", "0"],
     r"--batch-size'?: '0' is not a positive integer or 'all'"),
    (["--target", "y", "--split-seed", "-1"], r"--split-seed'?: -1 is not in the range"),
    (["--target", "z"], r"no target column 'z'"),
])
def test_cli_csv_errors_are_one_line(tmp_path: Path, args: list[str], phrase: str) -> None:
    data = tmp_path / "folder of data"
    data.mkdir()
    path = data if "is a directory" in phrase else _csv(tmp_path / "d.csv", 30)
    code, out = _invoke("--dataset", f"csv:{path}", "--method", "supervised", "--out", tmp_path / "run",
                        *args, *FAST)
    assert code != 0 and "Traceback" not in out
    assert re.search(phrase, " ".join(out.split())), out
