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


TRIPLE = ("EVENTS", "DEVIATIONS", "GRADIENT")
# criterion = ±FACTOR · (kernel objective) + constant on a similarity (full-matrix pair sums: 2)
FACTOR = {"2sum": 2.0, "inertia": 2.0, "ls": 2.0, "gradient_weighted": 3.0}


def kernel_matrix(s, name, order):
    """The matrix, code and sign refine_order hands the kernels for a similarity ``s`` (the triple
    codes get it in position order)."""
    code, operand, sign = _OBJECTIVES[name]
    m = s if operand == "s" else -s
    m = m[np.ix_(order, order)] if code in TRIPLE else sign * m
    m = np.ascontiguousarray(m)
    np.fill_diagonal(m, 0.0)
    return m, getattr(kern, code), sign


def criterion_change(name, s, before, after):
    """Change of the kernel's minimised objective implied by quality.criterion."""
    direction = 1.0 if CRITERIA[name].direction == "loss" else -1.0
    return direction * (criterion(s, after, name) - criterion(s, before, name)) / FACTOR.get(name, 1.0)


def moved(order, a, t):
    """``order`` with the item at position ``a`` taken to position ``t``."""
    rest = np.delete(order, a)
    return np.insert(rest, t, order[a])


def objective(m, order, code, sign):
    """The kernels' objective by its definition, with plain loops (position-ordered for triples)."""
    n = len(order)
    if code == kern.ADJACENT:
        return sum(m[order[p], order[p + 1]] for p in range(n - 1))
    if code in (kern.SQUARE, kern.LINEAR):
        return sum(m[order[p], order[q]] * ((q - p) ** 2 if code == kern.SQUARE else q - p)
                   for p, q in itertools.combinations(range(n), 2))
    phi = {kern.EVENTS: lambda t: float(t < 0), kern.DEVIATIONS: lambda t: max(-t, 0.0),
           kern.GRADIENT: lambda t: float(np.sign(t))}[code]
    return sign * sum(phi(m[p, r] - m[p, q]) + phi(m[p, r] - m[q, r])
                      for p, q, r in itertools.combinations(range(n), 3))


@pytest.mark.parametrize("name", REFINABLE)
def test_walk_deltas_equal_full_recomputation(name):
    """Every insertion move (each distance, both directions) against quality.criterion after the move."""
    rng = np.random.default_rng(1)
    for trial in range(12):
        n = int(rng.integers(3, 13))
        s = random_similarity(n, trial)
        order = rng.permutation(n).astype(np.int64)
        m, code, sign = kernel_matrix(s, name, order)
        pos, deg, aux = kern.pair_state(m, order, code)
        a = int(rng.integers(0, n))
        out = np.full((2, n), np.nan)
        nr, nl = kern.walk(m, order, pos, deg, aux, a, n - 1, code, sign, out)
        assert (nr, nl) == (n - 1 - a, a)
        for j in range(1, nr + 1):
            expected = criterion_change(name, s, order, moved(order, a, a + j))
            assert out[0, j - 1] == pytest.approx(expected, rel=1e-9, abs=1e-9 * np.abs(s).sum())
        for j in range(1, nl + 1):
            expected = criterion_change(name, s, order, moved(order, a, a - j))
            assert out[1, j - 1] == pytest.approx(expected, rel=1e-9, abs=1e-9 * np.abs(s).sum())


@pytest.mark.parametrize("name", REFINABLE)
def test_apply_move_keeps_the_incremental_state_exact(name):
    """After a chain of moves the running sums equal a fresh computation, and the position-ordered
    matrix of the triple criteria equals the permuted input."""
    rng = np.random.default_rng(2)
    n = 15
    s = random_similarity(n, 7)
    order = rng.permutation(n).astype(np.int64)
    m, code, _sign = kernel_matrix(s, name, order)
    pos, _deg, aux = kern.pair_state(m, order, code)
    for _ in range(10):
        a, t = (int(v) for v in rng.choice(n, 2, replace=False))
        kern.apply_move(m, order, pos, aux, a, t, code)
    fresh_pos, _, fresh_aux = kern.pair_state(m, order, code)
    assert np.array_equal(pos, fresh_pos)
    assert np.allclose(aux, fresh_aux, rtol=1e-12, atol=1e-12 * np.abs(s).sum())
    if code in (kern.EVENTS, kern.DEVIATIONS, kern.GRADIENT):
        want, _, _ = kernel_matrix(s, name, order)
        assert np.array_equal(m, want)


@pytest.mark.parametrize("name", REFINABLE)
def test_insertion_pass_gain_equals_objective_change(name):
    rng = np.random.default_rng(3)
    n = 12
    s = random_similarity(n, 8)
    start = rng.permutation(n).astype(np.int64)
    m, code, sign = kernel_matrix(s, name, start)
    order = start.copy()
    state = kern.pair_state(m, order, code)
    before = objective(m, order, code, sign)
    gained, moves = kern.insertion_pass(m, order, *state, rng.permutation(n), np.ones(n, bool),
                                        code, sign, 5, 0.0)
    assert moves > 0
    after = objective(m, order, code, sign)  # the triple matrix moved along with the order
    assert gained == pytest.approx(after - before, rel=1e-9, abs=1e-9 * np.abs(s).sum())
    assert gained == pytest.approx(criterion_change(name, s, start, order), rel=1e-9,
                                   abs=1e-9 * np.abs(s).sum())


def test_two_opt_gain_equals_path_length_change():
    s = random_similarity(30, 3)
    order = np.random.default_rng(3).permutation(30).astype(np.int64)
    m, _, _ = kernel_matrix(s, "path_length", order)
    work = order.copy()
    gained, moves = kern.two_opt_pass(m, work, 29, 0.0)
    assert moves > 0
    change = criterion(s, work, "path_length") - criterion(s, order, "path_length")
    assert gained == pytest.approx(change, rel=1e-9)


@pytest.mark.parametrize("name,code", [("ar_events", kern.EVENTS), ("ar_deviations", kern.DEVIATIONS),
                                       ("gradient_raw", kern.GRADIENT)])
@pytest.mark.parametrize("ties", [False, True])
def test_triple_value_equals_plain_loops_and_quality(name, code, ties):
    s = random_similarity(22, 4)
    if ties:  # many equal entries: the ranks must keep ties apart from strict inequalities
        s = np.round(s * 4) / 4
    order = np.random.default_rng(4).permutation(22).astype(np.int64)
    p = np.ascontiguousarray(-s[np.ix_(order, order)])
    sign = -1.0 if name == "gradient_raw" else 1.0
    got = kern.triple_value(p, code)
    assert got == pytest.approx(sign * objective(p, order, code, sign), rel=1e-12)
    assert got == pytest.approx(criterion(s, order, name), rel=1e-12)


@pytest.mark.parametrize("name", REFINABLE)
@pytest.mark.parametrize("kind", ["similarity", "distance"])
def test_reported_values_equal_quality(name, kind):
    rng = np.random.default_rng(15)
    a = rng.random((35, 35)) * 3.0
    mat = (a + a.T) / 2
    order = rng.permutation(35)
    out = refine_order(mat, order, name, kind=kind)
    assert out.before == pytest.approx(criterion(mat, order, name, kind=kind), rel=1e-10)
    assert out.after == pytest.approx(criterion(mat, out.order, name, kind=kind), rel=1e-10)
    assert out.moves > 0 and out.converged


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
