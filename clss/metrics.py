"""Regression metrics with the exact definitions used across the toolkit (docs/metrics.md).

Every function takes ``y_true, y_pred`` as 1-D numpy arrays, torch tensors or lists of the same
length, converts them once to float64 numpy and returns a Python float. scipy is imported lazily
(only by the rank correlations) so that importing this module stays cheap.

Conventions shared with scikit-learn and scipy, checked in the test-suite:

* ``mae``, ``mse``, ``rmse``, ``r2`` equal ``sklearn.metrics.mean_absolute_error``,
  ``mean_squared_error``, ``root_mean_squared_error`` and ``r2_score`` (including its
  ``force_finite=True`` rule for a constant ``y_true``: 1.0 for a perfect prediction, else 0.0).
* ``pearson``, ``spearman`` (average ranks for ties) and ``kendall`` (tau-b) equal the statistics of
  ``scipy.stats.pearsonr``, ``spearmanr`` and ``kendalltau``; like scipy they are NaN when either
  input is constant, and they are NaN (instead of raising) for fewer than 2 samples.
* ``gm`` is ``exp(mean(log(max(|e|, eps))))`` with ``eps = 1e-5`` by default, which matches RankUp's
  published ``gmae`` (zeros replaced by 1e-5); ``eps=0`` gives DIR's unguarded ``gmean`` (exactly 0
  when any error is 0).

Names used by other code bases map onto ours through :data:`ALIASES` and :func:`canonical_name`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ALIASES",
    "GROUPS",
    "canonical_name",
    "gm",
    "kendall",
    "mae",
    "mse",
    "nearest_class_metrics",
    "ordinal_classification_metrics",
    "pearson",
    "r2",
    "regression_metrics",
    "rmse",
    "shot_metrics",
    "spearman",
]

#: Other code bases' metric and group names -> ours. RankUp: ``lcc``, ``srcc``, ``ktau``, ``gmae``;
#: DIR (Yang et al. 2021, ``shot_metrics``): ``l1``, ``gmean`` and the groups ``median``, ``low``.
ALIASES: dict[str, str] = {
    "lcc": "pearson",
    "srcc": "spearman",
    "ktau": "kendall",
    "gmae": "gm",
    "gmean": "gm",
    "l1": "mae",
    "median": "medium",
    "low": "few",
}

#: Shot groups of :func:`shot_metrics`, from the most to the least represented in training.
GROUPS: tuple[str, ...] = ("many", "medium", "few")

_SHOT_METRICS = ("mae", "mse", "gm")


def _as_vector(x: Any, name: str) -> NDArray[np.float64]:
    if hasattr(x, "detach"):  # torch tensors, without importing torch here
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} could not be converted to a float array: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape} (flatten it, e.g. "
                         f"y.reshape(-1), if it holds one value per sample)")
    return arr


def _check_finite(arr: NDArray[np.float64], name: str) -> None:
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite values (first at index "
                         f"{int(np.flatnonzero(bad)[0])})")


def _pair(y_true: Any, y_pred: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t, p = _as_vector(y_true, "y_true"), _as_vector(y_pred, "y_pred")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"y_true and y_pred have different lengths ({t.shape[0]} and "
                         f"{p.shape[0]})")
    if t.shape[0] == 0:
        raise ValueError("y_true and y_pred are empty")
    _check_finite(t, "y_true")
    _check_finite(p, "y_pred")
    return t, p


def _check_eps(eps: float) -> None:
    if not eps >= 0 or not math.isfinite(eps):
        raise ValueError(f"eps must be a finite number >= 0, got {eps}")


def _mae(t: NDArray[np.float64], p: NDArray[np.float64]) -> float:
    return float(np.mean(np.abs(t - p)))


def _mse(t: NDArray[np.float64], p: NDArray[np.float64]) -> float:
    return float(np.mean((t - p) ** 2))


def _gm(t: NDArray[np.float64], p: NDArray[np.float64], eps: float) -> float:
    with np.errstate(divide="ignore"):  # log(0) = -inf gives exactly 0 when eps == 0
        return float(np.exp(np.mean(np.log(np.maximum(np.abs(t - p), eps)))))


def _r2(t: NDArray[np.float64], p: NDArray[np.float64]) -> float:
    if t.shape[0] < 2:
        return math.nan
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _pearson(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    # scipy's rule: exactly constant input -> NaN. Normalising first avoids overflow in the
    # products.
    if x.shape[0] < 2 or (x == x[0]).all() or (y == y[0]).all():
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    r = float(np.dot(xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)))
    return max(-1.0, min(1.0, r))


def _spearman(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    from scipy.stats import rankdata

    if x.shape[0] < 2:
        return math.nan
    return _pearson(rankdata(x), rankdata(y))


def _kendall(x: NDArray[np.float64], y: NDArray[np.float64]) -> float:
    from scipy.stats import kendalltau

    if x.shape[0] < 2 or (x == x[0]).all() or (y == y[0]).all():
        return math.nan
    return float(kendalltau(x, y, variant="b").statistic)


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error ``mean(|y_true - y_pred|)``.

    Parameters
    ----------
    y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
        Targets and predictions, finite, ``n >= 1``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Non-1-D input, different lengths, empty input, or NaN/inf values.
    """
    return _mae(*_pair(y_true, y_pred))


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error ``mean((y_true - y_pred)²)``; inputs as in :func:`mae`."""
    return _mse(*_pair(y_true, y_pred))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error ``sqrt(mse)``; inputs as in :func:`mae`."""
    return math.sqrt(_mse(*_pair(y_true, y_pred)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - Σ (y - ŷ)² / Σ (y - mean(y))²``.

    As ``sklearn.metrics.r2_score`` (``force_finite=True``): a constant ``y_true`` gives 1.0 for a
    perfect prediction and 0.0 otherwise; fewer than 2 samples give NaN. Inputs as in :func:`mae`.
    """
    return _r2(*_pair(y_true, y_pred))


def pearson(y_true: Any, y_pred: Any) -> float:
    """Pearson's linear correlation coefficient (RankUp's ``lcc``), in [-1, 1].

    NaN when either input is constant (as ``scipy.stats.pearsonr``) or has fewer than 2 samples.
    Inputs as in :func:`mae`.
    """
    return _pearson(*_pair(y_true, y_pred))


def spearman(y_true: Any, y_pred: Any) -> float:
    """Spearman's rank correlation (RankUp's ``srcc``): Pearson's r of the average ranks (ties share
    the mean of their ranks), as ``scipy.stats.spearmanr``.

    NaN when either input is constant or has fewer than 2 samples. Inputs as in :func:`mae`.
    """
    return _spearman(*_pair(y_true, y_pred))


def kendall(y_true: Any, y_pred: Any) -> float:
    """Kendall's tau-b (RankUp's ``ktau``), ``scipy.stats.kendalltau(variant="b")``.

    ``(P - Q) / sqrt((P + Q + T_x)(P + Q + T_y))`` with ``P``/``Q`` concordant/discordant pairs and
    ``T_x``/``T_y`` pairs tied only in one input. NaN when either input is constant or has fewer
    than 2 samples. Inputs as in :func:`mae`.
    """
    return _kendall(*_pair(y_true, y_pred))


def gm(y_true: Any, y_pred: Any, *, eps: float = 1e-5) -> float:
    """Geometric mean of the absolute errors, ``exp(mean(log(max(|e|, eps))))`` (RankUp's ``gmae``).

    Parameters
    ----------
    y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
        As in :func:`mae`.
    eps : float, default 1e-5
        Floor on ``|e|``: without it GM is exactly 0 as soon as one error is 0 (DIR's ``gmean``,
        obtained with ``eps=0``). Must be ``>= 0``.

    Returns
    -------
    float
    """
    _check_eps(eps)
    return _gm(*_pair(y_true, y_pred), eps)


def shot_metrics(y_true: Any, y_pred: Any, train_targets: Any, *, many_threshold: int = 100,
                 few_threshold: int = 20, bin_width: float = 1.0,
                 eps: float = 1e-5) -> dict[str, float]:
    """Many/medium/few-shot breakdown of Yang et al. 2021 (Delving into Deep Imbalanced Regression).

    Targets are binned as ``floor(y / bin_width)`` (bins ``[k·w, (k+1)·w)``; with the default width
    1, integer targets such as ages are their own bins, as in DIR's ``shot_metrics``). Each test
    sample takes the number of *training* targets in its bin: **many**-shot if that count is
    ``> many_threshold``, **few**-shot if ``< few_threshold`` (including bins absent from training),
    **medium**-shot otherwise. Each group reports the MAE, MSE and GM of its test samples (the
    per-sample means DIR computes) and their number.

    Parameters
    ----------
    y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
        Test targets and predictions, as in :func:`mae`.
    train_targets : array-like or torch.Tensor, shape ``(m,)``
        Training targets (finite, ``m >= 1``), used only for their bin counts.
    many_threshold : int, default 100
        Bins with more training samples than this are many-shot (DIR's ``many_shot_thr``).
    few_threshold : int, default 20
        Bins with fewer training samples than this are few-shot (DIR's ``low_shot_thr``); must not
        exceed ``many_threshold``.
    bin_width : float, default 1.0
        Width of the target bins (> 0). Targets on a bin edge that is not representable in floating
        point may fall in the neighbouring bin; train and test values are binned identically.
    eps : float, default 1e-5
        GM floor, as in :func:`gm`.

    Returns
    -------
    dict of str to float
        ``{group}_mae``, ``{group}_mse``, ``{group}_gm`` and ``{group}_count`` (an int) for each
        group in :data:`GROUPS`. A group without test samples reports NaN metrics and count 0.
    """
    t, p = _pair(y_true, y_pred)
    train = _as_vector(train_targets, "train_targets")
    if train.shape[0] == 0:
        raise ValueError("train_targets is empty")
    _check_finite(train, "train_targets")
    if not (bin_width > 0 and math.isfinite(bin_width)):
        raise ValueError(f"bin_width must be a finite number > 0, got {bin_width}")
    if few_threshold > many_threshold:
        raise ValueError(f"few_threshold ({few_threshold}) must not exceed many_threshold "
                         f"({many_threshold})")
    _check_eps(eps)
    bins, counts = np.unique(np.floor(train / bin_width), return_counts=True)
    test_bins = np.floor(t / bin_width)
    slot = np.clip(np.searchsorted(bins, test_bins), 0, bins.shape[0] - 1)
    shots = np.where(bins[slot] == test_bins, counts[slot], 0)
    members = {
        "many": shots > many_threshold,
        "few": shots < few_threshold,
    }
    members["medium"] = ~(members["many"] | members["few"])
    out: dict[str, float] = {}
    for group in GROUPS:
        sel = members[group]
        tg, pg = t[sel], p[sel]
        empty = tg.shape[0] == 0
        out[f"{group}_mae"] = math.nan if empty else _mae(tg, pg)
        out[f"{group}_mse"] = math.nan if empty else _mse(tg, pg)
        out[f"{group}_gm"] = math.nan if empty else _gm(tg, pg, eps)
        out[f"{group}_count"] = int(tg.shape[0])
    return out


def regression_metrics(y_true: Any, y_pred: Any, *, train_targets: Any = None,
                       eps: float = 1e-5, many_threshold: int = 100, few_threshold: int = 20,
                       bin_width: float = 1.0) -> dict[str, float]:
    """All regression metrics of the toolkit in one dict (the keys written to ``summary.json``).

    Parameters
    ----------
    y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
        As in :func:`mae`.
    train_targets : array-like or torch.Tensor, shape ``(m,)``, optional
        When given, the shot breakdown of :func:`shot_metrics` is added.
    eps : float, default 1e-5
        GM floor (:func:`gm`).
    many_threshold, few_threshold, bin_width
        Passed to :func:`shot_metrics`.

    Returns
    -------
    dict of str to float
        ``mae, mse, rmse, r2, pearson, spearman, kendall, gm`` and, with ``train_targets``,
        ``{many,medium,few}_{mae,mse,gm,count}``.
    """
    t, p = _pair(y_true, y_pred)
    _check_eps(eps)
    out: dict[str, float] = {
        "mae": _mae(t, p),
        "mse": _mse(t, p),
        "rmse": math.sqrt(_mse(t, p)),
        "r2": _r2(t, p),
        "pearson": _pearson(t, p),
        "spearman": _spearman(t, p),
        "kendall": _kendall(t, p),
        "gm": _gm(t, p, eps),
    }
    if train_targets is not None:
        out.update(shot_metrics(t, p, train_targets, many_threshold=many_threshold,
                                few_threshold=few_threshold, bin_width=bin_width, eps=eps))
    return out


def canonical_name(name: str) -> str:
    """Our key for a metric name from RankUp or DIR, group prefixes included.

    ``"lcc" -> "pearson"``, ``"median_l1" -> "medium_mae"``, ``"low_gmean" -> "few_gm"``; names
    that are already ours are returned unchanged (lower-cased).

    Parameters
    ----------
    name : str
        A metric key, optionally prefixed by a shot group and ``_``.

    Returns
    -------
    str
    """
    key = name.lower()
    if key in ALIASES:
        return ALIASES[key]
    group, sep, metric = key.partition("_")
    if sep and ALIASES.get(group, group) in GROUPS:
        return f"{ALIASES.get(group, group)}_{ALIASES.get(metric, metric)}"
    return key


def ordinal_classification_metrics(true_classes: Any, pred_classes: Any,
                                   num_classes: int) -> dict[str, float]:
    """Accuracy, mean absolute error in classes and quadratic weighted kappa of ordered class indices.

    Quadratic weighted kappa (Cohen 1968) with weights ``w_ab = (a − b)² / (K − 1)²``:
    ``κ = 1 − Σ w·O / Σ w·E``, ``O`` the confusion counts and ``E`` the outer product of the true and
    predicted class counts over ``n``; 1 when every prediction is right, 0 at chance, negative below it
    (0 when ``Σ w·E`` is 0: a single class in both).

    Parameters
    ----------
    true_classes, pred_classes : array-like of int, shape ``(n,)``, values in ``[0, num_classes)``.
    num_classes : int, ``K >= 2``.

    Returns
    -------
    dict with ``accuracy``, ``mae_classes`` and ``qwk``.
    """
    t = np.asarray(true_classes)
    p = np.asarray(pred_classes)
    if t.ndim != 1 or t.shape != p.shape or t.size == 0:
        raise ValueError(f"true and predicted classes must be 1-D of one non-zero length, got {t.shape} and "
                         f"{p.shape}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    t, p = t.astype(np.int64), p.astype(np.int64)
    for name, c in (("true", t), ("predicted", p)):
        if c.min() < 0 or c.max() >= num_classes:
            raise ValueError(f"{name} classes must lie in [0, {num_classes}), got [{c.min()}, {c.max()}]")
    observed = np.zeros((num_classes, num_classes))
    np.add.at(observed, (t, p), 1.0)
    expected = np.outer(observed.sum(1), observed.sum(0)) / t.size
    grid = np.arange(num_classes)
    weights = (grid[:, None] - grid[None, :]) ** 2 / (num_classes - 1) ** 2
    chance = float((weights * expected).sum())
    qwk = 1.0 - float((weights * observed).sum()) / chance if chance > 0 else 0.0
    return {"accuracy": float(np.mean(t == p)), "mae_classes": float(np.mean(np.abs(t - p))), "qwk": qwk}



def nearest_class_metrics(y_true: Any, y_pred: Any, classes: Any) -> dict[str, float]:
    """Ordinal classification metrics of a regressor on class targets: each prediction is taken as its
    nearest class value (the lower one on a tie), then :func:`ordinal_classification_metrics`.

    Parameters
    ----------
    y_true : array-like, shape ``(n,)``
        True targets; each must be one of ``classes``.
    y_pred : array-like, shape ``(n,)``
        Finite predictions in the targets' units.
    classes : array-like, shape ``(K,)``
        The ordered class values (``K >= 2``, strictly increasing), e.g. ``0..7`` for Adience's age groups.

    Returns
    -------
    dict with ``accuracy``, ``mae_classes`` and ``qwk``.
    """
    values = np.asarray(classes, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if values.ndim != 1 or values.size < 2 or np.any(np.diff(values) <= 0):
        raise ValueError(f"classes must be >= 2 strictly increasing values, got {values.tolist()}")
    true = np.searchsorted(values, t)
    if np.any(true >= values.size) or np.any(values[np.minimum(true, values.size - 1)] != t):
        bad = t[(true >= values.size) | (values[np.minimum(true, values.size - 1)] != t)]
        raise ValueError(f"true targets must be class values {values.tolist()}; got {bad[:3].tolist()}")
    if not np.all(np.isfinite(p)):
        raise ValueError("predictions must be finite")
    above = np.clip(np.searchsorted(values, p), 1, values.size - 1)
    pred = np.where(p - values[above - 1] <= values[above] - p, above - 1, above)
    return ordinal_classification_metrics(true, pred, values.size)
