"""Regression metrics against scikit-learn, scipy and a plain-loop DIR shot breakdown."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import gmean, kendalltau, pearsonr, spearmanr
from sklearn.metrics import (
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)

from clss.metrics import (
    ALIASES,
    GROUPS,
    canonical_name,
    gm,
    kendall,
    mae,
    mse,
    pearson,
    r2,
    regression_metrics,
    rmse,
    shot_metrics,
    spearman,
)


def _cases():
    rng = np.random.default_rng(0)
    t = rng.normal(size=50)
    yield t, t + rng.normal(scale=0.3, size=50)  # continuous
    ages = rng.integers(20, 60, size=80).astype(float)
    yield ages, np.round(ages + rng.normal(scale=4, size=80))  # integer targets, ties, zero errors
    yield np.array([3.0, 3.0, 3.0, 3.0]), np.array([1.0, 2.0, 3.0, 4.0])  # constant y_true
    yield np.array([1.0, 2.0]), np.array([2.0, 1.0])  # n = 2


CASES = list(_cases())


@pytest.mark.parametrize("case", range(len(CASES)))
def test_against_sklearn(case):
    t, p = CASES[case]
    assert mae(t, p) == pytest.approx(mean_absolute_error(t, p), rel=1e-12)
    assert mse(t, p) == pytest.approx(mean_squared_error(t, p), rel=1e-12)
    assert rmse(t, p) == pytest.approx(root_mean_squared_error(t, p), rel=1e-12)
    assert r2(t, p) == pytest.approx(r2_score(t, p), rel=1e-12, abs=1e-12)
    assert r2(t, t) == r2_score(t, t)  # the constant-y_true rule gives 1.0 when perfect


@pytest.mark.parametrize("case", range(len(CASES)))
def test_against_scipy(case):
    t, p = CASES[case]
    for ours, theirs in ((pearson, pearsonr), (spearman, spearmanr), (kendall, kendalltau)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scipy's ConstantInputWarning for the constant case
            expected = theirs(t, p).statistic
        assert ours(t, p) == pytest.approx(expected, abs=1e-12, nan_ok=True), ours.__name__
        assert ours(p, t) == pytest.approx(ours(t, p), abs=1e-15, nan_ok=True)
    err = np.abs(t - p)
    assert gm(t, p) == pytest.approx(gmean(np.maximum(err, 1e-5)), rel=1e-12)
    assert gm(t, p, eps=0.0) == pytest.approx(gmean(err), rel=1e-12, abs=0.0)


def test_gm_zero_errors():
    t = np.array([1.0, 2.0, 3.0])
    p = np.array([1.0, 2.5, 3.0])
    assert gm(t, p, eps=0.0) == 0.0  # DIR's unguarded gmean
    assert gm(t, p) == pytest.approx((1e-5 * 0.5 * 1e-5) ** (1 / 3))
    assert gm(t, p, eps=0.1) == pytest.approx((0.1 * 0.5 * 0.1) ** (1 / 3))
    with pytest.raises(ValueError, match="eps"):
        gm(t, p, eps=-1.0)


def test_degenerate_correlations_are_nan():
    const, ramp = [2.0, 2.0, 2.0], [1.0, 2.0, 3.0]
    for f in (pearson, spearman, kendall):
        assert math.isnan(f(const, ramp)) and math.isnan(f(ramp, const))
        assert math.isnan(f([1.0], [2.0]))
        assert f(ramp, ramp) == pytest.approx(1.0)
    assert math.isnan(r2([1.0], [1.0]))
    assert r2(const, ramp) == 0.0


def test_input_types_agree():
    rng = np.random.default_rng(1)
    t, p = rng.normal(size=20), rng.normal(size=20)
    expected = regression_metrics(t, p)
    as_list = regression_metrics(t.tolist(), p.tolist())
    as_torch = regression_metrics(torch.tensor(t), torch.tensor(p, requires_grad=True))
    assert as_list == expected and as_torch == expected
    f32 = regression_metrics(torch.tensor(t, dtype=torch.float32), p.astype(np.float32))
    for key, value in expected.items():
        assert f32[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key


@pytest.mark.parametrize("func", [mae, mse, rmse, r2, pearson, spearman, kendall, gm,
                                  regression_metrics])
def test_bad_inputs_raise(func):
    with pytest.raises(ValueError, match="different lengths"):
        func([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="empty"):
        func([], [])
    with pytest.raises(ValueError, match="y_pred contains 1 NaN"):
        func([1.0, 2.0], [1.0, float("nan")])
    with pytest.raises(ValueError, match="y_true contains 1 NaN or infinite"):
        func([float("inf"), 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="1-D"):
        func(np.ones((3, 1)), np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        func(1.0, 1.0)
    with pytest.raises(ValueError, match="converted"):
        func(["a", "b"], [1.0, 2.0])


# ---------------------------------------------------------------- shot metrics


def ref_shot_metrics(t, p, train, many, few, width, eps):
    """DIR's agedb-dir ``shot_metrics`` written as plain loops over samples."""
    groups = {g: [] for g in GROUPS}
    for y, yhat in zip(t, p, strict=True):
        count = sum(1 for z in train if math.floor(z / width) == math.floor(y / width))
        group = "many" if count > many else "few" if count < few else "medium"
        groups[group].append(abs(y - yhat))
    out = {}
    for g, errs in groups.items():
        out[f"{g}_count"] = len(errs)
        if not errs:
            out[f"{g}_mae"] = out[f"{g}_mse"] = out[f"{g}_gm"] = math.nan
            continue
        out[f"{g}_mae"] = sum(errs) / len(errs)
        out[f"{g}_mse"] = sum(e * e for e in errs) / len(errs)
        out[f"{g}_gm"] = math.exp(sum(math.log(max(e, eps)) for e in errs) / len(errs))
    return out


def _assert_same(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-12, nan_ok=True), key


def test_shot_metrics_matches_loop_reference():
    rng = np.random.default_rng(2)
    # A long-tailed integer label distribution: many-, medium- and few-shot bins all occur.
    train = np.round(rng.gamma(2.0, 8.0, size=3000))
    test = np.round(rng.uniform(0, 80, size=300))
    pred = np.round(test + rng.normal(scale=3, size=300))
    got = shot_metrics(test, pred, train)
    expected = ref_shot_metrics(test, pred, train, 100, 20, 1.0, 1e-5)
    _assert_same(got, expected)
    assert all(got[f"{g}_count"] > 0 for g in GROUPS)
    assert sum(got[f"{g}_count"] for g in GROUPS) == 300
    assert isinstance(got["many_count"], int)


def test_shot_metrics_parameters():
    rng = np.random.default_rng(3)
    train = rng.exponential(2.0, size=400)
    test = rng.uniform(0, 12, size=120)
    pred = test + rng.normal(scale=0.5, size=120)
    for many, few, width, eps in ((10, 2, 0.5, 1e-5), (30, 30, 0.25, 0.0), (50, 5, 2.0, 1e-3)):
        got = shot_metrics(test, pred, train, many_threshold=many, few_threshold=few,
                           bin_width=width, eps=eps)
        _assert_same(got, ref_shot_metrics(test, pred, train, many, few, width, eps))


def test_shot_metrics_empty_group_and_errors():
    got = shot_metrics([1.0, 2.0], [1.5, 2.5], [1.0] * 200 + [2.0] * 150)
    assert got["many_count"] == 2 and got["many_mae"] == pytest.approx(0.5)
    for g in ("medium", "few"):
        assert got[f"{g}_count"] == 0
        assert all(math.isnan(got[f"{g}_{m}"]) for m in ("mae", "mse", "gm"))
    with pytest.raises(ValueError, match="few_threshold"):
        shot_metrics([1.0], [1.0], [1.0], many_threshold=5, few_threshold=6)
    with pytest.raises(ValueError, match="bin_width"):
        shot_metrics([1.0], [1.0], [1.0], bin_width=0.0)
    with pytest.raises(ValueError, match="train_targets is empty"):
        shot_metrics([1.0], [1.0], [])
    with pytest.raises(ValueError, match="train_targets contains"):
        shot_metrics([1.0], [1.0], [float("nan")])


def test_regression_metrics_keys():
    rng = np.random.default_rng(4)
    t = rng.integers(0, 30, size=60).astype(float)
    p = t + rng.normal(size=60)
    base = regression_metrics(t, p)
    assert list(base) == ["mae", "mse", "rmse", "r2", "pearson", "spearman", "kendall", "gm"]
    full = regression_metrics(t, p, train_targets=np.repeat(np.arange(30.0), 25), eps=1e-3,
                              many_threshold=24)
    shots = shot_metrics(t, p, np.repeat(np.arange(30.0), 25), many_threshold=24, eps=1e-3)
    assert full == {**regression_metrics(t, p, eps=1e-3), **shots}
    assert full["many_count"] == 60


def test_aliases():
    assert ALIASES == {"lcc": "pearson", "srcc": "spearman", "ktau": "kendall", "gmae": "gm",
                       "gmean": "gm", "l1": "mae", "median": "medium", "low": "few"}
    assert canonical_name("LCC") == "pearson"
    assert canonical_name("median_l1") == "medium_mae"
    assert canonical_name("low_gmean") == "few_gm"
    assert canonical_name("many_mse") == "many_mse"
    assert canonical_name("rmse") == "rmse"
    assert canonical_name("not_a_group") == "not_a_group"


# ---------------------------------------------------------------- properties


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
pairs = st.integers(2, 30).flatmap(
    lambda n: st.tuples(st.lists(finite, min_size=n, max_size=n),
                        st.lists(finite, min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(pairs)
def test_error_metric_properties(data):
    t, p = data
    m = regression_metrics(t, p)
    assert m["mae"] >= 0 and m["rmse"] == pytest.approx(math.sqrt(m["mse"]))
    assert m["mae"] <= m["rmse"] * (1 + 1e-12) + 1e-12  # power-mean inequality
    assert m["gm"] <= m["mae"] + 1e-5 + 1e-9  # AM-GM on max(|e|, eps)
    assert m["r2"] <= 1.0
    for key in ("pearson", "spearman", "kendall"):
        assert math.isnan(m[key]) or -1.0 <= m[key] <= 1.0


@settings(max_examples=60, deadline=None)
@given(pairs, st.floats(0.5, 2.0), st.floats(-10, 10))
def test_correlations_invariant_to_increasing_affine_maps(data, scale, shift):
    t, p = np.array(data[0]), np.array(data[1])
    assume(np.ptp(p) > 1e-3 and np.ptp(t) > 1e-3)
    q = scale * p + shift
    assume(np.array_equal(np.argsort(p, kind="stable"), np.argsort(q, kind="stable")))
    assume(len(np.unique(p)) == len(np.unique(q)))  # rounding must not create or merge ties
    assert pearson(t, q) == pytest.approx(pearson(t, p), abs=1e-9)
    assert spearman(t, q) == pytest.approx(spearman(t, p), abs=1e-12)
    assert kendall(t, q) == pytest.approx(kendall(t, p), abs=1e-12)
    assert spearman(t, -p) == pytest.approx(-spearman(t, p), abs=1e-12)


def test_nearest_class_metrics_against_a_loop_and_sklearn():
    from sklearn.metrics import accuracy_score, cohen_kappa_score

    from clss.metrics import nearest_class_metrics

    rng = np.random.default_rng(3)
    classes = np.array([0.0, 1.0, 2.5, 4.0, 7.0])
    true = rng.choice(classes, 200)
    pred = rng.uniform(-2.0, 9.0, 200)
    pred[:5] = [1.75, 0.5, 5.5, -10.0, 100.0]  # two ties (lower class wins) and both ends
    nearest = []
    for p in pred:  # plain loop from the definition
        d = [abs(p - c) for c in classes]
        nearest.append(min(range(len(classes)), key=lambda k: (d[k], k)))
    t_idx = [list(classes).index(t) for t in true]
    got = nearest_class_metrics(true, pred, classes)
    assert nearest[:5] == [1, 0, 3, 0, 4]
    assert got["accuracy"] == pytest.approx(accuracy_score(t_idx, nearest), rel=1e-12)
    assert got["mae_classes"] == pytest.approx(np.mean(np.abs(np.subtract(t_idx, nearest))), rel=1e-12)
    assert got["qwk"] == pytest.approx(cohen_kappa_score(t_idx, nearest, weights="quadratic"), rel=1e-9)


@pytest.mark.parametrize(("true", "pred", "classes", "match"), [
    ([0.0, 1.5], [0.0, 1.0], [0, 1, 2], "true targets must be class values"),
    ([0.0, 1.0], [0.0, np.nan], [0, 1, 2], "predictions must be finite"),
    ([0.0, 1.0], [0.0, 1.0], [0, 2, 1], "strictly increasing"),
])
def test_nearest_class_metrics_refuses_bad_inputs(true, pred, classes, match):
    from clss.metrics import nearest_class_metrics

    with pytest.raises(ValueError, match=match):
        nearest_class_metrics(true, pred, classes)
