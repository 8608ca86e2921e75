"""numba kernels behind :func:`clss.seriation.refine.refine_order` (private).

Every kernel **minimises** one objective over orders of an ``(n, n)`` C-contiguous float64 matrix
(symmetric, zero diagonal); the caller maps each criterion of :mod:`clss.seriation.quality` to a code,
a matrix and a sign (see ``refine._OBJECTIVES``). Two families:

* pair objectives ``Σ_{p<q} m[o_p, o_q] f(q - p)`` with ``f(d) = d²`` (``SQUARE``), ``d`` (``LINEAR``)
  or ``[d == 1]`` (``ADJACENT``), on the item-indexed matrix ``m``;
* triple objectives ``sign · Σ_{p<q<r} φ(x_pr - x_pq) + φ(x_pr - x_qr)`` over positions, with ``x`` a
  dissimilarity (``D`` or ``-S``): ``EVENTS`` ``φ(t) = [t < 0]``, ``DEVIATIONS`` ``max(-t, 0)``,
  ``GRADIENT`` ``sign(t)``. They work on ``P = x[order][:, order]`` (rows in position order, so the
  O(n) sums stream through memory), kept permuted along with ``order``.

A move takes the item at position ``a`` to position ``t`` (the items between shift by one). It is a
walk of adjacent swaps, and :func:`walk` accumulates their exact changes without moving anything:

* ``LINEAR``: O(1) per step from ``h_i = Σ_{left} m_ik - Σ_{right} m_ik`` (only the walking item's
  ``h`` changes during the walk); an accepted move updates ``h`` of the passed items, O(|t - a|);
* ``SQUARE``: with ``g = m π`` (``π`` the positions) the swap of a left item ``p`` and a right item
  ``q`` changes ``Σ m_ij (π_i - π_j)² = πᵀLπ`` by ``2[(d_p π_p - g_p) - (d_q π_q - g_q)] + d_p + d_q
  + 2 m_pq``; the passed items' shifts enter ``g`` through a running sum, O(j) at step ``j``; an
  accepted move updates ``g`` in O(n · |t - a|);
* ``ADJACENT``: O(1), only the two path edges around the swapped pair change;
* triples: O(n), only the triples holding both swapped items change, over the other items' columns.

Moves are accepted only when they lower the objective by more than ``tol``; items whose best move
improves nothing get their don't-look bit set until a move lands next to them.
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit

SQUARE, LINEAR, ADJACENT, EVENTS, DEVIATIONS, GRADIENT = range(6)


@jit
def pair_state(m, order, code):
    """Per-item state of the pair objectives: ``(pos, deg, aux)``.

    ``aux`` is ``h`` (``LINEAR``), ``g = m π`` (``SQUARE``) or zeros; recomputed once per pass, so the
    incremental updates never drift.
    """
    n = order.shape[0]
    pos = np.empty(n, np.int64)
    for p in range(n):
        pos[order[p]] = p
    deg = np.zeros(n)
    aux = np.zeros(n)
    if code != SQUARE and code != LINEAR:
        return pos, deg, aux
    for i in range(n):
        row = m[i]
        d = 0.0
        s = 0.0
        for k in range(n):
            d += row[k]
            s += row[k] * pos[k]
        deg[i] = d
        if code == SQUARE:
            aux[i] = s
        else:  # h = left - right = 2 * left - deg
            left = 0.0
            for q in range(pos[i]):
                left += row[order[q]]
            aux[i] = 2.0 * left - d
    return pos, deg, aux


@jit(fastmath={"reassoc", "nsz"})  # lets LLVM vectorise the reductions (sums of counts stay exact)
def _fsum(mat, r1, r2, w, lo, hi, code):
    """``Σ_{c=lo}^{hi-1} F(mat[r1, c], mat[r2, c])``: the change of the triples ``{r1, r2, c}`` when
    the items of rows ``r1`` (left) and ``r2`` (right) swap and ``c`` lies left of them (the negative
    when it lies right). ``w = mat[r1, r2]``."""
    total = 0.0
    a = mat[r1]
    b = mat[r2]
    if code == EVENTS:
        for c in range(lo, hi):
            u = a[c]
            v = b[c]
            total += ((1.0 if v > u else 0.0) - (1.0 if v < u else 0.0)
                      + (1.0 if u < w else 0.0) - (1.0 if v < w else 0.0))
    elif code == DEVIATIONS:
        for c in range(lo, hi):
            u = a[c]
            v = b[c]
            total += v - u + max(w - u, 0.0) - max(w - v, 0.0)
    else:
        for c in range(lo, hi):
            u = a[c]
            v = b[c]
            total += (2.0 * ((1.0 if u > v else 0.0) - (1.0 if u < v else 0.0))
                      + (1.0 if u > w else 0.0) - (1.0 if u < w else 0.0)
                      - (1.0 if v > w else 0.0) + (1.0 if v < w else 0.0))
    return total


@jit
def walk(mat, order, pos, deg, aux, a, reach, code, sign, out):
    """Cumulative objective changes of moving the item at position ``a`` to ``a + j`` (``out[0, j-1]``)
    and ``a - j`` (``out[1, j-1]``), ``j = 1..reach``; returns how many of each fit in ``[0, n)``."""
    n = order.shape[0]
    nr = min(reach, n - 1 - a)
    nl = min(reach, a)
    x = order[a]
    if code == LINEAR:
        hx = aux[x]
        cum = 0.0
        for j in range(1, nr + 1):
            y = order[a + j]
            mxy = mat[x, y]
            cum += hx - aux[y] + 2.0 * mxy
            hx += 2.0 * mxy
            out[0, j - 1] = cum
        hx = aux[x]
        cum = 0.0
        for j in range(1, nl + 1):
            y = order[a - j]
            mxy = mat[x, y]
            cum += aux[y] - hx + 2.0 * mxy
            hx -= 2.0 * mxy
            out[1, j - 1] = cum
    elif code == SQUARE:
        dx = deg[x]
        for side in range(2):
            step = 1 if side == 0 else -1
            count = nr if side == 0 else nl
            cum = 0.0
            sxy = 0.0  # Σ m[x, passed]
            for j in range(1, count + 1):
                y = order[a + step * j]
                mxy = mat[x, y]
                inner = 0.0  # Σ m[y, passed]
                for i in range(1, j):
                    inner += mat[y, order[a + step * i]]
                if side == 0:  # x at a+j-1 (left), y at a+j; passed items moved left by one
                    gx = aux[x] - sxy
                    gy = aux[y] + (j - 1) * mxy - inner
                    cum += 2.0 * ((dx * (a + j - 1) - gx) - (deg[y] * (a + j) - gy))
                else:  # y at a-j (left), x at a-j+1; passed items moved right by one
                    gx = aux[x] + sxy
                    gy = aux[y] - (j - 1) * mxy + inner
                    cum += 2.0 * ((deg[y] * (a - j) - gy) - (dx * (a - j + 1) - gx))
                cum += dx + deg[y] + 2.0 * mxy
                sxy += mxy
                out[side, j - 1] = cum
    elif code == ADJACENT:
        cum = 0.0
        for j in range(1, nr + 1):  # p = x (left), q = y
            y = order[a + j]
            prev = order[a + j - 1] if j > 1 else (order[a - 1] if a > 0 else -1)
            nxt = order[a + j + 1] if a + j + 1 < n else -1
            if prev >= 0:
                cum += mat[y, prev] - mat[x, prev]
            if nxt >= 0:
                cum += mat[x, nxt] - mat[y, nxt]
            out[0, j - 1] = cum
        cum = 0.0
        for j in range(1, nl + 1):  # p = y (left), q = x
            y = order[a - j]
            prev = order[a - j - 1] if a - j - 1 >= 0 else -1
            nxt = order[a - j + 1] if j > 1 else (order[a + 1] if a + 1 < n else -1)
            if prev >= 0:
                cum += mat[x, prev] - mat[y, prev]
            if nxt >= 0:
                cum += mat[y, nxt] - mat[x, nxt]
            out[1, j - 1] = cum
    else:  # triples on the position-ordered matrix: rows are positions
        cum = 0.0
        for j in range(1, nr + 1):  # rows a (left) and a+j; columns between a and a+j are left
            b = a + j
            w = mat[a, b]
            f = (_fsum(mat, a, b, w, 0, a, code) + _fsum(mat, a, b, w, a + 1, b, code)
                 - _fsum(mat, a, b, w, b + 1, n, code))
            cum += sign * f
            out[0, j - 1] = cum
        cum = 0.0
        for j in range(1, nl + 1):  # rows a-j (left) and a; columns between them are right
            b = a - j
            w = mat[b, a]
            f = (_fsum(mat, b, a, w, 0, b, code) - _fsum(mat, b, a, w, b + 1, a, code)
                 - _fsum(mat, b, a, w, a + 1, n, code))
            cum += sign * f
            out[1, j - 1] = cum
    return nr, nl


@jit
def _rotate(v, a, t):
    """Move ``v[a]`` to index ``t``, shifting the entries between by one."""
    keep = v[a]
    if t > a:
        for p in range(a, t):
            v[p] = v[p + 1]
    else:
        for p in range(a, t, -1):
            v[p] = v[p - 1]
    v[t] = keep


@jit
def apply_move(mat, order, pos, aux, a, t, code):
    """Move the item at position ``a`` to ``t`` and update the state of ``code``."""
    n = order.shape[0]
    x = order[a]
    step = 1 if t > a else -1
    if code == LINEAR:
        total = 0.0
        for p in range(a + step, t + step, step):
            y = order[p]
            aux[y] -= 2.0 * step * mat[x, y]
            total += mat[x, y]
        aux[x] += 2.0 * step * total
    elif code == SQUARE:
        for p in range(a + step, t + step, step):
            row = mat[order[p]]
            for k in range(n):
                aux[k] -= step * row[k]
        row = mat[x]
        for k in range(n):
            aux[k] += (t - a) * row[k]
    elif code >= EVENTS:  # permute rows and columns of the position-ordered matrix
        keep = mat[a].copy()
        if t > a:
            for p in range(a, t):
                mat[p] = mat[p + 1]
        else:
            for p in range(a, t, -1):
                mat[p] = mat[p - 1]
        mat[t] = keep
        for r in range(n):
            _rotate(mat[r], a, t)
    _rotate(order, a, t)
    for p in range(min(a, t), max(a, t) + 1):
        pos[order[p]] = p


@jit
def insertion_pass(mat, order, pos, deg, aux, visit, active, code, sign, window, tol):
    """One pass of best-slot insertion moves (within ``window`` positions) for the active items of
    ``visit``, in place. An item whose best move improves nothing becomes inactive; a move
    reactivates the moved item and the neighbours of its old and new positions.

    Returns ``(improvement, moves)``: the summed (negative) objective change and the accepted moves.
    """
    n = order.shape[0]
    out = np.empty((2, max(window, 1)))
    gained = 0.0
    moves = 0
    for item in visit:
        if not active[item]:
            continue
        a = pos[item]
        nr, nl = walk(mat, order, pos, deg, aux, a, window, code, sign, out)
        best = 0.0
        best_at = a
        for j in range(nr):
            if out[0, j] < best - tol:
                best = out[0, j]
                best_at = a + j + 1
        for j in range(nl):
            if out[1, j] < best - tol:
                best = out[1, j]
                best_at = a - j - 1
        if best_at == a:
            active[item] = False
            continue
        apply_move(mat, order, pos, aux, a, best_at, code)
        # don't-look bits: wake the two items the move made adjacent and the item's new neighbours
        # (the moved item itself sits at its best slot)
        lo = a - 1 if best_at > a else a
        for p in (lo, lo + 1, best_at - 1, best_at + 1):
            if 0 <= p < n and p != best_at:
                active[order[p]] = True
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


@jit
def pair_value(m, order, code):
    """``Σ_{p<q} m[o_p, o_q] f(q - p)`` for ``SQUARE``, ``LINEAR`` and ``ADJACENT``."""
    n = order.shape[0]
    total = 0.0
    if code == ADJACENT:
        for p in range(n - 1):
            total += m[order[p], order[p + 1]]
        return total
    for p in range(n - 1):
        row = m[order[p]]
        for q in range(p + 1, n):
            d = float(q - p)
            total += row[order[q]] * (d * d if code == SQUARE else d)
    return total


@jit
def _arm_sum(row, rank, top, start, stop, step, code, cnt, tot):
    """``Σ φ(v_j - v_i)`` over the pairs ``i`` before ``j`` of ``v = row[start:stop:step]``, in
    O(L log L) with a Fenwick tree over ``rank`` (dense ranks ``1..top`` of ``row``)."""
    for k in range(top + 1):
        cnt[k] = 0.0
        tot[k] = 0.0
    total = 0.0
    seen = 0.0
    seen_sum = 0.0
    for j in range(start, stop, step):
        x = row[j]
        rj = rank[j]
        upto = 0.0  # earlier values <= x, and their sum
        upto_sum = 0.0
        k = rj
        while k > 0:
            upto += cnt[k]
            upto_sum += tot[k]
            k -= k & -k
        above = seen - upto
        if code == EVENTS:
            total += above
        elif code == DEVIATIONS:  # Σ_{earlier v_i > x} (v_i - x)
            total += (seen_sum - upto_sum) - above * x
        else:  # earlier values < x minus earlier values > x
            below = 0.0
            k = rj - 1
            while k > 0:
                below += cnt[k]
                k -= k & -k
            total += below - above
        k = rj
        while k <= top:
            cnt[k] += 1.0
            tot[k] += x
            k += k & -k
        seen += 1.0
        seen_sum += x
    return total


@jit
def triple_value(p, code):
    """``Σ_{a<b<c} φ(x_ac - x_ab) + φ(x_ac - x_bc)`` of the position-ordered ``p`` (the unsigned
    criterion value) in O(n² log n). Row ``r`` is ranked once; the first arm sums over the pairs of
    ``p[r, r+1:]`` (``r`` = ``a``), the second over those of ``p[r, :r]`` read backwards (``r`` = ``c``,
    ``p`` symmetric)."""
    n = p.shape[0]
    rank = np.empty(n, np.int64)
    cnt = np.empty(n + 1)
    tot = np.empty(n + 1)
    total = 0.0
    for r in range(n):
        row = p[r]
        idx = np.argsort(row)
        top = 0
        for k in range(n):  # dense ranks 1..top, equal values share one
            if k == 0 or row[idx[k]] != row[idx[k - 1]]:
                top += 1
            rank[idx[k]] = top
        total += _arm_sum(row, rank, top, r + 1, n, 1, code, cnt, tot)
        total += _arm_sum(row, rank, top, r - 1, -1, -1, code, cnt, tot)
    return total
