"""Run directory layout and file formats (clss.engine.rundir)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from clss.engine import RunDir, save_checkpoint


def test_new_run_creates_the_directory_and_refuses_to_clobber(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "runs" / "a")
    assert run.path.is_dir()
    RunDir(run.path)  # still empty: a fresh start is fine
    run.write_summary({"mae": 1.0})
    with pytest.raises(FileExistsError, match=r"already holds other files \(summary\.json\)"):
        RunDir(run.path)
    assert run.read_summary() == {"mae": 1.0}
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        RunDir(tmp_path / "file")


def test_resume_needs_an_existing_run_with_a_last_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        RunDir(tmp_path / "missing", resume=True)
    run = RunDir(tmp_path / "r")
    run.write_config({"seed": 0})
    with pytest.raises(FileNotFoundError, match=r"no checkpoint last\.pt"):
        RunDir(run.path, resume=True)
    save_checkpoint(run.checkpoint_path("last"), {"step": 3})
    resumed = RunDir(run.path, resume=True)
    assert resumed.read_config() == {"seed": 0}
    assert resumed.resume and "resume=True" in repr(resumed)


def test_config_yaml_round_trip_keeps_key_order(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    config = {"method": "gclss", "seed": np.int64(0), "data": {"name": "operator-sde", "labeled": "10%"},
              "lr": 1e-3, "betas": (0.9, 0.999), "out": tmp_path / "r", "nan": float("nan"), "none": None}
    run.write_config(config)
    text = (run.path / "config.yaml").read_text()
    assert text.index("method") < text.index("seed") < text.index("data")
    loaded = run.read_config()
    assert loaded["data"] == {"name": "operator-sde", "labeled": "10%"}
    assert loaded["betas"] == [0.9, 0.999] and loaded["out"] == str(tmp_path / "r")
    assert loaded["seed"] == 0 and math.isnan(loaded["nan"]) and loaded["none"] is None
    assert yaml.safe_load(text)["data"] == {"name": "operator-sde", "labeled": "10%"}


def test_config_errors(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match=r"config\.yaml"):
        run.read_config()
    with pytest.raises(TypeError, match=r"config\['model'\]\['act'\]"):
        run.write_config({"model": {"act": torch.nn.ReLU()}})
    (run.path / "config.yaml").write_text("- a list\n")
    with pytest.raises(ValueError, match="mapping"):
        run.read_config()


def test_splits_json(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_splits({"labeled": np.array([3, 1]), "unlabeled": torch.tensor([0, 2]), "val": [4],
                      "split_seed": 7})
    text = (run.path / "splits.json").read_text()
    assert len(text.splitlines()) == 6  # braces plus one line per key
    assert json.loads(text) == run.read_splits() == {"labeled": [3, 1], "unlabeled": [0, 2], "val": [4],
                                                     "split_seed": 7}


def test_log_append_read_and_nonfinite_values(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.read_log() == []
    run.log({"step": 1, "loss": 0.5, "loss_ur": torch.tensor(0.25), "lr": np.float32(0.5)})
    run.log({"step": 2, "loss": float("nan"), "val_mae": float("inf"), "grad": -math.inf, "note": "x"})
    lines = (run.path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    raw = json.loads(lines[1])  # strict JSON: no bare NaN tokens
    assert raw["loss"] == "NaN" and raw["val_mae"] == "Infinity" and raw["grad"] == "-Infinity"
    first, second = run.read_log()
    assert first == {"step": 1, "loss": 0.5, "loss_ur": 0.25, "lr": 0.5}
    assert math.isnan(second["loss"]) and second["val_mae"] == math.inf and second["grad"] == -math.inf
    assert second["note"] == "x"


@pytest.mark.parametrize("record", [{"loss": 1.0}, {"step": -1}, {"step": 1.5}, {"step": True}])
def test_log_requires_a_step(tmp_path: Path, record) -> None:
    with pytest.raises(ValueError, match="step"):
        RunDir(tmp_path / "r").log(record)


def test_truncate_log_drops_later_records_and_an_interrupted_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.truncate_log(5) == 0
    for step in range(1, 11):
        run.log({"step": step, "loss": 1.0 / step if step != 4 else float("nan")})
    with (run.path / "metrics.jsonl").open("a") as fh:
        fh.write('{"step": 11, "lo')  # a crash in the middle of a write
    with pytest.warns(RuntimeWarning, match="incomplete last line"):
        assert len(run.read_log()) == 10
    assert run.truncate_log(6) == 4
    records = run.read_log()
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and math.isnan(records[3]["loss"])
    run.log({"step": 7, "loss": 0.1})
    assert [r["step"] for r in run.read_log()] == [1, 2, 3, 4, 5, 6, 7]


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    (run.path / "metrics.jsonl").write_text('{"step": 1}\n[1, 2]\n{"step": 3}\n')
    with pytest.raises(ValueError, match="line 2"):
        run.read_log()


def test_summary_encodes_nonfinite_metrics(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_summary({"final": {"mae": np.float64(0.1), "pearson": float("nan")}, "best_step": 3})
    assert json.loads((run.path / "summary.json").read_text())["final"]["pearson"] == "NaN"
    summary = run.read_summary()
    assert summary["final"]["mae"] == 0.1 and math.isnan(summary["final"]["pearson"])
    (run.path / "summary.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        run.read_summary()


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_predictions_csv_appends_and_replaces_splits(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.write_predictions("val", [4, 7], np.array([1.0, 2.0]), torch.tensor([1.5, float("nan")]))
    run.write_predictions("test", np.array([0, 1, 2]), [0.1, 0.2, 1 / 3], [0.0, 0.25, 0.5])
    rows = _read_csv(run.path / "predictions.csv")
    assert list(rows[0]) == ["split", "index", "source", "y_true", "y_pred"]
    assert [r["source"] for r in rows] == ["4", "7", "0", "1", "2"]  # the index when no source is given
    assert [(r["split"], int(r["index"])) for r in rows] == [("val", 4), ("val", 7), ("test", 0), ("test", 1),
                                                             ("test", 2)]
    assert float(rows[4]["y_true"]) == 1 / 3  # full precision
    assert math.isnan(float(rows[1]["y_pred"]))
    run.write_predictions("val", [9], [5.0], [6.0], source=["images/a, b.png"])
    rows = _read_csv(run.path / "predictions.csv")
    assert [(r["split"], r["index"]) for r in rows] == [("test", "0"), ("test", "1"), ("test", "2"),
                                                        ("val", "9")]
    assert rows[3]["source"] == "images/a, b.png"  # quoted by the CSV writer


def test_predictions_errors(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    with pytest.raises(ValueError, match="same length"):
        run.write_predictions("test", [0, 1], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        run.write_predictions("test", [0], [[1.0]], [1.0])
    with pytest.raises(ValueError, match="non-empty"):
        run.write_predictions("", [0], [1.0], [1.0])
    (run.path / "predictions.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="header"):
        run.write_predictions("test", [0], [1.0], [1.0])


def test_checkpoint_and_plot_paths(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.checkpoint_path("last") == run.path / "last.pt"
    assert run.checkpoint_path("best") == run.path / "best.pt"
    with pytest.raises(ValueError, match="'last' or 'best'"):
        run.checkpoint_path("first")  # type: ignore[arg-type]
    assert run.plot_path("learning_curves") == run.path / "plots" / "learning_curves.png"
    assert run.plot_path("pred.png") == run.path / "plots" / "pred.png"
    assert (run.path / "plots").is_dir()
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ValueError, match="plain file name"):
            run.plot_path(bad)


def test_create_is_atomic_and_leaves_nothing_on_error(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "a"

    def populate(run: RunDir) -> None:
        assert run.path.parent == target.parent and run.path.name.startswith(".a.incomplete-")
        assert not target.exists()  # invisible until complete
        run.write_config({"seed": 0})

    run = RunDir.create(target, populate)
    assert run.path == target and run.read_config() == {"seed": 0}
    assert [p.name for p in target.parent.iterdir()] == ["a"]

    def fail(run: RunDir) -> None:
        run.write_config({"seed": 1})
        raise ValueError("refused")

    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="refused"):
        RunDir.create(tmp_path / "empty", fail)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "runs"]
    assert list((tmp_path / "empty").iterdir()) == []
    RunDir.create(tmp_path / "empty", populate=lambda run: run.write_config({"seed": 2}))  # empty dir: ok
    with pytest.raises(FileExistsError, match="already holds"):
        RunDir.create(target, populate)


def test_check_new_and_existing_create_nothing(tmp_path: Path) -> None:
    RunDir.check_new(tmp_path / "x" / "y")
    assert not (tmp_path / "x").exists()
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="is a file"):
        RunDir.check_new(tmp_path / "f")
    with pytest.raises(FileNotFoundError, match="run directory not found"):
        RunDir.existing(tmp_path / "x")
    assert RunDir.existing(tmp_path).path == tmp_path


def test_resumes_jsonl(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    assert run.read_resumes() == []
    run.record_resume({"time": "t", "step": 3, "changed": {"steps": [3, np.int64(9)]}})
    with (run.path / "resumes.jsonl").open("a") as fh:
        fh.write('{"time": "t", "st')  # a line cut short by a crash
    assert run.read_resumes() == [{"time": "t", "step": 3, "changed": {"steps": [3, 9]}}]


def test_log_sync_writes_the_same_line(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "r")
    run.log({"step": 1, "loss": 0.5}, sync=True)
    run.log({"step": 2, "loss": 0.25})
    run.sync_log()
    assert run.read_log() == [{"step": 1, "loss": 0.5}, {"step": 2, "loss": 0.25}]
