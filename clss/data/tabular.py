"""Tabular datasets: scikit-learn's bundled diabetes data and any numeric CSV file."""

from __future__ import annotations

import os

import numpy as np

from clss.data.base import RegressionData
from clss.data.csvfile import CsvTable, read_csv_table
from clss.data.encoding import CATEGORICAL, MISSING_POLICIES, TabularEncoding, parse_numeric
from clss.data.splits import check_seed

__all__ = ["load_csv", "load_diabetes", "seeded_split"]

_SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def seeded_split(
    n: int, *, seed: int, val_size: float = 0.2, test_size: float = 0.2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train / val / test row indices (``numpy.random.default_rng(seed)`` permutation).

    ``round(n * test_size)`` rows go to test, ``round(n * val_size)`` to val, the rest to train; each
    array is sorted.

    Parameters
    ----------
    n : int
        Number of rows.
    seed : int
    val_size, test_size : float, default 0.2
        Fractions in (0, 1) with ``val_size + test_size < 1`` (default 60/20/20).

    Returns
    -------
    train, val, test : np.ndarray
        int64 row indices.
    """
    if not (0 < val_size < 1 and 0 < test_size < 1 and val_size + test_size < 1):
        raise ValueError(
            f"need 0 < val_size, test_size and val_size + test_size < 1, got {val_size}, {test_size}"
        )
    n_test, n_val = round(n * test_size), round(n * val_size)
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ValueError(
            f"{n} rows are too few for a {1 - val_size - test_size:.2f}/{val_size}/{test_size} "
            "train/val/test split: each part needs at least one row"
        )
    perm = np.random.default_rng(check_seed(seed)).permutation(n)
    return np.sort(perm[n_test + n_val :]), np.sort(perm[n_test : n_test + n_val]), np.sort(perm[:n_test])


def _from_split(
    name: str,
    x: np.ndarray,
    y: np.ndarray,
    parts: tuple[np.ndarray, np.ndarray, np.ndarray],
    feature_names: list[str],
    target_name: str,
    meta: dict,
) -> RegressionData:
    train, val, test = parts
    return RegressionData(
        name=name,
        x_train=x[train],
        y_train=y[train],
        x_val=x[val],
        y_val=y[val],
        x_test=x[test],
        y_test=y[test],
        feature_names=feature_names,
        target_name=target_name,
        meta=meta | {"n_rows": [int(train.size), int(val.size), int(test.size)]},
    )


def load_diabetes(*, seed: int = 0, val_size: float = 0.2, test_size: float = 0.2) -> RegressionData:
    """scikit-learn's bundled diabetes data (442 x 10, target: disease progression after one year).

    Split by :func:`seeded_split` (default 60/20/20, i.e. 266 / 88 / 88 rows).

    Parameters
    ----------
    seed : int, default 0
        Split seed.
    val_size, test_size : float, default 0.2

    Returns
    -------
    RegressionData
    """
    from sklearn.datasets import load_diabetes as sk_load_diabetes

    bunch = sk_load_diabetes()
    x, y = np.asarray(bunch.data), np.asarray(bunch.target, dtype=np.float64)
    meta = {
        "source": "sklearn.datasets.load_diabetes",
        "seed": seed,
        "val_size": val_size,
        "test_size": test_size,
    }
    parts = seeded_split(len(y), seed=seed, val_size=val_size, test_size=test_size)
    return _from_split("diabetes", x, y, parts, list(bunch.feature_names), "progression", meta)


def _names(value: list[str] | tuple[str, ...] | str | None, what: str) -> list[str] | None:
    """A list of column names from a list or a comma-separated string (the CLI's ``--features a,b``)."""
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must name columns, e.g. ['a', 'b'] or 'a,b'; got {value!r}")
    return names


def _feature_columns(table: CsvTable, features: list[str] | None, exclude: list[str] | None,
                     reserved: dict[int, str]) -> list[int]:
    if features is not None and exclude is not None:
        raise ValueError("give features= (--features) or exclude= (--exclude), not both")
    if features is not None:
        cols = [table.column(f, "feature") for f in features]
        dup = sorted({f for f in features if features.count(f) > 1})
        if dup:
            raise ValueError(f"{table.path}: features list {dup} more than once")
    else:
        dropped = {table.column(f, "excluded") for f in exclude or []}
        cols = [i for i in range(len(table.header)) if i not in reserved and i not in dropped]
    clash = [f"{table.header[c]!r} is the {reserved[c]} column" for c in cols if c in reserved]
    if clash:
        raise ValueError(f"{table.path}: {'; '.join(clash)}, so it cannot be a feature")
    if not cols:
        raise ValueError(f"{table.path}: no feature columns left besides {sorted(reserved.values())}; "
                         f"columns are {table.header}")
    return cols


def _split_rows(table: CsvTable, labelled: np.ndarray, unlabelled: np.ndarray, split_col: int | None, *,
                seed: int, val_size: float, test_size: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """train / val / test row indices of the rows with a target (the rows without one are added later)."""
    if split_col is None:
        parts = seeded_split(labelled.size, seed=seed, val_size=val_size, test_size=test_size)
        return tuple(np.sort(labelled[p]) for p in parts)  # type: ignore[return-value]
    name = table.header[split_col]
    labels = np.char.lower(table.cells[:, split_col])
    known = np.isin(labels, list(_SPLIT_VALUES))
    blank_unlabelled = np.zeros(labels.shape, dtype=bool)
    blank_unlabelled[unlabelled] = labels[unlabelled] == ""
    unknown = ~known & ~blank_unlabelled
    if unknown.any():
        raise ValueError(f"{table.path}: column {name!r} has values {sorted(set(labels[unknown].tolist()))} "
                         f"(lines {table.lines[unknown][:5].tolist()}); use train/val/test")
    held_out = unlabelled[np.isin(labels[unlabelled], [k for k, v in _SPLIT_VALUES.items() if v != "train"])]
    if held_out.size:
        raise ValueError(f"{table.path}: lines {table.lines[held_out][:10].tolist()} are in the val/test "
                         "split but have no target; rows without a target are unlabelled training rows")
    parts = tuple(labelled[np.isin(labels[labelled], [k for k, v in _SPLIT_VALUES.items() if v == s])]
                  for s in ("train", "val", "test"))
    empty = [s for s, p in zip(("train", "val", "test"), parts, strict=True) if p.size == 0]
    if empty:
        raise ValueError(f"{table.path}: column {name!r} has no {empty} rows with a target")
    return parts  # type: ignore[return-value]


def load_csv(
    path: str | os.PathLike[str],
    *,
    target: str | None,
    seed: int = 0,
    features: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    split_column: str = "split",
    val_size: float = 0.2,
    test_size: float = 0.2,
    missing: str = "error",
    categorical: str = "error",
) -> RegressionData:
    """Load a CSV file with a header row as a regression dataset.

    Rows whose target cell is empty (or ``NA``, ``NaN``, ``null``, ``none``, ``n/a``, ``?``) are
    **unlabelled**: they become training rows with target NaN (``data.no_target``), never validation or
    test rows. The rows with a target are split into train / val / test: by a ``split`` column
    (case-insensitive name ``split_column``, values ``train``/``val``/``test``, also ``valid``/``validation``;
    empty for unlabelled rows) when there is one, else by :func:`seeded_split` of those rows alone
    (``round(n val_size)`` val and ``round(n test_size)`` test rows out of the ``n`` rows with a target).

    Features: every column except the target and the split column, or ``features``, or all but
    ``exclude``. Their preprocessing (:class:`~clss.data.encoding.TabularEncoding`, in ``data.encoding``)
    is fitted on the training rows, unlabelled ones included: numeric columns as they are; text columns
    one-hot encoded (``categorical="onehot"``) or refused (``"error"``); missing cells refused
    (``missing="error"``), their rows dropped before the split (``"drop"``), or filled with the training
    mean / median of the feature (``"mean"`` / ``"median"``).

    Parameters
    ----------
    path : str or PathLike
        Comma-, semicolon- or tab-separated (detected), UTF-8 (a byte-order mark is ignored).
    target : str
        Target column (exact header name); numeric.
    seed : int, default 0
        Split seed (unused with a split column).
    features, exclude : list of str or comma-separated str, optional
        Feature columns to use, or to leave out (not both).
    split_column : str, default "split"
    val_size, test_size : float, default 0.2
        Fractions of the rows with a target.
    missing : {"error", "drop", "mean", "median"}, default "error"
        Missing feature cells (targets are never imputed: an empty target marks an unlabelled row).
    categorical : {"error", "onehot"}, default "error"
        Text feature columns (a column is text when at most half its non-missing cells are numbers).

    Returns
    -------
    RegressionData
        ``meta["lines"]`` maps each split to the file line of each of its rows.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Anything wrong with the file (see :func:`~clss.data.csvfile.read_csv_table`) or its columns: no
        target given, unknown or non-numeric target, unknown feature names, text in numeric columns,
        infinite values, missing values under ``missing="error"``, bad split values, no row with a target,
        too few rows for the split.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES} (--missing), got {missing!r}")
    if categorical not in CATEGORICAL:
        raise ValueError(f"categorical must be one of {CATEGORICAL} (--categorical), got {categorical!r}")
    features, exclude = _names(features, "features"), _names(exclude, "exclude")
    table = read_csv_table(path)
    path = table.path
    if target is None:
        raise ValueError(f"{path}: name the target column with --target (Python: target=); columns are "
                         f"{table.header}")
    t_col = table.column(target, "target")
    split_hits = [i for i, h in enumerate(table.header) if h.lower() == split_column.lower() and i != t_col]
    if len(split_hits) > 1:
        raise ValueError(f"{path}: more than one {split_column!r} column")
    reserved = {t_col: "target", **{i: "split" for i in split_hits}}
    f_cols = _feature_columns(table, features, exclude, reserved)
    meta: dict = {"source": str(path), "target": target, "seed": seed, "missing": missing,
                  "categorical": categorical}
    if missing == "drop":
        drop = np.zeros(table.cells.shape[0], dtype=bool)
        for c in f_cols:
            drop |= table.missing(c)
        if drop.all():
            raise ValueError(f"{path}: every row has a missing feature value, --missing drop leaves none")
        if drop.any():
            meta["dropped_lines"] = table.lines[drop].tolist()
            table = table.rows(~drop)
    y = parse_numeric(table, t_col, "target")
    if y is None:
        example = table.cells[~table.missing(t_col), t_col][0]
        raise ValueError(f"{path}: the target column {target!r} is not numeric (e.g. {example!r}); choose a "
                         f"numeric column with --target; columns are {table.header}")
    has_target = ~np.isnan(y)
    labelled, unlabelled = np.flatnonzero(has_target), np.flatnonzero(~has_target)
    if labelled.size == 0:
        raise ValueError(f"{path}: no row has a value in the target column {target!r}; at least the "
                         "validation and test rows need one")
    train, val, test = _split_rows(table, labelled, unlabelled, split_hits[0] if split_hits else None,
                                   seed=seed, val_size=val_size, test_size=test_size)
    train = np.sort(np.concatenate([train, unlabelled]))
    meta["split"] = (f"column {table.header[split_hits[0]]!r}" if split_hits
                     else {"val_size": val_size, "test_size": test_size, "of": "rows with a target"})
    encoding = TabularEncoding.fit(table, train, f_cols, missing=missing, categorical=categorical,
                                   target=target)
    x = encoding.transform(table)
    meta["n_no_target"] = int(unlabelled.size)
    meta["lines"] = {s: table.lines[r].tolist() for s, r in (("train", train), ("val", val), ("test", test))}
    data = _from_split(f"csv:{path}", x, y, (train, val, test), encoding.feature_names, target, meta)
    data.encoding = encoding
    return data
