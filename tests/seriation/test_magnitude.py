"""Entries near the float maximum or down to subnormals give the result of the matrix scaled to 1."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch

import clss.seriation.stable_subset as stable_subset_module
from clss.seriation import (
    harmonic_batch,
    recovery_tolerance,
    recovery_tolerance_blocks,
    select_stable_subset,
    seriate,
    seriate_batch,
)
from clss.seriation.generators import points_robinson

SCALES = [1e308, 1.7e308, 1e-308, 1e-320]  # the last two are subnormal after the Laplacian


def shuffled(n=12, seed=0):
    rng = np.random.default_rng(seed)
    w = points_robinson(n, rng=rng)
    perm = rng.permutation(n)
    return w[np.ix_(perm, perm)] / np.abs(w).max()


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("sparse", [False, True])
def test_seriate_order_is_that_of_the_matrix_scaled_to_one(scale, sparse):
    w = shuffled()
    ref = seriate(w)
    got = seriate(sp.csr_matrix(w * scale) if sparse else w * scale)
    np.testing.assert_array_equal(got.order, ref.order)
    if scale > 1e-310:  # diagnostics in the input's units (subnormal inputs have lost digits)
        assert got.lambda2 == pytest.approx(ref.lambda2 * scale, rel=1e-9)
        assert got.safe_radius == pytest.approx(ref.safe_radius * scale, rel=1e-6)
        assert got.residual <= 1e-6 * got.lambda2


@pytest.mark.parametrize("scale", SCALES)
def test_anchored_and_distance_seriation_are_scale_free(scale):
    w = shuffled(seed=1)
    kw = {"method": "anchored", "anchors": [0, 5, 9], "anchor_values": [0.0, 2.0, 1.0]}
    ref, got = seriate(w, **kw), seriate(w * scale, **kw)
    tol = 1e-9 if scale > 1e-310 else 1e-3
    np.testing.assert_allclose(got.positions, ref.positions, rtol=tol, atol=tol)
    assert got.info["maximum_principle"]
    ridge = seriate(w * scale, isolated="ridge", **kw)
    if scale > 1e-310:
        assert ridge.info["ridge_alpha"] == pytest.approx(
            seriate(w, isolated="ridge", **kw).info["ridge_alpha"] * scale, rel=1e-12)
    d = 1.0 - w  # a dissimilarity
    np.testing.assert_array_equal(seriate(d * scale, kind="distance", kernel="gaussian").order,
                                  seriate(d, kind="distance", kernel="gaussian").order)


def test_symmetrize_near_the_float_maximum_does_not_overflow():
    w = shuffled(seed=2) * 1.7e308
    w[0, 1] *= 0.99  # asymmetric
    res = seriate(w, symmetrize=True)
    assert np.isfinite(res.positions).all() and sorted(res.order) == list(range(12))


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("method", ["dp", "greedy", "exact"])
def test_stable_subset_is_scale_free_and_distinct(scale, method):
    rng = np.random.default_rng(3)
    p = rng.random((12, 12))
    p = (p + p.T) / 2
    for objective in ("min", "max_faithful"):
        want = select_stable_subset(p, 5, method=method, objective=objective)
        got = select_stable_subset(p * scale, 5, method=method, objective=objective)
        np.testing.assert_array_equal(got, want)
        assert np.unique(got).size == 5
    assert select_stable_subset(p * scale, 1).tolist() == select_stable_subset(p, 1).tolist()


def test_an_invalid_kernel_subset_is_an_error_not_a_result(monkeypatch):
    kernels = stable_subset_module._kernels("python")
    kernels.dp_select = lambda a, k: np.array([1, 1, 3][:k], dtype=np.int64)  # duplicated index
    monkeypatch.setattr(stable_subset_module, "_kernels", lambda backend: kernels)
    with pytest.raises(RuntimeError, match=r"invalid subset.*3 distinct"):
        select_stable_subset(np.ones((6, 6)), 3, refine=False)


@pytest.mark.parametrize("dtype,scales", [(torch.float64, [1e308, 1e-308]),
                                          (torch.float32, [1e38, 1e-38])])
def test_batch_entry_points_are_scale_free(dtype, scales):
    rng = np.random.default_rng(4)
    m = torch.tensor(np.stack([shuffled(16, seed=s) for s in range(3)]), dtype=dtype)
    p0, r0, d0 = seriate_batch(m, return_diagnostics=True)
    y = torch.tensor(rng.random((3, 6)), dtype=dtype)
    x0, _ = harmonic_batch(m[:, :10, :10], m[:, :10, 10:], y)
    anchors = torch.tensor([0, 7, 15])
    t0 = recovery_tolerance(m.double(), anchors=anchors)
    b0 = recovery_tolerance_blocks(m[:, :10, :10].double(), m[:, :10, 10:].double())
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    for scale in scales:
        p, r, d = seriate_batch(m * scale, return_diagnostics=True)
        assert torch.equal(r, r0)
        torch.testing.assert_close(p, p0, rtol=rtol, atol=rtol)
        torch.testing.assert_close(d.lambda2 / scale, d0.lambda2, rtol=rtol, atol=0.0)
        x, reach = harmonic_batch(m[:, :10, :10] * scale, m[:, :10, 10:] * scale, y)
        assert reach.all()
        torch.testing.assert_close(x, x0, rtol=rtol, atol=rtol)
        if dtype == torch.float64:
            # δ rests on the smallest eigenvector gap: compare at the scale of the largest δ
            torch.testing.assert_close(recovery_tolerance(m * scale, anchors=anchors) / scale, t0,
                                       rtol=1e-6, atol=1e-6 * float(t0.max()))
            torch.testing.assert_close(recovery_tolerance_blocks(m[:, :10, :10] * scale,
                                                                 m[:, :10, 10:] * scale) / scale,
                                       b0, rtol=1e-6, atol=1e-6 * float(b0.max()))
