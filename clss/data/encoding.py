"""Turning a CSV table's feature columns into numbers: parsing, one-hot encoding and missing values.

:class:`TabularEncoding` is fitted on a data set's training rows by :func:`clss.data.load_csv` and applies
the same preprocessing to any later table (``clss predict`` on new data). It is plain data:
:meth:`TabularEncoding.to_dict` is JSON-able and :meth:`TabularEncoding.from_dict` rebuilds it.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from clss.data.csvfile import CsvTable, read_csv_table

__all__ = ["CATEGORICAL", "MISSING_POLICIES", "ColumnEncoding", "TabularEncoding", "parse_numeric"]

MISSING_POLICIES = ("error", "drop", "mean", "median")
CATEGORICAL = ("error", "onehot")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_DECIMAL_COMMA = re.compile(r"^[-+]?\d+,\d+$")
_VERSION = 1


def _flag(name: str, value: str) -> str:
    """Advice for both interfaces: the command-line flag and the Python keyword."""
    return f"--{name} {value} (Python: {name}={value!r})"


def _lines(table: CsvTable, mask: np.ndarray) -> str:
    lines = table.lines[mask]
    return f"{lines[:5].tolist()}{' ...' if lines.size > 5 else ''}"


def parse_numeric(table: CsvTable, col: int, role: str) -> np.ndarray | None:
    """Column ``col`` as float64 ``[n]`` (missing cells NaN), or None when it is not a numeric column.

    A column counts as numeric when more than half of its non-missing cells are numbers (decimal commas
    such as ``1,5`` included); then its other cells are an error (a typo, a decimal comma) rather than
    categories. Infinite values and values beyond
    the float32 range (the models' precision) are errors too.
    """
    if col not in table.parsed:
        table.parsed[col] = _parse_numeric(table, col, role)
    return table.parsed[col]


def _parse_numeric(table: CsvTable, col: int, role: str) -> np.ndarray | None:
    name = table.header[col]
    missing = table.missing(col)
    text = np.where(missing, "nan", table.cells[:, col])
    try:
        values = text.astype(np.float64)
    except ValueError:
        uniq, inverse = np.unique(text, return_inverse=True)
        ok = np.array([_is_float(u) for u in uniq])[inverse]
        comma = np.array([bool(_DECIMAL_COMMA.match(u)) for u in uniq])[inverse]
        if (ok | comma)[~missing].mean() <= 0.5:
            return None
        bad = ~ok
        examples = sorted(set(table.cells[bad, col].tolist()))[:3]
        hint = (" (a decimal comma? write 1.5, not 1,5)"
                if any(_DECIMAL_COMMA.match(e) for e in examples) else "")
        raise ValueError(
            f"{table.path}: {role} column {name!r} has {int(bad.sum())} values that are not numbers, e.g. "
            f"{examples} on lines {_lines(table, bad)}{hint}"
        ) from None
    inf = np.isinf(values)
    if inf.any():
        raise ValueError(
            f"{table.path}: {role} column {name!r} has infinite values on lines {_lines(table, inf)}"
        )
    big = np.abs(values) > _FLOAT32_MAX
    if big.any():
        raise ValueError(
            f"{table.path}: {role} column {name!r} has values beyond the float32 range (|x| > 3.4e38) on "
            f"lines {_lines(table, big)}; rescale the column"
        )
    return values


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class ColumnEncoding:
    """How one input column becomes features.

    Attributes
    ----------
    name : str
        Column name in the CSV header.
    kind : {"numeric", "categorical"}
    categories : tuple of str
        Categorical columns: the categories seen on the training rows, sorted; one feature each.
    """

    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(
                f"column {self.name!r}: kind must be 'numeric' or 'categorical', got {self.kind!r}"
            )

    @property
    def feature_names(self) -> list[str]:
        """Names of the features this column produces (``name`` or ``name=category`` each)."""
        return [self.name] if self.kind == "numeric" else [f"{self.name}={c}" for c in self.categories]


@dataclass(frozen=True)
class TabularEncoding:
    """The fitted feature preprocessing of a CSV data set.

    Numeric columns pass through; categorical columns become one 0/1 feature per training category (a
    category never seen in training gives all zeros, with a ``UserWarning``); missing cells follow
    ``missing``: ``"mean"`` / ``"median"`` fill each feature with its training-row statistic (``fill``),
    ``"error"`` and ``"drop"`` refuse them in :meth:`transform` (rows are never dropped there, so that the
    output stays aligned with the input).

    Attributes
    ----------
    columns : tuple of ColumnEncoding
        Input columns, in feature order.
    missing : {"error", "drop", "mean", "median"}
    fill : tuple of float
        One value per feature (``"mean"`` / ``"median"``), else empty.
    target : str or None
        The target column of the training file (not read by :meth:`transform`).
    """

    columns: tuple[ColumnEncoding, ...]
    missing: str = "error"
    fill: tuple[float, ...] = ()
    target: str | None = None

    def __post_init__(self) -> None:
        if self.missing not in MISSING_POLICIES:
            raise ValueError(f"missing must be one of {MISSING_POLICIES}, got {self.missing!r}")
        if self.fill and len(self.fill) != len(self.feature_names):
            raise ValueError(f"fill has {len(self.fill)} values for {len(self.feature_names)} features")

    @property
    def feature_names(self) -> list[str]:
        """Output feature names, ``d`` of them."""
        return [n for c in self.columns for n in c.feature_names]

    @classmethod
    def fit(cls, table: CsvTable, rows: np.ndarray, columns: list[int], *, missing: str = "error",
            categorical: str = "error", target: str | None = None) -> TabularEncoding:
        """Fit on ``rows`` (the training rows) of ``table``'s columns ``columns``.

        Raises
        ------
        ValueError
            Bad ``missing`` / ``categorical`` values, non-numeric columns with ``categorical="error"``,
            numeric columns with stray text, infinite or float32-overflowing values.
        """
        if categorical not in CATEGORICAL:
            raise ValueError(f"categorical must be one of {CATEGORICAL}, got {categorical!r}")
        specs, strings = [], []
        for col in columns:
            if parse_numeric(table, col, "feature") is not None:
                specs.append(ColumnEncoding(table.header[col], "numeric"))
                continue
            values = table.cells[rows, col][~table.missing(col)[rows]]
            strings.append(f"{table.header[col]!r} (e.g. {str(values[0]) if values.size else ''!r})")
            categories = tuple(sorted(set(values.tolist())))
            specs.append(ColumnEncoding(table.header[col], "categorical", categories))
        if strings and categorical == "error":
            raise ValueError(
                f"{table.path}: non-numeric feature columns {', '.join(strings)}; one-hot encode them with "
                f"{_flag('categorical', 'onehot')} or leave them out with --exclude NAME (Python: exclude=)"
            )
        encoding = cls(tuple(specs), missing, (), target)
        if missing in ("mean", "median"):
            x = encoding._encode(table, keep_missing=True)[rows]
            with warnings.catch_warnings():  # an all-missing column: reported below, not as a warning
                warnings.simplefilter("ignore", RuntimeWarning)
                fill = np.nanmean(x, axis=0) if missing == "mean" else np.nanmedian(x, axis=0)
            empty = [n for n, v in zip(encoding.feature_names, fill, strict=True) if math.isnan(v)]
            if empty:
                raise ValueError(f"{table.path}: feature columns {empty} have no value on any training row; "
                                 "leave them out with --exclude NAME (Python: exclude=)")
            encoding = cls(tuple(specs), missing, tuple(float(v) for v in fill), target)
        return encoding

    def missing_rows(self, table: CsvTable) -> np.ndarray:
        """bool ``[n_rows]``: rows with a missing cell in any of the encoded columns."""
        out = np.zeros(table.cells.shape[0], dtype=bool)
        for c in self.columns:
            out |= table.missing(table.column(c.name, "feature"))
        return out

    def _encode(self, table: CsvTable, keep_missing: bool) -> np.ndarray:
        blocks = []
        for spec in self.columns:
            col = table.column(spec.name, "feature")
            missing = table.missing(col)
            if spec.kind == "numeric":
                values = parse_numeric(table, col, "feature")
                if values is None:
                    raise ValueError(f"{table.path}: feature column {spec.name!r} was numeric in training "
                                     "but holds text here")
                blocks.append(values[:, None])
                continue
            cells = table.cells[:, col]
            onehot = (cells[:, None] == np.array(spec.categories, dtype=str)[None, :]).astype(np.float64)
            unseen = ~missing & (onehot.sum(axis=1) == 0)
            if unseen.any():
                warnings.warn(
                    f"{table.path}: column {spec.name!r} has categories not seen in training "
                    f"{sorted(set(cells[unseen].tolist()))[:5]} on {int(unseen.sum())} rows (lines "
                    f"{_lines(table, unseen)}); they are encoded as all zeros",
                    UserWarning, stacklevel=3)
            onehot[missing] = np.nan
            blocks.append(onehot)
        x = np.hstack(blocks) if blocks else np.empty((table.cells.shape[0], 0))
        if keep_missing:
            return x
        bad = np.isnan(x)
        if bad.any():
            if not self.fill:
                raise self._missing_error(table)
            x = np.where(bad, np.asarray(self.fill)[None, :], x)
        return x

    def _missing_error(self, table: CsvTable) -> ValueError:
        parts = []
        for spec in self.columns:
            miss = table.missing(table.column(spec.name, "feature"))
            if miss.any():
                parts.append(f"{spec.name!r} ({int(miss.sum())} rows, lines {_lines(table, miss)})")
        hint = ("; fill them with " + _flag("missing", "mean") + " or median, drop those rows with "
                + _flag("missing", "drop") + ", or leave the columns out with --exclude NAME"
                if self.missing == "error" else
                "; this encoding drops such rows only from its training file: fill or remove them first")
        return ValueError(f"{table.path}: missing feature values in {', '.join(parts)}{hint}")

    def transform(self, table: CsvTable) -> np.ndarray:
        """Features float64 ``[n_rows, d]`` of every row of ``table`` (its other columns are ignored).

        Raises
        ------
        ValueError
            A column is absent, a numeric column holds text, or a cell is missing under ``"error"`` /
            ``"drop"``.
        """
        return self._encode(table, keep_missing=False)

    def transform_csv(self, path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray | None]:
        """Read a CSV file and return its features ``[n, d]`` and its target ``[n]`` (NaN where empty;
        None when the file has no target column)."""
        table = read_csv_table(path)
        x = self.transform(table)
        if self.target is None or self.target not in table.header:
            return x, None
        return x, parse_numeric(table, table.column(self.target), "target")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {
            "version": _VERSION,
            "columns": [{"name": c.name, "kind": c.kind, "categories": list(c.categories)}
                        for c in self.columns],
            "missing": self.missing,
            "fill": list(self.fill),
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> TabularEncoding:
        """Rebuild from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            A state of another version or without the expected keys.
        """
        if not isinstance(state, dict) or state.get("version") != _VERSION:
            raise ValueError(f"not a TabularEncoding state of version {_VERSION}: {str(state)[:80]}")
        try:
            columns = tuple(ColumnEncoding(str(c["name"]), c["kind"], tuple(map(str, c["categories"])))
                            for c in state["columns"])
            return cls(columns, state["missing"], tuple(float(v) for v in state["fill"]), state["target"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed TabularEncoding state: {exc!r}") from None
