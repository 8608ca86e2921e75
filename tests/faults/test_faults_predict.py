"""Fault suite: bad invocations of `clss predict` and `clss datasets`, and bad input to
SemiSupervisedRegressor. Each case ends in one clear error naming the problem, never a traceback."""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from sklearn.exceptions import NotFittedError

from clss.config import resolve_config
from clss.data import load_dataset
from clss.engine import train
from clss.estimator import SemiSupervisedRegressor
from clss_cli.main import main

FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = resolve_config({}, {"dataset": "diabetes", "method": "supervised", "steps": 4, "eval_every": 2,
                              "progress": False, "plots": False, "threads": 1, "model": {"hidden": [8]}})
    return train(cfg, tmp_path_factory.mktemp("faults-predict") / "run").run_dir


@pytest.fixture(scope="module")
def x_test():
    return load_dataset("diabetes", seed=0).x_test.astype(np.float64)


def _csv(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n")
    return path


def _good_rows(x, n=3):
    return [[repr(float(v)) for v in x[i]] for i in range(n)]


# Each maker returns (run directory, input path, extra arguments) for a bad `clss predict` call.
def _missing_run(tmp, run, x):
    return tmp / "nope", _npy(tmp, x[:2]), []


def _run_is_a_file(tmp, run, x):
    (tmp / "file").write_text("x")
    return tmp / "file", _npy(tmp, x[:2]), []


def _no_checkpoint(tmp, run, x):
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copy(run / "config.yaml", bare / "config.yaml")
    return bare, _npy(tmp, x[:2]), []


def _no_config(tmp, run, x):
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copy(run / "best.pt", bare / "best.pt")
    return bare, _npy(tmp, x[:2]), []


def _no_last(tmp, run, x):
    copy = tmp / "copy"
    shutil.copytree(run, copy)
    (copy / "last.pt").unlink()
    return copy, _npy(tmp, x[:2]), ["--checkpoint", "last"]


def _foreign_checkpoint(tmp, run, x):
    copy = tmp / "copy"
    shutil.copytree(run, copy)
    torch.save({"weight": torch.zeros(2)}, copy / "best.pt")
    return copy, _npy(tmp, x[:2]), []


def _truncated_checkpoint(tmp, run, x):
    copy = tmp / "copy"
    shutil.copytree(run, copy)
    (copy / "best.pt").write_bytes((run / "best.pt").read_bytes()[:100])
    return copy, _npy(tmp, x[:2]), []


def _splits_edited(change):
    def make(tmp, run, x):
        copy = tmp / "copy"
        shutil.copytree(run, copy)
        splits = json.loads((copy / "splits.json").read_text())
        change(splits)
        (copy / "splits.json").write_text(json.dumps(splits))
        return copy, _csv(tmp / "in.csv", FEATURES, _good_rows(x)), []
    return make


def _npy(tmp, array, name="x.npy"):
    np.save(tmp / name, array)
    return tmp / name


def _input(make):
    """A maker for a bad input file against the good run."""
    return lambda tmp, run, x: (run, make(tmp, x), [])


def _nan_row(tmp, x):
    a = x[:4].copy()
    a[1, 3] = np.nan
    a[3, 0] = np.inf
    return _npy(tmp, a)


def _csv_drop(column):
    def make(tmp, x):
        keep = [i for i, f in enumerate(FEATURES) if f != column]
        rows = [[r[i] for i in keep] for r in _good_rows(x)]
        return _csv(tmp / "in.csv", [FEATURES[i] for i in keep], rows)
    return make


def _csv_cell(row, col, value):
    def make(tmp, x):
        rows = _good_rows(x)
        rows[row][col] = value
        return _csv(tmp / "in.csv", FEATURES, rows)
    return make


def _empty_file(tmp, x):
    (tmp / "e.csv").write_text("")
    return tmp / "e.csv"


def _pickled_npy(tmp, x):
    np.save(tmp / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return tmp / "o.npy"


def _npz_named_npy(tmp, x):
    np.savez(tmp / "z.npz", x=x)
    return (tmp / "z.npz").rename(tmp / "z.npy")


def _text_npy(tmp, x):
    return _npy(tmp, np.full((2, 10), "a"))


def _out_dir(tmp, run, x):
    (tmp / "outdir").mkdir()
    return run, _npy(tmp, x[:2]), ["__OUT__", str(tmp / "outdir")]


PREDICT_CASES = [
    pytest.param(_missing_run, "run directory .*nope does not exist", id="missing-run-dir"),
    pytest.param(_run_is_a_file, "is a file, not a run directory", id="run-dir-is-a-file"),
    pytest.param(_no_checkpoint, r"has no best.pt checkpoint \(the run stopped before", id="no-checkpoint"),
    pytest.param(_no_config, "config.yaml not found", id="no-config"),
    pytest.param(_no_last, "has no last.pt checkpoint; it has best.pt", id="checkpoint-last-missing"),
    pytest.param(_foreign_checkpoint, r"lacks \['method', 'standardizer'\]", id="foreign-checkpoint"),
    pytest.param(_truncated_checkpoint, "best.pt is not a valid checkpoint", id="truncated-checkpoint"),
    pytest.param(_splits_edited(lambda s: s.pop("features")), "records no feature names.*pass a .npy array",
                 id="run-without-feature-names"),
    pytest.param(_splits_edited(lambda s: s["features"].pop()), "splits.json describes 9 features but the "
                 "checkpoint standardises 10", id="run-feature-names-inconsistent"),
    pytest.param(lambda tmp, run, x: (run, tmp / "none.csv", []), "input file .*none.csv does not exist",
                 id="missing-input"),
    pytest.param(lambda tmp, run, x: (run, tmp, []), r"is a directory; pass a .csv or .npy file",
                 id="input-is-a-directory"),
    pytest.param(_out_dir, "output .*outdir is a directory; name a file", id="out-is-a-directory"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, x[:3, :7])), r"shape \(n_rows, 10\).*got shape \(3, 7\)",
                 id="npy-too-narrow"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, np.hstack([x[:3], x[:3]]))), r"got shape \(3, 20\)",
                 id="npy-too-wide"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, x[0])), r"got shape \(10,\)", id="npy-1d"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, x[:4].reshape(2, 2, 10))), r"got shape \(2, 2, 10\)",
                 id="npy-3d"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, np.empty((0, 10)))), "inputs have no rows",
                 id="npy-no-rows"),
    pytest.param(_input(_nan_row), r"2 row\(s\) \(1, 3\) have missing or non-finite values",
                 id="npy-nan-rows"),
    pytest.param(_input(_pickled_npy), "not a readable .npy array", id="npy-pickled-objects"),
    pytest.param(_input(_npz_named_npy), "holds no single array", id="npz-named-npy"),
    pytest.param(_input(_text_npy), "inputs must be numeric", id="npy-strings"),
    pytest.param(_input(lambda tmp, x: _npy(tmp, np.full((2, 10), 1e300))), "overflow float32",
                 id="npy-overflowing-values"),
    pytest.param(_input(_csv_drop("bmi")), r"lacks the feature column\(s\) \['bmi'\]",
                 id="csv-missing-column"),
    pytest.param(_input(lambda tmp, x: _csv(tmp / "in.csv", ["a", "b"], [[1, 2]])),
                 r"lacks the feature column\(s\) \['age', 'sex'.*10 of 10 missing",
                 id="csv-no-feature-columns"),
    pytest.param(_input(_csv_cell(1, 2, "")), r"1 row\(s\) \(1\) have missing", id="csv-empty-cell"),
    pytest.param(_input(_csv_cell(2, 0, "NA")), r"1 row\(s\) \(2\) have missing", id="csv-na-cell"),
    pytest.param(_input(_csv_cell(0, 5, "inf")),
                 r"feature column 's2' has infinite values on lines \[2\]",
                 id="csv-inf-cell"),
    pytest.param(_input(_csv_cell(0, 1, "male")),
                 r"feature column 'sex' has 1 values that are not numbers, e.g. \['male'\]",
                 id="csv-text-cell"),
    pytest.param(_input(_empty_file),
                 "is empty; expected a header row", id="csv-empty-file"),
    pytest.param(_input(lambda tmp, x: _csv(tmp / "h.csv", FEATURES, [])), "has a header but no data rows",
                 id="csv-header-only"),
    pytest.param(_input(lambda tmp, x: _csv(tmp / "r.csv", FEATURES, [_good_rows(x)[0][:9]])),
                 r"lines \[2\] do not have 10 comma-separated fields", id="csv-ragged"),
    pytest.param(_input(lambda tmp, x: _csv(tmp / "d.csv", [*FEATURES, "bmi"],
                                            [[*r, "1"] for r in _good_rows(x)])),
                 r"duplicated column names \{'bmi': \[3, 11\]\}", id="csv-duplicate-column"),
    pytest.param(lambda tmp, run, x: (run, _csv(tmp / "i.csv", FEATURES, _good_rows(x)),
                                      ["--id-column", "pid"]),
                 "no id column 'pid'", id="csv-missing-id-column"),
    pytest.param(lambda tmp, run, x: (run, _npy(tmp, x[:2]), ["--id-column", "pid"]),
                 "an id column needs CSV input", id="npy-with-id-column"),
    pytest.param(lambda tmp, run, x: (run, _npy(tmp, x[:2]), ["--checkpoint", "first"]),
                 r"Invalid value for '--checkpoint'", id="unknown-checkpoint"),
    pytest.param(lambda tmp, run, x: (run, _npy(tmp, x[:2]), ["--device", "tpu"]),
                 r"device must be 'cpu', 'cuda' \(or 'cuda:N'\) or 'auto', got 'tpu'", id="unknown-device"),
    pytest.param(lambda tmp, run, x: (run, _npy(tmp, x[:2]), ["__NO_OUT__"]), "Missing option '--out'",
                 id="no-out"),
    pytest.param(lambda tmp, run, x: (run, None, []), r"Missing argument 'INPUT' \(or option '--input'\)",
                 id="no-input"),
]


@pytest.mark.parametrize(("make", "match"), PREDICT_CASES)
def test_clss_predict_refuses_bad_invocations_in_one_line(make, match, run, x_test, tmp_path):
    run_dir, src, extra = make(tmp_path, run, x_test)
    out = ["--out", str(tmp_path / "preds.csv")]
    if extra[:1] == ["__OUT__"]:
        out, extra = ["--out", extra[1]], []
    elif extra[:1] == ["__NO_OUT__"]:
        out, extra = [], []
    args = ["predict", str(run_dir), *([] if src is None else ["--input", str(src)]), *out, *extra]
    result = CliRunner().invoke(main, args)
    assert isinstance(result.exception, SystemExit) and result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert re.search(match, result.output), result.output
    assert not (tmp_path / "preds.csv").exists()  # nothing written on refusal


@pytest.mark.parametrize(("args", "match"), [
    pytest.param(["--bogus"], "No such option '--bogus'", id="unknown-flag"),
    pytest.param(["extra"], "Got unexpected extra argument", id="positional-argument"),
    pytest.param(["--json", "yes"], "Got unexpected extra argument", id="json-takes-no-value"),
    pytest.param(["--data-dir"], "requires an argument", id="data-dir-without-value"),
])
def test_clss_datasets_refuses_bad_flags(args, match):
    result = CliRunner().invoke(main, ["datasets", *args])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert match in result.output


@pytest.fixture(scope="module")
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = x[:, 0].copy()
    y[20:] = np.nan
    return x, y


FAST = {"steps": 2, "hidden": (8,), "threads": 1, "random_state": 0}


def _nan_x(x, y):
    x = x.copy()
    x[5, 1] = np.nan
    return x, y


def _inf_x(x, y):
    x = x.copy()
    x[5, 1] = np.inf
    return x, y


ESTIMATOR_FIT_CASES = [
    pytest.param({"threads": 0}, None, "threads must be an integer >= 1, 'auto' or null, got 0",
                 id="threads-0"),
    pytest.param({"threads": -1}, None, "threads must be .* got -1", id="threads-negative"),
    pytest.param({"threads": 1.5}, None, "threads must be .* got 1.5", id="threads-float"),
    pytest.param({"threads": "many"}, None, "threads must be .* got 'many'", id="threads-string"),
    pytest.param({"threads": True}, None, "threads must be .* got True", id="threads-bool"),
    pytest.param({"steps": 0}, None, "steps must be an int >= 1, got 0", id="steps-0"),
    pytest.param({"steps": 2.5}, None, "steps must be an int >= 1, got 2.5", id="steps-float"),
    pytest.param({"lr": 0}, None, "lr must be a finite float > 0, got 0", id="lr-0"),
    pytest.param({"lr": float("nan")}, None, "lr must be a finite float > 0, got nan", id="lr-nan"),
    pytest.param({"weight_decay": -1}, None, "weight_decay must be a finite float >= 0", id="weight-decay"),
    pytest.param({"hidden": ()}, None, r"hidden must be a non-empty tuple of layer widths",
                 id="hidden-empty"),
    pytest.param({"hidden": (8, 0)}, None, r"hidden must be .* got \(8, 0\)", id="hidden-zero-width"),
    pytest.param({"dropout": 1.0}, None, r"dropout must be a float in \[0, 1\), got 1.0", id="dropout-1"),
    pytest.param({"labeled_batch_size": 0}, None, "labeled_batch_size must be an int >= 1", id="batch-0"),
    pytest.param({"unlabeled_batch_size": -3}, None, "unlabeled_batch_size must be an int >= 1",
                 id="unlabeled-batch-negative"),
    pytest.param({"method_params": [("mode", "clean")]}, None, "method_params must be a dict",
                 id="method-params-list"),
    pytest.param({"method_params": {"nope": 1}}, None, "unknown key 'method_params.nope'",
                 id="method-params-unknown"),
    pytest.param({"validation_fraction": 1.0}, None, r"validation_fraction must be in \[0, 1\)",
                 id="validation-fraction-1"),
    pytest.param({"device": "tpu"}, None, "device must be 'auto', 'cpu' or 'cuda'", id="device-unknown"),
    pytest.param({"method": "teacher"}, None, "unknown method 'teacher'; available", id="method-unknown"),
    pytest.param({}, _nan_x, "Input X contains NaN", id="x-nan"),
    pytest.param({}, _inf_x, "Input X contains infinity", id="x-inf"),
    pytest.param({}, lambda x, y: (x, np.full_like(y, np.nan)), "no labelled rows", id="y-all-nan"),
    pytest.param({}, lambda x, y: (x, np.where(np.isnan(y), 0.0, np.inf)), "Input y contains infinity",
                 id="y-inf"),
    pytest.param({}, lambda x, y: (x, y[:-3]), "inconsistent numbers of samples", id="length-mismatch"),
    pytest.param({}, lambda x, y: (x[:1], y[:1]), "no unlabelled rows", id="one-row-semi-supervised"),
    pytest.param({}, lambda x, y: (x[[0, 25]], y[[0, 25]]), "unlabelled batch of at least 2 rows",
                 id="one-unlabelled-row"),
    pytest.param({}, lambda x, y: (x, np.column_stack([y, y])), "one target per row", id="y-two-columns"),
    pytest.param({}, lambda x, y: (x[:, 0], y), "Expected 2D array", id="x-1d"),
    pytest.param({}, lambda x, y: (x[:0], y[:0]), "0 sample", id="no-rows"),
]


@pytest.mark.parametrize(("params", "change", "match"), ESTIMATOR_FIT_CASES)
def test_estimator_fit_refuses_bad_input(params, change, match, xy):
    x, y = xy if change is None else change(*xy)
    with pytest.raises(ValueError, match=match):
        SemiSupervisedRegressor(**{**FAST, **params}).fit(x, y)


def test_estimator_predict_before_fit_and_bad_predict_input(xy):
    x, y = xy
    with pytest.raises(NotFittedError, match="not fitted yet"):
        SemiSupervisedRegressor(**FAST).predict(x)
    est = SemiSupervisedRegressor("supervised", **FAST).fit(x, y)
    with pytest.raises(ValueError, match="X has 2 features, but SemiSupervisedRegressor is expecting 3"):
        est.predict(x[:, :2])
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(bad)
