"""Tabular datasets: scikit-learn's bundled diabetes data and any numeric CSV file."""

from __future__ import annotations

import csv
import difflib
import os
from pathlib import Path

import numpy as np

from clss.data.base import RegressionData

__all__ = ["load_csv", "load_diabetes", "seeded_split"]

_MISSING = ("", "na", "nan", "null", "none", "n/a", "?")
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
            f"{n} rows are too few for a {1 - val_size - test_size:.2f}/{val_size}/{test_size} split"
        )
    perm = np.random.default_rng(seed).permutation(n)
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


def _find_column(header: list[str], name: str, role: str, path: Path) -> int:
    hits = [i for i, h in enumerate(header) if h == name]
    if len(hits) > 1:
        raise ValueError(
            f"{path}: {role} column {name!r} is ambiguous: it appears {len(hits)} times in the header"
        )
    if not hits:
        close = difflib.get_close_matches(name, header, n=3) or [
            h for h in header if h.lower() == name.lower()
        ]
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"{path}: no {role} column {name!r}; columns are {header}{hint}")
    return hits[0]


def load_csv(
    path: str | os.PathLike[str],
    *,
    target: str | None,
    seed: int = 0,
    features: list[str] | None = None,
    split_column: str = "split",
    val_size: float = 0.2,
    test_size: float = 0.2,
    dropna: bool = False,
) -> RegressionData:
    """Load a CSV file with a header row as a regression dataset.

    Every column except ``target`` and the split column is a feature unless ``features`` names them; all
    must be numeric. If a column named ``split_column`` exists (case-insensitive) its values
    (``train``/``val``/``test``; ``valid``/``validation`` accepted) define the splits; otherwise
    :func:`seeded_split` does (default 60/20/20). Empty cells and ``NA``/``NaN``/``null``/``?`` are missing.

    Parameters
    ----------
    path : str or PathLike
    target : str
        Target column (exact header name).
    seed : int, default 0
        Split seed (unused with a split column).
    features : list of str, optional
        Feature columns to use; default all remaining columns.
    split_column : str, default "split"
    val_size, test_size : float, default 0.2
    dropna : bool, default False
        Drop rows with missing values instead of raising.

    Returns
    -------
    RegressionData

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        No target given; target or a feature column missing or duplicated; non-numeric columns (named);
        rows with missing values (their line numbers) unless ``dropna``; ragged rows; bad split values.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ValueError(f"{path}: needs a header row and at least one data row")
    header = [h.strip() for h in rows[0]]
    if target is None:
        raise ValueError(f"{path}: name the target column with target= (--target); columns are {header}")
    ragged = [i + 2 for i, r in enumerate(rows[1:]) if len(r) != len(header)]
    if ragged:
        raise ValueError(f"{path}: lines {ragged[:10]} do not have {len(header)} fields like the header")
    cells = np.char.strip(np.array(rows[1:], dtype=str))
    t_col = _find_column(header, target, "target", path)
    split_hits = [i for i, h in enumerate(header) if h.lower() == split_column.lower() and i != t_col]
    if len(split_hits) > 1:
        raise ValueError(f"{path}: more than one {split_column!r} column")
    if features is None:
        f_cols = [i for i in range(len(header)) if i != t_col and i not in split_hits]
    else:
        f_cols = [_find_column(header, f, "feature", path) for f in features]
        if t_col in f_cols:
            raise ValueError(f"{path}: the target {target!r} is also listed as a feature")
    if not f_cols:
        raise ValueError(f"{path}: no feature columns besides the target {target!r}")

    values = np.empty((cells.shape[0], len(f_cols) + 1))
    bad: list[str] = []
    for j, col in enumerate([*f_cols, t_col]):
        column = np.where(np.isin(np.char.lower(cells[:, col]), _MISSING), "nan", cells[:, col])
        try:
            values[:, j] = column.astype(np.float64)
        except ValueError:
            example = str(next(v for v in column if not _is_float(v)))
            bad.append(f"{header[col]!r} (e.g. {example!r})")
    if bad:
        raise ValueError(
            f"{path}: non-numeric columns {', '.join(bad)}; encode them or choose numeric ones with features="
        )
    keep = np.isfinite(values).all(axis=1)
    meta = {"source": str(path), "target": target, "seed": seed}
    if not keep.all():
        lines = (np.flatnonzero(~keep) + 2).tolist()
        if not dropna:
            raise ValueError(
                f"{path}: {len(lines)} rows have missing or non-finite values (lines {lines[:10]}"
                f"{' ...' if len(lines) > 10 else ''}); clean them or pass dropna=True"
            )
        meta["dropped_lines"] = lines
    x, y, cells = values[keep, :-1], values[keep, -1], cells[keep]
    if split_hits:
        labels = np.char.lower(cells[:, split_hits[0]])
        unknown = sorted(set(labels.tolist()) - set(_SPLIT_VALUES))
        if unknown:
            raise ValueError(
                f"{path}: column {header[split_hits[0]]!r} has values {unknown}; use train/val/test"
            )
        parts = tuple(
            np.flatnonzero(np.isin(labels, [k for k, v in _SPLIT_VALUES.items() if v == s]))
            for s in ("train", "val", "test")
        )
        empty = [s for s, p in zip(("train", "val", "test"), parts, strict=True) if p.size == 0]
        if empty:
            raise ValueError(f"{path}: column {header[split_hits[0]]!r} has no {empty} rows")
        meta["split"] = f"column {header[split_hits[0]]!r}"
    else:
        parts = seeded_split(len(y), seed=seed, val_size=val_size, test_size=test_size)
        meta["split"] = {"val_size": val_size, "test_size": test_size}
    return _from_split(f"csv:{path}", x, y, parts, [header[c] for c in f_cols], target, meta)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
