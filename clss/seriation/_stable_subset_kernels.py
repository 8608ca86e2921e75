"""numba kernels behind :func:`clss.seriation.stable_subset.select_stable_subset` (private).

All kernels **minimise** ``f(S) = sum_{a != b in S} A[a, b]`` (ordered pairs: twice the sum over
unordered pairs for a symmetric ``A``); the caller passes ``-P`` to maximise. Only off-diagonal
entries of ``A`` are read. ``A`` is a C-contiguous float64 ``(n, n)`` array, so each kernel
compiles once.

Slice assignments (``x[:] = y``) are written as loops on purpose: each one adds ~0.3-2.5 s to the
first (uncached) compile.

Ties are broken deterministically by strict improvement in a fixed scan order (the smallest index
or the lexicographically first candidate wins), so the compiled kernels and their ``py_func`` (the
pure-Python reference behind ``backend="python"``) return identical subsets: they perform the same
floating-point operations in the same order. Each kernel is self-contained (no calls into other
kernels), so ``py_func`` never runs compiled code and a cached kernel never depends on another
module (survey section 7.4, item 3).
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit


@jit
def dp_select(a, k):
    """GCLSS dynamic program (Wang et al. 2025, arXiv 2512.09267), minimising; ``2 <= k <= n``.

    State ``(i, j)``: the best ``j``-subset ``sel[i][j]`` of the first ``i`` items, of value
    ``dp[i][j]``. Base ``j = 2``: the lexicographically first minimum pair among the first ``i``
    items, of value ``2 A[a, b]``. Transition (item ``i - 1`` joins or not)::

        dp[i][j] = min(dp[i-1][j],
                       min_{j-1 <= k' < i} dp[k'][j-1] + 2 sum_{s in sel[k'][j-1]} A[i-1, s])

    The official code evaluates the inner sum from scratch, O(n^2 k^2) overall. Here the row sums
    ``rt[k', x] = sum_{s in sel[k'][j-1]} A[x, s]`` of one column are carried forward: a state that
    takes item ``i-1`` adds one term to its parent's row sums, a state that skips it copies them.
    That is O(n^2 k) time and O(n^2 + n k) memory. Subsets are stored in increasing index order
    and every sum adds its terms in that order: exactly the float operations of the from-scratch
    sum, hence the same subset as the official recurrence.
    """
    n = a.shape[0]
    inf = np.inf
    # at[s, x] = a[x, s]: every sum below runs over x, which is then a contiguous row.
    at = np.ascontiguousarray(a.T)
    dp_prev = np.full(n + 1, inf)
    sel_prev = np.zeros((n + 1, k), dtype=np.int64)
    # rt_prev[i, x] = sum of a[x, s] over s in sel_prev[i]. Only x >= i is ever used and every entry
    # is written before it is read, so np.empty spares the page faults of zeroing ~n^2 floats.
    rt_prev = np.empty((n + 1, n))

    best = inf
    pa = -1
    pb = -1
    for i in range(2, n + 1):
        b = i - 1
        for c in range(b):
            v = at[b, c]
            # (c, b) precedes the stored pair lexicographically iff c < pa, since pb < b.
            if v < best or (v == best and c < pa):
                best = v
                pa = c
                pb = b
        dp_prev[i] = 2.0 * best
        sel_prev[i, 0] = pa
        sel_prev[i, 1] = pb
        for x in range(i, n):
            rt_prev[i, x] = 0.0 + at[pa, x] + at[pb, x]

    dp_cur = np.full(n + 1, inf)
    sel_cur = np.zeros((n + 1, k), dtype=np.int64)
    rt_cur = np.empty((n + 1, n))
    for j in range(3, k + 1):
        for i in range(n + 1):
            dp_cur[i] = inf
        for i in range(j, n + 1):
            item = i - 1
            best = dp_cur[i - 1]  # skip item i-1 (inf when i-1 < j: unreachable)
            parent = -1
            for kp in range(j - 1, i):
                cand = dp_prev[kp] + 2.0 * rt_prev[kp, item]
                if cand < best:
                    best = cand
                    parent = kp
            dp_cur[i] = best
            if parent < 0:
                for t in range(j):
                    sel_cur[i, t] = sel_cur[i - 1, t]
                for x in range(i, n):
                    rt_cur[i, x] = rt_cur[i - 1, x]
            else:
                for t in range(j - 1):
                    sel_cur[i, t] = sel_prev[parent, t]
                sel_cur[i, j - 1] = item
                for x in range(i, n):
                    rt_cur[i, x] = rt_prev[parent, x] + at[item, x]
        dp_prev, dp_cur = dp_cur, dp_prev
        sel_prev, sel_cur = sel_cur, sel_prev
        rt_prev, rt_cur = rt_cur, rt_prev
    out = np.empty(k, dtype=np.int64)
    for t in range(k):
        out[t] = sel_prev[n, t]
    return out


@jit
def greedy_select(a, k):
    """Greedy baseline: the first minimum pair, then repeatedly the item of least marginal increase.

    ``2 <= k <= n``. The marginal cost of ``x`` is ``2 sum_{s in S} A[x, s]``; ties go to the
    smallest index. O(n^2 + n k). Returns the subset sorted.
    """
    n = a.shape[0]
    best = np.inf
    pa = -1
    pb = -1
    for c in range(n - 1):
        for b in range(c + 1, n):
            if a[c, b] < best:
                best = a[c, b]
                pa = c
                pb = b
    chosen = np.zeros(n, dtype=np.bool_)
    chosen[pa] = True
    chosen[pb] = True
    gain = np.empty(n)
    for x in range(n):
        gain[x] = 0.0 + a[x, pa] + a[x, pb]
    for _ in range(2, k):
        best = np.inf
        pick = -1
        for x in range(n):
            if not chosen[x] and gain[x] < best:
                best = gain[x]
                pick = x
        chosen[pick] = True
        for x in range(n):
            gain[x] += a[x, pick]
    out = np.empty(k, dtype=np.int64)
    t = 0
    for x in range(n):
        if chosen[x]:
            out[t] = x
            t += 1
    return out


@jit
def exact_select(a, k):
    """Brute force over all C(n, k) subsets in lexicographic order; the first minimum wins.

    ``2 <= k <= n``. Prefix values are updated incrementally, ``f(c_0..c_d) = f(c_0..c_{d-1}) +
    2 sum_{t < d} A[c_d, c_t]``, so a step costs O(k * changed positions), amortised O(k).
    """
    n = a.shape[0]
    comb = np.empty(k, dtype=np.int64)
    best_comb = np.empty(k, dtype=np.int64)
    for q in range(k):
        comb[q] = q
        best_comb[q] = q
    pref = np.zeros(k + 1)
    for d in range(k):
        s = 0.0
        for t in range(d):
            s += a[comb[d], comb[t]]
        pref[d + 1] = pref[d] + 2.0 * s
    best = pref[k]
    while True:
        p = k - 1
        while p >= 0 and comb[p] == n - k + p:
            p -= 1
        if p < 0:
            break
        comb[p] += 1
        for q in range(p + 1, k):
            comb[q] = comb[q - 1] + 1
        for d in range(p, k):
            s = 0.0
            for t in range(d):
                s += a[comb[d], comb[t]]
            pref[d + 1] = pref[d] + 2.0 * s
        if pref[k] < best:
            best = pref[k]
            for q in range(k):
                best_comb[q] = comb[q]
    return best_comb


@jit
def refine_swap(a, sel):
    """Best-improvement 1-swap local search from the sorted subset ``sel`` (length ``k < n``).

    Each round computes ``g[x] = sum_{s in S, s != x} A[x, s]`` and ``f(S) = sum_{x in S} g[x]``
    from scratch in increasing index order, then swaps ``u`` out for ``v`` where the change
    ``2 (g[v] - A[v, u] - g[u])`` is most negative (the first ``(u, v)`` on ties). A swap is kept
    only if the recomputed ``f`` strictly drops: the computed values then decrease strictly, so the
    search stops without any tolerance and rounding-level "gains" cannot make it cycle. Returns the
    best subset visited, sorted.
    """
    n = a.shape[0]
    k = sel.shape[0]
    cur = sel.copy()
    best_sel = cur.copy()
    best_f = np.inf
    chosen = np.zeros(n, dtype=np.bool_)
    g = np.empty(n)
    while True:
        for x in range(n):
            chosen[x] = False
        for t in range(k):
            chosen[cur[t]] = True
        for x in range(n):
            s = 0.0
            for t in range(k):
                if cur[t] != x:
                    s += a[x, cur[t]]
            g[x] = s
        f = 0.0
        for t in range(k):
            f += g[cur[t]]
        if not f < best_f:
            break
        best_f = f
        for t in range(k):
            best_sel[t] = cur[t]
        delta = 0.0
        out = -1
        into = -1
        for t in range(k):
            u = cur[t]
            for v in range(n):
                if not chosen[v]:
                    d = g[v] - a[v, u] - g[u]
                    if d < delta:
                        delta = d
                        out = u
                        into = v
        if out < 0:
            break
        # Replace out by into and restore the order by shifting (np.sort costs seconds to compile).
        t = 0
        while cur[t] != out:
            t += 1
        while t + 1 < k and cur[t + 1] < into:
            cur[t] = cur[t + 1]
            t += 1
        while t > 0 and cur[t - 1] > into:
            cur[t] = cur[t - 1]
            t -= 1
        cur[t] = into
    return best_sel
