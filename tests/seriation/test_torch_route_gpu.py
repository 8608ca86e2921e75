"""seriate() and seriate_batch() on CUDA tensors: they stay on the device and match the CPU routes.

Every test is ``gpu``-marked (skipped without CUDA; tests/conftest.py).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from clss.seriation import SeriationWarning, compare_orders, seriate, seriate_batch
from clss.seriation.generators import knn_graph, noisy_curve, permute_matrix, points_robinson

pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")


def cuda_coo(w):
    coo = sp.coo_matrix(w)
    idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data), coo.shape, check_invariants=True).to(CUDA)


def robinson(n, seed):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    return permute_matrix(points_robinson(n, rng=rng), perm), perm


@pytest.mark.parametrize("laplacian", ["unnormalized", "symmetric", "random_walk"])
def test_dense_cuda_default_route_matches_cpu(laplacian):
    s, perm = robinson(60, 0)
    a = seriate(s, laplacian=laplacian)
    b = seriate(torch.tensor(s, device=CUDA), laplacian=laplacian)  # backend="auto": stays on CUDA
    assert b.info["device"].startswith(CUDA.type)
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9)
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-9)
    if laplacian != "symmetric":
        assert compare_orders(b.order, np.argsort(perm)) == 1.0


def test_dense_cuda_float32_and_lobpcg():
    x, _ = noisy_curve(1500, rng=1)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    s = np.exp(-d2 / 0.01).astype(np.float32)
    a = seriate(s.astype(np.float64))
    b = seriate(torch.tensor(s, device=CUDA))
    assert b.solver == "torch-lobpcg" and b.converged
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-7)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_sparse_cuda_knn_matches_numpy(layout):
    x, t = noisy_curve(20_000, rng=2)
    w = knn_graph(x, 10)
    a = seriate(w)
    inp = cuda_coo(w) if layout == "coo" else cuda_coo(w).to_sparse_csr()
    b = seriate(inp)
    truth = np.argsort(t)
    assert b.solver == "torch-multilevel" and b.converged and b.info["device"].startswith(CUDA.type)
    assert abs(compare_orders(b.order, truth)) >= abs(compare_orders(a.order, truth)) - 1e-3
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-6)


def test_cuda_same_as_cpu_torch_route():
    x, _ = noisy_curve(5000, rng=3)
    w = knn_graph(x, 10)
    a = seriate(w, backend="torch")
    b = seriate(cuda_coo(w))
    assert compare_orders(a.order, b.order) > 0.9999
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-8)


def test_disconnected_cuda():
    s1, _ = robinson(20, 4)
    s = np.zeros((35, 35))
    s[:20, :20], s[20:, 20:] = s1, robinson(15, 5)[0]
    with pytest.warns(SeriationWarning, match="2 connected components"):
        a = seriate(s)
    with pytest.warns(SeriationWarning, match="2 connected components"):
        b = seriate(torch.tensor(s, device=CUDA))
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.components, b.components)


def test_anchored_cuda_dense_and_sparse():
    x, t = noisy_curve(400, rng=6)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    s = np.exp(-d2 / 0.01)
    anchors = np.arange(0, 400, 10)
    a = seriate(s, anchors=anchors, anchor_values=t[anchors])
    b = seriate(torch.tensor(s, device=CUDA), anchors=torch.tensor(anchors, device=CUDA),
                anchor_values=torch.tensor(t[anchors], device=CUDA))
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-9, atol=1e-12)
    x, t = noisy_curve(8000, rng=7)
    w = knn_graph(x, 10)
    anchors = np.arange(0, 8000, 100)
    a = seriate(w, anchors=anchors, anchor_values=t[anchors])
    b = seriate(cuda_coo(w), anchors=anchors, anchor_values=t[anchors])
    assert b.solver == "torch-amg-cg" and b.converged
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-5 * np.ptp(t[anchors]))


def test_cuda_faults_same_messages():
    s, _ = robinson(8, 8)
    bad = s.copy()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError) as cpu:
        seriate(bad)
    with pytest.raises(ValueError) as gpu:
        seriate(torch.tensor(bad, device=CUDA))
    assert str(cpu.value) == str(gpu.value)
    with pytest.raises(ValueError, match="anchor indices out of range"):
        seriate(torch.tensor(s, device=CUDA), anchors=[0, 8], anchor_values=[0.0, 1.0])


def test_seriate_batch_stays_on_cuda_including_the_anchored_fallback():
    s1, _ = robinson(10, 9)
    w = np.zeros((2, 16, 16))
    w[:, :10, :10] = s1
    w[:, 10:, 10:] = 0.5  # items 10-15 cannot reach the anchors: batched Cholesky fails
    for b in range(2):
        np.fill_diagonal(w[b], 0.0)
    anchors = torch.tensor([[0, 4], [1, 5]])
    vals = torch.tensor([[1.0, 3.0], [2.0, 0.0]], dtype=torch.float64)
    cpu_pos, cpu_ranks = seriate_batch(torch.tensor(w), anchors=anchors, anchor_values=vals)
    pos, ranks = seriate_batch(torch.tensor(w, device=CUDA), anchors=anchors.to(CUDA),
                               anchor_values=vals.to(CUDA))
    assert pos.device.type == CUDA.type and ranks.device.type == CUDA.type
    np.testing.assert_allclose(pos.cpu().numpy(), cpu_pos.numpy(), rtol=1e-10, equal_nan=True)
    np.testing.assert_array_equal(ranks.cpu().numpy(), cpu_ranks.numpy())


def test_seriate_batch_spectral_cuda_matches_cpu():
    s = torch.stack([torch.tensor(robinson(24, seed)[0]) for seed in range(8)])
    cpu_pos, cpu_ranks = seriate_batch(s)
    pos, ranks = seriate_batch(s.to(CUDA))
    assert pos.device.type == CUDA.type
    np.testing.assert_array_equal(ranks.cpu().numpy(), cpu_ranks.numpy())
    np.testing.assert_allclose(pos.cpu().numpy(), cpu_pos.numpy(), atol=1e-9)


def test_benchmark_script_runs_on_cuda(tmp_path):
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_seriate.py"
    proc = subprocess.run([sys.executable, str(script), "--device", "cuda", "--dense", "500",
                           "--sparse", "5000", "--batch", "8x16", "--json", str(tmp_path / "b.json")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "torch-cuda" in proc.stdout
