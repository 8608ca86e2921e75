"""Tests for :mod:`clss.seriation.stable_subset` (GCLSS memory-based feature selection)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clss.seriation.stable_subset import cross_view_perturbation, select_stable_subset

OBJECTIVES = ("min", "max_faithful")


def subset_value(p: np.ndarray, sel) -> float:
    """``f(S) = sum_{a != b in S} P[a, b]`` (ordered pairs)."""
    block = np.asarray(p, dtype=np.float64)[np.ix_(sel, sel)].copy()
    np.fill_diagonal(block, 0.0)
    return float(block.sum())


def brute_force_value(p: np.ndarray, k: int, maximise: bool = False) -> float:
    values = (subset_value(p, list(c)) for c in itertools.combinations(range(p.shape[0]), k))
    return max(values) if maximise else min(values)


def official_recurrence(p: np.ndarray, m: int, maximise: bool) -> list[int]:
    """The GCLSS ``minimize_matrix_sum`` recurrence, transcribed literally from its math.

    1-based prefixes, subsets as lists, the pair base case rescanned for every prefix and every
    inner sum recomputed from scratch: O(n^3 + n^2 m^2). ``maximise=True`` is the official
    direction. Unreachable states use -/+inf instead of the official -9999 sentinel.
    """
    n = p.shape[0]

    def better(x: float, y: float) -> bool:
        return x > y if maximise else x < y

    worst = -math.inf if maximise else math.inf
    dp = [[worst] * (m + 1) for _ in range(n + 1)]
    sel: list[list[list[int]]] = [[[] for _ in range(m + 1)] for _ in range(n + 1)]
    for i in range(2, n + 1):
        best, pair = p[0, 1], [1, 2]
        for r in range(i - 1):
            for c in range(r + 1, i):
                if better(p[r, c], best):
                    best, pair = p[r, c], [r + 1, c + 1]
        dp[i][2], sel[i][2] = best * 2, pair
    for i in range(3, n + 1):
        for j in range(3, min(i, m) + 1):
            dp[i][j], sel[i][j] = dp[i - 1][j], sel[i - 1][j]
            for kp in range(i):
                cand = dp[kp][j - 1] + sum(p[i - 1, s - 1] for s in sel[kp][j - 1]) * 2
                if better(cand, dp[i][j]):
                    dp[i][j], sel[i][j] = cand, [*sel[kp][j - 1], i]
    return [s - 1 for s in sel[n][m]]


def random_symmetric(rng: np.random.Generator, n: int, family: int) -> np.ndarray:
    """Three families: uniform, heavy-tailed, and low-rank |cosine|-like structure plus noise."""
    if family == 0:
        x = rng.uniform(size=(n, n))
    elif family == 1:
        x = rng.exponential(size=(n, n))
    else:
        f = rng.normal(size=(n, 3))
        x = np.abs(f @ f.T) + 0.1 * rng.uniform(size=(n, n))
    return (x + x.T) / 2


def assert_valid(sel: np.ndarray, n: int, k: int) -> None:
    assert isinstance(sel, np.ndarray) and sel.dtype == np.int64 and sel.shape == (k,)
    assert np.all(np.diff(sel) > 0) and sel.min() >= 0 and sel.max() < n


@st.composite
def symmetric_matrices(draw, min_n: int = 2, max_n: int = 10):
    """Exactly symmetric matrices; small integers half the time so that ties are common."""
    n = draw(st.integers(min_n, max_n))
    if draw(st.booleans()):
        values = st.integers(0, 3).map(float)
    else:
        values = st.floats(-10, 10, allow_nan=False, allow_infinity=False)
    flat = draw(st.lists(values, min_size=n * n, max_size=n * n))
    p = np.array(flat, dtype=np.float64).reshape(n, n)
    upper = np.triu(p, 1)
    return upper + upper.T + np.diag(np.diag(p))


# --- numba kernels == pure-Python reference ------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(p=symmetric_matrices(), data=st.data())
def test_numba_matches_python_reference(p, data):
    n = p.shape[0]
    k = data.draw(st.integers(1, n))
    for objective in OBJECTIVES:
        for method in ("dp", "greedy", "exact"):
            for refine in (False, True):
                kw = dict(objective=objective, method=method, refine=refine)
                fast = select_stable_subset(p, k, backend="numba", **kw)
                slow = select_stable_subset(p, k, backend="python", **kw)
                assert_valid(fast, n, k)
                np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize(("n", "k"), [(16, 5), (33, 16), (50, 8), (50, 47)])
def test_numba_matches_python_reference_larger(n, k):
    rng = np.random.default_rng(n * 100 + k)
    for family in range(3):
        p = random_symmetric(rng, n, family)
        for objective in OBJECTIVES:
            for refine in (False, True):
                kw = dict(objective=objective, refine=refine)
                fast = select_stable_subset(p, k, **kw)
                slow = select_stable_subset(p, k, backend="python", **kw)
                np.testing.assert_array_equal(fast, slow)
                assert_valid(fast, n, k)


# --- the DP is the official recurrence (direction aside) -----------------------------------------


@settings(max_examples=80, deadline=None)
@given(p=symmetric_matrices(min_n=3), data=st.data())
def test_dp_follows_official_recurrence(p, data):
    # Ties are frequent in the integer matrices, so this also pins the tie-breaking.
    k = data.draw(st.integers(2, p.shape[0]))
    for objective in OBJECTIVES:
        got = select_stable_subset(p, k, objective=objective, refine=False)
        want = official_recurrence(p, k, maximise=objective == "max_faithful")
        np.testing.assert_array_equal(got, want)


def test_dp_follows_official_recurrence_seeded():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n = int(rng.integers(5, 25))
        k = int(rng.integers(2, n))
        p = random_symmetric(rng, n, int(rng.integers(3)))
        for objective in OBJECTIVES:
            got = select_stable_subset(p, k, objective=objective, refine=False)
            want = official_recurrence(p, k, maximise=objective == "max_faithful")
            np.testing.assert_array_equal(got, want)


def test_max_faithful_reproduces_official_default_sizes():
    # AgeDB/UTK: 8 unlabeled samples and m = 8, so the official selection keeps everything.
    p = random_symmetric(np.random.default_rng(0), 8, 0)
    sel = select_stable_subset(p, 8, objective="max_faithful")
    np.testing.assert_array_equal(sel, np.arange(8))


# --- where the DP is provably exact --------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    u=st.lists(st.integers(-1000, 1000), min_size=2, max_size=11, unique=True),
    data=st.data(),
)
def test_dp_exact_for_additive_scores(u, data):
    # With P[a, b] = u[a] + u[b], f(S) = 2 (k - 1) sum_{s in S} u[s]: the optimum is the k
    # smallest u. By induction on the recurrence, dp[i][j] = 2 (j - 1) * (sum of the j smallest u
    # among the first i items). Base j = 2: the best pair is the two smallest. Step: the candidate
    # through k' is 2 (j - 2) U' + 2 sum_{s in sel} (u[i-1] + u[s]) = 2 (j - 1) (U' + u[i-1]), U'
    # the sum of the j-1 smallest among the first k' items, best at k' = i - 1; and the j smallest
    # of the first i items either skip item i-1 (dp[i-1][j]) or are it plus the j-1 smallest
    # before it (that candidate). Distinct integer u give exact float sums and a unique optimum,
    # so the subsets agree, not just the values.
    u = np.array(u, dtype=np.float64)
    n = u.size
    k = data.draw(st.integers(2, n))
    p = u[:, None] + u[None, :]
    np.fill_diagonal(p, data.draw(st.floats(-1e3, 1e3)))  # never read
    want = np.sort(np.argsort(u)[:k])
    got = select_stable_subset(p, k, refine=False)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(select_stable_subset(p, k, method="exact"), want)
    assert subset_value(p, got) == pytest.approx(brute_force_value(p, k), rel=1e-12, abs=1e-9)


# --- quality against brute force and greedy on small random instances ----------------------------


def _quality_counts(n_instances: int = 600, seed: int = 2024) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    keys = ("dp_opt", "dp_refined_opt", "greedy_opt", "win", "tie", "loss", "r_win", "r_tie")
    counts = dict.fromkeys((*keys, "r_loss"), 0)
    for t in range(n_instances):
        n = int(rng.integers(4, 13))
        k = int(rng.integers(2, n))
        p = random_symmetric(rng, n, t % 3)
        best = subset_value(p, select_stable_subset(p, k, method="exact"))
        tol = 1e-9 * max(1.0, abs(best))
        dp = subset_value(p, select_stable_subset(p, k, refine=False))
        dp_refined = subset_value(p, select_stable_subset(p, k))
        greedy = subset_value(p, select_stable_subset(p, k, method="greedy"))
        assert min(dp, dp_refined, greedy) >= best - tol
        counts["dp_opt"] += dp <= best + tol
        counts["dp_refined_opt"] += dp_refined <= best + tol
        counts["greedy_opt"] += greedy <= best + tol
        for prefix, value in (("", dp), ("r_", dp_refined)):
            outcome = "win" if value < greedy - tol else "loss" if value > greedy + tol else "tie"
            counts[prefix + outcome] += 1
    return counts


def test_dp_quality_on_random_small_cases():
    counts = _quality_counts()
    # The bare DP keeps one subset per state and loses to greedy on a sizeable share of instances
    # (on this fixed set: optimal in 378/600; vs greedy 107 wins, 341 ties, 152 losses). The
    # refined default (DP and greedy each polished by 1-swap, the better kept; optimal in 577/600)
    # is never worse than greedy by construction, whereas 1-swap from the DP alone still loses ~3%
    # of the time (docs/stable_subset.md).
    assert counts["r_loss"] == 0
    assert counts["loss"] > 0
    assert counts["dp_opt"] >= 0.55 * 600
    assert counts["dp_refined_opt"] >= 0.93 * 600
    assert counts["dp_refined_opt"] >= max(counts["dp_opt"], counts["greedy_opt"])


# --- objective directions ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(p=symmetric_matrices(min_n=3), data=st.data())
def test_max_faithful_sum_at_least_min_sum(p, data):
    k = data.draw(st.integers(1, p.shape[0]))
    for method in ("dp", "greedy", "exact"):
        low = select_stable_subset(p, k, method=method)
        high = select_stable_subset(p, k, method=method, objective="max_faithful")
        assert subset_value(p, high) >= subset_value(p, low) - 1e-9


def test_max_faithful_selects_least_stable_samples():
    # Even samples are stable (tiny perturbation among themselves), odd ones unstable.
    rng = np.random.default_rng(3)
    n = 12
    noisy = np.arange(n) % 2 == 1
    scale = np.where(noisy[:, None] | noisy[None, :], 1.0, 0.01)
    p = random_symmetric(rng, n, 0) * scale + np.where(noisy[:, None] & noisy[None, :], 1.0, 0.0)
    for method in ("dp", "exact", "greedy"):
        np.testing.assert_array_equal(select_stable_subset(p, 6, method=method), np.arange(0, n, 2))
        np.testing.assert_array_equal(
            select_stable_subset(p, 6, method=method, objective="max_faithful"), np.arange(1, n, 2)
        )


# --- edge cases and methods ----------------------------------------------------------------------


def test_k_equal_n_and_k_one():
    p = random_symmetric(np.random.default_rng(1), 7, 0)
    np.fill_diagonal(p, -50.0)  # the diagonal must not influence k == 1
    np.testing.assert_array_equal(select_stable_subset(p, 7), np.arange(7))
    totals = p.sum(axis=1) - np.diag(p)
    np.testing.assert_array_equal(select_stable_subset(p, 1), [np.argmin(totals)])
    np.testing.assert_array_equal(
        select_stable_subset(p, 1, objective="max_faithful"), [np.argmax(totals)]
    )
    for k in (1, 7):
        assert_valid(select_stable_subset(p, k), 7, k)


def test_k_two_is_the_best_pair():
    p = random_symmetric(np.random.default_rng(2), 9, 1)
    sel = select_stable_subset(p, 2, refine=False)
    assert subset_value(p, sel) == pytest.approx(brute_force_value(p, 2))


def test_auto_switches_between_exact_and_dp():
    rng = np.random.default_rng(5)
    small = random_symmetric(rng, 10, 2)  # C(10, 4) = 210: brute force
    exact = select_stable_subset(small, 4, method="exact")
    np.testing.assert_array_equal(select_stable_subset(small, 4, method="auto"), exact)
    large = random_symmetric(rng, 30, 2)  # C(30, 10) > 5000: refined DP
    np.testing.assert_array_equal(
        select_stable_subset(large, 10, method="auto"), select_stable_subset(large, 10)
    )


def test_refine_never_hurts_and_is_a_local_optimum():
    rng = np.random.default_rng(11)
    for _ in range(20):
        p = random_symmetric(rng, 20, 1)
        bare = select_stable_subset(p, 7, refine=False)
        refined = select_stable_subset(p, 7)
        value = subset_value(p, refined)
        assert value <= subset_value(p, bare) + 1e-12
        outside = np.setdiff1d(np.arange(20), refined)
        for u, v in itertools.product(refined, outside):
            swapped = np.sort(np.append(refined[refined != u], v))
            assert subset_value(p, swapped) >= value - 1e-9


def test_input_conversions_and_no_mutation():
    rng = np.random.default_rng(9)
    p = random_symmetric(rng, 15, 0)
    original = p.copy()
    want = select_stable_subset(p, 6)
    np.testing.assert_array_equal(p, original)
    np.testing.assert_array_equal(select_stable_subset(np.asfortranarray(p), 6), want)
    np.testing.assert_array_equal(select_stable_subset(p.tolist(), 6), want)
    noisy_diag = p.copy()
    np.fill_diagonal(noisy_diag, rng.normal(size=15) * 1e3)
    np.testing.assert_array_equal(select_stable_subset(noisy_diag, 6), want)
    t = torch.tensor(p, dtype=torch.float64, requires_grad=True)
    np.testing.assert_array_equal(select_stable_subset(t, 6), want)
    t32 = torch.tensor(p, dtype=torch.float32)
    np.testing.assert_array_equal(
        select_stable_subset(t32, 6), select_stable_subset(t32.double().numpy(), 6)
    )


def test_symmetrize():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(10, 10))
    with pytest.raises(ValueError, match="not symmetric"):
        select_stable_subset(x, 4)
    np.testing.assert_array_equal(
        select_stable_subset(x, 4, symmetrize=True), select_stable_subset((x + x.T) / 2, 4)
    )


def _sym(n: int) -> np.ndarray:
    return random_symmetric(np.random.default_rng(0), n, 0)


def _with(value: float) -> np.ndarray:
    p = _sym(5)
    p[1, 3] = p[3, 1] = value
    return p


@pytest.mark.parametrize(
    ("p", "k", "kwargs", "match"),
    [
        (np.ones((3, 4)), 2, {}, "square"),
        (np.ones(4), 2, {}, "square"),
        (np.ones((2, 2, 2)), 2, {}, "square"),
        (np.ones((1, 1)), 1, {}, "at least 2"),
        (_with(np.nan), 2, {}, "NaN"),
        (_with(np.inf), 2, {}, "non-finite"),
        (_with(-np.inf), 2, {}, "non-finite"),
        (_sym(5), 0, {}, "1 <= k <= n"),
        (_sym(5), -1, {}, "1 <= k <= n"),
        (_sym(5), 6, {}, "1 <= k <= n"),
        (np.triu(_sym(5)), 2, {}, "not symmetric"),
        (_sym(5), 2, {"objective": "max"}, "objective"),
        (_sym(5), 2, {"method": "ilp"}, "method"),
        (_sym(5), 2, {"backend": "cuda"}, "backend"),
        (_sym(40), 20, {"method": "exact"}, "exact"),
    ],
)
def test_bad_inputs_raise_value_error(p, k, kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_stable_subset(p, k, **kwargs)


@pytest.mark.parametrize(
    ("p", "k"),
    [(_sym(5), 2.5), (_sym(5), True), (np.array([["a", "b"], ["b", "a"]]), 1), (_sym(4) + 1j, 2)],
)
def test_bad_types_raise_type_error(p, k):
    with pytest.raises(TypeError):
        select_stable_subset(p, k)


# --- cross_view_perturbation ----------------------------------------------------------------------


def cross_view_loop(p0: torch.Tensor, p1: torch.Tensor, eps: float, mode: str) -> np.ndarray:
    x0 = [row / np.linalg.norm(row) for row in p0.double().numpy()]
    x1 = [row / np.linalg.norm(row) for row in p1.double().numpy()]
    n = len(x0)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            sims = [x0[i] @ x0[j], x1[i] @ x1[j], x0[i] @ x1[j], x1[i] @ x0[j]]
            mean = sum(sims) / 4
            std = math.sqrt(sum((s - mean) ** 2 for s in sims) / 4)
            out[i, j] = std / (abs(mean) + eps) if mode == "cv" else std
    return out


@pytest.mark.parametrize("mode", ["cv", "std"])
def test_cross_view_perturbation_matches_loop(mode):
    gen = torch.Generator().manual_seed(0)
    p0 = torch.randn(9, 5, generator=gen, dtype=torch.float64)
    p1 = p0 + 0.3 * torch.randn(9, 5, generator=gen, dtype=torch.float64)
    got = cross_view_perturbation(p0, p1, mode=mode)
    assert got.shape == (9, 9) and got.dtype == torch.float64
    want = cross_view_loop(p0, p1, 1e-8, mode)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-12)
    assert torch.equal(got, got.T)


def test_cross_view_perturbation_dtype_grad_and_guard():
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(8, 6, generator=gen, requires_grad=True)
    p1 = (p0 + 0.05 * torch.randn(8, 6, generator=gen)).detach().requires_grad_()
    v = cross_view_perturbation(p0, p1)
    assert v.dtype == torch.float32 and not v.requires_grad and torch.equal(v, v.T)
    np.testing.assert_allclose(v.numpy(), cross_view_loop(p0.detach(), p1.detach(), 1e-8, "cv"),
                               rtol=1e-3, atol=1e-5)
    assert_valid(select_stable_subset(v, 5), 8, 5)
    # Orthogonal samples have mean cosine 0: the guard keeps the CV finite (official code: inf/NaN).
    e = torch.eye(4, dtype=torch.float64)
    assert torch.isfinite(cross_view_perturbation(e, e)).all()
    assert not torch.isfinite(cross_view_perturbation(e, e, eps=0.0)).all()


@pytest.mark.gpu
def test_cross_view_perturbation_follows_cuda_device():
    p0 = torch.randn(8, 4, device="cuda")
    p1 = p0 + 0.1 * torch.randn(8, 4, device="cuda")
    v = cross_view_perturbation(p0, p1)
    assert v.device == p0.device
    np.testing.assert_allclose(v.cpu().numpy(), cross_view_perturbation(p0.cpu(), p1.cpu()).numpy(),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(select_stable_subset(v, 5), select_stable_subset(v.cpu(), 5))


@pytest.mark.parametrize(
    ("p0", "p1", "kwargs", "error"),
    [
        (torch.ones(4, 3), torch.ones(4, 2), {}, ValueError),
        (torch.ones(4), torch.ones(4), {}, ValueError),
        (torch.ones(0, 3), torch.ones(0, 3), {}, ValueError),
        (torch.ones(4, 3), torch.ones(4, 3, dtype=torch.float64), {}, ValueError),
        (torch.ones(4, 3), torch.ones(4, 3), {"mode": "var"}, ValueError),
        (torch.ones(4, 3), torch.ones(4, 3), {"eps": -1.0}, ValueError),
        (torch.ones(4, 3), torch.ones(4, 3), {"eps": math.nan}, ValueError),
        (torch.ones(4, 3, dtype=torch.int64), torch.ones(4, 3, dtype=torch.int64), {}, TypeError),
        (np.ones((4, 3)), np.ones((4, 3)), {}, TypeError),
    ],
)
def test_cross_view_perturbation_bad_inputs(p0, p1, kwargs, error):
    with pytest.raises(error):
        cross_view_perturbation(p0, p1, **kwargs)
