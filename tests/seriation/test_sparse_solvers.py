"""Tests of the sparse Fiedler and harmonic solvers (clss.seriation.sparse_solvers).

References are dense LAPACK (``scipy.linalg.eigh`` / ``numpy.linalg.solve``) on graphs small enough
to densify, closed forms on path graphs, and the exact shift-invert route on larger k-NN graphs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
from scipy.stats import kendalltau
from threadpoolctl import threadpool_limits

from clss.seriation import sparse_solvers as ss
from clss.seriation.generators import knn_graph, noisy_curve
from clss.seriation.laplacian import laplacian
from clss.seriation.sparse_solvers import fiedler_sparse, harmonic_sparse

EIG_METHODS = ("shift-invert", "lobpcg-amg", "multilevel")


@pytest.fixture(autouse=True)
def _serial_blas() -> Iterator[None]:
    # Dense reference solves with a threaded BLAS crawl when the other core is busy (shared CI).
    with threadpool_limits(limits=1, user_api="blas"):
        yield
KINDS = ("unnormalized", "symmetric")


def path_graph(n: int) -> sp.csr_matrix:
    off = np.ones(n - 1)
    return sp.diags([off, off], [-1, 1], format="csr")


def random_graph(n: int, degree: float, seed: int) -> sp.csr_matrix:
    """Connected Erdős–Rényi graph (plus a random Hamiltonian path) with weights in [0.1, 1]."""
    rng = np.random.default_rng(seed)
    m = int(n * degree / 2)
    rows, cols = rng.integers(0, n, m), rng.integers(0, n, m)
    order = rng.permutation(n)
    rows = np.concatenate([rows, order[:-1]])
    cols = np.concatenate([cols, order[1:]])
    keep = rows != cols
    w = sp.csr_matrix((rng.uniform(0.1, 1.0, keep.sum()), (rows[keep], cols[keep])), shape=(n, n))
    w = w.maximum(w.T).tocsr()
    w.sum_duplicates()
    return w


def curve_graph(n: int, seed: int = 0, noise: float = 0.01) -> tuple[sp.csr_matrix, np.ndarray]:
    x, t = noisy_curve(n, noise=noise, dim=3, rng=seed)
    return knn_graph(x, k=10, weights="local"), t


def dense_pairs(w: sp.csr_matrix, kind: str, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    lap = np.asarray(laplacian(w.toarray(), kind))
    return sl.eigh(lap, subset_by_index=[0, k - 1])


def vector_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Distance between two unit vectors up to sign."""
    return float(min(np.linalg.norm(a - b), np.linalg.norm(a + b)))


def abs_tau(v: np.ndarray, t: np.ndarray) -> float:
    return abs(float(kendalltau(v, t)[0]))


# --------------------------------------------------------------------------------------------------
# Fiedler solvers
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", EIG_METHODS)
def test_path_graph_closed_form(method: str) -> None:
    n = 2000
    sol = fiedler_sparse(path_graph(n), k=3, method=method, tol=1e-10)
    exact = 2.0 - 2.0 * np.cos(np.pi * np.arange(3) / n)
    assert sol.converged
    assert sol.solver == method
    np.testing.assert_allclose(sol.values, exact, rtol=1e-7, atol=1e-13)
    fied = np.cos(np.pi * (np.arange(n) + 0.5) / n)
    assert vector_gap(sol.vectors[:, 1], fied / np.linalg.norm(fied)) < 1e-4
    assert np.all(sol.info["rel_residuals"] <= 1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", EIG_METHODS)
def test_random_graph_matches_dense(method: str, kind: str) -> None:
    w = random_graph(1500, degree=8, seed=3)
    ref_vals, ref_vecs = dense_pairs(w, kind)
    sol = fiedler_sparse(w, k=3, laplacian=kind, method=method, tol=1e-10)
    assert sol.converged
    np.testing.assert_allclose(sol.values, ref_vals, rtol=1e-8, atol=1e-12)
    for j in (1, 2):
        assert vector_gap(sol.vectors[:, j], ref_vecs[:, j]) < 1e-6
    np.testing.assert_allclose(sol.vectors.T @ sol.vectors, np.eye(3), atol=1e-8)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", EIG_METHODS)
def test_knn_curve_graph_matches_dense(method: str, kind: str) -> None:
    w, _ = curve_graph(1500, seed=1)
    ref_vals, ref_vecs = dense_pairs(w, kind)
    sol = fiedler_sparse(w, k=3, laplacian=kind, method=method, tol=1e-10)
    assert sol.converged
    np.testing.assert_allclose(sol.values, ref_vals, rtol=1e-6, atol=1e-13)
    assert vector_gap(sol.vectors[:, 1], ref_vecs[:, 1]) < 1e-4
    # Residuals are reported on the original operator, not taken from the solver.
    lap = np.asarray(laplacian(w.toarray(), kind))
    res = np.linalg.norm(lap @ sol.vectors - sol.vectors * sol.values, axis=0)
    np.testing.assert_allclose(sol.residuals, res, rtol=1e-6, atol=1e-15)


@pytest.mark.parametrize("n", [2000, 5000])
def test_multilevel_reaches_tolerance_and_order_quality(n: int) -> None:
    w, t = curve_graph(n, seed=2)
    ref = fiedler_sparse(w, k=3, method="shift-invert")
    sol = fiedler_sparse(w, k=3, method="multilevel", tol=1e-8)
    assert sol.converged and sol.solver == "multilevel"
    assert np.all(sol.info["rel_residuals"] <= 1e-8)
    assert sol.info["angle_bound"] < 0.05
    assert abs(abs_tau(sol.vectors[:, 1], t) - abs_tau(ref.vectors[:, 1], t)) < 1e-3
    assert abs_tau(sol.vectors[:, 1], t) > 0.95
    np.testing.assert_allclose(sol.values[1:], ref.values[1:], rtol=1e-4)


def test_locality_reordering_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The RCM-renumbered route (used from 20 000 nodes on) gives the same answer."""
    w, _ = curve_graph(3000, seed=4)
    ref = fiedler_sparse(w, k=3, method="shift-invert")
    monkeypatch.setattr(ss, "_REORDER_MIN", 100)
    for method in ("multilevel", "lobpcg-amg"):
        sol = fiedler_sparse(w, k=3, method=method, tol=1e-10)
        assert sol.info["reordered"] and sol.converged
        assert vector_gap(sol.vectors[:, 1], ref.vectors[:, 1]) < 1e-4


def test_permute_matches_fancy_indexing() -> None:
    w = random_graph(300, degree=6, seed=5)
    perm = np.random.default_rng(0).permutation(300)
    np.testing.assert_array_equal(ss._permute(w, perm).toarray(), w[perm][:, perm].toarray())


@pytest.mark.parametrize("method", ["multilevel", "lobpcg-amg"])
def test_unconverged_iterative_runs_are_flagged(method: str) -> None:
    w, _ = curve_graph(3000, seed=6)
    sol = fiedler_sparse(w, k=3, method=method, tol=1e-12, maxiter=1)
    assert not sol.converged
    assert np.max(sol.info["rel_residuals"]) > 1e-12
    assert sol.iterations <= 1


def test_unattainable_tolerance_is_flagged_for_shift_invert() -> None:
    w, _ = curve_graph(1000, seed=6)
    sol = fiedler_sparse(w, k=3, method="shift-invert", tol=1e-30, maxiter=1)
    assert not sol.converged
    assert np.all(np.isfinite(sol.residuals))


def test_auto_policy_and_dense_handover() -> None:
    small, _ = curve_graph(40, seed=0)
    assert fiedler_sparse(small, method="multilevel").solver == "dense-evr"
    mid, _ = curve_graph(2000, seed=0)
    assert fiedler_sparse(mid).solver == "shift-invert"
    assert ss.SHIFT_INVERT_MAX < 10**6


@pytest.mark.parametrize("method", EIG_METHODS)
def test_deterministic_and_sign_convention(method: str) -> None:
    w, _ = curve_graph(2500, seed=7)
    a = fiedler_sparse(w, method=method, seed=3)
    b = fiedler_sparse(w, method=method, seed=3)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.values, b.values)
    idx = np.argmax(np.abs(a.vectors), axis=0)
    assert np.all(a.vectors[idx, np.arange(3)] > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_null_vector_and_small_k(kind: str) -> None:
    w, _ = curve_graph(1200, seed=8)
    d = np.asarray(w.sum(axis=1)).ravel()
    null = np.ones(1200) if kind == "unnormalized" else np.sqrt(d)
    one = fiedler_sparse(w, k=1, laplacian=kind)
    assert one.vectors.shape == (1200, 1) and one.converged
    assert vector_gap(one.vectors[:, 0], null / np.linalg.norm(null)) < 1e-12
    two = fiedler_sparse(w, k=2, laplacian=kind, method="multilevel")
    ref_vals, _ = dense_pairs(w, kind, k=2)
    assert two.vectors.shape == (1200, 2) and two.converged
    np.testing.assert_allclose(two.values, ref_vals, rtol=1e-6, atol=1e-13)
    assert np.isnan(two.info["angle_bound"])


def test_more_eigenpairs() -> None:
    w = random_graph(1000, degree=10, seed=9)
    ref_vals, _ = dense_pairs(w, "unnormalized", k=6)
    for method in EIG_METHODS:
        sol = fiedler_sparse(w, k=6, method=method, tol=1e-10)
        assert sol.converged
        np.testing.assert_allclose(sol.values, ref_vals, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_multilevel_without_usable_coarse_level(kind: str) -> None:
    """A dense graph aggregates to a 1-node coarse level: random start, exact coarse pseudo-inverse."""
    w = random_graph(600, degree=100, seed=1)
    sol = fiedler_sparse(w, k=3, laplacian=kind, method="multilevel", tol=1e-10)
    assert sol.info["levels"][-1] < 12 and sol.info["start_level"] == 0
    assert sol.converged
    np.testing.assert_allclose(sol.values, dense_pairs(w, kind)[0], rtol=1e-9, atol=1e-12)


def test_lobpcg_completes_rank_deficient_start() -> None:
    n = 400
    lap = sp.csr_matrix(laplacian(path_graph(n), "unnormalized"))
    null = np.full(n, 1 / np.sqrt(n))
    start = np.repeat(np.cos(np.pi * (np.arange(n) + 0.5) / n)[:, None], 2, axis=1)
    inv_diag = 1.0 / lap.diagonal()
    lam, x, res, _ = ss._lobpcg(lap, start, mass=None, null=null,
                                precond=lambda r: inv_diag[:, None] * r, tol=1e-9,
                                maxiter=3000, nwanted=2)
    np.testing.assert_allclose(lam, 2 - 2 * np.cos(np.pi * np.arange(1, 3) / n), rtol=1e-6)
    assert x.shape == (n, 2) and np.all(res <= 1e-9)


def test_fiedler_rejects_bad_arguments() -> None:
    w = path_graph(100)
    with pytest.raises(ValueError, match="method"):
        fiedler_sparse(w, method="arpack")
    with pytest.raises(ValueError, match="laplacian"):
        fiedler_sparse(w, laplacian="random_walk")
    with pytest.raises(ValueError, match="k must"):
        fiedler_sparse(w, k=0)
    with pytest.raises(ValueError, match="positive degree"):
        fiedler_sparse(sp.csr_matrix((100, 100)))
    with pytest.raises(TypeError):
        fiedler_sparse(np.eye(3))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Harmonic (anchored) solve
# --------------------------------------------------------------------------------------------------

HARM_METHODS = ("direct", "amg-cg", "jacobi-cg")


def dense_harmonic(w: sp.csr_matrix, anchors: np.ndarray, values: np.ndarray) -> np.ndarray:
    dense = w.toarray()
    n = dense.shape[0]
    unknown = np.setdiff1d(np.arange(n), anchors)
    lap = np.diag(dense.sum(axis=1)) - dense
    rhs = dense[np.ix_(unknown, anchors)] @ values
    return np.linalg.solve(lap[np.ix_(unknown, unknown)], rhs)


@pytest.mark.parametrize("method", HARM_METHODS)
def test_harmonic_matches_dense_block_solve(method: str) -> None:
    w, t = curve_graph(1500, seed=10)
    anchors = np.random.default_rng(1).choice(1500, 30, replace=False)
    values = t[anchors]
    sol = harmonic_sparse(w, anchors, values, method=method, tol=1e-12)
    assert sol.converged and sol.solver == method
    assert sol.residual <= 1e-12
    np.testing.assert_allclose(sol.x, dense_harmonic(w, anchors, values), rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", HARM_METHODS)
def test_harmonic_path_graph_is_piecewise_linear(method: str) -> None:
    n = 3000
    anchors = np.array([0, 700, 701, 1900, 2999])
    values = np.array([1.0, -2.0, 5.0, 0.5, 3.0])
    sol = harmonic_sparse(path_graph(n), anchors, values, method=method, tol=1e-12,
                          maxiter=20000)
    unknown = np.setdiff1d(np.arange(n), anchors)
    np.testing.assert_allclose(sol.x, np.interp(unknown, anchors, values), rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", HARM_METHODS)
def test_harmonic_maximum_principle(method: str) -> None:
    w = random_graph(2000, degree=6, seed=11)
    rng = np.random.default_rng(2)
    anchors = rng.choice(2000, 40, replace=False)
    values = rng.normal(size=40)
    x = harmonic_sparse(w, anchors, values, method=method).x
    slack = 1e-8 * np.ptp(values)
    assert values.min() - slack <= x.min() and x.max() <= values.max() + slack


def test_harmonic_reordered_route_and_warm_start(monkeypatch: pytest.MonkeyPatch) -> None:
    w, t = curve_graph(3000, seed=12)
    anchors = np.arange(0, 3000, 50)
    ref = harmonic_sparse(w, anchors, t[anchors], method="direct")
    monkeypatch.setattr(ss, "_REORDER_MIN", 100)
    for method in ("amg-cg", "jacobi-cg"):
        sol = harmonic_sparse(w, anchors, t[anchors], method=method)
        assert sol.info["reordered"] and sol.converged
        np.testing.assert_allclose(sol.x, ref.x, atol=1e-8)
        warm = harmonic_sparse(w, anchors, t[anchors], method=method, x0=ref.x)
        assert warm.iterations == 0 and warm.converged


def test_harmonic_unconverged_flag() -> None:
    w, t = curve_graph(2000, seed=13)
    anchors = np.arange(0, 2000, 100)
    for method in ("amg-cg", "jacobi-cg"):
        sol = harmonic_sparse(w, anchors, t[anchors], method=method, maxiter=1)
        assert not sol.converged and sol.iterations == 1 and sol.residual > 1e-10


def test_harmonic_component_without_anchor_raises() -> None:
    a = random_graph(200, degree=6, seed=14)
    w = sp.block_diag([a, a], format="csr")
    with pytest.raises(ValueError, match="no edge to an anchor"):
        harmonic_sparse(w, np.array([0, 5]), np.array([0.0, 1.0]))


def test_indefinite_inputs_raise() -> None:
    # Negative weights break positive definiteness; the solvers must refuse, not return garbage.
    w = path_graph(500).tolil()
    w[10, 300] = w[300, 10] = -5.0
    w = w.tocsr()
    for method in HARM_METHODS:
        with pytest.raises(ValueError, match="positive"):
            harmonic_sparse(w, np.array([0, 499]), np.array([0.0, 1.0]), method=method)
    with pytest.raises(ValueError, match="positive"):
        fiedler_sparse(w)


def test_indefinite_system_guards() -> None:
    """The solver-level guards (not reachable with non-negative weights) refuse indefinite L_uu."""
    lap = sp.diags([np.full(499, -1.0), np.full(500, 2.0), np.full(499, -1.0)], [-1, 0, 1],
                   format="csr")
    lap = (lap - 0.5 * sp.identity(500, format="csr")).tocsr()
    b = np.ones(500)
    with pytest.raises(ValueError, match="positive definite"):
        ss._direct(lap, b, 1e-10, {})
    with pytest.raises(ValueError, match="positive definite"):
        ss._pcg(lap, b, None, ss._jacobi(lap), 1e-10, 100)


def test_harmonic_edge_cases() -> None:
    w = path_graph(100)
    zero = harmonic_sparse(w, np.array([0, 99]), np.zeros(2))
    assert np.all(zero.x == 0) and zero.converged
    full = harmonic_sparse(w, np.arange(100), np.arange(100.0))
    assert full.x.shape == (0,) and full.solver == "none"
    with pytest.raises(ValueError, match="must lie in"):
        harmonic_sparse(w, np.array([0, 100]), np.zeros(2))
    with pytest.raises(ValueError, match="distinct"):
        harmonic_sparse(w, np.array([3, 3]), np.zeros(2))
    with pytest.raises(ValueError, match="length"):
        harmonic_sparse(w, np.array([3, 4]), np.zeros(3))
    with pytest.raises(ValueError, match="method"):
        harmonic_sparse(w, np.array([3]), np.zeros(1), method="cholmod")
    with pytest.raises(ValueError, match="x0"):
        harmonic_sparse(w, np.array([3]), np.ones(1), method="amg-cg", x0=np.zeros(5))
    assert harmonic_sparse(w, np.array([3, 60]), np.ones(2)).solver == "direct"
