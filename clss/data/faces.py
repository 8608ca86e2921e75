"""The face-age datasets of the papers: UTKFace (two protocols) and AgeDB-DIR, read from the user's copy.

Each protocol is a dataset name (``--dataset``), so that its preset, manifest and preprocessing go
together:

``utkface``
    The CLSS/GCLSS/UCVME protocol: ages 21-60 only, train 10 518 / val 2 629 / test 3 287, labelled rows
    from ``FileList_ssl_{333,500,1000}_0.csv`` (``labels=333|500|1000``); images at their native 200x200,
    decoded in BGR order, normalised per channel by statistics of 128 seeded training images.
``utkface-rankup``
    The RankUp protocol: all ages (1-116), train 18 964 / test 4 741 from RankUp's ``meta/{train,test}.csv``;
    images resized to 40x40, RGB, RankUp's normalisation. RankUp has no validation split: it reports the
    best test score over training, so this protocol's validation split *is* its test split.
``agedb-dir``
    AgeDB-DIR (train 12 208 / val 2 140 / test 2 140) with the CLSS preprocessing (224x224, BGR, per-channel
    statistics of 128 training images); ``labels=407|488|610|814`` reads the CLSS
    ``FileList_ssl_{n}_0.csv`` files, otherwise ``agedb.csv``.
``agedb-dir-rgb``
    The same data with the DIR / Rank-N-Contrast preprocessing (224x224, RGB, mean = std = 0.5).
``adience``
    Adience age groups, the five-fold subject-exclusive benchmark (Eidinger et al. 2014; CLOC's protocol):
    ``fold_{0..4}_data.txt`` and the in-plane aligned images; targets are the eight ordered age groups as
    class indices 0-7. ``run=k`` tests on fold ``k`` and trains on the other four; the benchmark has no
    validation split, so a fixed, subject-exclusive tenth of the training folds' subjects (seeded by the
    fold) validates. Images at 224x224, RGB, ImageNet statistics.

Before anything is decoded, the loader verifies the files it reads against the protocol's manifest
(:func:`clss.data.manifest.check_data`): present, byte-identical split files, rows per split, labelled
rows, label range, every image present. The UTKFace age-offset trap (split files whose ``age`` column is the
true age minus 21) is detected by comparing the labels with the ages in the file names and corrected, with a
warning.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from clss.data.augment import build_pipelines
from clss.data.dataset import DataSplits
from clss.data.face_files import IndexTable, read_index, write_clss_split_file
from clss.data.manifest import Manifest, check_data, load_manifest, manifest_from_dict

__all__ = ["FACE_DATASETS", "FaceProtocol", "builtin_manifest", "load_face_dataset",
           "write_agedb_split_files"]


@dataclass(frozen=True)
class FaceProtocol:
    """One protocol: how its files are found, split and preprocessed.

    Attributes
    ----------
    name : str
        The dataset name.
    manifest : dict
        The check fields of its manifest (``data_manifests/<name>.yaml`` holds the same plus source,
        terms and published numbers; a test keeps the two equal).
    label_files : dict of int to str
        Split file per number of labelled rows (``labels=``).
    base_files : tuple of str
        The index files read when ``labels`` is None (the labelled rows are then drawn by the trainer).
    preprocessing : dict
        :class:`clss.data.images.ImagePreprocessing` keywords.
    augment : dict
        The views' translation: ``pad`` pixels with a ``pad_mode`` border (``"mean"``: the CLSS code pads
        normalised tensors with zeros; ``"reflect"``: USB/RankUp; ``"zeros"``: black, DIR/RnC's PIL crops);
        flips keep the age, so both views flip at random too (:func:`clss.data.augment.build_pipelines`).
    validation : {"val", "test"}
        The split used for validation ("test": the protocol has no validation split).
    notes : str
        What differs from the official code, recorded in the run's meta.
    folds : bool, default False
        The ``base_files`` are cross-validation folds: ``run=k`` tests on file ``k``, trains on the others
        and validates on a subject-exclusive holdout of them.
    classes : tuple of str, optional
        Names of ordered classes when the targets are class indices ``0..K-1`` (ordinal classification):
        every method then also reports accuracy, MAE in classes and quadratic weighted kappa.
    """

    name: str
    manifest: dict[str, Any]
    label_files: dict[int, str]
    base_files: tuple[str, ...]
    preprocessing: dict[str, Any]
    augment: dict[str, Any]
    validation: str
    notes: str
    folds: bool = False
    classes: tuple[str, ...] = ()


def _utk_clss_manifest() -> dict[str, Any]:
    files = [
        {"path": "FileList_ssl_333_0.csv", "format": "filelist", "image_dir": "UTKFace", "labels": 333,
         "sha256": "0245205788a9900c12c098b00be69c98dee0581058607d656bec7ea4bdd2fde3"},
        {"path": "FileList_ssl_500_0.csv", "format": "filelist", "image_dir": "UTKFace", "labels": 500,
         "sha256": "ff8a11d2cc77fdf6794b5e157077132fd90de28be3a9c15cedca35aa24bb6d6a"},
        {"path": "FileList_ssl_1000_0.csv", "format": "filelist", "image_dir": "UTKFace", "labels": 1000,
         "label_offset": 21, "sha256": "0b75359e90012d568415155daa07ba670fb016b1423796d417b254af723df8bf"},
    ]
    return {"name": "utkface", "version": 1, "files": files,
            "images": {"folder": "UTKFace", "count": 23708, "naming": "utkface"},
            "splits": {"train": 10518, "val": 2629, "test": 3287},
            "label": {"unit": "years", "range": [21, 60], "known_offsets": [21], "check_names": True}}


def _utk_rankup_manifest() -> dict[str, Any]:
    files = [{"path": f"meta/{s}.csv", "format": "rankup-meta", "image_dir": "UTKFace", "split": s,
              "sha256": None} for s in ("train", "test")]
    return {"name": "utkface-rankup", "version": 1, "files": files,
            "images": {"folder": "UTKFace", "count": 23708, "naming": "utkface"},
            "splits": {"train": 18964, "test": 4741},
            "label": {"unit": "years", "range": [1, 116], "check_names": True}}


def _agedb_manifest() -> dict[str, Any]:
    sha = {407: "7b2598b726943b0f2f6505a645daef6cb8e306ad204125325bf061f598917df8",
           488: "05403bfcdcbad80b1b107dae14f09d42824e2d78d1a1177de4dc75f8eb8f4532",
           610: "e03f9de0aa1559253da5f38be426d1ba837ca723930dc6a1ca5659c3dd73920b",
           814: "5cdf19933a37bcead9561b553402234a1e9d0e189b41e94d4e72b46d7d392c15"}
    files = [{"path": "agedb.csv", "format": "dir-csv",
              "sha256": "ab9f8d4c7099a9d74ec5094c42b6fe9f1927a166a48d2ab800a88b2fd6081252"}]
    files += [{"path": f"FileList_ssl_{n}_0.csv", "format": "filelist", "image_dir": "AgeDB", "labels": n,
               "sha256": s} for n, s in sha.items()]
    return {"name": "agedb-dir", "version": 1, "files": files,
            "images": {"folder": "AgeDB", "count": 16488},
            "splits": {"train": 12208, "val": 2140, "test": 2140},
            "label": {"unit": "years", "range": [1, 101]}}


def _adience_manifest() -> dict[str, Any]:
    # The fold files are distributed on request only; their checksums could not be verified here.
    files = [{"path": f"fold_{k}_data.txt", "format": "adience-fold", "image_dir": "aligned", "sha256": None}
             for k in range(5)]
    return {"name": "adience", "version": 1, "files": files, "images": {"folder": "aligned"},
            "splits": {}, "label": {"unit": "age group", "range": [0, 7]}}


_UTK_NOTES = ("the official code also flips validation and test images at random; here they are "
              "evaluated unflipped")
_AGEDB_ESTIMATE = {"channels": 3, "resize": (224, 224), "normalize": "estimate", "estimate_images": 128}

#: The registered protocols by dataset name.
FACE_DATASETS: dict[str, FaceProtocol] = {
    "utkface": FaceProtocol(
        "utkface", _utk_clss_manifest(),
        label_files={333: "FileList_ssl_333_0.csv", 500: "FileList_ssl_500_0.csv",
                     1000: "FileList_ssl_1000_0.csv"},
        base_files=("FileList_ssl_333_0.csv",),
        preprocessing={"channels": 3, "order": "bgr", "resize": (200, 200), "normalize": "estimate",
                       "estimate_images": 128},
        augment={"pad": 5, "pad_mode": "mean"},
        validation="val", notes=_UTK_NOTES),
    "utkface-rankup": FaceProtocol(
        "utkface-rankup", _utk_rankup_manifest(), label_files={},
        base_files=("meta/train.csv", "meta/test.csv"),
        preprocessing={"channels": 3, "order": "rgb", "resize": (40, 40), "normalize": "none",
                       "mean": (0.59632254, 0.45671629, 0.39103324),
                       "std": (0.25907077, 0.23132719, 0.22686818)},
        augment={"pad": 5, "pad_mode": "reflect"},
        validation="test",
        notes=("RankUp has no validation split and reports the best test score over training; validation "
               "here is the test split; its strong view (RandAugment) is the toolkit's 'strong' policy")),
    "agedb-dir": FaceProtocol(
        "agedb-dir", _agedb_manifest(),
        label_files={n: f"FileList_ssl_{n}_0.csv" for n in (407, 488, 610, 814)},
        base_files=("agedb.csv",),
        preprocessing={**_AGEDB_ESTIMATE, "order": "bgr"},
        augment={"pad": 12, "pad_mode": "mean"},
        validation="val", notes="CLSS preprocessing (OpenCV decoding: BGR)"),
    "agedb-dir-rgb": FaceProtocol(
        "agedb-dir-rgb", _agedb_manifest(),
        label_files={n: f"FileList_ssl_{n}_0.csv" for n in (407, 488, 610, 814)},
        base_files=("agedb.csv",),
        preprocessing={"channels": 3, "order": "rgb", "resize": (224, 224), "normalize": "none",
                       "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        augment={"pad": 16, "pad_mode": "zeros"},
        validation="val", notes="DIR / Rank-N-Contrast preprocessing (PIL decoding: RGB)"),
    "adience": FaceProtocol(
        "adience", _adience_manifest(), label_files={},
        base_files=tuple(f"fold_{k}_data.txt" for k in range(5)),
        preprocessing={"channels": 3, "order": "rgb", "resize": (224, 224), "normalize": "none",
                       "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
        augment={"pad": 16, "pad_mode": "zeros"},
        validation="val", folds=True,
        classes=("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+"),
        notes=("CLOC's augmentations (flips, affine, colour jitter) are replaced by translation and "
               "horizontal flips; validation is a subject-exclusive tenth of the training folds (the "
               "benchmark has none)")),
}

#: Share of the training folds' subjects that validates a cross-validation protocol.
FOLD_VALIDATION = 0.1


def builtin_manifest(name: str) -> Manifest:
    """The check fields of a face protocol's manifest (what :func:`load_face_dataset` verifies)."""
    if name not in FACE_DATASETS:
        raise ValueError(f"no built-in manifest {name!r}; built-in: {sorted(FACE_DATASETS)}")
    return manifest_from_dict({**FACE_DATASETS[name].manifest, "source": {}, "citation": [],
                               "protocol": {}, "reference_results": {}})


def load_face_dataset(name: str, *, data_root: str | os.PathLike[str] | None = None,
                      labels: int | None = None, seed: int = 0, run: int = 0,
                      manifest: Manifest | str | os.PathLike[str] | None = None) -> DataSplits:
    """Load a face-age protocol from the user's copy, after checking it against its manifest.

    Parameters
    ----------
    name : {"utkface", "utkface-rankup", "agedb-dir", "agedb-dir-rgb", "adience"}
    data_root : str or PathLike
        The user's copy (``--data-root``); its layout is in ``docs/data.md``.
    labels : int, optional
        The number of labelled training rows of a published split file (utkface: 333, 500, 1000;
        agedb-dir: 407, 488, 610, 814); sets ``labeled`` (TRAIN rows flagged LABELED) and ``unlabeled``
        (the other TRAIN rows, as the official code). None: no fixed rows (the trainer draws them).
    seed : int, default 0
        Seed of the 128 training images that estimate the normalisation (where the protocol estimates
        it).
    run : int, default 0
        The test fold of a cross-validation protocol (adience: 0-4); must be 0 for the others.
    manifest : Manifest or path, optional
        Check the copy against this manifest instead of the built-in one (the tests use small ones).

    Returns
    -------
    DataSplits
        Image datasets (targets in years, corrected for a label offset), the weak augmentation pipeline and
        ``meta`` with the protocol, files, label offsets and the resolved preprocessing.

    Raises
    ------
    ValueError
        An unknown name, a ``labels`` count without a split file, a missing ``data_root``, or a copy that
        does not match the manifest (the first problems; ``clss data check`` prints them all).
    """
    if name not in FACE_DATASETS:
        raise ValueError(f"unknown face dataset {name!r}; available: {sorted(FACE_DATASETS)}")
    proto = FACE_DATASETS[name]
    if data_root is None:
        raise ValueError(f"{name} reads your copy of the data: give data_root (--data-root DIR)")
    if labels is not None and (isinstance(labels, bool) or labels not in proto.label_files):
        counts = sorted(proto.label_files) or "none (draw labelled rows with --labeled)"
        raise ValueError(f"{name}: labels={labels!r} has no published split file; available: {counts}")
    n_runs = len(proto.base_files) if proto.folds else 1
    if isinstance(run, bool) or not isinstance(run, (int, np.integer)) or not 0 <= run < n_runs:
        what = "the test fold" if proto.folds else "the protocol has no folds"
        raise ValueError(f"{name}: run must be an integer in [0, {n_runs}) ({what}), got {run!r}")
    if manifest is None:
        manifest = builtin_manifest(name)
    elif not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    data_root = os.path.expanduser(os.fspath(data_root))
    files = (proto.label_files[labels],) if labels is not None else proto.base_files
    report = check_data(manifest, data_root, files=files)
    report.raise_if_problems()
    tables = []
    for path in files:
        entry = manifest.file(path)
        table = read_index(os.path.join(data_root, path), entry.fmt or "", image_dir=entry.image_dir,
                           split=entry.split)
        offset = report.offsets.get(path, 0)
        if offset:
            warnings.warn(f"{table.path}: the age column is the true age - {offset} (a known defect of this "
                          f"published file); {offset} is added to every label", stacklevel=2)
        tables.append((table, offset))
    excluded = dict(sum((Counter(t.excluded) for t, _ in tables), Counter()))
    if excluded:
        shown = ", ".join(f"{k!r} x{v}" for k, v in Counter(excluded).most_common(6))
        warnings.warn(f"{name}: {sum(excluded.values())} rows whose label is not one of the protocol's "
                      f"classes are left out, as the benchmark does ({shown})", stacklevel=2)
    if proto.folds:
        tables = _assign_folds(tables, int(run))
    data = _face_splits(proto, data_root, tables, labels=labels, seed=seed)
    extra = {"excluded_labels": excluded} if excluded else {}
    if proto.folds:
        extra |= {"fold": int(run), "validation": (f"a subject-exclusive {FOLD_VALIDATION:.0%} of the "
                                                   f"training folds' subjects (fixed per fold)")}
    if proto.classes:
        extra |= {"classes": list(range(len(proto.classes))), "class_names": list(proto.classes)}
    data.meta.update(extra)
    return data


def _assign_folds(tables: list[tuple[IndexTable, int]], test_fold: int) -> list[tuple[IndexTable, int]]:
    """Splits of a cross-validation protocol: fold ``test_fold`` tests; a subject-exclusive share
    (:data:`FOLD_VALIDATION`) of the other folds' subjects (an image's parent folder), drawn with the fold as
    seed, validates; the rest trains."""
    subject = [np.array([f.rpartition("/")[0] for f in t.files.tolist()], dtype=str) for t, _ in tables]
    train = np.concatenate([s for i, s in enumerate(subject) if i != test_fold])
    subjects, rows = np.unique(train, return_counts=True)
    order = np.random.default_rng(test_fold).permutation(len(subjects))
    # the smallest prefix of the shuffled subjects holding the share of the training rows (one subject trains)
    n_val = int(np.searchsorted(np.cumsum(rows[order]), FOLD_VALIDATION * len(train))) + 1
    val_subjects = subjects[order[:min(n_val, len(subjects) - 1)]]
    out = []
    for i, (table, offset) in enumerate(tables):
        if i == test_fold:
            split = np.full(len(table.files), "test")
        else:
            split = np.where(np.isin(subject[i], val_subjects), "val", "train")
        out.append((dataclasses.replace(table, split=split.astype(str)), offset))
    return out


def _face_splits(proto: FaceProtocol, data_root: str | os.PathLike[str],
                 tables: list[tuple[IndexTable, int]], *, labels: int | None, seed: int) -> DataSplits:
    """Rows per split, fixed labelled rows and image datasets (the one place the dataset class is built)."""
    from clss.data.images import ImageDataset, ImagePreprocessing

    files = np.concatenate([t.files for t, _ in tables])
    targets = np.concatenate([t.labels + off for t, off in tables])
    split = np.concatenate([t.split for t, _ in tables])
    train = np.flatnonzero(split == "train")
    fixed_labeled = fixed_unlabeled = None
    if labels is not None:
        flagged = np.concatenate([t.labeled() for t, _ in tables])[train]
        fixed_labeled = np.flatnonzero(flagged).astype(np.int64)
        fixed_unlabeled = np.flatnonzero(~flagged).astype(np.int64)
    options = dict(proto.preprocessing)
    if options.get("normalize") == "estimate":
        options["estimate_seed"] = seed
    prep = ImagePreprocessing(**options)

    def images(rows: np.ndarray, p: ImagePreprocessing) -> ImageDataset:
        return ImageDataset(data_root, files[rows].tolist(), targets[rows], p, sources=files[rows].tolist())

    train_ds = images(train, prep)
    prep = train_ds.preprocessing  # the estimated statistics serve every split
    test_ds = images(np.flatnonzero(split == "test"), prep)
    val_ds = test_ds if proto.validation == "test" else images(np.flatnonzero(split == "val"), prep)
    size = train_ds.input.shape[1:]
    meta = {
        "source": "files", "data_root": str(data_root), "protocol": proto.name,
        "index_files": [str(t.path) for t, _ in tables],
        "label_offsets": {str(t.path): off for t, off in tables},
        "labels": labels, "validation": ("test split (the protocol has no validation split)"
                                         if proto.validation == "test" else "val split"),
        "preprocessing": prep.to_dict(), "augment": {**proto.augment, "hflip": True, "crop": list(size),
                                                 "views": ["weak", "strong"]},
        "notes": proto.notes,
    }
    return DataSplits(name=proto.name, train=train_ds, val=val_ds, test=test_ds, target_name="age",
                      meta=meta, labeled=fixed_labeled, unlabeled=fixed_unlabeled,
                      pipelines=build_pipelines(("translate", "hflip"), train_ds.preprocessing,
                                                train_ds.input.shape, **proto.augment))


def write_agedb_split_files(data_root: str | os.PathLike[str], *, overwrite: bool = False,
                            manifest: Manifest | str | os.PathLike[str] | None = None) -> list[str]:
    """Regenerate the CLSS AgeDB-DIR split files ``FileList_ssl_{407,488,610,814}_0.csv`` in ``data_root``
    from its ``agedb.csv`` (byte-identical to the published files, which clss may not redistribute).

    ``agedb.csv`` is first checked against the manifest (the output matches the published files only for
    the published ``agedb.csv``). Files already present are kept unless ``overwrite``.

    Returns
    -------
    list of str
        The files written (paths relative to ``data_root``).
    """
    if manifest is None:
        manifest = builtin_manifest("agedb-dir")
    elif not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    check_data(manifest, data_root, files=["agedb.csv"], images=False).raise_if_problems()
    written = []
    for n, name in FACE_DATASETS["agedb-dir"].label_files.items():
        out = os.path.join(data_root, name)
        if overwrite or not os.path.exists(out):
            write_clss_split_file(os.path.join(data_root, "agedb.csv"), out, n)
            written.append(name)
    return written
