"""Reading the first sheet of an Excel ``.xlsx`` workbook into a :class:`~clss.data.csvfile.CsvTable`.

Some published split lists are workbooks (the CLAP 2015 list of the order-learning code). An ``.xlsx``
file is a zip of XML parts; this reads the cells' values (shared strings, inline strings, numbers as
written) without a spreadsheet dependency. Formulas are read as their cached values.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

from clss.data.csvfile import MISSING, CsvTable

__all__ = ["read_xlsx_table"]

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
       "r": "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
       "p": "http://schemas.openxmlformats.org/package/2006/relationships"}
_REF = re.compile(r"^([A-Z]+)(\d+)$")


def _column_index(letters: str) -> int:
    index = 0
    for ch in letters:
        index = index * 26 + ord(ch) - ord("A") + 1
    return index - 1


def _first_sheet(book: zipfile.ZipFile) -> str:
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    sheet = workbook.find("m:sheets/m:sheet", _NS)
    if sheet is None:
        raise ValueError("the workbook has no sheet")
    rel_id = sheet.get(f"{{{_NS['r']}}}id")
    rels = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    for rel in rels.findall("p:Relationship", _NS):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "").lstrip("/")
            return target if target.startswith("xl/") else f"xl/{target}"
    raise ValueError(f"the workbook's first sheet ({rel_id}) has no part")


def _cell_text(cell: ElementTree.Element, shared: list[str]) -> str:
    kind = cell.get("t", "n")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iterfind(".//m:t", _NS))
    value = cell.find("m:v", _NS)
    text = "" if value is None or value.text is None else value.text
    if kind == "s" and text:
        return shared[int(text)]
    if kind == "b":
        return "TRUE" if text == "1" else "FALSE"
    return text


def read_xlsx_table(path: str | os.PathLike[str]) -> CsvTable:
    """The first sheet of ``path`` as a table: its first non-empty row is the header.

    Returns
    -------
    CsvTable
        Stripped text cells (``delimiter`` is ``"xlsx"``; ``lines`` are the sheet's row numbers).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not an ``.xlsx`` workbook, an empty sheet, a header without data rows, or empty or duplicated column
        names.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"workbook not found: {path}")
    try:
        with zipfile.ZipFile(path) as book:
            names = set(book.namelist())
            shared = []
            if "xl/sharedStrings.xml" in names:
                root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))
                shared = ["".join(t.text or "" for t in si.iterfind(".//m:t", _NS))
                          for si in root.findall("m:si", _NS)]
            sheet = ElementTree.fromstring(book.read(_first_sheet(book)))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, IsADirectoryError) as exc:
        raise ValueError(f"{path} is not a readable .xlsx workbook ({exc})") from None
    rows: dict[int, dict[int, str]] = {}
    for row in sheet.iterfind("m:sheetData/m:row", _NS):
        for cell in row.findall("m:c", _NS):
            ref = _REF.match(cell.get("r", ""))
            if ref is None:
                raise ValueError(f"{path}: a cell without a reference in row {row.get('r')}")
            text = _cell_text(cell, shared).strip()
            if text:
                rows.setdefault(int(ref[2]), {})[_column_index(ref[1])] = text
    if not rows:
        raise ValueError(f"{path}: the first sheet is empty; expected a header row and data rows")
    numbers = sorted(rows)
    width = max(max(r) for r in rows.values()) + 1
    grid = [[rows[n].get(c, "") for c in range(width)] for n in numbers]
    header = grid[0]
    unnamed = [i + 1 for i, h in enumerate(header) if not h]
    if unnamed:
        raise ValueError(f"{path}: header columns {unnamed} have no name; name every column")
    if len(set(header)) != len(header):
        raise ValueError(f"{path}: duplicated column names in the header {header}")
    if len(grid) == 1:
        raise ValueError(f"{path} has a header but no data rows")
    cells = np.array(grid[1:], dtype=str).reshape(len(grid) - 1, width)
    missing = np.isin(np.char.lower(cells), MISSING)
    return CsvTable(path=path, header=header, cells=cells, lines=np.array(numbers[1:], dtype=np.int64),
                    delimiter="xlsx", missing_cells=missing)
