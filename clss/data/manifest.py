"""Data manifests: what a dataset's files must be, and a check of a user's copy against it.

A manifest (one YAML file per dataset and protocol in ``data_manifests/``) records metadata only: the
source and terms, the index/split files with their sha256, the image folder, the rows per split, the label
range and known label offsets, the preprocessing and the published numbers. :func:`load_manifest` reads
and validates one; :func:`check_data` verifies a data root against it before any training and returns a
:class:`DataCheckReport` (``clss data check MANIFEST --data-root DIR`` prints it).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import yaml

from clss.data.face_files import (
    INDEX_FORMATS,
    SPLIT_NAMES,
    WHOLE_FILE_SPLIT,
    IndexTable,
    _first,
    label_offset,
    parse_utkface_name,
    read_index,
)

__all__ = ["Check", "DataCheckReport", "IndexFile", "Manifest", "check_data", "load_manifest"]

_REQUIRED = ("name", "version", "source", "citation", "files", "protocol", "reference_results")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class IndexFile:
    """One file a manifest lists under ``files``.

    ``sha256`` None means not verified (the file is checked for presence and content only). ``fmt`` (the
    YAML key ``format``) is one of :data:`clss.data.face_files.INDEX_FORMATS` for index/split files, None
    for other files (checked for presence and checksum only). ``labels``: expected training rows flagged
    LABELED; ``label_offset``: how far the file's label column sits below the true labels (the UTKFace
    trap: 21 in two published files); ``split``: the split the whole file holds (``rankup-meta``,
    ``coral-csv``; ``order-list`` files whose rows do not name their split).
    """

    path: str
    sha256: str | None = None
    fmt: str | None = None
    image_dir: str = ""
    split: str | None = None
    labels: int | None = None
    label_offset: int = 0


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; ``raw`` keeps every field of the file (source, preprocessing, results)."""

    name: str
    version: int
    files: tuple[IndexFile, ...]
    splits: dict[str, int] = field(default_factory=dict)
    label_range: tuple[float, float] | None = None
    known_offsets: tuple[int, ...] = ()
    check_names: bool = False
    images: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    path: str | None = field(default=None, compare=False)

    def file(self, path: str) -> IndexFile:
        """The entry of ``files`` with this path (ValueError listing the paths when there is none)."""
        for f in self.files:
            if f.path == path:
                return f
        raise ValueError(f"manifest {self.name!r} lists no file {path!r}; it lists "
                         f"{[f.path for f in self.files]}")


def _fail(where: str, msg: str) -> ValueError:
    return ValueError(f"manifest {where}: {msg}")


def _int(where: str, key: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise _fail(where, f"{key} must be an integer >= {lo}, got {value!r}")
    return value


def _mapping(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"{key} must be a mapping (key: value lines), got {type(value).__name__}")
    return dict(value)


def _rel_path(where: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value or value.startswith("/") or ".." in PurePosixPath(value).parts:
        raise _fail(where, f"{key} must be a path relative to the data root (no '..'), got {value!r}")
    return value


def _index_file(where: str, i: int, entry: Any) -> IndexFile:
    key = f"files[{i}]"
    entry = _mapping(where, key, entry)
    path = _rel_path(where, f"{key}.path", entry.get("path"))
    sha = entry.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.match(sha)):
        raise _fail(where, f"{key}.sha256 must be 64 lower-case hex digits or null (not verified), got "
                           f"{sha!r}")
    fmt = entry.get("format")
    if fmt is not None and fmt not in INDEX_FORMATS:
        raise _fail(where, f"{key}.format must be one of {list(INDEX_FORMATS)}, got {fmt!r}")
    split = entry.get("split")
    needs = fmt in WHOLE_FILE_SPLIT
    if ((needs and split is None) or (split is not None and not needs and fmt != "order-list")
            or (split is not None and split not in SPLIT_NAMES)):
        raise _fail(where, f"{key}.split is required for {' and '.join(WHOLE_FILE_SPLIT)} files, optional "
                           f"for order-list files and refused for the others, one of {list(SPLIT_NAMES)}; "
                           f"got {split!r}")
    labels = entry.get("labels")
    labels = None if labels is None else _int(where, f"{key}.labels", labels, 1)
    offset = _int(where, f"{key}.label_offset", entry.get("label_offset", 0), 0)
    image_dir = entry.get("image_dir", "")
    if image_dir:
        image_dir = _rel_path(where, f"{key}.image_dir", image_dir)
    return IndexFile(path=path, sha256=sha, fmt=fmt, image_dir=image_dir, split=split, labels=labels,
                     label_offset=offset)


def manifest_from_dict(values: Any, where: str = "<dict>") -> Manifest:
    """Validate a manifest's fields (the parsed YAML); ValueError naming the first bad field."""
    values = _mapping(where, "the file", values)
    missing = [k for k in _REQUIRED if k not in values]
    if missing:
        raise _fail(where, f"missing fields {missing}; a manifest needs {list(_REQUIRED)}")
    name = values["name"]
    if not isinstance(name, str) or not name:
        raise _fail(where, f"name must be a non-empty string, got {name!r}")
    version = _int(where, "version", values["version"], 1)
    for key in ("source", "protocol"):
        _mapping(where, key, values[key])
    if not isinstance(values["citation"], list) or not all(isinstance(c, str) for c in values["citation"]):
        raise _fail(where, "citation must be a list of strings")
    files = values["files"]
    if not isinstance(files, list) or not files:
        raise _fail(where, "files must be a non-empty list of {path, sha256, ...} entries")
    entries = tuple(_index_file(where, i, f) for i, f in enumerate(files))
    dup = sorted({f.path for f in entries if sum(g.path == f.path for g in entries) > 1})
    if dup:
        raise _fail(where, f"files lists {dup} more than once")
    splits = _mapping(where, "splits", values.get("splits", {}))
    for key, n in splits.items():
        if key not in SPLIT_NAMES:
            raise _fail(where, f"splits keys must be among {list(SPLIT_NAMES)}, got {key!r}")
        _int(where, f"splits.{key}", n, 1)
    label = _mapping(where, "label", values.get("label", {}))
    rng = label.get("range")
    if rng is not None:
        if (not isinstance(rng, list) or len(rng) != 2
                or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng)
                or rng[0] > rng[1]):
            raise _fail(where, f"label.range must be [low, high] numbers with low <= high, got {rng!r}")
        rng = (float(rng[0]), float(rng[1]))
    offsets = label.get("known_offsets", [])
    if not isinstance(offsets, list):
        raise _fail(where, f"label.known_offsets must be a list of integers, got {offsets!r}")
    offsets = tuple(_int(where, "label.known_offsets[]", o, 1) for o in offsets)
    for f in entries:
        if f.label_offset and f.label_offset not in offsets:
            raise _fail(where, f"files {f.path!r} has label_offset {f.label_offset}, which is not in "
                               f"label.known_offsets {list(offsets)}")
    check_names = label.get("check_names", False)
    if not isinstance(check_names, bool):
        raise _fail(where, f"label.check_names must be true or false, got {check_names!r}")
    images = _mapping(where, "images", values.get("images", {}))
    if images:
        _rel_path(where, "images.folder", images.get("folder"))
        if "count" in images:
            _int(where, "images.count", images["count"], 1)
        if images.get("naming") not in (None, "utkface"):
            raise _fail(where, f"images.naming must be 'utkface' or absent, got {images['naming']!r}")
    ordered = {k: int(splits[k]) for k in SPLIT_NAMES if k in splits}
    return Manifest(name=name, version=version, files=entries, splits=ordered,
                    label_range=rng, known_offsets=offsets, check_names=check_names, images=images,
                    raw=dict(values), path=None if where == "<dict>" else where)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest YAML file.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not YAML, not a mapping, or a missing or malformed field (named).
    """
    p = Path(path).expanduser()
    if not p.is_file():
        if p.is_dir():
            raise ValueError(f"manifest {p} is a directory; pass a .yaml file such as "
                             "data_manifests/utkface.yaml")
        raise FileNotFoundError(f"manifest not found: {p}")
    try:
        values = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"manifest {p} is not a readable YAML file ({str(exc).splitlines()[0]})") from None
    return manifest_from_dict(values, str(p))


# ---------------------------------------------------------------------------------------------- the check


@dataclass(frozen=True)
class Check:
    """One line of a report: ``status`` "ok", "warn" (noted, not blocking) or "problem" (blocks training)."""

    item: str
    status: Literal["ok", "warn", "problem"]
    detail: str


@dataclass
class DataCheckReport:
    """The result of :func:`check_data`.

    Attributes
    ----------
    manifest : str
        The manifest's name.
    data_root : str
    checks : list of Check
    offsets : dict of str to int
        Label offset found in each index file (added to its labels on load).
    """

    manifest: str
    data_root: str
    checks: list[Check] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no check is a problem (warnings allowed)."""
        return not self.problems

    @property
    def problems(self) -> list[Check]:
        return [c for c in self.checks if c.status == "problem"]

    def add(self, item: str, status: Literal["ok", "warn", "problem"], detail: str) -> None:
        self.checks.append(Check(item, status, detail))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``clss data check --json``)."""
        return {"manifest": self.manifest, "data_root": self.data_root, "ok": self.ok,
                "offsets": dict(self.offsets),
                "checks": [{"item": c.item, "status": c.status, "detail": c.detail} for c in self.checks]}

    def text(self) -> str:
        """Plain-text report: one line per check, then a verdict."""
        width = max((len(c.item) for c in self.checks), default=4)
        lines = [f"data check: {self.manifest} at {self.data_root}"]
        lines += [f"  {c.status.upper():7s} {c.item:{width}s}  {c.detail}" for c in self.checks]
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        n = len(self.problems)
        return "OK: the data matches the manifest" if n == 0 else f"{n} problem(s): fix them before training"

    def raise_if_problems(self) -> None:
        """ValueError with the first problems, in one line, when the data does not match."""
        if self.ok:
            return
        shown = "; ".join(f"{c.item}: {c.detail}" for c in self.problems[:3])
        more = f" (and {len(self.problems) - 3} more)" if len(self.problems) > 3 else ""
        raise ValueError(f"the data under {self.data_root} does not match the {self.manifest} manifest: "
                         f"{shown}{more}. The full report: clss data check {self.manifest} --data-root "
                         f"{self.data_root}")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _present(root: Path, files: Iterable[str]) -> np.ndarray:
    """bool mask of the relative paths that are files under ``root`` (one directory listing per folder)."""
    files = list(files)
    listing: dict[str, set[str]] = {}
    out = np.zeros(len(files), dtype=bool)
    for i, rel in enumerate(files):
        parent, _, name = rel.rpartition("/")
        if parent not in listing:
            folder = root / parent
            try:
                listing[parent] = {e.name for e in os.scandir(folder) if e.is_file()}
            except OSError:
                listing[parent] = set()
        out[i] = name in listing[parent]
    return out


def check_data(manifest: Manifest | str | os.PathLike[str], data_root: str | os.PathLike[str], *,
               files: Iterable[str] | None = None, images: bool = True) -> DataCheckReport:
    """Verify a copy of a dataset against its manifest, before any training.

    Checks, in order: the data root is a folder; each listed file is present and (when the manifest has
    its sha256) byte-identical to the published one; each index/split file parses, has the manifest's rows
    per split, the expected number of LABELED training rows, labels inside the manifest's range (after
    the label offset), and, for UTKFace, labels that agree with the ages in the file names up to a known
    offset (the trap of some published files: reported, corrected on load; any other disagreement is a
    problem); every image the index files name is present (count and the first missing names); the image
    folder's file count and malformed UTKFace names (warnings).

    Parameters
    ----------
    manifest : Manifest or path
        A manifest or its YAML file.
    data_root : str or PathLike
        The user's copy (``--data-root``).
    files : iterable of str, optional
        Check only these entries of the manifest's ``files`` (a loader checks the files it reads); default
        all of them.
    images : bool, default True
        Check the images too (False: the listed files only).

    Returns
    -------
    DataCheckReport
        ``report.ok`` is False when any check is a problem; never raises for a bad copy.
    """
    if not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    root = Path(data_root).expanduser()
    report = DataCheckReport(manifest=manifest.name, data_root=str(root))
    if not root.is_dir():
        report.add("data root", "problem", "not a folder" if root.exists() else "does not exist")
        return report
    entries = list(manifest.files) if files is None else [manifest.file(p) for p in files]
    referenced: dict[str, None] = {}
    for entry in entries:
        table = _check_file(report, root, manifest, entry)
        if table is not None:
            referenced.update(dict.fromkeys(table.files.tolist()))
    if not images:
        return report
    if referenced:
        present = _present(root, referenced)
        names = list(referenced)
        if present.all():
            report.add("images", "ok", f"all {len(names)} images named by the index files are present")
        else:
            missing = [n for n, p in zip(names, present, strict=True) if not p]
            report.add("images", "problem", f"{len(missing)} of {len(names)} images named by the index files "
                                            f"are missing: {_first(missing)}")
    _check_image_folder(report, root, manifest)
    return report


def _check_file(report: DataCheckReport, root: Path, manifest: Manifest, entry: IndexFile
                ) -> IndexTable | None:
    path = root / entry.path
    item = entry.path
    if not path.is_file():
        report.add(item, "problem", f"missing: expected the file at {path}")
        return None
    if entry.sha256 is None:
        report.add(item, "warn", "present; no published checksum to compare (not verified)")
    else:
        found = sha256_of(path)
        if found != entry.sha256:
            report.add(item, "problem", f"sha256 {found[:12]}… differs from the published "
                                        f"{entry.sha256[:12]}… (a different or edited file)")
        else:
            report.add(item, "ok", "sha256 matches the published file")
    if entry.fmt is None:
        return None
    try:
        table = read_index(path, entry.fmt, image_dir=entry.image_dir, split=entry.split)
    except (ValueError, OSError) as exc:
        report.add(item, "problem", str(exc))
        return None
    _check_counts(report, manifest, entry, table)
    offset = entry.label_offset
    if manifest.check_names:
        try:
            offset = label_offset(table, manifest.known_offsets or (0,))
        except ValueError as exc:
            report.add(f"{item} labels", "problem", str(exc).removeprefix(f"{table.path}: "))
            return table
        if offset:
            report.add(f"{item} labels", "warn", f"the label column is the true age - {offset} (the known "
                                                 f"offset of this file); +{offset} is added on load")
        else:
            report.add(f"{item} labels", "ok", "labels equal the ages in the file names")
        if offset != entry.label_offset:
            report.add(f"{item} labels", "warn", f"the manifest expects offset {entry.label_offset} for this "
                                                 f"file, found {offset}")
    report.offsets[entry.path] = offset
    if manifest.label_range is not None:
        lo, hi = manifest.label_range
        labels = table.labels + offset
        out = (labels < lo) | (labels > hi)
        if out.any():
            report.add(f"{item} range", "problem", f"{int(out.sum())} label(s) outside [{lo:g}, {hi:g}] "
                                                   f"(lines {_first(table.lines[out].tolist())})")
        else:
            report.add(f"{item} range", "ok", f"labels in [{labels.min():g}, {labels.max():g}] within "
                                              f"[{lo:g}, {hi:g}]")
    return table


def _check_counts(report: DataCheckReport, manifest: Manifest, entry: IndexFile, table: IndexTable) -> None:
    counts = table.counts()
    expected = ({entry.split: manifest.splits[entry.split]} if entry.split in manifest.splits
                else {} if entry.split is not None else dict(manifest.splits))
    if expected:
        if counts == expected:
            report.add(f"{entry.path} rows", "ok", _counts(counts))
        else:
            report.add(f"{entry.path} rows", "problem", f"{_counts(counts)}; expected {_counts(expected)}")
    if entry.labels is not None:
        n = int(table.labeled().sum())
        status = "ok" if n == entry.labels else "problem"
        report.add(f"{entry.path} labelled", status, f"{n} training rows LABELED"
                   + ("" if n == entry.labels else f"; expected {entry.labels}"))


def _counts(counts: Mapping[str, int]) -> str:
    return " / ".join(f"{k} {v}" for k, v in counts.items()) or "no rows"


def _check_image_folder(report: DataCheckReport, root: Path, manifest: Manifest) -> None:
    if not manifest.images:
        return
    folder = root / manifest.images["folder"]
    if not folder.is_dir():
        report.add("image folder", "problem", f"missing: expected the images in {folder}")
        return
    names = [e.name for e in os.scandir(folder) if e.is_file()]
    # a folder per subject (Adience's aligned/<user_id>/) counts the files of its subfolders too
    total = sum(len(files) for _, _, files in os.walk(folder))
    expected = manifest.images.get("count")
    detail = f"{total} files in {manifest.images['folder']}/"
    if total != len(names):
        detail += f" ({total - len(names)} in subfolders)"
    if expected is not None and total != expected:
        report.add("image folder", "warn", f"{detail}; the published archive has {expected}")
    else:
        report.add("image folder", "ok", detail)
    if manifest.images.get("naming") == "utkface":
        bad = sorted(n for n in names if parse_utkface_name(n) is None)
        if bad:
            report.add("image names", "warn", f"{len(bad)} file(s) do not follow age_gender_race_datetime"
                                              f".jpg.chip.jpg and are skipped: {_first(bad)}")
