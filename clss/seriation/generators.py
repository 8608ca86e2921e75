"""Seeded synthetic inputs for seriation: Robinson matrices, noisy curves and their k-NN graphs.

These are the test and benchmark families of the seriation literature (Atkins et al. 1998; R's
``random.robinson``; Recanati et al.'s Toeplitz families). Every generator takes ``rng`` (a seed or a
``numpy.random.Generator``) and returns the hidden order where one exists, so that recovery can be
scored with :func:`clss.seriation.compare_orders`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "EXAMPLES",
    "example",
    "interval_robinson",
    "knn_graph",
    "noisy_curve",
    "permute_matrix",
    "points_robinson",
    "toeplitz_robinson",
]

RngLike = int | np.random.Generator | None


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def toeplitz_robinson(n: int, profile: str = "exp", *, rate: float = 0.1,
                      bandwidth: int | None = None) -> NDArray[np.float64]:
    """Toeplitz Robinson similarity ``S_ij = t(|i - j|)`` with ``t`` non-increasing, shape ``(n, n)``.

    ``profile``: ``"exp"`` (``exp(-rate k)``, strict), ``"inverse"`` (``1/(1 + k)``, strict) or
    ``"banded"`` (``max(0, 1 - k/bandwidth)``, zero beyond the band; default ``bandwidth = max(2, n//10)``).
    """
    k = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(np.float64)
    if profile == "exp":
        return np.exp(-rate * k)
    if profile == "inverse":
        return 1.0 / (1.0 + k)
    if profile == "banded":
        w = float(bandwidth if bandwidth is not None else max(2, n // 10))
        return np.clip(1.0 - k / w, 0.0, None)
    raise ValueError(f"unknown profile {profile!r}; expected 'exp', 'inverse' or 'banded'")


def points_robinson(n: int, *, kernel: str = "gaussian", scale: float = 0.2,
                    rng: RngLike = None) -> NDArray[np.float64]:
    """Strict Robinson similarity of ``n`` sorted random points on a line (not Toeplitz).

    ``S_ij = f(|x_i - x_j|)`` with ``x`` sorted uniform on ``[0, 1]`` and ``f`` strictly decreasing:
    ``"gaussian"`` ``exp(-(d/scale)^2)``, ``"laplace"`` ``exp(-d/scale)``, ``"inverse"`` ``1/(1 + d/scale)``.
    """
    x = np.sort(_rng(rng).uniform(0.0, 1.0, n))
    d = np.abs(np.subtract.outer(x, x)) / scale
    if kernel == "gaussian":
        return np.exp(-(d**2))
    if kernel == "laplace":
        return np.exp(-d)
    if kernel == "inverse":
        return 1.0 / (1.0 + d)
    raise ValueError(f"unknown kernel {kernel!r}; expected 'gaussian', 'laplace' or 'inverse'")


def interval_robinson(n: int, *, n_intervals: int | None = None,
                      rng: RngLike = None) -> NDArray[np.float64]:
    """Random (non-Toeplitz, possibly non-strict) Robinson matrix: a positive sum of interval blocks.

    Each block ``w 1_I 1_I^T`` over a random interval ``I`` of ``0..n-1`` is Robinson and sums of Robinson
    matrices are Robinson. Adjacent pairs are always covered, so the graph is connected.
    """
    g = _rng(rng)
    m = n_intervals if n_intervals is not None else 3 * n
    s = np.zeros((n, n))
    for _ in range(m):
        a, b = np.sort(g.integers(0, n, 2))
        s[a : b + 1, a : b + 1] += g.uniform(0.5, 1.5)
    idx = np.arange(n - 1)
    chain = np.zeros((n, n))
    chain[idx, idx + 1] = chain[idx + 1, idx] = 1.0
    return s + chain + np.eye(n)


def permute_matrix(s: NDArray, perm: NDArray[np.intp]) -> NDArray:
    """Return ``s[perm][:, perm]`` (works for dense arrays and scipy sparse matrices).

    If ``s`` is in its true order, the item at position ``i`` of the result is original item ``perm[i]``,
    so the hidden order of the result is ``argsort(perm)`` and its true ranks are ``perm``.
    """
    if sp.issparse(s):
        s = sp.csr_matrix(s)
        return s[perm][:, perm]
    return np.asarray(s)[np.ix_(perm, perm)]


def noisy_curve(n: int, *, noise: float = 0.01, dim: int = 3, amplitude: float = 0.25,
                rng: RngLike = None, stratified: bool = False
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Points on an open 1-D curve in ``R^dim`` with Gaussian noise; returns ``(X [n, dim], t [n])``.

    The curve is ``c(t) = (t, a sin 2πt, a cos 2πt, 0, ...)`` with ``t ~ U(0, 1)``; ``t`` is the latent order.
    ``stratified=True`` draws one ``t`` uniformly in each of ``n`` equal cells (no large gaps, so a
    k-NN graph is connected), in random row order.
    """
    if dim < 1:
        raise ValueError("dim must be >= 1")
    g = _rng(rng)
    cells = np.arange(n) if stratified else np.zeros(n)
    t = (cells + g.uniform(0.0, 1.0, n)) / (n if stratified else 1)
    if stratified:
        t = g.permutation(t)
    x = np.zeros((n, dim))
    x[:, 0] = t
    if dim > 1:
        x[:, 1] = amplitude * np.sin(2 * np.pi * t)
    if dim > 2:
        x[:, 2] = amplitude * np.cos(2 * np.pi * t)
    x += g.normal(0.0, noise, size=x.shape)
    return x, t


def knn_graph(x: NDArray, k: int = 10, *, weights: str = "local",
              workers: int = -1) -> sp.csr_matrix:
    """Symmetric k-nearest-neighbour similarity graph of the rows of ``x`` (CSR, zero diagonal).

    ``weights``: ``"local"`` self-tuning Gaussian ``exp(-d_ij^2 / (s_i s_j))`` with ``s_i`` the distance to
    the k-th neighbour (Zelnik-Manor & Perona 2004; avoids the near-isolated points a global bandwidth
    creates), ``"binary"`` (1 on every edge) or ``"gaussian"`` (global bandwidth = median k-th distance).
    Symmetrised by the maximum of the two directions.
    """
    from scipy.spatial import cKDTree

    from clss.seriation._sparse_kernels import symmetric_max_csr

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k < n:
        raise ValueError(f"k must be in [1, n-1] = [1, {n - 1}], got {k}")
    if weights not in ("local", "binary", "gaussian"):
        raise ValueError(f"unknown weights {weights!r}; expected 'local', 'binary' or 'gaussian'")
    dist, idx = cKDTree(x).query(x, k=k + 1, workers=workers)
    # n x k blocks, filled in place: at n = 1e7 every temporary of this shape costs 0.8 GB.
    nbr = idx[:, 1:].astype(np.int32) if n < 2**31 else idx[:, 1:].copy()
    del idx
    if weights == "gaussian":
        w = dist[:, 1:] / np.median(dist[:, -1])
        np.square(w, out=w)
    else:
        w = np.square(dist[:, 1:])
    if weights == "local":
        # floor at sqrt(tiny): s_i s_j stays positive, so duplicated points get weight 1, not 0/0
        s = np.maximum(dist[:, -1], np.sqrt(np.finfo(np.float64).tiny))
        for a in range(0, n, 1 << 20):
            b = min(n, a + (1 << 20))
            w[a:b] /= s[a:b, None] * s[nbr[a:b]]
    del dist
    if weights == "binary":
        w.fill(1.0)
    else:
        np.negative(w, out=w)
        np.exp(w, out=w)
    indptr, indices, data = symmetric_max_csr(nbr, w, n)
    g = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    g.eliminate_zeros()  # weights that underflowed to 0 are no edges
    return g


def with_dangling_trees(w: sp.spmatrix, *, n_trees: int = 5, size: int = 20, eps: float = 1e-6,
                        rng: RngLike = None) -> tuple[sp.csr_matrix, NDArray[np.int64]]:
    """Attach ``n_trees`` random trees of ``size`` items, each by one edge of weight ``eps``.

    Tree edges weigh 1. Returns ``(W [n + n_trees·size], root)`` where ``root[i]`` is the original
    item a tree item hangs from (``i`` itself for original items): a test family for weakly attached
    parts, whose cut is far cheaper than any cut of the original graph.
    """
    g = _rng(rng)
    base = sp.coo_matrix(w)
    n = base.shape[0]
    roots = g.integers(0, n, n_trees)
    new = np.arange(n, n + n_trees * size).reshape(n_trees, size)
    # Item j of a tree hangs from a random earlier item of the same tree; item 0 from the root.
    parent = np.empty((n_trees, size), np.int64)
    parent[:, 0] = roots
    for j in range(1, size):
        parent[:, j] = new[np.arange(n_trees), g.integers(0, j, n_trees)]
    weight = np.ones((n_trees, size))
    weight[:, 0] = eps
    child, par, wt = new.ravel(), parent.ravel(), weight.ravel()
    m = n + n_trees * size
    tree = sp.coo_matrix((np.concatenate([wt, wt]), (np.concatenate([child, par]),
                                                    np.concatenate([par, child]))), shape=(m, m))
    out = sp.bmat([[base, None], [None, sp.csr_matrix((m - n, m - n))]]).tocsr() + tree.tocsr()
    root = np.concatenate([np.arange(n), np.repeat(roots, size)]).astype(np.int64)
    return out.tocsr(), root


def scale_items(w: sp.spmatrix, factors: NDArray[np.float64]) -> sp.csr_matrix:
    """``W_ij · f_i · f_j``: near-isolated items (a few tiny ``f``) or heavy-tailed degrees
    (log-normal ``f``); the order of the graph is unchanged."""
    f = sp.diags(np.asarray(factors, dtype=np.float64))
    return (f @ sp.csr_matrix(w) @ f).tocsr()


EXAMPLES = {
    "curve": "Gaussian-kernel similarity of 300 noisy points on a 3-D curve, shuffled",
    "robinson": "a random strict Robinson matrix of 150 items, shuffled",
}


def example(name: str = "curve", *, rng: RngLike = 0) -> tuple[NDArray[np.float64],
                                                               NDArray[np.int64]]:
    """A built-in example similarity matrix and the hidden true rank of each of its items.

    ``name``: one of :data:`EXAMPLES`. Deterministic for a given ``rng`` (default seed 0).
    """
    g = _rng(rng)
    if name == "curve":
        x, t = noisy_curve(300, noise=0.01, rng=g)
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        s = np.exp(-d2 / 0.01)
        truth = np.argsort(np.argsort(t))
    elif name == "robinson":
        s = points_robinson(150, rng=g)
        truth = np.arange(150)
    else:
        raise ValueError(f"unknown example {name!r}; expected one of {sorted(EXAMPLES)}")
    perm = g.permutation(s.shape[0])
    return permute_matrix(s, perm), truth[perm].astype(np.int64)
