"""What ``clss datasets`` shows: each built-in dataset, its size, presets and whether it is on this machine.

Nothing here loads or generates data: sizes are the datasets' fixed layouts and availability is a check
for files.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from clss.data import DATASETS
from clss.data.faces import FACE_DATASETS
from clss.data.operator_sde import GENERATOR_VERSION, SPLITS, _cache_root

__all__ = ["DatasetEntry", "describe_datasets"]

# The generator's defaults (load_operator_sde); the cached files of any other setting are not looked for.
_GENERATOR_DEFAULTS = {"seed": 0, "n_functions": 1000, "n_points": 10, "mc_samples": 20000}


@dataclass(frozen=True)
class DatasetEntry:
    """One row of :func:`describe_datasets`.

    Attributes
    ----------
    name : str
        The ``--dataset`` value (``csv:PATH`` as a pattern).
    description : str
        One line: what the data is.
    features : int or None
        Input columns of a table (None: images, or depends on the file).
    target : str
        Target column.
    rows : dict of str to int
        Rows per split as the trainer uses them (empty: depends on the file).
    preset : dict
        Configuration keys the dataset's preset sets (``clss.config.PRESETS``).
    method_presets : dict of str to dict
        Extra keys per method (:attr:`clss.methods.Method.presets`).
    available : bool or None
        Whether the data is on this machine (None: a file the user names).
    location : str
        Where the data is, or what happens on first use.
    inputs : str
        What one input is (e.g. "241 features", "1x8x8 grayscale images").
    """

    name: str
    description: str
    features: int | None
    target: str
    rows: dict[str, int] = field(default_factory=dict)
    preset: dict[str, Any] = field(default_factory=dict)
    method_presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    available: bool | None = None
    location: str = ""
    inputs: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the fields."""
        return asdict(self)


def _generator_folder(seed: int, n_functions: int, n_points: int, mc_samples: int) -> Path:
    """The cache folder :func:`clss.data.generate_operator_sde` writes for these settings (a test keeps
    the two in step)."""
    return _cache_root() / f"v{GENERATOR_VERSION}-seed{seed}-f{n_functions}-q{n_points}-mc{mc_samples}"


def _operator_sde_location(data_dir: str | os.PathLike[str] | None) -> tuple[bool, str]:
    explicit = data_dir if data_dir is not None else os.environ.get("CLSS_OPERATOR_SDE_DIR")
    folder = Path(explicit).expanduser() if explicit is not None else _generator_folder(**_GENERATOR_DEFAULTS)
    missing = [f"{s}_sde.npz" for s in SPLITS if not (folder / f"{s}_sde.npz").is_file()]
    if explicit is not None:
        origin = "--data-dir" if data_dir is not None else "$CLSS_OPERATOR_SDE_DIR"
        if missing:
            return False, f"{origin} {folder} lacks {', '.join(missing)}"
        return True, f"published files in {folder} ({origin})"
    if missing:
        return False, (f"not generated yet: the first run generates it into {folder} (minutes, once), or "
                       f"point --data-dir or $CLSS_OPERATOR_SDE_DIR at the published files")
    return True, f"generated files in {folder}"


def _face_layout(name: str) -> dict[str, Any]:
    proto = FACE_DATASETS[name]
    size = "x".join(str(s) for s in proto.preprocessing["resize"])
    target = f"age group (classes 0-{len(proto.classes) - 1})" if proto.classes else "age (years)"
    return dict(features=None, inputs=f"3x{size} face images ({proto.preprocessing['order'].upper()})",
                target=target, rows=dict(proto.manifest["splits"]), available=None,
                location=f"your copy (--data-root DIR); check it first: clss data check {name} "
                         "--data-root DIR")


def _diabetes_location() -> tuple[bool, str]:
    folder = resources.files("sklearn.datasets.data")
    files = ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz")
    present = all(folder.joinpath(f).is_file() for f in files)
    return present, "bundled with scikit-learn" if present else "missing from this scikit-learn install"


def describe_datasets(data_dir: str | os.PathLike[str] | None = None) -> list[DatasetEntry]:
    """The built-in datasets and the CSV form, with sizes, presets and local availability.

    Parameters
    ----------
    data_dir : str or PathLike, optional
        Where to look for the published operator-sde files (as ``clss train --data-dir``); default
        ``$CLSS_OPERATOR_SDE_DIR``, else the generator's cache (``$CLSS_CACHE_DIR`` or ``~/.cache/clss``).

    Returns
    -------
    list of DatasetEntry
        In the order of :data:`clss.data.DATASETS` (operator-sde, diabetes, csv:PATH).
    """
    from clss.config import PRESETS
    from clss.methods import METHODS

    def presets(key: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        per_method = {m: copy.deepcopy(cls.presets[key]) for m, cls in METHODS.items() if key in cls.presets}
        return copy.deepcopy(PRESETS.get(key, {})), per_method

    sde_available, sde_location = _operator_sde_location(data_dir)
    diabetes_available, diabetes_location = _diabetes_location()
    layout = {
        "operator-sde": dict(
            features=241, inputs="241 features", target="mean_solution",
            # Per run: the train file's slice, the next run's slice as validation, the whole test file.
            rows={"runs": 10, "train": 1000, "val": 1000, "test": 10000},
            available=sde_available, location=sde_location),
        "diabetes": dict(features=10, inputs="10 features", target="progression",
                         rows={"train": 266, "val": 88, "test": 88},
                         available=diabetes_available, location=diabetes_location),
        "csv:PATH": dict(features=None, inputs="the file's feature columns",
                         target="the column named by --target", rows={}, available=None,
                         location="your file; seeded 60/20/20 split unless it has a 'split' column"),
        # digits-rotation: 1797 images cut 60/20/20 by the split seed (1079/359/359).
        "digits-rotation": dict(features=None, inputs="1x8x8 grayscale images",
                                target="rotation angle (degrees)",
                                rows={"train": 1079, "val": 359, "test": 359}, available=True,
                                location="generated in memory from scikit-learn's bundled digits"),
        "image-csv:PATH": dict(features=None, inputs="your images (RGB, resized to 224 unless smaller)",
                               target="the CSV's target column", rows={}, available=None,
                               location="your CSV of path,target rows and the images under --data-root"),
        **{name: _face_layout(name) for name in FACE_DATASETS},
    }
    unknown = dict(features=None, target="", rows={}, available=None, location="")
    entries = []
    for name, info in DATASETS.items():
        preset, method_presets = presets(name.removesuffix(":PATH"))
        entries.append(DatasetEntry(name=name, description=info.description, preset=preset,
                                    method_presets=method_presets, **layout.get(name, unknown)))
    return entries
