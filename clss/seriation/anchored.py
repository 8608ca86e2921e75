"""Label-anchored ("harmonic") seriation: the GCLSS label-anchored regularisation.

Minimising ``rᵀ L r = ½ Σ_ij W_ij (r_i - r_j)²`` with ``r`` fixed to the anchor values ``y_l`` gives the
normal equations ``L_uu r_u = W_ul y_l`` (degrees over all columns): the harmonic function of Zhu,
Ghahramani & Lafferty (ICML 2003). ``L_uu`` is symmetric positive definite exactly when every connected
component of the graph that holds unknowns also holds an anchor, so it is solved by Cholesky (dense) or
a sparse factorisation / preconditioned CG, never through an eigendecomposition. For non-negative
weights the solution obeys the maximum principle ``min y_l <= r_u <= max y_l``, so positions are on
the targets' scale and usable as pseudo-values.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation._solution import LinearSolution
from clss.seriation._validation import Matrix
from clss.seriation.dense_solvers import solve_spd_dense
from clss.seriation.laplacian import component_labels, degrees
from clss.seriation.result import ComponentInfo
from clss.seriation.spectral import DENSE_MAX, fiedler, orient

ISOLATED_POLICIES = ("raise", "nan", "unanchored", "ridge")


def harmonic_solve(w: Matrix, anchors: NDArray[np.int64], values: NDArray[np.float64], *,
                   solver: str = "auto", tol: float | None = None,
                   maxiter: int | None = None) -> tuple[NDArray[np.int64], LinearSolution]:
    """Solve ``L_uu x = W_ul y`` for the items not in ``anchors``.

    ``w``: symmetric non-negative weights with zero diagonal, shape ``(n, n)``; every component must
    contain an anchor. Returns ``(unknown item indices (ascending), solution)`` with ``solution.x``
    aligned with those indices.
    """
    n = w.shape[0]
    unknown = np.setdiff1d(np.arange(n), anchors)
    if unknown.size == 0:
        return unknown, LinearSolution(x=np.empty(0), residual=0.0, converged=True, iterations=0,
                                       solver="none")
    if sp.issparse(w) and unknown.size > DENSE_MAX and solver != "dense":
        from clss.seriation.sparse_solvers import harmonic_sparse

        sol = harmonic_sparse(w, anchors, values, method=solver,
                              tol=1e-10 if tol is None else tol, maxiter=maxiter)
        return unknown, sol
    dense = w.toarray() if sp.issparse(w) else w
    w_uu = dense[np.ix_(unknown, unknown)]
    a = -w_uu
    a[np.diag_indices_from(a)] += degrees(dense)[unknown]
    b = dense[np.ix_(unknown, anchors)] @ values
    try:
        sol = solve_spd_dense(a, b)
    except np.linalg.LinAlgError:
        raise ValueError("the anchored system L_uu is numerically singular: some items are "
                         "(almost) disconnected from every anchor; check the component report or "
                         "use isolated='ridge'") from None
    return unknown, sol


def anchor_coverage(comp: NDArray[np.int64], n_comp: int, anchors: NDArray[np.int64],
                    isolated: str) -> NDArray[np.bool_]:
    """Which components hold an anchor; with ``isolated="raise"``, a ValueError naming the others."""
    if isolated not in ISOLATED_POLICIES:
        raise ValueError(f"isolated must be one of {ISOLATED_POLICIES}, got {isolated!r}")
    has_anchor = np.zeros(n_comp, dtype=bool)
    has_anchor[comp[anchors]] = True
    free = np.flatnonzero(~has_anchor)
    if free.size and isolated == "raise":
        sizes = np.bincount(comp, minlength=n_comp)[free[:5]].tolist()
        raise ValueError(f"{free.size} connected component(s) contain no anchor (sizes {sizes}"
                         f"{', ...' if free.size > 5 else ''}): their positions are not determined "
                         f"by the labels. Pass isolated='nan', 'unanchored' or 'ridge', or add "
                         f"anchors to them")
    return has_anchor


def anchored_positions(w: Matrix, anchors: NDArray[np.int64], values: NDArray[np.float64], *,
                       isolated: str = "raise", ridge: float = 1e-3, solver: str = "auto",
                       tol: float | None = None, maxiter: int | None = None, seed: int = 0
                       ) -> tuple[NDArray[np.float64], NDArray[np.int64], list[ComponentInfo],
                                  dict[str, float | str | bool]]:
    """Positions of every item under label anchoring, with the component policy applied.

    ``isolated`` decides what happens to components that contain no anchor (their positions are not
    determined by the labels): ``"raise"`` (default; a ValueError naming them), ``"nan"`` (NaN positions,
    ordered last), ``"unanchored"`` (their own Fiedler order, rescaled to the anchor-value range: the
    order is meaningful, the level is not), ``"ridge"`` (Tikhonov shrinkage towards the anchor mean
    ``ȳ``: solves ``(L_uu + αI) r = W_ul y + α ȳ`` with ``α = ridge × mean degree`` for every unknown —
    equivalently a virtual anchor of value ``ȳ`` tied to all items with weight ``α``).

    Returns ``(positions [n], component labels [n], component infos, diagnostics)``.
    """
    n = w.shape[0]
    n_comp, comp = component_labels(w)
    has_anchor = anchor_coverage(comp, n_comp, anchors, isolated)
    positions = np.full(n, math.nan)
    positions[anchors] = values
    diag: dict[str, float | str | bool] = {}
    if isolated == "ridge":
        alpha = ridge * float(degrees(w).mean() or 1.0)
        w_aug, a_aug, v_aug = _with_virtual_anchor(w, anchors, values, alpha)
        unknown, sol = harmonic_solve(w_aug, a_aug, v_aug, solver=solver, tol=tol, maxiter=maxiter)
        positions[unknown] = sol.x
        infos = [ComponentInfo(items=np.flatnonzero(comp == c), anchored=bool(has_anchor[c]),
                               solver=sol.solver, residual=sol.residual, converged=sol.converged)
                 for c in range(n_comp)]
        diag["ridge_alpha"] = alpha
        return positions, comp, infos, _diagnostics(diag, sol, positions, anchors, values)

    keep = np.flatnonzero(has_anchor[comp])
    local = np.full(n, -1, dtype=np.int64)
    local[keep] = np.arange(keep.size)
    w_keep = w[keep][:, keep] if sp.issparse(w) else w[np.ix_(keep, keep)]
    unknown_local, sol = harmonic_solve(w_keep, local[anchors], values, solver=solver, tol=tol,
                                        maxiter=maxiter)
    positions[keep[unknown_local]] = sol.x
    infos: list[ComponentInfo] = []
    lo, hi = float(values.min()), float(values.max())
    for c in range(n_comp):
        items = np.flatnonzero(comp == c)
        if has_anchor[c]:
            infos.append(ComponentInfo(items=items, anchored=True, solver=sol.solver,
                                       residual=sol.residual, converged=sol.converged))
            continue
        if isolated == "unanchored" and items.size >= 2:
            sub = w[items][:, items] if sp.issparse(w) else w[np.ix_(items, items)]
            v, esol = fiedler(sub, seed=seed)
            positions[items], info = unanchored_placement(
                items, v, float(esol.values[1]), float(esol.residuals.max()), esol.solver,
                esol.converged, lo, hi)
            infos.append(info)
        else:
            if isolated == "unanchored":
                positions[items] = (lo + hi) / 2
            infos.append(ComponentInfo(items=items, solver=isolated, converged=True))
    return positions, comp, infos, _diagnostics(diag, sol, positions, anchors, values)


def unanchored_placement(items: NDArray[np.int64], v: NDArray[np.float64], lambda2: float,
                         residual: float, solver: str, converged: bool, lo: float, hi: float
                         ) -> tuple[NDArray[np.float64], ComponentInfo]:
    """``isolated="unanchored"``: an anchor-free component's own Fiedler order (``v``, oriented
    here), rescaled to the anchor-value range ``[lo, hi]``, and its component info."""
    v = orient(v, items)
    span = float(np.ptp(v)) or 1.0
    info = ComponentInfo(items=items, lambda2=lambda2, solver=f"unanchored-{solver}",
                         residual=residual, converged=converged)
    return lo + (v - v.min()) / span * (hi - lo), info


def _with_virtual_anchor(w: Matrix, anchors: NDArray[np.int64], values: NDArray[np.float64],
                         alpha: float) -> tuple[Matrix, NDArray[np.int64], NDArray[np.float64]]:
    n = w.shape[0]
    tie = np.full(n, alpha)
    tie[anchors] = 0.0
    if sp.issparse(w):
        w_aug = sp.bmat([[w, sp.csr_matrix(tie[:, None])], [sp.csr_matrix(tie[None, :]), None]],
                        format="csr")
    else:
        w_aug = np.zeros((n + 1, n + 1))
        w_aug[:n, :n] = w
        w_aug[:n, n] = w_aug[n, :n] = tie
    return (w_aug, np.append(anchors, n).astype(np.int64),
            np.append(values, values.mean()).astype(np.float64))


def _diagnostics(diag: dict[str, float | str | bool], sol: LinearSolution,
                 positions: NDArray[np.float64], anchors: NDArray[np.int64],
                 values: NDArray[np.float64]) -> dict[str, float | str | bool]:
    lo, hi = float(values.min()), float(values.max())
    mask = np.ones(positions.shape[0], dtype=bool)
    mask[anchors] = False
    free = positions[mask]
    free = free[np.isfinite(free)]
    span = hi - lo
    slack = 1e-9 * max(span, abs(hi), 1.0)
    diag["maximum_principle"] = bool(((free >= lo - slack) & (free <= hi + slack)).all())
    # Harmonic solutions degenerate towards a constant on high-dimensional graphs with few labels
    # (Nadler, Srebro & Zhou 2009): report how many unknowns sit at the label mean.
    diag["flat_fraction"] = (float((np.abs(free - values.mean()) <= 0.01 * span).mean())
                             if free.size and span > 0 else math.nan)
    diag["condition_estimate"] = float(sol.info.get("condition_estimate", math.nan))
    diag["iterations"] = sol.iterations
    return diag
