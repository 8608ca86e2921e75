"""refine_order / seriate(refine=...): exact move deltas, monotone improvement, known optima."""

import itertools

import numpy as np
import pytest

from clss.seriation import REFINABLE, criterion, refine_order, seriate
from clss.seriation import _refine_kernels as kern
from clss.seriation.generators import permute_matrix, points_robinson, toeplitz_robinson
from clss.seriation.quality import CRITERIA
from clss.seriation.refine import _OBJECTIVES


def random_similarity(n, seed):
    a = np.random.default_rng(seed).random((n, n))
    s = (a + a.T) / 2
    np.fill_diagonal(s, 0.0)
    return s


def noisy_robinson(n, seed, noise=0.15):
    rng = np.random.default_rng(seed)
    e = rng.normal(0.0, noise, (n, n))
    s = np.clip(toeplitz_robinson(n, rate=0.1) + (e + e.T) / 2, 0.0, None)
    perm = rng.permutation(n)
    return permute_matrix(s, perm), np.argsort(perm)


def kernel_matrix(s, name):
    """The matrix and sign refine_order hands the kernels for a similarity ``s``."""
    code, operand, sign = _OBJECTIVES[name]
    m = s if operand == "s" else -s
    if code in ("SQUARE", "LINEAR"):
        m = sign * m
    return np.ascontiguousarray(m), getattr(kern, code), sign


def criterion_change(name, s, before, after):
    """Change of the kernel's minimised objective implied by quality.criterion."""
    factor = 2.0 if _OBJECTIVES[name][0] in ("SQUARE", "LINEAR") else 1.0  # full-matrix sums
    direction = 1.0 if CRITERIA[name].direction == "loss" else -1.0
    return direction * (criterion(s, after, name) - criterion(s, before, name)) / factor


@pytest.mark.parametrize("name", REFINABLE)
def test_swap_delta_equals_full_recomputation(name):
    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(3, 12))
        s = random_similarity(n, trial)
        m, code, sign = kernel_matrix(s, name)
        order = rng.permutation(n).astype(np.int64)
        b = int(rng.integers(0, n - 1))
        swapped = order.copy()
        swapped[[b, b + 1]] = swapped[[b + 1, b]]
        expected = criterion_change(name, s, order, swapped)
        got = kern.swap_delta(m, order, b, code, sign)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-9 * np.abs(s).sum())


@pytest.mark.parametrize("name", REFINABLE)
def test_insertion_walk_delta_equals_full_recomputation(name):
    """An insertion move is a walk of adjacent swaps: the summed deltas equal the full change."""
    rng = np.random.default_rng(2)
    n = 14
    s = random_similarity(n, 7)
    m, code, sign = kernel_matrix(s, name)
    for _ in range(20):
        order = rng.permutation(n).astype(np.int64)
        a, b = sorted(rng.choice(n, 2, replace=False))
        work, total = order.copy(), 0.0
        for p in range(a, b):
            total += kern.swap_delta(m, work, p, code, sign)
            work[[p, p + 1]] = work[[p + 1, p]]
        assert work.tolist() == order[:a].tolist() + order[a + 1:b + 1].tolist() + [order[a]] \
            + order[b + 1:].tolist()
        assert total == pytest.approx(criterion_change(name, s, order, work), rel=1e-9,
                                      abs=1e-9 * np.abs(s).sum())


def test_two_opt_gain_equals_path_length_change():
    s = random_similarity(30, 3)
    m, _, _ = kernel_matrix(s, "path_length")
    order = np.random.default_rng(3).permutation(30).astype(np.int64)
    work = order.copy()
    gained, moves = kern.two_opt_pass(m, work, 29, 0.0)
    assert moves > 0
    change = criterion(s, work, "path_length") - criterion(s, order, "path_length")
    assert gained == pytest.approx(change, rel=1e-9)


@pytest.mark.parametrize("name,code", [("ar_events", kern.EVENTS), ("ar_deviations", kern.DEVIATIONS),
                                       ("gradient_raw", kern.GRADIENT)])
def test_triple_value_equals_quality(name, code):
    s = random_similarity(25, 4)
    order = np.random.default_rng(4).permutation(25).astype(np.int64)
    assert kern.triple_value(np.ascontiguousarray(-s), order, code) == pytest.approx(
        criterion(s, order, name), rel=1e-12)


@pytest.mark.parametrize("name", REFINABLE)
@pytest.mark.parametrize("start", ["spectral", "random"])
def test_refine_never_worse_and_reports_quality_values(name, start):
    s, _ = noisy_robinson(60, 5)
    order = seriate(s).order if start == "spectral" else np.random.default_rng(5).permutation(60)
    out = refine_order(s, order, name)
    before, after = criterion(s, order, name), criterion(s, out.order, name)
    assert out.before == pytest.approx(before, rel=1e-9)
    assert out.after == pytest.approx(after, rel=1e-9)
    if CRITERIA[name].direction == "loss":
        assert after <= before
    else:
        assert after >= before
    if start == "random":  # far from any optimum: the search must find something
        assert out.moves > 0 and after != before
    assert sorted(out.order.tolist()) == list(range(60))


def test_refine_improves_noisy_spectral_order_on_its_criterion():
    s, _ = noisy_robinson(120, 6, noise=0.25)
    order = seriate(s).order
    for name in ("path_length", "ar_events", "2sum"):
        out = refine_order(s, order, name)
        assert out.moves > 0
        assert out.after < out.before


def test_distance_kind_uses_the_quality_conversion():
    rng = np.random.default_rng(8)
    x = rng.random((30, 2))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    order = rng.permutation(30)
    for name in ("2sum", "path_length", "ar_deviations"):
        out = refine_order(d, order, name, kind="distance")
        assert out.before == pytest.approx(criterion(d, order, name, kind="distance"), rel=1e-9)
        assert out.after == pytest.approx(criterion(d, out.order, name, kind="distance"), rel=1e-9)
        assert out.after < out.before


# Local search is not exact in general (a uniformly random matrix has local optima); on noisy
# Robinson matrices a few random starts reach the brute-force optimum.
@pytest.mark.parametrize("seed", range(6))
def test_2sum_optimum_of_enumerate_reached_from_random_starts(seed):
    rng = np.random.default_rng(seed)
    n = 7
    s = toeplitz_robinson(n) + 0.3 * random_similarity(n, 100 + seed)
    optimum = criterion(s, seriate(s, method="enumerate").order, "2sum")
    best = min(refine_order(s, rng.permutation(n), "2sum", window=None, seed=k).after
               for k in range(5))
    assert best == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_path_length_brute_force_optimum_reached(seed):
    rng = np.random.default_rng(seed)
    n = 7
    s = toeplitz_robinson(n) + 0.3 * random_similarity(n, 200 + seed)
    optimum = min(criterion(s, list(p), "path_length") for p in itertools.permutations(range(n)))
    best = min(refine_order(s, rng.permutation(n), "path_length", window=None, seed=k).after
               for k in range(5))
    assert best == pytest.approx(optimum, rel=1e-12)


@pytest.mark.parametrize("name", REFINABLE)
@pytest.mark.parametrize("make", [lambda: toeplitz_robinson(50), lambda: points_robinson(50, rng=3)])
def test_perfect_robinson_order_is_kept(name, make):
    s = make()
    perm = np.random.default_rng(9).permutation(50)
    shuffled = permute_matrix(s, perm)
    start = seriate(shuffled)
    out = seriate(shuffled, refine=name)
    assert np.array_equal(out.order, start.order)
    assert out.info["refine"]["moves"] == 0
    assert np.array_equal(out.positions, start.positions)  # unchanged order keeps the Fiedler vector


def test_deterministic_given_seed_and_seed_matters_only_through_visit_order():
    s, _ = noisy_robinson(80, 10, noise=0.3)
    order = seriate(s).order
    a = refine_order(s, order, "ar_events", seed=3)
    b = refine_order(s, order, "ar_events", seed=3)
    assert np.array_equal(a.order, b.order) and a.moves == b.moves


def test_max_passes_and_time_limit_stop_the_search():
    s, _ = noisy_robinson(80, 11, noise=0.3)
    order = np.random.default_rng(11).permutation(80)
    one = refine_order(s, order, "2sum", max_passes=1)
    assert one.passes == 1 and not one.converged
    quick = refine_order(s, order, "2sum", time_limit=1e-9)
    assert quick.passes == 1
    full = refine_order(s, order, "2sum", max_passes=100)
    assert full.converged and full.after <= one.after


def test_seriate_refine_records_info_and_rank_positions():
    s, _ = noisy_robinson(100, 12, noise=0.3)
    plain = seriate(s)
    res = seriate(s, refine="path_length")
    info = res.info["refine"]
    assert info["criterion"] == "path_length" and info["moves"] > 0
    assert info["before"] == pytest.approx(criterion(s, plain.order, "path_length"), rel=1e-9)
    assert info["after"] == pytest.approx(criterion(s, res.order, "path_length"), rel=1e-9)
    assert res.method == "spectral"
    assert np.array_equal(res.order[res.ranks], np.arange(100))
    assert np.array_equal(np.argsort(res.positions, kind="stable"), res.order)
    assert res.tie_groups == () and np.isnan(res.safe_radius)


@pytest.mark.parametrize("method", ["rcm", "olo"])
def test_refine_after_combinatorial_methods(method):
    s, _ = noisy_robinson(60, 13, noise=0.3)
    res = seriate(s, method=method, refine="ar_events")
    assert res.method == method
    assert res.info["refine"]["after"] <= res.info["refine"]["before"]
    assert res.info["refine"]["after"] == criterion(s, res.order, "ar_events")


def test_sparse_input_is_densified():
    import scipy.sparse as sp

    s, _ = noisy_robinson(50, 14)
    s[s < 0.3] = 0.0
    order = np.random.default_rng(14).permutation(50)
    dense = refine_order(s, order, "2sum")
    sparse = refine_order(sp.csr_matrix(s), order, "2sum")
    assert np.array_equal(dense.order, sparse.order)
