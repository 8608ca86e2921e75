"""Predictions of a trained run on new data (clss.engine.predict, clss predict) and of its unlabelled rows."""

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner

from clss.config import resolve_config
from clss.data import load_dataset
from clss.engine import train
from clss.engine.predict import UNLABELED_PREDICTIONS, load_predictor, predict_array, predict_file
from clss_cli.main import main

TINY = {"dataset": "diabetes", "method": "clss", "steps": 6, "eval_every": 3, "progress": False,
        "plots": False, "threads": 1, "batch_size": 12, "unlabeled_batch_size": 12,
        "model": {"hidden": [16, 16]}}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(resolve_config({}, TINY), tmp_path_factory.mktemp("predict") / "run").run_dir


@pytest.fixture(scope="module")
def data():
    return load_dataset("diabetes", seed=0)


def _read(path):
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _scale(y):
    return 1e-6 * max(1.0, float(np.abs(y).max()))


def test_predict_array_reproduces_the_runs_test_predictions_in_target_units(run, data):
    rows = _read(run / "predictions.csv")
    assert rows[0] == ["split", "index", "source", "y_true", "y_pred"]
    expected = np.array([float(r[4]) for r in rows[1:] if r[0] == "test"])
    pred = predict_array(run, data.x_test)
    assert pred.shape == (len(data.y_test),) and pred.dtype == np.float64
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=_scale(expected))
    # target units, not standardised: centred near the targets
    assert abs(pred.mean() - data.y_train.mean()) < 2 * data.y_train.std()


def test_csv_input_in_any_column_order_with_extra_columns_and_an_id_column(run, data, tmp_path):
    names = list(reversed(data.feature_names))
    header = ["patient", *names, "progression", "note"]
    rows = [[f"p{i}", *[repr(float(v)) for v in data.x_test[i, ::-1]], "1.0", "x"] for i in range(7)]
    src = _write_csv(tmp_path / "new.csv", header, rows)
    out = tmp_path / "sub" / "preds.csv"
    pred, written = predict_file(run, src, out, id_column="patient")
    assert written == out
    table = _read(out)
    assert table[0] == ["index", "patient", "y_pred"]
    assert [r[0] for r in table[1:]] == [str(i) for i in range(7)]
    assert [r[1] for r in table[1:]] == [f"p{i}" for i in range(7)]
    np.testing.assert_allclose([float(r[2]) for r in table[1:]], pred, rtol=1e-12)
    expected = predict_array(run, data.x_test[:7])
    np.testing.assert_allclose(pred, expected, rtol=1e-6, atol=_scale(expected))
    assert [p.name for p in out.parent.iterdir()] == ["preds.csv"]  # atomic: no temporary left


def test_npy_input_and_both_checkpoints(run, data, tmp_path):
    np.save(tmp_path / "x.npy", data.x_val[:5].astype(np.float64))
    best, _ = predict_file(run, tmp_path / "x.npy", tmp_path / "b.csv")
    last, _ = predict_file(run, tmp_path / "x.npy", tmp_path / "l.csv", checkpoint="last")
    assert load_predictor(run, checkpoint="last").checkpoint == "last"
    assert best.shape == last.shape == (5,)
    assert _read(tmp_path / "b.csv")[0] == ["index", "y_pred"]


def test_unlabelled_training_rows_are_predicted_into_the_run_directory(run, data):
    splits = json.loads((run / "splits.json").read_text())
    assert splits["features"] == data.feature_names and splits["target"] == data.target_name
    table = _read(run / UNLABELED_PREDICTIONS)
    assert table[0] == ["index", "source", "y_pred"]
    index = [int(r[0]) for r in table[1:]]
    assert index == splits["unlabeled"] and len(index) > 0
    assert [r[1] for r in table[1:]] == [str(i) for i in index]  # a table's source is its row number
    expected = predict_array(run, data.x_train[index])  # the selected (best) weights
    got = np.array([float(r[2]) for r in table[1:]])
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=_scale(expected))


def test_best_falls_back_to_the_final_weights_of_a_run_without_validation(tmp_path, data):
    run = train(resolve_config({}, {**TINY, "eval_every": 0, "method": "supervised"}), tmp_path / "r").run_dir
    assert not (run / "best.pt").exists()
    predictor = load_predictor(run)
    assert predictor.checkpoint == "last"
    assert np.isfinite(predictor.predict(data.x_test[:3])).all()


def test_cli_predict_writes_the_file_and_reports(run, data, tmp_path):
    np.save(tmp_path / "x.npy", data.x_test[:4])
    result = CliRunner().invoke(main, ["predict", str(run), "--input", str(tmp_path / "x.npy"),
                                       "--out", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert "4 predictions" in result.output
    assert len(_read(tmp_path / "p.csv")) == 5
    # an existing output file is replaced
    result = CliRunner().invoke(main, ["predict", str(run), "--input", str(tmp_path / "x.npy"),
                                       "--out", str(tmp_path / "p.csv"), "--checkpoint", "last"])
    assert result.exit_code == 0, result.output
    assert len(_read(tmp_path / "p.csv")) == 5


def test_csv_run_predicts_new_files_with_its_fitted_encoding(tmp_path):
    """A CSV run with a one-hot column, mean-filled gaps and unlabelled rows: predict applies the encoding
    fitted on the training rows (categories, fill values, column selection) to a new file."""
    rng = np.random.default_rng(0)
    n = 80
    colour = rng.choice(["red", "green", "blue"], n)
    a = rng.normal(size=n)
    y = 2 * a + (colour == "red") + 0.1 * rng.normal(size=n)
    rows = [[f"{a[i]:.6f}", colour[i], "" if i % 7 == 0 else f"{rng.normal():.6f}", f"{y[i]:.6f}"]
            for i in range(n)]
    for i in range(0, n, 4):
        rows[i][3] = ""  # unlabelled rows
    src = _write_csv(tmp_path / "train.csv", ["a", "colour", "b", "y"], rows)
    cfg = resolve_config({}, {**TINY, "dataset": f"csv:{src}", "target": "y", "categorical": "onehot",
                              "missing": "mean", "exclude": ["b"]})
    run = train(cfg, tmp_path / "run").run_dir
    encoding = json.loads((run / "splits.json").read_text())["encoding"]
    assert [c["name"] for c in encoding["columns"]] == ["a", "colour"]

    new = _write_csv(tmp_path / "new.csv", ["colour", "a", "b"],
                     [["blue", "0.5", ""], ["red", "0.5", "3"], ["green", "-1", "x"]])
    pred, _ = predict_file(run, new)
    predictor = load_predictor(run)
    x = np.array([[0.5, 1, 0, 0], [0.5, 0, 0, 1], [-1, 0, 1, 0]])  # a, colour=blue, =green, =red
    np.testing.assert_allclose(pred, predictor.predict(x), rtol=1e-6, atol=_scale(pred))
    with pytest.warns(UserWarning, match="not seen in training"):
        unseen, _ = predict_file(run, _write_csv(tmp_path / "u.csv", ["a", "colour"], [["0.5", "purple"]]))
    np.testing.assert_allclose(unseen, predictor.predict(np.array([[0.5, 0, 0, 0]])), rtol=1e-6,
                               atol=_scale(unseen))
