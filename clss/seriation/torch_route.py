"""The torch route of :func:`clss.seriation.seriate`: one matrix solved on its own device.

``seriate(tensor)`` with ``backend="auto"`` takes this route for CUDA tensors (dense, sparse COO or
CSR); ``backend="torch"`` forces it for any tensor, array or scipy.sparse matrix (on CPU). Every
O(n²) or O(nnz) step runs in float64 on the input's device: validation (the numpy route's checks and
messages), the negative policy and distance kernels, connected components (pointer jumping), the
Laplacians and the solvers:

* dense: ``torch.linalg.eigh`` below ``EIGH_MAX`` items, above it block LOBPCG on ``W`` products with
  the null vector deflated and a Jacobi preconditioner (falling back to ``eigh`` if it does not
  converge); anchored: ``torch.linalg.cholesky_ex`` of ``L_uu``;
* sparse: up to ``DENSE_MAX`` items densified as above; beyond, a smoothed-aggregation hierarchy is
  built on the device and the Fiedler pair found by nested-iteration LOBPCG preconditioned by its
  V-cycle (``_torch_solvers``), ``converged`` from residuals recomputed on the finest level; anchored:
  CG preconditioned by a V-cycle of ``L_uu``'s own hierarchy.

Only O(n) vectors (the Fiedler vector, positions, component labels) come back to the host, where the
orientation rule, tie groups and diagnostics are those of the numpy route, so the result is the same
:class:`~clss.seriation.Seriation` (numpy arrays), with ``info["device"]`` naming the device. Inputs of
any float dtype are solved in float64 (the Fiedler gap of chain-like graphs, ~n⁻² relative, is below
float32 resolution from a few thousand items on).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from clss.seriation import _torch_solvers as ts
from clss.seriation import robust
from clss.seriation._torch_graph import Graph, as_graph, components
from clss.seriation._validation import check_request
from clss.seriation.compare import ranks_from_order
from clss.seriation.result import ComponentInfo, Seriation
from clss.seriation.spectral import (
    DENSE_MAX,
    davis_kahan_radius,
    multiple_fiedler_message,
    orient,
    stable_order,
    tie_groups,
    tie_tolerance,
)

BACKENDS = ("auto", "numpy", "torch")
# Dense components below this size are solved by a full eigh (see docs/seriation.md, Devices).
EIGH_MAX = 600
TORCH_SPECTRAL_SOLVERS = ("auto", "evr", "lobpcg", "multilevel")
TORCH_ANCHORED_SOLVERS = ("auto", "dense", "amg-cg", "jacobi-cg")
_EIG_MAXITER = 500


def use_torch_route(similarity: Any, backend: str, method: str, refine: str | None = None) -> bool:
    """Whether ``seriate`` solves on the torch route (validates ``backend``). The combinatorial
    methods and ``refine`` are host algorithms."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "numpy":
        return False
    host_only = method in ("rcm", "enumerate", "olo")
    if backend == "torch":
        if host_only:
            raise ValueError(f"method={method!r} runs on the numpy route only; use backend='auto' "
                             f"or backend='numpy'")
        if refine is not None:
            raise ValueError("refine runs on the numpy route only; use backend='auto' or "
                             "backend='numpy'")
        return True
    # CUDA only: the route computes in float64, which some accelerators (MPS) do not offer
    return (isinstance(similarity, torch.Tensor) and similarity.device.type == "cuda"
            and not host_only and refine is None)


def seriate_torch(similarity: Any, *, method: str, anchors: Any, anchor_values: Any, kind: str,
                  kernel: str | Callable[[torch.Tensor], torch.Tensor], bandwidth: float | None,
                  laplacian: str, negative: str, symmetrize: bool | str, isolated: str,
                  ridge: float, components_policy: str, solver: str, tol: float | None,
                  maxiter: int | None, seed: int) -> tuple[Seriation, int]:
    """``seriate`` on the torch route; arguments are ``seriate``'s, already checked by it except the
    input itself. Returns ``(result, exponent)``: diagnostics in units of the input scaled by
    ``2**-exponent`` (``seriate`` maps them back)."""
    allowed = TORCH_ANCHORED_SOLVERS if method == "anchored" else TORCH_SPECTRAL_SOLVERS
    if solver not in allowed:
        raise ValueError(f"solver {solver!r} runs on the numpy route only; with backend='torch' (or a "
                         f"CUDA tensor) use one of {allowed}, or pass backend='numpy'")
    with warnings.catch_warnings():  # torch's notice that sparse CSR support is in beta
        warnings.filterwarnings("ignore", message=".*[Ss]parse CSR tensor support.*")
        res, g, exponent = _solve(similarity, method, anchors, anchor_values, kind, kernel, bandwidth,
                                  laplacian, negative, symmetrize, isolated, ridge, components_policy,
                                  solver, tol, maxiter, seed)
    res.info["device"] = str(g.device)
    return res, exponent


def _solve(similarity: Any, method: str, anchors: Any, anchor_values: Any, kind: str, kernel: Any,
           bandwidth: float | None, laplacian: str, negative: str, symmetrize: bool | str,
           isolated: str, ridge: float, components_policy: str, solver: str, tol: float | None,
           maxiter: int | None, seed: int) -> tuple[Seriation, Graph, int]:
    name = "distance" if kind == "distance" else "similarity"
    g, exponent = as_graph(similarity, symmetrize=symmetrize, name=name, kind=kind, kernel=kernel,
                           bandwidth=bandwidth, negative=negative)
    anchor_idx, anchor_vals = check_request(method, g.n, g.is_sparse, solver, laplacian, anchors,
                                            anchor_values, None)
    if method == "anchored":
        res = _anchored(g, anchor_idx, anchor_vals, laplacian, isolated, ridge, solver, tol,
                        maxiter, seed)
    else:
        res = _spectral(g, laplacian, anchor_idx, anchor_vals, components_policy, solver, tol,
                        maxiter, seed)
    return res, g, exponent


# --------------------------------------------------------------------------------------------------
# Fiedler pair of one connected component
# --------------------------------------------------------------------------------------------------


class _Eigen:
    """Host copies of a component's eigen-solution: ``values``/``residuals`` (k,), Fiedler ``vector``."""

    def __init__(self, values: NDArray, residuals: NDArray, vector: NDArray, converged: bool,
                 solver: str, iterations: int) -> None:
        self.values, self.residuals, self.vector = values, residuals, vector
        self.converged, self.solver, self.iterations = converged, solver, iterations


def fiedler_torch(g: Graph, kind: str, solver: str = "auto", tol: float | None = None,
                  maxiter: int | None = None, seed: int = 0) -> _Eigen:
    """λ1..λ3, residuals and the unit Fiedler vector of a connected graph (``g.n >= 2``) on its device;
    random-walk vectors are ``D^{-1/2} u`` of the ``L_sym`` eigenvector ``u``, as in ``spectral.fiedler``."""
    n = g.n
    k = min(3, n)
    lap_kind = "symmetric" if kind == "random_walk" else kind
    d = g.degrees()
    s = d.rsqrt() if lap_kind == "symmetric" else None

    def op(x: torch.Tensor) -> torch.Tensor:  # L x or L_sym x, x of shape (n, m)
        if s is None:
            return d[:, None] * x - g.matmul(x)
        return x - s[:, None] * g.matmul(s[:, None] * x)

    null = torch.ones_like(d) if s is None else d.sqrt()
    null = null / torch.linalg.vector_norm(null)
    if solver == "multilevel" and not (g.is_sparse and n > DENSE_MAX):
        solver = "auto"  # as on the numpy route: small or dense graphs take the dense solvers
    if solver in ("auto", "multilevel") and g.is_sparse and n > DENSE_MAX:
        vec, converged, iterations, name = _sparse_fiedler(g, d, lap_kind, k - 1, tol, maxiter, seed)
    elif (solver == "lobpcg" or (solver == "auto" and n >= EIGH_MAX)) and n >= 5 * k:
        vec, converged, iterations, name = _dense_lobpcg(op, d, s, null, k, tol, maxiter, seed)
        if not converged:  # as on the numpy route: the direct solver takes over
            vec, converged, name = None, True, "torch-eigh"
    else:
        vec, converged, iterations, name = None, True, 0, "torch-eigh"
    if vec is None:
        dense = g.to_dense()
        lap = torch.diag(d) - dense if s is None else torch.eye(n, dtype=d.dtype, device=d.device) \
            - s[:, None] * dense * s[None, :]
        values, vectors = torch.linalg.eigh(lap)
        vectors = vectors[:, :k]
    else:
        vectors = torch.cat([null[:, None], vec], dim=1)
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=0)
    lv = op(vectors)
    values = (vectors * lv).sum(0)
    order = torch.argsort(values, stable=True)
    values, vectors, lv = values[order], vectors[:, order], lv[:, order]
    residuals = torch.linalg.vector_norm(lv - vectors * values, dim=0)
    if name == "torch-multilevel":  # the sparse routes' test, on residuals recomputed just above
        scale = float(d.max()) if s is None else 1.0
        converged = bool((residuals <= (1e-8 if tol is None else tol) * scale).all())
    v = vectors[:, 1]
    if kind == "random_walk":
        v = v * s
        v = v / torch.linalg.vector_norm(v)
    return _Eigen(values.cpu().numpy(), residuals.cpu().numpy(), v.cpu().numpy(), converged, name,
                  iterations)


def _dense_lobpcg(op: Callable[[torch.Tensor], torch.Tensor], d: torch.Tensor, s: torch.Tensor | None,
                  null: torch.Tensor, k: int, tol: float | None, maxiter: int | None,
                  seed: int) -> tuple[torch.Tensor, bool, int, str]:
    """LOBPCG on the dense operator: ``k - 1`` pairs above the deflated null vector, one guard column,
    Jacobi preconditioner; residual test ``||L v - λ v|| <= tol · max_i Σ_j |L_ij|`` (as the numpy route)."""
    n = d.shape[0]
    tol = 1e-8 if tol is None else tol
    scale = float(2 * d.max()) if s is None else 2.0
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn((n, k), generator=gen, dtype=torch.float64).to(d.device)
    diag = d if s is None else torch.ones_like(d)
    inv = torch.where(diag > 0, 1.0 / diag, torch.ones_like(diag))[:, None]
    _, x, res, its = ts.lobpcg(op, x0, mass=None, null=null, precond=lambda r: inv * r,
                               tol=tol * scale, maxiter=200 if maxiter is None else maxiter,
                               nwanted=k - 1, seed=seed)
    converged = bool((res[:k - 1] <= tol * scale).all())
    return x[:, :k - 1], converged, its, "torch-lobpcg"


def _sparse_fiedler(g: Graph, d: torch.Tensor, lap_kind: str, nev: int, tol: float | None,
                    maxiter: int | None, seed: int) -> tuple[torch.Tensor, bool, int, str]:
    """Multilevel LOBPCG on the pencil ``(D - W, M)`` (``M = I`` or ``D``); vectors of ``L`` or ``L_sym``."""
    tol = 1e-8 if tol is None else tol
    scale = float(d.max()) if lap_kind == "unnormalized" else 1.0
    mass = None if lap_kind == "unnormalized" else d
    weights = None if mass is None else d.rsqrt()
    n = g.n
    pnull = torch.full((n,), 1.0 / math.sqrt(n if mass is None else float(mass.sum())),
                       dtype=torch.float64, device=g.device)
    y, its, _ = ts.multilevel_fiedler(g.laplacian_csr(), mass, pnull, nev, tol * scale, weights,
                                      _EIG_MAXITER if maxiter is None else maxiter, seed)
    if mass is not None:
        y = mass.sqrt()[:, None] * y
    return y, False, its, "torch-multilevel"  # ``converged`` is set from recomputed residuals


# --------------------------------------------------------------------------------------------------
# Spectral seriation
# --------------------------------------------------------------------------------------------------


def _spectral(g: Graph, kind: str, anchors: NDArray[np.int64] | None, values: NDArray[np.float64] | None,
              components_policy: str, solver: str, tol: float | None, maxiter: int | None,
              seed: int) -> Seriation:
    n = g.n
    n_comp, comp_t = components(g)
    comp = comp_t.cpu().numpy().astype(np.int64)
    if n_comp > 1 and components_policy == "raise":
        raise ValueError(f"the similarity graph is disconnected ({n_comp} components); the "
                         f"spectral order between components is undefined. Pass "
                         f"components='concatenate' to order each component separately")
    found: list[str] = []
    if n_comp > 1:
        found.append(f"the similarity graph has {n_comp} connected components: each is ordered "
                     f"separately and the orders are concatenated by smallest item index")
    degree = g.degrees().cpu().numpy()
    positions = np.zeros(n)
    order_parts: list[NDArray[np.int64]] = []
    infos: list[ComponentInfo] = []
    ties: list[NDArray[np.int64]] = []
    sizes = np.bincount(comp, minlength=n_comp)
    members = np.argsort(comp, kind="stable")
    starts = np.concatenate([[0], np.cumsum(sizes)])
    for c in range(n_comp):
        items = members[starts[c]:starts[c + 1]]
        if items.size == 1:
            order_parts.append(items)
            infos.append(ComponentInfo(items=items))
            continue
        sub = g if n_comp == 1 else g.subgraph(torch.as_tensor(items, device=g.device))
        eig = fiedler_torch(sub, kind, solver, tol, maxiter, seed)
        lam = eig.values
        multiple = multiple_fiedler_message(lam, items.size)
        if multiple:
            found.append(multiple)
        local_anchor = local_vals = None
        if anchors is not None:
            inside = np.isin(anchors, items)
            local_anchor = np.searchsorted(items, anchors[inside])
            local_vals = values[inside]
        v = orient(eig.vector, items, local_anchor, local_vals)
        local_order = stable_order(v)
        l3 = float(lam[2]) if lam.shape[0] >= 3 else math.nan
        gamma = min(lam[1] - lam[0], lam[2] - lam[1]) if lam.shape[0] >= 3 else lam[1] - lam[0]
        residual = float(eig.residuals[:2].max())
        radius = davis_kahan_radius(lam, v) if kind != "random_walk" else math.nan
        walk = (degree[items]) if kind == "random_walk" else None
        groups = tie_groups(v, local_order, tie_tolerance(v, residual, gamma, walk))
        ties.extend(items[t] for t in groups)
        # The same checks as the numpy route; setting weak items aside (weak="peel") runs there only.
        found.extend(f.message for f in robust.diagnose_component(
            items, v, degree[items], float(lam[1]), eig.converged,
            max((t.size for t in groups), default=0), kind))
        positions[items] = v
        order_parts.append(items[local_order])
        infos.append(ComponentInfo(items=items, lambda2=float(lam[1]), lambda3=l3,
                                   eigengap=l3 - float(lam[1]), residual=residual, safe_radius=radius,
                                   solver=eig.solver, converged=eig.converged))
    order = np.concatenate(order_parts).astype(np.int64)
    main = infos[0]
    connected = n_comp == 1
    return Seriation(
        order=order, ranks=ranks_from_order(order), positions=positions, method="spectral",
        laplacian=kind, components=comp, component_info=tuple(infos),
        lambda2=main.lambda2 if connected else 0.0, lambda3=main.lambda3 if connected else math.nan,
        eigengap=main.eigengap if connected else math.nan, residual=max(i.residual for i in infos),
        safe_radius=main.safe_radius if connected else 0.0,
        converged=all(i.converged for i in infos),
        solver=",".join(sorted({i.solver for i in infos if i.solver != "trivial"})) or "trivial",
        tie_groups=tuple(ties), warnings=tuple(found),
        info={"participation_ratio": robust.participation_ratio(positions) if connected
              else math.nan},
    )


# --------------------------------------------------------------------------------------------------
# Anchored (harmonic) seriation
# --------------------------------------------------------------------------------------------------


class _Linear:
    def __init__(self, x: torch.Tensor, residual: float, converged: bool, iterations: int, solver: str,
                 condition: float = math.nan) -> None:
        self.x, self.residual, self.converged = x, residual, converged
        self.iterations, self.solver = iterations, solver
        self.info = {"condition_estimate": condition}  # the fields ``anchored._diagnostics`` reads


def harmonic_torch(g: Graph, is_anchor: torch.Tensor, y: torch.Tensor, *, alpha: float = 0.0,
                   target: float = 0.0, solver: str = "auto", tol: float | None = None,
                   maxiter: int | None = None, seed: int = 0) -> tuple[torch.Tensor, _Linear]:
    """Solve ``(L_uu + αI) x = W_ul y_l + α target`` for the unanchored items on the device.

    ``is_anchor``: bool ``(n,)``; ``y``: ``(n,)``, the anchor values on the anchors (zero elsewhere).
    Every unknown must reach an anchor (or ``α > 0``). As on the numpy route, dense graphs and up to
    ``DENSE_MAX`` unknowns are solved by Cholesky (whatever ``solver``), larger sparse systems by
    preconditioned CG. Returns ``(unknown indices, solution)``.
    """
    unknown = (~is_anchor).nonzero().squeeze(-1)
    u = int(unknown.shape[0])
    if u == 0:
        return unknown, _Linear(y.new_zeros(0), 0.0, True, 0, "none")
    a, b = _anchored_system(g, unknown, is_anchor, y, alpha, target)
    if not g.is_sparse or u <= DENSE_MAX or solver == "dense":
        a = a if a.layout == torch.strided else a.to_dense()
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            raise ValueError("the anchored system L_uu is numerically singular: some items are "
                             "(almost) disconnected from every anchor; check the component report or "
                             "use isolated='ridge'")
        x = torch.cholesky_solve(b[:, None], chol)[:, 0]
        bnorm = float(torch.linalg.vector_norm(b)) or 1.0
        res = float(torch.linalg.vector_norm(a @ x - b)) / bnorm
        return unknown, _Linear(x, res, True, 0, "torch-cholesky", _condition_1norm(a, chol))
    tol = 1e-10 if tol is None else tol
    if float(torch.linalg.vector_norm(b)) == 0.0:  # all anchor values 0: the solution is 0
        return unknown, _Linear(torch.zeros_like(b), 0.0, True, 0, "none")
    if solver == "jacobi-cg":
        inv = 1.0 / ts.diagonal(a)[:, None]
        precond, name = (lambda r: inv * r), "torch-jacobi-cg"
        cap = max(1000, 20 * math.isqrt(u)) if maxiter is None else maxiter
    else:
        hier = ts.Hierarchy(a, torch.ones(u, dtype=torch.float64, device=g.device), singular=False,
                            seed=seed)
        precond, name = hier.vcycle, "torch-amg-cg"
        cap = 500 if maxiter is None else maxiter
    x, rel, its = ts.pcg(lambda v: a @ v, b[:, None], precond, tol, cap)
    x = x[:, 0]
    if not bool(torch.isfinite(x).all()):
        raise ValueError("the anchored solve produced non-finite values: L_uu is numerically "
                         "singular (items almost disconnected from every anchor)")
    return unknown, _Linear(x, rel, rel <= tol, its, name)


def _anchored_system(g: Graph, unknown: torch.Tensor, is_anchor: torch.Tensor, y: torch.Tensor,
                     alpha: float, target: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L_uu + αI, W_ul y_l + α target)``: dense ``(u, u)`` for dense graphs, CSR for sparse ones
    (built from the unknowns' edges only, never densifying the ``n × n`` graph)."""
    u = int(unknown.shape[0])
    d = g.degrees()[unknown] + alpha  # degrees over all columns
    if not g.is_sparse:
        w_u = g.dense[unknown]
        a = -w_u[:, unknown]
        a.diagonal().add_(d)
        return a, w_u @ y + alpha * target
    local = torch.full((g.n,), -1, dtype=torch.long, device=g.device)
    local[unknown] = torch.arange(u, device=g.device)
    from_u = local[g.row] >= 0
    inner = from_u & (local[g.col] >= 0)
    to_anchor = from_u & is_anchor[g.col]
    b = torch.zeros(u, dtype=torch.float64, device=g.device).index_add_(
        0, local[g.row[to_anchor]], g.val[to_anchor] * y[g.col[to_anchor]]) + alpha * target
    sub = Graph(u, g.device, row=local[g.row[inner]], col=local[g.col[inner]], val=g.val[inner])
    return sub.laplacian_csr(d - sub.degrees()), b  # the weight to anchors (and α) on the diagonal


def _condition_1norm(a: torch.Tensor, chol: torch.Tensor) -> float:
    """Hager–Higham estimate of ``||A||_1 ||A^{-1}||_1`` from the Cholesky factor (a few solves)."""
    n = a.shape[0]
    x = torch.full((n, 1), 1.0 / n, dtype=a.dtype, device=a.device)
    est = 0.0
    for _ in range(5):
        y = torch.cholesky_solve(x, chol)
        est = float(y.abs().sum())
        z = torch.cholesky_solve(torch.sign(y) + (y == 0), chol)  # A symmetric: A^{-T} = A^{-1}
        j = int(z.abs().argmax())
        if float(z.abs().max()) <= float((z * x).sum()):
            break
        x = torch.zeros_like(x)
        x[j] = 1.0
    return float(a.abs().sum(0).max()) * est


def _anchored(g: Graph, anchors: NDArray[np.int64], values: NDArray[np.float64], kind: str,
              isolated: str, ridge: float, solver: str, tol: float | None, maxiter: int | None,
              seed: int) -> Seriation:
    from clss.seriation.anchored import _diagnostics, anchor_coverage, unanchored_placement

    notes: tuple[str, ...] = ()
    if np.ptp(values) == 0:
        notes = ("all anchor values are equal: every anchored position equals that value and "
                 "the order among unknowns is arbitrary",)
    n = g.n
    n_comp, comp_t = components(g)
    comp = comp_t.cpu().numpy().astype(np.int64)
    has_anchor = anchor_coverage(comp, n_comp, anchors, isolated)
    positions = np.full(n, math.nan)
    positions[anchors] = values
    diag: dict[str, Any] = {}
    dev = g.device

    def masks(graph: Graph, idx: NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        a_t = torch.as_tensor(idx, device=dev)
        is_a = torch.zeros(graph.n, dtype=torch.bool, device=dev)
        is_a[a_t] = True
        y = torch.zeros(graph.n, dtype=torch.float64, device=dev)
        y[a_t] = torch.as_tensor(values, device=dev)
        return is_a, y

    infos: list[ComponentInfo] = []
    if isolated == "ridge":
        alpha = ridge * float(g.degrees().mean() or 1.0)
        is_a, y = masks(g, anchors)
        unknown, sol = harmonic_torch(g, is_a, y, alpha=alpha, target=float(values.mean()),
                                      solver=solver, tol=tol, maxiter=maxiter, seed=seed)
        positions[unknown.cpu().numpy()] = sol.x.cpu().numpy()
        infos = [ComponentInfo(items=np.flatnonzero(comp == c), anchored=bool(has_anchor[c]),
                               solver=sol.solver, residual=sol.residual, converged=sol.converged)
                 for c in range(n_comp)]
        diag["ridge_alpha"] = alpha
    else:
        keep = np.flatnonzero(has_anchor[comp])
        local = np.full(n, -1, dtype=np.int64)
        local[keep] = np.arange(keep.size)
        sub = g if keep.size == n else g.subgraph(torch.as_tensor(keep, device=dev))
        is_a, y = masks(sub, local[anchors])
        unknown, sol = harmonic_torch(sub, is_a, y, solver=solver, tol=tol, maxiter=maxiter, seed=seed)
        positions[keep[unknown.cpu().numpy()]] = sol.x.cpu().numpy()
        lo, hi = float(values.min()), float(values.max())
        for c in range(n_comp):
            items = np.flatnonzero(comp == c)
            if has_anchor[c]:
                infos.append(ComponentInfo(items=items, anchored=True, solver=sol.solver,
                                           residual=sol.residual, converged=sol.converged))
            elif isolated == "unanchored" and items.size >= 2:
                eig = fiedler_torch(g.subgraph(torch.as_tensor(items, device=dev)), "unnormalized",
                                    seed=seed)
                positions[items], info = unanchored_placement(
                    items, eig.vector, float(eig.values[1]), float(eig.residuals.max()),
                    eig.solver, eig.converged, lo, hi)
                infos.append(info)
            else:
                if isolated == "unanchored":
                    positions[items] = (lo + hi) / 2
                infos.append(ComponentInfo(items=items, solver=isolated, converged=True))
    diag = _diagnostics(diag, sol, positions, anchors, values)
    order = stable_order(positions)
    span = float(np.ptp(values)) or 1.0
    ties = tie_groups(positions, order, 1e-12 * span + 1e-300)
    cond = float(diag.pop("condition_estimate", math.nan))
    return Seriation(
        order=order, ranks=ranks_from_order(order), positions=positions, method="anchored",
        laplacian=kind, components=comp, component_info=tuple(infos),
        residual=max(i.residual for i in infos), converged=all(i.converged for i in infos),
        solver=",".join(sorted({i.solver for i in infos})), tie_groups=tuple(ties),
        conditioning=cond, info=dict(diag), warnings=notes,
    )


def reachable_harmonic(w: torch.Tensor, is_anchor: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Harmonic positions of one dense graph ``w`` ``(n, n)`` on its device, NaN for the items of
    components without an anchor (``isolated="nan"``): the device-side fall-back of
    :func:`clss.seriation.seriate_batch` when a batched Cholesky fails. ``is_anchor``: bool ``(n,)``;
    ``y``: ``(n,)``, the values on the anchors. Returns float64 ``(n,)``."""
    g = Graph(w.shape[0], w.device, dense=w.double())
    n_comp, comp = components(g)
    has = torch.zeros(n_comp, dtype=torch.bool, device=w.device)
    has[comp[is_anchor]] = True
    keep = has[comp].nonzero().squeeze(-1)
    y = y.double()
    pos = torch.full((g.n,), math.nan, dtype=torch.float64, device=w.device)
    pos[is_anchor] = y[is_anchor]
    unknown, sol = harmonic_torch(g.subgraph(keep), is_anchor[keep], y[keep])
    pos[keep[unknown]] = sol.x
    return pos
