"""Training figures saved as PNG files: learning curves, predicted vs true, similarity reordering.

Figures are built with :class:`matplotlib.figure.Figure` directly (no ``pyplot``), so they never need a
display, leave no global state behind and are freed when the function returns. matplotlib is imported
inside the functions, so importing :mod:`clss.engine` does not pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from clss.metrics import mae, r2
from clss.plotting import plot_seriation
from clss.seriation import ComponentInfo, Seriation, ranks_from_order

__all__ = ["loss_terms", "plot_learning_curves", "plot_predictions", "plot_similarity_reordering"]

#: Above this many points :func:`plot_predictions` draws a hexbin density instead of a scatter.
HEXBIN_THRESHOLD = 5000


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``key``; non-finite values become NaN so that the line breaks there."""
    steps, values = [], []
    for record in records:
        value, step = record.get(key), record.get("step")
        if isinstance(value, int | float) and not isinstance(value, bool) and isinstance(step, int):
            steps.append(step)
            values.append(float(value) if math.isfinite(value) else math.nan)
    return steps, values


def _keys(records: Sequence[Mapping[str, Any]], keep: Any) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        for key in record:
            if key != "step" and keep(key):
                seen.setdefault(key, None)
    return list(seen)


def _draw_curves(ax: Any, records: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str,
                 ylabel: str, log_if_positive: bool) -> None:
    drawn: list[float] = []
    for key in keys:
        steps, values = _series(records, key)
        finite = [v for v in values if not math.isnan(v)]
        if finite:
            ax.plot(steps, values, label=key, marker="o" if len(finite) == 1 else None, markersize=3)
            drawn.extend(finite)
    ax.set_title(title, fontsize="medium")
    ax.set_xlabel("step")
    log = log_if_positive and bool(drawn) and min(drawn) > 0
    ax.set_ylabel(f"{ylabel} (log scale)" if log else ylabel)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    if log:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if len(keys) > 1:
        ax.legend(fontsize="small")


#: Most scalars :func:`loss_terms` searches for the terms of the logged loss (2**N subsets are tried).
MAX_TERM_SEARCH = 16


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def loss_terms(records: Sequence[Mapping[str, Any]], total: str = "loss") -> list[str]:
    """The logged scalars that add up to the logged ``total`` loss: the loss terms, as opposed to
    diagnostics.

    A method logs its total loss, its (weighted) terms and diagnostics under names of its own; the terms
    are found by their values, not their names: the smallest set of scalars whose sum equals ``total`` in
    every record (a scalar missing from a record counts 0 there). Empty when no set does, when
    ``total`` is not logged, or when more than :data:`MAX_TERM_SEARCH` scalars accompany it.

    Parameters
    ----------
    records : sequence of mappings
        ``metrics.jsonl`` records (validation keys, ``"val_*"``, are ignored).
    total : str, default "loss"

    Returns
    -------
    list of str
        In order of first appearance.
    """
    rows = [r for r in records if _numeric(r.get(total)) and math.isfinite(r[total])][:64]
    keys = _keys(rows, lambda k: k != total and not k.startswith(("val_", "val/")))
    keys = [k for k in keys if all(not _numeric(r.get(k)) or math.isfinite(r[k]) for r in rows)]
    if not rows or not keys or len(keys) > MAX_TERM_SEARCH:
        return []
    values = np.array([[float(r[k]) if _numeric(r.get(k)) else 0.0 for k in keys] for r in rows])
    target = np.array([float(r[total]) for r in rows])
    subsets = (np.arange(1, 2 ** len(keys))[:, None] >> np.arange(len(keys))) & 1  # [2^n - 1, n]
    sums = subsets @ values.T  # [subsets, records]
    tol = 1e-5 * (subsets @ np.abs(values).T + np.abs(target)) + 1e-7  # float32 logging noise
    match = np.flatnonzero((np.abs(sums - target) <= tol).all(axis=1))
    if match.size == 0:
        return []
    best = match[np.argmin(subsets[match].sum(axis=1))]  # the first of the smallest
    return [k for k, used in zip(keys, subsets[best], strict=True) if used]


def plot_learning_curves(records: Iterable[Mapping[str, Any]], path: str | Path, *,
                         loss_keys: Sequence[str] | None = None,
                         metric_keys: Sequence[str] | None = None, title: str | None = None,
                         metric_label: str = "validation metric",
                         diagnostic_keys: Sequence[str] | None = None) -> Path:
    """Every logged scalar against the step, from ``metrics.jsonl`` records.

    Panels in three groups, each scalar on its own y axis (log scale when all its values are positive),
    so that a term weighted by 1e-3 is as readable as the regression loss: the loss and its terms
    ("training loss: NAME"), then the other scalars the method or the engine logged ("diagnostic: NAME",
    e.g. the learning rate or a pseudo-label statistic), then one panel with every validation metric.
    Every axis is labelled. NaN/inf values break the line; records lacking a key (or holding a
    non-number) are skipped.

    Parameters
    ----------
    records : iterable of mappings
        E.g. :meth:`clss.engine.RunDir.read_log`; each needs an int ``"step"``.
    path : str or Path
        Output PNG; missing parent folders are created.
    loss_keys : sequence of str, optional
        Default: ``"loss"`` and its terms (:func:`loss_terms`), when ``"loss"`` is logged.
    metric_keys : sequence of str, optional
        Default: the keys starting with ``"val_"`` or ``"val/"``, in order of first appearance.
    title : str, optional
        Figure title, e.g. ``"gclss on diabetes, 2026-01-31"``.
    metric_label : str, default "validation metric"
        y label of the metrics panel, e.g. ``"error (target units)"``.
    diagnostic_keys : sequence of str, optional
        Default: every other numeric key except ``"step"`` and the validation keys.

    Returns
    -------
    Path
        ``path``.
    """
    return _save(_learning_curves_figure(list(records), loss_keys, metric_keys, title, metric_label,
                                         diagnostic_keys), path)


def _learning_curves_figure(recs: list[Mapping[str, Any]], loss_keys: Sequence[str] | None,
                            metric_keys: Sequence[str] | None, title: str | None, metric_label: str,
                            diagnostic_keys: Sequence[str] | None = None) -> Any:
    from matplotlib.figure import Figure

    validation = ("val_", "val/")
    if loss_keys is None:
        loss_keys = ["loss", *loss_terms(recs)] if any("loss" in r for r in recs) else []
    if metric_keys is None:
        metric_keys = _keys(recs, lambda k: k.startswith(validation))
    if diagnostic_keys is None:
        diagnostic_keys = [k for k in _keys(recs, lambda k: not k.startswith(validation))
                           if k not in loss_keys and any(_numeric(r.get(k)) for r in recs)]
    curves = [(k, f"training loss: {k}", "weighted value") for k in loss_keys]
    curves += [(k, f"diagnostic: {k}", "learning rate" if k == "lr" else "value") for k in diagnostic_keys]
    panels = max(len(curves), 1) + 1
    cols = min(panels, 4)
    rows = math.ceil(panels / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows + 0.4), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, curve in zip(axes, curves or [None], strict=False):
        if curve is None:
            _draw_curves(ax, recs, [], "training losses", "weighted value", log_if_positive=True)
        else:
            _draw_curves(ax, recs, [curve[0]], curve[1], curve[2], log_if_positive=True)
    _draw_curves(axes[panels - 1], recs, metric_keys, "validation", metric_label, log_if_positive=False)
    for ax in axes[panels:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig


def _as_float_vector(x: Any, name: str) -> NDArray[np.float64]:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def plot_predictions(y_true: Any, y_pred: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Predicted against true values with the ``y = x`` line; MAE and R² in the legend.

    Pairs with a non-finite value are left out (their count is shown). Up to
    :data:`HEXBIN_THRESHOLD` points are drawn as a scatter with an alpha that decreases with ``n``; more
    as a hexbin density with a log colour scale.

    Parameters
    ----------
    y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
    path : str or Path
        Output PNG; missing parent folders are created.
    title : str, optional

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If the inputs are not 1-D or differ in length.
    """
    from matplotlib.figure import Figure

    t = _as_float_vector(y_true, "y_true")
    p = _as_float_vector(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    finite = np.isfinite(t) & np.isfinite(p)
    t, p = t[finite], p[finite]
    fig = Figure(figsize=(5.2, 5), layout="constrained")
    ax = fig.subplots()
    ax.set_xlabel("true")
    ax.set_ylabel("predicted")
    dropped = int((~finite).sum())
    note = f"{dropped} non-finite pair(s) left out" if dropped else ""
    ax.set_title("\n".join(filter(None, (title, note))), fontsize="medium")
    if t.size == 0:
        ax.text(0.5, 0.5, "no finite predictions", ha="center", va="center", transform=ax.transAxes)
        return _save(fig, path)
    label = f"n={t.size}, MAE={mae(t, p):.4g}, R²={r2(t, p):.4g}"
    if t.size > HEXBIN_THRESHOLD:
        hexes = ax.hexbin(t, p, gridsize=60, bins="log", mincnt=1, cmap="viridis", label=label)
        fig.colorbar(hexes, ax=ax, label="count")
    else:
        ax.scatter(t, p, s=10, alpha=float(np.clip(300 / t.size, 0.15, 0.8)), edgecolors="none", label=label)
    lo = float(min(t.min(), p.min()))
    hi = float(max(t.max(), p.max()))
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo), 1.0) * 0.05
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, ls="--", label="y = x")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize="small")
    return _save(fig, path)


def plot_similarity_reordering(similarity: Any, order: ArrayLike | torch.Tensor | Seriation,
                               path: str | Path, *, title: str | None = None,
                               method: str = "spectral", measure: str = "similarity",
                               items: str = "items", step: int | None = None) -> Path:
    """Heatmaps of a similarity matrix in input order and reordered (:func:`clss.plotting.plot_seriation`).

    The figure title says what is shown: ``"{title}: {measure}, {n} {items}, step {step}, before/after
    seriation"``, e.g. "gclss on diabetes: cosine similarity of final-model features, 88 unlabelled
    rows, step 1000, before/after seriation".

    Parameters
    ----------
    similarity : array-like, scipy.sparse matrix or torch.Tensor, shape ``(n, n)``
        E.g. the cosine similarities of an unlabeled batch.
    order : permutation of ``0..n-1`` (array-like or tensor), or a :class:`clss.seriation.Seriation`
        The recovered ordering.
    path : str or Path
        Output PNG; missing parent folders are created.
    title : str, optional
        Whose matrix, e.g. ``"gclss on diabetes"``.
    method : str, default "spectral"
        Name shown over the reordered panel when ``order`` is a plain permutation.
    measure : str, default "similarity"
        What the entries are, e.g. ``"cosine similarity of final-model features"``.
    items : str, default "items"
        What the rows are, e.g. ``"unlabelled rows"``.
    step : int, optional
        Training step of the features.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        If ``order`` is not a permutation of the matrix's ``n`` items.
    """
    if not isinstance(order, Seriation):
        perm = order.detach().cpu().numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
        ranks = ranks_from_order(perm)
        n = ranks.shape[0]
        order = Seriation(order=perm.astype(np.int64), ranks=ranks, positions=ranks.astype(np.float64),
                          method=method, laplacian="unnormalized", components=np.zeros(n, dtype=np.int64),
                          component_info=(ComponentInfo(items=np.arange(n)),))
    shape = tuple(similarity.shape) if hasattr(similarity, "shape") else np.shape(similarity)
    if len(shape) != 2 or shape[0] != shape[1] or shape[0] != order.n:
        raise ValueError(f"similarity must be square with one row per item of order (n={order.n}), got "
                         f"shape {shape}")
    out = Path(path)
    plot_seriation(similarity, order, out, title=_similarity_title(title, measure, order.n, items, step))
    return out


def _similarity_title(title: str | None, measure: str, n: int, items: str, step: int | None) -> str:
    """``"{title}:\\n{measure}, {n} {items}, step {step}, before/after seriation"``."""
    what = ", ".join([f"{measure}, {n} {items}", *([f"step {step}"] if step is not None else []),
                      "before/after seriation"])
    return f"{title}:\n{what}" if title else what


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def plot_margins(margins: Any, path: str | Path, *, title: str | None = None) -> Path:
    """Learned gaps between neighbouring ordered classes (CLOC's margins) as bars, one per class pair.

    Parameters
    ----------
    margins : array-like, shape ``(K - 1,)``
        The gap between class ``h`` and ``h + 1``.
    path : str or Path
        Output PNG; missing parent folders are created.
    title : str, optional

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.figure import Figure

    m = _as_float_vector(margins, "margins")
    fig = Figure(figsize=(max(4.0, 0.45 * m.size + 2.0), 3.6), layout="constrained")
    ax = fig.subplots()
    ax.bar(np.arange(m.size), m, color="tab:blue")
    ax.set_xticks(np.arange(m.size), [f"{h}|{h + 1}" for h in range(m.size)],
                  rotation=90 if m.size > 12 else 0, fontsize="small")
    ax.set_xlabel("neighbouring classes")
    ax.set_ylabel("learned margin")
    ax.set_title(title or "learned margins", fontsize="medium")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)
