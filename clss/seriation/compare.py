"""Compare recovered orders with a reference, modulo reversal (see docs/metrics.md).

An *order* lists item indices from one end to the other (``order[p]`` is the item at position
``p``); its *ranks* are the inverse permutation (``ranks[i]`` is the position of item ``i``, so
``order[ranks[i]] == i``). Reversal is a genuine symmetry of seriation (the Fiedler vector's sign is
arbitrary), so by default every comparison is made modulo reversal, as R's ``ser_cor`` /
``ser_dist`` (Hahsler, Hornik & Buchta, JSS 2008) do: correlations are reported as absolute values
and distances as the minimum over the order and its reversal.
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from clss.seriation.batch import as_real_tensor

__all__ = [
    "ORDER_MEASURES",
    "align_orders",
    "compare_orders",
    "order_from_ranks",
    "rank_correlation_batch",
    "ranks_from_order",
]

#: measure name -> True when higher is better (the correlations and ``exact``), False for distances.
ORDER_MEASURES: dict[str, bool] = {
    "kendall": True,
    "spearman": True,
    "footrule": False,
    "exact": True,
    "max_displacement": False,
    "adjacent_transpositions": False,
}

# Bound on the number of elements of the [B, rows, n] sign-product blocks of the batched Kendall
# tau.
_BLOCK_ELEMENTS = 1 << 22


def _check_permutation_np(p: NDArray[Any], name: str) -> NDArray[np.int64]:
    if p.dtype == np.bool_ or not np.issubdtype(p.dtype, np.integer):
        raise ValueError(f"{name} must contain integer item indices, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError(f"{name} must be at least 1-D, got a scalar")
    n = p.shape[-1]
    if p.size and not np.array_equal(np.sort(p, axis=-1), np.broadcast_to(np.arange(n), p.shape)):
        raise ValueError(f"{name} is not a permutation of 0..{n - 1} along its last axis "
                         f"(values must be distinct indices in [0, {n}))")
    return p.astype(np.int64, copy=False)


def _check_permutation_torch(p: torch.Tensor, name: str) -> torch.Tensor:
    if p.is_floating_point() or p.is_complex() or p.dtype == torch.bool:
        raise ValueError(f"{name} must contain integer item indices, got dtype {p.dtype}")
    if p.ndim == 0:
        raise ValueError(f"{name} must be at least 1-D, got a scalar")
    n = p.shape[-1]
    ref = torch.arange(n, device=p.device, dtype=p.dtype).expand(p.shape)
    if p.numel() and not torch.equal(torch.sort(p, dim=-1).values, ref):
        raise ValueError(f"{name} is not a permutation of 0..{n - 1} along its last axis "
                         f"(values must be distinct indices in [0, {n}))")
    return p.long()


@overload
def ranks_from_order(order: torch.Tensor) -> torch.Tensor: ...
@overload
def ranks_from_order(order: ArrayLike) -> NDArray[np.int64]: ...


def ranks_from_order(order: ArrayLike | torch.Tensor) -> NDArray[np.int64] | torch.Tensor:
    """Inverse permutation: the position of every item in ``order``.

    Parameters
    ----------
    order : array-like or torch.Tensor of int, shape ``(..., n)``
        Permutations of ``0..n-1`` along the last axis (item indices from one end to the other).

    Returns
    -------
    ranks : int64 numpy array or torch.Tensor (same device), shape ``(..., n)``
        ``ranks[..., order[..., p]] == p``, i.e. ``order[ranks[i]] == i``.

    Raises
    ------
    ValueError
        If ``order`` is not integer-valued or not a permutation along its last axis.
    """
    if isinstance(order, torch.Tensor):
        o = _check_permutation_torch(order, "order")
        pos = torch.arange(o.shape[-1], device=o.device).expand(o.shape)
        return torch.empty_like(o).scatter_(-1, o, pos)
    o = _check_permutation_np(np.asarray(order), "order")
    ranks = np.empty_like(o)
    np.put_along_axis(ranks, o, np.broadcast_to(np.arange(o.shape[-1]), o.shape), axis=-1)
    return ranks


@overload
def order_from_ranks(ranks: torch.Tensor) -> torch.Tensor: ...
@overload
def order_from_ranks(ranks: ArrayLike) -> NDArray[np.int64]: ...


def order_from_ranks(ranks: ArrayLike | torch.Tensor) -> NDArray[np.int64] | torch.Tensor:
    """Order (item at each position) from ranks (position of each item); the inverse of
    :func:`ranks_from_order`.

    Parameters
    ----------
    ranks : array-like or torch.Tensor of int, shape ``(..., n)``
        Permutations of ``0..n-1`` along the last axis. Scores with ties must be turned into ranks
        first (e.g. ``np.argsort(np.argsort(scores, kind="stable"))``).

    Returns
    -------
    order : int64 numpy array or torch.Tensor (same device), shape ``(..., n)``
        ``order[ranks[i]] == i``.
    """
    # The inverse of a permutation is computed the same way in both directions.
    if isinstance(ranks, torch.Tensor):
        return ranks_from_order(_check_permutation_torch(ranks, "ranks"))
    return ranks_from_order(_check_permutation_np(np.asarray(ranks), "ranks"))


def _as_order(order: ArrayLike | torch.Tensor, name: str) -> NDArray[np.int64]:
    arr = order.detach().cpu().numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return _check_permutation_np(arr, name)


def _discordant_pairs(x: NDArray[np.int64]) -> int:
    """Number of inversions of a permutation, via scipy's O(n log n) Kendall tau."""
    from scipy.stats import kendalltau

    n = x.shape[0]
    if n < 2:
        return 0
    tau = float(kendalltau(np.arange(n), x).statistic)
    return round((1.0 - tau) * n * (n - 1) / 4.0)


def _order_measure(ra: NDArray[np.int64], rb: NDArray[np.int64], measure: str) -> float:
    n = ra.shape[0]
    if measure == "exact":
        return float(np.array_equal(ra, rb))
    if measure == "footrule":
        return float(np.abs(ra - rb).sum())
    if measure == "max_displacement":
        return float(np.abs(ra - rb).max()) if n else 0.0
    # Kendall and adjacent transpositions only need the relative order of b's ranks sorted by a.
    rel = rb[np.argsort(ra)]
    if measure == "adjacent_transpositions":
        return float(_discordant_pairs(rel))
    if n < 2:
        return math.nan
    if measure == "spearman":
        d = (ra - rb).astype(np.float64)
        return 1.0 - 6.0 * float(d @ d) / (n * (n * n - 1.0))
    return 1.0 - 4.0 * _discordant_pairs(rel) / (n * (n - 1.0))


def compare_orders(order: ArrayLike | torch.Tensor, reference: ArrayLike | torch.Tensor,
                   measure: str = "kendall", *, reverse: bool = True) -> float:
    """Agreement (or distance) between an order and a reference order.

    Both are permutations compared through their ranks ``r_a = ranks_from_order(order)`` and
    ``r_b = ranks_from_order(reference)``:

    * ``"kendall"``: Kendall's tau of ``r_a`` and ``r_b`` (no ties in permutations, so tau-b = tau-a
      ``= 1 - 4 D / (n (n - 1))`` with ``D`` discordant pairs); in [-1, 1].
    * ``"spearman"``: Spearman's rho ``1 - 6 Σ (r_a - r_b)² / (n (n² - 1))``; in [-1, 1].
    * ``"footrule"``: Spearman's footrule ``Σ |r_a - r_b|`` (Diaconis & Graham 1977; R's
      ``manhattan``).
    * ``"exact"``: 1.0 if the orders are equal, else 0.0.
    * ``"max_displacement"``: ``max |r_a - r_b|`` (the ∞-norm of the rank difference).
    * ``"adjacent_transpositions"``: the least number of swaps of neighbours turning one order into
      the other, i.e. the number ``D`` of discordant pairs (Kendall's distance, the bubble-sort
      distance).

    Parameters
    ----------
    order, reference : array-like or torch.Tensor of int, shape ``(n,)``
        Permutations of ``0..n-1``.
    measure : str, default ``"kendall"``
        One of :data:`ORDER_MEASURES`.
    reverse : bool, default True
        Compare modulo reversal (seriation's symmetry): correlations become ``|value|`` (equal to
        the value for the better orientation), ``"exact"`` also accepts the reversed order, and
        distances are ``min(d(order, reference), d(order[::-1], reference))``.

    Returns
    -------
    float
        Correlations are NaN for ``n < 2`` (as in scipy); distances are 0 there.

    Raises
    ------
    ValueError
        Unknown measure, inputs that are not permutations, or lengths that differ.
    """
    if measure not in ORDER_MEASURES:
        raise ValueError(f"unknown measure {measure!r}; expected one of {sorted(ORDER_MEASURES)}")
    a = _as_order(order, "order")
    b = _as_order(reference, "reference")
    if a.shape != b.shape:
        raise ValueError(f"order has {a.shape[0]} items but reference has {b.shape[0]}")
    ra, rb = ranks_from_order(a), ranks_from_order(b)
    value = _order_measure(ra, rb, measure)
    if not reverse:
        return value
    if ORDER_MEASURES[measure] and measure != "exact":
        return abs(value)
    flipped = _order_measure(a.shape[0] - 1 - ra, rb, measure)
    return max(value, flipped) if measure == "exact" else min(value, flipped)


def align_orders(orders: list[ArrayLike | torch.Tensor], *,
                 method: Literal["spearman", "kendall"] = "spearman") -> list[NDArray[np.int64]]:
    """Orient a list of orders consistently with the first one.

    Every order whose (signed) rank correlation with ``orders[0]`` is negative is reversed; the
    others (including correlation exactly 0) are kept. This is the simple "reference" rule, not R's
    ``ser_align`` search for the orientation maximising the sum of positive correlations: it is
    enough to make orders recovered from the same latent ordering comparable position by position.

    Parameters
    ----------
    orders : list of array-like or torch.Tensor of int, each shape ``(n,)``
        Permutations of the same ``n`` items.
    method : {"spearman", "kendall"}, default ``"spearman"``
        Rank correlation deciding the orientation.

    Returns
    -------
    list of int64 numpy arrays, shape ``(n,)``
        The oriented orders (the first one unchanged).
    """
    if method not in ("spearman", "kendall"):
        raise ValueError(f"method must be 'spearman' or 'kendall', got {method!r}")
    arrays = [_as_order(o, f"orders[{k}]") for k, o in enumerate(orders)]
    if not arrays:
        return []
    ref = arrays[0]
    out = []
    for k, a in enumerate(arrays):
        if a.shape != ref.shape:
            raise ValueError(f"orders[{k}] has {a.shape[0]} items but orders[0] has {ref.shape[0]}")
        corr = compare_orders(a, ref, method, reverse=False)
        out.append(a[::-1].copy() if corr < 0 else a.copy())
    return out


def _average_ranks(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Average ranks along dim 1 among ``valid`` entries (ties share their mean position)."""
    bsz, n = x.shape
    # Invalid entries are sent past every valid value, so they never disturb the valid ranks.
    key = torch.where(valid, x, torch.full_like(x, math.inf))
    sorted_key, idx = torch.sort(key, dim=1, stable=True)
    new_group = torch.ones_like(sorted_key, dtype=torch.bool)
    new_group[:, 1:] = sorted_key[:, 1:] != sorted_key[:, :-1]
    group = torch.cumsum(new_group, dim=1) - 1 + n * torch.arange(bsz, device=x.device)[:, None]
    pos = torch.arange(n, device=x.device, dtype=x.dtype).expand(bsz, n).reshape(-1)
    mean_pos = torch.zeros(bsz * n, device=x.device, dtype=x.dtype).scatter_reduce(
        0, group.reshape(-1), pos, reduce="mean", include_self=False)
    ranks_sorted = mean_pos[group.reshape(-1)].reshape(bsz, n)
    return torch.empty_like(x).scatter_(1, idx, ranks_sorted)


def _masked_pearson(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    cnt = w.sum(dim=1)
    xc = (x - (x * w).sum(dim=1, keepdim=True) / cnt[:, None]) * w
    yc = (y - (y * w).sum(dim=1, keepdim=True) / cnt[:, None]) * w
    r = (xc * yc).sum(dim=1) / torch.sqrt((xc * xc).sum(dim=1) * (yc * yc).sum(dim=1))
    return r.clamp(-1.0, 1.0)


def _kendall_tau_b(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    bsz, n = x.shape
    num = torch.zeros(bsz, device=x.device, dtype=x.dtype)
    den_x = torch.zeros_like(num)
    den_y = torch.zeros_like(num)
    rows = max(1, _BLOCK_ELEMENTS // max(1, bsz * n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        # sign(x_i - x_j) over rows i in the block and all j; each unordered pair is counted twice.
        sx = torch.sign(x[:, start:stop, None] - x[:, None, :])
        sy = torch.sign(y[:, start:stop, None] - y[:, None, :])
        pair_w = w[:, start:stop, None] * w[:, None, :]
        num += (sx * sy * pair_w).sum(dim=(1, 2))
        den_x += (sx * sx * pair_w).sum(dim=(1, 2))
        den_y += (sy * sy * pair_w).sum(dim=(1, 2))
    return (num / torch.sqrt(den_x * den_y)).clamp(-1.0, 1.0)


def rank_correlation_batch(a: torch.Tensor, b: torch.Tensor,
                           method: Literal["kendall", "spearman"] = "kendall", *,
                           mask: torch.Tensor | None = None) -> torch.Tensor:
    """Row-wise rank correlation of two batches of scores (or ranks), in torch.

    * Kendall tau-b (the default of ``scipy.stats.kendalltau``):
      ``Σ_{i<j} s^a_ij s^b_ij / sqrt(Σ (s^a_ij)² Σ (s^b_ij)²)`` with ``s^a_ij = sign(a_i - a_j)``;
      ties in either input (``s = 0``) drop out of the numerator and shrink the denominators
      exactly as in tau-b. O(B·n²) time, memory bounded by processing blocks of rows.
    * Spearman rho (``scipy.stats.spearmanr``): Pearson correlation of the average ranks (ties share
      the mean of their positions). O(B·n log n).

    Parameters
    ----------
    a, b : torch.Tensor, shape ``(B, n)``
        Real scores on the same device; integer inputs are promoted to the default float dtype.
    method : {"kendall", "spearman"}, default ``"kendall"``
    mask : torch.Tensor of bool, shape ``(B, n)``, optional
        Valid entries for ragged batches; only valid entries (pairs of valid entries for Kendall)
        count.

    Returns
    -------
    torch.Tensor, shape ``(B,)``
        On the inputs' device, in their floating dtype. NaN for a row with fewer than 2 valid
        entries or with a constant input (as scipy returns).

    Raises
    ------
    ValueError
        Shapes that differ or are not 2-D, an unknown method, a mask of the wrong shape or dtype,
        non-finite valid entries, or inputs on different devices.
    """
    if method not in ("kendall", "spearman"):
        raise ValueError(f"method must be 'kendall' or 'spearman', got {method!r}")
    a, b = as_real_tensor(a, "a"), as_real_tensor(b, "b")
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"a and b must both have shape (B, n); got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a.device != b.device:
        raise ValueError(f"a and b are on different devices ({a.device} and {b.device})")
    dtype = torch.promote_types(a.dtype, b.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    x, y = a.detach().to(dtype), b.detach().to(dtype)
    if mask is None:
        valid = torch.ones_like(x, dtype=torch.bool)
    else:
        if mask.shape != a.shape or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape {tuple(a.shape)}, got "
                             f"{mask.dtype} of shape {tuple(mask.shape)}")
        valid = mask.to(x.device)
    if not bool((torch.isfinite(x) & torch.isfinite(y) | ~valid).all()):
        raise ValueError("a and b must be finite on every valid entry (found NaN or inf)")
    w = valid.to(dtype)
    # Zero the invalid entries so that NaN/inf there cannot leak into sums through 0 * inf.
    x, y = torch.where(valid, x, 0.0), torch.where(valid, y, 0.0)
    if method == "kendall":
        return _kendall_tau_b(x, y, w)
    return _masked_pearson(_average_ranks(x, valid), _average_ranks(y, valid), w)
