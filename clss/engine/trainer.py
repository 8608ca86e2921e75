"""The training loop: data, splits, method, schedule, evaluation, checkpoints, run directory, resume.

``train(config)`` is what ``clss train`` runs. The method performs each step (see
:mod:`clss.methods.base`); this loop feeds it batches from :class:`clss.data.SemiSupervisedSampler`,
steps the learning-rate schedules, evaluates on the validation split every ``eval_every`` steps, keeps
the best-on-validation weights, writes ``last.pt`` atomically at every evaluation (and on Ctrl-C), and
finishes with test metrics, predictions and plots. A resumed run restores every random state, so it ends
with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clss.config import TrainConfig
from clss.data import RegressionData, SemiSupervisedSampler, Splits, load_dataset, split_labeled
from clss.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from clss.engine.plots import plot_learning_curves, plot_predictions, plot_similarity_reordering
from clss.engine.predict import write_unlabeled_predictions
from clss.engine.progress import TrainingProgress
from clss.engine.rundir import RunDir
from clss.engine.threads import restores_torch_threads, run_threads
from clss.methods import Batch, Method, NonFiniteLossError, OptimizerConfig, build_method
from clss.metrics import regression_metrics
from clss.models import build_model


class TrainingDiverged(RuntimeError):
    """The loss became non-finite; the run stopped and its last good checkpoint was kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, final metrics and the trained method."""

    run_dir: Path
    summary: dict[str, Any]
    method: Method


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was requested but no CUDA device is available")
    return torch.device(name)


STANDARDIZE = ("xy", "y", "x", "none")


def _standardize_sides(spec: str) -> dict[str, bool]:
    if spec not in STANDARDIZE:
        raise ValueError(f"standardize must be one of {STANDARDIZE}, got {spec!r}")
    return {"inputs": "x" in spec, "targets": "y" in spec}


def _load_data(cfg: TrainConfig) -> RegressionData:
    fraction = None
    if cfg.unlabeled == "paper":
        spec = str(cfg.labeled).strip()
        fraction = float(spec[:-1]) / 100 if spec.endswith("%") else float(spec)
        if not 0 < fraction <= 0.5:
            raise ValueError("unlabeled='paper' takes labeled as a fraction in (0, 0.5] (the paper's "
                             "protocol uses as many unlabelled as labelled rows)")
    return load_dataset(cfg.dataset, seed=cfg.seed if cfg.split_seed is None else cfg.split_seed,
                        data_dir=cfg.data_dir, target=cfg.target, run=cfg.run, fraction=fraction,
                        val_protocol=cfg.val_protocol)


def _splits(cfg: TrainConfig, data: RegressionData, semi: bool) -> Splits:
    if cfg.unlabeled == "paper":
        if data.labeled is None or data.unlabeled is None:
            raise ValueError(f"dataset {cfg.dataset!r} has no fixed paper protocol; use unlabeled='rest'")
        return Splits(labeled=data.labeled, unlabeled=data.unlabeled)
    unlabeled: Any = cfg.unlabeled
    if isinstance(unlabeled, str) and unlabeled != "rest":
        unlabeled = float(unlabeled) if "." in unlabeled else int(unlabeled)
    seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    return split_labeled(data.x_train.shape[0], cfg.labeled, seed=seed, unlabeled=unlabeled,
                         require_unlabeled=semi)


def _build_method(cfg: TrainConfig, n_features: int) -> Method:
    """The configured method around a freshly initialised model (draws from the global torch RNG)."""
    model_kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
    return build_method(cfg.method, lambda: build_model(cfg.model.get("name", "mlp"), n_features,
                                                        **model_kwargs),
                        OptimizerConfig(**cfg.optimizer), {"seed": cfg.seed, **cfg.method_params})


def _schedule(cfg: TrainConfig) -> Callable[[int], float]:
    name = cfg.schedule.get("name", "constant")
    if name == "constant":
        return lambda step: 1.0
    if name == "step":
        size = int(cfg.schedule.get("step_size", max(1, cfg.steps // 3)))
        gamma = float(cfg.schedule.get("gamma", 0.1))
        return lambda step: gamma ** (step // size)
    if name == "cosine":
        return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, cfg.steps) / cfg.steps))
    raise ValueError(f"schedule name must be 'constant', 'step' or 'cosine', got {name!r}")


def predict_batched(method: Method, x: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    """Standardised predictions ``[n]`` of ``method`` on ``x``, ``batch_size`` rows per forward pass."""
    return torch.cat([method.predict(x[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def evaluate(method: Method, x: torch.Tensor, y_true: np.ndarray,
             inverse: Callable[[np.ndarray], np.ndarray],
             batch_size: int = 4096) -> tuple[dict[str, float], np.ndarray]:
    """Metrics of ``method`` on ``x`` in the original target units, and its predictions."""
    y_pred = inverse(predict_batched(method, x, batch_size).double().cpu().numpy())
    if not np.all(np.isfinite(y_pred)):
        return {"mae": math.nan, "mse": math.nan, "rmse": math.nan, "r2": math.nan}, y_pred
    return regression_metrics(y_true, y_pred), y_pred


@restores_torch_threads  # threads are set for the run only
def train(config: TrainConfig | dict[str, Any], out: str | Path, *, resume: bool = False,
          callback: Callable[[int, dict[str, float]], None] | None = None,
          data: RegressionData | None = None) -> TrainResult:
    """Train a method as configured and write a run directory at ``out``.

    Parameters
    ----------
    config : TrainConfig or dict (resolved, see :func:`clss.config.resolve_config`)
    out : run directory; must be new or empty unless ``resume``.
    resume : continue the interrupted run in ``out`` from its ``last.pt`` (the configuration is read
        from ``out/config.yaml``; ``config`` is ignored).
    callback : called as ``callback(step, logs)`` after every step (progress hooks, early stops; an
        exception raised there interrupts the run like Ctrl-C: a checkpoint is written first).
    data : train on these arrays instead of loading ``config.dataset`` (in-memory use, e.g. the
        scikit-learn estimator); ``config.dataset`` then only labels the run. Pass it again to resume.

    Returns
    -------
    TrainResult
    """
    run = RunDir(out, resume=resume)
    if resume:
        cfg = TrainConfig.from_dict(run.read_config())
    else:
        cfg = config if isinstance(config, TrainConfig) else TrainConfig.from_dict(config)
        run.write_config(cfg.to_dict())
    device = _device(cfg.device)
    if cfg.eval_every < 0:
        raise ValueError(f"eval_every must be >= 0 (0: no validation, keep the final weights), got "
                         f"{cfg.eval_every}")
    data = _load_data(cfg) if data is None else data
    torch.manual_seed(cfg.seed)  # model initialisation and dropout draw from the global torch RNG
    method = _build_method(cfg, data.n_features).to(device)
    splits = _splits(cfg, data, method.semi_supervised)
    unlabeled_rows = (cfg.unlabeled_batch_size or len(splits.unlabeled)) if method.semi_supervised else 0
    torch.set_num_threads(run_threads(cfg.threads, method, labeled_rows=cfg.batch_size or len(splits.labeled),
                                      unlabeled_rows=unlabeled_rows))
    if not resume:
        splits.to_json(run.path / "splits.json", dataset=cfg.dataset, labeled_spec=str(cfg.labeled),
                       seed=cfg.seed if cfg.split_seed is None else cfg.split_seed,
                       features=data.feature_names, target=data.target_name)  # read by clss predict
    std = data.standardizer(y_rows=splits.labeled, **_standardize_sides(cfg.standardize))
    x_train = torch.as_tensor(std.transform_x(data.x_train), device=device)
    y_train = torch.as_tensor(std.transform_y(data.y_train), dtype=x_train.dtype, device=device)
    x_val = torch.as_tensor(std.transform_x(data.x_val), device=device)
    optimizers = method.configure_optimizers()
    lr_lambda = _schedule(cfg)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda) for opt in optimizers]
    unlabeled = splits.unlabeled if method.semi_supervised else np.empty(0, dtype=np.int64)
    sampler = SemiSupervisedSampler(splits.labeled, unlabeled,
                                    batch_size=cfg.batch_size or len(splits.labeled),
                                    unlabeled_batch_size=cfg.unlabeled_batch_size or max(len(unlabeled), 1),
                                    ssl_mult=cfg.ssl_mult, seed=cfg.seed,
                                    full_batch=cfg.batch_size is None)
    start, best = 0, math.inf
    if resume:
        state = load_checkpoint(run.checkpoint_path("last"), map_location=device)
        method.load_state_dict(state["method"])
        for opt, s in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)
        for sch, s in zip(schedulers, state["schedulers"], strict=True):
            sch.load_state_dict(s)
        sampler.load_state_dict(state["sampler"])
        restore_rng_state(state["rng"])
        start, best = int(state["step"]), float(state["best"])
        run.truncate_log(start)

    def checkpoint(step: int) -> None:
        save_checkpoint(run.checkpoint_path("last"), {
            "step": step, "best": best, "method": method.state_dict(),
            "optimizers": [o.state_dict() for o in optimizers],
            "schedulers": [s.state_dict() for s in schedulers],
            "sampler": sampler.state_dict(), "rng": capture_rng_state(),
            "standardizer": std.state_dict()})

    batches = iter(sampler)
    started = time.perf_counter()
    step = start
    consistent = True  # False while a step is half applied: no checkpoint may be written then
    with TrainingProgress(cfg.steps, enabled=cfg.progress, start=start) as bar:
        try:
            while step < cfg.steps:
                consistent = False
                pair = next(batches, None)
                if pair is None:  # the sampler yields one epoch at a time
                    batches = iter(sampler)
                    pair = next(batches)
                l_idx, u_idx = pair
                l_idx, u_idx = l_idx.to(device), u_idx.to(device)
                lab = Batch(x_train[l_idx], l_idx, y_train[l_idx])
                ulb = (Batch(x_train[u_idx], u_idx, y_train[u_idx] if cfg.hidden_truth else None)
                       if u_idx.numel() else None)
                try:
                    logs = method.training_step(lab, ulb, step)
                except NonFiniteLossError as exc:
                    run.write_summary({"status": "diverged", "step": step, "error": str(exc)})
                    raise TrainingDiverged(f"{exc} (step {step}); the last good checkpoint is "
                                           f"{run.checkpoint_path('last')}") from None
                for sch in schedulers:
                    sch.step()
                step += 1
                consistent = True
                record = {"step": step, "lr": schedulers[0].get_last_lr()[0], **logs}
                if cfg.eval_every == 0:
                    if step == cfg.steps:
                        checkpoint(step)
                elif step % cfg.eval_every == 0 or step == cfg.steps:
                    metrics, _ = evaluate(method, x_val, data.y_val, std.inverse_y)
                    record.update({f"val_{k}": v for k, v in metrics.items()})
                    score = metrics[cfg.select_metric]
                    if score < best:
                        best = score
                        save_checkpoint(run.checkpoint_path("best"), {
                            "step": step, "method": method.state_dict(), "standardizer": std.state_dict()})
                    checkpoint(step)
                run.log(record)
                bar.update(step, loss=logs.get("loss", math.nan), val_mae=record.get("val_mae"))
                if callback is not None:
                    callback(step, logs)
        except (KeyboardInterrupt, Exception) as exc:
            if consistent and not isinstance(exc, TrainingDiverged):
                checkpoint(step)
            raise
    elapsed = time.perf_counter() - started
    return TrainResult(run.path, _finish(run, cfg, method, data, std, splits, device, best, elapsed), method)


def _finish(run: RunDir, cfg: TrainConfig, method: Method, data: RegressionData, std: Any, splits: Splits,
            device: torch.device, best: float, elapsed: float) -> dict[str, Any]:
    """Reload the best weights, evaluate every split, write summary, predictions and plots."""
    best_path = run.checkpoint_path("best")
    if best_path.exists():
        method.load_state_dict(load_checkpoint(best_path, map_location=device)["method"])
    summary: dict[str, Any] = {"status": "finished", "method": cfg.method, "dataset": cfg.dataset,
                               "labeled": len(splits.labeled), "unlabeled": len(splits.unlabeled),
                               "steps": cfg.steps, "seconds": elapsed, "threads": torch.get_num_threads(),
                               "best_val_" + cfg.select_metric: best,
                               "selection": (f"best validation {cfg.select_metric} ({cfg.val_protocol} "
                                             f"protocol)" if cfg.eval_every else "final weights")}
    for split in ("val", "test"):
        x = torch.as_tensor(std.transform_x(getattr(data, f"x_{split}")), device=device)
        y = getattr(data, f"y_{split}")
        metrics, pred = evaluate(method, x, y, std.inverse_y)
        summary[split] = metrics
        run.write_predictions(split, np.arange(len(y)), y, pred)
        if split == "test" and cfg.plots:
            plot_predictions(y, pred, run.plot_path("test_predictions"),
                             title=f"{cfg.method} on {cfg.dataset}: test")
    if len(splits.unlabeled):
        write_unlabeled_predictions(run.path, method, std, data.x_train, splits.unlabeled)
    run.write_summary(summary)
    if not cfg.plots:
        return summary
    records = run.read_log()
    # Every loss term the method logged, and validation errors in target units (one scale).
    terms = [k for k in ("loss", "regression", "contrastive", "unlabeled_rank", "unlabeled_consistency")
             if any(k in r for r in records)]
    plot_learning_curves(records, run.plot_path("learning_curves"), loss_keys=terms,
                         metric_keys=["val_mae", "val_rmse"])
    if method.semi_supervised and len(splits.unlabeled) >= 3:
        rows = splits.unlabeled[:300]
        _plot_unlabeled_similarity(run, method, std.transform_x(data.x_train[rows]), device)
    return summary


def _plot_unlabeled_similarity(run: RunDir, method: Method, x: np.ndarray, device: torch.device) -> None:
    """Cosine similarity of the final features of (up to 300) unlabelled rows, before/after seriation."""
    from clss.losses.pairwise import feature_similarity
    from clss.seriation import SeriationWarning, seriate

    method.model.eval()
    with torch.no_grad():
        feat = method.model(torch.as_tensor(x, device=device))[1]
    sim = feature_similarity(feat.double(), "cosine").cpu().numpy()
    with warnings.catch_warnings():  # for a picture, components side by side are the right reading
        warnings.simplefilter("ignore", SeriationWarning)
        order = seriate(sim, negative="shift", components="concatenate").order
    plot_similarity_reordering(sim, order, run.plot_path("unlabeled_similarity"))


def evaluate_run(run_dir: str | Path, split: str = "test", *,
                 checkpoint: str = "best") -> dict[str, float]:
    """Re-evaluate a finished (or interrupted) run's ``best`` or ``last`` weights on a split.

    The data, split protocol and standardisation are rebuilt from ``config.yaml`` and the checkpoint.
    """
    from clss.data import Standardizer

    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    run = RunDir(run_dir, resume=True)
    cfg = TrainConfig.from_dict(run.read_config())
    state = load_checkpoint(run.checkpoint_path(checkpoint))
    device = _device(cfg.device)
    data = _load_data(cfg)
    method = _build_method(cfg, data.n_features)
    method.load_state_dict(state["method"])
    method.to(device)
    std = Standardizer.from_state_dict(state["standardizer"])
    x = torch.as_tensor(std.transform_x(getattr(data, f"x_{split}")), device=device)
    metrics, _ = evaluate(method, x, getattr(data, f"y_{split}"), std.inverse_y)
    return metrics
