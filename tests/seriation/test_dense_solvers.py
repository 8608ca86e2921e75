"""Dense Fiedler solvers: block Davidson against LAPACK ?syevr, its fall-back, its determinism, and
the one-pass checks of the dense route (components, symmetry, ties)."""

import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from clss.seriation import seriate
from clss.seriation._davidson import coarse_start, dense_laplacian, fiedler_davidson
from clss.seriation._validation import _max_asymmetry
from clss.seriation.dense_solvers import DAVIDSON_MIN, fiedler_pairs_dense
from clss.seriation.generators import (
    interval_robinson,
    noisy_curve,
    permute_matrix,
    points_robinson,
    toeplitz_robinson,
)
from clss.seriation.laplacian import component_labels


def curve_kernel(n, h2, seed=0):
    x, _ = noisy_curve(n, noise=0.01, rng=seed)
    sq = (x * x).sum(1)
    return np.exp(-np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0) / h2)


def robinson_noise(n, seed=0, noise=0.1):
    g = np.random.default_rng(seed)
    x = g.uniform(0, 1, n)
    e = np.triu(g.uniform(-noise, noise, (n, n)), 1)
    return 1.0 / (1.0 + np.maximum(np.abs(np.subtract.outer(x, x)) + e + e.T, 0.0))


FAMILIES = {
    "curve-wide": lambda n: curve_kernel(n, 0.3),
    "curve-narrow": lambda n: curve_kernel(n, 0.01),
    "robinson-noise": robinson_noise,
    "toeplitz-exp": lambda n: toeplitz_robinson(n, "exp", rate=0.1),
    "banded": lambda n: toeplitz_robinson(n, "banded"),
    "interval": lambda n: interval_robinson(n, n_intervals=n // 4, rng=0),
    "points": lambda n: points_robinson(n, rng=0),
}


def weights(s):
    w = np.array(s, dtype=np.float64)
    np.fill_diagonal(w, 0.0)
    return w, w.sum(1)


def check_against_evr(sol, w, d, kind, tol=1e-8):
    values, vectors = sl.eigh(dense_laplacian(w, d, kind), subset_by_index=[0, 2])
    scale = 2 * d.max() if kind == "unnormalized" else 2.0
    gap = min(values[1] - values[0], values[2] - values[1])
    # λ1 and λ2 to the residual tolerance; λ3 to its documented 10 % of λ3 - λ2
    np.testing.assert_allclose(sol.values[:2], values[:2], rtol=0, atol=10 * tol * scale)
    assert abs(sol.values[2] - values[2]) <= 0.1 * (values[2] - values[1]) + 10 * tol * scale
    # eigenvector angle <= residual / gap (Davis–Kahan), up to sign
    cos = abs(float(sol.vectors[:, 1] @ vectors[:, 1]))
    assert 1 - cos <= max((sol.residuals[1] / gap) ** 2, 1e-12) * 10
    assert sol.residuals[:2].max() <= tol * scale


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("kind", ["unnormalized", "symmetric"])
@pytest.mark.parametrize("n", [300, 800])
def test_davidson_agrees_with_evr(family, kind, n):
    w, d = weights(FAMILIES[family](n))
    sol = fiedler_pairs_dense(w, d, kind, solver="davidson")
    assert sol.solver == "dense-davidson" and sol.converged
    check_against_evr(sol, w, d, kind)


@pytest.mark.parametrize(("precondition", "n"), [("none", 800), ("cholesky", 800), ("auto", 1500)])
def test_every_preconditioner_agrees_with_evr(precondition, n):
    # chain-like (tiny λ2): the hard case for Krylov, where auto switches to the Cholesky factor
    w, d = weights(toeplitz_robinson(n, "exp", rate=0.05))
    out = fiedler_davidson(w, d, "unnormalized", np.ones(n), tol=1e-8, maxiter=None, seed=0,
                           scale=2 * d.max(), precondition=precondition)
    assert out["converged"]
    values, vectors = sl.eigh(dense_laplacian(w, d, "unnormalized"), subset_by_index=[0, 2])
    assert out["values"][1] == pytest.approx(values[1], rel=1e-6)
    assert abs(out["vectors"][:, 1] @ vectors[:, 1]) == pytest.approx(1.0, abs=1e-8)
    if precondition == "auto":
        assert out["info"]["preconditioner"] == "cholesky"
        assert out["info"]["cholesky_from_iteration"] >= 1


@pytest.mark.parametrize("kind", ["unnormalized", "symmetric"])
def test_coarse_start_saves_iterations_and_agrees_with_evr(kind):
    n = 1200
    w, d = weights(curve_kernel(n, 0.01))
    null = np.ones(n) if kind == "unnormalized" else np.sqrt(d)
    scale = 2 * d.max() if kind == "unnormalized" else 2.0
    runs = {m: fiedler_davidson(w, d, kind, null, tol=1e-8, maxiter=None, seed=0, scale=scale,
                                coarse=m) for m in (0, 200)}
    assert runs[200]["converged"] and runs[200]["iterations"] < runs[0]["iterations"]
    assert runs[200]["info"]["start_sampled_items"] == 200
    assert runs[0]["info"]["start_sampled_items"] == 0
    values, vectors = sl.eigh(dense_laplacian(w, d, kind), subset_by_index=[0, 2])
    assert runs[200]["values"][1] == pytest.approx(values[1], rel=1e-6)
    assert abs(runs[200]["vectors"][:, 1] @ vectors[:, 1]) == pytest.approx(1.0, abs=1e-8)
    # the guess itself already points at the Fiedler vector
    guess = coarse_start(w, d, kind, 200, np.random.default_rng(0))
    assert abs(guess[:, 0] @ vectors[:, 1]) / np.linalg.norm(guess[:, 0]) > 0.9


def test_coarse_start_without_sampled_neighbours_falls_back_to_random():
    n = 600
    w, d = weights(toeplitz_robinson(n, "banded", bandwidth=3))  # most items: no sampled neighbour
    assert coarse_start(w, d, "unnormalized", 20, np.random.default_rng(0)) is None
    out = fiedler_davidson(w, d, "unnormalized", np.ones(n), tol=1e-8, maxiter=None, seed=0,
                           scale=2 * d.max(), coarse=20)
    assert out["converged"] and out["info"]["start_sampled_items"] == 0


@pytest.mark.parametrize(("make", "laplacian"), [
    (lambda n: points_robinson(n, rng=1), "unnormalized"),
    (lambda n: points_robinson(n, rng=1), "random_walk"),
    (lambda n: toeplitz_robinson(n, "exp", rate=0.05), "unnormalized"),
    (lambda n: toeplitz_robinson(n, "exp", rate=0.05), "random_walk"),
    # heavy-tailed 1/(1+k): its random-walk Fiedler vector is not monotone (?syevr agrees)
    (lambda n: toeplitz_robinson(n, "inverse"), "unnormalized"),
], ids=["points-unnormalized", "points-random_walk", "toeplitz-exp-unnormalized",
        "toeplitz-exp-random_walk", "toeplitz-inverse-unnormalized"])
def test_default_solver_recovers_permuted_robinson_exactly(make, laplacian):
    n = 500
    assert n >= DAVIDSON_MIN  # the default route is the block Davidson solver
    perm = np.random.default_rng(7).permutation(n)
    res = seriate(permute_matrix(make(n), perm), laplacian=laplacian)
    assert res.solver == "dense-davidson" and res.converged
    recovered = perm[res.order]
    assert np.array_equal(recovered, np.arange(n)) or np.array_equal(recovered, np.arange(n)[::-1])


def test_non_convergence_falls_back_to_evr_and_is_recorded():
    s = robinson_noise(DAVIDSON_MIN, seed=2)
    w, d = weights(s)
    sol = fiedler_pairs_dense(w, d, "unnormalized", solver="davidson", maxiter=1)
    assert sol.solver == "dense-evr" and sol.converged
    failed = sol.info["davidson_failed"]
    assert failed["iterations"] == 1 and max(failed["residuals"][:2]) > 1e-8 * failed["scale"]
    res = seriate(s, maxiter=1)
    ref = seriate(s, solver="evr")
    assert res.solver == "dense-evr" and res.converged
    assert np.array_equal(res.order, ref.order)


@pytest.mark.parametrize("laplacian", ["unnormalized", "symmetric", "random_walk"])
def test_deterministic_given_seed_and_same_order_across_seeds(laplacian):
    s = curve_kernel(600, 0.3, seed=4)
    a = seriate(s, laplacian=laplacian, seed=5)
    b = seriate(s, laplacian=laplacian, seed=5)
    c = seriate(s, laplacian=laplacian, seed=6)
    assert np.array_equal(a.positions, b.positions) and a.residual == b.residual
    assert np.array_equal(a.order, c.order)


@pytest.mark.parametrize("laplacian", ["unnormalized", "symmetric", "random_walk"])
def test_kinds_match_the_evr_route(laplacian):
    s = robinson_noise(700, seed=8)
    res = seriate(s, laplacian=laplacian)
    ref = seriate(s, laplacian=laplacian, solver="evr")
    assert res.solver == "dense-davidson" and ref.solver == "dense-evr"
    assert np.array_equal(res.order, ref.order)
    assert res.lambda2 == pytest.approx(ref.lambda2, rel=1e-7)
    assert abs(res.positions @ ref.positions) == pytest.approx(1.0, abs=1e-9)
    # the residual is the Fiedler pair's, recomputed on the true operator
    w, d = weights(s)
    kind = "unnormalized" if laplacian == "unnormalized" else "symmetric"
    lap = dense_laplacian(w, d, kind)
    v = res.positions if laplacian != "random_walk" else np.sqrt(d) * res.positions
    v = v / np.linalg.norm(v)
    assert np.linalg.norm(lap @ v - res.lambda2 * v) <= 2 * res.residual + 1e-12 * np.abs(lap).max()


def test_lobpcg_and_evr_names_still_route():
    s = curve_kernel(DAVIDSON_MIN, 0.3)
    assert seriate(s, solver="lobpcg").solver in ("dense-lobpcg", "dense-evr")
    assert seriate(s, solver="evr").solver == "dense-evr"
    assert seriate(s, solver="davidson").solver == "dense-davidson"
    assert seriate(curve_kernel(DAVIDSON_MIN - 1, 0.3)).solver == "dense-evr"


def test_dense_components_match_scipy():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(2, 60))
        a = (rng.random((n, n)) < rng.choice([0.01, 0.04, 0.1, 0.5])) * rng.random((n, n))
        a = a + a.T
        count, labels = connected_components(sp.csr_matrix(a), directed=False)
        got_count, got = component_labels(a)
        assert got_count == count and np.array_equal(got, labels)


def test_disconnected_dense_input_is_still_ordered_by_component():
    block = toeplitz_robinson(250, "exp", rate=0.05)
    s = sl.block_diag(block, block)
    with pytest.warns(UserWarning, match="2 connected components"):
        res = seriate(s)
    assert res.components.tolist() == [0] * 250 + [1] * 250


@pytest.mark.parametrize("where", [(0, 1), (255, 256), (599, 3), (300, 599)])
def test_tiled_symmetry_check_sees_every_entry(where):
    s = points_robinson(600, rng=0)
    assert _max_asymmetry(s) == 0.0
    bad = s.copy()
    bad[where] += 0.25
    assert _max_asymmetry(bad) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="not symmetric"):
        seriate(bad)
