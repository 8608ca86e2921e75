"""Read similarity matrices and anchors from files, and write seriation results.

Formats: ``.npy``; ``.npz`` (a scipy.sparse archive from ``scipy.sparse.save_npz``, or a numpy archive
holding one array or the array named by ``key``); ``.csv``/``.tsv``/``.txt`` (dense, delimiter by
suffix; a non-numeric first row is taken as a header); ``.mtx`` (Matrix Market, sparse).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation.result import Seriation

SIMILARITY_SUFFIXES = (".npy", ".npz", ".csv", ".tsv", ".txt", ".mtx")


class MatrixFileError(ValueError):
    """A file exists but does not hold a usable matrix (or anchors)."""


def load_similarity(path: str | Path, *, key: str | None = None) -> NDArray[np.float64] | sp.csr_matrix:
    """Load a square similarity (or distance) matrix from ``path``; see the module docstring."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"similarity file not found: {p}")
    if p.is_dir():
        raise MatrixFileError(f"{p} is a directory, expected a matrix file")
    suffix = p.suffix.lower()
    if suffix not in SIMILARITY_SUFFIXES:
        raise MatrixFileError(f"unsupported file type {suffix!r} for {p}; expected one of "
                         f"{', '.join(SIMILARITY_SUFFIXES)}")
    try:
        if suffix == ".npy":
            return np.load(p, allow_pickle=False)
        if suffix == ".npz":
            return _load_npz(p, key)
        if suffix == ".mtx":
            from scipy.io import mmread

            return sp.csr_matrix(mmread(p))
        return _load_text(p, "," if suffix == ".csv" else "\t" if suffix == ".tsv" else None)
    except MatrixFileError:
        raise
    except (OSError, ValueError, EOFError) as exc:
        if "Object arrays" in str(exc):  # numpy's advice (allow_pickle) would run pickled code: never
            raise MatrixFileError(f"{p} holds Python objects (dtype object), not numbers; save a numeric "
                                  f"array (e.g. float64)") from None
        if "pickled data" in str(exc):
            raise MatrixFileError(f"{p} is not a .npy array file (it holds pickled data, which clss never "
                                  f"loads)") from None
        raise MatrixFileError(f"could not read a matrix from {p}: {exc}") from None


def _load_npz(p: Path, key: str | None) -> NDArray[np.float64] | sp.csr_matrix:
    with np.load(p, allow_pickle=False) as archive:
        names = list(archive.files)
        if {"format", "shape", "data"} <= set(names):
            return sp.csr_matrix(sp.load_npz(p))
        if key is not None:
            if key not in names:
                raise MatrixFileError(f"the archive {p} has no array {key!r}; it holds {names}")
            return archive[key]
        if len(names) != 1:
            raise MatrixFileError(f"the archive {p} holds {len(names)} arrays {names}; choose one "
                                  f"with key={names[0]!r} (or another of these names)")
        return archive[names[0]]


def _load_text(p: Path, delimiter: str | None) -> NDArray[np.float64]:
    with p.open(newline="") as fh:
        first = fh.readline()
    cells = first.strip().split(delimiter) if first.strip() else []
    skip = 0
    try:
        [float(c) for c in cells]
    except ValueError:
        skip = 1  # a header row
    data = np.loadtxt(p, delimiter=delimiter, skiprows=skip, ndmin=2)
    if data.size == 0:
        raise MatrixFileError(f"no numeric data in {p}")
    return data


def load_anchors(path: str | Path) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Read anchors: a CSV with columns ``index,value`` (header optional) or JSON
    ``{"anchors": [...], "values": [...]}``. Returns ``(indices, values)``.

    A cell that is not a number (or an index that is not a whole number) is a
    :class:`MatrixFileError` naming the file, the row (1-based line) and the column.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"anchors file not found: {p}")
    if p.is_dir():
        raise MatrixFileError(f"{p} is a directory, expected an anchors file (.csv or .json)")
    if p.suffix.lower() == ".json":
        try:
            obj = json.loads(p.read_text())
            idx, vals = obj["anchors"], obj["values"]
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise MatrixFileError(f"{p} must hold a JSON object with 'anchors' and 'values': "
                                  f"{exc}") from None
        if not (isinstance(idx, list) and isinstance(vals, list)):
            raise MatrixFileError(f"{p}: 'anchors' and 'values' must be lists")
        return (np.array([_number(x, f"{p}: anchors[{i}]", True) for i, x in enumerate(idx)],
                         dtype=np.int64),
                np.array([_number(x, f"{p}: values[{i}]", False) for i, x in enumerate(vals)],
                         dtype=np.float64))
    try:
        with p.open(newline="") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise MatrixFileError(f"could not read anchors from {p}: {exc}") from None
    if rows and not any(map(_numeric, rows[0][1][:2])):
        rows = rows[1:]  # a header row: no numeric cell (a row with one is data, checked below)
    if not rows or any(len(r) < 2 for _, r in rows):
        raise MatrixFileError(f"{p} must have two columns, index and value, one anchor per row")
    idx = [_number(r[0], f"{p}, row {line}, column 1 (index)", True) for line, r in rows]
    vals = [_number(r[1], f"{p}, row {line}, column 2 (value)", False) for line, r in rows]
    return np.array(idx, dtype=np.int64), np.array(vals, dtype=np.float64)


def _number(cell: Any, where: str, integer: bool) -> float:
    """One anchor cell as a float (a whole number when ``integer``), or an error naming ``where``.
    NaN values pass (the seriation reports them); NaN indices do not."""
    if isinstance(cell, bool) or not isinstance(cell, str | int | float):
        raise MatrixFileError(f"{where}: {cell!r} is not a number")
    try:
        value = float(cell)
    except ValueError:
        raise MatrixFileError(f"{where}: {cell!r} is not a number") from None
    if integer:
        if not (math.isfinite(value) and value.is_integer()):
            raise MatrixFileError(f"{where}: {cell!r} is not an integer item index")
        return int(value)
    return value


def _numeric(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def save_seriation(result: Seriation, path: str | Path) -> Path:
    """Write a result: ``.csv`` (one row per item in order: position, item, label, coordinate) or
    ``.json`` (:meth:`Seriation.to_dict`). Parent folders are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix == ".json":
        p.write_text(json.dumps(result.to_dict(), indent=2))
        return p
    if suffix != ".csv":
        raise ValueError(f"output must end in .csv or .json, got {p.name}")
    labels: list[Any] = result.ordered_labels
    with p.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["position", "item", "label", "coordinate"])
        for k, (item, label) in enumerate(zip(result.order.tolist(), labels, strict=True)):
            writer.writerow([k, item, label, repr(float(result.positions[item]))])
    return p
