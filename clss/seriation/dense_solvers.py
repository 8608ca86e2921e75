"""Dense solvers: the smallest Laplacian eigenpairs and the anchored (harmonic) linear system.

Policy for the Fiedler pair (measured; docs/seriation.md, Solver policy): below ``DAVIDSON_MIN`` items,
LAPACK ``?syevr`` for the requested eigenpairs only; from ``DAVIDSON_MIN`` on, block Davidson on the
weights themselves (``clss.seriation._davidson``: started from the same problem on sampled items, no
Laplacian copy, the null vector deflated, Jacobi
or dense-Cholesky shift-and-invert preconditioning chosen from the convergence rate), residual-checked
on the true operator, with a fall-back to ``?syevr`` if it does not converge. ``"lobpcg"`` (SciPy's
LOBPCG with a Jacobi preconditioner) remains available by name.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sl
from numpy.typing import NDArray

from clss.seriation._davidson import dense_laplacian, fiedler_davidson
from clss.seriation._solution import EigenSolution, LinearSolution

ITERATIVE_MIN = 1000
DAVIDSON_MIN = 500
DENSE_SOLVERS = ("auto", "davidson", "evr", "lobpcg")
# Davidson's start block holds λ2/λ3 guesses from min(COARSE_ITEMS, n // 5) sampled items: 2-5 fewer
# products on the benchmark families (docs/seriation.md, Solver policy); more items cost more than
# they save.
COARSE_ITEMS = 200


def fiedler_pairs_dense(w: NDArray[np.float64], d: NDArray[np.float64], kind: str, *,
                        solver: str = "auto", tol: float | None = None, maxiter: int | None = None,
                        seed: int = 0) -> EigenSolution:
    """λ1 ≈ 0, λ2, λ3 and their eigenvectors of the Laplacian of a connected dense graph.

    Parameters
    ----------
    w : ndarray (n, n)
        Symmetric non-negative weights with a zero diagonal; read, never modified.
    d : ndarray (n,)
        Degrees ``w.sum(1)``, all positive.
    kind : {"unnormalized", "symmetric"}
        ``D - W`` or ``I - D^{-1/2} W D^{-1/2}``.
    solver : {"auto", "davidson", "evr", "lobpcg"}
        ``"auto"``: ``"evr"`` below ``DAVIDSON_MIN`` items, else ``"davidson"``.
    tol : float, optional
        Bound on the Fiedler pair's ``||L v - λ v|| / ||L||`` (``||L||``: ``2 max d``, the ∞-norm of
        ``D - W``, or 2, a bound on ``||L_sym||``); default ``1e-8``.
    maxiter : int, optional
        Iteration cap of the iterative solvers (default 200).
    seed : int
        Seed of the random start block.

    Returns
    -------
    EigenSolution
        ``min(3, n)`` pairs; ``converged`` from residuals recomputed on the true operator. When an
        iterative solver misses its tolerance the ``?syevr`` result is returned, with the failed
        attempt in ``info["davidson_failed"]`` (or ``info["lobpcg_failed"]``).
    """
    n = w.shape[0]
    k = min(3, n)
    tol = 1e-8 if tol is None else tol
    if solver == "auto":
        solver = "davidson" if n >= DAVIDSON_MIN else "evr"
    if solver == "davidson" and n >= 8:
        null = np.ones(n) if kind == "unnormalized" else np.sqrt(d)
        scale = 2.0 * float(d.max()) if kind == "unnormalized" else 2.0
        out = fiedler_davidson(w, d, kind, null, tol=tol, maxiter=maxiter, seed=seed, scale=scale,
                               coarse=min(COARSE_ITEMS, n // 5))
        info = {"scale": scale, **out["info"]}
        if out["converged"]:
            return EigenSolution(values=out["values"], vectors=out["vectors"],
                                 residuals=out["residuals"], converged=True,
                                 iterations=out["iterations"], solver="dense-davidson", info=info)
        fallback = smallest_eigenpairs_dense(dense_laplacian(w, d, kind), k, solver="evr")
        fallback.info["davidson_failed"] = {"iterations": out["iterations"],
                                            "residuals": out["residuals"].tolist(), **info}
        return fallback
    if solver not in DENSE_SOLVERS:
        raise ValueError(f"unknown dense solver {solver!r}; expected one of {DENSE_SOLVERS}")
    null = np.ones(n) if kind == "unnormalized" else np.sqrt(d)
    return smallest_eigenpairs_dense(dense_laplacian(w, d, kind), k,
                                     solver="evr" if solver == "davidson" else solver, tol=tol,
                                     maxiter=maxiter, seed=seed, null_vector=null / np.linalg.norm(null))


def _residuals(lap: NDArray[np.float64], values: NDArray[np.float64],
               vectors: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.linalg.norm(lap @ vectors - vectors * values[None, :], axis=0)


def smallest_eigenpairs_dense(lap: NDArray[np.float64], k: int = 3, *, solver: str = "auto",
                              tol: float | None = None, maxiter: int | None = None,
                              seed: int = 0, null_vector: NDArray[np.float64] | None = None
                              ) -> EigenSolution:
    """The ``k`` smallest eigenpairs of a symmetric PSD matrix ``lap`` (shape ``(n, n)``).

    ``solver``: ``"evr"`` (LAPACK subset), ``"lobpcg"``, or ``"auto"`` (``"lobpcg"`` from
    ``ITERATIVE_MIN`` items). ``null_vector``: a known eigenvector of eigenvalue 0 (the constant vector
    for ``D - W``) used to seed LOBPCG. ``tol`` bounds ``||L v - λ v|| / ||L||``; default ``1e-8``.
    """
    n = lap.shape[0]
    k = min(k, n)
    tol = 1e-8 if tol is None else tol
    if solver == "auto":
        solver = "lobpcg" if n >= ITERATIVE_MIN and k < n // 5 else "evr"
    scale = max(float(np.abs(lap).sum(axis=1).max()), np.finfo(np.float64).tiny)
    if solver == "lobpcg":
        sol = _lobpcg_dense(lap, k, tol, maxiter, seed, null_vector, scale)
        if sol.converged:
            return sol
        fallback = _evr(lap, k, scale)
        fallback.info["lobpcg_failed"] = {"iterations": sol.iterations,
                                          "residuals": sol.residuals.tolist()}
        return fallback
    if solver != "evr":
        raise ValueError(f"unknown dense solver {solver!r}; expected 'auto', 'evr' or 'lobpcg'")
    return _evr(lap, k, scale)


def _evr(lap: NDArray[np.float64], k: int, scale: float) -> EigenSolution:
    values, vectors = sl.eigh(lap, subset_by_index=[0, k - 1], driver="evr", check_finite=False)
    res = _residuals(lap, values, vectors)
    # A direct solver is exact to rounding; the residuals are still reported.
    return EigenSolution(values=values, vectors=vectors, residuals=res, converged=True,
                         iterations=0, solver="dense-evr", info={"scale": scale})


def _lobpcg_dense(lap: NDArray[np.float64], k: int, tol: float, maxiter: int | None, seed: int,
                  null_vector: NDArray[np.float64] | None, scale: float) -> EigenSolution:
    from scipy.sparse.linalg import lobpcg

    n = lap.shape[0]
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((n, k))
    if null_vector is not None:
        x0[:, 0] = null_vector
    diag = np.diag(lap).copy()
    diag[diag <= 0] = 1.0
    inv_diag = 1.0 / diag

    def precond(x: NDArray[np.float64]) -> NDArray[np.float64]:
        return x * (inv_diag[:, None] if x.ndim == 2 else inv_diag)

    iters = 200 if maxiter is None else maxiter
    values, vectors = lobpcg(lap, x0, M=precond, tol=tol * scale, maxiter=iters, largest=False,
                             retLambdaHistory=False)
    idx = np.argsort(values)
    values, vectors = values[idx], vectors[:, idx]
    vectors /= np.linalg.norm(vectors, axis=0, keepdims=True)
    res = _residuals(lap, values, vectors)
    return EigenSolution(values=values, vectors=vectors, residuals=res,
                         converged=bool((res <= tol * scale).all()), iterations=iters,
                         solver="dense-lobpcg", info={"scale": scale})


def solve_spd_dense(a: NDArray[np.float64], b: NDArray[np.float64]) -> LinearSolution:
    """Solve the symmetric positive definite system ``a x = b`` by Cholesky.

    Reports the relative residual and the LAPACK ``?pocon`` 1-norm condition estimate (O(u²) from the
    factor). Raises ``numpy.linalg.LinAlgError`` if ``a`` is not numerically positive definite.
    """
    factor, lower = sl.cho_factor(a, lower=True, check_finite=False)
    x = sl.cho_solve((factor, lower), b, check_finite=False)
    anorm = float(np.abs(a).sum(axis=0).max())
    rcond, info = sl.lapack.dpocon(factor, anorm, uplo="L")
    cond = float(1.0 / rcond) if info == 0 and rcond > 0 else float("inf")
    bnorm = float(np.linalg.norm(b)) or 1.0
    res = float(np.linalg.norm(a @ x - b)) / bnorm
    return LinearSolution(x=x, residual=res, converged=True, iterations=0, solver="dense-cholesky",
                          info={"condition_estimate": cond})
