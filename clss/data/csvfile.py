"""Reading a CSV file into a table of stripped text cells, with every problem of the file named."""

from __future__ import annotations

import csv
import difflib
import io
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

__all__ = ["MISSING", "CsvTable", "find_column", "read_csv_table"]

# Cell spellings read as a missing value (compared lower-cased, after stripping).
MISSING = ("", "na", "nan", "null", "none", "n/a", "?")
_DELIMITERS = (",", ";", "\t")
_SNIFF_LINES = 50


@dataclass(frozen=True)
class CsvTable:
    """A CSV file's header and data cells.

    Attributes
    ----------
    path : Path
    header : list of str
        Column names, stripped (unique and non-empty).
    cells : np.ndarray
        str ``[n_rows, n_columns]``, each cell stripped; blank lines are skipped.
    lines : np.ndarray
        int64 ``[n_rows]``: the file line (1-based; the header is line 1) of each row, for messages.
    delimiter : str
    missing_cells : np.ndarray
        bool ``[n_rows, n_columns]``: cells spelling a missing value (see :data:`MISSING`).
    parsed : dict
        Cache of :func:`clss.data.encoding.parse_numeric` results by column.
    """

    path: Path
    header: list[str]
    cells: np.ndarray
    lines: np.ndarray
    delimiter: str
    missing_cells: np.ndarray
    parsed: dict[int, np.ndarray | None] = field(default_factory=dict, compare=False, repr=False)

    def rows(self, keep: np.ndarray) -> CsvTable:
        """The table restricted to the rows selected by ``keep`` (a mask or indices)."""
        return replace(self, cells=self.cells[keep], lines=self.lines[keep],
                       missing_cells=self.missing_cells[keep], parsed={})

    def column(self, name: str, role: str = "") -> int:
        """Index of column ``name`` (see :func:`find_column`)."""
        return find_column(self.header, name, role, self.path)

    def missing(self, col: int) -> np.ndarray:
        """bool ``[n_rows]``: cells of column ``col`` that spell a missing value."""
        return self.missing_cells[:, col]


def find_column(header: list[str], name: str, role: str, path: Path | str) -> int:
    """Index of ``name`` in ``header``; a ValueError with close matches when it is absent."""
    if name in header:
        return header.index(name)
    close = difflib.get_close_matches(name, header, n=3) or [h for h in header if h.lower() == name.lower()]
    hint = f"; did you mean {close}?" if close else ""
    label = f"{role} column" if role else "column"
    raise ValueError(f"{path}: no {label} {name!r}; columns are {header}{hint}")


def _decode(path: Path) -> str:
    if path.is_dir():
        raise ValueError(f"{path} is a directory, not a CSV file")
    if not path.exists():
        raise FileNotFoundError(f"CSV file not found: {path}")
    try:
        raw = path.read_bytes()
    except PermissionError:
        raise ValueError(f"cannot read {path}: permission denied") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    if b"\x00" in raw[:4096]:
        raise ValueError(f"{path} is not a text CSV file (it contains NUL bytes; UTF-16 or binary?)")
    try:
        return raw.decode("utf-8-sig")  # -sig: a byte-order mark (Excel's "CSV UTF-8") is dropped
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start}); save it as UTF-8"
        ) from None


def _sniff_delimiter(lines: list[str], delimiters: tuple[str, ...] = _DELIMITERS) -> str:
    """The first of ``delimiters`` that splits the first lines into equally many (> 1) fields, else the
    first."""
    sample = lines[:_SNIFF_LINES]
    for delim in delimiters:
        lines = [ln.strip() for ln in sample] if delim == " " else sample
        widths = {len(r) for r in csv.reader(lines, delimiter=delim, skipinitialspace=delim == " ")}
        if len(widths) == 1 and widths.pop() > 1:
            return delim
    return delimiters[0]


def read_csv_table(path: str | os.PathLike[str], *, delimiters: tuple[str, ...] = _DELIMITERS,
                   index_column: bool = False) -> CsvTable:
    """Read a CSV file with a header row.

    The delimiter is detected (by default comma, semicolon or tab: the first that splits the first 50 lines
    into equally many fields); a UTF-8 byte-order mark is ignored; blank lines are skipped; cells are
    stripped.

    Parameters
    ----------
    path : str or PathLike
    delimiters : tuple of str, default (",", ";", "\\t")
        The candidates, in order; ``" "`` reads runs of spaces as one separator.
    index_column : bool, default False
        Accept an unnamed first column (the row index pandas writes) and name it ``"index"``.

    Returns
    -------
    CsvTable

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        A directory, an unreadable, binary or non-UTF-8 file, an empty file, a header without data rows,
        empty or duplicated column names, lines with another number of fields than the header.
    """
    path = Path(path).expanduser()
    text = _decode(path)
    sample = [ln for ln in text.splitlines()[: 4 * _SNIFF_LINES] if ln.strip()]
    if not sample:
        raise ValueError(f"{path} is empty; expected a header row and data rows")
    delim = _sniff_delimiter(sample, delimiters)
    if delim == " ":  # a trailing space is not an empty last field
        text = "\n".join(line.strip() for line in text.splitlines())
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, skipinitialspace=delim == " ")
    rows, numbers = [], []
    try:
        for row in reader:
            if "".join(row).strip():
                rows.append(row)
                numbers.append(reader.line_num)  # the record's last line (quoted fields may span lines)
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file (line {reader.line_num}: {exc})") from None
    header = [h.strip() for h in rows[0]]
    if index_column and header and not header[0]:
        header[0] = "index"
    unnamed = [i + 1 for i, h in enumerate(header) if not h]
    if unnamed:
        raise ValueError(f"{path}: header columns {unnamed} have no name; name every column")
    dup = sorted(h for h, c in Counter(header).items() if c > 1)
    if dup:
        where = {h: [i + 1 for i, x in enumerate(header) if x == h] for h in dup}
        raise ValueError(f"{path}: duplicated column names {where} (name: column positions); rename them")
    if len(rows) == 1:
        raise ValueError(f"{path} has a header but no data rows")
    body, line_no = rows[1:], np.array(numbers[1:], dtype=np.int64)
    ragged = [int(n) for r, n in zip(body, line_no, strict=True) if len(r) != len(header)]
    if ragged:
        sep = {",": "comma", ";": "semicolon", "\t": "tab", " ": "space"}[delim]
        raise ValueError(
            f"{path}: lines {ragged[:10]}{' ...' if len(ragged) > 10 else ''} do not have {len(header)} "
            f"{sep}-separated fields like the header"
        )
    cells = np.char.strip(np.array(body, dtype=str).reshape(len(body), len(header)))
    # Every missing spelling is short: lower-case only the short cells (lower() is slow on big tables).
    missing = np.char.str_len(cells) <= max(map(len, MISSING))
    missing[missing] = np.isin(np.char.lower(cells[missing]), MISSING)
    return CsvTable(path=path, header=header, cells=cells, lines=line_no, delimiter=delim,
                    missing_cells=missing)
