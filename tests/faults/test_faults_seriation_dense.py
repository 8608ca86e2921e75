# ruff: noqa: E501  (one case per line keeps the tables readable)
"""Fault suite of the dense spectral solvers behind clss.seriation.seriate: bad solver options.

Each case raises one clear error naming the keyword (type and a phrase of the message), before any
O(n²) work; the dense solver functions refuse unknown solver names the same way.
"""

import numpy as np
import pytest

from clss.seriation import seriate
from clss.seriation.dense_solvers import fiedler_pairs_dense, smallest_eigenpairs_dense
from clss.seriation.generators import toeplitz_robinson

S = toeplitz_robinson(240, "exp", rate=0.05)

SERIATE_CASES = [
    pytest.param({"solver": "arnoldi"}, ValueError, "solver 'arnoldi' does not apply", id="solver-unknown"),
    pytest.param({"solver": "Davidson"}, ValueError, "does not apply to method 'spectral'", id="solver-case"),
    pytest.param({"solver": 3}, ValueError, "solver 3 does not apply", id="solver-int"),
    pytest.param({"solver": "dense", "method": "spectral"}, ValueError, "expected one of", id="solver-anchored-only"),
    pytest.param({"solver": "davidson", "method": "anchored", "anchors": [0, 1], "anchor_values": [0.0, 1.0]}, ValueError, "does not apply to method 'anchored'", id="solver-davidson-anchored"),
    pytest.param({"tol": -1e-8}, ValueError, r"tol must be in \(0, 1\)", id="tol-negative"),
    pytest.param({"tol": 0.0}, ValueError, r"tol must be in \(0, 1\)", id="tol-zero"),
    pytest.param({"tol": 1.0}, ValueError, r"tol must be in \(0, 1\)", id="tol-one"),
    pytest.param({"tol": float("nan")}, ValueError, r"tol must be in \(0, 1\)", id="tol-nan"),
    pytest.param({"tol": float("inf")}, ValueError, r"tol must be in \(0, 1\)", id="tol-inf"),
    pytest.param({"tol": "1e-8"}, TypeError, "tol must be a number", id="tol-string"),
    pytest.param({"tol": True}, TypeError, "tol must be a number", id="tol-bool"),
    pytest.param({"tol": [1e-8]}, TypeError, "tol must be a number", id="tol-list"),
    pytest.param({"maxiter": 0}, ValueError, "maxiter must be >= 1", id="maxiter-zero"),
    pytest.param({"maxiter": -5}, ValueError, "maxiter must be >= 1", id="maxiter-negative"),
    pytest.param({"maxiter": 2.5}, TypeError, "maxiter must be an integer", id="maxiter-float"),
    pytest.param({"maxiter": True}, TypeError, "maxiter must be an integer", id="maxiter-bool"),
    pytest.param({"maxiter": "10"}, TypeError, "maxiter must be an integer", id="maxiter-string"),
    pytest.param({"seed": -1}, ValueError, "seed must be a non-negative integer", id="seed-negative"),
    pytest.param({"seed": 1.5}, TypeError, "seed must be a non-negative integer", id="seed-float"),
    pytest.param({"seed": "0"}, TypeError, "seed must be a non-negative integer", id="seed-string"),
    pytest.param({"seed": False}, TypeError, "seed must be a non-negative integer", id="seed-bool"),
]


@pytest.mark.parametrize(("kwargs", "error", "phrase"), SERIATE_CASES)
def test_seriate_rejects_bad_solver_options(kwargs, error, phrase):
    with pytest.raises(error, match=phrase):
        seriate(S, **kwargs)


W = S - np.diag(np.diag(S))
D = W.sum(1)

SOLVER_CASES = [
    pytest.param(lambda: fiedler_pairs_dense(W, D, "unnormalized", solver="arpack"), "unknown dense solver 'arpack'", id="pairs-unknown"),
    pytest.param(lambda: fiedler_pairs_dense(W, D, "symmetric", solver=""), "unknown dense solver ''", id="pairs-empty"),
    pytest.param(lambda: smallest_eigenpairs_dense(np.diag(D) - W, 3, solver="davidson"), "unknown dense solver 'davidson'", id="eigenpairs-davidson-needs-weights"),
]


@pytest.mark.parametrize(("call", "phrase"), SOLVER_CASES)
def test_dense_solver_functions_reject_unknown_names(call, phrase):
    with pytest.raises(ValueError, match=phrase):
        call()


def test_valid_extremes_of_the_options_still_work():
    # the loosest and tightest accepted tolerances, one iteration, a large seed: valid results
    for kwargs in ({"tol": 0.5}, {"tol": 1e-14}, {"maxiter": 1}, {"seed": 2**63 - 1},
                   {"tol": np.float32(1e-6), "maxiter": np.int64(50), "seed": np.int64(3)}):
        res = seriate(S, **kwargs)
        assert res.order.shape == (240,)
        assert np.isfinite(res.residual)
