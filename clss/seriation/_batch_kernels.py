"""numba kernel behind :func:`clss.seriation.seriate_batch` on CPU (private).

After the eigensolver, a training step's batch of small Fiedler vectors needs a stable sort, the
smallest consecutive gap (the float32 guard), the orientation rule and the ranks: a dozen tiny torch
operations whose dispatch cost rivals an 8 x 8 eigendecomposition. One compiled pass per row does
them all. The torch implementation in ``batch.py`` remains the route for CUDA tensors and padded
batches; the tests check both give identical results.
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit


@jit
def orient_rank(vec, threshold):
    """Orient and rank each row of ``vec`` ``(B, n)`` in place; ``threshold`` < 0 disables the guard.

    Per row: the stable ascending order; ``min_gap``, the smallest gap between consecutive sorted
    entries; ``need`` when ``min_gap < threshold`` (the caller recomputes those rows in float64).
    The row is negated when the first item of its order has a larger index than the last (the
    deterministic orientation of :func:`clss.seriation.seriate`), and then re-sorted, so that exact
    ties keep index order. Returns ``(ranks int64 (B, n), min_gap (B,), need bool (B,))``.
    """
    bsz, n = vec.shape
    ranks = np.empty((bsz, n), dtype=np.int64)
    min_gap = np.empty(bsz, dtype=vec.dtype)
    need = np.zeros(bsz, dtype=np.bool_)
    for b in range(bsz):
        row = vec[b]
        order = np.argsort(row, kind="mergesort")
        gap = np.inf
        for i in range(n - 1):
            g = row[order[i + 1]] - row[order[i]]
            if g < gap:
                gap = g
        min_gap[b] = gap
        need[b] = gap < threshold
        if order[0] > order[n - 1]:
            for i in range(n):
                row[i] = -row[i]
            order = np.argsort(row, kind="mergesort")
        for i in range(n):
            ranks[b, order[i]] = i
    return ranks, min_gap, need
