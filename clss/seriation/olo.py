"""Optimal leaf ordering of a hierarchical clustering (``seriate(..., method="olo")``).

The similarity ``S`` becomes the dissimilarity ``D = max(S) - S`` (off the diagonal; ``max`` over
every entry, a sparse matrix's implicit zeros included), the conversion rule of
:mod:`clss.seriation.quality`, so the order minimises that module's ``path_length`` among the
``2^(n-1)`` leaf orders of the dendrogram (Bar-Joseph, Gifford & Jaakkola 2001; the O(n³) dynamic
programme in ``_olo_kernels``). :func:`scipy.cluster.hierarchy.optimal_leaf_ordering` is not used:
it returns a non-optimal order on about half of random 8-item inputs (scipy issue #11227; our
tests check the optimum by enumerating all leaf orders) and is slower.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

LINKAGES = ("average", "complete", "single", "weighted")


def check_linkage(linkage: object) -> str:
    """Validate the linkage name early (before any work)."""
    if not isinstance(linkage, str) or linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {list(LINKAGES)}, got {linkage!r}")
    return linkage


def olo_order(w: NDArray[np.float64] | sp.spmatrix, linkage: str = "average",
              dense_max: int = 20_000) -> NDArray[np.int64]:
    """Leaf order of the optimally ordered ``linkage`` dendrogram of the similarity ``w``.

    Parameters
    ----------
    w : array (n, n) or scipy.sparse matrix
        Symmetric similarity with a zero diagonal.
    linkage : {"average", "complete", "single", "weighted"}, default "average"
        Agglomeration rule of :func:`scipy.cluster.hierarchy.linkage`.
    dense_max : int
        Largest ``n`` densified from a sparse input.

    Returns
    -------
    int64 array, shape (n,)
    """
    from scipy.cluster.hierarchy import leaves_list
    from scipy.cluster.hierarchy import linkage as build
    from scipy.spatial.distance import squareform

    from clss.seriation._olo_kernels import optimal_leaf_order

    check_linkage(linkage)
    n = w.shape[0]
    if n < 3:
        return np.arange(n, dtype=np.int64)
    if sp.issparse(w):
        if n > dense_max:
            raise ValueError(f"method='olo' works on the dense matrix, which at n = {n} needs "
                             f"{n * n * 8 / 2**30:.0f} GiB; use method='spectral' beyond "
                             f"{dense_max} items")
        w = w.toarray()
    d = float(w.max()) - w
    np.fill_diagonal(d, 0.0)
    tree = build(squareform(d, checks=False), method=linkage)
    leaves = leaves_list(tree)
    merges = tree[:, :2].astype(np.int64)
    pos = optimal_leaf_order(np.ascontiguousarray(d[np.ix_(leaves, leaves)]), merges[:, 0].copy(),
                             merges[:, 1].copy(), n)
    return np.asarray(leaves[pos], dtype=np.int64)
