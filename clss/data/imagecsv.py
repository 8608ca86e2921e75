"""``image-csv:PATH``: a folder of images described by a CSV file of ``path,target`` rows.

Columns (header names, case-sensitive): ``path`` (the image file, relative to the data root or absolute
inside it), ``target`` (numeric; an empty cell marks an unlabelled training row, as in ``csv:PATH``),
optional ``split`` (``train``/``val``/``test``) and ``labeled`` (``1``/``0`` per training row: the
labelled set is then fixed by the file). Every problem is reported with the CSV line of the row, and every
image file is checked before anything is decoded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from clss.data.augment import build_pipelines, check_invariances
from clss.data.csvfile import CsvTable, read_csv_table
from clss.data.dataset import DataSplits
from clss.data.encoding import parse_numeric
from clss.data.images import ImageDataset, ImagePreprocessing, ImageReadError
from clss.data.tabular import _split_rows

__all__ = ["DEFAULT_SIZE", "default_preprocessing", "load_image_csv"]

#: The default input size (the ResNets' ImageNet resolution); smaller images keep their own size.
DEFAULT_SIZE = 224
# Lines listed in one message.
_LIST_LINES = 10


def _lines(table: CsvTable, rows: np.ndarray) -> str:
    shown = table.lines[rows][:_LIST_LINES].tolist()
    return f"{shown}{' ...' if rows.size > _LIST_LINES else ''}"


def default_preprocessing(first_image: str | os.PathLike[str]) -> ImagePreprocessing:
    """The default preprocessing: RGB, ImageNet normalisation, every image resized to 224x224, or, when the
    first image's larger side is under 224 pixels, to that image's size ``(H, W)`` (small images are not
    enlarged)."""
    try:
        with Image.open(first_image) as img:
            w, h = img.size
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(f"cannot read image {first_image}: {exc}") from None
    size = (h, w) if max(h, w) < DEFAULT_SIZE else (DEFAULT_SIZE, DEFAULT_SIZE)
    return ImagePreprocessing(channels=3, order="rgb", resize=size, normalize="imagenet")


def _check_paths(table: CsvTable, col: int, root: Path) -> np.ndarray:
    """The path cells (str ``[n]``), after refusing by line the rows with an empty path or one that leads
    outside ``root`` (``..``, an absolute path elsewhere, a symbolic link out)."""
    cells = table.cells[:, col]
    empty = np.flatnonzero(cells == "")
    if empty.size:
        raise ValueError(f"{table.path}: lines {_lines(table, empty)} have an empty path")
    real_root = os.path.realpath(root)
    resolved = [os.path.realpath(os.path.join(root, c)) for c in cells]
    outside = np.flatnonzero([os.path.commonpath([real_root, r]) != real_root for r in resolved])
    if outside.size:
        raise ValueError(f"{table.path}: lines {_lines(table, outside)} name files outside the data root "
                         f"{root} (e.g. {cells[outside[0]]!r}); paths must lie under --data-root "
                         "(Python: data_root=)")
    return cells


def _labeled_rows(table: CsvTable, col: int, train: np.ndarray,
                  y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``labeled`` / ``unlabeled`` positions within ``train`` from a 0/1 column."""
    name = table.header[col]
    cells = table.cells[train, col]
    bad = ~np.isin(cells, ["0", "1"])
    if bad.any():
        raise ValueError(f"{table.path}: column {name!r} must be 1 or 0 on every training row; lines "
                         f"{_lines(table, train[bad])} have {sorted(set(cells[bad].tolist()))[:3]}")
    flag = cells == "1"
    no_target = flag & np.isnan(y[train])
    if no_target.any():
        raise ValueError(f"{table.path}: lines {_lines(table, train[no_target])} are marked {name}=1 but "
                         "have no target")
    if not flag.any():
        raise ValueError(f"{table.path}: no training row has {name}=1; mark the labelled rows with 1")
    return np.flatnonzero(flag), np.flatnonzero(~flag)


def load_image_csv(
    path: str | os.PathLike[str],
    *,
    seed: int = 0,
    data_root: str | os.PathLike[str] | None = None,
    target: str = "target",
    preprocessing: ImagePreprocessing | dict[str, Any] | None = None,
    invariant_to: tuple[str, ...] | list[str] = ("translate",),
    val_size: float = 0.2,
    test_size: float = 0.2,
) -> DataSplits:
    """Load a folder of images listed in a CSV file as a regression dataset.

    Splits: by a ``split`` column (``train``/``val``/``test``, also ``valid``/``validation``; empty for
    rows without a target) when there is one, else a seeded 60/20/20 split
    (:func:`~clss.data.tabular.seeded_split` with ``seed``) of the rows with a target. Rows without a
    target (empty, ``NA``, ``NaN``, ...) are unlabelled training rows; in the val/test split they are an
    error. A ``labeled`` column (``1``/``0`` on every training row) fixes the labelled rows
    (``DataSplits.labeled``); without it the trainer's ``--labeled`` chooses them.

    Parameters
    ----------
    path : str or PathLike
        The CSV file (comma-, semicolon- or tab-separated, with a header row).
    seed : int, default 0
        Split seed (unused with a ``split`` column).
    data_root : str or PathLike, optional
        Folder the image paths are resolved under (default: the CSV file's folder); no path may lead
        outside it.
    target : str, default "target"
        The target column.
    preprocessing : ImagePreprocessing or dict, optional
        Default :func:`default_preprocessing` (RGB, 224x224 unless the images are smaller, ImageNet
        normalisation); a dict changes some of its settings (``{"resize": [64, 64]}``; CLI:
        ``--set preprocessing.resize=[64,64]``).
    invariant_to : sequence of str, default ("translate",)
        Geometric ops that keep the target (see :mod:`clss.data.augment`); add ``"hflip"`` when a
        mirror image has the same target (ages, sizes; not angles or left/right quantities).
    val_size, test_size : float, default 0.2

    Returns
    -------
    DataSplits
        ``meta["lines"]`` maps each split to the CSV line of each row; ``source(i)`` is the image file.

    Raises
    ------
    FileNotFoundError
        The CSV file, the data root or image files are missing (all missing files counted).
    ValueError
        A missing ``path`` or target column, a non-numeric target, empty paths, paths outside the data root,
        bad split or labeled values, val/test rows without a target, too few rows; all with line numbers.
    """
    table = read_csv_table(path)
    root = Path(data_root).expanduser() if data_root is not None else table.path.parent
    if not root.is_dir():
        raise FileNotFoundError(f"the data root {root} is not a folder (--data-root, Python: data_root=)")
    inv = check_invariances(invariant_to)
    p_col, t_col = table.column("path", "image path"), table.column(target, "target")
    split_col = table.header.index("split") if "split" in table.header else None
    lab_col = table.header.index("labeled") if "labeled" in table.header else None
    cells = _check_paths(table, p_col, root)
    y = parse_numeric(table, t_col, "target")
    if y is None:
        raise ValueError(f"{table.path}: the target column {target!r} is not numeric (e.g. "
                         f"{table.cells[~table.missing(t_col), t_col][0]!r})")
    has_target = ~np.isnan(y)
    labelled, unlabelled = np.flatnonzero(has_target), np.flatnonzero(~has_target)
    if labelled.size == 0:
        raise ValueError(f"{table.path}: no row has a target; at least the validation and test rows need one")
    train, val, test = _split_rows(table, labelled, unlabelled, split_col, seed=seed, val_size=val_size,
                                   test_size=test_size)
    train = np.sort(np.concatenate([train, unlabelled]))
    if preprocessing is None or isinstance(preprocessing, dict):  # a dict changes the default's settings
        default = default_preprocessing(os.path.join(root, cells[train[0]]))
        settings = {"channels": default.channels, "order": default.order, "resize": default.resize,
                    "normalize": default.normalize}
        preprocessing = ImagePreprocessing.from_dict({**settings, **(preprocessing or {})})
    prep = preprocessing

    def dataset(rows: np.ndarray, p: ImagePreprocessing) -> ImageDataset:
        return ImageDataset(root, cells[rows].tolist(), y[rows], p)

    train_ds = dataset(train, prep)
    val_ds, test_ds = dataset(val, train_ds.preprocessing), dataset(test, train_ds.preprocessing)
    labeled = unlabeled = None
    if lab_col is not None:
        labeled, unlabeled = _labeled_rows(table, lab_col, train, y)
    pipelines = build_pipelines(inv, train_ds.preprocessing, train_ds.input.shape)
    meta = {
        "source": str(table.path), "data_root": str(root), "target": target, "seed": seed,
        "split": "column 'split'" if split_col is not None else {"val_size": val_size, "test_size": test_size,
                                                                  "of": "rows with a target"},
        "labeled": "column 'labeled'" if lab_col is not None else "--labeled",
        "n_no_target": int(unlabelled.size),
        "lines": {s: table.lines[r].tolist() for s, r in (("train", train), ("val", val), ("test", test))},
        "preprocessing": train_ds.preprocessing.to_dict(), "invariant_to": list(inv),
        "pipelines": {k: list(p.ops) for k, p in pipelines.items()},
    }
    return DataSplits(f"image-csv:{table.path}", train_ds, val_ds, test_ds, target, meta, labeled, unlabeled,
                      pipelines)
