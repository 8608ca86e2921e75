"""Datasets, labeled/unlabeled splits and semi-supervised samplers.

``load_dataset(name, ...)`` returns a :class:`RegressionData` (in-memory tables) or a :class:`DataSplits`
(file-backed datasets); ``list_datasets()`` describes the built-ins
(``operator-sde``, ``diabetes``) and the ``csv:PATH`` form. See ``docs/data.md``.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from clss.data.base import RegressionData, Standardizer
from clss.data.csvfile import CsvTable, read_csv_table
from clss.data.dataset import DataSplits, InputSpec, RegressionDataset, TabularDataset, view_pipeline
from clss.data.digits import load_digits_rotation
from clss.data.encoding import ColumnEncoding, TabularEncoding
from clss.data.faces import load_face_dataset
from clss.data.imagecsv import load_image_csv
from clss.data.images import ArrayImageDataset, ImageDataset, ImagePreprocessing, ImageReadError
from clss.data.loader import SemiSupervisedLoader, predict_dataset
from clss.data.operator_sde import generate_operator_sde, load_operator_sde, paper_run_indices
from clss.data.samplers import SemiSupervisedSampler
from clss.data.splits import LabeledSpec, Splits, parse_labeled, split_labeled
from clss.data.tabular import load_csv, load_diabetes

__all__ = [
    "CSV_OPTIONS",
    "DATASETS",
    "PATH_PREFIXES",
    "ArrayImageDataset",
    "ColumnEncoding",
    "CsvTable",
    "DataSplits",
    "DatasetInfo",
    "ImageDataset",
    "ImagePreprocessing",
    "ImageReadError",
    "InputSpec",
    "LabeledSpec",
    "RegressionData",
    "RegressionDataset",
    "SemiSupervisedLoader",
    "SemiSupervisedSampler",
    "Splits",
    "Standardizer",
    "TabularDataset",
    "TabularEncoding",
    "dataset_info",
    "dataset_key",
    "generate_operator_sde",
    "list_datasets",
    "load_csv",
    "load_dataset",
    "load_diabetes",
    "load_digits_rotation",
    "load_image_csv",
    "paper_run_indices",
    "parse_labeled",
    "predict_dataset",
    "read_csv_table",
    "split_labeled",
    "view_pipeline",
]

# Feature options of CSV files (keys of TrainConfig too); no other dataset has columns to choose.
CSV_OPTIONS = frozenset({"features", "exclude", "missing", "categorical"})


@dataclass(frozen=True)
class DatasetInfo:
    """A registered dataset: its one-line description and its loader.

    ``has_runs`` marks datasets whose paper protocol has run slices and fixes the labeled rows from
    ``fraction``; for the others ``run`` must be 0 and ``fraction`` unset. ``folds`` marks cross-validation
    protocols whose ``run`` is the test fold. ``label_files`` marks datasets whose published split files fix
    the labelled rows, chosen by their count (the loader's ``labels``).
    """

    description: str
    loader: Callable[..., RegressionData | DataSplits]
    has_runs: bool = False
    label_files: bool = False
    folds: bool = False


DATASETS: dict[str, DatasetInfo] = {
    "operator-sde": DatasetInfo(
        "CLSS/GCLSS operator-learning benchmark (241 inputs -> mean SPDE solution); published files "
        "or built-in generator; 10 runs of 1000 rows",
        load_operator_sde,
        has_runs=True,
    ),
    "diabetes": DatasetInfo(
        "scikit-learn diabetes (442 x 10 -> disease progression); seeded 60/20/20 split", load_diabetes
    ),
    "csv:PATH": DatasetInfo(
        "any CSV file (target=COLUMN; empty target cells = unlabelled rows); seeded 60/20/20 split of the "
        "rows with a target or a train/val/test 'split' column",
        load_csv,
    ),
    "digits-rotation": DatasetInfo(
        "scikit-learn's 1797 handwritten 8x8 digits, each rotated by a seeded angle U(-45, 45) degrees "
        "(the target); 1-channel images; seeded 60/20/20 split",
        load_digits_rotation,
    ),
    "image-csv:PATH": DatasetInfo(
        "a folder of images listed in a CSV file of path,target rows (optional split and labeled "
        "columns; paths under --data-root); seeded 60/20/20 split without a split column",
        load_image_csv,
    ),
    "utkface": DatasetInfo(
        "UTKFace, CLSS/GCLSS/UCVME protocol (ages 21-60, 10518/2629/3287; labels=333|500|1000 split files; "
        "200 px BGR) from --data-root",
        partial(load_face_dataset, "utkface"),
        label_files=True,
    ),
    "utkface-rankup": DatasetInfo(
        "UTKFace, RankUp protocol (all ages, 18964 train / 4741 test, validation = test; 40 px RGB) from "
        "--data-root",
        partial(load_face_dataset, "utkface-rankup"),
        label_files=True,
    ),
    "agedb-dir": DatasetInfo(
        "AgeDB-DIR (12208/2140/2140; labels=407|488|610|814 CLSS split files; 224 px BGR as CLSS) from "
        "--data-root",
        partial(load_face_dataset, "agedb-dir"),
        label_files=True,
    ),
    "agedb-dir-rgb": DatasetInfo(
        "AgeDB-DIR with the DIR/Rank-N-Contrast preprocessing (224 px RGB, mean=std=0.5) from --data-root",
        partial(load_face_dataset, "agedb-dir-rgb"),
        label_files=True,
    ),
    "adience": DatasetInfo(
        "Adience age groups (8 ordered classes 0-7), five subject-exclusive folds: run=k tests on fold k; "
        "224 px RGB aligned faces from --data-root",
        partial(load_face_dataset, "adience"),
        folds=True,
    ),
    "morph2": DatasetInfo(
        "MORPH II setting A (5492 Caucasian faces, 80/20, five folds of their own: run=k reads fold k's "
        "4394/1098 lists; a tenth of the training rows validates); 224 px RGB from --data-root",
        partial(load_face_dataset, "morph2"),
        folds=True,
    ),
    "clap2015": DatasetInfo(
        "ChaLearn LAP 2015 apparent age (2476/1136/1079, MWR's total_2015.xlsx list); 224 px RGB from "
        "--data-root",
        partial(load_face_dataset, "clap2015"),
    ),
    "utkface-coral": DatasetInfo(
        "UTKFace ages 21-60, CORAL's split (13147 train / 3287 test; a tenth of the training rows "
        "validates); 224 px RGB from --data-root",
        partial(load_face_dataset, "utkface-coral"),
    ),
    "cacd": DatasetInfo(
        "CACD (MWR's CACD.csv list: train/val/test folds); 224 px RGB from --data-root",
        partial(load_face_dataset, "cacd"),
    ),
}


def _keyword_options(loader: Callable[..., Any]) -> set[str]:
    """The keyword-only parameters of a dataset loader (its options)."""
    return {p.name for p in inspect.signature(loader).parameters.values() if p.kind is p.KEYWORD_ONLY}


#: Dataset families named by a file: ``csv:data.csv`` is registered as ``csv:PATH``.
PATH_PREFIXES = ("csv:", "image-csv:")


def dataset_key(name: str) -> str | None:
    """The :data:`DATASETS` key of a dataset name (``csv:data.csv`` → ``csv:PATH``); None if unknown."""
    for prefix in PATH_PREFIXES:
        if name.startswith(prefix):
            return f"{prefix}PATH"
    return name if name in DATASETS and not name.endswith(":PATH") else None


def dataset_info(name: str) -> DatasetInfo | None:
    """The registered entry of a dataset name (``csv:PATH`` forms map to their pattern); None if unknown."""
    key = dataset_key(name)
    return None if key is None else DATASETS[key]


def list_datasets() -> dict[str, str]:
    """Dataset names (``csv:PATH`` as a pattern) mapped to one-line descriptions."""
    return {name: info.description for name, info in DATASETS.items()}


def load_dataset(
    name: str,
    *,
    seed: int = 0,
    data_dir: str | os.PathLike[str] | None = None,
    target: str | None = None,
    run: int = 0,
    fraction: float | None = None,
    val_protocol: str = "holdout",
    **kw: Any,
) -> RegressionData | DataSplits:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        ``"operator-sde"``, ``"diabetes"`` or ``"csv:PATH"``.
    seed : int, default 0
        Split seed for tabular data (operator-sde's splits are fixed by the paper's protocol).
    data_dir : str or PathLike, optional
        Folder with the published operator-sde files (operator-sde only).
    target : str, optional
        Target column (CSV only, required there).
    run : int, default 0
        Run index (operator-sde: rows ``[1000 run, 1000 run + 1000)``; adience: the test fold); must be 0
        for other datasets.
    fraction : float, optional
        operator-sde only: the paper's labeled fraction; sets ``labeled``/``unlabeled`` by the paper's run
        protocol (as the official code). Other datasets leave the split to :func:`split_labeled`.
    val_protocol : {"holdout", "test"}, default "holdout"
        ``"test"`` validates on the test split (the official, optimistic protocol).
    **kw
        Loader options: operator-sde ``run_size``, ``generator_seed``, ``n_functions``, ``mc_samples``,
        ``chunk_size``, ``progress``; diabetes ``val_size``, ``test_size``; CSV (see :func:`load_csv`)
        ``features``, ``exclude``, ``missing``, ``categorical``, ``split_column``, ``val_size``,
        ``test_size``.

    Returns
    -------
    RegressionData or DataSplits
        In-memory tables come as :class:`RegressionData` (``.as_splits()`` gives their datasets);
        file-backed datasets as :class:`DataSplits`. With ``val_protocol="test"`` the validation split is
        the test split in both.

    Raises
    ------
    ValueError
        Unknown dataset or option, or an option that does not apply to the dataset (``target``,
        ``data_dir``, ``run != 0``, ``fraction``).
    """
    key = dataset_key(name)
    if key is None:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(list_datasets())}")
    if key.endswith(":PATH"):
        prefix = key.removesuffix("PATH")
        path: str | None = name[len(prefix):]
        options = {"target": target} if target is not None or prefix == "csv:" else {}
        if not path:
            raise ValueError(f"the {prefix[:-1]} dataset needs a path: '{key}'")
    else:
        options, path = {}, None
        if target is not None:
            raise ValueError(f"{name} has a fixed target; target= is only for csv:PATH datasets")
    info = DATASETS[key]
    if data_dir is not None and key != "operator-sde":
        raise ValueError(f"{name}: data_dir is only used by operator-sde")
    if info.has_runs:
        options |= {"run": run, "fraction": fraction, "data_dir": data_dir}
    elif info.folds:
        options |= {"run": run}
    elif run != 0:
        raise ValueError(f"{name} has no run slices; run must be 0, got {run}")
    if fraction is not None and not info.has_runs:
        raise ValueError(
            f"{name} has no paper protocol fixing the labeled rows; leave fraction unset and split the "
            "training rows with split_labeled (--labeled)"
        )
    csv_only = sorted(set(kw) & CSV_OPTIONS) if key != "csv:PATH" else []
    if "data_root" in kw and "data_root" not in _keyword_options(info.loader):
        raise ValueError(f"{name} does not read files under a data root: leave --data-root unset")
    if csv_only:
        raise ValueError(f"{name}: {csv_only} apply to csv:PATH datasets only")
    accepted = _keyword_options(info.loader) - {"seed", "val_protocol", *options}
    unknown = sorted(set(kw) - accepted)
    if unknown:
        raise ValueError(f"{name}: unknown options {unknown}; accepted: {sorted(accepted)}")
    if val_protocol not in ("holdout", "test"):
        raise ValueError(f"val_protocol must be 'holdout' or 'test', got {val_protocol!r}")
    args = (path,) if path is not None else ()
    if info.has_runs:
        return info.loader(*args, seed=seed, val_protocol=val_protocol, **options, **kw)
    data = info.loader(*args, seed=seed, **options, **kw)
    if isinstance(data, DataSplits):
        protocol = "test split (optimistic)" if val_protocol == "test" else "holdout"
        return dataclasses.replace(data, val=data.test if val_protocol == "test" else data.val,
                                   meta={**data.meta, "val_protocol": protocol})
    if val_protocol == "test":
        data.x_val, data.y_val = data.x_test, data.y_test
        data.meta["val_protocol"] = "test split (optimistic)"
    else:
        data.meta["val_protocol"] = "holdout"
    return data
