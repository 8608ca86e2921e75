"""Block Davidson for the Fiedler pair (and λ3) of a dense graph Laplacian (private).

The Laplacian is never formed: ``L X = d∘X − W X`` (unnormalised) or ``X − s∘(W (s∘X))`` with
``s = d^{-1/2}`` (symmetric), one BLAS-3 product with the zero-diagonal weights per iteration. The known
null vector ``z`` (constant, or ``√d``) is deflated exactly: the search space stays orthogonal to it.

Each iteration adds the block of residuals of the current Ritz pairs to an orthonormal basis and
solves the small projected problem (Rayleigh–Ritz), restarting from the best Ritz vectors when the
basis is full. Without preconditioning this spans the same block Krylov space as block Lanczos. When
the residual history projects more iterations than a dense Cholesky factorisation of ``L + σI`` is
worth, the residuals are preconditioned by that factor from then on (shift-and-invert): chain-like
matrices with a tiny λ2 then converge in a handful of iterations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.linalg as sl
from numpy.typing import NDArray

Block = NDArray[np.float64]

BLOCK = 4
BASIS_MAX = 40
KEEP = 8
# Measured on one core (docs/seriation.md, Solver policy): a Cholesky factorisation of an n x n matrix
# costs as much as ~n/25 (n = 500, W in cache) to ~n/100 (n = 5000, memory-bound products) iterations
# of width BLOCK; n/50 counts the solves it adds to every later iteration.
CHOLESKY_ITERATIONS_PER_ITEM = 1 / 50
# λ3 only feeds diagnostics (eigengap, Davis–Kahan γ): its residual must be small against λ3 − λ2,
# which bounds the relative error of the gap by this factor, or meet the tolerance itself.
LAMBDA3_GAP_FRACTION = 0.1


def laplacian_operator(w: Block, d: NDArray[np.float64], kind: str) -> Callable[[Block], Block]:
    """``X ↦ L X`` for the zero-diagonal weights ``w`` (n, n) with degrees ``d`` (n,)."""
    # (Xᵀ W)ᵀ = W X for symmetric W, and streams W's rows in memory order: ~1.7x faster than W @ X
    # for a C-ordered W and a few columns (OpenBLAS, one core)
    if kind == "unnormalized":
        return lambda x: d[:, None] * x - (x.T @ w).T
    s = 1.0 / np.sqrt(d)
    return lambda x: x - s[:, None] * ((s[:, None] * x).T @ w).T


def dense_laplacian(w: Block, d: NDArray[np.float64], kind: str, shift: float = 0.0) -> Block:
    """``L + shift·I`` as a new dense array."""
    if kind == "unnormalized":
        out = -w
        out[np.diag_indices_from(out)] += d + shift
        return out
    s = 1.0 / np.sqrt(d)
    out = -(s[:, None] * w * s[None, :])
    out[np.diag_indices_from(out)] += 1.0 + shift
    return out


def _orthonormal(x: Block, basis: tuple[Block, ...], rng: np.random.Generator) -> Block:
    """Columns of ``x`` made orthonormal and orthogonal to every block of ``basis`` (classical
    Gram–Schmidt twice, then QR); numerically dependent columns are replaced by random ones."""
    for _ in range(2):
        for q in basis:
            x = x - q @ (q.T @ x)
    norms = np.linalg.norm(x, axis=0)
    weak = norms <= 1e-10 * max(float(norms.max()), np.finfo(np.float64).tiny)
    if weak.any():
        x[:, weak] = rng.standard_normal((x.shape[0], int(weak.sum())))
        for _ in range(2):
            for q in basis:
                x = x - q @ (q.T @ x)
        norms = np.linalg.norm(x, axis=0)
    q, r = np.linalg.qr(x / norms)
    diag = np.abs(np.diag(r))
    if diag.min() > 1e-3:  # well conditioned: Q = X R^-1 stays orthogonal to the basis
        return q
    q = q[:, diag > 1e-8]
    for b in basis:  # QR of nearly dependent columns can lose orthogonality to the basis
        q = q - b @ (b.T @ q)
    return np.linalg.qr(q)[0]


def coarse_start(w: Block, d: NDArray[np.float64], kind: str, m: int,
                 rng: np.random.Generator) -> Block | None:
    """Start vectors for λ2 and λ3 from the same problem on ``m`` sampled items (shape (n, 2)).

    The sampled rows ``W[S, :]`` (contiguous, ``m·n`` entries) give both the sub-Laplacian and the
    extension: each item takes the weighted mean of the sampled eigenvectors over its sampled
    neighbours (the random-walk eigenvector; times ``√d`` for ``L_sym``). ``None`` when some item has
    no sampled neighbour.
    """
    n = w.shape[0]
    idx = np.sort(rng.choice(n, size=m, replace=False))
    rows = w[idx]
    ds = rows.sum(axis=0)
    if not ds.min() > 0:
        return None
    sub = rows[:, idx]
    sub_d = ds[idx]
    try:
        _, u = sl.eigh(dense_laplacian(sub, sub_d, kind), subset_by_index=[0, 2], driver="evr",
                       check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        return None
    f = u[:, 1:] if kind == "unnormalized" else u[:, 1:] / np.sqrt(sub_d)[:, None]
    ext = (f.T @ rows).T / ds[:, None]
    return ext if kind == "unnormalized" else ext * np.sqrt(d)[:, None]


def fiedler_davidson(w: Block, d: NDArray[np.float64], kind: str, null: NDArray[np.float64], *,
                     tol: float, maxiter: int | None, seed: int, scale: float,
                     precondition: str = "auto", coarse: int = 0) -> dict:
    """λ1 = 0 (the exact null vector), λ2 and λ3 of the Laplacian of ``w``.

    ``precondition``: ``"auto"`` (Jacobi until the projected iteration count exceeds the cost of a
    Cholesky factorisation, then shift-and-invert by that factor), ``"cholesky"`` (from the first
    iteration) or ``"none"`` (Jacobi only). Returns a dict with
    ``values`` (3,), ``vectors`` (n, 3), ``residuals`` (3,) recomputed on the true operator,
    ``converged``, ``iterations`` and ``info``.
    """
    n = w.shape[0]
    apply = laplacian_operator(w, d, kind)
    rng = np.random.default_rng(seed)
    z = null[:, None] / np.linalg.norm(null)
    target = tol * scale
    iters = 200 if maxiter is None else maxiter
    block = min(BLOCK, n - 1)
    factor = None
    switched_at = None
    want_chol = precondition == "cholesky"
    chol_cost = n * CHOLESKY_ITERATIONS_PER_ITEM

    start = rng.standard_normal((n, block))
    sampled = 0
    if 0 < coarse < n and block >= 2:
        guess = coarse_start(w, d, kind, coarse, rng)
        if guess is not None:
            start[:, :2] = guess
            sampled = coarse
    q = _orthonormal(start, (z,), rng)
    aq = apply(q)
    history: list[float] = []
    theta = np.zeros(0)
    vecs = q
    res = np.full(2, np.inf)
    it = 0
    converged = False
    while True:
        h = q.T @ aq
        theta, s = np.linalg.eigh((h + h.T) / 2)
        p = min(block, theta.shape[0])
        vecs, avecs = q @ s[:, :p], aq @ s[:, :p]
        r = avecs - vecs * theta[None, :p]
        res = np.linalg.norm(r, axis=0)
        # progress: the worst residual over its target (<= 1 when done)
        crit = res[0] / target
        if p >= 2:
            crit = max(crit, res[1] / max(target, LAMBDA3_GAP_FRACTION * (theta[1] - theta[0])))
        history.append(float(crit))
        if crit <= 1:
            converged = True
            break
        if it >= iters:
            break
        it += 1
        if factor is None and (want_chol or (precondition == "auto" and _too_slow(history, chol_cost))):
            if not want_chol:
                switched_at = it
            sigma = max(1e-2 * float(theta[0]), 1e-10 * scale)
            lap = dense_laplacian(w, d, kind, sigma)
            try:
                factor = sl.cho_factor(lap, lower=True, overwrite_a=True, check_finite=False)
            except np.linalg.LinAlgError:
                factor = None
                want_chol = False
                chol_cost = math.inf
            del lap
        if factor is not None:
            new = sl.cho_solve(factor, r, check_finite=False)
        else:  # Jacobi: diag(L) = d, or 1 for L_sym (no-op there)
            new = r / d[:, None] if kind == "unnormalized" else r
        if q.shape[1] + new.shape[1] > min(BASIS_MAX, n - 1):
            keep = min(KEEP, theta.shape[0])
            q, aq = q @ s[:, :keep], aq @ s[:, :keep]
        new = _orthonormal(new, (z, q), rng)
        if new.shape[1] == 0:
            break
        q = np.hstack([q, new])
        aq = np.hstack([aq, apply(new)])

    pairs = vecs[:, :2]
    pairs = pairs / np.linalg.norm(pairs, axis=0)
    vectors = np.hstack([z, pairs])
    av = apply(vectors)
    values = np.einsum("ij,ij->j", vectors, av)
    residuals = np.linalg.norm(av - vectors * values[None, :], axis=0)
    converged = converged and bool(residuals[:2].max() <= target)
    if residuals.shape[0] > 2 and residuals[2] > max(target,
                                                     LAMBDA3_GAP_FRACTION * (values[2] - values[1])):
        converged = False
    info = {"preconditioner": "none" if factor is None else "cholesky", "block": block,
            "start_sampled_items": sampled}
    if switched_at is not None:
        info["cholesky_from_iteration"] = switched_at
    return {"values": values, "vectors": vectors, "residuals": residuals, "converged": converged,
            "iterations": it, "info": info}


def _too_slow(history: list[float], chol_cost: float, window: int = 4) -> bool:
    """Whether the recent rate of the progress measure (residual over target, done at 1) projects
    more remaining iterations than ``chol_cost``."""
    if len(history) <= 2 * window:  # the first iterations build the space: no rate yet
        return False
    now, before = history[-1], history[-1 - window]
    if now >= before:
        return True
    rate = (now / before) ** (1.0 / window)
    return math.log(now) / -math.log(rate) > chol_cost
