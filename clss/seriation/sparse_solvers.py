"""Sparse solvers behind :func:`clss.seriation.seriate` for large similarity graphs.

Two problems on a sparse, symmetric, non-negative similarity ``W`` (CSR, zero diagonal):

* :func:`fiedler_sparse`: the ``k`` smallest eigenpairs of ``L = D - W`` or of
  ``L_sym = I - D^{-1/2} W D^{-1/2}``; sorting the second eigenvector (the Fiedler vector) is
  spectral seriation (Atkins, Boman & Hendrickson 1998).
* :func:`harmonic_sparse`: the label-anchored (harmonic) solution of ``L_uu x = W_ul y_l``
  (Zhu, Ghahramani & Lafferty 2003).

k-NN graphs of points on a curve are the hard case for Krylov methods: λ2 shrinks like ``n^-2``
(7.7e-7 at n = 1e6 against ``‖L‖ ≈ 10``), so unpreconditioned Lanczos or LOBPCG stall, sparse LU
fill-in explodes beyond a few 1e5 nodes, and only multigrid-type methods scale. Routes:

* ``"shift-invert"``: Lanczos (ARPACK) on ``Π (L - σI)^{-1} Π`` with one SuperLU factorisation, the
  known null vector projected out by ``Π``; exact to rounding.
* ``"multilevel"``: nested iteration on a smoothed-aggregation hierarchy (below).
* ``"lobpcg-amg"``: SciPy's LOBPCG from a random start, preconditioned by a V-cycle of the same
  hierarchy (the textbook route; an independent cross-check of ``"multilevel"``).

The multilevel method is multilevel spectral bisection (Barnard & Simon 1994) with algebraic
coarsening, run as a "full multigrid" nested iteration:

1. nodes are renumbered by reverse Cuthill–McKee, so that graph neighbours are close in memory
   (a k-NN graph of random samples has no locality; sparse products get 5-10x faster);
2. a smoothed-aggregation hierarchy ``A_{l+1} = P_lᵀ A_l P_l`` (PyAMG's algorithm, built by numba
   kernels on the CSR arrays) with the constant vector as near-null space; mass matrices
   ``M_{l+1} = P_lᵀ M_l P_l`` (``M_0 = I`` for ``L``, ``M_0 = D`` for ``L_sym``, solved as
   ``L y = λ D y`` with ``x = D^{1/2} y``) make every coarse pencil a Rayleigh–Ritz projection of
   the fine one;
3. the coarsest pencil is solved densely; its eigenvectors are prolongated level by level and each
   level is refined by a few block LOBPCG iterations (Knyazev 2001) preconditioned by a V-cycle of
   the hierarchy below it, always M-orthogonal to the null vector;
4. on the finest level LOBPCG runs until the residual test holds; the residuals are then recomputed
   from scratch on the original operator before ``converged`` is reported.

Tolerances are relative: a pair is accepted when ``‖L v - λ v‖₂ <= tol · ‖L‖``, with ``‖L‖₂``
replaced by its lower bound ``max_i L_ii`` (the maximum degree for ``L``, 1 for ``L_sym``), so the
reported relative residual over-estimates the true one by at most 2x. ``info["angle_bound"]``
converts the Fiedler residual into the estimate ``‖r_2‖ / min(λ2 - λ1, λ3 - λ2)`` of
``sin ∠(v_2, exact)`` (Davis–Kahan), the quantity that matters for an ordering. Measured costs and
the ``"auto"`` thresholds are in ``docs/sparse_solvers.md``.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg as sl
import scipy.sparse as sp
import scipy.sparse.linalg as sla
from numpy.typing import NDArray

from clss.seriation._solution import EigenSolution, LinearSolution
from clss.seriation.dense_solvers import smallest_eigenpairs_dense
from clss.seriation.laplacian import component_labels, components_and_rcm, degrees
from clss.seriation.laplacian import laplacian as build_laplacian

__all__ = [
    "DIRECT_MAX",
    "FIEDLER_METHODS",
    "HARMONIC_METHODS",
    "SHIFT_INVERT_MAX",
    "fiedler_sparse",
    "harmonic_sparse",
]

FIEDLER_METHODS = ("auto", "shift-invert", "lobpcg-amg", "multilevel")
HARMONIC_METHODS = ("auto", "direct", "amg-cg", "jacobi-cg")

# "auto" thresholds (nodes / unknowns). On k-NN curve graphs the exact LU routes and the multigrid
# routes cost the same at 2e4 (0.1-0.2 s); above, multigrid is 2-3x faster at 1e5 with 5-10x less
# memory, and LU fails at 1e6 (docs/sparse_solvers.md).
SHIFT_INVERT_MAX = 20_000
DIRECT_MAX = 20_000

Array = NDArray[np.float64]
# A reverse Cuthill–McKee permutation of W and L = D - W renumbered by it.
Locality = tuple[NDArray[np.int64], sp.csr_matrix]
# Below this many nodes every Fiedler method hands over to dense LAPACK (Krylov blocks do not fit).
_DENSE_BELOW = 64
# Renumber for memory locality from this size on; smaller vectors stay in cache anyway.
_REORDER_MIN = 20_000
# The coarsest multigrid level is solved densely.
_MAX_COARSE = 500
# Intermediate levels get a few LOBPCG iterations only: their pencils are Ritz approximations of the
# fine one, so converging them further is wasted work.
_COARSE_ITERS = 8
# Jacobi weight of the prolongation smoother (PyAMG's default for smoothed aggregation).
_PROLONG_OMEGA = 4.0 / 3.0
_EIG_MAXITER = 500
_AMG_CG_MAXITER = 500
# A block column whose Gram eigenvalue falls below this (relative) is dropped as dependent.
_DEPENDENT = 1e-10
_TINY_NORM2 = np.finfo(np.float64).tiny / np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _as_csr(w: Any) -> sp.csr_matrix:
    if not sp.issparse(w):
        raise TypeError(f"W must be a scipy.sparse matrix, got {type(w).__name__}")
    if w.ndim != 2 or w.shape[0] != w.shape[1]:
        raise ValueError(f"W must be square, got shape {w.shape}")
    return sp.csr_matrix(w, dtype=np.float64)


def _check_weights(w: sp.csr_matrix) -> None:
    """Negative similarities make ``L`` indefinite: no Fiedler minimum, no harmonic minimiser."""
    if w.nnz and float(w.data.min()) < 0:
        raise ValueError("W has negative similarities, so L is not positive semi-definite (and "
                         "L_uu not positive definite); clip, shift or re-kernel them first")


def _unnormalized(w: sp.csr_matrix, d: Array) -> sp.csr_matrix:
    """``L = D - W`` in CSR with sorted indices."""
    lap = (sp.diags(d, format="csr") - w).tocsr()
    lap.sort_indices()
    return lap


def _locality_order(a: sp.csr_matrix) -> NDArray[np.intp] | None:
    """Reverse Cuthill–McKee permutation for cache locality; ``None`` below ``_REORDER_MIN`` nodes."""
    if a.shape[0] < _REORDER_MIN:
        return None
    return components_and_rcm(a)[2]


def components_and_locality(w: sp.csr_matrix, d: Array, solver: str
                            ) -> tuple[int, NDArray[np.int64], Locality | None]:
    """Connected components of ``w`` and, when ``w`` is one component that :func:`fiedler_sparse`
    would solve by an iterative route with ``method=solver``, the renumbering it would make, from
    the same search (pass it on as ``locality``).

    ``d``: the degrees of ``w``. Returns ``(count, labels, locality or None)``; labels as
    :func:`clss.seriation.laplacian.component_labels` numbers them.
    """
    n = w.shape[0]
    iterative = solver in ("multilevel", "lobpcg-amg") or (solver == "auto"
                                                           and n > SHIFT_INVERT_MAX)
    if n < max(_REORDER_MIN, _DENSE_BELOW) or not iterative:
        n_comp, comp = component_labels(w)
        return n_comp, comp, None
    n_comp, comp, perm, lap = components_and_rcm(w, d)
    return n_comp, comp, None if lap is None else (perm, lap)


def _permute(a: sp.csr_matrix, perm: NDArray[np.intp]) -> sp.csr_matrix:
    """``a[perm][:, perm]`` for a square CSR matrix in a single gather (int32 indices, sorted)."""
    from clss.seriation._sparse_kernels import permute_csr

    indptr, indices, data = permute_csr(a.indptr, a.indices, a.data, perm)
    out = sp.csr_matrix((data, indices, indptr), shape=a.shape)
    out.has_sorted_indices = True
    return out


def _permuted_laplacian(w: sp.csr_matrix, d: Array, perm: NDArray[np.intp]) -> sp.csr_matrix:
    """``L = D - W`` renumbered by ``perm`` (``L[perm][:, perm]``), built in one pass with int32
    indices: neither ``L`` in the original numbering nor a COO row array is ever formed."""
    from clss.seriation._sparse_kernels import permuted_laplacian

    indptr, indices, data = permuted_laplacian(w.indptr, w.indices, w.data, d, perm)
    out = sp.csr_matrix((data, indices, indptr), shape=w.shape)
    out.has_sorted_indices = True
    return out


def _one_blas_thread() -> Any:
    """Context holding BLAS to one thread.

    The dense work here is tall-skinny (n × 3) products, which OpenBLAS's threading slows down by
    up to 15x when the other core is busy (measured), and the sparse work is serial anyway.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _sign_fix(v: Array) -> Array:
    """Make the largest-magnitude entry of every column positive, so outputs are deterministic."""
    idx = np.argmax(np.abs(v), axis=0)
    signs = np.sign(v[idx, np.arange(v.shape[1])])
    signs[signs == 0] = 1.0
    return v * signs


def _mass_dot(m: sp.csr_matrix | Array | None, x: Array) -> Array:
    """``M x`` for ``M`` the identity (``None``), a diagonal (1-D array) or a sparse matrix."""
    if m is None:
        return x
    if isinstance(m, np.ndarray):
        return m[:, None] * x if x.ndim == 2 else m * x
    return np.asarray(m @ x)


# --------------------------------------------------------------------------------------------------
# Smoothed-aggregation hierarchy and V-cycle
# --------------------------------------------------------------------------------------------------


class _Hierarchy:
    """Smoothed-aggregation multigrid hierarchy of a symmetric positive (semi-)definite M-matrix.

    Built here rather than by PyAMG (same algorithm, same hierarchy): standard aggregation on the
    full strength graph, one Jacobi step of prolongation smoothing scaled by the Gershgorin
    ("local") bound ``Σ_j |a_ij|`` (no spectral-radius estimate), and the constant as near-null
    space without candidate improvement, since it is an exact null vector of a graph Laplacian.
    PyAMG's setup converts every level to 1 × 1-block BSR and copies it for the strength matrix and
    the smoother's weights (3.7 s and ~3 matrix copies at n = 1e6); the numba kernels read the CSR
    arrays in place, and only ``P``, ``Pᵀ`` and the coarse matrices are stored.

    The V-cycle does one symmetric Gauss–Seidel sweep (forward then backward) before and after the
    coarse correction, so it is a symmetric operator as CG and LOBPCG require (at n = 1e6 it needs
    12 LOBPCG iterations where one forward and one backward sweep need 18-20, 30 % less time
    overall). The coarsest level is solved densely; for a singular Laplacian (``singular=True``)
    with the pseudo-inverse ``A⁺ = (A + s n nᵀ)^{-1} - n nᵀ / s`` built from the coarse null vector
    ``n``, which stays well defined when the coarsest level is tiny (even 1 × 1 and numerically zero).
    """

    def __init__(self, a: sp.csr_matrix, *, singular: bool, max_coarse: int = _MAX_COARSE,
                 max_levels: int = 25) -> None:
        from clss.seriation._sparse_kernels import smoothed_prolongator, standard_aggregation

        a.sort_indices()
        self.a: list[sp.csr_matrix] = [a]
        self.p: list[sp.csr_matrix] = []
        self.r: list[sp.csr_matrix] = []
        self.null: list[Array] = [np.ones(a.shape[0])]
        while self.a[-1].shape[0] > max_coarse and len(self.a) < max_levels:
            fine = self.a[-1]
            agg, nagg = standard_aggregation(fine.indptr, fine.indices)
            if nagg == 0 or nagg >= fine.shape[0] or (agg < 0).any():
                break  # no coarsening possible (or isolated nodes, absent in a connected graph)
            ptr, idx, val, b_c = smoothed_prolongator(fine.indptr, fine.indices, fine.data, agg,
                                                      nagg, self.null[-1], _PROLONG_OMEGA)
            p = sp.csr_matrix((val, idx, ptr), shape=(fine.shape[0], nagg))
            r = p.T.tocsr()
            coarse = (r @ (fine @ p)).tocsr()
            coarse.sort_indices()
            self.p.append(p)
            self.r.append(r)
            self.a.append(coarse)
            self.null.append(b_c)
        coarse = self.a[-1].toarray()
        # Shift in fine-level units: SA prolongators have orthonormal tentative columns, so the
        # coarse spectrum lies inside the fine one.
        shift = float(a.diagonal().max())
        nvec = self.null[-1] / np.linalg.norm(self.null[-1])
        if singular:
            coarse = coarse + shift * np.outer(nvec, nvec)
        ev, evec = np.linalg.eigh(coarse)
        keep = ev > 1e-12 * max(float(ev[-1]), shift)
        self.coarse_pinv: Array = (evec[:, keep] / ev[keep]) @ evec[:, keep].T
        if singular:
            self.coarse_pinv -= np.outer(nvec, nvec) / shift

    @property
    def levels(self) -> int:
        return len(self.a)

    def sizes(self) -> list[int]:
        return [m.shape[0] for m in self.a]

    def vcycle(self, b: Array, level: int = 0) -> Array:
        """One V-cycle for ``A_level x = b`` from ``x = 0``; ``b`` of shape ``(n_l,)`` or ``(n_l, m)``.

        All columns of a block go through each smoothing sweep and sparse product together.
        """
        if b.ndim == 1:
            return self._vcycle(np.ascontiguousarray(b[:, None]), level)[:, 0]
        return self._vcycle(np.ascontiguousarray(b), level)

    def _vcycle(self, b: Array, level: int) -> Array:
        from clss.seriation._sparse_kernels import symmetric_gauss_seidel

        if level == self.levels - 1:
            return self.coarse_pinv @ b
        a = self.a[level]
        x = np.zeros_like(b)
        symmetric_gauss_seidel(a.indptr, a.indices, a.data, x, b)
        x += self.p[level] @ self._vcycle(np.ascontiguousarray(self.r[level] @ (b - a @ x)),
                                          level + 1)
        symmetric_gauss_seidel(a.indptr, a.indices, a.data, x, b)
        return x


# --------------------------------------------------------------------------------------------------
# Block LOBPCG for a pencil (A, M) with one known null vector
# --------------------------------------------------------------------------------------------------


class _Block:
    """A block ``x`` (n × b) with ``M x`` and, once known, ``A x``; ``mx is x`` when ``M = I``."""

    def __init__(self, x: Array, mx: Array | None, ax: Array | None = None) -> None:
        self.x = x
        self.mx = x if mx is None else mx
        self.ax = ax

    @property
    def width(self) -> int:
        return self.x.shape[1]

    def times(self, t: Array) -> _Block:
        """The block ``x t`` (one pass over each stored array)."""
        return _Block(self.x @ t, None if self.mx is self.x else self.mx @ t,
                      None if self.ax is None else self.ax @ t)

    def minus(self, other: _Block, g: Array) -> _Block:
        """The block ``x - other.x g`` (products carried along)."""
        ax = None if self.ax is None or other.ax is None else self.ax - other.ax @ g
        return _Block(self.x - other.x @ g,
                      None if self.mx is self.x else self.mx - other.mx @ g, ax)


def _orthonormal(blk: _Block) -> _Block:
    """M-orthonormal basis of ``span(blk.x)``, dropping numerically dependent directions.

    The Gram matrix of the column-normalised block is eigen-decomposed and directions below
    ``_DEPENDENT`` are discarded; the kept ones are whitened by a Cholesky factor of their Gram
    matrix. When that Gram matrix was ill-conditioned (κ > 100) a second Cholesky pass restores
    orthonormality to rounding ("twice is enough"). May return fewer columns, or none.
    """
    for attempt in range(2):
        g = blk.x.T @ blk.mx
        g = (g + g.T) / 2
        # Columns of (numerically) zero norm carry no direction; their scale would overflow.
        live = np.isfinite(np.diag(g)) & (np.diag(g) > _TINY_NORM2)
        if not live.any() or not np.all(np.isfinite(g[np.ix_(live, live)])):
            return blk.times(np.zeros((blk.width, 0)))
        g_live = g[np.ix_(live, live)]
        scale = 1.0 / np.sqrt(np.diag(g_live))
        ev, evec = np.linalg.eigh(g_live * np.outer(scale, scale))
        keep = ev > _DEPENDENT * ev[-1]
        t = np.zeros((blk.width, int(keep.sum())))
        t[live] = scale[:, None] * evec[:, keep]
        c = sl.cholesky(t.T @ g @ t, lower=False)
        blk = blk.times(sl.solve_triangular(c, t.T, trans="T", lower=False).T)
        if attempt == 0 and ev[keep][0] > 1e-2 * ev[-1]:
            break
    return blk


def _lobpcg(a: sp.csr_matrix, x: Array, *, mass: Any, null: Array,
            precond: Callable[[Array], Array], tol: float, maxiter: int, nwanted: int,
            weights: Array | None = None) -> tuple[Array, Array, Array, int]:
    """Block LOBPCG (Knyazev 2001) for the smallest pairs of ``A x = λ M x`` with ``x ⊥_M null``.

    ``x``: initial block, shape ``(n, b)``; ``mass``: ``M`` (``None`` = identity, 1-D = diagonal,
    or sparse); ``null``: M-normalised null vector of ``A``, shape ``(n,)``; ``precond``: symmetric
    positive preconditioner applied to an ``(n, m)`` block; ``tol``: bound on the residual norms of
    the ``nwanted`` smallest pairs (each residual scaled by ``weights`` first); extra columns are
    guard vectors that speed up the last wanted pair. The Rayleigh–Ritz basis ``[X, W, P]`` is kept
    M-orthonormal by block Gram–Schmidt, so the projected problem is a standard ``eigh``; a block
    that becomes numerically dependent loses those directions (a partial restart).

    Returns ``(values [b], vectors [n, b] (M-orthonormal), residual norms [b], iterations)``.
    """
    mnull = _mass_dot(mass, null)

    def deflate(v: Array) -> Array:
        return v - np.outer(null, mnull @ v)

    def with_mass(v: Array) -> _Block:
        return _Block(v, None if mass is None else _mass_dot(mass, v))

    def with_a(blk: _Block) -> _Block:
        blk.ax = np.asarray(a @ blk.x)
        return blk

    xb = _orthonormal(with_mass(deflate(x)))
    rng = np.random.default_rng(0)
    while xb.width < x.shape[1]:
        # A rank-deficient start is completed with seeded random directions.
        extra = deflate(rng.standard_normal((x.shape[0], x.shape[1] - xb.width)))
        extra -= xb.x @ (xb.mx.T @ extra)
        xb = _orthonormal(with_mass(np.hstack([xb.x, extra])))
    xb = with_a(xb)
    lam, c = np.linalg.eigh((xb.x.T @ xb.ax + xb.ax.T @ xb.x) / 2)
    xb = xb.times(c)
    nb = xb.width
    pb: _Block | None = None
    it = 0
    while True:
        assert xb.ax is not None
        r = xb.ax - xb.mx * lam
        res = np.linalg.norm(r if weights is None else weights[:, None] * r, axis=0)
        if np.all(res[:nwanted] <= tol) or it >= maxiter:
            break
        it += 1
        w = deflate(np.asarray(precond(r)))
        w = w - xb.x @ (xb.mx.T @ w)
        wb = _orthonormal(with_mass(w))
        if wb.width == 0:
            break
        basis = [xb, with_a(wb)]
        if pb is not None:
            pb = _orthonormal(pb.minus(xb, xb.mx.T @ pb.x).minus(wb, wb.mx.T @ pb.x))
            if pb.width:
                basis.append(pb)
        g = np.block([[u.x.T @ v.ax for v in basis] for u in basis])
        lam_all, coef = np.linalg.eigh((g + g.T) / 2)
        lam, coef = lam_all[:nb], coef[:, :nb]
        cuts = np.cumsum([0] + [blk.width for blk in basis])
        parts = [blk.times(coef[cuts[i] : cuts[i + 1]]) for i, blk in enumerate(basis)]
        pb = parts[1]
        for extra in parts[2:]:
            pb = _Block(pb.x + extra.x, None if mass is None else pb.mx + extra.mx,
                        pb.ax + extra.ax)
        xb = _Block(parts[0].x + pb.x, None if mass is None else parts[0].mx + pb.mx,
                    parts[0].ax + pb.ax)
    return lam, xb.x, res, it


# --------------------------------------------------------------------------------------------------
# Fiedler routes
# --------------------------------------------------------------------------------------------------


def _null_vector(d: Array, kind: str) -> Array:
    v = np.ones_like(d) if kind == "unnormalized" else np.sqrt(d)
    return v / np.linalg.norm(v)


def _apply_operator(lap: sp.csr_matrix, d: Array, kind: str, v: Array) -> Array:
    """``L v`` or ``L_sym v = D^{-1/2} L D^{-1/2} v`` without forming ``L_sym``."""
    if kind == "unnormalized":
        return np.asarray(lap @ v)
    s = 1.0 / np.sqrt(d)
    return s[:, None] * np.asarray(lap @ (s[:, None] * v))


def _shift_invert(w: sp.csr_matrix, d: Array, kind: str, nev: int, tol: float, scale: float,
                  maxiter: int, seed: int, info: dict[str, Any]) -> tuple[Array, int]:
    """``nev`` eigenvectors above the null one: Lanczos on ``Π (L - σI)^{-1} Π``, one SuperLU."""
    n = w.shape[0]
    op_mat = sp.csc_matrix(build_laplacian(w, kind))
    null = _null_vector(d, kind)
    # σ < 0 keeps L - σI positive definite; it only has to be small against λ2, and the near-null
    # direction it amplifies is projected out by Π.
    sigma = -1e-10 * scale
    t0 = time.perf_counter()
    try:
        lu = sla.splu(op_mat - sigma * sp.identity(n, format="csc"), permc_spec="MMD_AT_PLUS_A",
                      diag_pivot_thresh=0.0, options={"SymmetricMode": True})
    except RuntimeError as exc:
        raise ValueError(f"shift-invert factorisation failed ({exc}); is the graph connected?"
                         ) from None
    info.update(factor_s=time.perf_counter() - t0, lu_nnz=int(lu.L.nnz + lu.U.nnz), sigma=sigma)
    solves = [0]

    def op(b: Array) -> Array:
        solves[0] += 1
        x = lu.solve(b - null * (null @ b))
        return x - null * (null @ x)

    v0 = np.random.default_rng(seed).standard_normal(n)
    v0 -= null * (null @ v0)
    # ARPACK stops at ‖B x - μ x‖ <= tol_a |μ| for B = (L - σ)^{-1}, hence
    # ‖L x - λ x‖ <= tol_a ‖L - σ‖ <= 2 tol_a max_i L_ii (Gershgorin): tol_a = tol / 4.
    try:
        _, vecs = sla.eigsh(sla.LinearOperator((n, n), matvec=op, dtype=np.float64), k=nev,
                            which="LA", tol=tol / 4, maxiter=maxiter, v0=v0,
                            ncv=min(n - 1, max(2 * nev + 1, 20)))
    except sla.ArpackNoConvergence as exc:
        # Unconverged columns are completed with seeded random vectors; the Rayleigh–Ritz step
        # below turns them into honest (unconverged) approximations.
        extra = np.random.default_rng(seed + 1).standard_normal((n, nev - exc.eigenvectors.shape[1]))
        vecs = np.hstack([exc.eigenvectors, extra])
    info["solves"] = solves[0]
    vecs = vecs - np.outer(null, null @ vecs)
    q, _ = np.linalg.qr(vecs)
    h = q.T @ np.asarray(op_mat @ q)
    _, c = np.linalg.eigh((h + h.T) / 2)
    return q @ c, solves[0]


def _lobpcg_amg(a: sp.csr_matrix, mass: Array | None, null: Array, nev: int, tol: float,
                weights: Array | None, maxiter: int, seed: int, info: dict[str, Any]
                ) -> tuple[Array, int]:
    """SciPy LOBPCG from a seeded random block, preconditioned by an SA V-cycle of ``L``."""
    n = a.shape[0]
    t0 = time.perf_counter()
    hier = _Hierarchy(a, singular=True)
    info.update(setup_s=time.perf_counter() - t0, levels=hier.sizes())
    calls = [0]

    def vcycle(r: Array) -> Array:
        # SciPy's LOBPCG preconditions the active residual block once per iteration, which makes
        # this the iteration count (its residual history is truncated at the best iterate).
        calls[0] += 1
        return hier.vcycle(r)

    prec = sla.LinearOperator((n, n), matvec=vcycle, matmat=vcycle, dtype=np.float64)
    x0 = np.random.default_rng(seed).standard_normal((n, nev))
    # LOBPCG tests the unweighted residual; dividing by max(weights) makes its test imply ours.
    wmax = 1.0 if weights is None else float(weights.max())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lam, x = sla.lobpcg(a, x0, B=None if mass is None else sp.diags(mass, format="csr"),
                            M=prec, Y=null[:, None], tol=tol / wmax,
                            maxiter=maxiter - 1, largest=False)  # SciPy runs maxiter + 1 updates
    info["solve_s"] = time.perf_counter() - t0 - info["setup_s"]
    return x[:, np.argsort(lam)], calls[0]


def _multilevel(a: sp.csr_matrix, mass: Array | None, null: Array, nev: int, tol: float,
                weights: Array | None, maxiter: int, seed: int, info: dict[str, Any]
                ) -> tuple[Array, int]:
    """Nested-iteration multilevel LOBPCG (module docstring); returns fine-level pencil vectors."""
    t0 = time.perf_counter()
    hier = _Hierarchy(a, singular=True)
    masses: list[Any] = [mass]
    m_cur: sp.csr_matrix | None = None if mass is None else sp.diags(mass, format="csr")
    for lvl in range(hier.levels - 1):
        # M_0 = I: M_1 = R P directly (R I would copy R, 0.4 GB at n = 1e7)
        left = hier.r[lvl] if m_cur is None else hier.r[lvl] @ m_cur
        m_cur = (left @ hier.p[lvl]).tocsr()
        masses.append(m_cur)
    info.update(setup_s=time.perf_counter() - t0, levels=hier.sizes())
    if hier.levels == 1:  # the graph is its own coarsest level (at most _MAX_COARSE nodes)
        m_dense = np.diag(np.ones(a.shape[0]) if mass is None else mass)
        x = sl.eigh(a.toarray(), m_dense, subset_by_index=[1, nev])[1]
        info.update(level_iterations=[0], solve_s=time.perf_counter() - t0 - info["setup_s"])
        return x, 0
    # Start on the coarsest level that still resolves nev vectors comfortably. No guard vectors:
    # on chain-like graphs λ3/λ4 ≈ 9/16 is small enough, and a guard column costs a V-cycle per
    # iteration (measured 40 % slower at n = 1e6 for the same iteration count).
    fits = [lvl for lvl, size in enumerate(hier.sizes()) if size >= 4 * (nev + 1)]
    start = fits[-1]
    if start == 0:  # no usable coarse level: fall back to a seeded random start
        x = np.random.default_rng(seed).standard_normal((a.shape[0], nev))
    else:
        x = sl.eigh(hier.a[start].toarray(), masses[start].toarray(),
                    subset_by_index=[1, nev])[1]
    level_iters: list[int] = []
    for lvl in range(start, -1, -1):
        if lvl < start:
            x = np.asarray(hier.p[lvl] @ x)
        elif lvl > 0:
            continue
        null_l = hier.null[lvl] if lvl else null
        null_l = null_l / math.sqrt(float(null_l @ _mass_dot(masses[lvl], null_l)))

        def precond(r: Array, lv: int = lvl) -> Array:
            return hier.vcycle(r, lv)

        budget = maxiter if lvl == 0 else _COARSE_ITERS
        its_total = 0
        while True:
            # On the finest level every call starts from freshly computed A X, so the loop ends
            # only when a residual test on explicit products passes (its == 0) or on the budget.
            _, x, _, its = _lobpcg(hier.a[lvl], x, mass=masses[lvl], null=null_l,
                                     precond=precond, tol=tol if lvl == 0 else 0.0,
                                     maxiter=budget - its_total, nwanted=nev,
                                     weights=weights if lvl == 0 else None)
            its_total += its
            if lvl > 0 or its == 0 or its_total >= budget:
                break
        level_iters.append(its_total)
    info.update(level_iterations=level_iters[::-1], start_level=start,
                solve_s=time.perf_counter() - t0 - info["setup_s"])
    return x, level_iters[-1]


def _iterative_route(route: str, w: sp.csr_matrix, d: Array, kind: str, null: Array, nev: int,
                     tol: float, maxiter: int, seed: int, info: dict[str, Any],
                     locality: Locality | None) -> tuple[Array, Array, Array, int]:
    """Run ``"multilevel"`` or ``"lobpcg-amg"`` on the locality-ordered pencil.

    Returns ``_finalize``'s ``(values, vectors, residuals)`` in the original numbering and the
    iteration count. The residuals are recomputed on ``L`` itself, stored in the locality order
    (a renumbering of the same entries), so only one copy of ``L`` is ever held. ``locality``:
    the caller's renumbering and renumbered ``L`` (:func:`components_and_locality`), or ``None``
    to build them here.
    """
    n = w.shape[0]
    if locality is None:
        perm = _locality_order(w)
        lap_p = _unnormalized(w, d) if perm is None else _permuted_laplacian(w, d, perm)
    else:
        perm, lap_p = locality
    dp = d if perm is None else d[perm]
    mass = None if kind == "unnormalized" else dp
    # The pencil residual L y - λ D y maps to the L_sym residual through D^{-1/2} (x = D^{1/2} y).
    weights = None if kind == "unnormalized" else 1.0 / np.sqrt(dp)
    pnull = np.full(n, 1.0 / math.sqrt(n if mass is None else float(mass.sum())))
    if route == "multilevel":
        y, iterations = _multilevel(lap_p, mass, pnull, nev, tol, weights, maxiter, seed, info)
    else:
        y, iterations = _lobpcg_amg(lap_p, mass, pnull, nev, tol, weights, maxiter, seed, info)
    if mass is not None:
        y = np.sqrt(mass)[:, None] * y
    values, vec_p, residuals = _finalize(lap_p, dp, kind, null if perm is None else null[perm], y)
    del lap_p
    if perm is None:
        vectors = vec_p
    else:
        vectors = np.empty_like(vec_p)
        vectors[perm] = vec_p
    info["reordered"] = perm is not None
    return values, _sign_fix(vectors), residuals, iterations


def _finalize(lap: sp.csr_matrix, d: Array, kind: str, null: Array, vec: Array
              ) -> tuple[Array, Array, Array]:
    """Prepend the null vector, then recompute Rayleigh quotients and residuals on the true operator.

    Returns ``(values, vectors, residuals)``; the caller fixes the signs (``_sign_fix``).
    """
    vectors = np.column_stack([null, vec])
    vectors /= np.linalg.norm(vectors, axis=0)
    lv = _apply_operator(lap, d, kind, vectors)
    values = np.einsum("ij,ij->j", vectors, lv)
    order = np.argsort(values, kind="stable")
    values, vectors, lv = values[order], vectors[:, order], lv[:, order]
    residuals = np.linalg.norm(lv - vectors * values, axis=0)
    return values, vectors, residuals


def fiedler_sparse(W: sp.csr_matrix, *, k: int = 3, laplacian: str = "unnormalized",
                   method: str = "auto", tol: float = 1e-8, maxiter: int | None = None,
                   seed: int = 0, locality: Locality | None = None) -> EigenSolution:
    """The ``k`` smallest eigenpairs of the Laplacian of a large sparse connected similarity graph.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix, shape (n, n)
        Symmetric non-negative similarities, zero diagonal, float64, one connected component (the
        caller splits components first: a disconnected graph has a multiple zero eigenvalue).
    k : int, default 3
        Number of eigenpairs, ``1 <= k <= n``; ``k = 3`` gives λ1 ≈ 0, the Fiedler value λ2 and λ3.
    laplacian : {"unnormalized", "symmetric"}, default "unnormalized"
        ``L = D - W`` or ``L_sym = I - D^{-1/2} W D^{-1/2}``.
    method : {"auto", "shift-invert", "lobpcg-amg", "multilevel"}, default "auto"
        ``"auto"``: shift-invert up to ``SHIFT_INVERT_MAX`` nodes, multilevel above. Graphs with
        fewer than 64 nodes, or with ``n < 5 k``, are solved by dense LAPACK whatever the method
        (``solver="dense-evr"``).
    tol : float, default 1e-8
        Relative residual tolerance: every pair must satisfy ``‖L v - λ v‖₂ <= tol · max_i L_ii``
        (``max_i L_ii`` is a lower bound of ``‖L‖₂``).
    maxiter : int, optional
        Iteration cap: ARPACK restarts (shift-invert) or LOBPCG iterations on the finest level
        (lobpcg-amg, multilevel). Default 500.
    seed : int, default 0
        Seeds every random start; the result is deterministic given ``seed``.
    locality : tuple (perm, L), optional
        The iterative routes renumber the nodes by reverse Cuthill–McKee from 20 000 nodes on, for
        memory locality, and solve with ``L = D - W`` in that numbering. A caller that already
        has both (:func:`components_and_locality` builds them with the components) passes them
        here; they are used as given.

    Returns
    -------
    EigenSolution
        ``values`` (k,) ascending Rayleigh quotients; ``vectors`` (n, k) unit-norm columns, each with
        its largest-magnitude entry positive, column 0 the exact null vector (``1/√n``, or
        ``D^{1/2} 1`` normalised); ``residuals`` (k,) ``‖L v - λ v‖₂`` recomputed on the original
        operator; ``converged`` is true only if every pair meets ``tol``; ``iterations`` counts
        finest-level iterations (ARPACK solves for shift-invert). ``info`` holds ``scale`` (the norm
        bound), ``rel_residuals``, ``angle_bound`` (``k >= 3``), timings and route details.

    References
    ----------
    Atkins, Boman & Hendrickson, "A spectral algorithm for seriation and the consecutive ones
    problem", SIAM J. Comput. 28(1), 1998. Knyazev, "Toward the optimal preconditioned eigensolver:
    locally optimal block preconditioned conjugate gradient method", SIAM J. Sci. Comput. 23(2),
    2001. Barnard & Simon, "Fast multilevel implementation of recursive spectral bisection for
    partitioning unstructured problems", Concurrency: Pract. Exper. 6(2), 1994.
    """
    w = _as_csr(W)
    n = w.shape[0]
    kind = laplacian
    if kind not in ("unnormalized", "symmetric"):
        raise ValueError(f"laplacian must be 'unnormalized' or 'symmetric', got {kind!r}")
    if method not in FIEDLER_METHODS:
        raise ValueError(f"method must be one of {FIEDLER_METHODS}, got {method!r}")
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n] = [1, {n}], got {k}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if maxiter is not None and maxiter < 1:
        raise ValueError(f"maxiter must be >= 1, got {maxiter}")
    _check_weights(w)
    d = degrees(w)
    if (d <= 0).any():
        raise ValueError("every node needs a positive degree (the graph must be connected)")
    t_start = time.perf_counter()
    scale = float(d.max()) if kind == "unnormalized" else 1.0
    cap = _EIG_MAXITER if maxiter is None else maxiter
    info: dict[str, Any] = {"scale": scale, "tol": tol, "requested_method": method}
    route = method
    if route == "auto":
        route = "shift-invert" if n <= SHIFT_INVERT_MAX else "multilevel"
    if n < _DENSE_BELOW or 5 * k > n:
        route = "dense-evr"
    null = _null_vector(d, kind)
    nev = k - 1
    iterations = 0
    with _one_blas_thread():
        if nev > 0 and route in ("multilevel", "lobpcg-amg"):
            values, vectors, residuals, iterations = _iterative_route(
                route, w, d, kind, null, nev, tol * scale, cap, seed, info, locality)
        else:
            if nev == 0:
                vec = np.zeros((n, 0))
            elif route == "dense-evr":
                vec = smallest_eigenpairs_dense(np.asarray(build_laplacian(w.toarray(), kind)),
                                                k, solver="evr").vectors[:, 1:]
            else:
                vec, iterations = _shift_invert(w, d, kind, nev, tol, scale, cap, seed, info)
            values, vectors, residuals = _finalize(_unnormalized(w, d), d, kind, null, vec)
            vectors = _sign_fix(vectors)
    rel = residuals / scale
    gap = min(values[1] - values[0], values[2] - values[1]) if k >= 3 else 0.0
    info.update(rel_residuals=rel, time_s=time.perf_counter() - t_start,
                angle_bound=float(residuals[1] / gap) if gap > 0 else math.nan)
    return EigenSolution(values=values, vectors=vectors, residuals=residuals,
                         converged=bool(np.all(rel <= tol)), iterations=int(iterations),
                         solver=route, info=info)


# --------------------------------------------------------------------------------------------------
# Anchored (harmonic) solve
# --------------------------------------------------------------------------------------------------


def _anchored_system(w: sp.csr_matrix, d: Array, anchor_value: Array, is_anchor: NDArray[np.bool_]
                     ) -> tuple[sp.csr_matrix, Array, Array]:
    """``(L_uu, b = W_ul y_l, contact = W_ul 1)`` in one pass over the unknowns' rows."""
    from clss.seriation._sparse_kernels import anchored_laplacian

    indptr, indices, data, b, contact = anchored_laplacian(w.indptr, w.indices, w.data, d,
                                                           is_anchor, anchor_value)
    u = b.shape[0]
    a = sp.csr_matrix((data, indices, indptr), shape=(u, u))
    a.sort_indices()
    return a, b, contact


def _check_anchor_contact(a: sp.csr_matrix, contact: Array) -> float:
    """Raise if a component of the unanchored subgraph has no edge to an anchor (``L_uu`` singular).

    ``a`` is ``L_uu`` (its graph is that of ``W_uu``). Returns the weakest relative contact,
    ``min over components of (weight to anchors) / (total weight)``: a small value means an
    ill-conditioned ``L_uu`` (condition ∝ 1 / contact).
    """
    n_comp, label = component_labels(a)
    touch = np.bincount(label, weights=contact, minlength=n_comp)
    if (touch <= 0).any():
        bad = np.flatnonzero(touch <= 0)
        sizes = np.bincount(label, minlength=n_comp)[bad]
        raise ValueError(f"{bad.size} connected component(s) of the unanchored items (sizes "
                         f"{sizes[:5].tolist()}{', ...' if bad.size > 5 else ''}) have no edge to "
                         f"an anchor: L_uu is singular and their values are undetermined")
    # total weight of a component = Σ L_ii over it (degrees over all columns)
    total = np.bincount(label, weights=a.diagonal(), minlength=n_comp)
    return float(np.min(touch / np.maximum(total, np.finfo(np.float64).tiny)))


def _jacobi(a: sp.csr_matrix) -> Callable[[Array], Array]:
    """The diagonal (Jacobi) preconditioner ``r -> D_a^{-1} r``."""
    inv_diag = 1.0 / a.diagonal()

    def apply(r: Array) -> Array:
        return inv_diag * r

    return apply


def _pcg(a: sp.csr_matrix, b: Array, x0: Array | None, precond: Callable[[Array], Array],
         tol: float, maxiter: int) -> tuple[Array, float, int]:
    """Preconditioned CG for SPD ``a``; stops on the true relative residual ``‖b - a x‖ / ‖b‖ <= tol``.

    Raises ``ValueError`` if a search direction has non-positive curvature (``a`` or the
    preconditioner is not positive definite). Returns ``(x, relative residual, iterations)``.
    """
    bnorm = float(np.linalg.norm(b))
    x = np.zeros_like(b) if x0 is None else np.array(x0, dtype=np.float64)
    r = b - a @ x
    z = precond(r)
    rz = float(r @ z)
    p = z.copy()
    it = 0
    rel = float(np.linalg.norm(r)) / bnorm
    while rel > tol and it < maxiter:
        it += 1
        ap = a @ p
        curv = float(p @ ap)
        if not curv > 0:
            raise ValueError("the anchored system L_uu is not positive definite (CG met a direction "
                             "of non-positive curvature): negative weights or a singular block")
        alpha = rz / curv
        x += alpha * p
        r -= alpha * ap
        rel = float(np.linalg.norm(r)) / bnorm
        if rel <= tol:
            # The recursive residual drifts from b - a x; accept only the recomputed one.
            r = b - a @ x
            rel = float(np.linalg.norm(r)) / bnorm
            if rel <= tol:
                break
        z = precond(r)
        rz_new = float(r @ z)
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, rel, it


def harmonic_sparse(W: sp.csr_matrix, anchors: NDArray[np.int64], values: Array, *,
                    method: str = "auto", tol: float = 1e-10, maxiter: int | None = None,
                    x0: Array | None = None) -> LinearSolution:
    """Label-anchored (harmonic) positions of the unanchored items of a sparse similarity graph.

    Minimising ``rᵀ L r`` with ``r`` fixed to ``values`` on ``anchors`` gives ``L_uu x = W_ul y_l``,
    with ``L = D - W`` and degrees over all columns: the harmonic function of Zhu, Ghahramani &
    Lafferty (2003). ``L_uu`` is a symmetric M-matrix, positive definite exactly when every
    connected component of the unanchored subgraph has an edge to an anchor; that is checked
    (O(nnz)) and a ``ValueError`` names the offending components otherwise.

    Parameters
    ----------
    W : scipy.sparse.csr_matrix, shape (n, n)
        Symmetric non-negative similarities, zero diagonal, float64.
    anchors : ndarray of int, shape (m,)
        Distinct indices of the anchored items.
    values : ndarray of float, shape (m,)
        Their values ``y_l``.
    method : {"auto", "direct", "amg-cg", "jacobi-cg"}, default "auto"
        ``"direct"``: SuperLU (minimum-degree ordering on ``A + Aᵀ``, diagonal pivots); ``"amg-cg"``:
        CG preconditioned by a smoothed-aggregation V-cycle; ``"jacobi-cg"``: CG with the diagonal;
        ``"auto"``: direct up to ``DIRECT_MAX`` unknowns, amg-cg above.
    tol : float, default 1e-10
        Bound on the relative residual ``‖L_uu x - b‖ / ‖b‖``.
    maxiter : int, optional
        CG iteration cap; default 500 (amg-cg) or ``max(1000, 20 √u)`` (jacobi-cg). Ignored by direct.
    x0 : ndarray, shape (u,), optional
        Initial guess for the CG routes (ignored by direct).

    Returns
    -------
    LinearSolution
        ``x`` (u,) for the unanchored items in ascending index order; ``residual`` the relative
        residual recomputed from ``x``; ``converged`` whether it meets ``tol``; ``info`` holds
        ``weakest_contact`` (see below), timings and the multigrid levels.
        ``weakest_contact`` is the smallest ratio, over components, of edge weight to anchors over
        total edge weight: ``cond(L_uu)`` grows like its inverse.

    References
    ----------
    Zhu, Ghahramani & Lafferty, "Semi-supervised learning using Gaussian fields and harmonic
    functions", ICML 2003.
    """
    w = _as_csr(W)
    n = w.shape[0]
    if method not in HARMONIC_METHODS:
        raise ValueError(f"method must be one of {HARMONIC_METHODS}, got {method!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol}")
    if maxiter is not None and maxiter < 1:
        raise ValueError(f"maxiter must be >= 1, got {maxiter}")
    _check_weights(w)
    anchors = np.asarray(anchors).astype(np.int64, copy=False).ravel()
    values = np.asarray(values, dtype=np.float64).ravel()
    if anchors.shape != values.shape:
        raise ValueError(f"anchors ({anchors.size}) and values ({values.size}) differ in length")
    if anchors.size and (anchors.min() < 0 or anchors.max() >= n):
        raise ValueError(f"anchor indices must lie in [0, {n})")
    if np.unique(anchors).size != anchors.size:
        raise ValueError("anchors must be distinct")
    if not np.all(np.isfinite(values)):
        raise ValueError("values must be finite")
    t_start = time.perf_counter()
    is_anchor = np.zeros(n, dtype=bool)
    is_anchor[anchors] = True
    unknown = np.flatnonzero(~is_anchor)
    u = unknown.size
    if u == 0:
        return LinearSolution(x=np.zeros(0), residual=0.0, converged=True, iterations=0,
                              solver="none")
    anchor_value = np.zeros(n)
    anchor_value[anchors] = values
    a, b, contact = _anchored_system(w, degrees(w), anchor_value, is_anchor)
    info: dict[str, Any] = {"requested_method": method, "tol": tol,
                            "weakest_contact": _check_anchor_contact(a, contact)}
    route = method if method != "auto" else ("direct" if u <= DIRECT_MAX else "amg-cg")
    if x0 is not None:
        x0 = np.asarray(x0, dtype=np.float64).ravel()
        if x0.shape != (u,):
            raise ValueError(f"x0 must have shape ({u},), got {x0.shape}")
    with _one_blas_thread():
        x, rel, iterations = _harmonic_route(route, a, b, tol, maxiter, x0, info)
    if not np.all(np.isfinite(x)):
        raise ValueError("the anchored solve produced non-finite values: L_uu is numerically "
                         "singular (items almost disconnected from every anchor)")
    info["time_s"] = time.perf_counter() - t_start
    return LinearSolution(x=x, residual=rel, converged=bool(rel <= tol), iterations=iterations,
                          solver=route, info=info)


def _harmonic_route(route: str, a: sp.csr_matrix, b: Array, tol: float, maxiter: int | None,
                    x0: Array | None, info: dict[str, Any]) -> tuple[Array, float, int]:
    """Solve ``a x = b`` by ``route``; returns ``(x, relative residual, iterations)``."""
    u = a.shape[0]
    bnorm = float(np.linalg.norm(b))
    iterations = 0
    if bnorm == 0.0:  # all anchor values 0: the unique solution is 0
        x, rel = np.zeros(u), 0.0
    elif route == "direct":
        x, rel = _direct(a, b, tol, info)
    else:
        perm = _locality_order(a)
        a_p = a if perm is None else _permute(a, perm)
        b_p = b if perm is None else b[perm]
        x0_p = x0 if x0 is None or perm is None else x0[perm]
        precond: Callable[[Array], Array]
        if route == "amg-cg":
            t0 = time.perf_counter()
            hier = _Hierarchy(a_p, singular=False)
            info.update(setup_s=time.perf_counter() - t0, levels=hier.sizes())
            precond = hier.vcycle
            cap = _AMG_CG_MAXITER if maxiter is None else maxiter
        else:
            precond = _jacobi(a_p)
            cap = max(1000, 20 * math.isqrt(u)) if maxiter is None else maxiter
        x_p, _, iterations = _pcg(a_p, b_p, x0_p, precond, tol, cap)
        x = np.empty(u)
        if perm is None:
            x[:] = x_p
        else:
            x[perm] = x_p
        rel = float(np.linalg.norm(b - a @ x)) / bnorm
        info["reordered"] = perm is not None
    return x, rel, iterations


def _direct(a: sp.csr_matrix, b: Array, tol: float, info: dict[str, Any]) -> tuple[Array, float]:
    """SuperLU solve of the SPD system with one step of iterative refinement if needed."""
    t0 = time.perf_counter()
    try:
        lu = sla.splu(sp.csc_matrix(a), permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                      options={"SymmetricMode": True})
    except RuntimeError as exc:
        raise ValueError(f"the anchored system L_uu is singular ({exc})") from None
    if not np.all(lu.U.diagonal() > 0):
        raise ValueError("the anchored system L_uu is not positive definite (non-positive pivot)")
    info.update(factor_s=time.perf_counter() - t0, lu_nnz=int(lu.L.nnz + lu.U.nnz))
    x = lu.solve(b)
    bnorm = float(np.linalg.norm(b))
    r = b - a @ x
    rel = float(np.linalg.norm(r)) / bnorm
    if rel > tol:
        x = x + lu.solve(r)
        rel = float(np.linalg.norm(b - a @ x)) / bnorm
    return x, rel
