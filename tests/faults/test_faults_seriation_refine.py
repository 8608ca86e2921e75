# ruff: noqa: E501  (one case per line keeps the tables readable)
"""Fault suite of refine_order, seriate(refine=..., method="olo", linkage=...) and their CLI flags."""

import numpy as np
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from clss.seriation import refine_order, seriate
from clss.seriation.generators import permute_matrix, points_robinson
from clss_cli.main import main

S = points_robinson(6, rng=0)
ORDER = [3, 1, 0, 2, 5, 4]
BIG_SPARSE = sp.diags([np.ones(20_000)], [1], shape=(20_001, 20_001)) + sp.diags([np.ones(20_000)], [-1], shape=(20_001, 20_001))

REFINE_ERRORS = [
    pytest.param({"criterion_name": "foo"}, ValueError, "cannot refine for criterion 'foo'", id="unknown-criterion"),
    pytest.param({"criterion_name": "rgar"}, ValueError, "not one the local search optimises", id="criterion-not-refinable"),
    pytest.param({"criterion_name": "upsets"}, ValueError, "cannot refine for criterion", id="comparison-criterion"),
    pytest.param({"criterion_name": 3}, TypeError, "criterion must be a string", id="criterion-int"),
    pytest.param({"criterion_name": None}, TypeError, "criterion must be a string", id="criterion-none"),
    pytest.param({"kind": "comparison"}, ValueError, "kind must be 'similarity' or 'distance'", id="kind-comparison"),
    pytest.param({"window": 0}, ValueError, "window must be an integer >= 1", id="window-0"),
    pytest.param({"window": -3}, ValueError, "window must be an integer >= 1", id="window-negative"),
    pytest.param({"window": 2.5}, ValueError, "window must be an integer >= 1", id="window-float"),
    pytest.param({"window": True}, ValueError, "window must be an integer >= 1", id="window-bool"),
    pytest.param({"max_passes": 0}, ValueError, "max_passes must be an integer >= 1", id="passes-0"),
    pytest.param({"max_passes": None}, ValueError, "max_passes must be an integer >= 1", id="passes-none"),
    pytest.param({"time_limit": 0}, ValueError, "time_limit must be a positive number", id="time-0"),
    pytest.param({"time_limit": -1.0}, ValueError, "time_limit must be a positive number", id="time-negative"),
    pytest.param({"time_limit": float("nan")}, ValueError, "time_limit must be a positive number", id="time-nan"),
    pytest.param({"time_limit": float("inf")}, ValueError, "time_limit must be a positive number", id="time-inf"),
    pytest.param({"time_limit": "1s"}, ValueError, "time_limit must be a positive number", id="time-string"),
    pytest.param({"seed": "a"}, TypeError, "seed must be an integer", id="seed-string"),
    pytest.param({"seed": 1.5}, TypeError, "seed must be an integer", id="seed-float"),
    pytest.param({"order": [0, 1, 2, 3]}, ValueError, "order has 4 items but the matrix has 6", id="order-short"),
    pytest.param({"order": [0, 0, 1, 2, 3, 4]}, ValueError, "not a permutation", id="order-repeat"),
    pytest.param({"order": [0, 1, 2, 3, 4, 9]}, ValueError, "not a permutation", id="order-out-of-range"),
    pytest.param({"order": [[0, 1, 2, 3, 4, 5]]}, ValueError, "order must be 1-D", id="order-2d"),
    pytest.param({"similarity": np.full((3, 3), np.nan), "order": [0, 1, 2]}, ValueError, "non-finite", id="nan-matrix"),
    pytest.param({"similarity": np.array([[0, 1.0], [2.0, 0]]), "order": [0, 1]}, ValueError, "pass symmetrize=", id="asymmetric"),
    pytest.param({"similarity": np.ones((2, 3)), "order": [0, 1]}, ValueError, "square 2-D matrix", id="non-square"),
    pytest.param({"similarity": np.ones((1, 1)), "order": [0]}, ValueError, "at least 2 items", id="one-item"),
    pytest.param({"similarity": -np.ones((3, 3)), "order": [0, 1, 2], "kind": "distance"}, ValueError, "negative entries", id="negative-distance"),
    pytest.param({"similarity": sp.csr_matrix(S), "kind": "distance"}, ValueError, "must be a similarity", id="sparse-distance"),
    pytest.param({"similarity": BIG_SPARSE, "order": np.arange(20_001)}, ValueError, "refine at most 20000 items", id="sparse-too-big"),
]


@pytest.mark.parametrize("overrides,error,phrase", REFINE_ERRORS)
def test_refine_order_rejects(overrides, error, phrase):
    args = {"similarity": S, "order": ORDER, "criterion_name": "2sum", **overrides}
    with pytest.raises(error, match=phrase):
        refine_order(args.pop("similarity"), args.pop("order"), args.pop("criterion_name"), **args)


SERIATE_ERRORS = [
    pytest.param({"refine": "foo"}, ValueError, "cannot refine for criterion 'foo'", id="refine-unknown"),
    pytest.param({"refine": 2}, TypeError, "criterion must be a string", id="refine-int"),
    pytest.param({"refine": "kendall"}, ValueError, "not one the local search optimises", id="refine-reference-criterion"),
    pytest.param({"refine": "2sum", "method": "anchored", "anchors": [0], "anchor_values": [0.0]}, ValueError, "refine= reorders items", id="refine-anchored"),
    pytest.param({"refine": "2sum", "anchors": [0, 5], "anchor_values": [0.0, 1.0]}, ValueError, "refine= reorders items", id="refine-auto-anchored"),
    pytest.param({"method": "olo", "linkage": "ward"}, ValueError, "linkage must be one of", id="linkage-ward"),
    pytest.param({"method": "olo", "linkage": None}, ValueError, "linkage must be one of", id="linkage-none"),
    pytest.param({"method": "OLO"}, ValueError, "unknown method 'OLO'", id="method-case"),
]


@pytest.mark.parametrize("overrides,error,phrase", SERIATE_ERRORS)
def test_seriate_refine_and_olo_reject(overrides, error, phrase):
    with pytest.raises(error, match=phrase):
        seriate(S, **overrides)


def test_refine_refuses_a_huge_sparse_graph_before_ordering_it():
    with pytest.raises(ValueError, match="refine= works on the dense matrix"):
        seriate(BIG_SPARSE, refine="2sum")


def test_olo_refuses_to_densify_a_huge_sparse_graph():
    with pytest.raises(ValueError, match="method='olo' works on the dense matrix"):
        seriate(BIG_SPARSE, method="olo")


EXTREMES = [
    pytest.param(996, id="near-float-max"),
    pytest.param(-997, id="tiny"),
    pytest.param(-1070, id="subnormal"),
]


@pytest.mark.parametrize("exponent", EXTREMES)
@pytest.mark.parametrize("name", ["2sum", "path_length", "ar_deviations", "ls"])
def test_extreme_magnitudes_refine_as_the_matrix_scaled_to_one(exponent, name):
    rng = np.random.default_rng(0)
    e = rng.random((20, 20))
    given = np.ldexp(points_robinson(20, rng=1) + 0.3 * (e + e.T), exponent)
    start = rng.permutation(20)
    ref = refine_order(np.ldexp(given, -exponent), start, name)  # exact: the digits the input kept
    got = refine_order(given, start, name)
    assert np.array_equal(got.order, ref.order)
    assert np.isfinite(got.before) and np.isfinite(got.after)


def test_constant_matrix_and_two_items_are_left_alone():
    out = refine_order(np.ones((5, 5)), [4, 2, 0, 1, 3], "ar_events")
    assert out.order.tolist() == [4, 2, 0, 1, 3] and out.moves == 0
    assert refine_order(np.array([[0, 1.0], [1.0, 0]]), [1, 0], "path_length").order.tolist() == [1, 0]
    assert seriate(np.array([[0, 1.0], [1.0, 0]]), method="olo", refine="ar_events").n == 2


def test_disconnected_graph_refines_and_keeps_a_permutation():
    s = np.zeros((6, 6))
    s[:3, :3] = s[3:, 3:] = 1.0
    with pytest.warns(Warning, match="connected components"):
        res = seriate(s, refine="2sum")
    assert sorted(res.order.tolist()) == list(range(6))
    assert seriate(s, method="olo").order.size == 6


def test_negative_similarities_are_refined_without_nan():
    s = points_robinson(15, rng=2) - 0.5
    out = refine_order(s, np.random.default_rng(3).permutation(15), "ar_deviations")
    assert np.isfinite(out.after) and out.after <= out.before


CLI_ERRORS = [
    pytest.param(["--refine", "foo"], "cannot refine for criterion 'foo'", id="cli-refine-unknown"),
    pytest.param(["--refine", "rgar"], "not one the local search optimises", id="cli-refine-not-refinable"),
    pytest.param(["--method", "olo", "--linkage", "ward"], "'ward' is not one of", id="cli-linkage"),
    pytest.param(["--method", "anchored", "--refine", "2sum"], "needs --anchors", id="cli-anchored-without-anchors"),
]


@pytest.mark.parametrize("flags,phrase", CLI_ERRORS)
def test_cli_rejects(flags, phrase):
    result = CliRunner().invoke(main, ["seriate", "--example", "robinson", *flags])
    assert result.exit_code == 2
    assert phrase in result.output
    assert "Traceback" not in result.output


def test_cli_olo_with_refinement_reports_it():
    result = CliRunner().invoke(main, ["seriate", "--example", "robinson", "--method", "olo", "--refine", "ar_events"])
    assert result.exit_code == 0, result.output
    assert "refined ar_events" in result.output and "olo" in result.output


def test_cli_help_lists_every_refinable_criterion():
    from clss.seriation import REFINABLE

    result = CliRunner().invoke(main, ["seriate", "--help"])
    flat = " ".join(result.output.split())
    assert all(name in flat for name in REFINABLE)


def test_refined_robinson_shuffle_recovered_after_rcm():
    s = points_robinson(40, rng=5)
    perm = np.random.default_rng(5).permutation(40)
    res = seriate(permute_matrix(s, perm), method="rcm", refine="ar_events")
    assert res.info["refine"]["after"] == 0.0
