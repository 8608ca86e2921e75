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

The order-learning age benchmarks (ConOrd's Table 2), read from the split lists their code publishes; images
at 224x224, RGB, ImageNet statistics:

``morph2``
    MORPH II "setting A" (Chang et al. 2011): 5 492 images of Caucasian subjects, 80/20, five folds, each
    its own draw (``run=k`` reads ``SettingA_fold{k}_{train,test}.txt``, 4 394 / 1 098, of the Order
    Learning code). No validation split: a fixed tenth of the fold's training rows validates.
``clap2015``
    ChaLearn LAP 2015 apparent age: the official 2 476 / 1 136 / 1 079 split from the list
    ``total_2015.xlsx`` of the MWR code (integer apparent ages).
``utkface-coral``
    UTKFace ages 21-60 with CORAL's fixed split (13 147 / 3 287; Berg et al. 2021, Gustafsson et al. 2020),
    ``utk_{train,test}.csv`` (ages stored minus 21: corrected). No validation split: a fixed tenth of the
    training rows validates.
``cacd``
    CACD with the MWR split list ``CACD.csv`` (its ``fold`` column: train / val / test).

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
    validation : {"val", "test", "holdout"}
        The split used for validation ("test": the protocol has no validation split and validates on its
        test split, as its paper; "holdout": it has none, and a fixed share :data:`VALIDATION_SHARE` of the
        training rows, drawn with the run as seed, validates).
    notes : str
        What differs from the official code, recorded in the run's meta.
    folds : bool, default False
        The ``base_files`` are cross-validation folds: ``run=k`` tests on file ``k``, trains on the others
        and validates on a subject-exclusive holdout of them.
    runs : int, default 1
        Runs with their own files: ``run=k`` reads the ``base_files`` with ``{run}`` replaced by ``k``.
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
    runs: int = 1

    @property
    def n_runs(self) -> int:
        """The runs of the protocol: its folds, its per-run files, or 1."""
        return len(self.base_files) if self.folds else self.runs

    def files_of(self, run: int) -> tuple[str, ...]:
        """The base files that run ``run`` reads."""
        return tuple(f.format(run=run) for f in self.base_files)


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


def _morph2_manifest() -> dict[str, Any]:
    # sha256 of the Order Learning code's lists (changsukim-ku/order-learning, index/MORPH_SettingA/)
    sha = {(0, "train"): "8e11f3b570f65871bd3cc2732969c0925862963b6385fe4eadcc86d4475d499b",
           (0, "test"): "12322ab9d5d1231d9c1239f13f744a3a2a3e6ad493c9645f91140dfc63715fc2",
           (1, "train"): "be97417b2d99de331b3b0b3d8a2ffa9268dbc35a37c6c73d1aeaf4711ce53977",
           (1, "test"): "4a5d364f06131f7271ebaa208ebfd8c297b69c9a907b0b489c4402fef068925e",
           (2, "train"): "d3c49796871914a8fdb4a73dccd5ccfa114fa44a80ca74d6dab3736733482304",
           (2, "test"): "b7c3f71f716d4e0ca2a6bbb4e6b2ed0e9e385100e5dd30f24fd5c7b26160d903",
           (3, "train"): "6760bcc4560062d6861ed954a74ceb1d0f8af01898fb20e04dd202d4e508ab3c",
           (3, "test"): "e5af0ea6501e4fee56b679b048efe17db5f26533ed070d2c833d784f301152ae",
           (4, "train"): "702fcf86ddfc78c414940c83443019687f4e00cc90671b12cfb1de2da0fdb584",
           (4, "test"): "b5861a876b66a956286ff4e5989eb1411eedb2d820ae0f8526c5237bd28a692d"}
    files = [{"path": f"SettingA_fold{k}_{s}.txt", "format": "order-list", "split": s, "sha256": h}
             for (k, s), h in sha.items()]
    return {"name": "morph2", "version": 1, "files": files, "images": {"folder": "morph"},
            "splits": {"train": 4394, "test": 1098}, "label": {"unit": "years", "range": [16, 77]}}


def _clap2015_manifest() -> dict[str, Any]:
    files = [{"path": "total_2015.xlsx", "format": "order-list",  # MWR's datalist/clap2015/total_2015.xlsx
              "sha256": "0d57440040dfa6ce5af45ad05b8ec815b5c8b481d2f020c0f38a5abc878e7732"}]
    return {"name": "clap2015", "version": 1, "files": files, "images": {},
            "splits": {"train": 2476, "val": 1136, "test": 1079},
            "label": {"unit": "years", "range": [0, 100]}}


def _utk_coral_manifest() -> dict[str, Any]:
    # CORAL's lists as Berg et al. publish them (axeber01/dold, age/data/): the age column is age - 21
    sha = {"train": "47edc57e320e6db56872b4c2dc95fefc97c87c3e05bd5ef31f53b128dbc1f2e2",
           "test": "e2afd2a68be8794d25b17cb40b6842e92eb87686dc7211538ba2816e92941670"}
    files = [{"path": f"utk_{s}.csv", "format": "coral-csv", "image_dir": "UTKFace", "split": s,
              "label_offset": 21, "sha256": h} for s, h in sha.items()]
    return {"name": "utkface-coral", "version": 1, "files": files,
            "images": {"folder": "UTKFace", "count": 23708, "naming": "utkface"},
            "splits": {"train": 13147, "test": 3287},
            "label": {"unit": "years", "range": [21, 60], "known_offsets": [21], "check_names": True}}


def _cacd_manifest() -> dict[str, Any]:
    # MWR's datalist/cacd/CACD.csv could not be obtained here: no checksum or row counts
    files = [{"path": "CACD.csv", "format": "order-list", "sha256": None}]
    return {"name": "cacd", "version": 1, "files": files, "images": {}, "splits": {},
            "label": {"unit": "years", "range": [14, 62]}}


_UTK_NOTES = ("the official code also flips validation and test images at random; here they are "
              "evaluated unflipped")
# The order-learning benchmarks: faces at 224 px, RGB, ImageNet statistics (ConOrd's encoder input size).
_ORDER_PREPROCESSING = {"channels": 3, "order": "rgb", "resize": (224, 224), "normalize": "none",
                        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
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
    "morph2": FaceProtocol(
        "morph2", _morph2_manifest(), label_files={},
        base_files=("SettingA_fold{run}_train.txt", "SettingA_fold{run}_test.txt"), runs=5,
        preprocessing=_ORDER_PREPROCESSING, augment={"pad": 16, "pad_mode": "zeros"}, validation="holdout",
        notes=("setting A has no validation split: a fixed tenth of the fold's training rows validates; "
               "images are resized to 224x224 (align and crop the faces first, as the order-learning "
               "code does)")),
    "clap2015": FaceProtocol(
        "clap2015", _clap2015_manifest(), label_files={}, base_files=("total_2015.xlsx",),
        preprocessing=_ORDER_PREPROCESSING, augment={"pad": 16, "pad_mode": "zeros"}, validation="val",
        notes=("trains on the training split and selects on the validation split (the order-learning "
               "code's test protocol retrains on both); targets are the list's integer apparent ages")),
    "utkface-coral": FaceProtocol(
        "utkface-coral", _utk_coral_manifest(), label_files={},
        base_files=("utk_train.csv", "utk_test.csv"),
        preprocessing=_ORDER_PREPROCESSING, augment={"pad": 16, "pad_mode": "zeros"}, validation="holdout",
        notes="CORAL's split has no validation rows: a fixed tenth of the training rows validates"),
    "cacd": FaceProtocol(
        "cacd", _cacd_manifest(), label_files={}, base_files=("CACD.csv",),
        preprocessing=_ORDER_PREPROCESSING, augment={"pad": 16, "pad_mode": "zeros"}, validation="val",
        notes="the MWR list's train / val / test folds; images where its database column says"),
}


#: Share of the training rows (a cross-validation protocol: of the training folds' subjects) that validates a
#: protocol without a validation split.
VALIDATION_SHARE = 0.1


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
    name : {"utkface", "utkface-rankup", "agedb-dir", "agedb-dir-rgb", "adience", "morph2", "clap2015",
            "utkface-coral", "cacd"}
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
        The test fold of a cross-validation protocol (adience: 0-4) or the run of a protocol with per-run
        files (morph2: 0-4); must be 0 for the others.
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
    n_runs = proto.n_runs
    if isinstance(run, bool) or not isinstance(run, (int, np.integer)) or not 0 <= run < n_runs:
        what = ("the test fold" if proto.folds else "the fold" if n_runs > 1 else "the protocol has no folds")
        raise ValueError(f"{name}: run must be an integer in [0, {n_runs}) ({what}), got {run!r}")
    if manifest is None:
        manifest = builtin_manifest(name)
    elif not isinstance(manifest, Manifest):
        manifest = load_manifest(manifest)
    data_root = os.path.expanduser(os.fspath(data_root))
    files = (proto.label_files[labels],) if labels is not None else proto.files_of(int(run))
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
    elif proto.validation == "holdout":
        tables = _hold_out(tables, int(run))
    data = _face_splits(proto, data_root, tables, labels=labels, seed=seed)
    extra = {"excluded_labels": excluded} if excluded else {}
    if proto.folds:
        extra |= {"fold": int(run), "validation": (f"a subject-exclusive {VALIDATION_SHARE:.0%} of the "
                                                   f"training folds' subjects (fixed per fold)")}
    elif proto.validation == "holdout":
        extra |= {"validation": f"a fixed {VALIDATION_SHARE:.0%} of the training rows (drawn with the run as "
                                f"seed)"}
    if n_runs > 1 and not proto.folds:
        extra |= {"fold": int(run)}
    if proto.classes:
        extra |= {"classes": list(range(len(proto.classes))), "class_names": list(proto.classes)}
    data.meta.update(extra)
    return data


def _assign_folds(tables: list[tuple[IndexTable, int]], test_fold: int) -> list[tuple[IndexTable, int]]:
    """Splits of a cross-validation protocol: fold ``test_fold`` tests; a subject-exclusive share
    (:data:`VALIDATION_SHARE`) of the other folds' subjects (an image's parent folder), drawn with the fold as
    seed, validates; the rest trains."""
    subject = [np.array([f.rpartition("/")[0] for f in t.files.tolist()], dtype=str) for t, _ in tables]
    train = np.concatenate([s for i, s in enumerate(subject) if i != test_fold])
    subjects, rows = np.unique(train, return_counts=True)
    order = np.random.default_rng(test_fold).permutation(len(subjects))
    # the smallest prefix of the shuffled subjects holding the share of the training rows (one subject trains)
    n_val = int(np.searchsorted(np.cumsum(rows[order]), VALIDATION_SHARE * len(train))) + 1
    val_subjects = subjects[order[:min(n_val, len(subjects) - 1)]]
    out = []
    for i, (table, offset) in enumerate(tables):
        if i == test_fold:
            split = np.full(len(table.files), "test")
        else:
            split = np.where(np.isin(subject[i], val_subjects), "val", "train")
        out.append((dataclasses.replace(table, split=split.astype(str)), offset))
    return out


def _hold_out(tables: list[tuple[IndexTable, int]], run: int) -> list[tuple[IndexTable, int]]:
    """A fixed share :data:`VALIDATION_SHARE` of the training rows (over all files, drawn with ``run`` as
    seed) becomes the validation split."""
    train = np.concatenate([t.split == "train" for t, _ in tables])
    rows = np.flatnonzero(train)
    chosen = np.random.default_rng(run).permutation(rows)[:max(1, round(VALIDATION_SHARE * len(rows)))]
    val = np.zeros(len(train), dtype=bool)
    val[chosen] = True
    out, start = [], 0
    for table, offset in tables:
        mine = val[start:start + len(table.files)]
        start += len(table.files)
        out.append((dataclasses.replace(table, split=np.where(mine, "val", table.split).astype(str)), offset))
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
        "labels": labels, "validation": {"test": "test split (the protocol has no validation split)",
                                         "val": "val split",
                                         "holdout": "a holdout of the training rows"}[proto.validation],
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
