"""The O(nnz), copy-free kernels on the large-graph path of ``seriate`` against reference builds."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from clss.seriation import seriate
from clss.seriation._sparse_kernels import (
    breadth_first,
    exactly_symmetric,
    max_asymmetry,
    permuted_laplacian,
    standard_aggregation,
    structural_degree,
)
from clss.seriation._validation import zero_diagonal
from clss.seriation.generators import knn_graph, noisy_curve
from clss.seriation.laplacian import component_labels, components_and_rcm, degrees
from clss.seriation.sparse_solvers import _Hierarchy, _unnormalized


def _random_graph(rng: np.random.Generator, n: int, m: int, *, symmetric: bool = True,
                  diagonal: bool = False) -> sp.csr_matrix:
    rows, cols = rng.integers(0, n, m), rng.integers(0, n, m)
    a = sp.csr_matrix((rng.uniform(0.1, 1.0, m), (rows, cols)), shape=(n, n))
    if symmetric:
        a = (a + a.T).tocsr()
    if not diagonal:
        a.setdiag(0.0)
        a.eliminate_zeros()
    a.sum_duplicates()
    return a


def _knn_reference(x: np.ndarray, k: int, weights: str) -> sp.csr_matrix:
    """The textbook construction: COO of the directed k-NN lists, then max(G, Gᵀ)."""
    n = x.shape[0]
    dist, idx = cKDTree(x).query(x, k=k + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]
    if weights == "local":
        s = dist[:, -1]
        w = np.exp(-(dist**2) / (s[:, None] * s[idx]))
    elif weights == "binary":
        w = np.ones_like(dist)
    else:
        w = np.exp(-((dist / np.median(dist[:, -1])) ** 2))
    g = sp.csr_matrix((w.ravel(), (np.repeat(np.arange(n), k), idx.ravel())), shape=(n, n))
    out = g.maximum(g.T).tocsr()
    out.sort_indices()
    return out


def _bfs_reference(a: sp.csr_matrix) -> np.ndarray:
    """Plain-Python breadth-first visit order, seeds in index order, neighbours in storage order."""
    seen = np.zeros(a.shape[0], dtype=bool)
    order: list[int] = []
    for s in range(a.shape[0]):
        if seen[s]:
            continue
        seen[s] = True
        queue = [s]
        while queue:
            i = queue.pop(0)
            order.append(i)
            for j in a.indices[a.indptr[i]:a.indptr[i + 1]]:
                if not seen[j]:
                    seen[j] = True
                    queue.append(int(j))
    return np.array(order, dtype=np.int64)


def _graph_cases():
    """Random graphs (mostly disconnected, with isolated nodes and stored diagonals), n = 1 and 2,
    and a path; each also with int64 indices."""
    rng = np.random.default_rng(7)
    cases = [sp.csr_matrix((1, 1)), sp.csr_matrix(np.eye(1)), sp.csr_matrix((2, 2)),
             sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 0.0]])),
             sp.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]])),
             sp.diags([np.ones(49), np.ones(49)], [-1, 1], format="csr")]
    for seed in range(12):
        n = int(rng.integers(3, 400))
        cases.append(_random_graph(rng, n, int(rng.integers(0, 2 * n)), diagonal=seed % 3 == 0))
    out = []
    for a in cases:
        out.append(a)
        out.append(sp.csr_matrix((a.data, a.indices.astype(np.int64), a.indptr.astype(np.int64)),
                                 shape=a.shape))
    return out


@pytest.mark.parametrize("a", _graph_cases())
def test_breadth_first_components_and_rcm_match_scipy(a):
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    n = a.shape[0]
    ref_count, ref_labels = connected_components(a, directed=False)
    none = np.empty(0)
    count, labels, order, ptr, _, _ = breadth_first(a.indptr, a.indices, np.arange(n),
                                                    np.empty(0, dtype=a.indices.dtype), a.data, none)
    assert ptr.size == 0
    assert count == ref_count
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_array_equal(order, _bfs_reference(a))
    got = component_labels(a)
    assert got[0] == ref_count and got[1].dtype == np.int64
    np.testing.assert_array_equal(got[1], ref_labels)
    d = degrees(a)
    for given in (None, d):
        count, labels, perm, lap = components_and_rcm(a, given)
        assert count == ref_count
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_array_equal(perm, reverse_cuthill_mckee(a, symmetric_mode=True))
        if given is None or count > 1:  # L is built only when asked, for a connected graph
            assert lap is None
            continue
        # bit for bit the renumbered Laplacian of the separate gather
        ptr, idx, val = permuted_laplacian(a.indptr, a.indices, a.data, d, perm)
        ref = sp.csr_matrix((val, idx, ptr), shape=a.shape)
        for got, want in zip((lap.indptr, lap.indices, lap.data),
                             (ref.indptr, ref.indices, ref.data), strict=True):
            assert got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
    # scipy's degree: stored entries, plus one for a stored diagonal
    ref_degree = np.diff(a.indptr) + (a.diagonal() != 0)
    np.testing.assert_array_equal(structural_degree(a.indptr, a.indices), ref_degree)


def test_breadth_first_on_a_knn_graph_matches_scipy_rcm():
    from scipy.sparse.csgraph import reverse_cuthill_mckee

    w = knn_graph(noisy_curve(30_000, noise=0.002, rng=1)[0])
    d = degrees(w)
    count, labels, perm, lap = components_and_rcm(w, d)
    assert count == 1 and not labels.any()
    np.testing.assert_array_equal(perm, reverse_cuthill_mckee(w, symmetric_mode=True))
    ref = (sp.diags(d) - w).tocsr()[perm][:, perm]
    assert lap.has_sorted_indices and abs(lap - ref).max() == 0


@pytest.mark.parametrize("seed", range(6))
def test_symmetry_kernels_match_dense_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    a = _random_graph(rng, n, 3 * n, diagonal=True)
    dense = a.toarray()
    same, top = exactly_symmetric(a.indptr, a.indices, a.data)
    assert same and top == np.abs(dense).max()
    b = _random_graph(rng, n, 3 * n, symmetric=False, diagonal=True)
    dense = b.toarray()
    dev, top = max_asymmetry(b.indptr, b.indices, b.data)
    assert dev == np.abs(dense - dense.T).max() and top == np.abs(dense).max()
    assert exactly_symmetric(b.indptr, b.indices, b.data)[0] == (dev == 0.0)


def test_one_ulp_asymmetry_is_found_and_judged_by_the_tolerance():
    a = _random_graph(np.random.default_rng(0), 500, 3000)
    p = int(np.flatnonzero(a.indices != np.repeat(np.arange(500), np.diff(a.indptr)))[0])
    a.data[p] = np.nextafter(a.data[p], 2.0)
    assert not exactly_symmetric(a.indptr, a.indices, a.data)[0]
    seriate(a)  # within the default tolerance 1e-8 + 1e-6 max|S|: accepted
    a.data[p] += 1e-3
    with pytest.raises(ValueError, match="not symmetric"):
        seriate(a)


@pytest.mark.parametrize("seed", range(4))
def test_permuted_laplacian_equals_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 80))
    w = _random_graph(rng, n, 4 * n, diagonal=seed % 2 == 1)  # a stored diagonal cancels in L
    d = degrees(w)
    perm = rng.permutation(n)
    indptr, indices, data = permuted_laplacian(w.indptr, w.indices, w.data, d, perm)
    got = sp.csr_matrix((data, indices, indptr), shape=(n, n))
    ref = (sp.diags(d) - w).tocsr()[perm][:, perm].toarray()
    np.testing.assert_allclose(got.toarray(), ref, rtol=0, atol=1e-12 * max(1.0, d.max()))
    assert indices.dtype == np.int32
    for i in range(n):  # rows sorted
        assert np.all(np.diff(indices[indptr[i]:indptr[i + 1]]) > 0)


@pytest.mark.parametrize("seed", range(4))
def test_standard_aggregation_equals_pyamg(seed):
    pyamg_aggregate = pytest.importorskip("pyamg.aggregation").standard_aggregation
    from pyamg.strength import symmetric_strength_of_connection

    rng = np.random.default_rng(seed)
    x, _ = noisy_curve(int(rng.integers(50, 2000)), noise=0.02, rng=seed)
    w = knn_graph(x, k=int(rng.integers(2, 8)))
    lap = _unnormalized(w, degrees(w))
    agg, count = standard_aggregation(lap.indptr, lap.indices)
    ref = pyamg_aggregate(symmetric_strength_of_connection(lap))[0].tocoo()
    expected = np.full(lap.shape[0], -1)
    expected[ref.row] = ref.col
    assert count == ref.shape[1]
    np.testing.assert_array_equal(agg, expected)


def test_hierarchy_first_level_equals_pyamg():
    """Same prolongator and Galerkin coarse matrix as PyAMG's smoothed aggregation (level 0)."""
    pyamg = pytest.importorskip("pyamg")
    x, _ = noisy_curve(20_000, noise=0.002, rng=0)
    w = knn_graph(x)
    lap = _unnormalized(w, degrees(w))
    ml = pyamg.smoothed_aggregation_solver(
        lap, B=np.ones((lap.shape[0], 1)), symmetry="hermitian", strength="symmetric",
        aggregate="standard", smooth=("jacobi", {"omega": 4.0 / 3.0, "weighting": "local"}),
        improve_candidates=None, max_coarse=500, max_levels=25, keep=False)
    hier = _Hierarchy(lap.copy(), singular=True)
    assert hier.sizes()[:2] == [lv.A.shape[0] for lv in ml.levels][:2]
    p_ref = sp.csr_matrix(ml.levels[0].P)
    assert abs(p_ref - hier.p[0]).max() <= 1e-12
    a1 = sp.csr_matrix(ml.levels[1].A)
    assert abs(a1 - hier.a[1]).max() <= 1e-12 * abs(a1).max()
    np.testing.assert_allclose(hier.null[1], ml.levels[1].B[:, 0], rtol=1e-14)


@pytest.mark.parametrize("weights", ["local", "binary", "gaussian"])
def test_knn_graph_equals_reference_construction(weights):
    x, _ = noisy_curve(3000, noise=0.01, rng=3)
    got = knn_graph(x, k=7, weights=weights)
    ref = _knn_reference(x, 7, weights)
    assert got.indices.dtype == np.int32
    np.testing.assert_array_equal(got.indptr, ref.indptr)
    np.testing.assert_array_equal(got.indices, ref.indices)
    np.testing.assert_array_equal(got.data, ref.data)


def test_knn_graph_of_duplicated_points_has_finite_weights():
    x = np.repeat(np.arange(40.0)[:, None], 3, axis=0)  # every point three times
    g = knn_graph(x, k=2)
    assert np.isfinite(g.data).all() and g.data.min() > 0


def test_zero_diagonal_copies_only_when_needed():
    w = _random_graph(np.random.default_rng(1), 100, 400)
    assert zero_diagonal(w) is w
    with_diag = w + sp.identity(100, format="csr")
    out = zero_diagonal(with_diag)
    assert out is not with_diag and not out.diagonal().any()
    np.testing.assert_array_equal(out.toarray(), w.toarray())
    explicit = w.copy()
    explicit.data[0] = 0.0
    assert zero_diagonal(explicit).nnz == w.nnz - 1


def test_int64_indices_give_the_same_order_as_int32():
    x, t = noisy_curve(30_000, noise=0.002, rng=0)
    w = knn_graph(x)
    w64 = sp.csr_matrix((w.data.copy(), w.indices.astype(np.int64), w.indptr.astype(np.int64)),
                        shape=w.shape)
    a, b = seriate(w), seriate(w64)
    assert a.solver == "multilevel" and a.converged and b.converged
    np.testing.assert_array_equal(a.order, b.order)
    from scipy.stats import kendalltau

    assert abs(kendalltau(a.positions, t)[0]) >= 0.997


@pytest.mark.parametrize("seed", range(4))
def test_permute_csr_and_anchored_system_equal_reference(seed):
    from clss.seriation.sparse_solvers import _anchored_system, _permute

    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 80))
    w = _random_graph(rng, n, 4 * n)
    perm = rng.permutation(n)
    got = _permute(w, perm)
    np.testing.assert_array_equal(got.toarray(), w.toarray()[np.ix_(perm, perm)])
    assert got.indices.dtype == np.int32 and got.has_sorted_indices
    is_anchor = rng.random(n) < 0.3
    is_anchor[0] = True
    y = np.where(is_anchor, rng.normal(size=n), 0.0)
    d = degrees(w)
    a, b, contact = _anchored_system(w, d, y, is_anchor)
    dense, u, an = w.toarray(), ~is_anchor, is_anchor
    ref = np.diag(d[u]) - dense[np.ix_(u, u)]
    np.testing.assert_allclose(a.toarray(), ref, rtol=1e-14, atol=1e-14 * d.max())
    np.testing.assert_allclose(b, dense[np.ix_(u, an)] @ y[an], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(contact, dense[np.ix_(u, an)].sum(axis=1), rtol=1e-12, atol=1e-14)
    assert a.has_sorted_indices


@pytest.mark.parametrize("m", [1, 2, 3])
def test_block_gauss_seidel_equals_pyamg_column_by_column(m):
    from pyamg.relaxation.relaxation import gauss_seidel

    from clss.seriation._sparse_kernels import symmetric_gauss_seidel

    rng = np.random.default_rng(m)
    w = _random_graph(rng, 400, 2000)
    lap = _unnormalized(w, degrees(w))
    b = rng.standard_normal((400, m))
    x = np.zeros((400, m))
    symmetric_gauss_seidel(lap.indptr, lap.indices, lap.data, x, b)
    for c in range(m):
        ref = np.zeros(400)
        gauss_seidel(lap, ref, b[:, c].copy(), iterations=1, sweep="symmetric")
        np.testing.assert_allclose(x[:, c], ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


def test_orient_without_sorting_equals_the_stable_order_rule():
    """``orient`` finds the ends of the stable order by argmin/argmax; ties, ±inf and NaN included."""
    from clss.seriation.spectral import orient, stable_order

    rng = np.random.default_rng(3)
    for _ in range(3000):
        n = int(rng.integers(1, 9))
        x = rng.integers(-2, 3, n).astype(np.float64)
        x[rng.random(n) < 0.1] = np.inf
        x[rng.random(n) < 0.1] = np.nan
        items = np.sort(rng.choice(40, n, replace=False)) if rng.random() < 0.5 else rng.permutation(n)
        order = stable_order(x)
        want = x if items[order[0]] < items[order[-1]] else -x
        np.testing.assert_array_equal(orient(x, items), want)


def test_locality_from_the_component_search_gives_the_same_solve():
    """``components_and_locality`` hands ``fiedler_sparse`` what it would build itself (bit for bit);
    a disconnected graph or a direct route gets none."""
    from clss.seriation.sparse_solvers import components_and_locality, fiedler_sparse

    w = knn_graph(noisy_curve(25_000, noise=0.002, rng=2)[0])
    d = degrees(w)
    count, labels, locality = components_and_locality(w, d, "auto")
    assert count == 1 and not labels.any() and locality is not None
    for kind in ("unnormalized", "symmetric"):
        a = fiedler_sparse(w, laplacian=kind)
        b = fiedler_sparse(w, laplacian=kind, locality=locality)
        np.testing.assert_array_equal(a.vectors, b.vectors)
        np.testing.assert_array_equal(a.values, b.values)
    assert components_and_locality(w, d, "shift-invert")[2] is None
    two = sp.block_diag([w, w], format="csr")
    count, labels, locality = components_and_locality(two, degrees(two), "multilevel")
    assert count == 2 and locality is None
    np.testing.assert_array_equal(labels, np.repeat([0, 1], w.shape[0]))
