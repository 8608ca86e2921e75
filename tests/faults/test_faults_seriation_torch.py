# ruff: noqa: E501  (one case per line keeps the tables readable)
"""Fault suite of seriate()'s torch route (backend="torch"; CUDA tensors take it by default).

Every bad input raises one clear error, and where the numpy route accepts the same input it raises
the very same message (the table's ``same`` column).
"""

import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from clss.seriation import seriate, seriate_batch
from clss.seriation.generators import points_robinson

_rng = np.random.default_rng(0)
S = points_robinson(8, rng=_rng)


def _with(i, j, v, m=S):
    out = m.copy()
    out[i, j] = v
    return out


ASYM = _with(0, 1, S[0, 1] + 0.5)
NEG = _with(0, 1, -0.3, _with(1, 0, -0.3))
NAN = _with(2, 3, np.nan)
INF = _with(4, 4, np.inf)
BIG_EMPTY = sp.csr_matrix((20_001, 20_001))


def _coo(m):
    m = sp.coo_matrix(m)
    return torch.sparse_coo_tensor(np.vstack([m.row, m.col]), m.data, m.shape, check_invariants=True)


def _scipy_free_csr(m):
    with warnings.catch_warnings():  # torch's "sparse CSR support is in beta" notice
        warnings.simplefilter("ignore", UserWarning)
        return _coo(m).to_sparse_csr()


def _scipy(t):
    coo = t.to_sparse_coo().coalesce()
    return sp.csr_matrix((coo.values().numpy(), coo.indices().numpy()), shape=tuple(coo.shape))


# (input, keyword arguments, error type, message phrase, the numpy route raises the same message)
CASES = [
    pytest.param(torch.tensor(NAN), {}, ValueError, r"contains 1 non-finite \(NaN\) entries, first at \(2, 3\)", True, id="dense-nan"),
    pytest.param(torch.tensor(INF), {}, ValueError, r"1 non-finite \(infinite\) entries, first at \(4, 4\)", True, id="dense-inf-diagonal"),
    pytest.param(_coo(NAN), {}, ValueError, r"non-finite \(NaN\)", True, id="sparse-nan"),
    pytest.param(_coo(INF), {}, ValueError, r"non-finite \(infinite\)", True, id="sparse-inf"),
    pytest.param(torch.tensor(NEG), {}, ValueError, r"has 2 negative weights .*negative='clip'", True, id="dense-negative"),
    pytest.param(_coo(NEG), {}, ValueError, r"has 2 negative weights", True, id="sparse-negative"),
    pytest.param(_coo(NEG), {"negative": "shift"}, ValueError, r"negative='shift' needs a dense matrix", True, id="sparse-shift"),
    pytest.param(torch.tensor(ASYM), {}, ValueError, r"not symmetric: max \|S - S\^T\| = 0\.5.*symmetrize=", True, id="dense-asymmetric"),
    pytest.param(_coo(ASYM), {}, ValueError, r"not symmetric", True, id="sparse-asymmetric"),
    pytest.param(torch.ones(3, 4), {}, ValueError, r"must be a square 2-D matrix, got shape \(3, 4\)", True, id="dense-non-square"),
    pytest.param(torch.ones(2, 3, 3), {}, ValueError, r"square 2-D matrix, got shape \(2, 3, 3\)", False, id="dense-3d"),
    pytest.param(_coo(np.ones((3, 4))), {}, ValueError, r"square 2-D matrix, got shape \(3, 4\)", True, id="sparse-bad-shape"),
    pytest.param(_scipy_free_csr(np.ones((3, 4))), {}, ValueError, r"square 2-D matrix", True, id="csr-bad-shape"),
    pytest.param(torch.ones(1, 1), {}, ValueError, r"at least 2 items to order, got n = 1", True, id="one-item"),
    pytest.param(torch.ones(2, 2, dtype=torch.complex128), {}, TypeError, r"real-valued", True, id="complex"),
    pytest.param(np.array([["a", "b"], ["c", "d"]]), {}, TypeError, r"numeric matrix, got dtype", True, id="strings"),
    pytest.param(nx.path_graph(4), {}, TypeError, r"backend='torch' takes a torch tensor", False, id="networkx"),
    pytest.param(torch.tensor(S), {"anchors": [0, 9], "anchor_values": [0.0, 1.0]}, ValueError, r"anchor indices out of range \[0, 8\): \[9\]", True, id="anchor-out-of-range"),
    pytest.param(torch.tensor(S), {"anchors": [-1], "anchor_values": [0.0]}, ValueError, r"out of range", True, id="anchor-negative"),
    pytest.param(torch.tensor(S), {"anchors": [1, 1], "anchor_values": [0.0, 1.0]}, ValueError, r"duplicated anchor indices: \[1\]", True, id="anchor-duplicated"),
    pytest.param(torch.tensor(S), {"anchors": [1, 2], "anchor_values": [0.0]}, ValueError, r"anchor_values has 1 entries but there are 2", True, id="anchor-length"),
    pytest.param(torch.tensor(S), {"anchors": [1, 2], "anchor_values": [0.0, np.nan]}, ValueError, r"NaN/inf", True, id="anchor-nan-value"),
    pytest.param(torch.tensor(S), {"anchors": [1.5], "anchor_values": [0.0]}, TypeError, r"integer indices", True, id="anchor-float"),
    pytest.param(torch.tensor(S), {"anchor_values": [0.0]}, ValueError, r"anchor_values were given without anchors", True, id="values-without-anchors"),
    pytest.param(torch.tensor(S), {"method": "anchored"}, ValueError, r"needs anchors and anchor_values", True, id="anchored-without-anchors"),
    pytest.param(torch.tensor(S), {"anchors": [0], "anchor_values": [1.0], "laplacian": "symmetric"}, ValueError, r"not laplacian='symmetric'", True, id="anchored-symmetric"),
    pytest.param(torch.tensor(S), {"solver": "shift-invert"}, ValueError, r"numpy route only.*backend='numpy'", False, id="cpu-only-solver"),
    pytest.param(torch.tensor(S), {"anchors": [0], "anchor_values": [1.0], "solver": "direct"}, ValueError, r"numpy route only", False, id="cpu-only-anchored-solver"),
    pytest.param(torch.tensor(S), {"method": "rcm"}, ValueError, r"method='rcm' runs on the numpy route only", False, id="rcm"),
    pytest.param(torch.tensor(S), {"symmetrize": "mean"}, ValueError, r"symmetrize must be False", True, id="bad-symmetrize"),
    pytest.param(torch.tensor(S), {"negative": "abs"}, ValueError, r"negative must be one of", True, id="bad-negative"),
    pytest.param(torch.tensor(S), {"kind": "distance", "kernel": "cosine"}, ValueError, r"unknown kernel 'cosine'", True, id="bad-kernel"),
    pytest.param(torch.tensor(NEG), {"kind": "distance"}, ValueError, r"distances must be >= 0", True, id="negative-distance"),
    pytest.param(torch.tensor(np.kron(np.eye(2), S[:4, :4])), {"components": "raise"}, ValueError, r"disconnected \(2 components\).*components='concatenate'", True, id="components-raise"),
    pytest.param(torch.tensor(np.kron(np.eye(2), S[:4, :4])), {"anchors": [0, 1], "anchor_values": [1.0, 2.0]}, ValueError, r"1 connected component\(s\) contain no anchor \(sizes \[4\]\).*isolated=", True, id="anchored-isolated"),
    pytest.param(torch.tensor(S), {"anchors": [0, 1], "anchor_values": [1.0, 2.0], "isolated": "skip"}, ValueError, r"isolated must be one of", True, id="bad-isolated"),
    pytest.param(BIG_EMPTY, {"solver": "evr"}, ValueError, r"densifies the matrix, which at n = 20001 needs 3 GiB", True, id="densify-evr"),
]


@pytest.mark.parametrize(("inp", "kwargs", "exc", "match", "same"), CASES)
def test_seriate_torch_route_faults(inp, kwargs, exc, match, same):
    with pytest.raises(exc, match=match) as torch_err:
        seriate(inp, backend="torch", **kwargs)
    if same:
        numpy_inp = _scipy(inp) if isinstance(inp, torch.Tensor) and inp.layout != torch.strided else inp
        with pytest.raises(exc) as numpy_err:
            seriate(numpy_inp, backend="numpy", **kwargs)
        assert str(torch_err.value) == str(numpy_err.value)


def test_backend_name_checked():
    with pytest.raises(ValueError, match=r"backend must be one of \('auto', 'numpy', 'torch'\), got 'gpu'"):
        seriate(S, backend="gpu")


# extreme but valid inputs: the same result as the numpy route
EXTREMES = [
    pytest.param(S * 1e307, id="near-float-max"),
    pytest.param(S * 1e-310, id="subnormal"),
    pytest.param(np.eye(5), id="no-edges"),
    pytest.param(S.astype(np.float32), id="float32"),
]


@pytest.mark.parametrize("m", EXTREMES)
def test_seriate_torch_route_extremes(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = seriate(np.asarray(m, dtype=np.float64))
        b = seriate(torch.tensor(m), backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.components, b.components)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9, atol=1e-300)


def test_multiple_fiedler_value_warns_on_both_routes():
    from clss.seriation import SeriationWarning

    for backend in ("numpy", "torch"):
        with pytest.warns(SeriationWarning, match="nearly\\) multiple"):
            res = seriate(np.ones((6, 6)), backend=backend)
        assert sorted(res.order.tolist()) == list(range(6))


def test_seriate_batch_reports_bad_input_on_the_tensor_device():
    # seriate_batch never leaves the device; the checks are the same on CPU tensors
    with pytest.raises(ValueError, match="NaN/inf entries, first at batch 0"):
        seriate_batch(torch.tensor(NAN))
