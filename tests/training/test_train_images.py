"""Image datasets through the whole trainer: digits-rotation, image-csv and a face-age protocol (stand-in
tree) train, write per-file predictions and resume exactly."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from _faces_tree import stand_in_manifest, utk_tree

from clss.config import resolve_config
from clss.data.faces import load_face_dataset
from clss.engine import TrainingInterrupted, train
from clss.engine.trainer import load_data

FAST = {"progress": False, "plots": False, "threads": 1, "device": "cpu"}


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method", ["supervised", "clss", "gclss"])
def test_digits_rotation_trains_every_method(tmp_path, method):
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": method, "labeled": "10%", "steps": 4,
                              "eval_every": 2, **FAST})
    res = train(cfg, tmp_path / "run")
    assert res.summary["status"] == "finished" and np.isfinite(res.summary["test"]["mae"])
    assert res.summary["labeled"] == 107 and res.summary["unlabeled"] == 972
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert splits["input"]["kind"] == "image" and splits["input"]["shape"] == [1, 8, 8]


def test_digits_rotation_resume_is_exact(tmp_path):
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": "gclss", "labeled": "10%", "steps": 6,
                              "eval_every": 2, **FAST})
    full = train(cfg, tmp_path / "full")

    def stop(step, logs):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "cut", callback=stop)
    resumed = train(None, tmp_path / "cut", resume=True)
    assert resumed.summary["test"] == full.summary["test"]
    log = "metrics.jsonl"
    assert (tmp_path / "cut" / log).read_text() == (tmp_path / "full" / log).read_text()


def _image_folder(tmp_path: Path) -> Path:
    """40 small JPEG/PNG images and a path,target CSV (every fifth target empty: unlabelled rows)."""
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    lines = ["path,target"]
    for i in range(40):
        t = float(rng.uniform(0, 1))
        pixels = (rng.uniform(0, 255, (12, 10, 3)) * t).astype(np.uint8)
        name = f"img/{i}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(pixels).save(tmp_path / name)
        lines.append(f"{name},{'' if i % 5 == 0 else round(10 * t, 4)}")
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "data.csv"


def test_image_csv_trains_and_names_each_file_in_the_predictions(tmp_path):
    _image_folder(tmp_path)
    cfg = resolve_config({}, {"dataset": f"image-csv:{tmp_path / 'data.csv'}", "method": "clss",
                              "model": {"name": "cnn"}, "labeled": "50%", "steps": 3, "eval_every": 3,
                              "batch_size": 4, "unlabeled_batch_size": 4, "workers": 1, **FAST})
    res = train(cfg, tmp_path / "run")
    assert np.isfinite(res.summary["test"]["mae"])
    rows = _csv_rows(tmp_path / "run" / "predictions.csv")
    assert rows and all(Path(r["source"]).parent == tmp_path / "img" and Path(r["source"]).is_file()
                        for r in rows)
    unlabeled = _csv_rows(tmp_path / "run" / "predictions_unlabeled.csv")
    assert len(unlabeled) == res.summary["unlabeled"] and all(r["source"].startswith(str(tmp_path))
                                                              for r in unlabeled)


def test_a_face_protocol_trains_on_its_published_labelled_rows(tmp_path):
    root = tmp_path / "utk"
    utk_tree(root)
    manifest = stand_in_manifest("utkface", root, tmp_path / "m.yaml")
    data = load_face_dataset("utkface", data_root=root, labels=333, manifest=manifest)
    cfg = resolve_config({}, {"dataset": "utkface", "method": "gclss", "labeled": "333",
                              "data_root": str(root), "model": {"name": "cnn", "blocks": 3}, "steps": 2,
                              "eval_every": 2, "batch_size": 2, "unlabeled_batch_size": 4, **FAST})
    assert cfg.unlabeled == "paper"  # the face presets use the published split files
    res = train(cfg, tmp_path / "run", data=data)
    assert res.summary["labeled"] == len(data.labeled) and res.summary["unlabeled"] == len(data.unlabeled)
    assert np.isfinite(res.summary["val"]["mae"])


def test_face_protocols_take_the_label_count_of_a_split_file(tmp_path):
    root = tmp_path / "utk"
    utk_tree(root)
    base = {"dataset": "utkface", "data_root": str(root), **FAST}
    with pytest.raises(ValueError, match=r"label count of a published split file, e\.g\. --labeled 500"):
        load_data(resolve_config({}, {**base, "labeled": "10%"}))
    with pytest.raises(ValueError, match=r"labels=334 has no published split file; available: \[333, 500"):
        load_data(resolve_config({}, {**base, "labeled": "334"}))


def test_image_csv_preprocessing_and_invariances_are_set_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from clss_cli.main import main

    csv_file = _image_folder(tmp_path)
    args = ["train", "--dataset", f"image-csv:{csv_file}", "--method", "supervised", "--steps", "1",
            "--batch-size", "8", "--set", "model.name=cnn", "--set", "preprocessing.resize=[8,6]",
            "--set", "preprocessing.order=bgr", "--set", "invariant_to=translate,hflip", "--no-progress",
            "--out"]
    result = CliRunner().invoke(main, [*args, str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    splits = json.loads((tmp_path / "run" / "splits.json").read_text())
    assert splits["input"]["shape"] == [3, 8, 6]
    bad = CliRunner().invoke(main, [*args[:-1], "--set", "preprocessing.resize=[0,6]", "--out",
                                    str(tmp_path / "bad")])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists(), bad.output
    other = CliRunner().invoke(main, ["train", "--dataset", "digits-rotation", "--set",
                                      "preprocessing.resize=[8,8]", "--out", str(tmp_path / "other")])
    assert other.exit_code == 2 and "unknown options ['preprocessing']" in other.output, other.output
