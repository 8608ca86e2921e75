"""Seriation criteria against plain-loop references written from each definition (R seriation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import spearmanr

from clss.seriation.generators import (
    interval_robinson,
    permute_matrix,
    points_robinson,
    toeplitz_robinson,
)
from clss.seriation.quality import (
    BATCH_MEASURES,
    CRITERIA,
    criteria,
    criterion,
    criterion_batch,
    list_criteria,
)

DENSE_MEASURES = list_criteria("similarity")
SPARSE_MEASURES = list_criteria("similarity", sparse=True)


# ---------------------------------------------------------------- plain-loop references


def _dissimilarity(m, kind):
    return m.max() - m if kind == "similarity" else m


def _similarity(m, kind):
    return m if kind == "similarity" else 1.0 / (1.0 + m)


def _sign(x):
    return int(x > 0) - int(x < 0)


def ref_ar(d, weighted):
    n, total = d.shape[0], 0.0
    for i in range(n):
        for j in range(n):
            for k in range(j + 1, n):
                if k < i and d[i, j] < d[i, k]:  # j < k < i: the farther entry must not be smaller
                    total += abs(d[i, j] - d[i, k]) if weighted else 1
                if i < j and d[i, j] > d[i, k]:  # i < j < k
                    total += abs(d[i, j] - d[i, k]) if weighted else 1
    return total


def ref_rgar(d, w):
    n, events, total = d.shape[0], 0, 0
    for i in range(n):
        for j in range(max(i - w, 0), i):
            for k in range(j + 1, i):
                total += 1
                events += d[i, j] < d[i, k]
        for j in range(i + 1, n):
            for k in range(j + 1, min(i + w, n - 1) + 1):
                total += 1
                events += d[i, j] > d[i, k]
    return events / total


def ref_gradient(d, weighted):
    n, total = d.shape[0], 0.0
    for i in range(n):
        for k in range(i + 1, n):
            for j in range(k + 1, n):
                if weighted:
                    total += (d[i, j] - d[i, k]) + (d[i, j] - d[k, j])
                else:
                    total += _sign(d[i, j] - d[i, k]) + _sign(d[i, j] - d[k, j])
    return total


def ref_bar(d, b):
    n = d.shape[0]
    return sum((b + 1 - (j - i)) * d[i, j] for i in range(n) for j in range(i + 1, min(i + b, n - 1) + 1))


def ref_me(s):
    n = s.shape[0]
    pad = np.zeros((n + 2, n + 2))
    pad[1:-1, 1:-1] = s
    total = 0.0
    for i in range(1, n + 1):
        for j in range(1, n + 1):
            total += pad[i, j] * (pad[i, j - 1] + pad[i, j + 1] + pad[i - 1, j] + pad[i + 1, j])
    return total / 2


def ref_stress(s, moore):
    n, total = s.shape[0], 0.0
    for i in range(n):
        for j in range(n):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if (di, dj) == (0, 0) or (not moore and di != 0 and dj != 0):
                        continue
                    r, c = i + di, j + dj
                    if 0 <= r < n and 0 <= c < n:
                        total += (s[i, j] - s[r, c]) ** 2
    return total


def reference(matrix, order, measure, kind, **params):
    """Value of ``measure`` from its textbook definition, on the permuted matrix."""
    p = matrix[np.ix_(order, order)]
    d, s = _dissimilarity(p, kind), _similarity(p, kind)
    n = p.shape[0]
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    if measure == "ar_events":
        return ref_ar(d, False)
    if measure == "ar_deviations":
        return ref_ar(d, True)
    if measure == "rgar":
        return ref_rgar(d, params.get("window", n - 1))
    if measure == "bar":
        return ref_bar(d, params.get("b", max(1, n // 5)))
    if measure == "gradient_raw":
        return ref_gradient(d, False)
    if measure == "gradient_weighted":
        return ref_gradient(d, True)
    if measure == "path_length":
        return sum(d[i, i + 1] for i in range(n - 1))
    if measure == "lazy_path_length":
        return sum((n - i) * d[i - 1, i] for i in range(1, n))  # positions from 1 in R
    if measure == "inertia":
        return sum(d[i, j] * (i - j) ** 2 for i, j in pairs)
    if measure == "least_squares":
        return sum((d[i, j] - abs(i - j)) ** 2 for i, j in pairs)
    if measure == "ls":
        return sum(d[i, j] * abs(i - j) for i, j in pairs)
    if measure == "2sum":
        return sum(s[i, j] * (i - j) ** 2 for i, j in pairs)
    if measure == "me":
        return ref_me(s)
    if measure == "moore_stress":
        return ref_stress(s, True)
    if measure == "neumann_stress":
        return ref_stress(s, False)
    if measure == "rho":
        upper = [(i, j) for i in range(n) for j in range(i + 1, n)]
        return abs(spearmanr([d[i, j] for i, j in upper], [j - i for i, j in upper]).statistic)
    raise AssertionError(measure)


def ref_upsets(c, order):
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    n = c.shape[0]
    return sum(1 for i in range(n) for j in range(i + 1, n)
               if c[i, j] != 0 and _sign(c[i, j]) != _sign(rank[i] - rank[j]))


def random_symmetric(rng, n, *, ties=False, low=0.0):
    a = rng.uniform(low, 1.0, (n, n))
    if ties:
        a = np.round(a, 1)
    return np.triu(a) + np.triu(a, 1).T


# ---------------------------------------------------------------- agreement with the definitions


@pytest.mark.parametrize("kind", ["similarity", "distance"])
@pytest.mark.parametrize("n", [3, 5, 12])
def test_matches_plain_loop_reference(kind, n):
    rng = np.random.default_rng(n)
    for ties in (False, True):
        m = random_symmetric(rng, n, ties=ties)
        order = rng.permutation(n)
        got = criteria(m, order, kind=kind)
        assert set(got) == set(DENSE_MEASURES)
        for measure in DENSE_MEASURES:
            np.testing.assert_allclose(got[measure], reference(m, order, measure, kind),
                                       rtol=1e-10, atol=1e-10, err_msg=f"{measure} ties={ties}")


@pytest.mark.parametrize("measure,params", [("rgar", {"window": 2}), ("rgar", {"window": 4}),
                                            ("bar", {"b": 1}), ("bar", {"b": 6})])
def test_parameters_match_reference(measure, params):
    rng = np.random.default_rng(7)
    m = random_symmetric(rng, 9, ties=True)
    order = rng.permutation(9)
    for kind in ("similarity", "distance"):
        np.testing.assert_allclose(criterion(m, order, measure, kind=kind, **params),
                                   reference(m, order, measure, kind, **params), rtol=1e-12,
                                   atol=1e-12 * np.abs(m).max())


def test_negative_similarities_match_reference():
    rng = np.random.default_rng(3)
    m = random_symmetric(rng, 8, low=-1.0)  # e.g. cosine similarities
    order = rng.permutation(8)
    got = criteria(m, order)
    for measure in DENSE_MEASURES:
        np.testing.assert_allclose(got[measure], reference(m, order, measure, "similarity"),
                                   rtol=1e-10, atol=1e-10, err_msg=measure)


def test_upsets_matches_reference():
    rng = np.random.default_rng(11)
    n = 10
    scores = rng.normal(size=n)
    c = np.sign(np.subtract.outer(scores, scores)) * (rng.random((n, n)) < 0.7)
    c = np.triu(c, 1) - np.triu(c, 1).T  # skew-symmetric with missing comparisons
    flips = np.triu(rng.random((n, n)) < 0.2, 1)
    c[flips] *= -1
    c.T[flips] *= -1
    for _ in range(5):
        order = rng.permutation(n)
        assert criterion(c, order, "upsets", kind="comparison") == ref_upsets(c, order)
    assert criterion(c, np.argsort(scores), "upsets", kind="comparison") == ref_upsets(
        c, np.argsort(scores))


def test_rgar_default_window_is_all_triples():
    rng = np.random.default_rng(5)
    n = 9
    m = random_symmetric(rng, n)
    order = rng.permutation(n)
    events = criterion(m, order, "ar_events")
    assert criterion(m, order, "rgar") == pytest.approx(events / (n * (n - 1) * (n - 2) / 3))
    assert criterion(m, order, "rgar", window=n - 1) == criterion(m, order, "rgar")
    assert math.isnan(criterion(np.eye(2), [0, 1], "rgar"))


# ---------------------------------------------------------------- Robinson matrices


ROBINSON = {
    "toeplitz-exp": toeplitz_robinson(20, "exp"),
    "toeplitz-inverse": toeplitz_robinson(20, "inverse"),
    "toeplitz-banded": toeplitz_robinson(20, "banded", bandwidth=5),
    "points": points_robinson(20, kernel="laplace", rng=0),
    "intervals": interval_robinson(20, rng=1),
}


@pytest.mark.parametrize("name", sorted(ROBINSON))
def test_robinson_true_order_has_no_ar_events(name):
    s = ROBINSON[name]
    n = s.shape[0]
    identity = np.arange(n)
    for order in (identity, identity[::-1]):
        got = criteria(s, order, ["ar_events", "ar_deviations", "rgar"])
        assert got == {"ar_events": 0.0, "ar_deviations": 0.0, "rgar": 0.0}
    d = s.max() - s
    assert criterion(d, identity, "ar_events", kind="distance") == 0.0
    perm = np.random.default_rng(42).permutation(n)
    shuffled = permute_matrix(s, perm)
    assert criterion(shuffled, identity, "ar_events") > 0
    assert criterion(shuffled, identity, "ar_deviations") > 0
    # The hidden order of the shuffled matrix is argsort(perm).
    assert criterion(shuffled, np.argsort(perm), "ar_events") == 0.0


@pytest.mark.parametrize("measure", DENSE_MEASURES)
def test_direction_metadata_ranks_the_true_order_first(measure):
    s = toeplitz_robinson(16, "exp", rate=0.3)
    identity = np.arange(16)
    true_value = criterion(s, identity, measure)
    rng = np.random.default_rng(0)
    for _ in range(5):
        value = criterion(s, rng.permutation(16), measure)
        if CRITERIA[measure].direction == "merit":
            assert true_value > value
        else:
            assert true_value < value


def test_registry_metadata():
    expected = {
        "ar_events": ("loss", "dissimilarity"), "ar_deviations": ("loss", "dissimilarity"),
        "rgar": ("loss", "dissimilarity"), "bar": ("loss", "dissimilarity"),
        "gradient_raw": ("merit", "dissimilarity"), "gradient_weighted": ("merit", "dissimilarity"),
        "path_length": ("loss", "dissimilarity"), "lazy_path_length": ("loss", "dissimilarity"),
        "inertia": ("merit", "dissimilarity"), "least_squares": ("loss", "dissimilarity"),
        "ls": ("merit", "dissimilarity"), "2sum": ("loss", "similarity"),
        "me": ("merit", "similarity"), "moore_stress": ("loss", "similarity"),
        "neumann_stress": ("loss", "similarity"), "rho": ("merit", "dissimilarity"),
        "upsets": ("loss", "comparison"),
        "kendall": ("merit", "reference"), "spearman": ("merit", "reference"),
    }
    assert {k: (v.direction, v.uses) for k, v in CRITERIA.items()} == expected
    assert all(name == info.name for name, info in CRITERIA.items())
    assert CRITERIA["rgar"].params == ("window",) and CRITERIA["bar"].params == ("b",)
    with pytest.raises(AttributeError):
        CRITERIA["ls"].direction = "loss"  # frozen
    assert list_criteria("comparison") == ["upsets"]
    assert list_criteria() == sorted(k for k, v in CRITERIA.items() if v.uses != "reference")
    assert "ar_events" not in list_criteria("similarity", sparse=True)


# ---------------------------------------------------------------- symmetries


@pytest.mark.parametrize("kind", ["similarity", "distance"])
def test_reversal_invariance(kind):
    rng = np.random.default_rng(9)
    m = random_symmetric(rng, 10, ties=True)
    order = rng.permutation(10)
    forward, backward = criteria(m, order, kind=kind), criteria(m, order[::-1], kind=kind)
    for measure in DENSE_MEASURES:
        if measure == "lazy_path_length":  # its weights n - i depend on the direction
            assert forward[measure] != pytest.approx(backward[measure])
        else:
            assert backward[measure] == pytest.approx(forward[measure], rel=1e-12, abs=1e-12)


def test_upsets_of_reversed_order_is_the_complement():
    rng = np.random.default_rng(4)
    scores = rng.normal(size=12)
    c = np.sign(np.subtract.outer(scores, scores))
    order = rng.permutation(12)
    pairs = np.count_nonzero(np.triu(c, 1))
    up = criterion(c, order, "upsets", kind="comparison")
    assert criterion(c, order[::-1], "upsets", kind="comparison") == pairs - up
    assert criterion(c, np.argsort(scores), "upsets", kind="comparison") == 0


def test_case_insensitive_names_and_torch_inputs():
    rng = np.random.default_rng(1)
    m = random_symmetric(rng, 6)
    order = rng.permutation(6)
    expected = criterion(m, order, "ar_events")
    assert criterion(m, order, "AR_events") == expected
    assert criterion(torch.tensor(m), torch.tensor(order), "ar_events") == expected
    assert criterion(m.tolist(), order.tolist(), "2SUM") == criterion(m, order, "2sum")


# ---------------------------------------------------------------- sparse input


def _sparse_cases():
    rng = np.random.default_rng(6)
    banded = toeplitz_robinson(15, "banded", bandwidth=3)
    noisy = sp.random(15, 15, density=0.25, random_state=3, format="csr")
    noisy = noisy + noisy.T + sp.eye(15)
    negative = -(noisy.copy())  # every stored entry < 0: max(S) is an implicit zero
    full = random_symmetric(rng, 15)
    return {"banded": sp.csr_matrix(banded), "random": noisy.tocsr(), "negative": negative.tocsr(),
            "fully-stored": sp.csr_matrix(full)}


@pytest.mark.parametrize("case", ["banded", "random", "negative", "fully-stored"])
def test_sparse_equals_dense(case):
    s = _sparse_cases()[case]
    order = np.random.default_rng(8).permutation(15)
    got = criteria(s, order)
    assert set(got) == set(SPARSE_MEASURES)
    dense = criteria(s.toarray(), order, SPARSE_MEASURES)
    for measure in SPARSE_MEASURES:
        scale = max(1.0, abs(dense[measure]))
        assert got[measure] == pytest.approx(dense[measure], abs=1e-10 * scale), measure
    assert criterion(s, order, "bar", b=5) == pytest.approx(criterion(s.toarray(), order, "bar",
                                                                      b=5))


def test_sparse_comparison_upsets():
    rng = np.random.default_rng(12)
    scores = rng.normal(size=9)
    c = np.sign(np.subtract.outer(scores, scores)) * (np.abs(np.subtract.outer(
        np.arange(9), np.arange(9))) <= 2)
    order = rng.permutation(9)
    assert criterion(sp.csr_matrix(c), order, "upsets", kind="comparison") == ref_upsets(c, order)


# ---------------------------------------------------------------- batched torch


@pytest.mark.parametrize("kind", ["similarity", "distance"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batch_matches_numpy(kind, dtype):
    rng = np.random.default_rng(10)
    mats = np.stack([random_symmetric(rng, 9, ties=b % 2 == 0) for b in range(4)])
    orders = np.stack([rng.permutation(9) for _ in range(4)])
    tm, to = torch.tensor(mats, dtype=dtype), torch.tensor(orders)
    for measure in BATCH_MEASURES:
        got = criterion_batch(tm, to, measure, kind=kind)
        assert got.dtype == dtype and got.shape == (4,) and got.device == tm.device
        expected = [criterion(tm[b].double().numpy(), orders[b], measure, kind=kind)
                    for b in range(4)]
        tol = 1e-10 if dtype == torch.float64 else 1e-4
        np.testing.assert_allclose(got.double().numpy(), expected, rtol=tol,
                                   atol=tol * max(np.abs(expected).max(), 1.0), err_msg=measure)


def test_batch_integer_input():
    rng = np.random.default_rng(13)
    mats = torch.tensor(np.stack([np.round(random_symmetric(rng, 8) * 5) for _ in range(3)]),
                        dtype=torch.int64)
    orders = torch.stack([torch.randperm(8, generator=torch.Generator().manual_seed(b))
                          for b in range(3)])
    got = criterion_batch(mats, orders, "ar_events")
    assert got.dtype == torch.get_default_dtype()
    expected = [reference(mats[b].double().numpy(), orders[b].numpy(), "ar_events", "similarity")
                for b in range(3)]
    assert got.tolist() == expected


def test_batch_bad_inputs():
    s = torch.rand(2, 5, 5, dtype=torch.float64)
    s = s + s.transpose(1, 2)
    o = torch.stack([torch.arange(5), torch.arange(5)])
    with pytest.raises(ValueError, match="supports"):
        criterion_batch(s, o, "me")
    with pytest.raises(ValueError, match="shape"):
        criterion_batch(s[0], o, "2sum")
    with pytest.raises(ValueError, match="orders must have shape"):
        criterion_batch(s, o[:, :4], "2sum")
    with pytest.raises(ValueError, match="permutation"):
        criterion_batch(s, torch.zeros(2, 5, dtype=torch.int64), "2sum")
    with pytest.raises(ValueError, match="symmetric"):
        criterion_batch(s + torch.triu(torch.ones(5, 5)), o, "2sum")
    with pytest.raises(ValueError, match="negative"):
        criterion_batch(s - 10, o, "2sum", kind="distance")
    with pytest.raises(ValueError, match="NaN"):
        criterion_batch(s * float("nan"), o, "2sum")
    with pytest.raises(ValueError, match="kind"):
        criterion_batch(s, o, "2sum", kind="comparison")


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise():
    rng = np.random.default_rng(0)
    s = random_symmetric(rng, 5)
    order = np.arange(5)
    with pytest.raises(ValueError, match="unknown criterion"):
        criterion(s, order, "nope")
    with pytest.raises(ValueError, match="kind"):
        criterion(s, order, "2sum", kind="graph")
    with pytest.raises(ValueError, match="square"):
        criterion(s[:4], order, "2sum")
    with pytest.raises(ValueError, match="non-finite"):
        criterion(np.where(np.eye(5) > 0, np.nan, s), order, "2sum")
    with pytest.raises(ValueError, match="not symmetric"):
        criterion(s + np.triu(np.ones((5, 5)), 1), order, "2sum")
    with pytest.raises(ValueError, match="4 items but the matrix has 5"):
        criterion(s, order[:4], "2sum")
    with pytest.raises(ValueError, match="not a permutation"):
        criterion(s, [0, 1, 2, 3, 3], "2sum")
    with pytest.raises(ValueError, match="integer"):
        criterion(s, order.astype(float), "2sum")
    with pytest.raises(ValueError, match="1-D"):
        criterion(s, order[None], "2sum")
    with pytest.raises(ValueError, match="negative"):
        criterion(s - 2, order, "path_length", kind="distance")
    with pytest.raises(ValueError, match="unexpected"):
        criterion(s, order, "bar", window=2)
    with pytest.raises(ValueError, match="not taken"):
        criteria(s, order, ["2sum", "ls"], b=2)
    with pytest.raises(ValueError, match="window"):
        criterion(s, order, "rgar", window=1)
    with pytest.raises(ValueError, match="window"):
        criterion(s, order, "rgar", window=5)
    with pytest.raises(ValueError, match="band"):
        criterion(s, order, "bar", b=5)


def test_comparison_errors():
    s = random_symmetric(np.random.default_rng(1), 5)
    order = np.arange(5)
    with pytest.raises(ValueError, match="kind='comparison'"):
        criterion(s, order, "upsets")
    with pytest.raises(ValueError, match=r"symmetric: on a symmetric similarity"):
        criterion(s, order, "upsets", kind="comparison")
    with pytest.raises(ValueError, match="not skew-symmetric"):
        criterion(s + np.triu(np.ones((5, 5)), 1), order, "upsets", kind="comparison")
    c = np.triu(s, 1) - np.triu(s, 1).T
    with pytest.raises(ValueError, match="not on kind='comparison'"):
        criterion(c, order, "2sum", kind="comparison")
    assert criteria(c, order, kind="comparison") == {
        "upsets": criterion(c, order, "upsets", kind="comparison")}


def test_sparse_errors():
    s = sp.csr_matrix(toeplitz_robinson(6, "banded", bandwidth=2))
    order = np.arange(6)
    with pytest.raises(ValueError, match="toarray"):
        criterion(s, order, "ar_events")
    with pytest.raises(ValueError, match="sparse matrix must be a similarity"):
        criterion(s, order, "2sum", kind="distance")


def test_agreement_with_a_reference_order():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(5)
    m = rng.uniform(size=(9, 9))
    m = m + m.T
    order, reference = rng.permutation(9), rng.permutation(9)
    ra, rb = np.argsort(order), np.argsort(reference)
    assert criterion(m, order, "kendall", reference=reference) == pytest.approx(
        abs(kendalltau(ra, rb).statistic))
    assert criterion(m, order, "spearman", reference=reference) == pytest.approx(
        abs(spearmanr(ra, rb).statistic))
    assert criterion(m, order[::-1], "kendall", reference=order) == pytest.approx(1.0)
    got = criteria(m, order, ["kendall", "ar_events"], reference=reference)
    assert set(got) == {"kendall", "ar_events"}
    assert "kendall" not in list_criteria() and CRITERIA["kendall"].direction == "merit"
    with pytest.raises(ValueError, match="reference="):
        criterion(m, order, "kendall")
