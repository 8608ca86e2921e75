"""The training configuration: typed defaults, per-dataset presets, YAML files and overrides.

Precedence, lowest first: the defaults below < the dataset's preset (:data:`PRESETS`, the papers'
settings) < a YAML file (``--config``) < explicit overrides (command-line flags). The resolved
configuration is written to the run directory as ``config.yaml`` and is enough to repeat the run.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clss.methods.precision import PRECISIONS
from clss.schema import (
    Spec,
    check_dataclass,
    check_mapping,
    check_value,
    param,
    specs_of,
    unknown_key_message,
)

_MAPPING = {"spec": Spec("mapping")}


@dataclass
class TrainConfig:
    """Everything a training run needs.

    Data: ``dataset`` (``"diabetes"``, ``"operator-sde"``, ``"csv:PATH"``, ``"digits-rotation"``,
    ``"image-csv:PATH"``), ``target`` (CSV column), ``data_dir``, ``data_root`` (image datasets: the folder
    image paths are resolved under; ``image-csv`` defaults to the CSV file's folder), ``manifest`` (the face
    protocols: check your copy against this manifest file instead of the built-in one, e.g. a re-encoded
    copy's checksums), ``preprocessing``
    (``image-csv``: changes to its image preprocessing, keys of :class:`clss.data.ImagePreprocessing`, e.g.
    ``{"resize": [64, 64], "order": "bgr"}``), ``invariant_to`` (``image-csv``: the geometric ops that keep
    the target, e.g. ``["translate", "hflip"]``; default translation only), ``run`` (operator-sde
    1000-row run), ``labeled`` (``"10%"``, ``0.1``, ``250`` or ``"all"``;
    ``None``: every row with a target when some rows have an empty target cell, else ``"20%"``),
    ``unlabeled`` (``"rest"``, a fraction or a count; ``"paper"`` for a dataset's fixed protocol),
    ``val_protocol`` (``"holdout"``; ``"test"`` reproduces the official code's selection on the test set),
    ``standardize`` (``"xy"``: inputs and target, fitted on training rows; ``"y"``, ``"x"`` or ``"none"``).
    CSV files only: ``features`` / ``exclude`` (lists of column names, or comma-separated), ``missing``
    (missing feature cells: ``"error"``, ``"drop"``, ``"mean"``, ``"median"``), ``categorical`` (text
    columns: ``"error"`` or ``"onehot"``); see :func:`clss.data.load_csv`.
    Method: ``method`` and its ``method_params`` (see ``clss methods``). Model: ``model`` (name and
    keyword arguments). Optimisation: ``optimizer`` (name, lr, weight_decay), ``schedule`` (``"constant"``,
    ``"step"`` with ``step_size`` steps and ``gamma``, or ``"cosine"``), ``steps`` (iterations),
    ``batch_size`` / ``unlabeled_batch_size`` (a positive size, ``"all"``: each batch is the whole labelled
    / unlabelled set, or ``None``: full batch, the synthetic protocol; a size larger than its set is capped
    at the set with a warning), ``ssl_mult``.
    Running: ``seed``, ``split_seed`` (defaults to ``seed``), ``eval_every``, ``device``
    (``"auto"``, ``"cpu"``, ``"cuda"``), ``threads`` (torch intra-op threads during the run: ``"auto"``
    picks one thread for small models, see :mod:`clss.engine.threads`; an int is used as given; ``None``
    keeps the process's setting), ``precision`` (the model's forward passes in training: ``"fp32"``,
    ``"bf16"`` or ``"fp16"``, CUDA only; see :class:`clss.methods.Method`), ``sync_batchnorm`` (under
    torchrun on GPUs: batch-norm statistics of the global batch), ``channels_last`` (image models in the
    channels-last memory layout, faster convolutions on recent GPUs), ``cudnn_benchmark`` (let cuDNN time
    and pick its convolution kernels: faster on fixed image sizes, but the choice may vary between runs, so
    results are no longer bit-for-bit repeatable), ``workers`` (DataLoader worker
    processes that decode and augment inputs: ``"auto"`` is 0 for in-memory data and
    ``min(8, cpu_count - 1)`` for file-backed data; an int >= 0 is used as given; results do not depend on
    it), ``pin_memory`` (pinned host batches: ``"auto"`` pins when training on CUDA, or true / false),
    ``hidden_truth`` (pass unlabelled
    targets to methods, for diagnostics only), ``probe_every`` (every N steps, log the norm of each loss
    term's gradient, ``grad_ratio`` and ``grad_cosine`` of the unlabelled against the supervised gradient;
    0: never; see :meth:`clss.methods.Method.optimize`), ``progress``, ``plots`` (draw the run's figures).

    Every key is checked on construction against its declared type and range (:mod:`clss.schema`), as
    are the nested ``method_params`` (the method's ``Params``), ``model``, ``optimizer`` and
    ``schedule`` keys; a bad value raises ValueError naming the key, e.g. ``steps must be an integer
    >= 1, got 0``.
    """

    dataset: str = param("diabetes", "str")
    target: str | None = param(None, "str", optional=True)
    data_dir: str | None = param(None, "str", optional=True)
    data_root: str | None = param(None, "str", optional=True)
    manifest: str | None = param(None, "str", optional=True)
    preprocessing: dict[str, Any] = field(default_factory=dict, metadata=_MAPPING)
    invariant_to: list[str] | str | None = param(None, "names", optional=True)  # noqa: RUF009 (a field, not a call)
    run: int = param(0, "int", ge=0)
    labeled: str | None = None  # checked by clss.data.parse_labeled (None: see data.md)
    unlabeled: str = "rest"  # checked by _check_unlabeled
    val_protocol: str = param("holdout", "str", choices=("holdout", "test"))
    standardize: str = param("xy", "str", choices=("xy", "y", "x", "none"))
    features: list[str] | str | None = param(None, "names", optional=True)  # noqa: RUF009 (a field, not a call)
    exclude: list[str] | str | None = param(None, "names", optional=True)  # noqa: RUF009 (a field, not a call)
    missing: str = param("error", "str", choices=("error", "drop", "mean", "median"))
    categorical: str = param("error", "str", choices=("error", "onehot"))
    method: str = param("gclss", "str")
    method_params: dict[str, Any] = field(default_factory=dict, metadata=_MAPPING)
    model: dict[str, Any] = field(default_factory=lambda: {
        "name": "mlp", "hidden": [100, 100], "dropout": 0.1, "init": "default"}, metadata=_MAPPING)
    optimizer: dict[str, Any] = field(default_factory=lambda: {"name": "adamw", "lr": 1e-3,
                                                               "weight_decay": 0.01}, metadata=_MAPPING)
    schedule: dict[str, Any] = field(default_factory=lambda: {"name": "constant"}, metadata=_MAPPING)
    steps: int = param(2000, "int", ge=1)
    batch_size: int | str | None = param(32, "int", ge=1, words=("all",), optional=True)
    unlabeled_batch_size: int | str | None = param(32, "int", ge=1, words=("all",), optional=True)
    ssl_mult: int = param(1, "int", ge=1)
    seed: int = param(0, "int", ge=0)
    split_seed: int | None = param(None, "int", ge=0, optional=True)
    eval_every: int = param(100, "int", ge=0)
    select_metric: str = param("mae", "str", choices=("mae", "rmse", "mse"))
    device: str = param("auto", "str", check=lambda d: bool(_DEVICE_RE.match(d)),
                        describe="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    threads: int | str | None = param("auto", "int", ge=1, words=("auto",), optional=True)
    precision: str = param("fp32", "str", choices=PRECISIONS)
    sync_batchnorm: bool = param(False, "bool")
    channels_last: bool = param(False, "bool")
    cudnn_benchmark: bool = param(False, "bool")
    workers: int | str = param("auto", "int", ge=0, words=("auto",))
    pin_memory: bool | str = param("auto", "bool", words=("auto",))
    hidden_truth: bool = param(True, "bool")
    probe_every: int = param(0, "int", ge=0)
    progress: bool = param(True, "bool")
    plots: bool = param(True, "bool")

    def __post_init__(self) -> None:
        """Check every key by its declared type and range, and the nested method, model, optimiser and
        schedule keys, so that a bad value is refused by name before a run starts."""
        from clss.data.splits import parse_labeled
        from clss.methods import METHODS, OptimizerConfig
        from clss.models import MODEL_PARAMS

        check_dataclass(self)
        if self.labeled is not None:
            parse_labeled(self.labeled)
        self.unlabeled = _check_unlabeled(self.unlabeled)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(map(repr, METHODS))}, got {self.method!r}")
        self.method_params = METHODS[self.method].Params.check(self.method_params, self.method)
        model_specs = {"name": Spec("str", choices=tuple(MODEL_PARAMS))}
        name = check_value("model.name", self.model.get("name", "mlp"), model_specs["name"])
        self.model = check_mapping(self.model, {**model_specs, **MODEL_PARAMS[name]}, "model.")
        self.optimizer = check_mapping(self.optimizer, specs_of(OptimizerConfig), "optimizer.")
        self.schedule = check_mapping(self.schedule, SCHEDULE_PARAMS, "schedule.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def data_options(self) -> dict[str, Any]:
        """The CSV feature options, ``data_root`` and the image options where they differ from their defaults
        (keyword arguments of ``load_dataset``)."""
        defaults = TrainConfig()
        return {k: getattr(self, k) for k in ("features", "exclude", "missing", "categorical", "data_root",
                                              "manifest", "preprocessing", "invariant_to")
                if getattr(self, k) != getattr(defaults, k)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """A validated configuration from a mapping; unknown keys are refused with the known ones."""
        if not isinstance(values, dict):
            raise ValueError(f"the configuration must be a mapping of keys, got {type(values).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                raise ValueError(unknown_key_message(str(key), str(key), known))
        return cls(**copy.deepcopy(values))


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

#: The ``schedule.*`` keys: ``step`` multiplies the rate by ``gamma`` every ``step_size`` steps.
SCHEDULE_PARAMS = {
    "name": Spec("str", choices=("constant", "step", "cosine")),
    "step_size": Spec("int", ge=1),
    "gamma": Spec("float", gt=0),
}


def _check_unlabeled(value: Any) -> Any:
    """``unlabeled``: ``"rest"``, ``"paper"``, a fraction in (0, 1] or a count >= 1 (a string with a
    decimal point is a fraction, as ``--unlabeled`` gives it); returned unchanged."""
    if isinstance(value, str) and value in ("rest", "paper"):
        return value
    number: float | int | None = None
    if not isinstance(value, bool):
        try:
            number = float(value) if isinstance(value, float) or "." in str(value) else int(value)
        except (TypeError, ValueError):
            number = None
    if (isinstance(number, float) and 0 < number <= 1) or (isinstance(number, int) and number >= 1):
        return value
    raise ValueError(f"unlabeled must be 'rest', 'paper', a fraction in (0, 1] or a count >= 1, "
                     f"got {value!r}")


_FACE_PRESET: dict[str, Any] = {
    "model": {"name": "resnet50"},
    "optimizer": {"name": "adam", "lr": 5e-4, "weight_decay": 1e-3},
    "unlabeled": "paper",
    "standardize": "y",
    "batch_size": 32,
    "unlabeled_batch_size": 8,
}

# The order-learning age benchmarks (ConOrd's protocol: Adam with weight decay 5e-4, a cosine schedule,
# batches of 128; its lr 5e-6 is for a pretrained ViT-B, 1e-4 suits a ResNet-50).
_ORDER_PRESET: dict[str, Any] = {
    "model": {"name": "resnet50"},
    "optimizer": {"name": "adam", "lr": 1e-4, "weight_decay": 5e-4},
    "schedule": {"name": "cosine"},
    "standardize": "y",
    "batch_size": 128,
    "unlabeled_batch_size": 128,
}

# The papers' settings per dataset (the official CLSS/GCLSS scripts and papers); keys merge into the defaults.
PRESETS: dict[str, dict[str, Any]] = {
    "operator-sde": {
        # The synthetic scripts initialise N(0, 0.001²); at that scale GCLSS's unlabelled losses drive the
        # ReLUs dead before the regression signal grows (measured: constant predictions at step 1200), so
        # every method uses PyTorch's initialisation here (model.init=paper restores the scripts' choice).
        # GCLSS needs two differing stochastic passes, hence dropout; every method gets the same model so
        # that comparisons measure the methods, not the regulariser (dropout alone closed most of the gap
        # between supervised and GCLSS in our measurements).
        "model": {"name": "mlp", "hidden": [100, 100], "dropout": 0.05, "init": "default"},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
        "labeled": "20%",
        "unlabeled": "paper",
        # The 240 KL inputs are sqrt(eigenvalue)-scaled eigenfunctions: their decaying scales say how much
        # each coordinate matters, and per-feature standardisation inflates the near-zero high-order ones to
        # unit variance (measured, supervised 1/5, 4k steps, runs 0-2: test MAE 0.068 standardised, 0.042
        # raw). The official scripts feed raw inputs too; the target stays standardised.
        "standardize": "y",
        "batch_size": None,
        "unlabeled_batch_size": None,
        "steps": 20000,
        "eval_every": 500,
        "threads": 1,
        "method_params": {"contrastive_weight": 1e-3, "contrastive_rows": 10, "oe_variant": "pairwise"},
    },
    "diabetes": {
        "model": {"name": "mlp", "hidden": [64, 64], "dropout": 0.1, "init": "default"},
        "steps": 600,
        "eval_every": 50,
        "threads": 1,
        "batch_size": 16,
        "unlabeled_batch_size": 16,
    },
    # 8x8 one-channel digits: a small CNN (dropout for GCLSS's two stochastic passes). Measured, one
    # loaded CPU thread, supervised on 107 labels for 600 steps of 32: test MAE 6.5 degrees with 32
    # channels, 8.6 with 16. Inputs are normalised by the dataset (estimated mean/std), so only the target
    # is standardised here.
    "digits-rotation": {
        "model": {"name": "cnn", "channels": 32, "blocks": 2, "dropout": 0.1},
        "standardize": "y",
        "steps": 500,
        "eval_every": 50,
        "batch_size": 32,
        "unlabeled_batch_size": 64,
    },
    # Users' own tables: no labelled contrastive term. The CLSS papers' pipeline adds Ordinal Entropy to the
    # labelled loss (supervised, clss, gclss); measured on three registry tables (concrete, computers,
    # diamonds; 1/30, 1/10, 1/5 labels, 5 seeds, docs/benchmarks.md) it costs supervised 3-14 % of test MAE
    # where it matters and never helps it, and gclss does as well or better without it (clss gains from it
    # only at 1/30 on concrete). The other methods regress with their loss alone already.
    "csv": {"method_params": {"contrastive": "none"}},
    # Users' own image folders: ResNet-18 (ImageNet-normalised 224x224 RGB inputs by default); weights
    # only from a local file (--set model.weights=PATH).
    "image-csv": {
        "model": {"name": "resnet18"},
        "standardize": "y",
        "batch_size": 32,
        "unlabeled_batch_size": 32,
    },
    # The face-age protocols (CLSS/GCLSS scripts: Adam with coupled L2, StepLR every 10 of 30 epochs,
    # labelled/unlabelled batches 32/8; an epoch is labels x ssl_mult / 32 steps). ImageNet weights come
    # from a local file: --set model.weights=PATH.
    "agedb-dir": _FACE_PRESET | {"labeled": "407", "ssl_mult": 6, "steps": 2280, "eval_every": 76,
                                 "schedule": {"name": "step", "step_size": 760, "gamma": 0.1}},
    "agedb-dir-rgb": _FACE_PRESET | {"labeled": "407", "ssl_mult": 6, "steps": 2280, "eval_every": 76,
                                     "schedule": {"name": "step", "step_size": 760, "gamma": 0.1}},
    "utkface": _FACE_PRESET | {"labeled": "500", "ssl_mult": 4, "steps": 1890, "eval_every": 63,
                               "schedule": {"name": "step", "step_size": 630, "gamma": 0.1}},
    # Adience's age groups as CLOC trains them: ResNet-50, Adam at 1e-3, batches of 64.
    "adience": {"model": {"name": "resnet50"}, "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
                "standardize": "y", "batch_size": 64, "unlabeled_batch_size": 64},
    "morph2": _ORDER_PRESET,
    "clap2015": _ORDER_PRESET,
    "utkface-coral": _ORDER_PRESET,
    "cacd": _ORDER_PRESET,
    # RankUp (USB): WRN-28-2 at 40 px, SGD lr 0.01 momentum 0.9 wd 1e-3, batch 32 with 7x unlabelled,
    # cosine decay over 262 144 iterations (days on one GPU; lower steps for a quick run).
    "utkface-rankup": {
        "model": {"name": "wrn28_2"},
        "optimizer": {"name": "sgd", "lr": 0.01, "weight_decay": 1e-3, "momentum": 0.9},
        "schedule": {"name": "cosine"},
        "labeled": "250",
        "standardize": "y",
        "batch_size": 32,
        "unlabeled_batch_size": 224,
        "steps": 262144,
        "eval_every": 2048,
    },
}

def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: nested dicts merge key by key, everything else is replaced.

    A nested dict whose ``name`` changes (another model, optimiser or schedule) replaces the old one
    whole: the old one's keys belong to the other name (``hidden`` is an MLP key, not a ResNet's).
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        renamed = (isinstance(value, dict) and isinstance(out.get(key), dict) and "name" in value
                   and value["name"] != out[key].get("name"))
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not renamed:
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class _Loader(yaml.SafeLoader):
    """YAML with the 1.2 reading of exponent floats: PyYAML (YAML 1.1) reads ``1e-3`` as a string."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float",
                              re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
                              list("-+0123456789."))


def _load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no arbitrary objects


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=value", ...]`` (the command line's ``--set``) into a nested dict; values are YAML scalars
    (``1e-3`` is a float, ``null`` is None, ``[64, 64]`` a list).

    >>> parse_overrides(["model.dropout=0.2", "steps=100", "optimizer.lr=1e-3"])
    {'model': {'dropout': 0.2}, 'steps': 100, 'optimizer': {'lr': 0.001}}
    """
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ValueError(f"--set expects KEY=VALUE with a key like 'steps' or 'model.dropout', "
                             f"got {item!r}")
        try:
            value = _load(raw)
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {key}: cannot read the value {raw!r} ({_yaml_problem(exc)})") from None
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--set {key}: {'.'.join(parts[:i + 1])} is already set to a value")
            node = child
        node[parts[-1]] = value
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML configuration file (a mapping of :class:`TrainConfig` keys)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"configuration file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"the configuration file {p} is a directory; pass a YAML file")
    try:
        values = _load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a text (UTF-8) YAML file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{p} is not valid YAML: {_yaml_problem(exc)}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{p} must hold a mapping of configuration keys (key: value lines), got a "
                         f"{type(values).__name__}")
    return values


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from a YAML error: the problem and where (PyYAML's own text spans several lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else problem


def resolve_config(file_values: dict[str, Any] | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults < dataset preset < the method's preset for that dataset (:func:`method_preset`) <
    ``file_values`` < ``overrides``.

    The dataset and method that select the presets are the ones the file and overrides ask for. A file or
    override naming another model than the preset's replaces the preset's ``model`` keys (see
    :func:`merge_dicts`): they belong to the preset's model.
    """
    file_values = dict(file_values or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    chosen = merge_dicts(merge_dicts(TrainConfig().to_dict(), file_values), overrides)
    dataset_key = _preset_key(str(chosen["dataset"]))
    values = merge_dicts(TrainConfig().to_dict(), _dataset_preset(dataset_key, str(chosen["method"])))
    values = merge_dicts(values, method_preset(str(chosen["method"]), dataset_key))
    values = merge_dicts(merge_dicts(values, file_values), overrides)
    return TrainConfig.from_dict(values)


def _dataset_preset(dataset_key: str, method: str) -> dict[str, Any]:
    """The dataset's preset, its ``method_params`` cut to the keys ``method`` has: a dataset's method
    settings (the synthetic scripts' labelled-term weight, say) speak for the methods that have them."""
    from clss.methods import METHODS
    from clss.schema import specs_of

    preset = copy.deepcopy(PRESETS.get(dataset_key, {}))
    cls = METHODS.get(method)
    if cls is not None and "method_params" in preset:
        known = specs_of(cls.Params)
        preset["method_params"] = {k: v for k, v in preset["method_params"].items() if k in known}
    return preset


def method_preset(method: str, dataset_key: str) -> dict[str, Any]:
    """The settings ``method`` declares for a dataset's preset (:attr:`clss.methods.Method.presets`); empty
    for an unknown method (the configuration check names it) or dataset."""
    from clss.methods import METHODS

    cls = METHODS.get(method)
    return copy.deepcopy(cls.presets.get(dataset_key, {})) if cls is not None else {}


def _preset_key(dataset: str) -> str:
    """The :data:`PRESETS` key of a dataset name: ``csv:PATH`` → ``csv``, ``image-csv:PATH`` →
    ``image-csv``."""
    from clss.data import dataset_key

    key = dataset_key(dataset)
    return dataset if key is None else key.removesuffix(":PATH")
