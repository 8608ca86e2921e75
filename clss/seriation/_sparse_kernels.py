"""numba kernels for O(nnz) passes over large CSR similarity graphs (private).

At n = 1e7 a k-NN graph holds ~1.3e8 entries and every CSR copy costs ~1.5 GB, so the checks and
transforms on the path to the sparse eigensolver read the arrays in place instead of building
transposes, differences or COO row arrays. Every kernel takes the raw ``indptr``/``indices``/``data``
of a CSR matrix with sorted, duplicate-free column indices in each row.
"""

from __future__ import annotations

import numpy as np

from clss._jit import jit

# Breadth-first search prefetches the rows this many places ahead in its queue (and their
# neighbours' state half as far, their row pointers twice as far): its reads land at random.
_AHEAD = 8


def _define_prefetch():
    """``prefetch(a, i)``: hint the CPU to load ``a[i]`` into cache (``llvm.prefetch``, no fault,
    no bounds check); a no-op under ``NUMBA_DISABLE_JIT=1``.

    A search that reads rows in random order waits on one cache miss after another; hinting the
    rows and states it will read a few queue places ahead lets those misses overlap.
    """
    import numba

    if numba.config.DISABLE_JIT:
        def prefetch(a, i):
            return None

        return prefetch

    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def prefetch(typingctx, a, i):
        if not isinstance(a, types.Array) or not isinstance(i, types.Integer):
            return None

        def codegen(context, builder, signature, args):
            arr = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = cgutils.get_item_pointer(context, builder, signature.args[0], arr, [args[1]],
                                           wraparound=False)
            i32 = ir.IntType(32)
            i8p = ir.IntType(8).as_pointer()
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                "llvm.prefetch.p0")
            # read access, high temporal locality, data cache
            builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
            return context.get_dummy_value()

        return types.void(a, i), codegen

    return prefetch


prefetch = _define_prefetch()


@jit
def _mix(z):
    """splitmix64 finaliser: a bijective avalanche mix of a 64-bit word."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@jit
def exactly_symmetric(indptr, indices, data):
    """Whether ``A == Aᵀ`` entry for entry, by one sequential pass; also returns ``max |a_ij|``.

    Sums a 64-bit hash of every stored ``(i, j, bits(a_ij))`` and of its mirror ``(j, i, bits)``;
    the sums agree for a symmetric matrix and differ otherwise except with probability ~2^-64. It
    reads the arrays in order, where :func:`max_asymmetry` looks up each mirror entry at a random
    place (at n = 3e6 with k = 10: 32 s against a few seconds, measured under load), so it is the
    fast path; an unequal sum sends the caller to the exact check.
    """
    n = indptr.shape[0] - 1
    bits = data.view(np.uint64)
    fwd = np.uint64(0)
    bwd = np.uint64(0)
    top = 0.0
    big = np.uint64(0x9E3779B97F4A7C15)
    for i in range(n):
        ui = np.uint64(i)
        for p in range(indptr[i], indptr[i + 1]):
            uj = np.uint64(indices[p])
            v = np.uint64(bits[p])
            fwd += _mix(_mix(ui * big + uj) ^ v)
            bwd += _mix(_mix(uj * big + ui) ^ v)
            if abs(data[p]) > top:
                top = abs(data[p])
    return fwd == bwd, top


@jit
def max_asymmetry(indptr, indices, data):
    """``(max |a_ij - a_ji|, max |a_ij|)`` over the stored entries, without forming ``Aᵀ``.

    ``a_ji`` is found by binary search in row ``j``; an absent entry counts as 0, so every asymmetric
    pair is seen from the side that stores it.
    """
    n = indptr.shape[0] - 1
    dev = 0.0
    top = 0.0
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = data[p]
            if abs(v) > top:
                top = abs(v)
            lo = indptr[j]
            hi = indptr[j + 1]
            while lo < hi:
                mid = (lo + hi) // 2
                if indices[mid] < i:
                    lo = mid + 1
                else:
                    hi = mid
            other = data[lo] if lo < indptr[j + 1] and indices[lo] == i else 0.0
            diff = abs(v - other)
            if diff > dev:
                dev = diff
    return dev, top


@jit
def structural_degree(indptr, indices):
    """Stored entries per row, plus one when the diagonal is stored (scipy's RCM degree), in the
    dtype of ``indices``."""
    n = indptr.shape[0] - 1
    degree = np.empty(n, dtype=indices.dtype)
    for i in range(n):
        count = indptr[i + 1] - indptr[i]
        for p in range(indptr[i], indptr[i + 1]):
            if indices[p] == i:
                count += 1
                break
        degree[i] = count
    return degree


@jit
def breadth_first(indptr, indices, seeds, degree, data, weighted_degree):
    """Connected components and a breadth-first visit order of a symmetric CSR graph, in one search;
    optionally ``L = D - W`` in the reversed visit order, built from the rows the search reads.

    A search starts from each seed not yet reached, in the order of ``seeds`` (a permutation of the
    nodes). With an empty ``degree`` neighbours are visited in storage order; otherwise the nodes
    first reached from the same node are visited in order of increasing ``degree`` (stable), which
    is Cuthill–McKee: with ``degree`` from :func:`structural_degree` and ``seeds =
    np.argsort(degree)`` the reversed visit order equals scipy's ``reverse_cuthill_mckee`` (symmetric
    mode) node for node. Labels are numbered in order of each component's smallest item index, as
    ``scipy.sparse.csgraph.connected_components`` numbers them.

    With a non-empty ``weighted_degree`` (``d``, the row sums of ``data``; needs ``degree``) the
    CSR arrays of ``P (D - W) Pᵀ`` for the reversed order ``perm`` are built as well, equal to
    those of :func:`permuted_laplacian`: once a node's row is read, all its neighbours have their
    place, so its row of ``L`` is written then, filling the arrays from the end. That saves a second
    pass of random row reads; it is done for a connected graph only (at a second component the
    building stops and empty arrays are returned, as the caller then splits the graph).

    Returns ``(count, labels int64 (n,), visit order int64 (n,), L indptr int64, L indices int32,
    L data float64)``.
    """
    n = indptr.shape[0] - 1
    by_degree = degree.shape[0] > 0
    build = weighted_degree.shape[0] > 0
    # state[j] is -1 - degree (-1 without degrees) until j is reached, then its place in the visit
    # order: one random word per neighbour serves the visited test, the sort key and L's column.
    state = np.empty(n, dtype=indices.dtype)
    widest = 0
    stored_diag = 0
    for i in range(n):
        length = indptr[i + 1] - indptr[i]
        widest = max(widest, length)
        if by_degree:
            state[i] = -1 - degree[i]
            stored_diag += degree[i] - length
        else:
            state[i] = -1
    key = np.empty(widest, dtype=np.int64)  # degrees of the nodes a row reaches first, sorted
    order = np.empty(n, dtype=np.int64)
    total = indptr[n] - stored_diag + n if build else 0
    out_ptr = np.empty(n + 1 if build else 0, dtype=np.int64)
    out_idx = np.empty(total, dtype=np.int32)
    out_val = np.empty(total, dtype=np.float64)
    end = total
    starts = np.empty(n + 1, dtype=np.int64)
    count = 0
    tail = 0
    for s in range(n):
        if tail == n:
            break
        seed = seeds[s]
        if state[seed] >= 0:
            continue
        if count > 0 and build:
            build = False
            out_ptr = np.empty(0, dtype=np.int64)
            out_idx = np.empty(0, dtype=np.int32)
            out_val = np.empty(0, dtype=np.float64)
        starts[count] = tail
        state[seed] = tail
        order[tail] = seed
        tail += 1
        head = tail - 1
        # A FIFO queue in ``order`` itself: processing node by node visits the levels in turn.
        while head < tail:
            i = order[head]
            head += 1
            if head + 2 * _AHEAD < tail:
                prefetch(indptr, order[head + 2 * _AHEAD])
            if head + _AHEAD < tail:
                v = order[head + _AHEAD]
                prefetch(indices, indptr[v])
                if build:
                    prefetch(data, indptr[v])
                    prefetch(data, indptr[v] + 8)
                    prefetch(weighted_degree, v)
            if head + _AHEAD // 2 < tail:
                v = order[head + _AHEAD // 2]
                for p in range(indptr[v], indptr[v + 1]):
                    prefetch(state, indices[p])
            first = tail
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                sj = state[j]
                if sj >= 0:
                    continue
                state[j] = n  # reached; its place is set once the row is sorted
                b = tail
                if by_degree:  # stable insertion by degree as the nodes arrive
                    dj = -1 - sj
                    while b > first and key[b - 1 - first] > dj:
                        order[b] = order[b - 1]
                        key[b - first] = key[b - 1 - first]
                        b -= 1
                    key[b - first] = dj
                order[b] = j
                tail += 1
            for a in range(first, tail):
                state[order[a]] = a
            if build:
                # row n - head of L (node i, visited at head - 1), written below the rows after it
                row = n - head
                size = indptr[i + 1] - indptr[i] + 1
                for p in range(indptr[i], indptr[i + 1]):
                    if indices[p] == i:
                        size -= 1
                q0 = end - size
                out_ptr[row] = q0
                end = q0
                out_idx[q0] = row
                diag = weighted_degree[i]
                q = q0 + 1
                for p in range(indptr[i], indptr[i + 1]):
                    j = indices[p]
                    if j == i:
                        diag -= data[p]
                        continue
                    _insert_sorted(out_idx, out_val, q0, q, n - 1 - state[j], -data[p])
                    q += 1
                for t in range(q0, q):
                    if out_idx[t] == row:
                        out_val[t] = diag
        count += 1
    if build:
        out_ptr[n] = total
    labels = np.zeros(n, dtype=np.int64)
    if count > 1:
        starts[count] = n
        for c in range(count):
            for a in range(starts[c], starts[c + 1]):
                labels[order[a]] = c
        # Components were numbered in seed order; renumber them by smallest item index.
        rank = np.full(count, -1, dtype=np.int64)
        nxt = 0
        for i in range(n):
            c = labels[i]
            if rank[c] < 0:
                rank[c] = nxt
                nxt += 1
            labels[i] = rank[c]
    return count, labels, order, out_ptr, out_idx, out_val


@jit
def _insert_sorted(out_idx, out_val, q0, q, c, v):
    """Insert column ``c`` (value ``v``) into the sorted row slice ``[q0, q)``, growing it by one:
    rows are short (k-NN degree), so insertion sort beats a sort per row."""
    s = q
    while s > q0 and out_idx[s - 1] > c:
        out_idx[s] = out_idx[s - 1]
        out_val[s] = out_val[s - 1]
        s -= 1
    out_idx[s] = c
    out_val[s] = v


@jit
def permuted_laplacian(indptr, indices, data, degree, perm):
    """CSR arrays of ``P (D - W) Pᵀ`` (row ``i`` is old row ``perm[i]``), sorted, in one gather.

    A stored diagonal ``w_ii`` is folded into ``L_ii = d_i - w_ii``. Returns ``(indptr int64 (n+1,),
    indices int32, data float64)``; rows are short (k-NN graphs), so each is insertion-sorted.
    """
    n = perm.shape[0]
    inv = np.empty(n, dtype=np.int32)
    for i in range(n):
        inv[perm[i]] = i
    out_ptr = np.empty(n + 1, dtype=np.int64)
    out_ptr[0] = 0
    for i in range(n):
        r = perm[i]
        off = 0
        for p in range(indptr[r], indptr[r + 1]):
            if indices[p] != r:
                off += 1
        out_ptr[i + 1] = out_ptr[i] + off + 1
    out_idx = np.empty(out_ptr[n], dtype=np.int32)
    out_val = np.empty(out_ptr[n], dtype=np.float64)
    for i in range(n):
        r = perm[i]
        q0 = out_ptr[i]
        out_idx[q0] = i
        diag = degree[r]
        q = q0 + 1
        for p in range(indptr[r], indptr[r + 1]):
            if indices[p] == r:
                diag -= data[p]
                continue
            _insert_sorted(out_idx, out_val, q0, q, inv[indices[p]], -data[p])
            q += 1
        for s in range(q0, q):
            if out_idx[s] == i:
                out_val[s] = diag
    return out_ptr, out_idx, out_val


@jit
def standard_aggregation(indptr, indices):
    """Standard (Vaněk–Mandel–Brezina) aggregation of the graph of a symmetric CSR matrix.

    Pass 1 makes an aggregate of every node whose neighbours are all free, together with them;
    pass 2 attaches each remaining node to a neighbouring pass-1 aggregate; pass 3 groups what is
    left with its free neighbours. The diagonal is ignored; a node without neighbours gets -1.
    Identical to PyAMG's ``standard_aggregation`` (checked in the tests) on the full strength graph,
    without its copies of the matrix. Returns ``(aggregate id int32 (n,), number of aggregates)``.
    """
    n = indptr.shape[0] - 1
    x = np.zeros(n, dtype=np.int64)  # 0 free, k > 0 pass-1 aggregate k - 1, -k attached to it
    isolated = -n - 1
    nxt = 1
    for i in range(n):
        if x[i] != 0:
            continue
        has_nb = False
        busy = False
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j != i:
                has_nb = True
                if x[j] != 0:
                    busy = True
                    break
        if not has_nb:
            x[i] = isolated
        elif not busy:
            x[i] = nxt
            for p in range(indptr[i], indptr[i + 1]):
                x[indices[p]] = nxt
            nxt += 1
    for i in range(n):
        if x[i] != 0:
            continue
        for p in range(indptr[i], indptr[i + 1]):
            xj = x[indices[p]]
            if xj > 0:
                x[i] = -xj
                break
    agg = np.empty(n, dtype=np.int32)
    count = nxt - 1
    for i in range(n):
        xi = x[i]
        if xi == isolated:
            agg[i] = -1
        elif xi > 0:
            agg[i] = xi - 1
        elif xi < 0:
            agg[i] = -xi - 1
        else:
            agg[i] = -2  # pass 3 below
    for i in range(n):
        if agg[i] != -2:
            continue
        agg[i] = count
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if agg[j] == -2:
                agg[j] = count
        count += 1
    return agg, count


@jit
def smoothed_prolongator(indptr, indices, data, agg, nagg, b, omega):
    """Smoothed-aggregation prolongator ``P = (I - ω D⁻¹ A) T`` for one near-null vector ``b``.

    ``T[i, agg[i]] = b_i / ‖b_agg[i]‖`` is the tentative prolongator (its columns orthonormal) and
    ``D_ii = Σ_j |a_ij|`` the Gershgorin ("local") weight, so ``ω D⁻¹ A`` needs no spectral-radius
    estimate. Row ``i`` of ``P`` lives on the aggregates of ``i`` and its neighbours. Returns
    ``(indptr int64, indices int32, data, coarse near-null vector ‖b_agg‖ (nagg,))``.
    """
    n = indptr.shape[0] - 1
    norm = np.zeros(nagg, dtype=np.float64)
    for i in range(n):
        norm[agg[i]] += b[i] * b[i]
    for c in range(nagg):
        norm[c] = np.sqrt(norm[c])
    t = np.empty(n, dtype=np.float64)
    for i in range(n):
        t[i] = b[i] / norm[agg[i]] if norm[agg[i]] > 0 else 0.0
    mark = np.full(nagg, -1, dtype=np.int64)
    ptr = np.empty(n + 1, dtype=np.int64)
    ptr[0] = 0
    for i in range(n):
        cnt = 1
        mark[agg[i]] = i
        for p in range(indptr[i], indptr[i + 1]):
            c = agg[indices[p]]
            if mark[c] != i:
                mark[c] = i
                cnt += 1
        ptr[i + 1] = ptr[i] + cnt
    out_idx = np.empty(ptr[n], dtype=np.int32)
    out_val = np.empty(ptr[n], dtype=np.float64)
    pos = np.empty(nagg, dtype=np.int64)
    mark[:] = -1
    for i in range(n):
        dsum = 0.0
        for p in range(indptr[i], indptr[i + 1]):
            dsum += abs(data[p])
        scale = omega / dsum if dsum > 0 else 0.0
        q = ptr[i]
        c = agg[i]
        mark[c] = i
        pos[c] = q
        out_idx[q] = c
        out_val[q] = t[i]
        q += 1
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            c = agg[j]
            if mark[c] != i:
                mark[c] = i
                pos[c] = q
                out_idx[q] = c
                out_val[q] = 0.0
                q += 1
            out_val[pos[c]] -= scale * data[p] * t[j]
    return ptr, out_idx, out_val, norm


@jit
def symmetric_max_csr(idx, wt, n):
    """CSR arrays of ``max(G, Gᵀ)`` for the directed k-NN graph ``G[i, idx[i, c]] = wt[i, c]``.

    ``idx``: ``(n, k)`` neighbour ids (no self, no repeats within a row), ``wt``: their weights.
    Each row merges its own list with the incoming edges (a counting-sort transpose), taking the
    larger weight of a pair stored in both directions; rows come out sorted. Returns
    ``(indptr int64, indices int32, data float64)`` without any COO or transposed CSR copy.
    """
    k = idx.shape[1]
    in_ptr = np.zeros(n + 1, dtype=np.int64)
    for i in range(n):
        for c in range(k):
            in_ptr[idx[i, c] + 1] += 1
    for i in range(n):
        in_ptr[i + 1] += in_ptr[i]
    fill = in_ptr[:-1].copy()
    in_src = np.empty(n * k, dtype=np.int32)
    in_w = np.empty(n * k, dtype=wt.dtype)
    for i in range(n):
        for c in range(k):
            j = idx[i, c]
            in_src[fill[j]] = i
            in_w[fill[j]] = wt[i, c]
            fill[j] += 1
    mark = np.full(n, -1, dtype=np.int64)
    ptr = np.empty(n + 1, dtype=np.int64)
    ptr[0] = 0
    for i in range(n):
        cnt = k
        for c in range(k):
            mark[idx[i, c]] = i
        for p in range(in_ptr[i], in_ptr[i + 1]):
            if mark[in_src[p]] != i:
                cnt += 1
        ptr[i + 1] = ptr[i] + cnt
    out_idx = np.empty(ptr[n], dtype=np.int32)
    out_val = np.empty(ptr[n], dtype=np.float64)
    slot = np.empty(n, dtype=np.int64)
    for i in range(n):
        q0 = ptr[i]
        q = q0
        for c in range(k):
            j = idx[i, c]
            out_idx[q] = j
            out_val[q] = wt[i, c]
            slot[j] = q
            mark[j] = -2 - i
            q += 1
        for p in range(in_ptr[i], in_ptr[i + 1]):
            j = in_src[p]
            if mark[j] == -2 - i:
                if in_w[p] > out_val[slot[j]]:
                    out_val[slot[j]] = in_w[p]
            else:
                out_idx[q] = j
                out_val[q] = in_w[p]
                q += 1
        for a in range(q0 + 1, q):  # insertion sort of the short row by column
            cj = out_idx[a]
            cv = out_val[a]
            b = a
            while b > q0 and out_idx[b - 1] > cj:
                out_idx[b] = out_idx[b - 1]
                out_val[b] = out_val[b - 1]
                b -= 1
            out_idx[b] = cj
            out_val[b] = cv
    return ptr, out_idx, out_val


@jit
def permute_csr(indptr, indices, data, perm):
    """CSR arrays of ``A[perm][:, perm]``, rows sorted, int32 indices, in one gather."""
    n = perm.shape[0]
    inv = np.empty(n, dtype=np.int32)
    for i in range(n):
        inv[perm[i]] = i
    out_ptr = np.empty(n + 1, dtype=np.int64)
    out_ptr[0] = 0
    for i in range(n):
        out_ptr[i + 1] = out_ptr[i] + indptr[perm[i] + 1] - indptr[perm[i]]
    out_idx = np.empty(out_ptr[n], dtype=np.int32)
    out_val = np.empty(out_ptr[n], dtype=data.dtype)
    for i in range(n):
        r = perm[i]
        q0 = out_ptr[i]
        q = q0
        for p in range(indptr[r], indptr[r + 1]):
            _insert_sorted(out_idx, out_val, q0, q, inv[indices[p]], data[p])
            q += 1
    return out_ptr, out_idx, out_val


@jit
def anchored_laplacian(indptr, indices, data, degree, is_anchor, anchor_value):
    """``L_uu`` (CSR arrays), ``b = W_ul y_l`` and the contact ``W_ul 1`` of the unanchored items,
    in one pass over their rows of ``W`` (no row-sliced copy of ``W``, no COO row array).

    ``L_uu = D_u - W_uu`` with degrees over all columns; the unknowns keep their relative order, so
    rows come out sorted when those of ``W`` are. Returns ``(indptr int64, indices int32, data, b,
    contact)``.
    """
    n = indptr.shape[0] - 1
    local = np.full(n, -1, dtype=np.int64)
    u = 0
    for i in range(n):
        if not is_anchor[i]:
            local[i] = u
            u += 1
    ptr = np.empty(u + 1, dtype=np.int64)
    ptr[0] = 0
    for i in range(n):
        if is_anchor[i]:
            continue
        cnt = 1
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if not is_anchor[j] and j != i:
                cnt += 1
        ptr[local[i] + 1] = ptr[local[i]] + cnt
    out_idx = np.empty(ptr[u], dtype=np.int32)
    out_val = np.empty(ptr[u], dtype=np.float64)
    b = np.zeros(u, dtype=np.float64)
    contact = np.zeros(u, dtype=np.float64)
    for i in range(n):
        if is_anchor[i]:
            continue
        li = local[i]
        q = ptr[li]
        at = -1  # slot of the diagonal, placed before the first column above i
        diag = degree[i]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            if j == i:
                diag -= data[p]
            elif is_anchor[j]:
                b[li] += data[p] * anchor_value[j]
                contact[li] += data[p]
            else:
                if at < 0 and j > i:
                    at = q
                    q += 1
                out_idx[q] = local[j]
                out_val[q] = -data[p]
                q += 1
        if at < 0:
            at = q
        out_idx[at] = li
        out_val[at] = diag
    return ptr, out_idx, out_val, b, contact


@jit
def _gs_sweep(indptr, indices, data, x, b, start, stop, step):
    """Gauss–Seidel over rows ``start, start + step, ...`` (blocks of one or two columns unrolled)."""
    m = x.shape[1]
    acc = np.empty(m, dtype=np.float64)
    for i in range(start, stop, step):
        diag = 0.0
        if m == 2:
            s0 = b[i, 0]
            s1 = b[i, 1]
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                v = data[p]
                if j == i:
                    diag += v
                else:
                    s0 -= v * x[j, 0]
                    s1 -= v * x[j, 1]
            if diag != 0.0:
                x[i, 0] = s0 / diag
                x[i, 1] = s1 / diag
            continue
        if m == 1:
            s0 = b[i, 0]
            for p in range(indptr[i], indptr[i + 1]):
                j = indices[p]
                v = data[p]
                if j == i:
                    diag += v
                else:
                    s0 -= v * x[j, 0]
            if diag != 0.0:
                x[i, 0] = s0 / diag
            continue
        for c in range(m):
            acc[c] = b[i, c]
        for p in range(indptr[i], indptr[i + 1]):
            j = indices[p]
            v = data[p]
            if j == i:
                diag += v
            else:
                for c in range(m):
                    acc[c] -= v * x[j, c]
        if diag != 0.0:
            for c in range(m):
                x[i, c] = acc[c] / diag


@jit
def symmetric_gauss_seidel(indptr, indices, data, x, b):
    """One symmetric Gauss–Seidel sweep (forward, then backward) on ``A X = B`` in place.

    ``x``, ``b``: C-contiguous ``(n, m)`` blocks; all ``m`` columns are relaxed in the same pass
    over ``A`` (one read of the matrix for the two-column Fiedler block instead of two). Rows with
    a zero diagonal are left unchanged, as in PyAMG's kernel.
    """
    n = indptr.shape[0] - 1
    _gs_sweep(indptr, indices, data, x, b, 0, n, 1)
    _gs_sweep(indptr, indices, data, x, b, n - 1, -1, -1)
