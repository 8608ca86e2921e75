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

from clss.seriation import robust
from clss.seriation._validation import (
    DENSIFY_MAX,
    Matrix,
    apply_negative_policy,
    as_square_matrix,
    check_iteration_options,
    check_request,
    distance_to_similarity,
    rescale_magnitude,
    zero_diagonal,
)
from clss.seriation.anchored import anchored_positions
from clss.seriation.compare import ranks_from_order
from clss.seriation.laplacian import check_laplacian_kind, component_labels, degrees
from clss.seriation.olo import check_linkage, olo_order
from clss.seriation.refine import check_refine, refine_seriation
from clss.seriation.result import ComponentInfo, Seriation
from clss.seriation.spectral import (
    SeriationWarning,
    davis_kahan_radius,
    fiedler,
    multiple_fiedler_message,
    orient,
    stable_order,
    tie_groups,
    tie_tolerance,
)
from clss.seriation.torch_route import seriate_torch, use_torch_route

METHODS = {
    "spectral": "Fiedler vector of the graph Laplacian (Atkins, Boman & Hendrickson 1998); "
                "anchors, if given, only fix the direction",
    "anchored": "label-anchored harmonic solution (Zhu et al. 2003; GCLSS); positions on the "
                "anchor values' scale",
    "rcm": "reverse Cuthill-McKee bandwidth order, O(nnz); a cheap baseline",
    "enumerate": "exact 2-SUM minimiser by enumeration (n <= 10); a test oracle",
    "olo": "optimal leaf ordering of an average-linkage clustering of D = max(S) - S "
           "(Bar-Joseph et al. 2001); short paths, O(n^3)",
}
SPECTRAL_SOLVERS = ("auto", "davidson", "evr", "lobpcg", "shift-invert", "lobpcg-amg", "multilevel")
ANCHORED_SOLVERS = ("auto", "dense", "direct", "amg-cg", "jacobi-cg")
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
            components: str = "concatenate", weak: str = "peel", solver: str = "auto",
            tol: float | None = None, maxiter: int | None = None, seed: int = 0,
            linkage: str = "average", refine: str | None = None,
            backend: str = "auto") -> Seriation:
    """Order the items of a similarity matrix from one end to the other.

    Parameters
    ----------
    similarity : array-like (n, n), scipy.sparse matrix, torch.Tensor (dense or sparse) or networkx.Graph
        Symmetric non-negative similarities (larger = more alike); the diagonal is ignored. For sparse
        inputs and graphs, absent entries mean "no edge". Gradients never flow (tensors are detached).
    method : {None, "auto", "spectral", "anchored", "rcm", "enumerate", "olo"}
        ``None``/``"auto"`` (default): ``"anchored"`` when ``anchor_values`` are given, else
        ``"spectral"``. ``"spectral"``: sort the Fiedler vector of the Laplacian. ``"anchored"``: the
        harmonic solution with ``r`` fixed to ``anchor_values`` on ``anchors`` (GCLSS label-anchored
        ranking; positions on the values' scale). ``"rcm"``: reverse Cuthill–McKee. ``"enumerate"``:
        exact 2-SUM optimum by brute force (n <= 10). ``"olo"``: optimal leaf ordering of the
        ``linkage`` dendrogram of ``D = max(S) - S`` (:mod:`clss.seriation.olo`).
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
    weak : {"peel", "keep"}
        Spectral only. Weakly attached items (degree far below the median and at the scale of λ2, or
        the few items a localised Fiedler vector lives on: outliers of a global-bandwidth kernel,
        dangling trees) make the Fiedler vector isolate them instead of ordering the rest.
        ``"peel"`` (default): when that is detected, set them aside (up to 3 rounds, at most a quarter
        of a component), order the rest, and place them by harmonic extension (the weighted average of
        their neighbours' positions); recorded in ``info["peeled"]`` and ``warnings``. ``"keep"``: the
        plain spectral order, with the same warnings.
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
    linkage : {"average", "complete", "single", "weighted"}, default "average"
        ``method="olo"`` only: the agglomeration rule of the hierarchical clustering.
    refine : str, optional
        A criterion of :data:`clss.seriation.refine.REFINABLE` (``"2sum"``, ``"path_length"``,
        ``"ls"``, ``"ar_events"``, ...): improve the method's order on it by local search with
        :func:`clss.seriation.refine.refine_order`'s defaults (never worse; not with
        ``"anchored"``). ``info["refine"]`` records the values before and after, moves, passes
        and time; a changed order gets rank positions, no tie groups and a NaN ``safe_radius``.
    backend : {"auto", "numpy", "torch"}
        Where the spectral and anchored methods solve: ``"auto"`` (default) keeps a CUDA tensor on its
        device (the torch route of docs/seriation.md, Devices) and solves everything else with
        numpy/scipy; ``"torch"`` forces the torch route (tensors, arrays or scipy.sparse matrices, on
        their device); ``"numpy"`` always converts to numpy/scipy. The torch route runs the same
        checks and records the same warnings; ``weak="peel"`` is applied on the numpy route only.

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
    if weak not in ("peel", "keep"):
        raise ValueError(f"weak must be 'peel' or 'keep', got {weak!r}")
    allowed = ANCHORED_SOLVERS if method == "anchored" else SPECTRAL_SOLVERS
    if solver not in allowed:
        raise ValueError(f"solver {solver!r} does not apply to method {method!r}; expected one of {allowed}")
    check_iteration_options(tol, maxiter, seed)
    check_laplacian_kind(laplacian)
    check_linkage(linkage)
    if use_torch_route(similarity, backend, method, refine):
        res, exponent = seriate_torch(
            similarity, method=method, anchors=anchors, anchor_values=anchor_values, kind=kind,
            kernel=kernel, bandwidth=bandwidth, laplacian=laplacian, negative=negative,
            symmetrize=symmetrize, isolated=isolated, ridge=ridge, components_policy=components,
            solver=solver, tol=tol, maxiter=maxiter, seed=seed)
        for message in res.warnings:
            warnings.warn(message, SeriationWarning, stacklevel=2)
        return _in_input_units(res, exponent)
    name = "distance" if kind == "distance" else "similarity"
    mat, labels = as_square_matrix(similarity, weight=weight, nodelist=nodelist,
                                   symmetrize=symmetrize, name=name)
    given = mat  # the refinement's criterion is evaluated on the matrix as given, like criterion()
    check_refine(refine, method, given.shape[0])
    if kind == "distance":
        mat = distance_to_similarity(zero_diagonal(mat), kernel, bandwidth)
    mat, exponent = rescale_magnitude(zero_diagonal(mat))
    w = apply_negative_policy(mat, negative, name)
    anchor_idx, anchor_vals = check_request(method, w.shape[0], sp.issparse(w), solver, laplacian,
                                            anchors, anchor_values, labels)
    if method == "anchored":
        res = _anchored(w, anchor_idx, anchor_vals, labels, laplacian, isolated, ridge, solver,
                        tol, maxiter, seed)
    elif method == "rcm":
        res = _combinatorial(w, labels, laplacian, _rcm_order(w), "rcm")
    elif method == "enumerate":
        res = _combinatorial(w, labels, laplacian, _enumerate_order(w), "enumerate")
    elif method == "olo":
        res = _combinatorial(w, labels, laplacian, olo_order(w, linkage, DENSIFY_MAX), "olo")
    else:
        res = _spectral(w, labels, laplacian, anchor_idx, anchor_vals, components, solver, tol,
                        maxiter, seed, weak)
    for message in res.warnings:
        warnings.warn(message, SeriationWarning, stacklevel=2)
    res = _in_input_units(res, exponent)
    if refine is not None:
        res = refine_seriation(res, given, kind, refine, seed)
    return res


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
              tol: float | None, maxiter: int | None, seed: int, weak: str) -> Seriation:
    """Spectral order with diagnostics; ``weak="peel"`` sets weak/localised items aside and re-solves."""
    n = w.shape[0]
    core = np.arange(n, dtype=np.int64)
    rounds = 0
    first: tuple[Seriation, list[robust.Finding]] | None = None
    while True:
        sub_w = w if core.size == n else (w[core][:, core] if sp.issparse(w)
                                          else w[np.ix_(core, core)])
        sub_anchor, sub_vals = _restrict_anchors(anchors, values, core)
        res, found = _spectral_pass(sub_w, kind, sub_anchor, sub_vals, components, solver, tol,
                                    maxiter, seed, rounds == 0)
        first = first or (res, found)
        if weak != "peel" or rounds == robust.PEEL_ROUNDS:
            break
        peel = robust.peel_set(found, res.components)
        if peel.size == 0:
            break
        core = np.delete(core, peel)
        rounds += 1
    if core.size < n:
        # Weak items at an end of the order (a Robinson matrix's last item, say) localise the vector
        # without harming the order of the rest: keep the plain order when the core agrees with it.
        # The set-aside items must also sit where their neighbours put them.
        res0, found0 = first
        agreement = robust.rank_agreement(res0.ranks[core], res.ranks)
        peeled = _with_peeled(w, core, res, found, labels, rounds, agreement)
        if not robust.same_placement(w, res0.ranks, core, peeled.info["peeled"], agreement):
            return peeled
        res, found = res0, [f for f in found0 if f.code not in ("weak_items", "localized")]
        res = replace(res, info=dict(res.info, peel_check=agreement))
    return replace(res, labels=labels, warnings=tuple(f.message for f in found))


def _restrict_anchors(anchors: NDArray[np.int64] | None, values: NDArray[np.float64] | None,
                      core: NDArray[np.int64]) -> tuple[NDArray[np.int64] | None,
                                                        NDArray[np.float64] | None]:
    if anchors is None or values is None:
        return anchors, values
    inside = np.isin(anchors, core)
    return np.searchsorted(core, anchors[inside]).astype(np.int64), values[inside]


def _with_peeled(w: Matrix, core: NDArray[np.int64], res: Seriation,
                 found: list[robust.Finding], labels: list[Any] | None, rounds: int,
                 agreement: float) -> Seriation:
    """Insert the set-aside items into the core's order (:func:`robust.insertion_keys`)."""
    n = w.shape[0]
    peeled = np.setdiff1d(np.arange(n), core)
    key = np.empty(n)
    key[core] = res.ranks
    key[peeled], beside = robust.insertion_keys(w, core, res.ranks, peeled)
    positions = np.empty(n)
    positions[core] = res.positions
    # An inserted item shares the position of the item it sits beside (a tie), or takes the
    # harmonic extension of the positions when it has no kept neighbour.
    near = beside >= 0
    local = np.searchsorted(core, beside[near])
    positions[peeled[near]] = res.positions[local]
    if not near.all():
        positions[peeled[~near]] = robust.harmonic_extension(w, core, res.positions,
                                                             peeled)[~near]
    order = stable_order(key)
    n_comp, comp = component_labels(w)
    ties = [core[g] for g in res.tie_groups]
    has_peeled = np.zeros(n, dtype=bool)
    has_peeled[peeled] = True
    scale = float(np.nanmax(np.abs(positions))) if n else 0.0
    ties += [g for g in tie_groups(positions, order, 1e-12 * scale) if has_peeled[g].any()]
    infos = []
    for c in range(n_comp):
        items = np.flatnonzero(comp == c)
        inside = res.components[np.searchsorted(core, np.intersect1d(items, core))]
        main = res.component_info[int(np.bincount(inside).argmax())] if inside.size else None
        infos.append(ComponentInfo(items=items) if main is None
                     else replace(main, items=items))
    msg = (f"{peeled.size} weakly attached item(s) were set aside ({rounds} round(s)), the other "
           f"{core.size} ordered, and the set-aside items inserted beside their most similar kept "
           f"item (or at their attachment point): with them, the order of the rest "
           f"changed (Spearman {agreement:.3f} against the plain spectral order); pass weak='keep' "
           f"for the plain spectral order")
    notes = [f.message for f in found] + [msg]
    info = dict(res.info, peeled=peeled, inserted_beside=beside, peel_rounds=rounds,
                core_components=res.n_components, peel_check=agreement)
    connected = n_comp == 1
    return replace(res, order=order, ranks=ranks_from_order(order), positions=positions,
                   components=comp, component_info=tuple(infos),
                   lambda2=infos[0].lambda2 if connected else 0.0,
                   lambda3=infos[0].lambda3 if connected else math.nan,
                   eigengap=infos[0].eigengap if connected else math.nan,
                   safe_radius=math.nan, tie_groups=tuple(ties), labels=labels,
                   warnings=tuple(notes), info=info)


def _spectral_pass(w: Matrix, kind: str, anchors: NDArray[np.int64] | None,
                   values: NDArray[np.float64] | None, components: str, solver: str,
                   tol: float | None, maxiter: int | None, seed: int, first: bool
                   ) -> tuple[Seriation, list[robust.Finding]]:
    """One spectral solve of every component, and the problems found in it."""
    n = w.shape[0]
    d = degrees(w)
    locality = None
    if sp.issparse(w):
        # one search gives the components and, for a connected graph, the solver's renumbered L
        from clss.seriation.sparse_solvers import components_and_locality

        n_comp, comp, locality = components_and_locality(w, d, solver)
    else:
        n_comp, comp = component_labels(w)
    found: list[robust.Finding] = []
    if n_comp > 1:
        if components == "raise" and first:
            raise ValueError(f"the similarity graph is disconnected ({n_comp} components); the "
                             f"spectral order between components is undefined. Pass "
                             f"components='concatenate' to order each component separately")
        found.append(robust.Finding(
            "disconnected", f"the similarity graph has {n_comp} connected components: each is "
            f"ordered separately and the orders are concatenated by smallest item index",
            np.empty(0, np.int64)))
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
        v, sol = fiedler(sub, kind=kind, solver=solver, tol=tol, maxiter=maxiter, seed=seed,
                         locality=locality)
        multiple = multiple_fiedler_message(sol.values, items.size)
        if multiple:
            found.append(robust.Finding("multiple", multiple, items))
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
        walk = (d[items] if n_comp > 1 else d) if kind == "random_walk" else None
        groups = tie_groups(v, local_order, tie_tolerance(v, residual, gamma, walk))
        ties.extend(items[g] for g in groups)
        found.extend(robust.diagnose_component(
            items, v, d[items] if n_comp > 1 else d, float(lam[1]), sol.converged,
            max((g.size for g in groups), default=0), kind))
        positions[items] = v
        order_parts.append(items[local_order])
        infos.append(ComponentInfo(items=items, lambda2=float(lam[1]), lambda3=l3,
                                   eigengap=l3 - float(lam[1]), residual=residual,
                                   safe_radius=radius, solver=sol.solver,
                                   converged=sol.converged))
    order = np.concatenate(order_parts).astype(np.int64)
    main = infos[0]
    connected = n_comp == 1
    res = Seriation(
        order=order, ranks=ranks_from_order(order), positions=positions, method="spectral",
        laplacian=kind, components=comp, component_info=tuple(infos),
        lambda2=main.lambda2 if connected else 0.0,
        lambda3=main.lambda3 if connected else math.nan,
        eigengap=main.eigengap if connected else math.nan,
        residual=max(i.residual for i in infos),
        safe_radius=main.safe_radius if connected else 0.0,
        converged=all(i.converged for i in infos),
        solver=",".join(sorted({i.solver for i in infos if i.solver != "trivial"})) or "trivial",
        tie_groups=tuple(ties),
        info={"participation_ratio": robust.participation_ratio(positions) if connected
              else math.nan},
    )
    return res, found


def _anchored(w: Matrix, anchors: NDArray[np.int64], values: NDArray[np.float64],
              labels: list[Any] | None, kind: str, isolated: str, ridge: float, solver: str,
              tol: float | None, maxiter: int | None, seed: int) -> Seriation:
    notes = ()
    if np.ptp(values) == 0:
        notes = ("all anchor values are equal: every anchored position equals that value and "
                 "the order among unknowns is arbitrary",)
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
        conditioning=cond, labels=labels, info=dict(diag), warnings=notes,
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
