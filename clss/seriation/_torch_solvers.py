"""Device-agnostic torch solvers behind the torch route of :func:`clss.seriation.seriate` (private).

Everything here runs on the device of its input tensors in float64:

* :func:`lobpcg`: block LOBPCG (Knyazev 2001) for the smallest pairs of a pencil ``A x = λ M x`` with
  one known null vector deflated; the operators are callables, so dense matrices, torch sparse CSR
  matrices and coarse Galerkin pencils share it. A port of ``sparse_solvers._lobpcg``.
* :class:`Hierarchy`: a smoothed-aggregation multigrid hierarchy built with vectorised torch ops
  (Luby maximal independent set on the matrix graph, every other node joined to its strongest root
  neighbour, one damped-Jacobi prolongation smoothing step, ``A_c = Pᵀ A P`` by sparse products) and
  its symmetric V-cycle (l1-Jacobi smoothing, a dense pseudo-inverse on the coarsest level).
* :func:`multilevel_fiedler`: nested iteration on that hierarchy (coarsest pencil solved densely,
  prolongated and refined level by level by LOBPCG preconditioned with the V-cycle), the torch twin of
  ``sparse_solvers._multilevel``.
* :func:`pcg`: preconditioned CG on the true residual, a port of ``sparse_solvers._pcg``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Op = Callable[[torch.Tensor], torch.Tensor]

# A block column whose Gram eigenvalue falls below this (relative) is dropped as dependent.
_DEPENDENT = 1e-10
_TINY_NORM2 = torch.finfo(torch.float64).tiny / torch.finfo(torch.float64).eps
# The coarsest multigrid level is solved densely; intermediate levels get a few iterations only.
MAX_COARSE = 500
COARSE_ITERS = 8
_MAX_LEVELS = 25


def csr(row: torch.Tensor, col: torch.Tensor, val: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A torch sparse CSR matrix from COO triplets (duplicates summed)."""
    coo = torch.sparse_coo_tensor(torch.stack([row, col]), val, shape, check_invariants=False).coalesce()
    return coo.to_sparse_csr()


def coo_parts(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(row, col, val)`` of a sparse matrix (CSR or COO)."""
    coo = (a.to_sparse_coo() if a.layout != torch.sparse_coo else a).coalesce()
    idx = coo.indices()
    return idx[0], idx[1], coo.values()


def transpose(a: torch.Tensor) -> torch.Tensor:
    row, col, val = coo_parts(a)
    return csr(col, row, val, (a.shape[1], a.shape[0]))


def diagonal(a: torch.Tensor) -> torch.Tensor:
    row, col, val = coo_parts(a)
    on = row == col
    return torch.zeros(a.shape[0], dtype=val.dtype, device=val.device).index_add_(0, row[on], val[on])


# --------------------------------------------------------------------------------------------------
# Block LOBPCG with one deflated null vector
# --------------------------------------------------------------------------------------------------


class _Block:
    """A block ``x`` (n × b) with ``M x`` and, once known, ``A x``; ``mx is x`` when ``M = I``."""

    def __init__(self, x: torch.Tensor, mx: torch.Tensor | None, ax: torch.Tensor | None = None) -> None:
        self.x = x
        self.mx = x if mx is None else mx
        self.ax = ax

    @property
    def width(self) -> int:
        return self.x.shape[1]

    def times(self, t: torch.Tensor) -> _Block:
        return _Block(self.x @ t, None if self.mx is self.x else self.mx @ t,
                      None if self.ax is None else self.ax @ t)

    def minus(self, other: _Block, g: torch.Tensor) -> _Block:
        ax = None if self.ax is None or other.ax is None else self.ax - other.ax @ g
        return _Block(self.x - other.x @ g, None if self.mx is self.x else self.mx - other.mx @ g, ax)


def _orthonormal(blk: _Block) -> _Block:
    """M-orthonormal basis of ``span(blk.x)``, dropping numerically dependent directions (see
    ``sparse_solvers._orthonormal``); may return fewer columns, or none."""
    for attempt in range(2):
        g = blk.x.T @ blk.mx
        g = (g + g.T) / 2
        dg = torch.diagonal(g)
        live = torch.isfinite(dg) & (dg > _TINY_NORM2)
        g_live = g[live][:, live]
        if not bool(live.any()) or not bool(torch.isfinite(g_live).all()):
            return blk.times(g.new_zeros((blk.width, 0)))
        scale = torch.diagonal(g_live).rsqrt()
        ev, evec = torch.linalg.eigh(g_live * torch.outer(scale, scale))
        keep = ev > _DEPENDENT * ev[-1]
        t = g.new_zeros((blk.width, int(keep.sum())))
        t[live] = scale[:, None] * evec[:, keep]
        c = torch.linalg.cholesky(t.T @ g @ t, upper=True)
        blk = blk.times(torch.linalg.solve_triangular(c.T, t.T, upper=False).T)
        if attempt == 0 and bool(ev[keep][0] > 1e-2 * ev[-1]):
            break
    return blk


def lobpcg(apply_a: Op, x: torch.Tensor, *, mass: Op | None, null: torch.Tensor, precond: Op,
           tol: float, maxiter: int, nwanted: int, weights: torch.Tensor | None = None,
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Smallest pairs of ``A x = λ M x`` with ``x ⊥_M null`` by block LOBPCG.

    ``x``: start block ``(n, b)``; ``mass``: ``M`` as a callable (``None`` = identity); ``null``: the
    M-normalised null vector ``(n,)``; ``precond``: symmetric positive preconditioner on ``(n, m)``
    blocks; ``tol``: bound on the residual norms of the ``nwanted`` smallest pairs (scaled row-wise by
    ``weights`` first). Returns ``(values [b], vectors [n, b], residual norms [b], iterations)``.
    """
    mnull = null if mass is None else mass(null[:, None])[:, 0]

    def deflate(v: torch.Tensor) -> torch.Tensor:
        return v - torch.outer(null, mnull @ v)

    def with_mass(v: torch.Tensor) -> _Block:
        return _Block(v, None if mass is None else mass(v))

    def with_a(blk: _Block) -> _Block:
        blk.ax = apply_a(blk.x)
        return blk

    xb = _orthonormal(with_mass(deflate(x)))
    gen = torch.Generator().manual_seed(seed)
    while xb.width < x.shape[1]:  # a rank-deficient start is completed with seeded random directions
        extra = torch.randn((x.shape[0], x.shape[1] - xb.width), generator=gen,
                            dtype=x.dtype).to(x.device)
        extra = deflate(extra)
        extra = extra - xb.x @ (xb.mx.T @ extra)
        xb = _orthonormal(with_mass(torch.cat([xb.x, extra], dim=1)))
    xb = with_a(xb)
    lam, c = torch.linalg.eigh((xb.x.T @ xb.ax + xb.ax.T @ xb.x) / 2)
    xb = xb.times(c)
    nb = xb.width
    pb: _Block | None = None
    it = 0
    while True:
        r = xb.ax - xb.mx * lam
        res = torch.linalg.vector_norm(r if weights is None else weights[:, None] * r, dim=0)
        if bool((res[:nwanted] <= tol).all()) or it >= maxiter:
            break
        it += 1
        w = deflate(precond(r))
        w = w - xb.x @ (xb.mx.T @ w)
        wb = _orthonormal(with_mass(w))
        if wb.width == 0:
            break
        basis = [xb, with_a(wb)]
        if pb is not None:
            pb = _orthonormal(pb.minus(xb, xb.mx.T @ pb.x).minus(wb, wb.mx.T @ pb.x))
            if pb.width:
                basis.append(pb)
        g = torch.cat([torch.cat([u.x.T @ v.ax for v in basis], dim=1) for u in basis], dim=0)
        lam_all, coef = torch.linalg.eigh((g + g.T) / 2)
        lam, coef = lam_all[:nb], coef[:, :nb]
        cuts = [0]
        for blk in basis:
            cuts.append(cuts[-1] + blk.width)
        parts = [blk.times(coef[cuts[i]:cuts[i + 1]]) for i, blk in enumerate(basis)]
        pb = parts[1]
        for extra_part in parts[2:]:
            pb = _Block(pb.x + extra_part.x, None if mass is None else pb.mx + extra_part.mx,
                        pb.ax + extra_part.ax)
        xb = _Block(parts[0].x + pb.x, None if mass is None else parts[0].mx + pb.mx,
                    parts[0].ax + pb.ax)
    return lam, xb.x, res, it


# --------------------------------------------------------------------------------------------------
# Smoothed-aggregation hierarchy
# --------------------------------------------------------------------------------------------------


def _aggregate(a: torch.Tensor, seed: int) -> torch.Tensor:
    """Aggregate label per node (``0..n_c-1``): the roots of a Luby maximal independent set of the
    graph of ``a``'s off-diagonal entries, every other node joined to its strongest root neighbour.

    Vectorised: each Luby round is two scatter reductions over the edges, O(log n) rounds.
    """
    n = a.shape[0]
    row, col, val = coo_parts(a)
    off = row != col
    row, col, strength = row[off], col[off], val[off].abs()
    dev = row.device
    gen = torch.Generator().manual_seed(seed)
    prio = torch.randperm(n, generator=gen).to(dev)
    state = torch.zeros(n, dtype=torch.int8, device=dev)  # 0 undecided, 1 root, -1 covered
    while True:
        undecided = state == 0
        if not bool(undecided.any()):
            break
        p = torch.where(undecided, prio, -1)
        nb = torch.full((n,), -1, dtype=prio.dtype, device=dev).scatter_reduce_(
            0, row, p[col], "amax", include_self=True)
        new_root = undecided & (p > nb)
        state[new_root] = 1
        hit = torch.zeros(n, dtype=torch.long, device=dev).scatter_reduce_(
            0, row, new_root[col].long(), "amax", include_self=True)
        state[(state == 0) & (hit > 0)] = -1
    root = state == 1
    # strongest root neighbour of each covered node (smallest index among equally strong ones)
    to_root = root[col]
    r_row, r_col, r_s = row[to_root], col[to_root], strength[to_root]
    best = torch.full((n,), -math.inf, dtype=r_s.dtype, device=dev).scatter_reduce_(
        0, r_row, r_s, "amax", include_self=True)
    pick = r_s == best[r_row]
    target = torch.full((n,), n, dtype=torch.long, device=dev).scatter_reduce_(
        0, r_row[pick], r_col[pick], "amin", include_self=True)
    target = torch.where(root, torch.arange(n, device=dev), target)
    if bool((target == n).any()):  # no edge at all (a 1-node graph): its own aggregate
        lone = target == n
        target[lone] = torch.arange(n, device=dev)[lone]
        root = root | lone
    agg_of_root = torch.cumsum(root.long(), 0) - 1
    return agg_of_root[target]


class Hierarchy:
    """Smoothed-aggregation hierarchy of a symmetric positive (semi-)definite M-matrix ``a`` (CSR).

    ``null``: its near-null vector (the constant for a Laplacian, shape ``(n,)``); ``singular``:
    ``a`` has that exact null vector (graph Laplacian), so the coarsest level is pseudo-inverted.
    Tentative prolongators interpolate ``null`` (columns orthonormal), one damped-Jacobi step smooths
    them with the l1 bound ``ω = 4/3 / max_i Σ_j |a_ij| / a_ii``.
    """

    def __init__(self, a: torch.Tensor, null: torch.Tensor, *, singular: bool,
                 max_coarse: int = MAX_COARSE, seed: int = 0) -> None:
        self.a: list[torch.Tensor] = [a]
        self.p: list[torch.Tensor] = []
        self.r: list[torch.Tensor] = []
        self.null: list[torch.Tensor] = [null]
        self.l1: list[torch.Tensor] = []
        while self.a[-1].shape[0] > max_coarse and len(self.a) < _MAX_LEVELS:
            cur, b = self.a[-1], self.null[-1]
            n = cur.shape[0]
            agg = _aggregate(cur, seed + len(self.a))
            n_c = int(agg.max()) + 1
            if n_c >= n:  # no coarsening possible
                break
            norms = torch.zeros(n_c, dtype=b.dtype, device=b.device).index_add_(0, agg, b * b).sqrt()
            ar = torch.arange(n, device=b.device)
            p_tent = csr(ar, agg, b / norms[agg], (n, n_c))
            row, col, val = coo_parts(cur)
            diag = diagonal(cur)
            rowabs = torch.zeros_like(diag).index_add_(0, row, val.abs())
            omega = (4.0 / 3.0) / float((rowabs / diag).max())
            scaled = csr(row, col, val * (omega / diag[row]), (n, n))
            p = _sub(p_tent, scaled @ p_tent)
            r = transpose(p)
            coarse = r @ (cur @ p)
            crow, ccol, cval = coo_parts(coarse)
            coarse = csr(crow, ccol, cval, (n_c, n_c))
            self.p.append(p)
            self.r.append(r)
            self.a.append(coarse)
            self.null.append(norms)
        self.l1 = [_l1_diag(m) for m in self.a]
        dense = self.a[-1].to_dense()
        dense = (dense + dense.T) / 2
        shift = float(diagonal(a).max())
        nvec = self.null[-1] / torch.linalg.vector_norm(self.null[-1])
        if singular:
            dense = dense + shift * torch.outer(nvec, nvec)
        ev, evec = torch.linalg.eigh(dense)
        keep = ev > 1e-12 * max(float(ev[-1]), shift)
        self.coarse_pinv = (evec[:, keep] / ev[keep]) @ evec[:, keep].T
        if singular:
            self.coarse_pinv = self.coarse_pinv - torch.outer(nvec, nvec) / shift

    @property
    def levels(self) -> int:
        return len(self.a)

    def sizes(self) -> list[int]:
        return [m.shape[0] for m in self.a]

    def vcycle(self, b: torch.Tensor, level: int = 0) -> torch.Tensor:
        """One symmetric V-cycle for ``A_level x = b`` from ``x = 0``; ``b`` of shape ``(n_l, m)``."""
        if level == self.levels - 1:
            return self.coarse_pinv @ b
        a, inv = self.a[level], self.l1[level][:, None]
        x = inv * b  # one l1-Jacobi sweep from zero
        x = x + inv * (b - a @ x)
        x = x + self.p[level] @ self.vcycle(self.r[level] @ (b - a @ x), level + 1)
        x = x + inv * (b - a @ x)
        return x + inv * (b - a @ x)


def _sub(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``p - q`` for two CSR matrices of one shape."""
    pr, pc, pv = coo_parts(p)
    qr, qc, qv = coo_parts(q)
    return csr(torch.cat([pr, qr]), torch.cat([pc, qc]), torch.cat([pv, -qv]), tuple(p.shape))


def _l1_diag(a: torch.Tensor) -> torch.Tensor:
    """Inverse l1-Jacobi diagonal ``1 / Σ_j |a_ij|``: a convergent smoother for any SPSD matrix."""
    row, _, val = coo_parts(a)
    s = torch.zeros(a.shape[0], dtype=val.dtype, device=val.device).index_add_(0, row, val.abs())
    return torch.where(s > 0, 1.0 / s.clamp_min(torch.finfo(s.dtype).tiny), torch.zeros_like(s))


# --------------------------------------------------------------------------------------------------
# Fiedler pairs
# --------------------------------------------------------------------------------------------------


def _generalized_eigh(a: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Eigenvectors of the dense pencil ``(a, m)``, ascending (``m`` SPD; ``None`` = identity)."""
    a = (a + a.T) / 2
    if m is None:
        return torch.linalg.eigh(a)[1]
    chol = torch.linalg.cholesky((m + m.T) / 2)
    c = torch.linalg.solve_triangular(chol, a, upper=False)
    c = torch.linalg.solve_triangular(chol, c.T, upper=False)
    vec = torch.linalg.eigh((c + c.T) / 2)[1]
    return torch.linalg.solve_triangular(chol.T, vec, upper=True)


def multilevel_fiedler(lap: torch.Tensor, mass: torch.Tensor | None, null: torch.Tensor, nev: int,
                       tol: float, weights: torch.Tensor | None, maxiter: int,
                       seed: int) -> tuple[torch.Tensor, int, dict]:
    """``nev`` pencil vectors above the null one of ``(L, M)`` by nested iteration on the hierarchy.

    ``lap``: CSR ``L = D - W`` of a connected graph; ``mass``: diagonal ``M`` as a vector (``None`` =
    identity); ``null``: the M-normalised constant. Returns ``(vectors (n, nev), finest-level
    iterations, info)``.
    """
    hier = Hierarchy(lap, torch.ones_like(null), singular=True, seed=seed)
    n = lap.shape[0]
    ar = torch.arange(n, device=lap.device)
    m0 = csr(ar, ar, torch.ones_like(null) if mass is None else mass, (n, n))
    masses = [m0]
    for lvl in range(hier.levels - 1):
        masses.append(hier.r[lvl] @ (masses[-1] @ hier.p[lvl]))
    info: dict = {"levels": hier.sizes()}
    fits = [lvl for lvl, size in enumerate(hier.sizes()) if size >= 4 * (nev + 1)]
    start = fits[-1]
    x = _generalized_eigh(hier.a[start].to_dense(), masses[start].to_dense())[:, 1:nev + 1]
    level_iters: list[int] = []
    for lvl in range(start, -1, -1):
        if lvl < start:
            x = hier.p[lvl] @ x
        elif lvl > 0:
            continue
        m_l = masses[lvl]
        null_l = null if lvl == 0 else hier.null[lvl]
        null_l = null_l / torch.sqrt(null_l @ (m_l @ null_l[:, None])[:, 0])

        def precond(r: torch.Tensor, lv: int = lvl) -> torch.Tensor:
            return hier.vcycle(r, lv)

        def apply_a(v: torch.Tensor, lv: int = lvl) -> torch.Tensor:
            return hier.a[lv] @ v

        def apply_m(v: torch.Tensor, mm: torch.Tensor = m_l) -> torch.Tensor:
            return mm @ v

        mass_op = None if (lvl == 0 and mass is None) else apply_m
        _, x, _, its = lobpcg(apply_a, x, mass=mass_op, null=null_l, precond=precond,
                              tol=tol if lvl == 0 else 0.0,
                              maxiter=maxiter if lvl == 0 else COARSE_ITERS, nwanted=nev,
                              weights=weights if lvl == 0 else None, seed=seed)
        level_iters.append(its)
    info.update(level_iterations=level_iters[::-1], start_level=start)
    return x, level_iters[-1], info


# --------------------------------------------------------------------------------------------------
# Preconditioned CG
# --------------------------------------------------------------------------------------------------


def pcg(apply_a: Op, b: torch.Tensor, precond: Op, tol: float,
        maxiter: int) -> tuple[torch.Tensor, float, int]:
    """Preconditioned CG for SPD ``A`` (``b`` of shape ``(u, 1)``); stops on the recomputed relative
    residual ``‖b - A x‖ / ‖b‖ <= tol``. Returns ``(x, relative residual, iterations)``."""
    bnorm = float(torch.linalg.vector_norm(b))
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    rz = (r * z).sum()
    p = z.clone()
    it = 0
    rel = float(torch.linalg.vector_norm(r)) / bnorm
    while rel > tol and it < maxiter:
        it += 1
        ap = apply_a(p)
        curv = (p * ap).sum()
        if not bool(curv > 0):
            raise ValueError("the anchored system L_uu is not positive definite (CG met a direction "
                             "of non-positive curvature): negative weights or a singular block")
        alpha = rz / curv
        x = x + alpha * p
        r = r - alpha * ap
        rel = float(torch.linalg.vector_norm(r)) / bnorm
        if rel <= tol:
            r = b - apply_a(x)  # the recursive residual drifts: accept only the recomputed one
            rel = float(torch.linalg.vector_norm(r)) / bnorm
            if rel <= tol:
                break
        z = precond(r)
        rz_new = (r * z).sum()
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, rel, it
