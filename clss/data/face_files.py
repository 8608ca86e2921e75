"""The files of the face-age datasets: UTKFace file names and the split/index files of the papers.

Nothing here decodes an image. The readers return an :class:`IndexTable` (image paths relative to the
data root, labels, split and labelled flags) with every problem named by file and line, and
:func:`label_offset` finds the UTKFace age-offset trap (split files whose age column is the true age minus
21) by comparing the age column with the ages in the file names.

Index formats (the ``format`` of a manifest's index entry):

``filelist``
    The CLSS/UCVME ``FileList*.csv`` files: ``FileName``, a label column (``age`` or ``ground_truth``),
    ``SPLIT`` (TRAIN/VAL/TEST) and, in the semi-supervised files, ``SSL_SPLIT``
    (LABELED/UNLABELED/EXCLUDE); other columns (``index``, ``Unnamed: 0``) are ignored.
``dir-csv``
    AgeDB-DIR's ``agedb.csv``: ``age``, ``path`` (relative to the data root), ``split`` (train/val/test).
``rankup-meta``
    RankUp's ``meta/{train,test}.csv``: ``file_name``, ``label``; the whole file is one split.
``adience-fold``
    Adience's ``fold_{0..4}_data.txt`` (tab-separated): ``user_id``, ``original_image``, ``face_id``,
    ``age`` (an age group such as ``(25, 32)``) and more columns; the image is
    ``<image_dir>/<user_id>/landmark_aligned_face.<face_id>.<original_image>`` (the in-plane aligned
    release). The label is the index of the age group among :data:`ADIENCE_AGE_GROUPS`; rows whose age is
    not one of the eight benchmark groups (single ages, other ranges, ``None``) are left out and counted in
    :attr:`IndexTable.excluded`, as the benchmark protocol does. Every row is put in the ``train`` split: the
    loader assigns the folds.
``order-list``
    The split lists of the order-learning code (MWR, Order Learning, GOL) for MORPH II, CLAP 2015 and CACD:
    comma-, tab- or space-separated (an unnamed first column, the pandas row index, is ignored) or an
    ``.xlsx`` workbook (its first sheet); columns ``filename``, ``age`` and optionally ``database`` (the
    image's folder under ``image_dir``) and ``fold``. The split of a row is its ``fold`` column
    (train/val/test) when present, else its ``database`` column when that names splits (CLAP 2015's list),
    else the whole file's ``split``.
``coral-csv``
    The CORAL / Berg et al. UTKFace lists ``utk_{train,test}.csv``: ``file``, ``age`` (an unnamed first
    column is ignored); the whole file is one split. Their age column is the true age - 21 (see
    :func:`label_offset`).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clss.data.csvfile import CsvTable, read_csv_table
from clss.data.xlsxfile import read_xlsx_table

__all__ = [
    "ADIENCE_AGE_GROUPS",
    "INDEX_FORMATS",
    "SPLIT_NAMES",
    "IndexTable",
    "UTKFaceName",
    "label_offset",
    "name_ages",
    "parse_utkface_name",
    "read_index",
    "scan_utkface",
    "ssl_flags",
    "write_clss_split_file",
]

SPLIT_NAMES = ("train", "val", "test")
SSL_FLAGS = ("LABELED", "UNLABELED", "EXCLUDE")
INDEX_FORMATS = ("filelist", "dir-csv", "rankup-meta", "adience-fold", "order-list", "coral-csv")
#: Formats whose rows carry no split: the whole file's ``split`` is required (order-list: when no column
#: gives one).
WHOLE_FILE_SPLIT = ("rankup-meta", "coral-csv")
#: Adience's eight age groups in order (class 0..7), as the fold files spell them; ``(8, 13)`` is the
#: spelling of the benchmark's description for the third group and is read as ``(8, 12)``.
ADIENCE_AGE_GROUPS = ("(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)",
                      "(60, 100)")
_ADIENCE_ALIASES = {"(8, 13)": "(8, 12)"}
_SHOW = 5  # names quoted in a message

# age_gender_race_datetime.jpg.chip.jpg: age in years, gender 0/1, race 0-4, a 17-digit capture time.
_UTK_NAME = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg\.chip\.jpg$")
_UTK_AGE = re.compile(r"^(\d{1,3})_")


@dataclass(frozen=True)
class UTKFaceName:
    """The fields of a UTKFace file name ``age_gender_race_datetime.jpg.chip.jpg``."""

    age: int
    gender: int
    race: int
    datetime: str


def parse_utkface_name(name: str) -> UTKFaceName | None:
    """The fields of a UTKFace file name (its last path component), or None when it is malformed.

    >>> parse_utkface_name("35_0_0_20170117175619787.jpg.chip.jpg").age
    35
    >>> parse_utkface_name("61_1_20170109142408075.jpg.chip.jpg") is None  # no race field
    True
    """
    m = _UTK_NAME.match(name.replace("\\", "/").rpartition("/")[2])
    if m is None:
        return None
    return UTKFaceName(int(m[1]), int(m[2]), int(m[3]), m[4])


def name_ages(names: Iterable[str]) -> np.ndarray:
    """float64 ages from the leading ``age_`` field of UTKFace names; NaN where a name has none.

    Only the age field is needed: three published names are malformed after it (a missing dot, a space
    before the extension, a missing race field) and still carry their age.
    """
    matches = [_UTK_AGE.match(n.rpartition("/")[2]) for n in names]
    return np.array([np.nan if m is None else float(m[1]) for m in matches], dtype=np.float64)


def scan_utkface(folder: str | os.PathLike[str], *, warn: bool = True) -> tuple[list[str], list[str]]:
    """The UTKFace images of a folder: well-formed and malformed names.

    Parameters
    ----------
    folder : str or PathLike
        The ``UTKFace/`` folder of the aligned-and-cropped archive.
    warn : bool, default True
        Warn (count and the first names) when some names are malformed; those files are skipped.

    Returns
    -------
    (names, malformed) : (list of str, list of str)
        Sorted file names ending in ``.jpg.chip.jpg`` (or ``.jpg``) that parse, and those that do not.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"UTKFace image folder not found: {folder}")
    files = sorted(e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(".jpg"))
    good = [n for n in files if parse_utkface_name(n) is not None]
    bad = [n for n in files if parse_utkface_name(n) is None]
    if bad and warn:
        warnings.warn(f"{folder}: skipped {len(bad)} image(s) whose names do not follow "
                      f"age_gender_race_datetime.jpg.chip.jpg: {_first(bad)}", stacklevel=2)
    return good, bad


@dataclass(frozen=True)
class IndexTable:
    """The rows of one index or split file.

    Attributes
    ----------
    path : Path
        The file read.
    files : np.ndarray
        str ``[n]``: image paths relative to the data root (POSIX separators).
    labels : np.ndarray
        float64 ``[n]``: the label column as written in the file (see :func:`label_offset`).
    split : np.ndarray
        str ``[n]``: ``"train"``, ``"val"`` or ``"test"``.
    ssl : np.ndarray or None
        str ``[n]``: ``LABELED``/``UNLABELED``/``EXCLUDE`` in semi-supervised split files, else None.
    lines : np.ndarray
        int64 ``[n]``: file line of each row (the header is line 1), for messages.
    excluded : dict of str to int
        Rows left out, counted by their label text (``adience-fold``: ages outside the eight groups).
    """

    path: Path
    files: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    ssl: np.ndarray | None
    lines: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Rows per split, in the order train/val/test (splits without rows are omitted)."""
        return {s: int(c) for s in SPLIT_NAMES if (c := int((self.split == s).sum()))}

    def labeled(self) -> np.ndarray:
        """bool ``[n]``: training rows flagged LABELED (all False without an ``SSL_SPLIT`` column)."""
        if self.ssl is None:
            return np.zeros(len(self.files), dtype=bool)
        return (self.split == "train") & (self.ssl == "LABELED")


def _column(table: CsvTable, names: tuple[str, ...], role: str) -> int:
    for name in names:
        if name in table.header:
            return table.header.index(name)
    return table.column(names[0], role)  # raises with the columns found and close matches


def _values(table: CsvTable, col: int, allowed: tuple[str, ...], role: str) -> np.ndarray:
    cells = table.cells[:, col]
    bad = ~np.isin(cells, allowed)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{table.path}: line {table.lines[i]}: {role} {str(cells[i])!r} is not one of "
                         f"{list(allowed)}")
    return cells


def _labels(table: CsvTable, col: int) -> np.ndarray:
    text = np.where(table.missing(col), "nan", table.cells[:, col])
    try:
        values = text.astype(np.float64)
    except ValueError:
        ok = np.array([_is_number(t) for t in text])
        i = int(np.argmin(ok))
        raise ValueError(f"{table.path}: line {table.lines[i]}: label {table.header[col]!r} is "
                         f"{str(text[i])!r}, not a number") from None
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{table.path}: line {table.lines[i]}: label {table.header[col]!r} is missing or "
                         f"not finite ({str(table.cells[i, col])!r}); every row needs a target")
    return values


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _relative(table: CsvTable, paths: np.ndarray) -> np.ndarray:
    """Paths as POSIX paths relative to the data root; a path that leaves it is refused with its line."""
    out = np.char.replace(paths.astype(str), "\\", "/")
    wrapped = np.char.add(np.char.add("/", out), "/")
    bad = ((np.char.str_len(out) == 0) | np.char.startswith(out, "/") | (np.char.find(out, ":") == 1)
           | (np.char.find(wrapped, "/../") >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{table.path}: line {table.lines[i]}: image path {str(out[i])!r} is outside the "
                         "data root; paths must be relative and must not contain '..'")
    return out


def read_index(path: str | os.PathLike[str], fmt: str, *, image_dir: str = "", split: str | None = None
               ) -> IndexTable:
    """Read an index or split file.

    Parameters
    ----------
    path : str or PathLike
    fmt : {"filelist", "dir-csv", "rankup-meta", "adience-fold", "order-list", "coral-csv"}
        The file's layout (module docstring).
    image_dir : str, default ""
        Folder of the images under the data root, prefixed to the file names of every format but
        ``dir-csv`` (``"UTKFace"``, ``"AgeDB"``, ``"aligned"``); ``dir-csv`` paths are already relative to
        the root.
    split : {"train", "val", "test"}, optional
        The split the whole file belongs to: required for ``rankup-meta`` and ``coral-csv``, for
        ``order-list`` when no column gives the split, refused for the others.

    Returns
    -------
    IndexTable

    Raises
    ------
    ValueError
        An unknown format, a missing column, a bad SPLIT/SSL_SPLIT value, a missing or non-numeric
        label, or an image path outside the data root (each with its line number).
    FileNotFoundError
        The file does not exist.
    """
    if fmt not in INDEX_FORMATS:
        raise ValueError(f"index format must be one of {list(INDEX_FORMATS)}, got {fmt!r}")
    if (fmt in WHOLE_FILE_SPLIT and split is None) or (fmt not in (*WHOLE_FILE_SPLIT, "order-list")
                                                        and split is not None):
        raise ValueError(f"split= is required for {' and '.join(WHOLE_FILE_SPLIT)} files, optional for "
                         f"order-list files and refused for the others; one of {list(SPLIT_NAMES)}")
    if split is not None and split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {list(SPLIT_NAMES)}, got {split!r}")
    if fmt == "order-list":
        return _read_order_list(path, image_dir, split)
    table = read_csv_table(path, index_column=fmt == "coral-csv")
    if fmt == "adience-fold":
        return _read_adience_fold(table, image_dir)
    ssl = None
    if fmt == "filelist":
        names = table.cells[:, _column(table, ("FileName",), "file name")]
        labels = _labels(table, _column(table, ("age", "ground_truth"), "label"))
        raw = _values(table, _column(table, ("SPLIT",), "split"), ("TRAIN", "VAL", "TEST"), "SPLIT")
        splits = np.char.lower(raw)
        if "SSL_SPLIT" in table.header:
            ssl = _values(table, table.header.index("SSL_SPLIT"), SSL_FLAGS, "SSL_SPLIT")
    elif fmt == "dir-csv":
        names = table.cells[:, _column(table, ("path",), "image path")]
        labels = _labels(table, _column(table, ("age",), "label"))
        splits = _values(table, _column(table, ("split",), "split"), SPLIT_NAMES, "split")
    else:
        name_col, label_col = ("file", "age") if fmt == "coral-csv" else ("file_name", "label")
        names = table.cells[:, _column(table, (name_col,), "file name")]
        labels = _labels(table, _column(table, (label_col,), "label"))
        splits = np.full(len(names), split)
    files = _relative(table, names)
    if image_dir and fmt != "dir-csv":
        files = np.char.add(f"{image_dir.rstrip('/')}/", files)
    return IndexTable(path=table.path, files=files, labels=labels, split=np.asarray(splits, dtype=str),
                      ssl=ssl, lines=table.lines)


def _read_order_list(path: str | os.PathLike[str], image_dir: str, split: str | None) -> IndexTable:
    if str(path).lower().endswith(".xlsx"):
        table = read_xlsx_table(path)
    else:
        table = read_csv_table(path, delimiters=(",", "\t", " "), index_column=True)
    names = table.cells[:, _column(table, ("filename",), "file name")]
    labels = _labels(table, _column(table, ("age",), "label"))
    database = table.cells[:, table.header.index("database")] if "database" in table.header else None
    if "fold" in table.header:
        splits = _values(table, table.header.index("fold"), SPLIT_NAMES, "fold")
    elif database is not None and np.isin(database, SPLIT_NAMES).all():
        splits = database
    elif split is not None:
        splits = np.full(len(names), split)
    else:
        raise ValueError(f"{table.path}: no 'fold' column and no 'database' column naming the splits "
                         f"({list(SPLIT_NAMES)}): give the whole file's split")
    if database is not None:  # the image's folder (none where the cell is empty)
        folder = np.char.add(database.astype(str), "/")
        names = np.char.add(np.where(database == "", "", folder), names.astype(str))
    files = _relative(table, names)
    if image_dir:
        files = np.char.add(f"{image_dir.rstrip('/')}/", files)
    return IndexTable(path=table.path, files=files, labels=labels, split=np.asarray(splits, dtype=str),
                      ssl=None, lines=table.lines)


def _read_adience_fold(table: CsvTable, image_dir: str) -> IndexTable:
    cols = [_column(table, (name,), name) for name in ("user_id", "original_image", "face_id", "age")]
    user, original, face, age = (table.cells[:, c].astype(str) for c in cols)
    # "(25,32)" and "(25, 32)" are one group; any other spelling is left out and counted
    spelled = (" ".join(a.replace(",", ", ").split()) for a in age)
    age = np.array([_ADIENCE_ALIASES.get(g, g) for g in spelled], dtype=str)
    keep = np.isin(age, ADIENCE_AGE_GROUPS)
    names, counts = np.unique(age[~keep], return_counts=True)
    group = {g: i for i, g in enumerate(ADIENCE_AGE_GROUPS)}
    paths = np.array([f"{u}/landmark_aligned_face.{f}.{o}" for u, f, o
                      in zip(user[keep], face[keep], original[keep], strict=True)], dtype=str)
    kept = table.rows(keep)
    files = _relative(kept, paths)
    if image_dir:
        files = np.char.add(f"{image_dir.rstrip('/')}/", files)
    labels = np.array([group[a] for a in age[keep]], dtype=np.float64)
    return IndexTable(path=table.path, files=files, labels=labels,
                      split=np.full(len(files), "train"), ssl=None, lines=kept.lines,
                      excluded={str(n): int(c) for n, c in zip(names, counts, strict=True)})


def label_offset(table: IndexTable, known_offsets: Iterable[int] = (21,)) -> int:
    """How far a UTKFace split file's label column sits below the ages in its file names.

    Parameters
    ----------
    table : IndexTable
        A UTKFace split file (its file names carry the true ages).
    known_offsets : iterable of int, default (21,)
        Offsets that published files are known to use (the CLSS/UCVME ages 21-60 files with
        ``age`` = true age - 21).

    Returns
    -------
    int
        0 when the labels are the ages of the names; a known offset ``k`` when every label is the name's
        age minus ``k`` (add ``k`` to the labels to correct them).

    Raises
    ------
    ValueError
        A file name that does not carry an age (the check needs every one), or labels that differ from
        the names' ages by anything else, or by different amounts in different rows (ambiguous: no
        correction is safe).
    """
    ages = name_ages(table.files)
    bad = np.isnan(ages)
    if bad.any():
        lines = table.lines[bad]
        raise ValueError(f"{table.path}: {int(bad.sum())} file name(s) do not start with the age "
                         f"(age_gender_race_datetime.jpg.chip.jpg; lines {_first(lines)}); the age check "
                         "needs every name")
    diff = ages - table.labels
    values = np.unique(diff)
    if values.size == 1 and values[0] == 0:
        return 0
    if values.size == 1 and float(values[0]).is_integer() and int(values[0]) in set(known_offsets):
        return int(values[0])
    i = int(np.argmax(diff != np.median(diff)))
    raise ValueError(
        f"{table.path}: the label column differs from the ages in the file names by "
        f"{_first(values.tolist())} (e.g. line {table.lines[i]}: label {table.labels[i]:g}, name age "
        f"{ages[i]:g}); expected the same ages or the known offset(s) {sorted(set(known_offsets))}, so "
        "the labels cannot be corrected safely")


def ssl_flags(table: IndexTable, n_labeled: int, *, rest: str = "EXCLUDE") -> np.ndarray:
    """The ``SSL_SPLIT`` column of the CLSS split files, regenerated by the official recipe.

    Legacy NumPy ``np.random.seed(0)``; shuffle the file names of the TRAIN rows, in file order, with
    ``np.random.shuffle``; the first ``n_labeled`` names are LABELED, every other row gets ``rest``. Rows are
    matched by file name, as in the official code. This reproduces the LABELED rows of every published
    AgeDB-DIR and UTKFace file (AgeDB-DIR's byte for byte, see :func:`write_clss_split_file`).

    Parameters
    ----------
    table : IndexTable
        The base rows (``agedb.csv``, or any UTKFace split file).
    n_labeled : int
        1 <= n_labeled <= the number of TRAIN rows.
    rest : {"EXCLUDE", "UNLABELED"}, default "EXCLUDE"
        The flag of the other rows ("UNLABELED" as the generator of the UTKFace 333 file).

    Returns
    -------
    np.ndarray
        str ``[n]`` flags in the table's row order.
    """
    names = np.char.rpartition(table.files, "/")[:, 2]
    train = names[table.split == "train"]
    if isinstance(n_labeled, bool) or not isinstance(n_labeled, int | np.integer) or not (
            1 <= n_labeled <= train.size):
        raise ValueError(f"n_labeled must be an integer in [1, {train.size}] (the TRAIN rows of "
                         f"{table.path}), got {n_labeled!r}")
    if rest not in ("EXCLUDE", "UNLABELED"):
        raise ValueError(f"rest must be 'EXCLUDE' or 'UNLABELED', got {rest!r}")
    order = train.copy()
    # The published files come from the legacy global stream seeded with 0.
    np.random.RandomState(0).shuffle(order)
    return np.where(np.isin(names, order[:n_labeled]), "LABELED", rest)


def write_clss_split_file(agedb_csv: str | os.PathLike[str], out: str | os.PathLike[str], n_labeled: int
                          ) -> Path:
    """Write the CLSS AgeDB-DIR split file ``FileList_ssl_{n}_0.csv`` from DIR's ``agedb.csv``.

    Columns ``ground_truth,FileName,SPLIT,SSL_SPLIT`` (file names without ``AgeDB/``, SPLIT in upper case,
    flags from :func:`ssl_flags`), ``\\n`` line ends: for the published ``agedb.csv`` and n = 407, 488, 610,
    814 the output is byte-identical to the CLSS files (same sha256).

    Returns
    -------
    Path
        ``out``.
    """
    table = read_index(agedb_csv, "dir-csv")
    flags = ssl_flags(table, n_labeled)
    names = np.char.rpartition(table.files, "/")[:, 2]
    labels = [f"{v:g}" for v in table.labels]
    lines = ["ground_truth,FileName,SPLIT,SSL_SPLIT"] + [
        f"{a},{n},{s.upper()},{f}" for a, n, s, f in zip(labels, names, table.split, flags, strict=True)]
    out = Path(out)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    return out


def _first(items: Iterable[object]) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:_SHOW])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")
