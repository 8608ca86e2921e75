"""Tabular datasets (diabetes, CSV), RegressionData validation, Standardizer, the dataset registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clss.data import RegressionData, Standardizer, list_datasets, load_dataset, split_labeled


def _write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def numeric_csv(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    y = x @ [1.0, -2.0, 0.5] + 3
    rows = [",".join(f"{v:.6f}" for v in (*xi, yi)) for xi, yi in zip(x, y, strict=True)]
    return _write_csv(tmp_path / "data.csv", "a,b,c,target", rows)


def test_registry_lists_builtins() -> None:
    names = list_datasets()
    assert set(names) == {"operator-sde", "diabetes", "csv:PATH", "digits-rotation", "image-csv:PATH",
                          "utkface", "utkface-rankup", "agedb-dir", "agedb-dir-rgb", "adience", "morph2",
                          "clap2015", "utkface-coral", "cacd"}
    assert all(isinstance(d, str) and d for d in names.values())


def test_diabetes_shapes_and_seeded_split() -> None:
    data = load_dataset("diabetes", seed=0)
    assert data.x_train.shape == (266, 10) and data.x_val.shape == (88, 10) and data.x_test.shape == (88, 10)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.float64
    assert data.feature_names[:2] == ["age", "sex"] and data.target_name == "progression"
    again = load_dataset("diabetes", seed=0)
    np.testing.assert_array_equal(data.y_test, again.y_test)
    assert not np.array_equal(load_dataset("diabetes", seed=1).y_test, data.y_test)
    all_y = np.sort(np.concatenate([data.y_train, data.y_val, data.y_test]))
    from sklearn.datasets import load_diabetes

    np.testing.assert_array_equal(all_y, np.sort(load_diabetes().target))
    json.dumps(data.meta)


def test_val_protocol_for_tabular_and_no_protocol_split() -> None:
    data = load_dataset("diabetes")
    assert data.labeled is None and data.unlabeled is None and data.meta["val_protocol"] == "holdout"
    with pytest.raises(ValueError, match="no paper protocol"):
        load_dataset("diabetes", fraction=0.1)
    test_val = load_dataset("diabetes", val_protocol="test")
    np.testing.assert_array_equal(test_val.x_val, test_val.x_test)


def test_standardizer_fits_on_train_only_and_round_trips() -> None:
    data = load_dataset("diabetes", seed=0)
    st = data.standardizer()
    full_y = np.concatenate([data.y_train, data.y_val, data.y_test])
    full_x = np.concatenate([data.x_train, data.x_val, data.x_test]).astype(np.float64)
    assert st.y_mean == pytest.approx(data.y_train.mean()) and st.y_mean != pytest.approx(full_y.mean())
    np.testing.assert_allclose(st.x_mean, data.x_train.astype(np.float64).mean(axis=0))
    assert not np.allclose(st.x_mean, full_x.mean(axis=0))
    z = st.transform_x(data.x_train)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-4)
    np.testing.assert_allclose(st.inverse_y(st.transform_y(data.y_test)), data.y_test, rtol=1e-12)
    yt = torch.tensor(data.y_test, dtype=torch.float64)
    torch.testing.assert_close(st.inverse_y(st.transform_y(yt)), yt)
    xt = torch.tensor(data.x_val)
    assert st.transform_x(xt).dtype == torch.float32
    np.testing.assert_allclose(st.transform_x(xt).numpy(), st.transform_x(data.x_val), rtol=1e-6, atol=1e-6)
    state = json.loads(json.dumps(st.state_dict()))
    back = Standardizer.from_state_dict(state)
    np.testing.assert_array_equal(back.x_std, st.x_std)
    assert back.y_std == st.y_std
    with pytest.raises(ValueError, match="missing"):
        Standardizer.from_state_dict({"x_mean": [0.0]})
    with pytest.raises(ValueError, match="features"):
        st.transform_x(np.zeros((2, 3)))


def test_standardizer_target_stats_from_labeled_rows_and_zero_std_guard() -> None:
    data = load_dataset("diabetes", seed=0)
    data.labeled = split_labeled(data.y_train.size, "20%", seed=0).labeled
    st = data.standardizer()
    assert st.y_mean == pytest.approx(data.y_train[data.labeled].mean())
    assert data.standardizer(y_rows=np.arange(data.y_train.size)).y_mean == pytest.approx(data.y_train.mean())
    const = Standardizer.fit(np.ones((5, 2)), np.full(5, 3.0))
    assert (const.x_std == 1).all() and const.y_std == 1
    np.testing.assert_array_equal(const.transform_x(np.ones((2, 2))), np.zeros((2, 2)))


def test_standardizer_can_leave_either_side_in_its_units() -> None:
    data = load_dataset("diabetes", seed=0)
    full = data.standardizer()
    for inputs, targets in [(False, True), (True, False), (False, False)]:
        st = data.standardizer(inputs=inputs, targets=targets)
        if inputs:
            np.testing.assert_array_equal(st.x_std, full.x_std)
        else:
            np.testing.assert_array_equal(st.transform_x(data.x_val), data.x_val)
        if targets:
            assert st.y_std == full.y_std
        else:
            np.testing.assert_array_equal(st.transform_y(data.y_val), data.y_val)
            np.testing.assert_array_equal(st.inverse_y(data.y_val), data.y_val)


def test_csv_seeded_split(numeric_csv: Path) -> None:
    data = load_dataset(f"csv:{numeric_csv}", target="target", seed=0)
    assert data.x_train.shape == (30, 3) and data.x_val.shape == (10, 3) and data.x_test.shape == (10, 3)
    assert data.feature_names == ["a", "b", "c"] and data.target_name == "target"
    np.testing.assert_allclose(data.y_train, data.x_train @ [1.0, -2.0, 0.5] + 3, atol=1e-4)
    sub = load_dataset(f"csv:{numeric_csv}", target="target", features=["c", "a"])
    assert sub.feature_names == ["c", "a"]


def test_csv_with_split_column(tmp_path: Path) -> None:
    rows = ["1,2,train,0.5", "2,3,TRAIN,1.5", "3,4,val,2.5", "4,5,validation,3.5", "5,6,test,4.5"]
    path = _write_csv(tmp_path / "s.csv", "x1,x2,Split,y", rows)
    data = load_dataset(f"csv:{path}", target="y")
    np.testing.assert_array_equal(data.y_train, [0.5, 1.5])
    np.testing.assert_array_equal(data.y_val, [2.5, 3.5])
    np.testing.assert_array_equal(data.y_test, [4.5])
    assert data.feature_names == ["x1", "x2"] and data.meta["split"] == "column 'Split'"


def test_csv_missing_values(tmp_path: Path) -> None:
    rows = [f"{i},{i * 2},{i}" for i in range(20)]
    rows[3] = "3,,3"
    rows[7] = "7,NA,7"
    path = _write_csv(tmp_path / "na.csv", "a,b,y", rows)
    with pytest.raises(ValueError, match=r"missing feature values in 'b' \(2 rows, lines \[5, 9\]\); fill "
                                         r"them with --missing mean"):
        load_dataset(f"csv:{path}", target="y")
    data = load_dataset(f"csv:{path}", target="y", missing="drop")
    assert data.x_train.shape[0] + data.x_val.shape[0] + data.x_test.shape[0] == 18
    assert data.meta["dropped_lines"] == [5, 9]


@pytest.mark.parametrize(
    ("header", "rows", "kw", "error", "match"),
    [
        (
            "a,b,y",
            ["1,2,3"] * 10,
            {"target": None},
            ValueError,
            r"name the target column .*\['a', 'b', 'y'\]",
        ),
        ("a,b,y", ["1,2,3"] * 10, {"target": "Y"}, ValueError, r"no target column 'Y'.*did you mean \['y'\]"),
        ("a,y,y", ["1,2,3"] * 10, {"target": "y"}, ValueError, r"duplicated column names \{'y': \[2, 3\]\}"),
        (
            "a,b,y",
            ["1,x,3", "1,2,3"] * 5,
            {"target": "y"},
            ValueError,
            r"non-numeric feature columns 'b' \(e.g. 'x'\); one-hot encode them with --categorical onehot",
        ),
        (
            "a,b,y",
            ["1,2,3", "1,2"] * 5,
            {"target": "y"},
            ValueError,
            r"lines \[3, 5, 7, 9, 11\] do not have 3",
        ),
        ("a,b,y", ["1,x,3"] + ["1,2,3"] * 5, {"target": "y"}, ValueError,
         r"feature column 'b' has 1 values that are not numbers, e.g. \['x'\] on lines \[2\]"),
        ("a,b,y", ["1,2,3"] * 10, {"target": "y", "features": ["z"]}, ValueError, "no feature column 'z'"),
        ("a,b,y", ["1,2,3"] * 10, {"target": "y", "features": ["y"]}, ValueError, "'y' is the target column"),
        ("y", ["3"] * 10, {"target": "y"}, ValueError, "no feature columns"),
        ("a,y", [], {"target": "y"}, ValueError, "has a header but no data rows"),
        ("a,split,y", ["1,train,2", "1,dev,2"], {"target": "y"}, ValueError,
         r"values \['dev'\] \(lines \[3\]\); use"),
        ("a,split,y", ["1,train,2", "1,test,2"], {"target": "y"}, ValueError, r"no \['val'\] rows"),
        ("a,y", ["1,2"] * 2, {"target": "y"}, ValueError, "too few"),
    ],
)
def test_csv_errors(
    tmp_path: Path, header: str, rows: list[str], kw: dict, error: type[Exception], match: str
) -> None:
    path = _write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(error, match=match):
        load_dataset(f"csv:{path}", **kw)


def test_load_dataset_errors(tmp_path: Path, numeric_csv: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CSV file not found"):
        load_dataset(f"csv:{tmp_path / 'nope.csv'}", target="y")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(ValueError, match="needs a path"):
        load_dataset("csv:", target="y")
    with pytest.raises(ValueError, match="fixed target"):
        load_dataset("diabetes", target="age")
    with pytest.raises(ValueError, match="no run slices"):
        load_dataset("diabetes", run=1)
    with pytest.raises(ValueError, match="data_dir is only used by operator-sde"):
        load_dataset("diabetes", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"unknown options \['n_functions'\]"):
        load_dataset(f"csv:{numeric_csv}", target="target", n_functions=3)
    with pytest.raises(ValueError, match="val_protocol"):
        load_dataset("diabetes", val_protocol="train")


def _arrays(n: int = 4, d: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        f"{k}_{s}": rng.normal(size=(n, d) if k == "x" else n)
        for s in ("train", "val", "test")
        for k in ("x", "y")
    }


def test_regression_data_validation() -> None:
    base = {"name": "t", "feature_names": ["f0", "f1"], "target_name": "y", **_arrays()}
    data = RegressionData(**{**base, "y_train": np.ones((4, 1))})
    assert data.y_train.shape == (4,) and data.n_features == 2
    cases = [
        ({"x_val": np.ones(4)}, "x_val must be 2-D"),
        ({"y_test": np.ones((4, 2))}, "y_test must be 1-D"),
        ({"y_train": np.ones(3)}, "x_train has 4 rows but y_train has 3"),
        ({"x_test": np.ones((4, 3))}, "x_test has 3 features, x_train has 2"),
        ({"x_val": np.ones((0, 2)), "y_val": np.ones(0)}, "the val split is empty"),
        (
            {"x_train": np.array([[1.0, np.nan]] * 4)},
            r"4 train rows contain NaN/inf \(first: \[0, 1, 2, 3\]\)",
        ),
        ({"y_test": np.array([1, np.inf, 1, 1])}, "test rows contain NaN/inf"),
        ({"feature_names": ["f0"]}, "1 feature names for 2 features"),
        ({"labeled": np.array([0, 4])}, r"must lie in \[0, 4\)"),
        ({"labeled": np.array([0, 0])}, "duplicates"),
        ({"labeled": np.array([0.5])}, "integer row indices"),
        ({"labeled": np.array([], dtype=int)}, "labeled set is empty"),
        ({"unlabeled": np.array([1])}, "unlabeled indices given without labeled"),
        ({"labeled": np.array([0, 1]), "unlabeled": np.array([1, 2])}, "overlap"),
    ]
    for change, match in cases:
        with pytest.raises(ValueError, match=match):
            RegressionData(**{**base, **change})
