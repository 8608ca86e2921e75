"""``seriate``: order the items of one similarity matrix (dense, sparse, torch or networkx)."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation._validation import (
    Matrix,
    apply_negative_policy,
    as_anchors,
    as_square_matrix,
    check_iteration_options,
    distance_to_similarity,
    rescale_magnitude,
    zero_diagonal,
)
from clss.seriation.anchored import anchored_positions
from clss.seriation.compare import ranks_from_order
from clss.seriation.laplacian import check_laplacian_kind, component_labels
from clss.seriation.result import ComponentInfo, Seriation
from clss.seriation.spectral import (
    SeriationWarning,
    davis_kahan_radius,
    fiedler,
    orient,
    stable_order,
    tie_groups,
    warn_if_multiple,
)

METHODS = {
    "spectral": "Fiedler vector of the graph Laplacian (Atkins, Boman & Hendrickson 1998); "
                "anchors, if given, only fix the direction",
    "anchored": "label-anchored harmonic solution (Zhu et al. 2003; GCLSS); positions on the "
                "anchor values' scale",
    "rcm": "reverse Cuthill-McKee bandwidth order, O(nnz); a cheap baseline",
    "enumerate": "exact 2-SUM minimiser by enumeration (n <= 10); a test oracle",
}
SPECTRAL_SOLVERS = ("auto", "davidson", "evr", "lobpcg", "shift-invert", "lobpcg-amg", "multilevel")
ANCHORED_SOLVERS = ("auto", "dense", "direct", "amg-cg", "jacobi-cg")
# Dense solvers on a sparse input densify it: refuse beyond this many items (n² doubles).
DENSIFY_MAX = 20_000
ENUMERATE_MAX = 10


def list_methods() -> dict[str, str]:
    """The available seriation methods with a one-line description each."""
    return dict(METHODS)


def seriate(similarity: Any, *, method: str | None = None, anchors: Any = None,
            anchor_values: Any = None, kind: str = "similarity",
            kernel: str | Callable[[NDArray[np.float64]], NDArray[np.float64]] = "inverse",
            bandwidth: float | None = None, laplacian: str = "unnormalized",
            negative: str = "raise", symmetrize: bool | str = False, weight: str | None = "weight",
            nodelist: Sequence[Any] | None = None, isolated: str = "raise", ridge: float = 1e-3,
            components: str = "concatenate", solver: str = "auto", tol: float | None = None,
            maxiter: int | None = None, seed: int = 0) -> Seriation:
    """Order the items of a similarity matrix from one end to the other.

    Parameters
    ----------
    similarity : array-like (n, n), scipy.sparse matrix, torch.Tensor (dense or sparse) or networkx.Graph
        Symmetric non-negative similarities (larger = more alike); the diagonal is ignored. For sparse
        inputs and graphs, absent entries mean "no edge". Gradients never flow (tensors are detached).
    method : {None, "auto", "spectral", "anchored", "rcm", "enumerate"}
        ``None``/``"auto"`` (default): ``"anchored"`` when ``anchor_values`` are given, else
        ``"spectral"``. ``"spectral"``: sort the Fiedler vector of the Laplacian. ``"anchored"``: the
        harmonic solution with ``r`` fixed to ``anchor_values`` on ``anchors`` (GCLSS label-anchored
        ranking; positions on the values' scale). ``"rcm"``: reverse Cuthill–McKee. ``"enumerate"``:
        exact 2-SUM optimum by brute force (n <= 10).
    anchors, anchor_values : array-like, optional
        Labelled items (integer indices, a boolean mask of length n, or node labels for graphs) and
        their target values. With them the default method is ``"anchored"``; an explicit
        ``method="spectral"`` keeps the Fiedler order and coordinates and uses them only to orient it
        (the sign with the larger Spearman correlation to the values).
    kind : {"similarity", "distance"}
        With ``"distance"`` the input is a dissimilarity mapped by ``kernel``: ``"inverse"``
        ``1/(1+d)`` (R seriation's choice), ``"gaussian"`` ``exp(-(d/h)²)`` with ``h = bandwidth``
        (default: median off-diagonal distance), or a callable applied elementwise.
    laplacian : {"unnormalized", "symmetric", "random_walk"}
        ``D - W`` (default, as in CLSS/GCLSS), ``I - D^{-1/2} W D^{-1/2}``, or the random-walk
        generalised problem ``L v = λ D v``. "unnormalized" and "random_walk" recover permuted Robinson
        matrices exactly; "symmetric" sorts the degree-weighted vector ``D^{1/2} v`` and does not. The
        anchored solution is the same for "unnormalized" and "random_walk"; "symmetric" is rejected
        there.
    negative : {"raise", "clip", "shift"}
        Policy for negative weights (e.g. cosine similarities): raise (default), set to 0, or subtract
        the minimum off-diagonal value (dense only; leaves the unnormalised spectral order unchanged).
    symmetrize : bool or {"average", "max", "min"}
        Symmetrise explicitly; by default an asymmetric input (beyond 1e-8 + 1e-6·max|S|) is an error.
    weight, nodelist : networkx options: edge attribute holding the weight, and the node order.
    isolated : {"raise", "nan", "unanchored", "ridge"}
        Anchored only: what to do with components holding no anchor (see
        :func:`clss.seriation.anchored.anchored_positions`). ``ridge`` is its α relative to mean degree.
    components : {"concatenate", "raise"}
        Spectral: a disconnected graph is ordered component by component, and the orders are
        concatenated in ascending order of each component's smallest item index (with a
        :class:`SeriationWarning`); ``"raise"`` makes it an error instead.
    solver : str
        ``"auto"`` follows the measured policy of docs/seriation.md (Solver policy): LAPACK ``?syevr`` for
        three eigenpairs below 500 dense items, block Davidson (``"davidson"``) above; for sparse graphs
        above 2000 items, shift-invert Lanczos, LOBPCG with an algebraic-multigrid preconditioner or a
        multilevel solver by size. Explicit: ``"davidson"``, ``"evr"``, ``"lobpcg"`` (dense),
        ``"shift-invert"``, ``"lobpcg-amg"``, ``"multilevel"`` (sparse); anchored: ``"dense"``,
        ``"direct"``, ``"amg-cg"``, ``"jacobi-cg"``.
    tol, maxiter : iterative-solver tolerance (relative residual, in (0, 1); default 1e-8) and
        iteration cap (>= 1).
    seed : non-negative integer seeding the iterative solvers' random starts (results are
        deterministic given it).

    Returns
    -------
    Seriation
        ``order``, ``ranks``, ``positions`` and diagnostics (λ2, λ3, eigengap, residual, Davis–Kahan
        ``safe_radius``, components, tie groups, conditioning for anchored solves). A matrix whose
        largest magnitude lies outside ``[2^-20, 2^20]`` (entries near 1e308, subnormals) is solved
        rescaled by an exact power of two, so the order is that of the matrix scaled to 1; the
        diagnostics in similarity units are reported in the input's units (inf beyond the float
        range).

    Examples
    --------
    >>> import numpy as np
    >>> from clss.seriation import seriate
    >>> s = np.exp(-0.5 * np.abs(np.subtract.outer(np.arange(6), np.arange(6))))
    >>> perm = np.array([3, 0, 5, 1, 4, 2])
    >>> seriate(s[np.ix_(perm, perm)]).order.tolist()
    [1, 3, 5, 0, 4, 2]
    """
    if not (method is None or isinstance(method, str)):
        raise TypeError(f"method must be a string or None, got {type(method).__name__}")
    if method is None or method == "auto":
        method = "spectral" if anchor_values is None else "anchored"
    elif method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(METHODS)} or 'auto'")
    if kind not in ("similarity", "distance"):
        raise ValueError(f"kind must be 'similarity' or 'distance', got {kind!r}")
    if components not in ("concatenate", "raise"):
        raise ValueError(f"components must be 'concatenate' or 'raise', got {components!r}")
    allowed = ANCHORED_SOLVERS if method == "anchored" else SPECTRAL_SOLVERS
    if solver not in allowed:
        raise ValueError(f"solver {solver!r} does not apply to method {method!r}; expected one of {allowed}")
    check_iteration_options(tol, maxiter, seed)
    check_laplacian_kind(laplacian)
    name = "distance" if kind == "distance" else "similarity"
    mat, labels = as_square_matrix(similarity, weight=weight, nodelist=nodelist,
                                   symmetrize=symmetrize, name=name)
    if kind == "distance":
        mat = distance_to_similarity(zero_diagonal(mat), kernel, bandwidth)
    mat, exponent = rescale_magnitude(zero_diagonal(mat))
    w = apply_negative_policy(mat, negative, name)
    n = w.shape[0]
    if sp.issparse(w) and n > DENSIFY_MAX and solver in ("davidson", "evr", "lobpcg", "dense"):
        raise ValueError(f"solver {solver!r} densifies the matrix, which at n = {n} needs "
                         f"{n * n * 8 / 2**30:.0f} GiB; use solver='auto' or a sparse solver")
    anchor_idx = anchor_vals = None
    if anchors is not None or anchor_values is not None:
        if anchors is None:
            raise ValueError("anchor_values were given without anchors")
        anchor_idx, anchor_vals = as_anchors(anchors, anchor_values, n, labels)

    if method == "anchored":
        if anchor_idx is None:
            raise ValueError("method='anchored' needs anchors and anchor_values")
        if laplacian == "symmetric":
            raise ValueError("the anchored (harmonic) solution is defined for the 'unnormalized' "
                             "(= 'random_walk') Laplacian, not laplacian='symmetric' (with "
                             "anchor values the method is 'anchored' unless method='spectral')")
        res = _anchored(w, anchor_idx, anchor_vals, labels, laplacian, isolated, ridge, solver,
                        tol, maxiter, seed)
    elif method == "rcm":
        res = _combinatorial(w, labels, laplacian, _rcm_order(w), "rcm")
    elif method == "enumerate":
        res = _combinatorial(w, labels, laplacian, _enumerate_order(w), "enumerate")
    else:
        res = _spectral(w, labels, laplacian, anchor_idx, anchor_vals, components, solver, tol,
                        maxiter, seed)
    return _in_input_units(res, exponent)


def _in_input_units(res: Seriation, exponent: int) -> Seriation:
    """Undo :func:`rescale_magnitude` on the diagnostics measured in similarity units: eigenvalues,
    Davis–Kahan radii, eigen-residuals and the ridge (linear residuals are relative, positions
    scale-free)."""
    if exponent == 0:
        return res

    def up(x: float) -> float:
        with np.errstate(over="ignore"):
            return float(np.ldexp(x, exponent))

    infos = tuple(replace(i, lambda2=up(i.lambda2), lambda3=up(i.lambda3), eigengap=up(i.eigengap),
                          safe_radius=up(i.safe_radius),
                          residual=i.residual if math.isnan(i.lambda2) else up(i.residual))
                  for i in res.component_info)
    info = dict(res.info)
    if "ridge_alpha" in info:
        info["ridge_alpha"] = up(info["ridge_alpha"])
    return replace(res, component_info=infos, lambda2=up(res.lambda2), lambda3=up(res.lambda3),
                   eigengap=up(res.eigengap), safe_radius=up(res.safe_radius),
                   residual=max(i.residual for i in infos), info=info)


def _spectral(w: Matrix, labels: list[Any] | None, kind: str, anchors: NDArray[np.int64] | None,
              values: NDArray[np.float64] | None, components: str, solver: str,
              tol: float | None, maxiter: int | None, seed: int) -> Seriation:
    n = w.shape[0]
    n_comp, comp = component_labels(w)
    if n_comp > 1:
        if components == "raise":
            raise ValueError(f"the similarity graph is disconnected ({n_comp} components); the "
                             f"spectral order between components is undefined. Pass "
                             f"components='concatenate' to order each component separately")
        warnings.warn(f"the similarity graph has {n_comp} connected components: each is ordered "
                      f"separately and the orders are concatenated by smallest item index",
                      SeriationWarning, stacklevel=3)
    positions = np.zeros(n)
    order_parts: list[NDArray[np.int64]] = []
    infos: list[ComponentInfo] = []
    ties: list[NDArray[np.int64]] = []
    for c in range(n_comp):
        items = np.flatnonzero(comp == c)
        if items.size == 1:
            order_parts.append(items)
            infos.append(ComponentInfo(items=items))
            continue
        sub = w if n_comp == 1 else (w[items][:, items] if sp.issparse(w)
                                     else w[np.ix_(items, items)])
        v, sol = fiedler(sub, kind=kind, solver=solver, tol=tol, maxiter=maxiter, seed=seed)
        warn_if_multiple(sol.values, items.size)
        local_anchor = local_vals = None
        if anchors is not None:
            inside = np.isin(anchors, items)
            local_anchor = np.searchsorted(items, anchors[inside])
            local_vals = values[inside]
        v = orient(v, items, local_anchor, local_vals)
        local_order = stable_order(v)
        lam = sol.values
        l3 = float(lam[2]) if lam.shape[0] >= 3 else math.nan
        gamma = min(lam[1] - lam[0], lam[2] - lam[1]) if lam.shape[0] >= 3 else lam[1] - lam[0]
        residual = float(sol.residuals[:2].max())
        radius = davis_kahan_radius(lam, v) if kind != "random_walk" else math.nan
        tie_tol = 1e-10 + (residual / gamma if gamma > 0 else math.inf)
        ties.extend(items[g] for g in tie_groups(v, local_order, min(tie_tol, 1e-6)))
        positions[items] = v
        order_parts.append(items[local_order])
        infos.append(ComponentInfo(items=items, lambda2=float(lam[1]), lambda3=l3,
                                   eigengap=l3 - float(lam[1]), residual=residual,
                                   safe_radius=radius, solver=sol.solver,
                                   converged=sol.converged))
    order = np.concatenate(order_parts).astype(np.int64)
    main = infos[0]
    connected = n_comp == 1
    return Seriation(
        order=order, ranks=ranks_from_order(order), positions=positions, method="spectral", laplacian=kind,
        components=comp, component_info=tuple(infos),
        lambda2=main.lambda2 if connected else 0.0,
        lambda3=main.lambda3 if connected else math.nan,
        eigengap=main.eigengap if connected else math.nan,
        residual=max(i.residual for i in infos),
        safe_radius=main.safe_radius if connected else 0.0,
        converged=all(i.converged for i in infos),
        solver=",".join(sorted({i.solver for i in infos if i.solver != "trivial"})) or "trivial",
        tie_groups=tuple(ties), labels=labels,
    )


def _anchored(w: Matrix, anchors: NDArray[np.int64], values: NDArray[np.float64],
              labels: list[Any] | None, kind: str, isolated: str, ridge: float, solver: str,
              tol: float | None, maxiter: int | None, seed: int) -> Seriation:
    if np.ptp(values) == 0:
        warnings.warn("all anchor values are equal: every anchored position equals that value and "
                      "the order among unknowns is arbitrary", SeriationWarning, stacklevel=3)
    positions, comp, infos, diag = anchored_positions(
        w, anchors, values, isolated=isolated, ridge=ridge, solver=solver, tol=tol,
        maxiter=maxiter, seed=seed)
    order = stable_order(positions)
    span = float(np.ptp(values)) or 1.0
    ties = tie_groups(positions, order, 1e-12 * span + 1e-300)
    cond = float(diag.pop("condition_estimate", math.nan))
    return Seriation(
        order=order, ranks=ranks_from_order(order), positions=positions, method="anchored", laplacian=kind,
        components=comp, component_info=tuple(infos), residual=max(i.residual for i in infos),
        converged=all(i.converged for i in infos),
        solver=",".join(sorted({i.solver for i in infos})), tie_groups=tuple(ties),
        conditioning=cond, labels=labels, info=dict(diag),
    )


def _rcm_order(w: Matrix) -> NDArray[np.int64]:
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    csr = w if sp.issparse(w) else sp.csr_matrix(w)
    return np.asarray(reverse_cuthill_mckee(csr.tocsr(), symmetric_mode=True), dtype=np.int64)


def _enumerate_order(w: Matrix) -> NDArray[np.int64]:
    """Exact minimiser of 2-SUM ``Σ_ij w_ij (π_i - π_j)²`` over all orders (first-found on ties)."""
    n = w.shape[0]
    if n > ENUMERATE_MAX:
        raise ValueError(f"method='enumerate' is exhaustive (n! orders); n = {n} exceeds "
                         f"{ENUMERATE_MAX}")
    dense = w.toarray() if sp.issparse(w) else w
    sq = np.subtract.outer(np.arange(n), np.arange(n)).astype(np.float64) ** 2
    best, best_cost = np.arange(n, dtype=np.int64), math.inf
    perms = itertools.permutations(range(n))
    while True:
        chunk = np.array(list(itertools.islice(perms, 20000)), dtype=np.int64)
        if chunk.size == 0:
            break
        chunk = chunk[chunk[:, 0] < chunk[:, -1]]  # an order and its reversal cost the same
        if chunk.size == 0:
            continue
        cost = np.einsum("mij,ij->m", dense[chunk[:, :, None], chunk[:, None, :]], sq)
        i = int(np.argmin(cost))
        # Strict improvement only, so the first optimum in lexicographic order wins ties.
        if best_cost == math.inf or cost[i] < best_cost - 1e-12 * max(abs(best_cost), 1.0):
            best, best_cost = chunk[i], float(cost[i])
    return best


def _combinatorial(w: Matrix, labels: list[Any] | None, kind: str, order: NDArray[np.int64],
                   method: str) -> Seriation:
    n = w.shape[0]
    _, comp = component_labels(w)
    if order[0] > order[-1]:
        order = order[::-1].copy()
    ranks = ranks_from_order(order)
    infos = tuple(ComponentInfo(items=np.flatnonzero(comp == c), solver=method)
                  for c in range(int(comp.max()) + 1))
    return Seriation(order=order, ranks=ranks, positions=ranks.astype(np.float64) / max(n - 1, 1),
                     method=method, laplacian=kind, components=comp, component_info=infos,
                     solver=method, labels=labels)
