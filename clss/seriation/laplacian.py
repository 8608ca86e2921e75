"""Graph Laplacians of a similarity matrix (dense numpy or scipy CSR).

``"unnormalized"``: ``L = D - W`` (Atkins, Boman & Hendrickson 1998; the CLSS/GCLSS papers).
``"symmetric"``: ``L_sym = I - D^{-1/2} W D^{-1/2}`` (Ng, Jordan & Weiss 2001).
``"random_walk"``: the generalised problem ``L v = λ D v``; solved through ``L_sym`` since
``v = D^{-1/2} u`` (Shi & Malik 2000).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.csgraph import connected_components

from clss.seriation._validation import Matrix

LAPLACIANS = ("unnormalized", "symmetric", "random_walk")
# Empty arrays for the options of the breadth-first kernel that a call does not use.
_NONE_INT = np.empty(0, dtype=np.int64)
_NONE_FLOAT = np.empty(0, dtype=np.float64)


def check_laplacian_kind(kind: str) -> None:
    if kind not in LAPLACIANS:
        raise ValueError(f"laplacian must be one of {LAPLACIANS}, got {kind!r}")


def component_labels(w: Matrix) -> tuple[int, NDArray[np.int64]]:
    """Connected components of the graph ``w``: ``(count, label per item)``, labels numbered by their
    smallest item index."""
    if not sp.issparse(w):
        return _dense_components(w)
    if w.format == "csr":
        # a search on the CSR arrays in place: scipy's undirected search builds the transpose
        # (~1.5 GB at n = 1e7); seeds in index order number components by their smallest item
        from clss.seriation._sparse_kernels import breadth_first

        n_comp, comp = breadth_first(w.indptr, w.indices, np.arange(w.shape[0]), _NONE_INT,
                                     _NONE_FLOAT, _NONE_FLOAT)[:2]
        return int(n_comp), comp
    n_comp, comp = connected_components(w, directed=False)
    return n_comp, comp.astype(np.int64)


def _dense_components(w: NDArray[np.float64]) -> tuple[int, NDArray[np.int64]]:
    """Breadth-first search on a symmetric dense matrix reading only frontier-to-unvisited entries
    (at most one pass): a complete graph, e.g. any kernel matrix without underflow, costs one row,
    where a CSR conversion costs several passes and n² stored entries."""
    n = w.shape[0]
    comp = np.full(n, -1, dtype=np.int64)
    count = start = 0
    while start < n:
        comp[start] = count
        frontier = np.array([start])
        unvisited = np.flatnonzero(comp < 0)
        while frontier.size and unvisited.size:
            # only the edges from the frontier to unvisited items are read
            reached = (w[np.ix_(frontier, unvisited)] != 0).any(axis=0)
            frontier = unvisited[reached]
            unvisited = unvisited[~reached]
            comp[frontier] = count
        count += 1
        rest = np.flatnonzero(comp[start:] < 0)
        start = start + int(rest[0]) if rest.size else n
    return count, comp


def degrees(w: Matrix) -> NDArray[np.float64]:
    """Weighted degrees ``d_i = Σ_j w_ij``, shape ``(n,)``."""
    return np.asarray(w.sum(axis=1)).ravel()


def laplacian(w: Matrix, kind: str = "unnormalized") -> Matrix:
    """The Laplacian operator whose second-smallest eigenvector is sorted (see module docstring).

    ``w``: symmetric non-negative weights with zero diagonal, shape ``(n, n)``; degrees must be positive
    for the normalised kinds (true for every connected component of two or more items).
    """
    check_laplacian_kind(kind)
    d = degrees(w)
    if kind == "unnormalized":
        if sp.issparse(w):
            return (sp.diags(d) - w).tocsr()
        out = -w.copy()
        out[np.diag_indices_from(out)] += d
        return out
    if (d <= 0).any():
        raise ValueError("normalised Laplacian needs positive degrees (an isolated item has none)")
    s = 1.0 / np.sqrt(d)
    if sp.issparse(w):
        return (sp.identity(w.shape[0], format="csr") - sp.diags(s) @ w @ sp.diags(s)).tocsr()
    out = -(s[:, None] * w * s[None, :])
    out[np.diag_indices_from(out)] += 1.0
    return out


def components_and_rcm(w: sp.csr_matrix, d: NDArray[np.float64] | None = None
                       ) -> tuple[int, NDArray[np.int64], NDArray[np.int64], sp.csr_matrix | None]:
    """Connected components and the reverse Cuthill–McKee order of a CSR graph, by one search.

    ``w``: symmetric in structure, sorted or not. Returns ``(count, label per item, permutation,
    L)``: labels as :func:`component_labels` numbers them, and the permutation equal, node for node,
    to ``scipy.sparse.csgraph.reverse_cuthill_mckee(w, symmetric_mode=True)`` (the same degrees, the
    same ``np.argsort`` of them for the seeds, the same stable sort of each node's new neighbours).
    With the degrees ``d`` of a connected ``w``, ``L`` is ``D - W`` renumbered by the permutation
    (``L[perm][:, perm]``, sorted int32 indices), written while the search reads each row; else
    ``None``. The large-graph path thus reads the rows in random order once instead of three times
    (components, RCM, the renumbered ``L``).
    """
    from clss.seriation._sparse_kernels import breadth_first, structural_degree

    degree = structural_degree(w.indptr, w.indices)
    n_comp, comp, order, ptr, idx, val = breadth_first(
        w.indptr, w.indices, np.argsort(degree), degree, w.data,
        _NONE_FLOAT if d is None else np.ascontiguousarray(d, dtype=np.float64))
    lap = None
    if ptr.shape[0]:
        lap = sp.csr_matrix((val, idx, ptr), shape=w.shape)
        lap.has_sorted_indices = True
    return int(n_comp), comp, order[::-1].copy(), lap
