"""Fault suite for the data layer: bad and extreme inputs to every public entry point of ``clss.data``.

Each table row is a real input (small files written to ``tmp_path``) and either the error type with a
phrase of its message, or ``None`` for "loads correctly" (then the row's check runs).
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clss.data import (
    RegressionData,
    SemiSupervisedSampler,
    TabularEncoding,
    load_csv,
    load_dataset,
    parse_labeled,
    split_labeled,
)
from clss.data.tabular import seeded_split

NUMERIC = ["a,b,y"] + [f"{i},{i % 7},{2 * i}" for i in range(20)]


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _replace(line: int, text: str) -> list[str]:
    """NUMERIC with its data row ``line`` (1-based file line) replaced."""
    out = list(NUMERIC)
    out[line - 1] = text
    return out


# (id, file content: str | bytes | None for a directory, load_csv keywords, error or None, phrase / check)
CSV_CASES: list[tuple[str, Any, dict[str, Any], type[Exception] | None, Any]] = [
    ("empty file", "", {}, ValueError, "is empty; expected a header row"),
    ("blank lines only", "\n\n  \n", {}, ValueError, "is empty"),
    ("header only", "a,b,y\n", {}, ValueError, "has a header but no data rows"),
    ("single row", "a,b,y\n1,2,3\n", {}, ValueError, "too few for a 0.60/0.2/0.2"),
    ("duplicated columns", _text(["a,b,a,y", "1,2,3,4"] * 1), {}, ValueError,
     r"duplicated column names \{'a': \[1, 3\]\}"),
    ("duplicated target", _text(["a,y,y"] + ["1,2,3"] * 9), {}, ValueError, r"duplicated column names \{'y'"),
    ("unnamed column", _text(["a,,y"] + ["1,2,3"] * 9), {}, ValueError, r"header columns \[2\] have no name"),
    ("missing target column", _text(NUMERIC), {"target": "z"}, ValueError, "no target column 'z'"),
    ("target case", _text(NUMERIC), {"target": "Y"}, ValueError, r"did you mean \['y'\]"),
    ("no target given", _text(NUMERIC), {"target": None}, ValueError,
     r"name the target column with --target"),
    ("text target", _text(["a,y"] + [f"{i},v{i}" for i in range(10)]), {}, ValueError,
     "target column 'y' is not numeric"),
    ("one bad target", _text(_replace(4, "3,3,oops")), {}, ValueError,
     r"target column 'y' has 1 values that are not numbers, e.g. \['oops'\] on lines \[4\]"),
    ("inf target", _text(_replace(3, "2,2,inf")), {}, ValueError, r"target column 'y' has infinite values"),
    ("huge target", _text(_replace(3, "2,2,1e300")), {}, ValueError, "beyond the float32 range"),
    ("NaN text feature", _text(_replace(3, "nan,2,4")), {}, ValueError,
     r"missing feature values in 'a' \(1 rows, lines \[3\]\)"),
    ("inf feature", _text(_replace(3, "-inf,2,4")), {}, ValueError, "feature column 'a' has infinite values"),
    ("huge feature", _text(_replace(3, "1e39,2,4")), {}, ValueError, "beyond the float32 range"),
    ("large but fine", _text(_replace(3, "1e30,2,4")), {}, None, lambda d: d.x_train.max() <= 1e30),
    ("strings in features", _text(["a,b,y"] + [f"{i},c{i % 3},{i}" for i in range(10)]), {}, ValueError,
     "non-numeric feature columns 'b'"),
    ("strings one-hot", _text(["a,b,y"] + [f"{i},c{i % 3},{i}" for i in range(10)]),
     {"categorical": "onehot"}, None, lambda d: d.feature_names == ["a", "b=c0", "b=c1", "b=c2"]),
    ("typo in numbers", _text(_replace(5, "4,1O,8")), {}, ValueError,
     r"feature column 'b' has 1 values that are not numbers, e.g. \['1O'\] on lines \[5\]"),
    ("all unlabelled", _text(["a,y"] + [f"{i}," for i in range(10)]), {}, ValueError,
     "no row has a value in the target column 'y'"),
    ("all labelled", _text(NUMERIC), {}, None, lambda d: d.no_target.size == 0 and d.x_train.shape[0] == 12),
    ("one labelled row", _text(["a,y", "1,2"] + [f"{i}," for i in range(10)]), {}, ValueError,
     "1 rows are too few"),
    ("BOM", b"\xef\xbb\xbf" + _text(NUMERIC).encode(), {}, None, lambda d: d.feature_names == ["a", "b"]),
    ("semicolons", _text([ln.replace(",", ";") for ln in NUMERIC]), {}, None,
     lambda d: d.feature_names == ["a", "b"]),
    ("decimal commas", _text(["a;y"] + [f"{i},5;{i}" for i in range(10)]), {}, ValueError,
     "a decimal comma"),
    ("ragged line", _text([*NUMERIC, "1,2"]), {}, ValueError, r"lines \[22\] do not have 3 comma-separated"),
    ("latin-1 bytes", _text(["a,b,y", "1,2,3"]).encode() + b"\xe9,1,2\n", {}, ValueError,
     "is not UTF-8 text"),
    ("utf-16", _text(NUMERIC).encode("utf-16"), {}, ValueError, "not a text CSV file"),
    ("directory", None, {}, ValueError, "is a directory, not a CSV file"),
    ("bad missing policy", _text(NUMERIC), {"missing": "zero"}, ValueError, r"missing must be one of"),
    ("bad categorical", _text(NUMERIC), {"categorical": "ordinal"}, ValueError, "categorical must be one of"),
    ("features and exclude", _text(NUMERIC), {"features": "a", "exclude": "b"}, ValueError, "not both"),
    ("empty features", _text(NUMERIC), {"features": []}, ValueError, "features must name columns"),
    ("feature twice", _text(NUMERIC), {"features": "a,a"}, ValueError,
     r"features list \['a'\] more than once"),
    ("target as feature", _text(NUMERIC), {"features": "a,y"}, ValueError, "'y' is the target column"),
    ("exclude everything", _text(NUMERIC), {"exclude": "a,b"}, ValueError, "no feature columns left"),
    ("drop leaves none", _text(["a,y"] + [f",{i}" for i in range(10)]), {"missing": "drop"}, ValueError,
     "every row has a missing feature value"),
    ("mean of an empty column", _text(["a,b,y"] + [f"{i},,{i}" for i in range(10)]), {"missing": "mean"},
     ValueError, r"feature columns \['b'\] have no value on any training row"),
    ("bad split value", _text(["a,split,y", "1,train,1", "2,dev,2"]), {}, ValueError, r"values \['dev'\]"),
    ("val row without target", _text(["a,split,y", "1,train,1", "2,val,", "3,val,3", "4,test,4"]), {},
     ValueError, "are in the val/test split but have no target"),
    ("val_size too big", _text(NUMERIC), {"val_size": 0.9}, ValueError, "val_size \\+ test_size < 1"),
    ("negative seed", _text(NUMERIC), {"seed": -1}, ValueError, "seed must be a non-negative integer"),
    ("quoted newline", '"a\nb",c,y\n' + "".join(f"{i},{i},{i}\n" for i in range(10)), {}, None,
     lambda d: d.feature_names == ["a\nb", "c"] and d.meta["lines"]["test"][0] >= 3),
]


@pytest.mark.parametrize(("content", "kw", "error", "expect"),
                         [pytest.param(*c[1:], id=c[0]) for c in CSV_CASES])
def test_load_csv_faults(tmp_path: Path, content: Any, kw: dict[str, Any], error: type[Exception] | None,
                         expect: Any) -> None:
    path = tmp_path / "my file.csv"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    kw = {"target": "y", **kw}
    if error is None:
        assert expect(load_csv(path, **kw))
    else:
        with pytest.raises(error, match=expect):
            load_csv(path, **kw)


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        load_csv(tmp_path / "nope.csv", target="y")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_load_csv_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "locked.csv"
    path.write_text(_text(NUMERIC))
    path.chmod(0)
    with pytest.raises(ValueError, match="permission denied"):
        load_csv(path, target="y")


LABELED_CASES = [
    (0, "labeled count must be >= 1"),
    ("0", "labeled count must be >= 1"),
    ("0%", r"labeled percent must be in \(0, 100\]"),
    ("101%", r"labeled percent must be in \(0, 100\]"),
    (-1, "labeled count must be >= 1"),
    ("-1", "cannot parse labeled amount '-1'"),
    (1.5, r"labeled fraction must be in \(0, 1\]"),
    ("1.5", r"labeled fraction must be in \(0, 1\]"),
    ("abc", "cannot parse labeled amount 'abc'.*or 'all'"),
    ("", "cannot parse labeled amount ''"),
    ("nan", "cannot parse labeled amount 'nan'"),
    (float("nan"), r"labeled fraction must be in \(0, 1\]"),
    (True, "must be a percent, fraction or count"),
    ([10], "must be a percent, fraction or count"),
]


@pytest.mark.parametrize(("spec", "match"), [pytest.param(s, m, id=repr(s)) for s, m in LABELED_CASES])
def test_parse_labeled_faults(spec: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_labeled(spec)


SPLIT_CASES = [
    pytest.param({"labeled": "250"}, "asks for 250 labeled rows but there are only 100", id="more than rows"),
    pytest.param({"labeled": "0.001"}, "gives 0 labeled rows", id="floors to zero"),
    pytest.param({"labeled": "all"}, "leaves no unlabeled rows.*--method supervised", id="all, none left"),
    pytest.param({"seed": -1}, "seed must be a non-negative integer", id="negative seed"),
    pytest.param({"seed": 1.5}, "seed must be a non-negative integer", id="float seed"),
    pytest.param({"seed": "abc"}, "seed must be a non-negative integer", id="text seed"),
    pytest.param({"seed": None}, "seed must be a non-negative integer", id="None seed (not reproducible)"),
    pytest.param({"unlabeled": 500}, "asked for 500 unlabeled rows", id="too many unlabelled"),
    pytest.param({"no_target": [100]}, r"no_target indices must lie in \[0, 100\)", id="no_target range"),
]


@pytest.mark.parametrize(("kw", "match"), SPLIT_CASES)
def test_split_labeled_faults(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        split_labeled(100, **{"labeled": "20%", "seed": 0, **kw})


def test_split_labeled_extremes_are_correct() -> None:
    one = split_labeled(100, 1, seed=0)
    assert one.labeled.size == 1 and one.unlabeled.size == 99
    every = split_labeled(100, "all", seed=0, no_target=[5, 7])
    assert every.labeled.size == 98 and every.unlabeled.tolist() == [5, 7]
    assert split_labeled(100, "all", seed=0, require_unlabeled=False).unlabeled.size == 0
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        seeded_split(10, seed=-3)


SAMPLER_CASES = [
    pytest.param({"batch_size": 0}, r"batch_size must be a positive integer or 'all' \(CLI: --batch-size N",
                 id="batch 0"),
    pytest.param({"batch_size": -4}, "batch_size must be a positive integer", id="batch negative"),
    pytest.param({"batch_size": 2.5}, "batch_size must be a positive integer", id="batch float"),
    pytest.param({"batch_size": "many"}, "batch_size must be a positive integer", id="batch text"),
    pytest.param({"batch_size": None}, "batch_size is required unless full_batch", id="batch None"),
    pytest.param({"unlabeled_batch_size": 0}, r"unlabeled_batch_size must be a positive integer or 'all' "
                 r"\(CLI: --unlabeled-batch-size", id="unlabelled batch 0"),
    pytest.param({"ssl_mult": 0}, r"ssl_mult must be an integer >= 1 \(CLI: --set ssl_mult=N\)", id="ssl 0"),
    pytest.param({"ssl_mult": 1.5}, "ssl_mult must be an integer", id="ssl float"),
    pytest.param({"labeled": []}, "the labeled set is empty", id="no labels"),
    pytest.param({"labeled": [0.5, 1.5]}, "integer indices", id="float indices"),
    pytest.param({"unlabeled": [-1]}, "negative", id="negative index"),
]


@pytest.mark.parametrize(("kw", "match"), SAMPLER_CASES)
def test_sampler_faults(kw: dict[str, Any], match: str) -> None:
    args = {"labeled": 10, "unlabeled": np.arange(10, 30), "batch_size": 4, "seed": 0, **kw}
    with pytest.raises(ValueError, match=match):
        SemiSupervisedSampler(args.pop("labeled"), args.pop("unlabeled"), **args)


@pytest.mark.parametrize(("n_lab", "n_unl", "batch", "expect"), [
    pytest.param(12, 203, 32, (12, 32), id="few labels"),
    pytest.param(1, 5, 32, (1, 5), id="one label, tiny pool"),
    pytest.param(40, 3, 8, (8, 3), id="tiny unlabelled pool"),
])
def test_sampler_caps_batches_at_the_set(n_lab: int, n_unl: int, batch: int, expect: tuple[int, int]) -> None:
    with pytest.warns(UserWarning, match="is larger than the"):
        s = SemiSupervisedSampler(n_lab, np.arange(n_lab, n_lab + n_unl), batch_size=batch, seed=0)
    assert (s.batch_size, s.unlabeled_batch_size) == expect and len(s) >= 1
    lab, unl = next(iter(s))
    assert lab.numel() == expect[0] and unl.numel() == expect[1]


def _npz(path: Path, **arrays: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path.write_bytes(buf.getvalue())


def _good(split: str, n: int = 40) -> dict[str, np.ndarray]:
    return {f"X_{split}0": np.zeros((n, 240)), f"X_{split}1": np.zeros((n, 1)),
            f"y_{split}": np.zeros((n, 1))}


SDE_CASES: list[tuple[str, Callable[[Path], None], type[Exception], str]] = [
    ("no files", lambda d: None, FileNotFoundError, r"lacks \['train_sde.npz', 'test_sde.npz'\]"),
    ("only train", lambda d: _npz(d / "train_sde.npz", **_good("train")), FileNotFoundError,
     r"lacks \['test_sde.npz'\]"),
    ("wrong width", lambda d: (_npz(d / "train_sde.npz",
                                    **{**_good("train"), "X_train0": np.zeros((40, 24))}),
                               _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, r"expected X_train0 \[n, 240\]"),
    ("row mismatch", lambda d: (_npz(d / "train_sde.npz", **{**_good("train"), "y_train": np.zeros((39, 1))}),
                                _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, r"expected X_train0 \[n, 240\]"),
    ("missing array", lambda d: (_npz(d / "train_sde.npz", X_train0=np.zeros((40, 240))),
                                 _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, r"lacks arrays \['X_train1', 'y_train'\]"),
    ("truncated", lambda d: (_npz(d / "train_sde.npz", **_good("train")),
                             _npz(d / "test_sde.npz", **_good("test")),
                             (d / "train_sde.npz").write_bytes((d / "train_sde.npz").read_bytes()[:300])),
     ValueError, "cannot read .*train_sde.npz as an npz file"),
    ("not a zip", lambda d: ((d / "train_sde.npz").write_text("hello"),
                             _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, "cannot read"),
    ("object arrays", lambda d: (np.savez(d / "train_sde.npz", **{**_good("train"),
                                                                   "y_train": np.array([None] * 40)}),
                                 _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, "cannot read"),
    ("NaN values", lambda d: (_npz(d / "train_sde.npz",
                                   **{**_good("train"), "y_train": np.full((40, 1), np.nan)}),
                              _npz(d / "test_sde.npz", **_good("test"))),
     ValueError, "rows contain NaN/inf"),
]


@pytest.mark.parametrize(("make", "error", "match"), [pytest.param(*c[1:], id=c[0]) for c in SDE_CASES])
def test_operator_sde_data_dir_faults(tmp_path: Path, make: Callable[[Path], None], error: type[Exception],
                                      match: str) -> None:
    make(tmp_path)
    with pytest.raises(error, match=match):
        load_dataset("operator-sde", data_dir=tmp_path, run_size=20)


def test_operator_sde_data_dir_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileNotFoundError, match="lacks"):
        load_dataset("operator-sde", data_dir=tmp_path / "f")


DATASET_CASES = [
    pytest.param("mnist", {}, "unknown dataset 'mnist'; available", id="unknown"),
    pytest.param("", {}, "unknown dataset ''", id="empty name"),
    pytest.param("operator_sde", {}, "unknown dataset 'operator_sde'", id="underscore"),
    pytest.param("csv:", {"target": "y"}, "needs a path", id="csv without path"),
    pytest.param("CSV:x.csv", {}, "unknown dataset 'CSV:x.csv'", id="upper-case csv"),
    pytest.param("diabetes", {"missing": "mean"}, r"\['missing'\] apply to csv:PATH datasets only",
                 id="csv option elsewhere"),
    pytest.param("diabetes", {"dropna": True}, r"unknown options \['dropna'\]", id="old dropna keyword"),
    pytest.param("diabetes", {"val_protocol": "best"}, "val_protocol must be", id="val protocol"),
]


@pytest.mark.parametrize(("name", "kw", "match"), DATASET_CASES)
def test_load_dataset_faults(name: str, kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset(name, **kw)


ENCODING_STATES = [
    pytest.param({}, "not a TabularEncoding state of version 1", id="empty"),
    pytest.param({"version": 2, "columns": []}, "not a TabularEncoding state", id="future version"),
    pytest.param({"version": 1}, "malformed TabularEncoding state", id="no columns"),
    pytest.param({"version": 1, "columns": [{"name": "a", "kind": "text", "categories": []}],
                  "missing": "error", "fill": [], "target": None},
                 "kind must be 'numeric' or 'categorical'", id="bad kind"),
    pytest.param({"version": 1, "columns": [{"name": "a", "kind": "numeric", "categories": []}],
                  "missing": "mean", "fill": [1.0, 2.0], "target": None}, "fill has 2 values for 1 features",
                 id="fill length"),
    pytest.param({"version": 1, "columns": [], "missing": "zero", "fill": [], "target": None},
                 "missing must be one of", id="bad policy"),
]


@pytest.mark.parametrize(("state", "match"), ENCODING_STATES)
def test_encoding_state_faults(state: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TabularEncoding.from_dict(state)


def _data(**kw: Any) -> RegressionData:
    x, y = np.zeros((4, 2)), np.arange(4.0)
    return RegressionData(**{"name": "t", "x_train": x, "y_train": y, "x_val": x, "y_val": y, "x_test": x,
                             "y_test": y, "feature_names": ["a", "b"], "target_name": "y", **kw})


@pytest.mark.parametrize(("kw", "match"), [
    pytest.param({"y_val": np.array([0, np.nan, 1, 2])}, "1 val rows contain NaN/inf", id="NaN val target"),
    pytest.param({"y_train": np.array([0, np.inf, 1, 2])}, "1 train rows contain NaN/inf",
                 id="inf train target"),
    pytest.param({"y_train": np.full(4, np.nan)}, "no training row has a target", id="all NaN train"),
    pytest.param({"y_train": np.array([np.nan, 1, 2, 3]), "labeled": [0, 1]},
                 "labeled rows include rows without", id="NaN labelled"),
    pytest.param({"x_test": np.full((4, 2), np.inf)}, "4 test rows contain NaN/inf", id="inf features"),
])
def test_regression_data_faults(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _data(**kw)


def test_nan_train_targets_are_the_unlabelled_rows() -> None:
    data = _data(y_train=np.array([np.nan, 1.0, np.nan, 3.0]))
    assert data.no_target.tolist() == [0, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert data.standardizer().y_mean == pytest.approx(2.0, rel=1e-12)
