"""numba kernel behind :func:`clss.seriation.olo.olo_order` (private): optimal leaf ordering.

The dynamic programme of Bar-Joseph, Gifford & Jaakkola (2001), in its O(n³) form. The leaves are
indexed by their position in the unoptimised leaf order, where every subtree is a contiguous range
``[start, start + size)`` split by its two children. For a pair of leaves ``(i, j)`` whose lowest
common ancestor is ``v``, ``best[i, j]`` is the shortest path through all leaves of ``v`` that starts at
``i`` and ends at ``j`` (each pair has exactly one such ancestor, so one ``(n, n)`` table holds every
node's values). With ``i`` in the left child ``A`` and ``j`` in the right child ``B``:

    best[i, j] = min_{k, m} best[i, k] + d[k, m] + best[m, j]

over ``k`` in the part of ``A`` on the other side of ``A``'s split from ``i`` (``k = i`` for a leaf)
and ``m`` likewise in ``B``. Splitting the minimum as ``t[m] = min_k best[i, k] + d[k, m]`` and then
``min_m t[m] + best[m, j]`` costs ``|A||B|(|A| + |B|)`` per node, O(n³) in all. ``mid_a``/``mid_b``
record the minimising ``k``/``m`` so that the path is rebuilt without recursion.
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit


@jit
def _other_side(i, lo, split, hi):
    """Range of leaves of the node ``[lo, hi)`` (split at ``split``) on the other side from ``i``."""
    if hi - lo == 1:
        return lo, hi
    if i < split:
        return split, hi
    return lo, split


@jit
def optimal_leaf_order(d, left, right, n_leaves):
    """Positions (into the unoptimised leaf order) of the optimal order.

    ``d``: ``(n, n)`` distances between leaves in the unoptimised order; ``left``/``right``: the
    children of each merge (scipy linkage ids, leaves ``< n``), merges in order of creation.
    """
    n = n_leaves
    size = np.ones(2 * n - 1, np.int64)
    start = np.zeros(2 * n - 1, np.int64)
    for t in range(n - 1):
        size[n + t] = size[left[t]] + size[right[t]]
    for t in range(n - 2, -1, -1):  # top-down: the left child's leaves come first
        start[left[t]] = start[n + t]
        start[right[t]] = start[n + t] + size[left[t]]
    best = np.zeros((n, n))
    mid_a = np.zeros((n, n), np.int64)
    mid_b = np.zeros((n, n), np.int64)
    tmp = np.empty(n)
    arg = np.empty(n, np.int64)
    for t in range(n - 1):
        a, b = left[t], right[t]
        a_lo, a_hi = start[a], start[a] + size[a]
        b_lo, b_hi = start[b], start[b] + size[b]
        a_split = start[left[a - n]] + size[left[a - n]] if a >= n else a_hi
        b_split = start[left[b - n]] + size[left[b - n]] if b >= n else b_hi
        for i in range(a_lo, a_hi):
            k_lo, k_hi = _other_side(i, a_lo, a_split, a_hi)
            for m in range(b_lo, b_hi):
                low = np.inf
                at = k_lo
                for k in range(k_lo, k_hi):
                    v = best[i, k] + d[k, m]
                    if v < low:
                        low = v
                        at = k
                tmp[m] = low
                arg[m] = at
            for j in range(b_lo, b_hi):
                m_lo, m_hi = _other_side(j, b_lo, b_split, b_hi)
                low = np.inf
                at = m_lo
                for m in range(m_lo, m_hi):
                    v = tmp[m] + best[m, j]
                    if v < low:
                        low = v
                        at = m
                best[i, j] = low
                best[j, i] = low
                mid_a[i, j] = arg[at]
                mid_b[i, j] = at
                mid_a[j, i] = at  # the reversed path: j ... m | k ... i
                mid_b[j, i] = arg[at]
    root = 2 * n - 2
    split = start[left[root - n]] + size[left[root - n]]
    low = np.inf
    first = 0
    last = n - 1
    for i in range(0, split):
        for j in range(split, n):
            if best[i, j] < low:
                low = best[i, j]
                first = i
                last = j
    out = np.empty(n, np.int64)
    stack = np.empty((n, 2), np.int64)
    top = 0
    stack[0, 0] = first
    stack[0, 1] = last
    top = 1
    filled = 0
    while top > 0:
        top -= 1
        i = stack[top, 0]
        j = stack[top, 1]
        if i == j:
            out[filled] = i
            filled += 1
            continue
        stack[top, 0] = mid_b[i, j]  # second half, processed after the first
        stack[top, 1] = j
        stack[top + 1, 0] = i
        stack[top + 1, 1] = mid_a[i, j]
        top += 2
    return out
