"""The image files ``clss predict`` reads for a run trained on images, and their optional targets.

An input is one of:

- a folder: every image file under it, recursively, in sorted path order (the extensions Pillow opens,
  :func:`image_extensions`; other files are ignored);
- a CSV file (``.csv``/``.tsv``; comma, semicolon or tab separated, with a header), the layout
  ``image-csv:PATH`` trains on: a column of image paths (``path`` unless named) and optionally a numeric
  target column;
- a single image file;
- any other file: a text list of image paths, one per line (blank lines skipped).

Relative paths in a CSV or a list resolve against ``data_root`` (default: the folder of the CSV or list).
Nothing is decoded here; the files are checked where they are read (:meth:`Predictor.predict_images
<clss.engine.predict.Predictor.predict_images>`).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clss.data.csvfile import read_csv_table
from clss.data.encoding import parse_numeric

__all__ = ["CSV_SUFFIXES", "ImageInputs", "image_extensions", "is_image_file", "read_image_inputs"]

#: Suffixes read as a CSV table of paths; any other non-image file is a list of paths.
CSV_SUFFIXES = (".csv", ".tsv")


@functools.cache
def image_extensions() -> frozenset[str]:
    """Lower-case file suffixes (``".png"``, ``".jpg"``, ...) of the formats Pillow can open: the files the
    image data sets decode."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_image_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s suffix is one of :func:`image_extensions`."""
    return Path(path).suffix.lower() in image_extensions()


@dataclass(frozen=True)
class ImageInputs:
    """Image files to predict, in input order.

    Attributes
    ----------
    files : list of str
        ``n`` file paths (relative paths joined to the data root).
    y_true : np.ndarray or None
        float64 ``[n]`` targets from a CSV's target column (NaN where a cell is empty), else None.
    """

    files: list[str]
    y_true: np.ndarray | None = None


def _folder(root: Path) -> list[str]:
    exts = image_extensions()
    found = sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names
                   if Path(f).suffix.lower() in exts)
    if not found:
        raise ValueError(f"the folder {root} holds no image files (looked for {', '.join(sorted(exts)[:8])} "
                         f"... in it and its subfolders)")
    return found


def _path_list(src: Path, root: Path) -> list[str]:
    try:
        text = src.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{src} is neither an image, a CSV (.csv/.tsv) nor a text list of image paths (one "
                         f"per line); it is not UTF-8 text") from None
    paths = [line.strip() for line in text.splitlines() if line.strip()]
    if not paths:
        raise ValueError(f"the list {src} names no image paths (one path per line)")
    return [os.path.join(root, p) for p in paths]


def _csv(src: Path, root: Path, path_column: str, target_column: str | None,
         target_required: bool) -> ImageInputs:
    table = read_csv_table(src)
    if path_column not in table.header:
        raise ValueError(f"{src} has no image path column {path_column!r} (columns: {table.header[:10]}); "
                         f"name it with --path-column (Python: path_column=); a run trained on images reads "
                         f"image files, not table rows")
    col = table.header.index(path_column)
    cells = table.cells[:, col]
    empty = np.flatnonzero(cells == "")
    if empty.size:
        raise ValueError(f"{src}: lines {table.lines[empty][:10].tolist()} have an empty {path_column!r} "
                         f"cell")
    y = None
    if target_column is not None and (target_required or target_column in table.header):
        t_col = table.column(target_column, "target")
        y = parse_numeric(table, t_col, "target")
        if y is None:
            raise ValueError(f"{src}: the target column {target_column!r} is not numeric (e.g. "
                             f"{table.cells[~table.missing(t_col), t_col][0]!r})")
    return ImageInputs([os.path.join(root, c) for c in cells.tolist()], y)


def read_image_inputs(input: str | os.PathLike[str], *, path_column: str = "path",
                      target_column: str | None = None, target_required: bool = False,
                      data_root: str | os.PathLike[str] | None = None) -> ImageInputs:
    """The image files named by ``input`` (a folder, a CSV, an image, or a list; see the module docstring).

    Parameters
    ----------
    input : str or PathLike
    path_column : str, default "path"
        The CSV column of image paths (as in ``image-csv:PATH``).
    target_column : str, optional
        A CSV column of true targets (numeric; empty cells are NaN). Read when present, or always with
        ``target_required``.
    target_required : bool, default False
        Refuse a CSV without ``target_column``.
    data_root : str or PathLike, optional
        Folder that relative paths of a CSV or list resolve against (default: that file's folder).

    Returns
    -------
    ImageInputs

    Raises
    ------
    FileNotFoundError
        ``input`` or ``data_root`` does not exist.
    ValueError
        An empty folder or list, a ``.npy`` array, a CSV without the path column (or the required target
        column), empty path cells, a non-numeric target column, ``data_root`` with a folder or an image.
    """
    src = Path(input)
    if not src.exists():
        raise FileNotFoundError(f"input {src} does not exist")
    if data_root is not None and (src.is_dir() or is_image_file(src)):
        raise ValueError("data_root (--data-root) resolves the relative paths of a CSV or a list; it does "
                         "not apply to a folder or a single image")
    root = Path(data_root).expanduser() if data_root is not None else src.parent
    if not root.is_dir():
        raise FileNotFoundError(f"the data root {root} is not a folder (--data-root, Python: data_root=)")
    if src.is_dir():
        return ImageInputs(_folder(src))
    if is_image_file(src):
        return ImageInputs([str(src)])
    if src.suffix.lower() == ".npy":
        raise ValueError(f"{src} is a .npy array (table rows); a run trained on images takes a folder of "
                         f"images, an image, a CSV with a {path_column!r} column or a text list of paths")
    if src.suffix.lower() in CSV_SUFFIXES:
        return _csv(src, root, path_column, target_column, target_required)
    return ImageInputs(_path_list(src, root))
