"""The training loop: data, splits, method, schedule, evaluation, checkpoints, run directory, resume.

``train(config)`` is what ``clss train`` runs. The method performs each step (see
:mod:`clss.methods.base`); this loop feeds it batches from :class:`clss.data.SemiSupervisedSampler`,
steps the learning-rate schedules, evaluates on the validation split every ``eval_every`` steps, keeps
the best-on-validation weights, writes ``last.pt`` atomically at every evaluation (and on Ctrl-C, after
completing the step under way), and finishes with test metrics, predictions and plots. A resumed run
restores every random state, so it ends with the same metrics and the same log as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shlex
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from clss.config import TrainConfig
from clss.data import (
    DataSplits,
    ImagePreprocessing,
    InputSpec,
    RegressionData,
    RegressionDataset,
    SemiSupervisedLoader,
    SemiSupervisedSampler,
    Splits,
    Standardizer,
    TabularDataset,
    dataset_info,
    load_dataset,
    parse_labeled,
    predict_dataset,
    split_labeled,
)
from clss.data.loader import TABULAR_BATCH, resolve_pin_memory, resolve_workers
from clss.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from clss.engine.ddp import Distributed, agree, attach, barrier, locally, start_distributed
from clss.engine.plots import (
    plot_learning_curves,
    plot_margins,
    plot_predictions,
    plot_similarity_reordering,
)
from clss.engine.predict import UNLABELED_PREDICTIONS, write_predictions_csv
from clss.engine.progress import TrainingProgress
from clss.engine.rundir import RunDir, run_status
from clss.engine.threads import restores_torch_threads, run_threads
from clss.methods import METHODS, Method, NonFiniteLossError, OptimizerConfig, TrainingContext, build_method
from clss.metrics import nearest_class_metrics, regression_metrics
from clss.models import build_model


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the run stopped and its last good checkpoint was kept."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped a run; ``step`` is the step of its ``last.pt`` in ``run_dir``,
    the point a resume (``train(None, run_dir, resume=True)``, ``clss train --resume RUN_DIR``) continues
    from."""

    def __init__(self, run_dir: Path, step: int) -> None:
        super().__init__(f"interrupted at step {step}; checkpoint saved; resume with: clss train --resume "
                         f"{shlex.quote(str(run_dir))}")
        self.run_dir, self.step = run_dir, step


@dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, final metrics and the trained method (best weights).

    ``already_finished`` is True when a resumed run had finished before; nothing was written then.
    """

    run_dir: Path
    summary: dict[str, Any]
    method: Method
    already_finished: bool = False


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was requested but no CUDA device is available; use device 'cpu' "
                         f"or 'auto'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} does not exist: {torch.cuda.device_count()} CUDA device(s) "
                         f"are visible")
    return device


STANDARDIZE = ("xy", "y", "x", "none")


def _standardize_sides(spec: str) -> dict[str, bool]:
    if spec not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, got {spec!r}")
    return {"inputs": "x" in spec, "targets": "y" in spec}


def load_data(cfg: TrainConfig) -> DataSplits:
    """The dataset of a run's configuration, as :func:`train` loads it (its split seed, protocol, target and
    data options): e.g. to fit other models on a finished run's rows (``splits.json`` indexes ``train``)."""
    fraction, options = None, cfg.data_options()
    if cfg.unlabeled == "paper":
        info = dataset_info(cfg.dataset)
        spec = str(cfg.labeled).strip()
        if info is not None and info.label_files:  # a published split file, chosen by its label count
            if not spec.isdigit():
                raise ValueError(f"unlabeled='paper' on {cfg.dataset} takes the label count of a published "
                                 f"split file, e.g. --labeled 500; got {cfg.labeled!r}")
            options["labels"] = int(spec)
        else:
            if cfg.labeled is None:
                raise ValueError("unlabeled='paper' needs the paper's labelled fraction, e.g. --labeled 20%")
            parsed = parse_labeled(spec)  # 20%, 0.2 or 1/5
            fraction = float(parsed.value) if parsed.kind == "fraction" else math.nan
            if not 0 < fraction <= 0.5:
                raise ValueError("unlabeled='paper' takes labeled as a fraction in (0, 0.5] (the paper's "
                                 "protocol uses as many unlabelled as labelled rows)")
    return _as_splits(load_dataset(cfg.dataset, seed=cfg.seed if cfg.split_seed is None else cfg.split_seed,
                                   data_dir=cfg.data_dir, target=cfg.target, run=cfg.run, fraction=fraction,
                                   val_protocol=cfg.val_protocol, **options))


def _as_splits(data: RegressionData | DataSplits) -> DataSplits:
    if isinstance(data, RegressionData):
        return data.as_splits()
    if isinstance(data, DataSplits):
        return data
    raise TypeError(f"data must be a RegressionData or a DataSplits, got {type(data).__name__}")


def _splits(cfg: TrainConfig, data: DataSplits, method: Method) -> Splits:
    """The labelled and unlabelled rows of the run. A method with ``all_labels`` (the fully supervised
    upper bound) takes the rows a semi-supervised run of the same configuration would see, all labelled."""
    if cfg.unlabeled == "paper":
        if data.labeled is None or data.unlabeled is None:
            raise ValueError(f"dataset {cfg.dataset!r} has no fixed paper protocol; use unlabeled='rest'")
        splits = Splits(labeled=data.labeled, unlabeled=data.unlabeled)
    else:
        unlabeled: Any = cfg.unlabeled
        if isinstance(unlabeled, str) and unlabeled != "rest":
            unlabeled = float(unlabeled) if "." in unlabeled else int(unlabeled)
        seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
        splits = split_labeled(len(data.train), cfg.labeled, seed=seed, unlabeled=unlabeled,
                               require_unlabeled=method.requires_unlabeled or method.all_labels,
                               no_target=data.no_target)
    if method.all_labels:
        # data.no_target, not splits.no_target: a protocol's fixed split records no rows without a target
        with_target = np.setdiff1d(splits.unlabeled, data.no_target)
        splits = dataclasses.replace(splits, labeled=np.union1d(splits.labeled, with_target).astype(np.int64),
                                     unlabeled=np.empty(0, dtype=np.int64),
                                     extra={**splits.extra, "all_labels": True})
    return splits


def _build_method(cfg: TrainConfig, input: InputSpec, *, pretrained: bool = True) -> Method:
    """The configured method around a freshly initialised model (draws from the global torch RNG), in the
    configured precision (fp16 is refused here, before anything is written, unless the device is CUDA).
    ``pretrained=False`` ignores ``model.weights``: a checkpoint's weights replace the model's (resume,
    predict), so the file that started the training need not exist any more."""
    from clss.methods.precision import check_precision

    check_precision(cfg.precision, _device(cfg.device))
    drop = ("name",) if pretrained else ("name", "weights")
    model_kwargs = {k: v for k, v in cfg.model.items() if k not in drop}
    return build_method(cfg.method, lambda: build_model(cfg.model.get("name", "mlp"), input, **model_kwargs),
                        OptimizerConfig(**cfg.optimizer), {"seed": cfg.seed, **cfg.method_params},
                        precision=cfg.precision)


def _schedule(cfg: TrainConfig, steps: int) -> Callable[[int], float]:
    """The learning-rate factor after ``k`` steps of an optimiser that trains for ``steps`` steps (the
    whole run for most methods; one stage of a two-stage recipe, whose schedule steps only in its stage)."""
    name = cfg.schedule.get("name", "constant")
    if name == "constant":
        return lambda k: 1.0
    if name == "step":
        size = int(cfg.schedule.get("step_size", max(1, steps // 3)))
        gamma = float(cfg.schedule.get("gamma", 0.1))
        return lambda k: gamma ** (k // size)
    if name == "cosine":
        return lambda k: 0.5 * (1 + math.cos(math.pi * min(k, steps) / steps))
    raise ValueError(f"schedule name must be 'constant', 'step' or 'cosine', got {name!r}")


def _active_window(windows: list[tuple[int, int]], step: int) -> int:
    """The optimiser whose window holds ``step`` (0 when none does)."""
    return next((k for k, (a, n) in enumerate(windows) if a <= step < a + n), 0)


def _fit_standardizer(data: DataSplits, y_rows: np.ndarray, *, inputs: bool, targets: bool) -> Standardizer:
    """Target statistics on ``y_rows`` (the labelled rows); input statistics on every training row of a
    table. Other inputs are normalised by their dataset's preprocessing: their input side is empty."""
    y = data.train.targets[y_rows]
    if isinstance(data.train, TabularDataset):
        return Standardizer.fit(data.train.x, y, inputs=inputs, targets=targets)
    return Standardizer.fit(np.zeros((y.shape[0], 0)), y, inputs=False, targets=targets)


def _network_inputs(ds: RegressionDataset, std: Standardizer) -> RegressionDataset:
    """``ds`` as the network sees it: a table's rows standardised, other inputs as given."""
    if isinstance(ds, TabularDataset):
        return TabularDataset(std.transform_x(ds.x), ds.targets, ds.input.feature_names)
    return ds


def predict_batched(method: Method, x: torch.Tensor, batch_size: int = TABULAR_BATCH) -> torch.Tensor:
    """Standardised predictions ``[n]`` of ``method`` on in-memory inputs ``x``, ``batch_size`` rows per
    forward pass."""
    return torch.cat([method.predict(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def evaluate(method: Method, dataset: RegressionDataset, inverse: Callable[[np.ndarray], np.ndarray], *,
             device: torch.device, rows: np.ndarray | None = None, workers: int = 0,
             pin_memory: bool = False, transform: Callable[[np.ndarray], np.ndarray] | None = None,
             classes: Any = None) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of ``method`` on ``dataset`` (network inputs; ``rows`` of it when given) in the original
    target units, and its predictions ``[n]``. With ``classes`` (the ordered class values of an ordinal
    classification dataset) the nearest-class accuracy, MAE in classes and kappa are added; with
    ``transform`` (target units to standardised, the inverse of ``inverse``) the method's own metrics
    (:meth:`Method.metrics`, which take precedence)."""
    y_true = dataset.targets if rows is None else dataset.targets[rows]
    pred = predict_dataset(method.predict, dataset, device=device, rows=rows, workers=workers,
                           pin_memory=pin_memory).double().cpu().numpy()
    metrics, out = _scored(y_true, inverse(pred), classes)
    if transform is not None:
        metrics.update(method.metrics(transform(y_true), pred))
    return metrics, out


def _scored(y_true: np.ndarray, y_pred: np.ndarray, classes: Any = None
            ) -> tuple[dict[str, float], np.ndarray]:
    if not np.all(np.isfinite(y_pred)):
        nan = {"mae": math.nan, "mse": math.nan, "rmse": math.nan, "r2": math.nan}
        if classes is not None:
            nan |= {"accuracy": math.nan, "mae_classes": math.nan, "qwk": math.nan}
        return nan, y_pred
    metrics = regression_metrics(y_true, y_pred)
    if classes is not None:
        metrics.update(nearest_class_metrics(y_true, y_pred, classes))
    return metrics, y_pred


# Settings that a resumed run may change (the rest define the run and stay as in config.yaml). eval_every is
# not among them: it decides which weights best.pt holds and which lines metrics.jsonl has.
# Neither do workers nor pin_memory: augmentation draws do not depend on them.
RESUME_OVERRIDES = ("steps", "device", "threads", "progress", "workers", "pin_memory", "sync_batchnorm")
# What the trainer's last.pt holds (format marker "train") and what best.pt holds ("weights").
TRAIN_KEYS = ("step", "best", "method", "optimizers", "schedulers", "sampler", "rng", "standardizer")
WEIGHTS_KEYS = ("method", "standardizer")


@dataclass
class _Session:
    """Everything a run needs in memory, built and validated before anything is written."""

    cfg: TrainConfig
    data: DataSplits
    device: torch.device
    method: Method
    splits: Splits
    std: Standardizer
    optimizers: list[torch.optim.Optimizer]
    schedulers: list[torch.optim.lr_scheduler.LRScheduler]
    windows: list[tuple[int, int]]  # (first step, steps) of each optimiser (Method.optimizer_windows)
    sampler: SemiSupervisedSampler
    loader: SemiSupervisedLoader
    workers: int  # resolved DataLoader workers
    pin_memory: bool
    ddp: Distributed | None = None  # this process's place in a torchrun job (None: one process)
    indexed_at: int = -1  # the step whose weights a k-NN method's index holds (_index_training_rows)

    def inputs(self, split: str) -> RegressionDataset:
        """A split (``"train"``, ``"val"``, ``"test"``) as the network sees it."""
        return _network_inputs(getattr(self.data, split), self.std)

    def predict(self, split: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Predictions (target units) on a split (``rows`` of it), through the loader."""
        pred = predict_dataset(self.method.predict, self.inputs(split), device=self.device, rows=rows,
                               workers=self.workers, pin_memory=self.pin_memory)
        return self.std.inverse_y(pred.double().cpu().numpy())

    def state(self, step: int, best: float, seconds: float) -> dict[str, Any]:
        """The training state after ``step`` (for ``last.pt``)."""
        return {"step": step, "best": best, "seconds": seconds, "config": _identity(self.cfg),
                "method": self.method.state_dict(),
                "optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() for s in self.schedulers],
                "sampler": self.loader.sampler_state(), "rng": capture_rng_state(),
                "standardizer": self.std.state_dict()}

    def restore(self, state: dict[str, Any], path: Path) -> tuple[int, float, float]:
        """Load ``state`` (from ``path``); returns its step, best score and training seconds."""
        _load_weights(self.method, state, path, self.cfg)
        counts = len(state["optimizers"]), len(state["schedulers"])
        if counts != (len(self.optimizers), len(self.schedulers)):
            raise ValueError(f"{path} holds {counts[0]} optimiser state(s), but method {self.cfg.method!r} "
                             f"uses {len(self.optimizers)}; the checkpoint is from another method")
        try:
            for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
                opt.load_state_dict(s)
            for sch, s in zip(self.schedulers, state["schedulers"], strict=True):
                sch.load_state_dict(s)
            self.sampler.load_state_dict(state["sampler"])
            restore_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{path} does not fit the run configured in its config.yaml ({exc}); it is "
                             f"from another run") from None
        return int(state["step"]), float(state["best"]), float(state.get("seconds", 0.0))


def _identity(cfg: TrainConfig) -> dict[str, Any]:
    """The settings that define a run (all but :data:`RESUME_OVERRIDES`), as plain JSON values."""
    return json.loads(json.dumps({k: v for k, v in cfg.to_dict().items() if k not in RESUME_OVERRIDES},
                                 default=str))


def _load_weights(method: Method, state: dict[str, Any], path: Path, cfg: TrainConfig) -> None:
    """``state["method"]`` into ``method``, after checking that the checkpoint belongs to this run."""
    saved = state.get("config")  # absent in checkpoints of older clss versions
    if saved is not None:
        current = _identity(cfg)
        # A key added to clss after the checkpoint was written had its default then (older runs ran as
        # the default does); saved values are compared as JSON text: NaN equals NaN.
        saved = {**_identity(TrainConfig()), **saved}
        diff = [k for k in sorted(set(saved) | set(current))
                if json.dumps(saved.get(k), sort_keys=True) != json.dumps(current.get(k), sort_keys=True)]
        if diff:
            shown = ", ".join(f"{k}={saved.get(k)!r} (config.yaml: {current.get(k)!r})" for k in diff[:3])
            raise ValueError(f"{path} is the checkpoint of another run: {shown}; use it with the run "
                             f"directory it was written in")
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        detail = lines[1].strip() if len(lines) > 1 else lines[0]  # torch's first mismatch
        raise ValueError(f"{path} holds weights of another model or method than this run's (method "
                         f"{cfg.method!r}, model {cfg.model}): {detail}") from None


def _load_best(run: RunDir, s: _Session) -> int:
    """Put ``best.pt``'s weights (if any) into the method; returns the step of the weights it now holds."""
    path = run.checkpoint_path("best")
    if not path.exists():
        return s.cfg.steps
    state = load_checkpoint(path, map_location=s.device, kind="weights", keys=WEIGHTS_KEYS)
    _load_weights(s.method, state, path, s.cfg)
    return int(state["step"])


def _prepare(cfg: TrainConfig, data: RegressionData | DataSplits | None, *, resume: bool = False,
             ddp: Distributed | None = None) -> _Session:
    """Check the configuration, load the data, build the splits, method, optimisers and sampler.

    Writes nothing, so a refused configuration leaves no trace on disk (the configuration's own keys were
    checked when the TrainConfig was built). Under torchrun (``ddp``) every process builds the same run on
    its own device and the method trains on its share of each batch (:func:`clss.engine.ddp.attach`).
    """
    sides = _standardize_sides(cfg.standardize)
    _schedule(cfg, cfg.steps)  # refuse an unknown schedule before loading anything
    device = _device(cfg.device) if ddp is None else ddp.device
    pin_memory = resolve_pin_memory(cfg.pin_memory, device)
    data = load_data(cfg) if data is None else _as_splits(data)
    workers = resolve_workers(cfg.workers, in_memory=data.train.in_memory)
    torch.manual_seed(cfg.seed)  # model initialisation and dropout draw from the global torch RNG
    method = _build_method(cfg, data.input, pretrained=not resume).to(device)
    if cfg.channels_last and len(data.input.shape) == 3:
        method.to(memory_format=torch.channels_last)
    if cfg.cudnn_benchmark and device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # process-wide; off by default: it breaks bit-exact repeats
    if ddp is not None:
        attach(method, ddp, sync_batchnorm=cfg.sync_batchnorm)
    elif cfg.sync_batchnorm:
        warnings.warn("sync_batchnorm applies under torchrun only; this single-process run ignores it",
                      stacklevel=3)
    splits = _splits(cfg, data, method)
    threads = run_threads(cfg.threads, method,
                          labeled_rows=_rows_per_step(cfg.batch_size, len(splits.labeled)),
                          unlabeled_rows=_rows_per_step(cfg.unlabeled_batch_size, len(splits.unlabeled))
                          if method.semi_supervised else 0)
    if ddp is not None and cfg.threads == "auto":  # the machine's cores are shared by its processes
        threads = max(1, min(threads, (os.cpu_count() or 1) // ddp.local_world_size))
    torch.set_num_threads(threads)
    std = _fit_standardizer(data, splits.labeled, **sides)
    method.setup(TrainingContext(
        total_steps=cfg.steps, train_size=len(data.train),
        labeled_y=torch.as_tensor(std.transform_y(data.train.targets[splits.labeled])).to(device),
        unlabeled_index=torch.as_tensor(splits.unlabeled if method.semi_supervised else [],
                                        dtype=torch.int64, device=device)))
    optimizers = method.configure_optimizers()
    windows = method.optimizer_windows(cfg.steps)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, n))
                  for opt, (_, n) in zip(optimizers, windows, strict=True)]
    unlabeled = splits.unlabeled if method.semi_supervised else np.empty(0, dtype=np.int64)
    sampler = SemiSupervisedSampler(splits.labeled, unlabeled,
                                    batch_size=cfg.batch_size,  # None: full batch; sizes >= 1 or "all"
                                    unlabeled_batch_size=(cfg.unlabeled_batch_size
                                                          if cfg.unlabeled_batch_size is not None else "all"),
                                    ssl_mult=cfg.ssl_mult, seed=cfg.seed,
                                    full_batch=cfg.batch_size is None)
    hidden_truth = cfg.hidden_truth and data.no_target.size == 0  # empty target cells have no truth
    loader = SemiSupervisedLoader(_network_inputs(data.train, std), sampler,
                                  labeled_views=method.labeled_views, unlabeled_views=method.unlabeled_views,
                                  targets=torch.as_tensor(std.transform_y(data.train.targets)),
                                  hidden_truth=hidden_truth, pipelines=data.pipelines, seed=cfg.seed,
                                  device=device, workers=workers, pin_memory=pin_memory)
    return _Session(cfg, data, device, method, splits, std, optimizers, schedulers, windows, sampler, loader,
                    workers, pin_memory, ddp)


def _preprocessing(data: DataSplits) -> dict[str, Any]:
    """What ``clss predict`` needs to turn new files into this run's inputs: the input description, feature
    names, target name, the fitted CSV encoding (when the data set has one) and, for images, the resolved
    :class:`~clss.data.ImagePreprocessing` (normalisation statistics included) evaluation decodes with."""
    out: dict[str, Any] = {"input": data.input.to_dict(), "features": list(data.input.feature_names),
                           "target": data.target_name}
    if data.encoding is not None:
        out["encoding"] = data.encoding.to_dict()
    if data.input.kind == "image":  # None: a dataset that decodes no files (in-memory data=)
        preprocessing = getattr(data.train, "preprocessing", None)
        out["image_preprocessing"] = (preprocessing.to_dict() if isinstance(preprocessing, ImagePreprocessing)
                                      else None)
    return out


def _rows_per_step(batch_size: int | str | None, n: int) -> int:
    """Rows a batch draws from a set of ``n`` (None and "all" take the whole set; sizes are capped at it)."""
    return n if batch_size is None or batch_size == "all" else min(int(batch_size), n)


def _resume_config(saved: dict[str, Any], overrides: dict[str, Any]) -> tuple[TrainConfig, dict[str, list]]:
    """The saved configuration with ``overrides`` applied, and the changes as ``{key: [old, new]}``."""
    refused = sorted(set(overrides) - set(RESUME_OVERRIDES))
    if refused:
        raise ValueError(f"a resumed run keeps its configuration (config.yaml); overrides may change only "
                         f"{list(RESUME_OVERRIDES)}, got {refused}; start a new run for other settings")
    cfg = TrainConfig.from_dict(saved)
    changes = {k: [getattr(cfg, k), v] for k, v in overrides.items() if v != getattr(cfg, k)}
    if "steps" in changes and (cfg.schedule.get("name") == "cosine" or (
            cfg.schedule.get("name") == "step" and "step_size" not in cfg.schedule)):
        raise ValueError(f"steps cannot change on resume with schedule {cfg.schedule}: its learning rates "
                         f"depend on the total number of steps; start a new run instead")
    if "steps" in changes and cfg.method in METHODS and METHODS[cfg.method].staged:
        raise ValueError(f"steps cannot change on resume for {cfg.method}: its stages are set from the run's "
                         f"length; start a new run instead")
    return TrainConfig.from_dict({**saved, **{k: new for k, (_, new) in changes.items()}}), changes


@restores_torch_threads  # threads are set for the run only
def train(config: TrainConfig | dict[str, Any] | None, out: str | Path, *, resume: bool = False,
          overrides: dict[str, Any] | None = None,
          callback: Callable[[int, dict[str, float]], None] | None = None,
          data: RegressionData | DataSplits | None = None) -> TrainResult:
    """Train a method as configured and write a run directory at ``out``.

    Everything (configuration, data, splits, method parameters, device, checkpoint) is checked before
    anything is written, so a refused call leaves ``out`` as it was. A new run's directory appears at once
    with ``config.yaml``, ``splits.json`` and a step-0 ``last.pt``; every later write is ordered so that a
    process killed at any point resumes to the same log and metrics (see ``docs/engine.md``).

    Parameters
    ----------
    config : TrainConfig or dict (resolved, see :func:`clss.config.resolve_config`); None or ``{}`` with
        ``resume``.
    out : run directory; must be missing or empty unless ``resume``.
    resume : continue the run in ``out`` from its ``last.pt`` with the configuration of
        ``out/config.yaml``. A run that already finished is left untouched and returned with
        ``already_finished=True``, unless ``overrides`` raises its ``steps``.
    overrides : with ``resume``, new values for the keys of :data:`RESUME_OVERRIDES` (``steps``: at least
        the checkpoint's step, extends or shortens the run; ``device``, ``threads``, ``progress``). Changes
        are saved to ``config.yaml`` and listed in ``resumes.jsonl``.
    callback : called as ``callback(step, logs)`` after every step (progress hooks, early stops; an
        exception raised there interrupts the run like Ctrl-C: a checkpoint is written first).
    data : train on these data (a :class:`RegressionData` of arrays or a :class:`DataSplits` of datasets)
        instead of loading ``config.dataset`` (in-memory use, e.g. the scikit-learn estimator);
        ``config.dataset`` then only labels the run. Pass it again to resume.

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingInterrupted
        Ctrl-C (SIGINT) or a ``KeyboardInterrupt`` from ``callback``: the step under way is completed
        and checkpointed first; the exception says how to resume.
    TrainingDiverged
        The loss became non-finite.
    """
    out = Path(out)
    if resume:
        if config:
            raise ValueError("resume=True continues the run with its saved config.yaml; pass config=None and "
                             "the allowed changes as overrides=")
        run: RunDir | None = RunDir(out, resume=True)
        cfg, changes = _resume_config(run.read_config(), dict(overrides or {}))
    else:
        if overrides:
            raise ValueError("overrides= applies only with resume=True; put the values in config")
        if config is None:
            raise ValueError("config is required for a new run (a TrainConfig or a dict)")
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        run, changes = None, {}
    ddp = start_distributed(cfg.device)
    main = ddp is None or ddp.main
    if run is None:
        RunDir.check_new(out)
        if ddp is not None:
            barrier()  # every process has checked before rank 0 creates it
    if not main:
        cfg = dataclasses.replace(cfg, progress=False)
    session = _prepare(cfg, data, resume=run is not None, ddp=ddp)
    start, best, seconds = 0, math.inf, 0.0
    if run is not None:
        last = run.checkpoint_path("last")
        state = load_checkpoint(last, map_location=session.device, kind="train", keys=TRAIN_KEYS)
        start, best, seconds = session.restore(state, last)
        if start > cfg.steps:
            raise ValueError(f"steps ({cfg.steps}) is fewer than the {start} steps {out} has done; ask for "
                             f"at least {start}")
        if start == cfg.steps and run_status(run.path) == "finished":
            _load_best(run, session)
            return TrainResult(run.path, run.read_summary() if main else {}, session.method,
                               already_finished=True)
        if main:
            run.record_resume({"time": datetime.now(UTC).isoformat(timespec="seconds"), "step": start,
                               "changed": changes, **({"world_size": ddp.world_size} if ddp else {})})
            if changes:
                run.write_config(cfg.to_dict())
            run.truncate_log(start)
    elif not main:
        barrier()  # rank 0 creates the run directory
        run = RunDir.existing(out)
    else:
        state0 = session.state(0, best, seconds)
        split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed

        def populate(staged: RunDir) -> None:
            staged.write_config(cfg.to_dict())
            session.splits.to_json(staged.path / RunDir.SPLITS, dataset=cfg.dataset,
                                   labeled_spec=str(cfg.labeled), seed=split_seed,
                                   **_preprocessing(session.data))  # read by clss predict
            save_checkpoint(staged.checkpoint_path("last"), state0, kind="train")

        run = RunDir.create(out, populate)
        if ddp is not None:
            barrier()
    best, seconds = _loop(run, session, start, best, seconds, callback)
    if not main:  # rank 0 alone evaluates and writes the finished run
        return TrainResult(run.path, {}, session.method)
    try:
        with locally(session.method):
            summary = _finish(run, session, best, seconds)
    except KeyboardInterrupt as exc:  # last.pt holds the final step: resuming only redoes the finish
        raise TrainingInterrupted(run.path, cfg.steps) from exc
    return TrainResult(run.path, summary, session.method)


class _DeferredInterrupt:
    """Inside ``with``, the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a scheduler's time limit or
    preemption) only sets ``pending``: the loop finishes and checkpoints the step under way, then stops; a
    second one raises ``KeyboardInterrupt`` at once. Only in the main thread, where Python delivers signals,
    and only over the default handlers: an ignored SIGINT (background jobs) or a custom handler is kept."""

    _DEFAULTS: ClassVar[dict[int, Any]] = {signal.SIGINT: signal.default_int_handler,
                                           signal.SIGTERM: signal.SIG_DFL}

    def __init__(self) -> None:
        self.pending = False
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True

    def __enter__(self) -> _DeferredInterrupt:
        if threading.current_thread() is threading.main_thread():
            for sig, default in self._DEFAULTS.items():
                if signal.getsignal(sig) is default:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def _loop(run: RunDir, s: _Session, start: int, best: float, seconds: float,
          callback: Callable[[int, dict[str, float]], None] | None) -> tuple[float, float]:
    """Steps ``start`` .. ``cfg.steps``; returns the best validation score and the training seconds.

    Write order per step: the metrics line first, then (at evaluations) ``best.pt`` and ``last.pt``, the
    log fsynced before them, so a checkpoint never covers a step whose line could be lost; on resume the
    log is cut back to the checkpoint's step.

    Under torchrun every process trains; rank 0 alone evaluates, logs and checkpoints, and a stop
    (a signal to any process) is agreed at the end of each step so that all stop after the same one.
    """
    cfg, method = s.cfg, s.method
    main = s.ddp is None or s.ddp.main
    val = s.inputs("val")
    started = time.perf_counter()

    def checkpoint(step: int) -> None:
        with locally(method):
            _index_training_rows(s, step)  # a k-NN method's index matches the weights it is saved with
        elapsed = seconds + time.perf_counter() - started
        save_checkpoint(run.checkpoint_path("last"), s.state(step, best, elapsed), kind="train")

    batches = iter(s.loader)
    step = saved = start
    logged = True  # False from the start of a step until its line is written: no checkpoint may cover it
    bar = TrainingProgress(cfg.steps, enabled=cfg.progress, start=start)
    with bar, _DeferredInterrupt() as sigint:
        try:
            while step < cfg.steps:
                logged = False
                lab, ulb = next(batches)
                method.probe_gradients = cfg.probe_every > 0 and step % cfg.probe_every == 0
                try:
                    logs = method.training_step(lab, ulb, step)
                except NonFiniteLossError as exc:  # the same global loss on every process: all stop
                    if main:
                        run.write_summary({"status": "diverged", "step": step, "error": str(exc)})
                    raise TrainingDiverged(f"{exc} (step {step}); the last good checkpoint is "
                                           f"{run.checkpoint_path('last')}. Lower the learning rate or "
                                           f"check the inputs") from None
                for sch, (first, n) in zip(s.schedulers, s.windows, strict=True):
                    if first <= step < first + n:  # each schedule advances over its optimiser's window
                        sch.step()
                step += 1
                if s.ddp is not None and agree(sigint.pending, s.device):
                    sigint.pending = True
                if not main:
                    logged, saved = True, step  # nothing to write on this process
                    if sigint.pending:
                        raise KeyboardInterrupt
                    continue
                lr = s.schedulers[_active_window(s.windows, step - 1)].get_last_lr()[0]
                record = {"step": step, "lr": lr, **logs}
                evaluates = (cfg.eval_every > 0 and (step % cfg.eval_every == 0 or step == cfg.steps)
                             and method.predicts_after(step))
                improved = False
                if evaluates:
                    with locally(method):
                        _index_training_rows(s, step)
                        metrics, _ = evaluate(method, val, s.std.inverse_y, transform=s.std.transform_y,
                                              device=s.device, workers=s.workers, pin_memory=s.pin_memory,
                                              classes=s.data.meta.get("classes"))
                    record.update({f"val_{k}": v for k, v in metrics.items()})
                    improved = metrics[cfg.select_metric] < best
                    best = min(best, metrics[cfg.select_metric])
                saves = evaluates or step == cfg.steps or sigint.pending
                if s.ddp is not None:
                    record["world_size"] = s.ddp.world_size
                run.log(record, sync=saves)
                logged = True
                if improved:
                    save_checkpoint(run.checkpoint_path("best"), {
                        "step": step, "config": _identity(cfg), "method": method.state_dict(),
                        "standardizer": s.std.state_dict()}, kind="weights")
                if saves:
                    checkpoint(step)
                    saved = step
                bar.update(step, loss=logs.get("loss", math.nan), val_mae=record.get("val_mae"))
                if sigint.pending:
                    raise KeyboardInterrupt
                if callback is not None:
                    callback(step, logs)
        except (KeyboardInterrupt, Exception) as exc:
            if logged and saved != step and not isinstance(exc, TrainingDiverged):
                with contextlib.suppress(Exception):  # the original error matters more than this one
                    run.sync_log()
                    checkpoint(step)
                    saved = step
            if isinstance(exc, KeyboardInterrupt):
                raise TrainingInterrupted(run.path, saved) from None
            raise
    return best, seconds + time.perf_counter() - started


def _index_training_rows(s: _Session, step: int) -> None:
    """Hand a method that predicts by k-NN (:attr:`Method.indexes_training_rows`) the embeddings and
    standardised targets of the labelled training rows under its weights after ``step`` steps (once per
    step)."""
    method = s.method
    if not method.indexes_training_rows or s.indexed_at == step:
        return
    rows = s.splits.labeled
    emb = predict_dataset(method.embed, s.inputs("train"), device=s.device, rows=rows,  # type: ignore[attr-defined]
                          workers=s.workers, pin_memory=s.pin_memory)
    y = torch.as_tensor(s.std.transform_y(s.data.train.targets[rows]), device=s.device)
    method.index_rows(emb, y)  # type: ignore[attr-defined]
    s.indexed_at = step


def _sources(ds: RegressionDataset, rows: np.ndarray) -> list[str]:
    """Where each of ``rows`` comes from (file paths; row numbers of in-memory tables)."""
    return [ds.source(int(i)) for i in rows]


def _finish(run: RunDir, s: _Session, best: float, seconds: float) -> dict[str, Any]:
    """Reload the best weights, evaluate every split, write predictions, plots and (last, marking the run
    finished) ``summary.json``."""
    cfg, data, splits = s.cfg, s.data, s.splits
    weights_step = _load_best(run, s)
    summary: dict[str, Any] = {"status": "finished", "method": cfg.method, "dataset": cfg.dataset,
                               "labeled": len(splits.labeled), "unlabeled": len(splits.unlabeled),
                               "steps": cfg.steps, "seconds": seconds, "threads": torch.get_num_threads(),
                               "workers": s.workers, "world_size": 1 if s.ddp is None else s.ddp.world_size,
                               "best_val_" + cfg.select_metric: best,
                               "selection": (f"best validation {cfg.select_metric} ({cfg.val_protocol} "
                                             f"protocol)" if cfg.eval_every else "final weights")}
    for split in ("val", "test"):
        ds = getattr(data, split)
        metrics, pred = _scored(ds.targets, s.predict(split), data.meta.get("classes"))
        metrics.update(s.method.metrics(s.std.transform_y(ds.targets), s.std.transform_y(pred)))
        summary[split] = metrics
        rows = np.arange(len(ds))
        run.write_predictions(split, rows, ds.targets, pred, source=_sources(ds, rows))
        if split == "test" and cfg.plots:
            plot_predictions(ds.targets, pred, run.plot_path("test_predictions"),
                             title=f"{cfg.method} on {cfg.dataset}: test")
    if cfg.plots:
        _plot_run(run, s, weights_step)
    artifacts = s.method.artifacts()
    if artifacts:
        run.write_method_state(artifacts)
        if cfg.plots and "margins" in artifacts:
            plot_margins(artifacts["margins"], run.plot_path("margins"),
                         title=f"{cfg.method} on {cfg.dataset}: learned margins (step {weights_step}), "
                               f"{datetime.now(UTC).date().isoformat()}")
    if len(splits.unlabeled):
        write_predictions_csv(run.path / UNLABELED_PREDICTIONS, splits.unlabeled,
                              s.predict("train", splits.unlabeled),
                              ids=_sources(data.train, splits.unlabeled), id_column="source")
    run.write_summary(summary)
    return summary


def _plot_run(run: RunDir, s: _Session, weights_step: int) -> None:
    source = f"{s.cfg.method} on {s.cfg.dataset}"
    # Every scalar the method logged (loss terms and diagnostics on panels of their own), and validation
    # errors in target units (one scale).
    plot_learning_curves(run.read_log(), run.plot_path("learning_curves"),
                         metric_keys=["val_mae", "val_rmse"], metric_label="error (target units)",
                         title=f"{source}: learning curves, {datetime.now(UTC).date().isoformat()}")
    if s.method.semi_supervised and len(s.splits.unlabeled) >= 3:
        _plot_unlabeled_similarity(run, s, s.splits.unlabeled[:300], title=source, step=weights_step)


def _plot_unlabeled_similarity(run: RunDir, s: _Session, rows: np.ndarray, *, title: str, step: int) -> None:
    """Cosine similarity of the final features of (up to 300) unlabelled rows, before/after seriation."""
    from clss.losses.pairwise import feature_similarity
    from clss.seriation import SeriationWarning, seriate

    model = s.method.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            feat = predict_dataset(lambda x: model(x)["feat"], s.inputs("train"), device=s.device, rows=rows,
                                   workers=s.workers, pin_memory=s.pin_memory)
    finally:
        model.train(was_training)
    sim = feature_similarity(feat.double(), "cosine").cpu().numpy()
    with warnings.catch_warnings():  # for a picture, components side by side are the right reading
        warnings.simplefilter("ignore", SeriationWarning)
        order = seriate(sim, negative="shift", components="concatenate").order
    plot_similarity_reordering(sim, order, run.plot_path("unlabeled_similarity"), title=title, step=step,
                               measure="cosine similarity of final-model features", items="unlabelled rows")


def evaluate_run(run_dir: str | Path, split: str = "test", *,
                 checkpoint: str = "best") -> dict[str, float]:
    """Re-evaluate a finished (or interrupted) run's ``best`` or ``last`` weights on a split.

    The data, split protocol and standardisation are rebuilt from ``config.yaml`` and the checkpoint.

    Parameters
    ----------
    run_dir : a run directory written by :func:`train`.
    split : "train", "val" or "test".
    checkpoint : "best" (``best.pt``) or "last" (``last.pt``).

    Raises
    ------
    FileNotFoundError
        Missing directory or checkpoint.
    CorruptCheckpointError
        The checkpoint is damaged or not one of clss's (the message says what it holds).
    ValueError
        Bad ``split``/``checkpoint``, or weights that do not fit the run's model.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    run = RunDir.existing(run_dir)
    ckpt = run.checkpoint_path(checkpoint)  # type: ignore[arg-type]
    if not ckpt.is_file():
        hint = ("the run has no best weights yet (eval_every=0 or no evaluation so far): use last"
                if checkpoint == "best" else "it was not written by clss train")
        raise FileNotFoundError(f"{run.path} has no {ckpt.name}; {hint}")
    cfg = TrainConfig.from_dict(run.read_config())
    state = load_checkpoint(ckpt, kind=("train", "weights"), keys=WEIGHTS_KEYS)
    device = _device(cfg.device)
    data = load_data(cfg)
    method = _build_method(cfg, data.input, pretrained=False)
    _load_weights(method, state, ckpt, cfg)
    method.to(device)
    std = Standardizer.from_state_dict(state["standardizer"])
    ds = _network_inputs(getattr(data, split), std)
    scored = np.flatnonzero(~np.isnan(ds.targets))  # training rows without a target have no score
    workers = resolve_workers(cfg.workers, in_memory=ds.in_memory)
    metrics, _ = evaluate(method, ds, std.inverse_y, transform=std.transform_y, device=device, rows=scored,
                          workers=workers, classes=data.meta.get("classes"),
                          pin_memory=resolve_pin_memory(cfg.pin_memory, device))
    return metrics
