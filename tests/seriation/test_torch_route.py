"""The torch route of seriate() (backend="torch") on CPU tensors: the same results as the numpy route."""

import warnings

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components

from clss.seriation import SeriationWarning, compare_orders, seriate
from clss.seriation._torch_graph import Graph, as_graph, components
from clss.seriation.anchored import anchored_positions
from clss.seriation.generators import knn_graph, noisy_curve, permute_matrix, points_robinson
from clss.seriation.torch_route import reachable_harmonic

LAPLACIANS = ["unnormalized", "symmetric", "random_walk"]


def permuted_robinson(n, seed):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    return permute_matrix(points_robinson(n, rng=rng), perm), perm


def curve_kernel(n, seed, h=0.1):
    x, t = noisy_curve(n, rng=seed)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.exp(-d2 / h**2), t


def assert_same_spectral(a, b, *, ties=True):
    """Same order; positions equal up to the eigenvector accuracy ``residual / gap``; same diagnostics.

    Tie groups use a tolerance ``residual / gap``, so they agree only between direct solvers (``ties``).
    """
    np.testing.assert_array_equal(a.order, b.order)
    gap = min(a.lambda2, a.eigengap) if np.isfinite(a.eigengap) else a.lambda2
    angle = max(a.residual, b.residual) / gap
    np.testing.assert_allclose(b.positions, a.positions, atol=10 * angle + 1e-12)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9, atol=10 * max(a.residual, b.residual))
    np.testing.assert_array_equal(a.components, b.components)
    assert a.converged and b.converged
    if ties:
        assert [g.tolist() for g in a.tie_groups] == [g.tolist() for g in b.tie_groups]


@pytest.mark.parametrize("laplacian", LAPLACIANS)
def test_robinson_same_order_as_numpy_and_exact(laplacian):
    s, perm = permuted_robinson(50, 1)
    a = seriate(s, laplacian=laplacian)
    b = seriate(torch.tensor(s), laplacian=laplacian, backend="torch")
    assert_same_spectral(a, b)
    if laplacian != "symmetric":  # the two order-exact Laplacians recover the hidden order
        assert compare_orders(b.order, np.argsort(perm)) == 1.0
    assert b.info["device"] == "cpu" and b.solver == "torch-eigh"
    if laplacian != "random_walk":
        np.testing.assert_allclose(b.safe_radius, a.safe_radius, rtol=1e-6)


@pytest.mark.parametrize("laplacian", LAPLACIANS)
def test_noisy_curve_kernel_same_as_numpy(laplacian):
    s, _ = curve_kernel(300, 2)
    assert_same_spectral(seriate(s, laplacian=laplacian),
                         seriate(torch.tensor(s), laplacian=laplacian, backend="torch"))


def test_dense_lobpcg_route_matches_numpy():
    s, _ = curve_kernel(1200, 3)
    a = seriate(s)
    b = seriate(torch.tensor(s), backend="torch")
    assert b.solver == "torch-lobpcg" and b.converged
    assert_same_spectral(a, b, ties=False)
    c = seriate(torch.tensor(s[:400, :400]), backend="torch", solver="lobpcg")
    assert c.solver == "torch-lobpcg"
    assert_same_spectral(seriate(s[:400, :400], solver="evr"), c, ties=False)


@pytest.mark.parametrize("n", [3000, 20000])
def test_sparse_knn_multilevel_matches_numpy(n):
    x, t = noisy_curve(n, rng=4)
    w = knn_graph(x, 10)
    a = seriate(w)
    b = seriate(w, backend="torch")
    truth = np.argsort(t)
    assert b.solver == "torch-multilevel" and b.converged
    assert abs(compare_orders(b.order, truth)) >= abs(compare_orders(a.order, truth)) - 1e-3
    assert compare_orders(b.order, a.order) > 0.9999
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-6)
    assert b.residual <= 1e-8 * w.sum(axis=1).max()


@pytest.mark.slow
def test_sparse_knn_multilevel_50k():
    x, t = noisy_curve(50_000, rng=5)
    w = knn_graph(x, 10)
    a, b = seriate(w), seriate(w, backend="torch")
    truth = np.argsort(t)
    assert b.converged
    assert abs(compare_orders(b.order, truth)) >= abs(compare_orders(a.order, truth)) - 1e-3


@pytest.mark.parametrize("laplacian", LAPLACIANS)
def test_sparse_multilevel_every_laplacian(laplacian):
    x, _ = noisy_curve(3000, rng=6)
    w = knn_graph(x, 10)
    a = seriate(w, laplacian=laplacian)
    b = seriate(w, laplacian=laplacian, backend="torch")
    assert b.solver == "torch-multilevel" and b.converged
    assert compare_orders(b.order, a.order) > 0.9999
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-6)


@pytest.mark.parametrize("layout", ["coo", "csr", "scipy"])
def test_sparse_inputs(layout):
    x, _ = noisy_curve(500, rng=7)
    w = knn_graph(x, 8)
    coo = torch.sparse_coo_tensor(np.vstack(w.nonzero()), w.data, w.shape, check_invariants=True)
    inp = {"coo": coo, "csr": coo.to_sparse_csr(), "scipy": w}[layout]
    # 500 densified items: the numpy route's iterative (Davidson) residual sets its tie tolerance,
    # the torch route's exact eigh another one
    assert_same_spectral(seriate(w), seriate(inp, backend="torch"), ties=False)


def test_float32_input_solved_in_float64():
    s, _ = curve_kernel(200, 8)
    s32 = s.astype(np.float32)
    a = seriate(s32.astype(np.float64))
    b = seriate(torch.tensor(s32), backend="torch")
    assert_same_spectral(a, b)


def test_disconnected_dense_and_sparse():
    s1, _ = permuted_robinson(20, 9)
    s2, _ = permuted_robinson(15, 10)
    s = np.zeros((36, 36))
    s[:20, :20], s[20:35, 20:35] = s1, s2  # item 35 is isolated
    perm = np.random.default_rng(11).permutation(36)
    s = s[np.ix_(perm, perm)]
    for inp in (s, sp.csr_matrix(s)):
        with pytest.warns(SeriationWarning, match="3 connected components"):
            a = seriate(inp)
        with pytest.warns(SeriationWarning, match="3 connected components"):
            b = seriate(torch.tensor(s) if isinstance(inp, np.ndarray) else inp, backend="torch")
        np.testing.assert_array_equal(a.order, b.order)
        np.testing.assert_array_equal(a.components, b.components)
        for ca, cb in zip(a.component_info, b.component_info, strict=True):
            np.testing.assert_array_equal(ca.items, cb.items)
            np.testing.assert_allclose(cb.lambda2, ca.lambda2, rtol=1e-9, equal_nan=True)
        assert b.lambda2 == 0.0 and b.safe_radius == 0.0
    with pytest.raises(ValueError, match="disconnected"):
        seriate(torch.tensor(s), backend="torch", components="raise")


def test_components_match_scipy():
    rng = np.random.default_rng(12)
    for n, m in [(400, 150), (400, 400), (2000, 2500)]:
        r, c = rng.integers(0, n, m), rng.integers(0, n, m)
        w = sp.coo_matrix((np.ones(m), (r, c)), shape=(n, n))
        w = ((w + w.T) > 0).astype(float).tocsr()
        w.setdiag(0)
        w.eliminate_zeros()
        ref_count, ref = connected_components(w, directed=False)
        coo = w.tocoo()
        g = Graph(n, torch.device("cpu"), row=torch.as_tensor(coo.row.astype(np.int64)),
                  col=torch.as_tensor(coo.col.astype(np.int64)), val=torch.as_tensor(coo.data))
        count, label = components(g)
        assert count == ref_count
        np.testing.assert_array_equal(label.numpy(), ref)  # both numbered by smallest index
        count_d, label_d = components(Graph(n, torch.device("cpu"), dense=torch.tensor(w.toarray())))
        assert count_d == ref_count
        np.testing.assert_array_equal(label_d.numpy(), ref)


def test_components_long_path_in_few_rounds():
    n = 100_000
    perm = np.random.default_rng(13).permutation(n)
    row = np.concatenate([perm[:-1], perm[1:]])
    col = np.concatenate([perm[1:], perm[:-1]])
    g = Graph(n, torch.device("cpu"), row=torch.as_tensor(row), col=torch.as_tensor(col),
              val=torch.ones(2 * n - 2, dtype=torch.float64))
    count, label = components(g)
    assert count == 1 and int(label.max()) == 0


def anchored_case(n, m, seed, sparse=False):
    x, t = noisy_curve(n, rng=seed)
    w = knn_graph(x, 10) if sparse else None
    if not sparse:
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        w = np.exp(-d2 / 0.01)
    anchors = np.random.default_rng(seed).choice(n, m, replace=False)
    return w, anchors, t[anchors]


def test_anchored_dense_matches_numpy():
    w, anchors, vals = anchored_case(300, 30, 14)
    a = seriate(w, anchors=anchors, anchor_values=vals)
    b = seriate(torch.tensor(w), anchors=torch.tensor(anchors), anchor_values=vals, backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-9, atol=1e-12)
    assert b.solver == "torch-cholesky" and b.method == "anchored"
    assert b.info["maximum_principle"] and b.info["flat_fraction"] == a.info["flat_fraction"]
    # Hager's 1-norm estimate and LAPACK's ?pocon are both lower bounds within a small factor
    assert a.conditioning / 10 <= b.conditioning <= 10 * a.conditioning


@pytest.mark.parametrize("solver", ["auto", "jacobi-cg"])
def test_anchored_sparse_pcg_matches_numpy(solver):
    w, anchors, vals = anchored_case(6000, 60, 15, sparse=True)
    a = seriate(w, anchors=anchors, anchor_values=vals)
    b = seriate(w, anchors=anchors, anchor_values=vals, backend="torch", solver=solver,
                maxiter=20000)
    assert b.solver == ("torch-amg-cg" if solver == "auto" else "torch-jacobi-cg") and b.converged
    span = np.ptp(vals)
    # relative residual 1e-10 on a system of condition ~1e4-1e6: positions to ~1e-5 of the span
    np.testing.assert_allclose(b.positions, a.positions, atol=1e-5 * span)
    assert compare_orders(b.order, a.order) > 0.9999


@pytest.mark.parametrize("isolated", ["nan", "unanchored", "ridge"])
def test_anchored_isolated_policies_match_numpy(isolated):
    s1, _ = permuted_robinson(20, 16)
    s2, _ = permuted_robinson(12, 17)
    s = np.zeros((32, 32))
    s[:20, :20], s[20:, 20:] = s1, s2
    anchors, vals = np.array([0, 3, 7]), np.array([0.0, 1.0, 2.0])
    a = seriate(s, anchors=anchors, anchor_values=vals, isolated=isolated)
    b = seriate(torch.tensor(s), anchors=anchors, anchor_values=vals, isolated=isolated,
                backend="torch")
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-9, atol=1e-12, equal_nan=True)
    # ridge shrinks the anchor-free component onto the label mean: its order is set by rounding
    same = a.order if isolated != "ridge" else a.order[a.components[a.order] == 0]
    np.testing.assert_array_equal(same, (b.order if isolated != "ridge"
                                         else b.order[b.components[b.order] == 0]))
    if isolated == "ridge":
        assert b.info["ridge_alpha"] == pytest.approx(a.info["ridge_alpha"])
    with pytest.raises(ValueError, match="contain no anchor"):
        seriate(torch.tensor(s), anchors=anchors, anchor_values=vals, backend="torch")


def test_orientation_by_anchors_matches_numpy():
    s, perm = permuted_robinson(40, 18)
    anchors = np.array([1, 5, 9])
    vals = -np.argsort(perm)[anchors].astype(float)  # the reverse of the index rule
    a = seriate(s, method="spectral", anchors=anchors, anchor_values=vals)
    b = seriate(torch.tensor(s), method="spectral", anchors=anchors, anchor_values=vals,
                backend="torch")
    np.testing.assert_array_equal(a.order, b.order)


def test_deterministic():
    x, _ = noisy_curve(4000, rng=19)
    w = knn_graph(x, 10)
    a = seriate(w, backend="torch")
    b = seriate(w, backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_array_equal(a.positions, b.positions)


@pytest.mark.parametrize("kernel", ["inverse", "gaussian", "callable"])
@pytest.mark.parametrize("sparse", [False, True])
def test_distance_kernels(kernel, sparse):
    x, _ = noisy_curve(120, rng=20)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    if sparse:
        d = sp.csr_matrix(np.where(d < 0.3, d, 0.0))
    numpy_kernel = (lambda v: np.exp(-v)) if kernel == "callable" else kernel
    torch_kernel = (lambda v: torch.exp(-v)) if kernel == "callable" else kernel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeriationWarning)
        a = seriate(d, kind="distance", kernel=numpy_kernel)
        b = seriate(d if sparse else torch.tensor(d), kind="distance", kernel=torch_kernel,
                    backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9)


@pytest.mark.parametrize("symmetrize", [True, "max", "min"])
@pytest.mark.parametrize("sparse", [False, True])
def test_symmetrize(symmetrize, sparse):
    rng = np.random.default_rng(21)
    s, _ = permuted_robinson(30, 21)
    s = s * (1 + 0.3 * rng.random(s.shape))
    if sparse:
        s = np.where(rng.random(s.shape) < 0.8, s, 0.0)
    inp = sp.csr_matrix(s) if sparse else s
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SeriationWarning)
        a = seriate(inp, symmetrize=symmetrize)
        b = seriate(inp if sparse else torch.tensor(s), symmetrize=symmetrize, backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9)


@pytest.mark.parametrize("negative", ["clip", "shift"])
def test_negative_policies(negative):
    s, _ = curve_kernel(80, 22)
    s = s - 0.2
    with warnings.catch_warnings():  # clipping can disconnect the graph
        warnings.simplefilter("ignore", SeriationWarning)
        a = seriate(s, negative=negative)
        b = seriate(torch.tensor(s), negative=negative, backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9)


@pytest.mark.parametrize("scale", [1e300, 1e-300])
def test_extreme_magnitudes_rescaled(scale):
    s, _ = permuted_robinson(30, 23)
    a = seriate(s * scale)
    b = seriate(torch.tensor(s * scale), backend="torch")
    np.testing.assert_array_equal(a.order, b.order)
    np.testing.assert_allclose(b.lambda2, a.lambda2, rtol=1e-9)


def test_backend_dispatch():
    s, _ = permuted_robinson(20, 24)
    assert "device" not in seriate(torch.tensor(s)).info  # CPU tensors keep the numpy route
    assert "device" not in seriate(torch.tensor(s), backend="numpy").info
    assert seriate(s, backend="torch").info["device"] == "cpu"
    assert seriate(torch.tensor(s), method="rcm").method == "rcm"
    with pytest.raises(ValueError, match="backend must be one of"):
        seriate(s, backend="cuda")
    with pytest.raises(ValueError, match="numpy route only"):
        seriate(s, method="rcm", backend="torch")
    with pytest.raises(TypeError, match="backend='torch' takes a torch tensor"):
        seriate(nx.path_graph(5), backend="torch")


def test_batch_fallback_on_device_matches_numpy():
    s1, _ = permuted_robinson(10, 25)
    w = np.zeros((16, 16))
    w[:10, :10] = s1
    w[10:, 10:] = 0.5
    np.fill_diagonal(w, 0.0)
    anchors, vals = np.array([0, 4]), np.array([1.0, 3.0])
    ref, *_ = anchored_positions(w, anchors, vals, isolated="nan")
    is_anchor = torch.zeros(16, dtype=torch.bool)
    is_anchor[anchors] = True
    y = torch.zeros(16, dtype=torch.float64)
    y[anchors] = torch.tensor(vals)
    got = reachable_harmonic(torch.tensor(w), is_anchor, y)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, equal_nan=True)


def test_graph_validation_costs_one_pass_dense():
    s, _ = permuted_robinson(10, 26)
    g, e = as_graph(torch.tensor(s), symmetrize=False, name="similarity", kind="similarity",
                    kernel="inverse", bandwidth=None, negative="raise")
    assert e == 0 and not g.is_sparse
    assert float(g.dense.diagonal().abs().max()) == 0.0


def test_gpu_benchmark_script_runs_on_cpu(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_seriate.py"
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(script), "--device", "cpu", "--dense", "200",
                           "--sparse", "2500", "--batch", "4x12", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    dense = {r["route"]: r for r in result["dense"]}
    assert dense["torch-cpu"]["agree"] == 1.0 and dense["torch-cpu"]["device"] == "cpu"
    sparse = {r["route"]: r for r in result["sparse"]}
    assert sparse["torch-cpu"]["solver"] == "torch-multilevel" and sparse["torch-cpu"]["converged"]
    assert {r["dtype"] for r in result["batched"]} == {"float32", "float64"}


def test_unconverged_multilevel_is_reported():
    x, _ = noisy_curve(5000, rng=27)
    w = knn_graph(x, 10)
    res = seriate(w, backend="torch", maxiter=1, tol=1e-14)
    assert res.solver == "torch-multilevel" and not res.converged
    assert not res.component_info[0].converged and res.residual > 1e-14 * w.sum(axis=1).max()


def test_dense_lobpcg_falls_back_to_eigh():
    s, _ = curve_kernel(700, 28)
    res = seriate(torch.tensor(s), backend="torch", solver="lobpcg", maxiter=1)
    assert res.solver == "torch-eigh" and res.converged
    assert_same_spectral(seriate(s, solver="evr"), res)


def test_multilevel_on_dense_input_takes_the_dense_solvers():
    s, _ = curve_kernel(100, 29)
    assert seriate(torch.tensor(s), backend="torch", solver="multilevel").solver == "torch-eigh"


def test_anchored_few_unknowns_on_a_sparse_graph():
    w, anchors, vals = anchored_case(5000, 4000, 30, sparse=True)  # 1000 unknowns: Cholesky of L_uu only
    a = seriate(w, anchors=anchors, anchor_values=vals)
    b = seriate(w, anchors=anchors, anchor_values=vals, backend="torch")
    assert b.solver == "torch-cholesky"
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-9, atol=1e-12)


def test_anchored_dense_graph_ignores_iterative_solver_names():
    w, anchors, vals = anchored_case(100, 10, 31)
    a = seriate(w, anchors=anchors, anchor_values=vals, solver="amg-cg")
    b = seriate(torch.tensor(w), anchors=anchors, anchor_values=vals, solver="amg-cg", backend="torch")
    assert b.solver == "torch-cholesky"
    np.testing.assert_allclose(b.positions, a.positions, rtol=1e-9, atol=1e-12)
