"""Order comparison against scipy and brute force, modulo reversal."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, spearmanr

from clss.seriation.compare import (
    ORDER_MEASURES,
    align_orders,
    compare_orders,
    order_from_ranks,
    rank_correlation_batch,
    ranks_from_order,
)

compare_module = importlib.import_module("clss.seriation.compare")

permutations = st.integers(2, 40).flatmap(lambda n: st.permutations(list(range(n))))


def brute_ranks(order):
    return [list(order).index(i) for i in range(len(order))]


def brute_discordant(ra, rb):
    n = len(ra)
    return sum(1 for i in range(n) for j in range(i + 1, n) if (ra[i] - ra[j]) * (rb[i] - rb[j]) < 0)


def bubble_sort_swaps(sequence):
    seq, swaps = list(sequence), 0
    for end in range(len(seq) - 1, 0, -1):
        for k in range(end):
            if seq[k] > seq[k + 1]:
                seq[k], seq[k + 1] = seq[k + 1], seq[k]
                swaps += 1
    return swaps


# ---------------------------------------------------------------- ranks <-> order


def test_ranks_and_order_are_inverse_permutations():
    rng = np.random.default_rng(0)
    order = rng.permutation(12)
    ranks = ranks_from_order(order)
    assert ranks.dtype == np.int64
    assert ranks.tolist() == brute_ranks(order)
    assert np.array_equal(order[ranks], np.arange(12))
    assert np.array_equal(order_from_ranks(ranks), order)
    batch = np.stack([rng.permutation(7) for _ in range(4)])
    assert np.array_equal(ranks_from_order(batch), np.stack([brute_ranks(o) for o in batch]))
    assert np.array_equal(order_from_ranks(ranks_from_order(batch)), batch)


def test_ranks_torch_follow_the_input():
    order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    ranks = ranks_from_order(order)
    assert isinstance(ranks, torch.Tensor) and ranks.dtype == torch.int64
    assert ranks.tolist() == brute_ranks(order.tolist())
    batch = torch.stack([torch.randperm(6, generator=torch.Generator().manual_seed(s))
                         for s in range(3)]).int()
    assert torch.equal(order_from_ranks(ranks_from_order(batch)), batch.long())


@pytest.mark.parametrize("bad,match", [([0, 1, 1], "permutation"), ([0, 1, 3], "permutation"),
                                       ([0.0, 1.0, 2.0], "integer"), ([True, False], "integer")])
def test_ranks_reject_non_permutations(bad, match):
    with pytest.raises(ValueError, match=match):
        ranks_from_order(bad)
    with pytest.raises(ValueError, match=match):
        order_from_ranks(torch.tensor(bad))
    with pytest.raises(ValueError, match="scalar"):
        ranks_from_order(3)


# ---------------------------------------------------------------- compare_orders


def test_correlations_match_scipy_without_reversal():
    rng = np.random.default_rng(3)
    for n in (2, 5, 30):
        a, b = rng.permutation(n), rng.permutation(n)
        ra, rb = brute_ranks(a), brute_ranks(b)
        assert compare_orders(a, b, "kendall", reverse=False) == pytest.approx(
            kendalltau(ra, rb).statistic, abs=1e-12)
        assert compare_orders(a, b, "spearman", reverse=False) == pytest.approx(
            spearmanr(ra, rb).statistic, abs=1e-12)


def test_distances_match_brute_force():
    rng = np.random.default_rng(4)
    for n in (1, 4, 25):
        a, b = rng.permutation(n), rng.permutation(n)
        ra, rb = brute_ranks(a), brute_ranks(b)
        footrule = sum(abs(x - y) for x, y in zip(ra, rb, strict=True))
        assert compare_orders(a, b, "footrule", reverse=False) == footrule
        assert compare_orders(a, b, "max_displacement", reverse=False) == max(
            [abs(x - y) for x, y in zip(ra, rb, strict=True)], default=0)
        # Swaps of neighbours that sort b's items into a's order.
        swaps = bubble_sort_swaps([rb[item] for item in a])
        assert compare_orders(a, b, "adjacent_transpositions", reverse=False) == swaps
        assert swaps == brute_discordant(ra, rb)
        assert compare_orders(a, b, "exact", reverse=False) == float(np.array_equal(a, b))


def test_reversal_cases():
    order = np.array([3, 0, 4, 1, 2])
    rev = order[::-1]
    assert compare_orders(order, rev, "kendall", reverse=False) == -1.0
    assert compare_orders(order, rev, "spearman", reverse=False) == pytest.approx(-1.0)
    for measure in ("kendall", "spearman", "exact"):
        assert compare_orders(order, rev, measure) == pytest.approx(1.0)
        assert compare_orders(order, order, measure) == pytest.approx(1.0)
    for measure in ("footrule", "max_displacement", "adjacent_transpositions"):
        assert compare_orders(order, rev, measure) == 0.0
        assert compare_orders(order, rev, measure, reverse=False) > 0
    assert compare_orders(order, rev, "exact", reverse=False) == 0.0
    assert compare_orders(order, rev, "adjacent_transpositions", reverse=False) == 10  # C(5, 2)


@settings(max_examples=60, deadline=None)
@given(permutations, st.randoms(use_true_random=False))
def test_reverse_takes_the_better_orientation(a, rnd):
    b = list(a)
    rnd.shuffle(b)
    a_rev = a[::-1]
    for measure, is_corr in ORDER_MEASURES.items():
        fwd = compare_orders(a, b, measure, reverse=False)
        bwd = compare_orders(a_rev, b, measure, reverse=False)
        best = max(fwd, bwd) if is_corr else min(fwd, bwd)
        assert compare_orders(a, b, measure) == pytest.approx(best, abs=1e-12)
    d = compare_orders(a, b, "adjacent_transpositions", reverse=False)
    f = compare_orders(a, b, "footrule", reverse=False)
    assert d <= f <= 2 * d  # Diaconis & Graham (1977)
    tau = compare_orders(a, b, "kendall", reverse=False)
    n = len(a)
    assert tau == pytest.approx(1 - 4 * d / (n * (n - 1)), abs=1e-12)


def test_compare_orders_errors_and_small_n():
    with pytest.raises(ValueError, match="unknown measure"):
        compare_orders([0, 1], [0, 1], "hamming")
    with pytest.raises(ValueError, match="3 items but reference has 2"):
        compare_orders([0, 1, 2], [0, 1])
    with pytest.raises(ValueError, match="reference is not a permutation"):
        compare_orders([0, 1, 2], [0, 0, 1])
    assert math.isnan(compare_orders([0], [0], "kendall"))
    assert math.isnan(compare_orders([0], [0], "spearman"))
    assert compare_orders([0], [0], "footrule") == 0.0
    assert compare_orders(torch.tensor([1, 0, 2]), [1, 0, 2], "exact") == 1.0


def test_align_orders():
    rng = np.random.default_rng(5)
    ref = rng.permutation(15)
    noisy = ref.copy()
    noisy[[2, 3]] = noisy[[3, 2]]
    orders = [ref, ref[::-1], noisy[::-1], noisy, torch.tensor(ref[::-1].copy())]
    for method in ("spearman", "kendall"):
        aligned = align_orders(orders, method=method)
        assert np.array_equal(aligned[0], ref) and np.array_equal(aligned[1], ref)
        assert np.array_equal(aligned[2], noisy) and np.array_equal(aligned[3], noisy)
        assert np.array_equal(aligned[4], ref)
        for o in aligned:
            assert compare_orders(o, ref, method, reverse=False) > 0
    assert align_orders([]) == []
    with pytest.raises(ValueError, match="items"):
        align_orders([ref, np.arange(5)])
    with pytest.raises(ValueError, match="method"):
        align_orders([ref], method="footrule")


# ---------------------------------------------------------------- batched rank correlation


def _tied_batch(rng, bsz, n, levels):
    return rng.integers(0, levels, size=(bsz, n)).astype(np.float64)


@pytest.mark.parametrize("method", ["kendall", "spearman"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_matches_scipy_with_ties(method, dtype):
    rng = np.random.default_rng(6)
    a, b = _tied_batch(rng, 6, 20, 5), rng.normal(size=(6, 20))
    b[:3] = np.round(b[:3])  # ties in both inputs for half of the rows
    got = rank_correlation_batch(torch.tensor(a, dtype=dtype), torch.tensor(b, dtype=dtype), method)
    assert got.dtype == dtype and got.shape == (6,)
    scipy_fn = kendalltau if method == "kendall" else spearmanr
    expected = [scipy_fn(a[i], b[i]).statistic for i in range(6)]
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got.double().numpy(), expected, atol=tol)


@pytest.mark.parametrize("method", ["kendall", "spearman"])
def test_batch_mask_matches_scipy_on_valid_entries(method):
    rng = np.random.default_rng(7)
    a, b = _tied_batch(rng, 5, 16, 6), _tied_batch(rng, 5, 16, 4)
    lengths = [16, 9, 4, 2, 1]
    mask = np.arange(16)[None, :] < np.array(lengths)[:, None]
    mask[0, [1, 5]] = False  # holes, not only ragged ends
    a[~mask] = np.nan  # invalid entries may hold anything
    got = rank_correlation_batch(torch.tensor(a), torch.tensor(b), method,
                                 mask=torch.tensor(mask)).numpy()
    scipy_fn = kendalltau if method == "kendall" else spearmanr
    for i in range(4):
        expected = scipy_fn(a[i][mask[i]], b[i][mask[i]]).statistic
        assert got[i] == pytest.approx(expected, abs=1e-12, nan_ok=True)
    assert math.isnan(got[4])  # a single valid entry


def test_batch_constant_rows_are_nan_and_integer_input():
    a = torch.tensor([[1, 1, 1, 1], [1, 2, 3, 4]])
    b = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]])
    for method in ("kendall", "spearman"):
        got = rank_correlation_batch(a, b, method)
        assert got.dtype == torch.get_default_dtype()
        assert math.isnan(got[0]) and got[1] == pytest.approx(-1.0)


def test_batch_kendall_blocks(monkeypatch):
    rng = np.random.default_rng(8)
    a, b = torch.tensor(_tied_batch(rng, 3, 25, 7)), torch.tensor(rng.normal(size=(3, 25)))
    whole = rank_correlation_batch(a, b)
    monkeypatch.setattr(compare_module, "_BLOCK_ELEMENTS", 1)  # one row per block
    torch.testing.assert_close(rank_correlation_batch(a, b), whole, rtol=1e-14, atol=1e-14)


def test_batch_errors():
    a = torch.rand(2, 5)
    with pytest.raises(ValueError, match="method"):
        rank_correlation_batch(a, a, "pearson")
    with pytest.raises(ValueError, match="shape"):
        rank_correlation_batch(a, a[:, :4])
    with pytest.raises(ValueError, match="shape"):
        rank_correlation_batch(a[0], a[0])
    with pytest.raises(ValueError, match="mask"):
        rank_correlation_batch(a, a, mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match="finite"):
        rank_correlation_batch(a, a.masked_fill(a > 0.5, float("inf")))
