"""Spectral seriation of one connected component: the Fiedler vector and its diagnostics.

Sorting the Fiedler vector (second-smallest Laplacian eigenvector) recovers the order of any permuted
Robinson similarity whose Fiedler value is simple (Atkins, Boman & Hendrickson, SIAM J. Comput. 1998).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation._solution import EigenSolution
from clss.seriation._validation import Matrix
from clss.seriation.dense_solvers import fiedler_pairs_dense
from clss.seriation.laplacian import degrees

# Sparse components up to this size are solved densely: exact and faster than any iterative route.
DENSE_MAX = 2000


class SeriationWarning(UserWarning):
    """The seriation is valid but not unique or not certified (disconnected, multiple λ2, ...)."""


def fiedler(w: Matrix, *, kind: str = "unnormalized", solver: str = "auto",
            tol: float | None = None, maxiter: int | None = None, seed: int = 0,
            locality: tuple[NDArray[np.int64], sp.csr_matrix] | None = None
            ) -> tuple[NDArray[np.float64], EigenSolution]:
    """Unit-norm Fiedler coordinates of a connected graph and the eigen-solution they come from.

    ``w``: symmetric non-negative weights, zero diagonal, shape ``(n, n)``, connected, ``n >= 2``.
    Returns ``(positions [n], solution)``; ``solution.values`` holds λ1 (≈ 0), λ2 and λ3 (when n >= 3).
    For ``kind="random_walk"`` the positions are ``D^{-1/2} u`` (renormalised) for the ``L_sym``
    eigenvector ``u``. The sign is arbitrary here; :func:`orient` fixes it. ``locality``: the
    renumbering of a sparse ``w`` and its Laplacian in it, if the caller has them (see
    :func:`clss.seriation.sparse_solvers.fiedler_sparse`).
    """
    n = w.shape[0]
    k = min(3, n)
    lap_kind = "symmetric" if kind == "random_walk" else kind
    d = degrees(w)
    if sp.issparse(w) and n > DENSE_MAX and solver in ("auto", "shift-invert", "lobpcg-amg",
                                                          "multilevel"):
        from clss.seriation.sparse_solvers import fiedler_sparse

        sol = fiedler_sparse(w, k=k, laplacian=lap_kind, method=solver,
                             tol=1e-8 if tol is None else tol, maxiter=maxiter, seed=seed,
                             locality=locality)
    else:
        dense_w = w.toarray() if sp.issparse(w) else w
        dense_solver = solver if solver in ("davidson", "evr", "lobpcg") else "auto"
        sol = fiedler_pairs_dense(dense_w, d, lap_kind, solver=dense_solver, tol=tol,
                                  maxiter=maxiter, seed=seed)
    v = sol.vectors[:, 1].copy()
    if kind == "random_walk":
        v /= np.sqrt(d)
        v /= np.linalg.norm(v)
    return v, sol


def stable_order(positions: NDArray[np.float64]) -> NDArray[np.int64]:
    """Ascending order of ``positions``; ties keep index order and NaNs go last."""
    return np.argsort(positions, kind="stable").astype(np.int64)


def orient(positions: NDArray[np.float64], items: NDArray[np.int64],
           anchor_positions: NDArray[np.int64] | None = None,
           anchor_values: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Fix the arbitrary sign of spectral coordinates by a deterministic rule.

    With anchors inside the component, the sign maximising the Spearman correlation between the
    anchors' positions and their values (labels fix the direction). Otherwise, or when that
    correlation is 0, the rule "the first item of the order has a smaller index than the last".
    ``items``: global indices of the component's items; ``anchor_positions``: local indices.
    """
    if anchor_positions is not None and anchor_positions.size >= 2:
        from scipy.stats import spearmanr

        p, v = positions[anchor_positions], anchor_values
        if np.ptp(p) > 0 and np.ptp(v) > 0:
            rho = float(spearmanr(p, v).statistic)
            if rho != 0 and not math.isnan(rho):
                return positions if rho > 0 else -positions
    if np.isnan(positions).any():
        order = stable_order(positions)
        first, last = order[0], order[-1]
    else:  # the ends of the stable order without sorting: first minimum, last maximum
        first = int(np.argmin(positions))
        last = positions.shape[0] - 1 - int(np.argmax(positions[::-1]))
    return positions if items[first] < items[last] else -positions


def tie_groups(positions: NDArray[np.float64], order: NDArray[np.int64],
               tol: float | NDArray[np.float64]) -> list[NDArray[np.int64]]:
    """Groups of two or more items of ``order`` that share one position within ``tol`` (a scalar, or
    one tolerance per item: then the larger of the two items').

    Every item of a group lies within the tolerance of the group's first item. Chaining neighbours
    alone would merge a long chain whose consecutive gaps are all below the tolerance (the fine
    order of a 1e6-item path, say) into one "tie" spanning the whole range; such chains are split
    greedily from their first item instead.
    """
    p = positions[order]
    finite = np.isfinite(p)
    t = np.asarray(tol, dtype=np.float64)[order] if np.ndim(tol) else np.full(p.shape, float(tol))
    close = (np.diff(p) <= np.maximum(t[1:], t[:-1])) & finite[1:] & finite[:-1]
    bounds = np.concatenate(([0], np.flatnonzero(~close) + 1, [order.shape[0]]))
    long = np.flatnonzero(np.diff(bounds) >= 2)  # no Python work per item, only per chain
    groups = []
    for i in long:
        a, b = bounds[i], bounds[i + 1]
        if p[b - 1] - p[a] <= t[a:b].min():
            groups.append(np.sort(order[a:b]))
            continue
        from clss.seriation._tie_kernels import tie_run_starts  # numba: only for chains wider than a tie

        cuts = np.concatenate((a + tie_run_starts(p[a:b], t[a:b]), [b]))
        groups.extend(np.sort(order[c:e]) for c, e in itertools.pairwise(cuts) if e - c >= 2)
    return groups


def davis_kahan_radius(values: NDArray[np.float64], vector: NDArray[np.float64]) -> float:
    """Laplacian perturbation norm below which the order of ``vector`` provably cannot change.

    ``γ g / (4√2)`` with ``γ = min(λ2 - λ1, λ3 - λ2)`` and ``g`` the smallest gap between consecutive
    sorted entries of the unit Fiedler vector. By the Davis–Kahan theorem in the form of Yu, Wang &
    Samworth (Biometrika 2015), ``||ṽ - v||_2 <= 2^{3/2} ||E||_2 / γ``; since ``||·||_∞ <= ||·||_2``, no
    two entries can swap while that is below ``g / 2``. Returns 0 when ``g`` is 0 (tied entries).
    """
    gaps = [values[1] - values[0]]
    if values.shape[0] >= 3:
        gaps.append(values[2] - values[1])
    gamma = max(min(gaps), 0.0)
    g = float(np.diff(np.sort(vector)).min()) if vector.shape[0] >= 2 else 0.0
    return float(gamma * g / (4 * math.sqrt(2)))


def multiple_fiedler_message(values: NDArray[np.float64], size: int) -> str:
    """A warning text when λ2 is (numerically) repeated (the order is then not unique), else ``""``."""
    if values.shape[0] >= 3 and values[2] - values[1] <= 1e-8 * max(abs(values[2]), 1e-300):
        return (f"the Fiedler value of a {size}-item component is (nearly) multiple "
                f"(λ2 = {values[1]:.6g}, λ3 = {values[2]:.6g}): the spectral order is not "
                f"unique and may change under tiny perturbations")
    return ""


def tie_tolerance(vector: NDArray[np.float64], residual: float, gamma: float,
                  degrees: NDArray[np.float64] | None = None) -> float | NDArray[np.float64]:
    """Entries of a unit eigenvector closer than this are reported as tied.

    ``residual / γ`` bounds the 2-norm error of the whole vector (Davis–Kahan); spread over ``m``
    entries, a typical entry is off by that over ``√m``. Floor: 64 ulps of the largest entry; cap
    ``1e-6``. With ``degrees`` the vector holds random-walk positions ``v = D^{-1/2} u / ‖D^{-1/2} u‖``
    of the unit ``L_sym`` eigenvector ``u``: an error ``δ`` in ``u`` moves ``v_i`` by
    ``δ ‖D^{1/2} v‖ / √d_i``, so the tolerance is per item (an array), small where degrees are large.
    """
    m = max(vector.shape[0], 1)
    if degrees is not None:
        root = np.sqrt(degrees)
        u = root * vector
        size = float(np.linalg.norm(u))
        if size > 0:
            return tie_tolerance(u / size, residual, gamma) * size / root
    top = float(np.abs(vector).max()) if vector.size else 0.0
    spread = residual / gamma / math.sqrt(m) if gamma > 0 else math.inf
    return float(min(max(spread, 64 * np.finfo(np.float64).eps * top), 1e-6))
