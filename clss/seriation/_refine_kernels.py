"""numba kernels behind :func:`clss.seriation.refine.refine_order` (private).

Every kernel **minimises** one objective over orders of an ``(n, n)`` C-contiguous float64 matrix
``m`` (symmetric, diagonal ignored); the caller maps each criterion of :mod:`clss.seriation.quality`
to a code, a matrix and a sign (see ``refine._OBJECTIVES``). Two families:

* pair objectives ``Σ_{p<q} m[o_p, o_q] f(q - p)`` with ``f(d) = d²`` (``SQUARE``), ``d`` (``LINEAR``)
  or ``[d == 1]`` (``ADJACENT``);
* triple objectives ``sign · Σ_{p<q<r} φ(x_ac - x_am) + φ(x_ac - x_mc)`` for the items ``a, m, c``
  at positions ``p < q < r``, with ``x = m`` a dissimilarity (``D`` or ``-S``): ``EVENTS``
  ``φ(t) = [t < 0]``, ``DEVIATIONS`` ``max(-t, 0)``, ``GRADIENT`` ``sign(t)``, ``GRADIENT_W`` ``t``.

The one primitive is the exact change of the objective when the items at positions ``b`` and ``b+1``
swap: O(1) for ``ADJACENT``, O(n) otherwise (only pairs/triples holding both items change, because a
swap keeps every other relative order). An insertion move walks one item step by step through a
window, adding up these deltas, and keeps the best slot; path length also gets 2-opt (segment
reversal, O(1) delta). Moves are accepted only when they lower the objective by more than ``tol``.
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit

SQUARE, LINEAR, ADJACENT, EVENTS, DEVIATIONS, GRADIENT, GRADIENT_W = range(7)


@jit
def _phi(code, t):
    """A triple's term for one of its two arms, ``t = x_outer - x_inner``."""
    if code == EVENTS:
        return 1.0 if t < 0 else 0.0
    if code == DEVIATIONS:
        return max(-t, 0.0)
    if code == GRADIENT:
        return np.sign(t)
    return t


@jit
def swap_delta(m, order, b, code, sign):
    """Change of the objective when positions ``b`` and ``b + 1`` swap."""
    n = order.shape[0]
    x = order[b]
    y = order[b + 1]
    total = 0.0
    if code == ADJACENT:
        if b > 0:
            k = order[b - 1]
            total += m[y, k] - m[x, k]
        if b + 2 < n:
            k = order[b + 2]
            total += m[x, k] - m[y, k]
        return total
    if code <= LINEAR:
        for p in range(b):
            k = order[p]
            g = 2.0 * (b - p) + 1.0 if code == SQUARE else 1.0
            total += (m[x, k] - m[y, k]) * g
        for p in range(b + 2, n):
            k = order[p]
            g = 2.0 * (p - b - 1) + 1.0 if code == SQUARE else 1.0
            total += (m[y, k] - m[x, k]) * g
        return total
    # Only triples {x, y, k} change. With u = x_xk, v = x_yk, w = x_xy, a k on the left turns the
    # middle from x to y: F(k) = φ(u-v) - φ(v-u) + φ(u-w) - φ(v-w); a k on the right gives -F(k).
    # F is written out per φ so that each loop is branch-free.
    w = m[x, y]
    for p in range(n):
        if p == b or p == b + 1:
            continue
        k = order[p]
        u = m[x, k]
        v = m[y, k]
        if code == EVENTS:
            f = np.sign(v - u) + (1.0 if u < w else 0.0) - (1.0 if v < w else 0.0)
        elif code == DEVIATIONS:
            f = v - u + max(w - u, 0.0) - max(w - v, 0.0)
        elif code == GRADIENT:
            f = 2.0 * np.sign(u - v) + np.sign(u - w) - np.sign(v - w)
        else:
            f = 3.0 * (u - v)
        total += f if p < b else -f
    return sign * total


@jit
def triple_value(m, order, code):
    """``Σ_{p<q<r} φ(x_pr - x_pq) + φ(x_pr - x_qr)`` over positions (the unsigned criterion value)."""
    n = order.shape[0]
    total = 0.0
    for q in range(1, n - 1):
        mid = order[q]
        for p in range(q):
            a = order[p]
            inner = m[a, mid]
            for r in range(q + 1, n):
                c = order[r]
                outer = m[a, c]
                total += _phi(code, outer - inner) + _phi(code, outer - m[mid, c])
    return total


@jit
def _swap(order, b):
    t = order[b]
    order[b] = order[b + 1]
    order[b + 1] = t


@jit
def insertion_pass(m, order, visit, code, sign, window, tol):
    """One pass of best-slot insertion moves for the items in ``visit`` order, in place.

    Returns ``(improvement, moves)``: the summed (negative) objective change and the number of
    accepted moves.
    """
    n = order.shape[0]
    gained = 0.0
    moves = 0
    for item in visit:
        a = -1
        for p in range(n):  # positions shift after each move: look the item up
            if order[p] == item:
                a = p
                break
        best = 0.0
        best_at = a
        cum = 0.0
        end = min(n - 1, a + window)
        for b in range(a, end):  # walk right
            cum += swap_delta(m, order, b, code, sign)
            _swap(order, b)
            if cum < best - tol:
                best = cum
                best_at = b + 1
        for b in range(end - 1, best_at - 1, -1):  # back to the best slot
            _swap(order, b)
        if best_at == a:
            cum = 0.0
            start = max(0, a - window)
            for b in range(a - 1, start - 1, -1):  # walk left
                cum += swap_delta(m, order, b, code, sign)
                _swap(order, b)
                if cum < best - tol:
                    best = cum
                    best_at = b
            for b in range(start, best_at):
                _swap(order, b)
        if best_at != a:
            gained += best
            moves += 1
    return gained, moves


@jit
def two_opt_pass(m, order, window, tol):
    """One pass of first-improvement 2-opt (reverse ``order[i..j]``) for the ``ADJACENT`` objective."""
    n = order.shape[0]
    gained = 0.0
    moves = 0
    for i in range(n - 1):
        j = i + 1
        while j < min(n, i + window + 1):
            before = 0.0
            after = 0.0
            if i > 0:
                before += m[order[i - 1], order[i]]
                after += m[order[i - 1], order[j]]
            if j < n - 1:
                before += m[order[j], order[j + 1]]
                after += m[order[i], order[j + 1]]
            delta = after - before
            if delta < -tol:
                lo = i
                hi = j
                while lo < hi:
                    t = order[lo]
                    order[lo] = order[hi]
                    order[hi] = t
                    lo += 1
                    hi -= 1
                gained += delta
                moves += 1
            j += 1
    return gained, moves
