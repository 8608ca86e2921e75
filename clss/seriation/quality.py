"""Quality criteria of an ordering, modelled on R's ``seriation::criterion`` (docs/metrics.md).

A criterion scores how well ``order`` (item indices from one end to the other) arranges a square
matrix: ``matrix[order][:, order]`` is the permuted matrix whose entry ``(p, q)`` relates the items
at positions ``p`` and ``q``. Each registered criterion (:data:`CRITERIA`) is a **merit** (higher is
better) or a **loss** (lower is better); R's definitions are followed unless noted.

Inputs and the conversion rule
------------------------------
``kind="similarity"`` (the default in this toolkit: larger means more alike), ``kind="distance"``
(a non-negative dissimilarity) or ``kind="comparison"`` (a skew-symmetric matrix for ``upsets``).

* Criteria that R defines on **dissimilarities** (``ar_events``, ``ar_deviations``, ``rgar``,
  ``bar``, ``gradient_raw``, ``gradient_weighted``, ``path_length``, ``lazy_path_length``,
  ``inertia``, ``least_squares``, ``ls``, ``rho``) take ``D`` as given for a distance and
  ``D = max(S) - S`` for a similarity (``max`` over every entry, including the diagonal and a sparse
  matrix's implicit zeros). This is a linear flip: a Robinson similarity becomes an anti-Robinson
  dissimilarity with the same event counts. Criteria that depend only on differences of
  dissimilarities (the AR family, the gradient measures, ``rho``) are evaluated on ``-S``, which
  gives the same values without rounding.
* Criteria that R defines on **similarities** (``2sum``, ``me``, ``moore_stress``,
  ``neumann_stress``) take ``S`` as given for a similarity and ``1 / (1 + d)`` for a distance (as R
  converts a ``dist``).
* The diagonal is ignored by every criterion on pairs of items (R's ``dist`` objects have none); the
  matrix-image criteria ``me`` and the stresses use the full permuted matrix.
* Sums written "over the full matrix" count each unordered pair twice, as R's C code and
  ``qap.obj`` do.

Sparse input (``scipy.sparse``, ``kind="similarity"`` or ``"comparison"``) is accepted by the
criteria flagged ``sparse_ok``; they run in O(nnz + n) (an absent entry is a similarity of 0). The
others need all n² entries (``.toarray()`` first). The O(n³) criteria are vectorised over all
triples sharing a middle position, one middle position at a time, so that memory stays O(n²).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import ArrayLike, NDArray

from clss.seriation._validation import (
    as_square_matrix,
    distance_to_similarity,
    outside_safe_range,
    rescale_magnitude,
)
from clss.seriation.batch import as_real_tensor, rescale_per_matrix, scale_by_power_of_two
from clss.seriation.compare import _as_order, _check_permutation_torch, compare_orders, ranks_from_order

__all__ = [
    "CRITERIA",
    "CriterionInfo",
    "criteria",
    "criterion",
    "criterion_batch",
    "list_criteria",
]

Kind = Literal["similarity", "distance", "comparison"]
KINDS: tuple[str, ...] = ("similarity", "distance", "comparison")
BATCH_MEASURES: tuple[str, ...] = ("2sum", "path_length", "ar_events", "inertia")


@dataclass(frozen=True)
class CriterionInfo:
    """Metadata of a registered criterion.

    Attributes
    ----------
    name : str
        Lower-case registry key.
    direction : {"merit", "loss"}
        ``"merit"``: higher is better; ``"loss"``: lower is better.
    uses : {"similarity", "dissimilarity", "comparison", "reference"}
        The matrix the definition is written on (see the module's conversion rule); ``"reference"``:
        no matrix, the order is compared with ``reference=`` (another order of the same items).
    description : str
        One-line definition with its source.
    sparse_ok : bool
        Computable from a sparse similarity in O(nnz + n).
    params : tuple of str
        Names of the optional keyword parameters.
    """

    name: str
    direction: Literal["merit", "loss"]
    uses: Literal["similarity", "dissimilarity", "comparison", "reference"]
    description: str
    sparse_ok: bool
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Pairs:
    """Values ``x`` of pairs at positions ``a < b``; a pair not listed has the value ``fill``."""

    a: NDArray[np.int64]
    b: NDArray[np.int64]
    x: NDArray[np.float64]
    fill: float
    n: int

    @property
    def delta(self) -> NDArray[np.int64]:
        return self.b - self.a

    @property
    def complete(self) -> bool:
        return self.x.shape[0] == self.n * (self.n - 1) // 2

    def linear(self, w: NDArray[np.float64], w_all: float) -> float:
        """``Σ_{a<b} w_ab x_ab`` given ``w`` on the listed pairs and ``w_all = Σ_{a<b} w_ab``."""
        if self.complete:
            return float(np.dot(w, self.x))
        return self.fill * w_all + float(np.dot(w, self.x - self.fill))


def _offset_sum(n: int, weight: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> float:
    """``Σ_{a<b} weight(b - a)`` over all pairs of ``n`` positions, in O(n)."""
    k = np.arange(1, n, dtype=np.float64)
    return float(np.dot(n - k, weight(k)))


def _triple_stats(p: torch.Tensor, stats: tuple[str, ...],
                  window: int | None = None) -> dict[str, torch.Tensor]:
    """Sums over the triples of positions of a batch of symmetric permuted dissimilarities ``p``.

    Every triple ``i < j < k`` is visited through its middle ``m = j`` and its two "arms": for a row
    ``r`` and an outer column ``c`` on opposite sides of ``m``, the anti-Robinson form asks
    ``p[r, c] >= p[r, m]`` (the farther entry is at least the nearer one), which covers R's two loops
    (``d_ij >= d_ik`` for ``j < k < i`` and ``d_ij <= d_ik`` for ``i < j < k``). With
    ``t = p[r, c] - p[r, m]``: ``events`` counts ``t < 0``, ``deviations`` sums ``-t`` over them,
    ``gradient`` sums ``sign(t)`` (the two sign terms per triple of Hubert et al. 2001) and ``total``
    counts the arms; ``window`` keeps only arms with ``|r - c| <= window`` (Tien et al. 2008).

    Parameters
    ----------
    p : torch.Tensor, shape ``(B, n, n)``
        Exactly symmetric: the arms of both sides of ``m`` are read from the block above the diagonal.
    stats : tuple of str
        Any of ``"events"``, ``"deviations"``, ``"gradient"``, ``"total"``.
    window : int, optional
        Largest ``|r - c|`` kept; all arms when None.

    Returns
    -------
    dict of str to torch.Tensor, each shape ``(B,)`` in ``p``'s dtype.
    """
    bsz, n = p.shape[0], p.shape[-1]
    w = n if window is None else window
    out = {s: torch.zeros(bsz, dtype=p.dtype, device=p.device) for s in stats}
    dims = (1, 2)
    # One middle position at a time: O(n²) memory, O(n³/3) work without masks over all triples.
    for m in range(1, n - 1):
        lo, hi = max(0, m + 1 - w), min(n, m + w)
        outer = p[:, lo:m, m + 1:hi]  # p[r, c] for r < m < c
        keep = None
        if w < n - 1:
            r = torch.arange(lo, m, device=p.device)
            c = torch.arange(m + 1, hi, device=p.device)
            keep = (c[None, :] - r[:, None]) <= w
        # Arms from the rows r < m (inner entry p[r, m]) and from the rows c > m (inner p[c, m]).
        for inner in (p[:, lo:m, m, None], p[:, m, None, m + 1:hi]):
            t = outer - inner
            if keep is not None:
                t = torch.where(keep, t, 0.0)  # a zero difference counts in no statistic
            if "events" in out:
                out["events"] += (t < 0).sum(dim=dims).to(p.dtype)
            if "deviations" in out:
                out["deviations"] += torch.clamp(-t, min=0.0).sum(dim=dims)
            if "gradient" in out:
                out["gradient"] += torch.sign(t).sum(dim=dims)
            if "total" in out:
                out["total"] += float(outer.shape[1] * outer.shape[2] if keep is None
                                      else int(keep.sum()))
    return out


class _Context:
    """A validated matrix and order, with the operands each criterion needs computed once."""

    def __init__(self, mat: NDArray[np.float64] | sp.csr_matrix, kind: str,
                 order: NDArray[np.int64]) -> None:
        self.mat, self.kind, self.order = mat, kind, order
        self.n = mat.shape[0]
        self.sparse = sp.issparse(mat)
        self.ranks = ranks_from_order(order)

    def _permuted(self, m: NDArray[np.float64] | sp.csr_matrix) -> Any:
        return m[self.order][:, self.order] if sp.issparse(m) else m[np.ix_(self.order, self.order)]

    def _pairs(self, m: NDArray[np.float64] | sp.csr_matrix, shift: float, sign: float,
               fill: float) -> _Pairs:
        """Pairs of ``shift + sign * m`` at positions ``a < b`` (all if dense, stored if sparse)."""
        if sp.issparse(m):
            coo = m.tocoo()
            a, b, v = self.ranks[coo.row], self.ranks[coo.col], coo.data
            upper = a < b
            a, b, v = a[upper], b[upper], v[upper]
        else:
            a, b = np.triu_indices(self.n, 1)
            v = self._permuted(m)[a, b]
        return _Pairs(a.astype(np.int64), b.astype(np.int64), shift + sign * v, fill, self.n)

    @cached_property
    def similarity(self) -> NDArray[np.float64] | sp.csr_matrix:
        if self.kind == "distance":
            return distance_to_similarity(self.mat, "inverse", None)
        return self.mat

    @cached_property
    def sim_permuted(self) -> NDArray[np.float64] | sp.csr_matrix:
        return self._permuted(self.similarity)

    @cached_property
    def sim_pairs(self) -> _Pairs:
        return self._pairs(self.similarity, 0.0, 1.0, 0.0)

    @cached_property
    def diff_pairs(self) -> _Pairs:
        """Pairs of ``D`` or ``-S`` (``D`` up to a constant), for shift-invariant criteria."""
        return self._pairs(self.mat, 0.0, 1.0 if self.kind == "distance" else -1.0, 0.0)

    @cached_property
    def dis_pairs(self) -> _Pairs:
        """Pairs of the dissimilarity ``D`` or ``max(S) - S``, for criteria that need its level."""
        if self.kind == "distance":
            return self.diff_pairs
        top = float(self.mat.max())
        return self._pairs(self.mat, top, -1.0, top if self.sparse else 0.0)

    @cached_property
    def _diff_tensor(self) -> torch.Tensor:
        """The permuted ``D`` or ``-S`` as a ``[1, n, n]`` tensor, for the criteria over triples."""
        sign = 1.0 if self.kind == "distance" else -1.0
        return torch.from_numpy(sign * self._permuted(self.mat))[None]

    @cached_property
    def triples(self) -> dict[str, float]:
        """Every statistic of :func:`_triple_stats` over all triples, in one pass."""
        stats = _triple_stats(self._diff_tensor, ("events", "deviations", "gradient", "total"))
        return {k: float(v[0]) for k, v in stats.items()}

    def windowed_triples(self, window: int) -> dict[str, float]:
        if window >= self.n - 1:
            return self.triples
        stats = _triple_stats(self._diff_tensor, ("events", "total"), window)
        return {k: float(v[0]) for k, v in stats.items()}


def _ar_events(ctx: _Context) -> float:
    return ctx.triples["events"]


def _ar_deviations(ctx: _Context) -> float:
    return ctx.triples["deviations"]


def _rgar(ctx: _Context, window: int | None = None) -> float:
    n = ctx.n
    if window is None:
        if n < 3:
            return math.nan
        window = n - 1
    if not 2 <= window <= n - 1:
        raise ValueError(f"rgar window must satisfy 2 <= window <= n - 1 = {n - 1}, got {window}")
    stats = ctx.windowed_triples(window)
    return stats["events"] / stats["total"]


def _bar(ctx: _Context, b: int | None = None) -> float:
    n = ctx.n
    if b is None:
        b = min(max(1, n // 5), n - 1)
    if not 1 <= b <= n - 1:
        raise ValueError(f"bar band b must satisfy 1 <= b <= n - 1 = {n - 1}, got {b}")
    p = ctx.dis_pairs
    w = np.clip(b + 1.0 - p.delta, 0.0, None)
    return p.linear(w, _offset_sum(n, lambda k: np.clip(b + 1.0 - k, 0.0, None)))


def _gradient_raw(ctx: _Context) -> float:
    return ctx.triples["gradient"]


def _gradient_weighted(ctx: _Context) -> float:
    # Σ_{i<k<j} (d_ij - d_ik) + (d_ij - d_kj) is linear in d: pair (a, b) is the outer pair of b-a-1
    # triples (+2 each), the inner left pair of n-1-b triples and the inner right pair of a triples.
    # The weights sum to 0, so the level of D (hence the -S evaluation) does not matter.
    p = ctx.diff_pairs
    w = 2.0 * (p.delta - 1) - (p.n - 1 - p.b) - p.a
    return p.linear(w.astype(np.float64), 0.0)


def _path_length(ctx: _Context) -> float:
    p = ctx.dis_pairs
    return p.linear((p.delta == 1).astype(np.float64), float(ctx.n - 1))


def _lazy_path_length(ctx: _Context) -> float:
    p, n = ctx.dis_pairs, ctx.n
    w = np.where(p.delta == 1, n - 1.0 - p.a, 0.0)
    return p.linear(w, n * (n - 1) / 2.0)


def _inertia(ctx: _Context) -> float:
    p = ctx.dis_pairs
    return 2.0 * p.linear(p.delta.astype(np.float64) ** 2, _offset_sum(ctx.n, np.square))


def _least_squares(ctx: _Context) -> float:
    p = ctx.dis_pairs
    k = p.delta.astype(np.float64)
    total = float(np.sum((p.x - k) ** 2))
    if not p.complete:
        total += _offset_sum(ctx.n, lambda d: (p.fill - d) ** 2) - float(np.sum((p.fill - k) ** 2))
    return 2.0 * total


def _ls(ctx: _Context) -> float:
    p = ctx.dis_pairs
    return 2.0 * p.linear(p.delta.astype(np.float64), _offset_sum(ctx.n, lambda k: k))


def _two_sum(ctx: _Context) -> float:
    p = ctx.sim_pairs
    return 2.0 * p.linear(p.delta.astype(np.float64) ** 2, 0.0)


def _products(m: Any, rows: tuple[slice, slice], cols: tuple[slice, slice]) -> float:
    """``Σ m[rows[0], cols[0]] * m[rows[1], cols[1]]`` for dense or sparse ``m``."""
    x, y = m[rows[0], cols[0]], m[rows[1], cols[1]]
    return float(x.multiply(y).sum()) if sp.issparse(m) else float(np.sum(x * y))


_ALL, _HEAD, _TAIL = slice(None), slice(None, -1), slice(1, None)
_RIGHT = ((_ALL, _ALL), (_HEAD, _TAIL))  # (i, j) and (i, j+1)
_DOWN = ((_HEAD, _TAIL), (_ALL, _ALL))  # (i, j) and (i+1, j)
_DIAG = ((_HEAD, _TAIL), (_HEAD, _TAIL))  # (i, j) and (i+1, j+1)
_ANTI = ((_TAIL, _HEAD), (_HEAD, _TAIL))  # (i+1, j) and (i, j+1)


def _me(ctx: _Context) -> float:
    # McCormick et al. (1972): ½ Σ x_ij (x_i,j-1 + x_i,j+1 + x_i-1,j + x_i+1,j) with zero padding,
    # i.e. the sum of products over horizontally and vertically adjacent cells.
    m = ctx.sim_permuted
    return _products(m, *_RIGHT) + _products(m, *_DOWN)


def _stress(ctx: _Context, neighbours: tuple[tuple[tuple[slice, slice], ...], ...]) -> float:
    """Twice the sum over grid edges (u, v) of ``(x_u - x_v)²`` (R doubles it: Niermann 2005 counts
    every edge from both ends)."""
    m = ctx.sim_permuted
    if not sp.issparse(m):
        return 2.0 * sum(float(np.sum((m[r0, c0] - m[r1, c1]) ** 2))
                         for (r0, r1), (c0, c1) in neighbours)
    # Sparse: Σ_edges (x_u - x_v)² = Σ_u deg(u) x_u² - 2 Σ_edges x_u x_v, both over stored entries.
    axis = np.full(ctx.n, 2.0)  # neighbours of a cell along one axis: 2 inside, 1 on the border
    axis[0] = axis[-1] = 1.0
    coo = m.tocoo()
    ai, aj = axis[coo.row], axis[coo.col]
    deg = ai + aj if len(neighbours) == 2 else (1.0 + ai) * (1.0 + aj) - 1.0
    cross = sum(_products(m, rows, cols) for rows, cols in neighbours)
    return 2.0 * (float(np.dot(deg, coo.data**2)) - 2.0 * cross)


def _moore_stress(ctx: _Context) -> float:
    return _stress(ctx, (_RIGHT, _DOWN, _DIAG, _ANTI))


def _neumann_stress(ctx: _Context) -> float:
    return _stress(ctx, (_RIGHT, _DOWN))


def _rho(ctx: _Context) -> float:
    from clss.metrics import spearman

    p = ctx.diff_pairs
    if p.x.shape[0] < 2:
        return math.nan
    return abs(spearman(p.x, p.delta))


def _upsets(ctx: _Context) -> float:
    m, r = ctx.mat, ctx.ranks
    if sp.issparse(m):
        coo = m.tocoo()
        i, j, c = coo.row, coo.col, coo.data
        keep = (i < j) & (c != 0)
        i, j, c = i[keep], j[keep], c[keep]
    else:
        i, j = np.nonzero(np.triu(m, 1))
        c = m[i, j]
    return float(np.count_nonzero(np.sign(c) != np.sign(r[i] - r[j])))


def _agreement(measure: str) -> Callable[..., float]:
    def agreement(ctx: _Context, reference: ArrayLike | torch.Tensor | None = None) -> float:
        if reference is None:
            raise ValueError(f"criterion {measure!r} compares the order with reference=<another order "
                             f"of the same items>")
        return compare_orders(ctx.order, reference, measure, reverse=True)

    return agreement


_REGISTRY: dict[str, tuple[CriterionInfo, Callable[..., float]]] = {
    info.name: (info, fun)
    for info, fun in [
        (CriterionInfo("ar_events", "loss", "dissimilarity",
                       "Anti-Robinson events: per row, pairs of entries on one side of the "
                       "diagonal where the farther one is smaller (Chen 2002)", False), _ar_events),
        (CriterionInfo("ar_deviations", "loss", "dissimilarity",
                       "Anti-Robinson events weighted by |difference| (Chen 2002)", False),
         _ar_deviations),
        (CriterionInfo("rgar", "loss", "dissimilarity",
                       "Relative generalized anti-Robinson events within a window, in [0, 1] "
                       "(Tien et al. 2008)", False, ("window",)), _rgar),
        (CriterionInfo("bar", "loss", "dissimilarity",
                       "Banded anti-Robinson form Σ_{0<|i-j|<=b, i<j} (b+1-|i-j|) d_ij "
                       "(Earle & Hurley 2015)", True, ("b",)), _bar),
        (CriterionInfo("gradient_raw", "merit", "dissimilarity",
                       "Σ_{i<k<j} sign(d_ij - d_ik) + sign(d_ij - d_kj) (Hubert et al. 2001)",
                       False), _gradient_raw),
        (CriterionInfo("gradient_weighted", "merit", "dissimilarity",
                       "Σ_{i<k<j} (d_ij - d_ik) + (d_ij - d_kj) (Hubert et al. 2001)", True),
         _gradient_weighted),
        (CriterionInfo("path_length", "loss", "dissimilarity",
                       "Hamiltonian path length Σ_i d_{i,i+1}", True), _path_length),
        (CriterionInfo("lazy_path_length", "loss", "dissimilarity",
                       "Σ_i (n-i) d_{i,i+1}, positions from 1 (Earle & Hurley 2015)", True),
         _lazy_path_length),
        (CriterionInfo("inertia", "merit", "dissimilarity",
                       "Σ_{i,j} d_ij |i-j|² over the full matrix (PermutMatrix)", True), _inertia),
        (CriterionInfo("least_squares", "loss", "dissimilarity",
                       "Σ_{i!=j} (d_ij - |i-j|)² over the full matrix (PermutMatrix)", True),
         _least_squares),
        (CriterionInfo("ls", "merit", "dissimilarity",
                       "Linear seriation Σ_{i,j} d_ij |i-j| over the full matrix (Hubert & Schultz "
                       "1976; a merit as in R seriation 1.5.8)", True), _ls),
        (CriterionInfo("2sum", "loss", "similarity",
                       "2-SUM Σ_{i,j} s_ij (i-j)² over the full matrix (Barnard, Pothen & Simon "
                       "1993)", True), _two_sum),
        (CriterionInfo("me", "merit", "similarity",
                       "Measure of effectiveness: Σ of products of horizontally and vertically "
                       "adjacent cells (McCormick et al. 1972)", True), _me),
        (CriterionInfo("moore_stress", "loss", "similarity",
                       "2 Σ over 8-neighbour cell pairs of squared differences (Niermann 2005)",
                       True), _moore_stress),
        (CriterionInfo("neumann_stress", "loss", "similarity",
                       "2 Σ over 4-neighbour cell pairs of squared differences (Niermann 2005)",
                       True), _neumann_stress),
        (CriterionInfo("rho", "merit", "dissimilarity",
                       "|Spearman| between d_ij and |i-j| over pairs i<j (Hahsler 2017)", False),
         _rho),
        (CriterionInfo("kendall", "merit", "reference",
                       "|Kendall τ| between the order and reference= (reversal-invariant)", True,
                       ("reference",)), _agreement("kendall")),
        (CriterionInfo("spearman", "merit", "reference",
                       "|Spearman ρ| between the order and reference= (reversal-invariant)", True,
                       ("reference",)), _agreement("spearman")),
        (CriterionInfo("upsets", "loss", "comparison",
                       "Pairs whose order disagrees with sign(C_ij) of a skew-symmetric comparison "
                       "matrix (Fogel et al. 2014; Cucuringu 2016)", True), _upsets),
    ]
}

#: Registry: name -> :class:`CriterionInfo`.
CRITERIA: dict[str, CriterionInfo] = {name: info for name, (info, _) in _REGISTRY.items()}


def list_criteria(kind: Kind | None = None, *, sparse: bool = False) -> list[str]:
    """Names of the registered criteria, optionally only those applicable to a kind of input.

    Parameters
    ----------
    kind : {"similarity", "distance", "comparison"}, optional
        Keep the criteria that accept this kind of matrix (``upsets`` only for ``"comparison"``).
    sparse : bool, default False
        Keep only the criteria computable from a sparse matrix.

    Returns
    -------
    list of str
        Sorted registry keys. ``kendall`` and ``spearman`` (agreement with a ``reference=`` order) are
        not listed: they do not measure the matrix and are requested by name.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    names = []
    for name, info in CRITERIA.items():
        if info.uses == "reference":  # not a property of the matrix: requested by name with reference=
            continue
        if kind is not None and (info.uses == "comparison") != (kind == "comparison"):
            continue
        if sparse and not info.sparse_ok:
            continue
        names.append(name)
    return sorted(names)


def _as_comparison(matrix: Any) -> NDArray[np.float64] | sp.csr_matrix:
    if sp.issparse(matrix):
        mat: Any = sp.csr_matrix(matrix, dtype=np.float64)
        mat.sum_duplicates()
        values = mat.data
    else:
        raw = np.asarray(matrix.detach().cpu() if isinstance(matrix, torch.Tensor) else matrix)
        if np.iscomplexobj(raw):
            raise TypeError("comparison matrix must be real-valued, got a complex array")
        mat = values = np.asarray(raw, dtype=np.float64)
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1] or mat.shape[0] < 2:
        raise ValueError(f"comparison matrix must be a square 2-D matrix with at least 2 items, "
                         f"got shape {mat.shape}")
    if not np.isfinite(values).all():
        raise ValueError("comparison matrix contains NaN or infinite entries")
    scale = float(abs(mat).max())
    tol = 1e-8 + 1e-6 * scale
    skew_dev = abs(mat + mat.T).max()
    if skew_dev > tol:
        if abs(mat - mat.T).max() <= tol:
            raise ValueError(
                "upsets needs a skew-symmetric comparison matrix (C_ij = -C_ji), but the matrix is "
                "symmetric: on a symmetric similarity every pair is an upset under one of the two "
                "orientations, so the count cannot tell an order from its reverse "
                "(see docs/metrics.md)")
        raise ValueError(f"comparison matrix is not skew-symmetric: max |C + C^T| = "
                         f"{float(skew_dev):.3g} (tolerance {tol:.3g})")
    return mat


def _prepare(matrix: Any, order: ArrayLike | torch.Tensor, kind: str) -> _Context:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if kind == "comparison":
        mat = _as_comparison(matrix)
    else:
        mat, _ = as_square_matrix(matrix, name=f"{kind} matrix")
        if sp.issparse(mat) and kind == "distance":
            raise ValueError("a sparse matrix must be a similarity (an absent entry would be a "
                             "distance of 0); pass kind='similarity' or a dense distance matrix")
        if kind == "distance" and (mat < 0).any():
            raise ValueError("distance matrix has negative entries; distances must be >= 0")
        # Exact symmetry makes both triangles agree, as in R's one-triangle dist objects (halves
        # first: the sum of two entries near 1e308 overflows).
        mat = (mat / 2 + mat.T / 2).tocsr() if sp.issparse(mat) else mat / 2 + mat.T / 2
    o = _as_order(order, "order")
    if o.shape[0] != mat.shape[0]:
        raise ValueError(f"order has {o.shape[0]} items but the matrix has {mat.shape[0]}")
    return _Context(mat, kind, o)


# Homogeneity degree k of each criterion, f(c M) = c^k f(M) for c > 0 (None: not homogeneous). A matrix
# whose magnitude leaves [2^-20, 2^20] is evaluated scaled by an exact power of two and the value
# multiplied back, so entries near 1e308 give the true value (inf only when it exceeds the float range)
# instead of NaN from an overflowed intermediate, and subnormal entries keep their digits.
_DEGREE: dict[str, int | None] = {
    "ar_events": 0, "ar_deviations": 1, "rgar": 0, "bar": 1, "gradient_raw": 0,
    "gradient_weighted": 1, "path_length": 1, "lazy_path_length": 1, "inertia": 1,
    "least_squares": None, "ls": 1, "2sum": 1, "me": 2, "moore_stress": 2, "neumann_stress": 2,
    "rho": 0, "kendall": 0, "spearman": 0, "upsets": 0,
}


class _Scaled:
    """The validated context and, when the magnitude needs it, the context of the rescaled matrix."""

    def __init__(self, ctx: _Context) -> None:
        self.raw = ctx
        mat, self.exponent = rescale_magnitude(ctx.mat)
        self.scaled = ctx if self.exponent == 0 else _Context(mat, ctx.kind, ctx.order)

    def value(self, info: CriterionInfo, fun: Callable[..., float], params: dict[str, Any]) -> float:
        degree = _DEGREE[info.name]
        if self.raw.kind == "distance" and info.uses == "similarity":
            degree = None  # evaluated on 1 / (1 + d)
        if degree is None or self.exponent == 0:
            return float(fun(self.raw, **params))
        with np.errstate(over="ignore"):
            return float(np.ldexp(float(fun(self.scaled, **params)), degree * self.exponent))


def _lookup(measure: str, ctx: _Context) -> tuple[CriterionInfo, Callable[..., float]]:
    key = measure.lower()
    if key not in _REGISTRY:
        raise ValueError(f"unknown criterion {measure!r}; expected one of {sorted(_REGISTRY)}")
    info, fun = _REGISTRY[key]
    if (info.uses == "comparison") != (ctx.kind == "comparison"):
        if info.uses == "comparison":
            raise ValueError("upsets needs kind='comparison' and a skew-symmetric matrix C "
                             "(C_ij = -C_ji); on a symmetric similarity it cannot orient an order "
                             "(see docs/metrics.md)")
        raise ValueError(f"criterion {info.name!r} is defined on a similarity or distance, not on "
                         f"kind='comparison'")
    if ctx.sparse and not info.sparse_ok:
        raise ValueError(f"criterion {info.name!r} needs all n² entries; convert the sparse matrix "
                         f"with .toarray()")
    return info, fun


def criterion(matrix: Any, order: ArrayLike | torch.Tensor, measure: str, *,
              kind: Kind = "similarity", **params: Any) -> float:
    """Value of one criterion for ``matrix`` arranged by ``order``.

    Parameters
    ----------
    matrix : array-like, torch.Tensor or scipy.sparse matrix, shape ``(n, n)``
        Symmetric similarity or distance, or skew-symmetric comparison matrix (``kind``). Sparse
        input is accepted for the ``sparse_ok`` criteria with ``kind="similarity"`` or
        ``"comparison"``.
    order : array-like or torch.Tensor of int, shape ``(n,)``
        A permutation of ``0..n-1``: item indices from one end to the other.
    measure : str
        A key of :data:`CRITERIA` (case-insensitive, so R's names such as ``"AR_events"`` work).
    kind : {"similarity", "distance", "comparison"}, default ``"similarity"``
        How to read ``matrix``; see the module docstring for the conversion rule.
    **params
        ``window`` for ``rgar`` (default ``n - 1``: all triples; must be in ``[2, n-1]``), ``b`` for
        ``bar`` (default ``max(1, n // 5)``; must be in ``[1, n-1]``).

    Returns
    -------
    float
        The criterion's value; ``CRITERIA[measure].direction`` says whether higher or lower is
        better. ``rgar`` is NaN for ``n < 3`` (no triples) and ``rho`` NaN when a side is constant.

    Raises
    ------
    ValueError
        Unknown measure or parameter, an order that is not a permutation of the right length, a
        non-square, non-finite or wrongly (skew-)symmetric matrix, negative distances, a sparse
        matrix for a criterion that needs all entries, or ``upsets`` without ``kind="comparison"``.
    """
    ctx = _prepare(matrix, order, kind)
    info, fun = _lookup(measure, ctx)
    unknown = set(params) - set(info.params)
    if unknown:
        raise ValueError(f"criterion {info.name!r} takes parameters {list(info.params)}, got "
                         f"unexpected {sorted(unknown)}")
    return _Scaled(ctx).value(info, fun, params)


def criteria(matrix: Any, order: ArrayLike | torch.Tensor, measures: list[str] | None = None, *,
             kind: Kind = "similarity", **params: Any) -> dict[str, float]:
    """Values of several criteria, sharing the validation and the O(n³) pass over triples.

    Parameters
    ----------
    matrix, order, kind
        As in :func:`criterion`.
    measures : list of str, optional
        Criteria to compute; default: every registered criterion applicable to ``kind`` and, for
        sparse input, computable from a sparse matrix (:func:`list_criteria`).
    **params
        Passed to the criteria that take them (``window`` to ``rgar``, ``b`` to ``bar``); a
        parameter that none of the requested criteria takes raises a ValueError.

    Returns
    -------
    dict of str to float
        ``{name: value}`` keyed by the lower-case registry name, in the order requested.
    """
    ctx = _prepare(matrix, order, kind)
    names = measures if measures is not None else list_criteria(kind, sparse=ctx.sparse)
    resolved = [_lookup(m, ctx) for m in names]
    accepted = {p for info, _ in resolved for p in info.params}
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(f"parameters {sorted(unknown)} are not taken by any of the criteria "
                         f"{[info.name for info, _ in resolved]}")
    scaled = _Scaled(ctx)
    return {info.name: scaled.value(info, fun, {k: v for k, v in params.items() if k in info.params})
            for info, fun in resolved}


def criterion_batch(similarities: torch.Tensor, orders: torch.Tensor, measure: str, *,
                    kind: Literal["similarity", "distance"] = "similarity") -> torch.Tensor:
    """One criterion for a batch of matrices and orders, in torch (same device and dtype).

    Supports ``"2sum"``, ``"path_length"``, ``"ar_events"`` and ``"inertia"`` with the same
    definitions and conversion rule as :func:`criterion` (``D = max(S) - S`` per matrix for the
    dissimilarity-based ones; ``1 / (1 + d)`` for ``2sum`` on distances). ``ar_events`` costs
    O(B·n³) time and O(B·n²) memory beyond the inputs (one middle position at a time).

    Parameters
    ----------
    similarities : torch.Tensor, shape ``(B, n, n)``
        Symmetric matrices (distances with ``kind="distance"``); integer input is promoted to the
        default float dtype.
    orders : torch.Tensor of int, shape ``(B, n)``
        One permutation of ``0..n-1`` per matrix.
    measure : str
        One of ``"2sum"``, ``"path_length"``, ``"ar_events"``, ``"inertia"`` (case-insensitive).
    kind : {"similarity", "distance"}, default ``"similarity"``

    Returns
    -------
    torch.Tensor, shape ``(B,)``
        On the device and in the floating dtype of ``similarities``.
    """
    key = measure.lower()
    if key not in BATCH_MEASURES:
        raise ValueError(f"criterion_batch supports {list(BATCH_MEASURES)}, got {measure!r}")
    if kind not in ("similarity", "distance"):
        raise ValueError(f"kind must be 'similarity' or 'distance', got {kind!r}")
    x = as_real_tensor(similarities, "similarities").detach()
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"similarities must have shape (B, n, n), got {tuple(x.shape)}")
    bsz, n = x.shape[0], x.shape[1]
    orders = as_real_tensor(orders, "orders").detach()
    if orders.shape != (bsz, n):
        raise ValueError(f"orders must have shape ({bsz}, {n}), got {tuple(orders.shape)}")
    o = _check_permutation_torch(orders.to(x.device), "orders")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("similarities contain NaN or infinite entries")
    scale = x.abs().amax(dim=(1, 2), keepdim=True)
    tol = 1e-6 if x.dtype == torch.float64 else 1e-4
    if bool(((x / 2 - x.transpose(1, 2) / 2).abs() > tol / 2 * (1.0 + scale)).any()):
        raise ValueError("similarities must be symmetric matrices")
    if kind == "distance" and bool((x < 0).any()):
        raise ValueError("distance matrices have negative entries; distances must be >= 0")
    x = x / 2 + x.transpose(1, 2) / 2  # halves first: no overflow near the float maximum
    degree = None if key == "2sum" and kind == "distance" else _DEGREE[key]
    if degree is not None and n and outside_safe_range(float(scale.amax())):
        (x,), exponent = rescale_per_matrix(x)  # as criterion(): scaled, then multiplied back
        with torch.no_grad():
            return scale_by_power_of_two(_batch_value(x, o, key, kind), degree * exponent)
    return _batch_value(x, o, key, kind)


def _batch_value(x: torch.Tensor, o: torch.Tensor, key: str, kind: str) -> torch.Tensor:
    bsz, n = o.shape
    rows = torch.arange(bsz, device=x.device)[:, None, None]
    p = x[rows, o[:, :, None], o[:, None, :]]
    pos = torch.arange(n, device=x.device, dtype=x.dtype)
    delta = (pos[:, None] - pos[None, :]).abs()
    if key == "2sum":
        s = p if kind == "similarity" else 1.0 / (1.0 + p)
        return (s * delta**2).sum(dim=(1, 2))
    if key == "ar_events":
        return _triple_stats(p if kind == "distance" else -p, ("events",))["events"]
    d = p if kind == "distance" else x.amax(dim=(1, 2), keepdim=True) - p
    if key == "path_length":
        return torch.diagonal(d, offset=1, dim1=1, dim2=2).sum(dim=1)
    return (d * delta**2).sum(dim=(1, 2))
