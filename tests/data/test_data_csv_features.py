"""CSV files as a newcomer writes them: empty target cells (the unlabelled pool), feature choice, missing
values, text columns (one-hot), the saved encoding, odd file formats."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from clss.data import Splits, TabularEncoding, load_csv, load_dataset, read_csv_table, split_labeled


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join(lines) + "\n", encoding=encoding)
    return path


@pytest.fixture
def partial_csv(tmp_path: Path) -> Path:
    """60 rows; rows 0, 3, 6, ... (20 of them) have a target, the other 40 an empty target cell."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=60), rng.normal(size=60)
    color = np.array(["red", "green", "blue"])[np.arange(60) % 3 - (np.arange(60) // 7) % 2]
    lines = ["a,b,color,y"]
    for i in range(60):
        y = f"{2 * a[i] - b[i]:.6f}" if i % 3 == 0 else ("NA" if i % 2 else "")
        lines.append(f"{a[i]:.6f},{b[i]:.6f},{color[i]},{y}")
    return _write(tmp_path / "partial data.csv", lines)  # a space in the name on purpose


def test_empty_target_cells_are_unlabelled_training_rows(partial_csv: Path) -> None:
    data = load_csv(partial_csv, target="y", features="a,b")
    assert data.no_target.size == 40 and np.isnan(data.y_train[data.no_target]).all()
    # val/test come from the 20 rows with a target only: round(20 * 0.2) = 4 each, 12 labelled train rows.
    assert data.x_val.shape == (4, 2) and data.x_test.shape == (4, 2) and data.x_train.shape == (52, 2)
    assert np.isfinite(data.y_val).all() and np.isfinite(data.y_test).all()
    lines = data.meta["lines"]
    assert sorted(lines["train"] + lines["val"] + lines["test"]) == list(range(2, 62))
    assert all((line - 2) % 3 == 0 for line in lines["val"] + lines["test"])
    assert data.meta["n_no_target"] == 40
    # Target statistics never see a NaN; inputs use every training row.
    st = data.standardizer()
    assert np.isfinite(st.y_mean) and np.isfinite(st.y_std)
    with pytest.raises(ValueError, match="rows without a target"):
        data.standardizer(y_rows=data.no_target[:2])


def test_default_labeled_takes_every_row_with_a_target(partial_csv: Path, tmp_path: Path) -> None:
    data = load_csv(partial_csv, target="y", features=["a", "b"])
    splits = split_labeled(data.x_train.shape[0], None, seed=0, no_target=data.no_target)
    has_target = np.flatnonzero(~np.isnan(data.y_train))
    np.testing.assert_array_equal(splits.labeled, has_target)
    np.testing.assert_array_equal(splits.unlabeled, data.no_target)
    assert splits.spec == "all"
    # A fraction counts the rows with a target; the rest of them joins the unlabelled pool.
    half = split_labeled(data.x_train.shape[0], "50%", seed=3, no_target=data.no_target)
    assert half.labeled.size == 6 and half.unlabeled.size == 46
    assert not np.isnan(data.y_train[half.labeled]).any()
    assert set(data.no_target) <= set(half.unlabeled)
    path = half.to_json(tmp_path / "splits.json")
    stored = json.loads(path.read_text())
    assert stored["no_target"] == data.no_target.tolist() and stored["n_no_target"] == 40
    back = Splits.from_json(path)
    np.testing.assert_array_equal(back.no_target, data.no_target)
    with pytest.raises(ValueError, match="asks for 13 labeled rows but there are only 12 training rows with "
                                         "a target"):
        split_labeled(data.x_train.shape[0], 13, seed=0, no_target=data.no_target)


def test_without_missing_targets_the_split_is_unchanged() -> None:
    old_style = np.random.default_rng(7).permutation(100)
    splits = split_labeled(100, "20%", seed=7, no_target=[])
    np.testing.assert_array_equal(splits.labeled, np.sort(old_style[:20]))
    assert split_labeled(100, None, seed=7).spec == "20%"


def test_split_column_with_unlabelled_rows(tmp_path: Path) -> None:
    lines = ["x,split,y", "1,train,1", "2,,", "3,val,3", "4,test,4", "5,train,"]
    data = load_csv(_write(tmp_path / "s.csv", lines), target="y")
    assert data.x_train[:, 0].tolist() == [1, 2, 5] and data.no_target.tolist() == [1, 2]
    bad = _write(tmp_path / "b.csv", ["x,split,y", "1,train,1", "2,val,", "3,val,3", "4,test,4"])
    with pytest.raises(ValueError, match=r"lines \[3\] are in the val/test split but have no target"):
        load_csv(bad, target="y")


def test_features_and_exclude(partial_csv: Path) -> None:
    assert load_csv(partial_csv, target="y", exclude="color").feature_names == ["a", "b"]
    assert load_csv(partial_csv, target="y", features=" b , a ").feature_names == ["b", "a"]
    with pytest.raises(ValueError, match="not both"):
        load_csv(partial_csv, target="y", features="a", exclude="color")
    with pytest.raises(ValueError, match=r"no excluded column 'colour'.*did you mean \['color'\]"):
        load_csv(partial_csv, target="y", exclude=["colour"])


def test_one_hot_encoding_is_learned_on_training_rows(partial_csv: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"non-numeric feature columns 'color' \(e.g. '.+'\); one-hot encode "
                                         r"them with --categorical onehot \(Python: categorical='onehot'\)"):
        load_csv(partial_csv, target="y")
    data = load_csv(partial_csv, target="y", categorical="onehot")
    assert data.feature_names == ["a", "b", "color=blue", "color=green", "color=red"]
    onehot = data.x_train[:, 2:]
    assert set(np.unique(onehot)) == {0.0, 1.0} and (onehot.sum(axis=1) == 1).all()
    enc = TabularEncoding.from_dict(json.loads(json.dumps(data.encoding.to_dict())))
    assert enc == data.encoding
    new = _write(tmp_path / "new.csv", ["color,b,a", "green,0.5,1", "purple,0,0", "red,1,2"])
    with pytest.warns(UserWarning, match=r"column 'color' has categories not seen in training \['purple'\] "
                                         r"on 1 rows \(lines \[3\]\); they are encoded as all zeros"):
        x, y = enc.transform_csv(new)
    np.testing.assert_array_equal(x, [[1, 0.5, 0, 1, 0], [0, 0, 0, 0, 0], [2, 1, 0, 0, 1]])
    assert y is None
    with pytest.raises(ValueError, match="no feature column 'b'"):
        enc.transform_csv(_write(tmp_path / "nob.csv", ["a,color", "1,red"]))


def test_missing_feature_policies(tmp_path: Path) -> None:
    lines = ["a,b,y"] + [f"{i},{'' if i in (3, 8) else 10 * i},{i}" for i in range(20)]
    path = _write(tmp_path / "m.csv", lines)
    with pytest.raises(ValueError, match=r"missing feature values in 'b' \(2 rows, lines \[5, 10\]\); fill "
                                         r"them with --missing mean \(Python: missing='mean'\) or median"):
        load_csv(path, target="y")
    dropped = load_csv(path, target="y", missing="drop")
    assert dropped.meta["dropped_lines"] == [5, 10] and dropped.x_train.shape[0] == 10
    b_of_line = {i + 2: 10.0 * i for i in range(20) if i not in (3, 8)}
    mean = load_csv(path, target="y", missing="mean")
    train_b = [b_of_line[line] for line in mean.meta["lines"]["train"] if line in b_of_line]
    fill = mean.encoding.fill[1]
    assert fill == pytest.approx(np.mean(train_b), rel=1e-12)
    assert np.count_nonzero(mean.x_train[:, 1] == np.float32(fill)) >= 1
    median = load_csv(path, target="y", missing="median")
    assert median.encoding.fill[1] == pytest.approx(np.median(train_b), rel=1e-12)
    # New data: the training fill values apply; the "error" policy refuses.
    new = _write(tmp_path / "new.csv", ["a,b,y", "1,,", "2,5,7"])
    x, y = mean.encoding.transform_csv(new)
    assert x[0, 1] == pytest.approx(fill) and np.isnan(y[0]) and y[1] == 7
    strict = load_csv(_write(tmp_path / "ok.csv", ["a,b,y"] + ["1,2,3"] * 6), target="y").encoding
    with pytest.raises(ValueError, match="missing feature values in 'b'"):
        strict.transform_csv(new)


def test_bom_semicolons_tabs_and_quotes(tmp_path: Path) -> None:
    rows = [f"{i};{i * 0.5};{i * 2}" for i in range(10)]
    semi = _write(tmp_path / "semi colon.csv", ["a;b;y", *rows], encoding="utf-8-sig")
    assert (tmp_path / "semi colon.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    data = load_csv(semi, target="y")
    assert data.feature_names == ["a", "b"] and read_csv_table(semi).delimiter == ";"
    tabs = _write(tmp_path / "t.tsv", ["a\tb\ty", *[r.replace(";", "\t") for r in rows]])
    assert load_csv(tabs, target="y").feature_names == ["a", "b"]
    quoted = _write(tmp_path / "q.csv", ['"a","b, the second","y"', *[r.replace(";", ",") for r in rows]])
    assert load_csv(quoted, target="y").feature_names == ["a", "b, the second"]
    decimal_comma = _write(tmp_path / "dc.csv", ["a;b;y", *[f"{i};{i},5;{i}" for i in range(10)]])
    with pytest.raises(ValueError, match=r"a decimal comma\? write 1.5, not 1,5"):
        load_csv(decimal_comma, target="y")


def test_load_dataset_passes_the_options_and_refuses_them_elsewhere(partial_csv: Path) -> None:
    data = load_dataset(f"csv:{partial_csv}", target="y", categorical="onehot", missing="mean")
    assert data.n_features == 5 and data.encoding is not None
    with pytest.raises(ValueError, match=r"diabetes: \['features'\] apply to csv:PATH datasets only"):
        load_dataset("diabetes", features=["age"])
    assert load_dataset("diabetes").encoding is None


def test_unseen_categories_do_not_warn_for_training_rows(partial_csv: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_csv(partial_csv, target="y", categorical="onehot")
