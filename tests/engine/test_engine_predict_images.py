"""`clss predict` on runs trained on images: the run's evaluation preprocessing is rebuilt from the run
directory, so new files predict exactly what the trainer's own evaluation predicted for them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from clss.config import resolve_config
from clss.data.digits import rotated_digits
from clss.engine import train
from clss.engine.predict import load_predictor, predict_images_file
from clss_cli.main import main

FAST = {"progress": False, "plots": False, "threads": 1, "device": "cpu", "workers": 0}


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _run_predictions(run: Path, split: str = "test") -> dict[str, tuple[float, float]]:
    """source -> (y_true, y_pred) of the trainer's own predictions.csv."""
    return {r["source"]: (float(r["y_true"]), float(r["y_pred"]))
            for r in _rows(run / "predictions.csv") if r["split"] == split}


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """A CNN trained 3 steps on 40 generated 12x10 JPEG/PNG images (resized to 8x6, BGR, ImageNet
    normalisation)."""
    root = tmp_path_factory.mktemp("predict-images")
    rng = np.random.default_rng(0)
    (root / "img" / "sub").mkdir(parents=True)
    lines = ["path,target"]
    for i in range(40):
        t = float(rng.uniform(0, 1))
        pixels = (rng.uniform(0, 255, (12, 10, 3)) * t).astype(np.uint8)
        name = f"img/{'sub/' if i % 3 == 0 else ''}{i:02d}.{'jpg' if i % 2 else 'png'}"
        Image.fromarray(pixels).save(root / name)
        lines.append(f"{name},{round(10 * t, 4)}")
    (root / "data.csv").write_text("\n".join(lines) + "\n")
    cfg = resolve_config({}, {"dataset": f"image-csv:{root / 'data.csv'}", "method": "supervised",
                              "model": {"name": "cnn", "channels": 8, "blocks": 1},
                              "preprocessing": {"resize": [8, 6], "order": "bgr"}, "labeled": "all",
                              "steps": 3, "eval_every": 3, "batch_size": 4, **FAST})
    return train(cfg, root / "run").run_dir


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A CNN trained 2 steps on digits-rotation (in-memory 8x8 images, estimated normalisation)."""
    root = tmp_path_factory.mktemp("predict-digits")
    cfg = resolve_config({}, {"dataset": "digits-rotation", "method": "supervised", "labeled": "10%",
                              "model": {"name": "cnn", "channels": 8, "blocks": 1}, "steps": 2,
                              "eval_every": 2, **FAST})
    return train(cfg, root / "run").run_dir


def _close(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * max(1.0, float(np.abs(b).max())))


def test_the_run_records_its_resolved_image_preprocessing(image_run):
    splits = json.loads((image_run / "splits.json").read_text())
    prep = splits["image_preprocessing"]
    assert prep["resize"] == [8, 6] and prep["order"] == "bgr" and prep["channels"] == 3
    assert prep["mean"] == pytest.approx([0.406, 0.456, 0.485])  # ImageNet's, in BGR order


def test_csv_input_reproduces_the_trainers_test_predictions_with_targets_and_metrics(image_run, tmp_path):
    truth = _run_predictions(image_run)
    (tmp_path / "new.csv").write_text("file,age\n" + "".join(f"{p},{t!r}\n" for p, (t, _) in truth.items()))
    out = tmp_path / "preds.csv"
    res = predict_images_file(image_run, tmp_path / "new.csv", out, path_column="file", target_column="age")
    assert res.files == list(truth) and res.skipped == []
    assert np.ptp(res.y_pred) > 1e-2  # the images get different predictions: the comparison is telling
    _close(res.y_pred, [p for _, p in truth.values()])
    rows = _rows(out)
    assert list(rows[0]) == ["index", "path", "y_pred", "y_true"]
    assert [r["path"] for r in rows] == list(truth)
    assert [int(r["index"]) for r in rows] == list(range(len(rows)))
    _close([float(r["y_pred"]) for r in rows], res.y_pred)
    metrics = json.loads((tmp_path / "preds.metrics.json").read_text())
    summary = json.loads((image_run / "summary.json").read_text())["test"]
    assert metrics["n"] == len(truth)
    assert metrics["mae"] == pytest.approx(summary["mae"], rel=1e-5)
    y_true = np.array([t for t, _ in truth.values()])
    assert metrics["mae"] == pytest.approx(np.mean(np.abs(res.y_pred - y_true)), rel=1e-9)


def test_folder_list_and_single_image_inputs(image_run, tmp_path):
    truth = _run_predictions(image_run)
    folder = image_run.parent / "img"
    res = predict_images_file(image_run, folder, batch_size=7)
    assert len(res.files) == 40 and res.files == sorted(res.files) and res.y_true is None
    assert any("/sub/" in f for f in res.files)
    by_file = dict(zip(res.files, res.y_pred, strict=True))
    _close([by_file[f] for f in truth], [p for _, p in truth.values()])
    # A list of paths relative to --data-root (blank lines skipped), and the run's target read from a CSV.
    names = [str(Path(f).relative_to(image_run.parent)) for f in truth]
    (tmp_path / "list.txt").write_text("\n".join(names[:3]) + "\n\n" + "\n".join(names[3:]) + "\n")
    listed = predict_images_file(image_run, tmp_path / "list.txt", data_root=image_run.parent)
    _close(listed.y_pred, [p for _, p in truth.values()])
    one = predict_images_file(image_run, next(iter(truth)))
    _close(one.y_pred, [next(iter(truth.values()))[1]])
    own_csv = predict_images_file(image_run, image_run.parent / "data.csv")  # the training file itself
    assert len(own_csv.files) == 40 and own_csv.metrics is not None and own_csv.metrics["n"] == 40


def test_any_size_and_mode_is_resized_and_converted_as_in_training(image_run, tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (30, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "rgba.png")  # alpha dropped
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.repeat(rgb[..., :1], 3, axis=2)).save(tmp_path / "gray_rgb.png")
    res = predict_images_file(image_run, tmp_path)
    pred = dict(zip((Path(f).name for f in res.files), res.y_pred, strict=True))
    _close(pred["rgba.png"], pred["rgb.png"])
    _close(pred["gray.png"], pred["gray_rgb.png"])  # grayscale repeated on three channels


def _save_uint16(path: Path, image: np.ndarray) -> np.ndarray:
    """Save a [0, 1] image as a 16-bit grayscale PNG; returns the values it stores."""
    q = np.round(image * 65535).astype(np.uint16)
    Image.fromarray(q).save(path)
    return q.astype(np.float64) / 65535


def test_digits_run_predicts_image_files_as_its_evaluation_did(digits_run, tmp_path):
    images, _ = rotated_digits()
    truth = _run_predictions(digits_run)  # source = row of the 1797 images
    rows = [int(s) for s in truth]
    (tmp_path / "imgs").mkdir()
    stored = np.stack([_save_uint16(tmp_path / "imgs" / f"{r:04d}.png", images[r]) for r in rows])
    res = predict_images_file(digits_run, tmp_path / "imgs", batch_size=64)
    assert [int(Path(f).stem) for f in res.files] == sorted(rows)
    order = np.argsort(rows)
    # Reference: the network on the stored pixels, normalised by the training statistics by hand.
    predictor = load_predictor(digits_run)
    prep = predictor.image_preprocessing
    x = (torch.as_tensor(stored[order], dtype=torch.float32)[:, None] - prep.mean[0]) / prep.std[0]
    with torch.no_grad():
        reference = predictor.standardizer.inverse_y(predictor.method.predict(x).double().numpy())
    _close(res.y_pred, reference)
    # The 16-bit files hold the training arrays to 1/65535; the predictions agree to that precision.
    expected = np.array([p for _, p in truth.values()])[order]
    np.testing.assert_allclose(res.y_pred, expected, rtol=0, atol=1e-3 * np.abs(expected).max())


def test_skip_bad_predicts_the_rest_and_lists_the_others(image_run, tmp_path):
    truth = _run_predictions(image_run)
    good = list(truth)[:4]
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"no image here" * 10)
    paths = [good[0], str(tmp_path / "corrupt.png"), good[1], str(tmp_path / "gone.jpg"), *good[2:]]
    (tmp_path / "list.txt").write_text("\n".join(paths) + "\n")
    out = tmp_path / "p.csv"
    res = predict_images_file(image_run, tmp_path / "list.txt", out, skip_bad=True, batch_size=2, workers=1)
    assert res.files == good and res.index.tolist() == [0, 2, 4, 5]
    _close(res.y_pred, [truth[g][1] for g in good])
    skipped = _rows(tmp_path / "p.skipped.csv")
    assert [(r["index"], r["path"]) for r in skipped] == [("1", paths[1]), ("3", paths[3])]
    assert "cannot decode image" in skipped[0]["reason"] and "missing file" in skipped[1]["reason"]
    assert [r["path"] for r in _rows(out)] == good and not (tmp_path / "p.metrics.json").exists()


def test_cli_predicts_an_image_folder_with_progress_lines(image_run, tmp_path):
    truth = _run_predictions(image_run)
    new = tmp_path / "new.csv"
    new.write_text("path,target\n" + "".join(f"{p},{t!r}\n" for p, (t, _) in truth.items()))
    out = tmp_path / "preds.csv"
    result = CliRunner().invoke(main, ["predict", str(image_run), str(new), "--out", str(out),
                                       "--workers", "0", "--batch-size", "3"])
    assert result.exit_code == 0, result.output
    assert "predict images" in result.output and f"{len(truth)} predictions" in result.output
    assert "mae=" in result.output and (tmp_path / "preds.metrics.json").is_file()
    _close([float(r["y_pred"]) for r in _rows(out)], [p for _, p in truth.values()])
    quiet = CliRunner().invoke(main, ["predict", str(image_run), "--input", str(image_run.parent / "img"),
                                      "--out", str(out), "--no-progress", "--workers", "auto"])
    assert quiet.exit_code == 0 and "predict images" not in quiet.output, quiet.output
    assert len(_rows(out)) == 40 and list(_rows(out)[0]) == ["index", "path", "y_pred"]


def test_a_method_with_its_own_predict_is_used_as_the_trainer_used_it(image_run, tmp_path):
    """A two-network method (test-only) whose predict averages its model and a second network held in its
    state dict, like an ensemble or a teacher: prediction goes through method.predict, after the checkpoint
    restored both networks."""
    from clss.methods import METHODS
    from clss.methods.supervised import Supervised

    class Averaged(Supervised):
        name = "test-averaged-predict"

        def __init__(self, model_fn, optimizer=None, params=None, precision="fp32"):
            super().__init__(model_fn, optimizer, params, precision)
            self.second = model_fn()

        @torch.no_grad()
        def predict(self, x):
            self.second.eval()
            return 0.5 * (super().predict(x) + self.second(x)["pred"])

    METHODS[Averaged.name] = Averaged
    try:
        model = {"name": "cnn", "channels": 8, "blocks": 1}
        config = resolve_config({}, {"dataset": f"image-csv:{image_run.parent / 'data.csv'}",
                                     "method": Averaged.name, "model": model,
                                     "preprocessing": {"resize": [8, 6]}, "labeled": "all", "steps": 2,
                                     "eval_every": 2, "batch_size": 4, **FAST})
        run = train(config, tmp_path / "run").run_dir
        truth = _run_predictions(run)
        res = predict_images_file(run, image_run.parent / "img")
        by_file = dict(zip(res.files, res.y_pred, strict=True))
        _close([by_file[f] for f in truth], [p for _, p in truth.values()])
        predictor = load_predictor(run)
        x = torch.stack([predictor.image_preprocessing.decode(f) for f in truth])
        with torch.no_grad():
            alone = predictor.standardizer.inverse_y(predictor.method.model(x)["pred"].double().numpy())
        assert np.abs(alone - [p for _, p in truth.values()]).max() > 1e-3  # the second network counts
    finally:
        del METHODS[Averaged.name]
