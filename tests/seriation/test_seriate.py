"""seriate(): exact recovery, stability, equivariance, input types, anchored solves, bad input."""

import itertools
import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.linalg as sl
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau

from clss.seriation import SeriationWarning, seriate
from clss.seriation.generators import (
    interval_robinson,
    knn_graph,
    noisy_curve,
    permute_matrix,
    points_robinson,
    toeplitz_robinson,
)


def is_robinson(s, tol=1e-12):
    """Plain check of the R-matrix definition: non-increasing away from the diagonal."""
    n = s.shape[0]
    for i in range(n):
        for j in range(i + 1, n - 1):
            if s[i, j + 1] > s[i, j] + tol:
                return False
            if s[j, i] < s[j + 1, i] - tol:
                return False
    return True


def same_up_to_reversal(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return np.array_equal(a, b) or np.array_equal(a, b[::-1])


def two_sum(s, order):
    order = np.asarray(order)
    pos = np.empty(len(order))
    pos[order] = np.arange(len(order))
    return float((s * np.subtract.outer(pos, pos) ** 2).sum())


FAMILIES = ["exp", "inverse", "points"]


def robinson(family, n, rng):
    if family == "points":
        return points_robinson(n, rng=rng)
    return toeplitz_robinson(n, family, rate=0.2)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(3, 60), seed=st.integers(0, 2**31 - 1), family=st.sampled_from(FAMILIES))
def test_exact_recovery_of_permuted_strict_robinson(n, seed, family):
    rng = np.random.default_rng(seed)
    s = robinson(family, n, rng)
    perm = rng.permutation(n)
    res = seriate(permute_matrix(s, perm))
    # the hidden order of the permuted matrix is argsort(perm); seriation recovers it up to reversal
    assert same_up_to_reversal(perm[res.order], np.arange(n))
    assert abs(kendalltau(res.ranks, perm).statistic) == pytest.approx(1.0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 40), seed=st.integers(0, 2**31 - 1))
def test_pre_robinson_with_ties_gives_an_r_ordering(n, seed):
    # Interval sums are Robinson but not strict: several orders are valid, any of them must come out.
    rng = np.random.default_rng(seed)
    s = interval_robinson(n, rng=rng)
    perm = rng.permutation(n)
    sp_ = permute_matrix(s, perm)
    res = seriate(sp_)
    assert is_robinson(res.permute(sp_), tol=1e-9)


def test_banded_toeplitz_with_zero_ties_recovers_order():
    s = toeplitz_robinson(64, "banded")
    perm = np.random.default_rng(3).permutation(64)
    res = seriate(permute_matrix(s, perm))
    assert is_robinson(res.permute(permute_matrix(s, perm)))


@pytest.mark.parametrize("seed", range(5))
def test_random_walk_laplacian_recovers_robinson(seed):
    rng = np.random.default_rng(seed)
    s = points_robinson(50, rng=rng)
    perm = rng.permutation(50)
    res = seriate(permute_matrix(s, perm), laplacian="random_walk")
    assert same_up_to_reversal(perm[res.order], np.arange(50))


def test_symmetric_laplacian_positions_are_scaled_random_walk_vector():
    # u = D^{1/2} v: the symmetric variant sorts a degree-weighted vector (not order-exact on
    # Robinson matrices, unlike D - W and the random-walk form)
    rng = np.random.default_rng(0)
    w = permute_matrix(points_robinson(40, rng=rng), rng.permutation(40))
    np.fill_diagonal(w, 0)
    u = seriate(w, laplacian="symmetric").positions
    v = seriate(w, laplacian="random_walk").positions
    ref = np.sqrt(w.sum(1)) * v
    assert abs(u @ ref) / np.linalg.norm(ref) == pytest.approx(1.0, abs=1e-10)


def test_random_walk_positions_solve_generalised_problem():
    rng = np.random.default_rng(2)
    w = points_robinson(30, rng=rng)
    np.fill_diagonal(w, 0)
    d = w.sum(1)
    _vals, vecs = sl.eigh(np.diag(d) - w, np.diag(d))
    ref = vecs[:, 1] / np.linalg.norm(vecs[:, 1])
    res = seriate(w, laplacian="random_walk")
    assert np.allclose(np.abs(res.positions @ ref), 1.0, atol=1e-10)


def test_noisy_curve_tau_improves_as_noise_shrinks():
    taus = []
    for noise in [0.05, 0.01, 0.001]:
        x, t = noisy_curve(300, noise=noise, dim=3, rng=0)
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        s = np.exp(-d2 / 0.01)
        taus.append(abs(kendalltau(seriate(s).positions, t).statistic))
    assert taus[-1] > 0.99
    assert taus[0] <= taus[1] + 1e-3 <= taus[2] + 2e-3


def test_perturbations_below_safe_radius_never_change_the_order():
    rng = np.random.default_rng(0)
    s = toeplitz_robinson(64, "exp", rate=0.1)
    perm = rng.permutation(64)
    w = permute_matrix(s, perm)
    base = seriate(w)
    assert base.safe_radius > 0
    for _ in range(100):
        e = rng.standard_normal((64, 64))
        e = (e + e.T) / 2
        np.fill_diagonal(e, 0)
        # ||ΔL||_2 <= 2 max_i Σ_j |ΔW_ij|: scale ΔW so that bound sits just under the radius
        e *= 0.99 * base.safe_radius / (2 * np.abs(e).sum(1).max())
        pert = seriate(np.clip(w + e, 0, None))
        assert same_up_to_reversal(pert.order, base.order)


def test_safe_radius_formula():
    s = toeplitz_robinson(20, "exp", rate=0.3)
    res = seriate(s)
    lap = np.diag(s.sum(1) - 1) - (s - np.eye(20))
    vals, vecs = np.linalg.eigh(lap)
    gamma = min(vals[1] - vals[0], vals[2] - vals[1])
    g = np.diff(np.sort(vecs[:, 1])).min()
    assert res.safe_radius == pytest.approx(gamma * g / (4 * np.sqrt(2)), rel=1e-8)
    assert res.lambda2 == pytest.approx(vals[1], rel=1e-10)
    assert res.lambda3 == pytest.approx(vals[2], rel=1e-10)
    assert res.eigengap == pytest.approx(vals[2] - vals[1], rel=1e-8)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(3, 30), seed=st.integers(0, 2**31 - 1))
def test_permutation_equivariance_and_scale_invariance(n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 2))
    s = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.1)
    base = seriate(s)
    perm = rng.permutation(n)
    moved = seriate(s[np.ix_(perm, perm)])
    # item perm[i] of the original is item i of the permuted input
    assert same_up_to_reversal(perm[moved.order], base.order)
    assert same_up_to_reversal(seriate(3.7 * s).order, base.order)


def test_monotone_transform_invariance_on_pre_robinson():
    rng = np.random.default_rng(1)
    s = permute_matrix(points_robinson(40, rng=rng), rng.permutation(40))
    base = seriate(s).order
    for f in (np.sqrt, lambda a: a**3, lambda a: np.exp(2 * a) - 1):
        assert same_up_to_reversal(seriate(f(s)).order, base)


def test_deterministic_orientation_rule():
    rng = np.random.default_rng(4)
    for _ in range(20):
        s = permute_matrix(points_robinson(15, rng=rng), rng.permutation(15))
        res = seriate(s)
        assert res.order[0] < res.order[-1]
        assert np.array_equal(res.order, seriate(s).order)
        assert np.array_equal(res.ranks[res.order], np.arange(15))


def test_anchors_orient_spectral_order():
    s = toeplitz_robinson(10, "exp", rate=0.5)
    res = seriate(s, method="spectral", anchors=[0, 9], anchor_values=[5.0, -5.0])
    assert res.method == "spectral" and res.order.tolist() == list(range(9, -1, -1))
    assert np.abs(res.positions) @ np.abs(res.positions) == pytest.approx(1.0)  # Fiedler coordinates
    assert seriate(s, method="spectral", anchors=[0, 9],
                   anchor_values=[-5.0, 5.0]).order.tolist() == list(range(10))


@pytest.mark.parametrize("method", [None, "auto"])
def test_anchor_values_make_the_anchored_solution_the_default(method):
    s = toeplitz_robinson(10, "exp", rate=0.5)
    res = seriate(s, method=method, anchors=[0, 9], anchor_values=[5.0, -5.0])
    want = seriate(s, method="anchored", anchors=[0, 9], anchor_values=[5.0, -5.0])
    assert res.method == "anchored" and res.order.tolist() == list(range(9, -1, -1))
    np.testing.assert_array_equal(res.positions, want.positions)  # on the values' scale
    assert res.positions[0] == 5.0 and res.positions[9] == -5.0
    assert seriate(s, method=method).method == "spectral"  # without values: spectral
    with pytest.raises(ValueError, match="method='spectral'"):
        seriate(s, method=method, anchors=[0, 9], anchor_values=[5.0, -5.0], laplacian="symmetric")


def test_input_types_agree():
    rng = np.random.default_rng(7)
    x, _ = noisy_curve(60, noise=0.01, rng=rng)
    w = knn_graph(x, k=6).toarray()
    ref = seriate(w)
    g = nx.from_numpy_array(w)
    for variant in (sp.csr_matrix(w), sp.coo_matrix(w), torch.tensor(w),
                    torch.tensor(w, dtype=torch.float32), torch.tensor(w).to_sparse(), g,
                    w.tolist()):
        res = seriate(variant)
        assert np.array_equal(res.order, ref.order), type(variant)
    assert seriate(g).labels == list(range(60))


def test_networkx_labels_weight_attribute_and_nodelist():
    g = nx.Graph()
    names = ["d", "a", "c", "b"]
    for u, v, sim in [("a", "b", 3.0), ("b", "c", 3.0), ("c", "d", 3.0), ("a", "d", 0.1)]:
        g.add_edge(u, v, sim=sim, weight=1.0)
    res = seriate(g, weight="sim", nodelist=names)
    assert res.labels == names
    assert "".join(res.ordered_labels) in ("abcd", "dcba")


def test_distance_input():
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(size=30))
    perm = rng.permutation(30)
    d = np.abs(np.subtract.outer(x[perm], x[perm]))
    for kernel in ("inverse", "gaussian", lambda a: np.exp(-a)):
        res = seriate(d, kind="distance", kernel=kernel)
        assert same_up_to_reversal(perm[res.order], np.arange(30))


def test_negative_policies():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((20, 5))
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    cos = f @ f.T
    with pytest.raises(ValueError, match="negative"):
        seriate(cos)
    shifted = seriate(cos, negative="shift")
    # the official CLSS route: Fiedler vector of L restricted to 1⊥ (signed weights kept)
    w = cos - np.diag(np.diag(cos))
    lap = np.diag(w.sum(1)) - w
    z = sl.null_space(np.ones((1, 20)))
    _vals, vecs = np.linalg.eigh(z.T @ lap @ z)
    ref = z @ vecs[:, 0]
    assert same_up_to_reversal(shifted.order, np.argsort(ref))
    clipped = seriate(cos, negative="clip")
    assert clipped.n == 20


def test_disconnected_graph_components_concatenate():
    s = sl.block_diag(toeplitz_robinson(4, "exp"), toeplitz_robinson(3, "exp"), [[1.0]])
    perm = np.array([5, 0, 7, 2, 4, 1, 6, 3])
    with pytest.warns(SeriationWarning, match="3 connected components"):
        res = seriate(s[np.ix_(perm, perm)])
    assert res.n_components == 3
    assert res.lambda2 == 0.0 and res.safe_radius == 0.0
    comp_of_first = res.components[res.order]
    assert (np.diff(comp_of_first) >= 0).all()  # components are contiguous in the order
    assert [c.size for c in res.component_info] == [4, 3, 1] or sorted(
        c.size for c in res.component_info) == [1, 3, 4]
    with pytest.raises(ValueError, match="disconnected"):
        seriate(s, components="raise")


def test_multiple_fiedler_value_warns():
    star = nx.star_graph(5)
    with pytest.warns(SeriationWarning, match="multiple"):
        seriate(star)


def test_tie_groups_reported():
    # items 1 and 2 have identical similarity rows: their Fiedler entries tie
    s = np.array([[0, 1, 1, 0.1], [1, 0, 2, 1], [1, 2, 0, 1], [0.1, 1, 1, 0]], dtype=float)
    res = seriate(s)
    assert any(sorted(g.tolist()) == [1, 2] for g in res.tie_groups)


def test_enumerate_is_the_2sum_optimum():
    rng = np.random.default_rng(0)
    for _ in range(5):
        x = rng.uniform(size=(7, 2))
        s = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / 0.2)
        np.fill_diagonal(s, 0)
        best = min(two_sum(s, p) for p in itertools.permutations(range(7)))
        res = seriate(s, method="enumerate")
        assert two_sum(s, res.order) == pytest.approx(best)
        assert two_sum(s, seriate(s).order) >= best - 1e-9


def test_enumerate_matches_spectral_on_pre_robinson():
    rng = np.random.default_rng(1)
    s = permute_matrix(toeplitz_robinson(8, "exp", rate=0.4), rng.permutation(8))
    assert same_up_to_reversal(seriate(s, method="enumerate").order, seriate(s).order)


def test_rcm_recovers_a_permuted_path():
    # a path graph has bandwidth 1 exactly in its own order, which Cuthill-McKee finds
    path = nx.to_numpy_array(nx.path_graph(30))
    perm = np.random.default_rng(0).permutation(30)
    res = seriate(permute_matrix(path, perm), method="rcm")
    assert same_up_to_reversal(perm[res.order], np.arange(30))


def test_dense_lobpcg_route_agrees_with_evr():
    x, _t = noisy_curve(1200, noise=0.003, rng=1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    s = np.exp(-d2 / 0.005)
    evr = seriate(s, solver="evr")
    assert evr.solver == "dense-evr"
    for solver, name in (("lobpcg", "dense-lobpcg"), ("auto", "dense-davidson")):
        res = seriate(s, solver=solver)
        assert res.solver == name and res.converged
        assert abs(res.positions @ evr.positions) == pytest.approx(1.0, abs=1e-6)


def test_result_helpers_and_serialisation():
    s = toeplitz_robinson(6, "exp")
    res = seriate(s)
    rev = res.reversed()
    assert np.array_equal(rev.order, res.order[::-1])
    assert np.array_equal(rev.order[rev.ranks], np.arange(6))
    assert np.allclose(res.permute(s), s[np.ix_(res.order, res.order)])
    assert torch.allclose(res.permute(torch.tensor(s)), torch.tensor(s[np.ix_(res.order,
                                                                              res.order)]))
    d = res.to_dict()
    assert d["order"] == res.order.tolist() and d["n_components"] == 1
    assert "Seriation(n=6" in repr(res)


# ----------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("bad", "match"), [
    (np.ones((3, 4)), "square"),
    (np.ones(5), "square"),
    (np.ones((1, 1)), "at least 2"),
    (np.array([[0, np.nan], [np.nan, 0]]), "NaN"),
    (np.array([[0, np.inf], [np.inf, 0]]), "infinite"),
    (np.array([[0, 1.0], [2.0, 0]]), "not symmetric"),
    (np.array([[0, -1.0], [-1.0, 0]]), "negative"),
    (np.array([["a", "b"], ["c", "d"]]), "numeric"),
])
def test_bad_matrices_raise(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        seriate(bad)


def test_complex_and_directed_inputs_raise():
    with pytest.raises(TypeError, match="real"):
        seriate(np.eye(3) * 1j)
    with pytest.raises(ValueError, match="directed"):
        seriate(nx.DiGraph([(0, 1)]))


def test_symmetrize_option():
    a = np.array([[0, 1.0, 0.2], [3.0, 0, 1.0], [0.2, 1.0, 0]])
    assert seriate(a, symmetrize=True).n == 3
    assert seriate(a, symmetrize="max").n == 3


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"anchors": [0, 5]}, "anchor_values"),
    ({"anchor_values": [1.0]}, "without anchors"),
    ({"anchors": [0, 9], "anchor_values": [1.0, 2.0]}, "out of range"),
    ({"anchors": [0, 0], "anchor_values": [1.0, 2.0]}, "duplicated"),
    ({"anchors": [0, 1], "anchor_values": [1.0]}, "2 anchors"),
    ({"anchors": [0, 1], "anchor_values": [1.0, np.nan]}, "NaN"),
    ({"anchors": [], "anchor_values": []}, "empty"),
    ({"anchors": [0.5], "anchor_values": [1.0]}, "integer"),
])
def test_bad_anchors_raise(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        seriate(toeplitz_robinson(5, "exp"), method="anchored", **kwargs)


def test_bad_options_raise():
    s = toeplitz_robinson(5, "exp")
    for kwargs, match in [({"method": "tsp"}, "unknown method"), ({"laplacian": "x"}, "laplacian"),
                          ({"negative": "x"}, "negative"), ({"solver": "x"}, "solver"),
                          ({"kind": "x"}, "kind"), ({"method": "anchored"}, "needs anchors"),
                          ({"method": "enumerate", "similarity": np.ones((11, 11))}, "exceeds")]:
        args = {"similarity": s, **kwargs}
        with pytest.raises(ValueError, match=match):
            seriate(args.pop("similarity"), **args)
    with pytest.raises(ValueError, match="does not apply"):
        seriate(s, solver="amg-cg")
    with pytest.raises(ValueError, match="does not apply"):
        seriate(s, method="anchored", anchors=[0], anchor_values=[1.0], solver="multilevel")
    big = sp.diags(np.ones(30_000), 1, shape=(30_001, 30_001))
    with pytest.raises(ValueError, match="GiB"):
        seriate(big + big.T, solver="evr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seriate(s)


@pytest.fixture(scope="module")
def curve_graph():
    x, t = noisy_curve(6000, noise=0.002, rng=3)
    return knn_graph(x, k=10), t


def test_large_sparse_graph_routes_agree(curve_graph):
    # Above 5000 items the sparse routes run (smaller graphs are solved densely); the shift-invert
    # factorisation is exact to rounding and serves as the reference (the solvers are checked against
    # dense eigh in test_sparse_solvers.py).
    g, t = curve_graph
    ref = seriate(g, solver="shift-invert", tol=1e-10)
    assert ref.solver == "shift-invert" and abs(kendalltau(ref.positions, t).statistic) > 0.99
    for solver in ("auto", "multilevel", "lobpcg-amg"):
        res = seriate(g, solver=solver, tol=1e-10)
        assert res.converged and res.solver == ("shift-invert" if solver == "auto" else solver)
        assert abs(float(res.positions @ ref.positions)) == pytest.approx(1.0, abs=1e-6), solver
        assert res.lambda2 == pytest.approx(ref.lambda2, rel=1e-6)
        assert np.array_equal(res.order, ref.order) or abs(kendalltau(res.order, ref.order).statistic) > 0.999


def test_large_sparse_anchored_routes_agree(curve_graph):
    g, t = curve_graph
    anchors = np.arange(0, 6000, 100)
    ref = seriate(g, method="anchored", anchors=anchors, anchor_values=t[anchors], solver="direct")
    assert ref.info["maximum_principle"]
    for solver in ("auto", "amg-cg", "jacobi-cg"):
        res = seriate(g, method="anchored", anchors=anchors, anchor_values=t[anchors], solver=solver)
        assert res.converged
        assert np.allclose(res.positions, ref.positions, atol=1e-6), solver
