"""seriate_batch against per-matrix seriate, masks, dtypes, guard, diagnostics and bad input."""

import numpy as np
import pytest
import torch

from clss.seriation import batch as batch_module
from clss.seriation import seriate
from clss.seriation.batch import seriate_batch
from clss.seriation.generators import permute_matrix, points_robinson


def batch(bsz, n, seed=0):
    rng = np.random.default_rng(seed)
    mats = [permute_matrix(points_robinson(n, rng=rng), rng.permutation(n)) for _ in range(bsz)]
    return torch.tensor(np.stack(mats))


@pytest.mark.parametrize("n", [2, 5, 8, 16, 40])
@pytest.mark.parametrize("backend", ["torch", "lapack"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_batched_equals_per_matrix(n, backend, dtype):
    t = batch(6, n)
    pos, ranks = seriate_batch(t.to(dtype), backend=backend)
    assert pos.dtype == dtype and ranks.dtype == torch.int64
    for b in range(6):
        ref = seriate(t[b].numpy())
        assert np.array_equal(ranks[b].numpy(), ref.ranks)
        assert np.allclose(pos[b].double().numpy(), ref.positions,
                           atol=1e-10 if dtype == torch.float64 else 1e-4)


@pytest.mark.parametrize("laplacian", ["symmetric", "random_walk"])
def test_normalised_laplacians_match_seriate(laplacian):
    t = batch(4, 20, seed=1)
    pos, _ranks = seriate_batch(t, laplacian=laplacian)
    for b in range(4):
        ref = seriate(t[b].numpy(), laplacian=laplacian)
        assert np.allclose(pos[b].numpy(), ref.positions, atol=1e-10)


def test_unbatched_input_and_numpy_input():
    t = batch(1, 10)[0]
    pos, ranks = seriate_batch(t)
    assert pos.shape == (10,) and ranks.shape == (10,)
    _pos2, ranks2 = seriate_batch(t.numpy())
    assert torch.equal(ranks, ranks2)


def test_ragged_mask_equals_cropped_matrices():
    t = batch(5, 12, seed=2)
    mask = torch.ones(5, 12, dtype=torch.bool)
    sizes = [12, 10, 7, 3, 2]
    for b, k in enumerate(sizes):
        mask[b, k:] = False
    pos, ranks = seriate_batch(t, mask=mask)
    for b, k in enumerate(sizes):
        ref = seriate(t[b, :k, :k].numpy())
        assert np.array_equal(ranks[b, :k].numpy(), ref.ranks)
        assert (ranks[b, k:] == -1).all() and torch.isnan(pos[b, k:]).all()


def test_anchored_batch_equals_seriate_for_index_and_mask_anchors():
    t = batch(4, 15, seed=3)
    idx = torch.tensor([[0, 4, 9]] * 4)
    vals = torch.randn(4, 3, dtype=torch.float64)
    pos, ranks = seriate_batch(t, anchors=idx, anchor_values=vals)
    mask = torch.zeros(4, 15, dtype=torch.bool)
    mask[:, [0, 4, 9]] = True
    full = torch.zeros(4, 15, dtype=torch.float64)
    full[:, [0, 4, 9]] = vals
    pos2, ranks2 = seriate_batch(t, anchors=mask, anchor_values=full)
    assert torch.allclose(pos, pos2) and torch.equal(ranks, ranks2)
    for b in range(4):
        ref = seriate(t[b].numpy(), method="anchored", anchors=[0, 4, 9],
                      anchor_values=vals[b].numpy())
        assert np.allclose(pos[b].numpy(), ref.positions, atol=1e-10)
        assert np.array_equal(ranks[b].numpy(), ref.ranks)


def test_anchored_batch_with_a_different_number_of_anchors_per_matrix():
    # ragged free sets take the n x n identity-padded system, uniform ones the k x k free block
    t = batch(3, 12, seed=5)
    anchor_sets = [[0, 5], [1, 2, 7, 11], [3, 8, 10]]
    mask = torch.zeros(3, 12, dtype=torch.bool)
    full = torch.zeros(3, 12, dtype=torch.float64)
    gen = torch.Generator().manual_seed(1)
    for b, rows in enumerate(anchor_sets):
        mask[b, rows] = True
        full[b, rows] = torch.randn(len(rows), dtype=torch.float64, generator=gen)
    pos, ranks = seriate_batch(t, anchors=mask, anchor_values=full)
    for b, rows in enumerate(anchor_sets):
        ref = seriate(t[b].numpy(), method="anchored", anchors=rows, anchor_values=full[b, rows].numpy())
        assert np.allclose(pos[b].numpy(), ref.positions, atol=1e-10)
        assert np.array_equal(ranks[b].numpy(), ref.ranks)
        one, _ = seriate_batch(t[b:b + 1], anchors=mask[b:b + 1], anchor_values=full[b:b + 1])
        assert torch.allclose(one[0], pos[b], atol=1e-12)


def test_anchored_batch_with_unreachable_items_and_padding():
    w = torch.zeros(2, 6, 6, dtype=torch.float64)
    for i in range(2):  # items 0-1-2 form a path, 3-4 another, 5 is padding in row 1
        w[:, i, i + 1] = w[:, i + 1, i] = 1.0
    w[:, 3, 4] = w[:, 4, 3] = 1.0
    mask = torch.tensor([[True] * 6, [True] * 5 + [False]])
    anchors = torch.zeros(2, 6, dtype=torch.bool)
    anchors[:, [0, 2]] = True
    values = torch.zeros(2, 6, dtype=torch.float64)
    values[:, 2] = 2.0
    pos, ranks, diag = seriate_batch(w, anchors=anchors, anchor_values=values, mask=mask,
                                     return_diagnostics=True)
    assert torch.allclose(pos[:, :3], torch.tensor([[0.0, 1.0, 2.0]] * 2, dtype=torch.float64))
    assert torch.isnan(pos[:, 3:]).all()
    assert (ranks[:, 3:] == -1).all() and torch.equal(ranks[:, :3], torch.tensor([[0, 1, 2]] * 2))
    assert not diag.connected.any()


def test_shift_policy_equals_projection_on_ones_complement():
    torch.manual_seed(0)
    f = torch.nn.functional.normalize(torch.randn(3, 9, 4, dtype=torch.float64), dim=-1)
    cos = f @ f.transpose(-1, -2)
    with pytest.raises(ValueError, match="negative"):
        seriate_batch(cos)
    _pos, ranks = seriate_batch(cos, negative="shift")
    for b in range(3):
        ref = seriate(cos[b].numpy(), negative="shift")
        assert np.array_equal(ranks[b].numpy(), ref.ranks)
    clipped, _ = seriate_batch(cos, negative="clip")
    assert torch.isfinite(clipped).all()


def test_half_precision_is_solved_in_float32():
    t = batch(3, 10, seed=4)
    pos, ranks = seriate_batch(t.to(torch.float16))
    assert pos.dtype == torch.float32
    _ref, ref_ranks = seriate_batch(t.to(torch.float16).float())
    assert torch.equal(ranks, ref_ranks)


def test_float32_guard_refines_near_ties():
    # identical rows 1 and 2 give exactly tied Fiedler entries: float32 cannot order them reliably
    s = torch.tensor([[0, 1, 1, 0.1], [1, 0, 2, 1], [1, 2, 0, 1], [0.1, 1, 1, 0]])
    _, ranks, diag = seriate_batch(s.unsqueeze(0).repeat(2, 1, 1), return_diagnostics=True)
    assert diag.refined.all()
    ref = seriate(s.double().numpy())
    assert [g.tolist() for g in ref.tie_groups] == [[1, 2]]
    # the tied pair's relative order is rounding (it differs between BLAS builds): compare the rest
    # and the places the pair takes
    got = ranks[0].numpy()
    assert np.array_equal(got[[0, 3]], ref.ranks[[0, 3]])
    assert sorted(got[[1, 2]]) == sorted(ref.ranks[[1, 2]])
    _, _, plain = seriate_batch(s, guard=False, return_diagnostics=True)
    assert not plain.refined


def test_diagnostics():
    t = batch(3, 12, seed=5)
    _, _, diag = seriate_batch(t, return_diagnostics=True)
    for b in range(3):
        ref = seriate(t[b].numpy())
        assert diag.lambda2[b].item() == pytest.approx(ref.lambda2, rel=1e-8)
    assert diag.connected.all()
    disconnected = torch.zeros(1, 4, 4, dtype=torch.float64)
    disconnected[0, 0, 1] = disconnected[0, 1, 0] = 1
    disconnected[0, 2, 3] = disconnected[0, 3, 2] = 1
    _, _, diag = seriate_batch(disconnected, return_diagnostics=True)
    assert not diag.connected.any()


def test_no_gradient_flows_and_input_untouched():
    t = batch(2, 8).requires_grad_(True)
    before = t.detach().clone()
    pos, _ = seriate_batch(t)
    assert not pos.requires_grad
    assert torch.equal(t.detach(), before)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"similarities": torch.ones(2, 3, 4)}, "shape"),
    ({"similarities": torch.ones(2, 1, 1)}, "at least 2"),
    ({"similarities": torch.tensor([[0.0, float("nan")], [float("nan"), 0.0]])}, "NaN"),
    ({"similarities": torch.tensor([[0.0, 1.0], [2.0, 0.0]])}, "not symmetric"),
    ({"laplacian": "x"}, "laplacian"),
    ({"backend": "x"}, "backend"),
    ({"negative": "x"}, "negative"),
    ({"mask": torch.ones(2, 3)}, "boolean"),
    ({"mask": torch.tensor([True, False, False])}, "at least 2 valid"),
    ({"anchors": torch.tensor([0])}, "together"),
    ({"anchors": torch.tensor([[0, 0]]), "anchor_values": torch.tensor([[1.0, 2.0]])},
     "duplicated"),
    ({"anchors": torch.tensor([[0, 7]]), "anchor_values": torch.tensor([[1.0, 2.0]])},
     "out of range"),
    ({"anchors": torch.zeros(1, 3, dtype=torch.bool), "anchor_values": torch.zeros(1, 3)},
     "at least one anchor"),
    ({"anchors": torch.tensor([[0, 1]]), "anchor_values": torch.tensor([[1.0, float("nan")]])},
     "NaN"),
])
def test_bad_input_raises(kwargs, match):
    args = {"similarities": torch.ones(1, 3, 3, dtype=torch.float64), **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        seriate_batch(args.pop("similarities"), **args)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_flipped_rows_with_exact_ties_keep_index_tie_breaking(dtype):
    # items 1 and 2 (and 4 and 5) have identical rows: tied Fiedler entries; some permutations flip
    base = np.array([[0, 3, 3, 1, .2, .2], [3, 0, 2, 2, .5, .5], [3, 2, 0, 2, .5, .5],
                     [1, 2, 2, 0, 2, 2], [.2, .5, .5, 2, 0, 3], [.2, .5, .5, 2, 3, 0]])
    rng = np.random.default_rng(0)
    perms = [rng.permutation(6) for _ in range(24)]
    mats = torch.tensor(np.stack([base[np.ix_(p, p)] for p in perms]), dtype=dtype)
    _, ranks = seriate_batch(mats)
    for b in range(24):
        ref = seriate(mats[b].double().numpy())
        got = ranks[b].numpy()
        # Ties equal only to roundoff are broken by each eigensolver's last bits: the reference reports
        # them as tie groups (order not determined by the data), and a tie at an end of the order also
        # decides the orientation rule. So: equal modulo tie groups, up to reversal.
        group = np.arange(6)
        for g in ref.tie_groups:
            group[g] = g[0]

        def agrees(candidate, ref=ref, group=group):
            same_groups = all(sorted(candidate[g]) == sorted(ref.ranks[g]) for g in ref.tie_groups)
            same_order = all((candidate[i] < candidate[j]) == (ref.ranks[i] < ref.ranks[j])
                             for i in range(6) for j in range(6) if group[i] != group[j])
            return same_groups and same_order

        assert agrees(got) or agrees(5 - got), b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [5, 8, 20])
def test_compiled_cpu_finish_equals_the_torch_route(monkeypatch, dtype, n):
    # the numba guard/orientation/rank pass (CPU) and the torch one (CUDA, padded batches) agree,
    # including rows that must flip, exact ties and rows the float32 guard refines
    t = batch(24, n, seed=n).to(dtype)
    tied = torch.tensor([[0, 1, 1, 0.1], [1, 0, 2, 1], [1, 2, 0, 1], [0.1, 1, 1, 0]], dtype=dtype)
    if n >= 4:  # a block with two identical rows: exactly tied Fiedler entries
        t[0] = 0.01
        t[0, :4, :4] = tied
        t[0].fill_diagonal_(0)
    for laplacian in ("unnormalized", "random_walk"):
        got = seriate_batch(t, laplacian=laplacian, return_diagnostics=True)
        monkeypatch.setattr(batch_module, "_CPU_KERNEL", False)
        want = seriate_batch(t, laplacian=laplacian, return_diagnostics=True)
        monkeypatch.setattr(batch_module, "_CPU_KERNEL", True)
        assert torch.equal(got[1], want[1])
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
        torch.testing.assert_close(got[2].min_gap, want[2].min_gap, rtol=0, atol=0)
        assert torch.equal(got[2].refined, want[2].refined)
        if dtype == torch.float32:
            assert got[2].refined[0]  # the tied block went through the float64 refinement


def test_compiled_cpu_finish_matches_its_python_reference():
    from clss.seriation._batch_kernels import orient_rank

    rng = np.random.default_rng(0)
    vec = rng.normal(size=(50, 9)).round(1)  # rounding makes exact ties
    a, b = vec.copy(), vec.copy()
    got, want = orient_rank(a, 0.05), orient_rank.py_func(b, 0.05)
    for x, y in zip(got, want, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a, b)
    for row, ranks in zip(a, got[0], strict=True):  # the orientation rule and stable ranks
        order = np.argsort(ranks)
        assert order[0] < order[-1]
        np.testing.assert_array_equal(order, np.argsort(row, kind="stable"))


def _joint(bsz, k, m, seed):
    g = torch.Generator().manual_seed(seed)
    f = torch.nn.functional.normalize(torch.rand(bsz, k + m, 5, generator=g, dtype=torch.float64), dim=-1)
    s = f @ f.transpose(-1, -2)
    y = torch.randn(bsz, m, generator=g, dtype=torch.float64)
    return s, y


def test_harmonic_batch_equals_the_full_anchored_solve():
    from clss.seriation import harmonic_batch

    s, y = _joint(4, 6, 9, seed=0)
    x, reach = harmonic_batch(s[:, :6, :6], s[:, :6, 6:], y)
    assert reach.all() and x.shape == (4, 6)
    pos, _ = seriate_batch(s, anchors=torch.arange(6, 15), anchor_values=y)
    torch.testing.assert_close(x, pos[:, :6])
    for b in range(4):
        ref = seriate(s[b].numpy(), method="anchored", anchors=np.arange(6, 15), anchor_values=y[b].numpy())
        np.testing.assert_allclose(x[b].numpy(), ref.positions[:6], atol=1e-10)
        lo, hi = float(y[b].min()), float(y[b].max())
        assert lo - 1e-12 <= float(x[b].min()) <= float(x[b].max()) <= hi + 1e-12
    one, ok = harmonic_batch(s[0, :6, :6], s[0, :6, 6:], y[0])  # unbatched
    assert one.shape == (6,) and bool(ok)
    torch.testing.assert_close(one, x[0])


def test_harmonic_batch_negative_policies_and_unreachable_items():
    from clss.seriation import harmonic_batch

    s, y = _joint(2, 4, 5, seed=1)
    neg = s - 0.6  # some negative entries
    with pytest.raises(ValueError, match="negative"):
        harmonic_batch(neg[:, :4, :4], neg[:, :4, 4:], y)
    clip, _ = harmonic_batch(neg[:, :4, :4], neg[:, :4, 4:], y, negative="clip")
    full_clip, _ = seriate_batch(neg.clamp_min(0), anchors=torch.arange(4, 9), anchor_values=y)
    torch.testing.assert_close(clip, full_clip[:, :4])
    shift, _ = harmonic_batch(neg[:, :4, :4], neg[:, :4, 4:], y, negative="shift")
    low = torch.minimum(neg[:, :4, 4:].amin(dim=(-1, -2)),
                        (neg[:, :4, :4] + torch.eye(4, dtype=neg.dtype) * 9).amin(dim=(-1, -2)))
    shifted = neg - low[:, None, None]
    ref, _ = harmonic_batch(shifted[:, :4, :4], shifted[:, :4, 4:], y)
    torch.testing.assert_close(shift, ref)
    # item 3 has no edge to anything: NaN position, the others still solved
    cut = s.clone()
    cut[:, 3, :] = 0
    cut[:, :, 3] = 0
    x, reach = harmonic_batch(cut[:, :4, :4], cut[:, :4, 4:], y)
    assert not reach.any() and torch.isnan(x[:, 3]).all() and torch.isfinite(x[:, :3]).all()
    ref, _ = harmonic_batch(cut[:, :3, :3], cut[:, :3, 4:], y)
    torch.testing.assert_close(x[:, :3], ref)


@pytest.mark.parametrize(("args", "match"), [
    ((torch.ones(3, 3), torch.ones(2, 4), torch.ones(4)), "expected"),
    ((torch.ones(3, 3), torch.ones(3, 0), torch.ones(0)), "at least one anchor"),
    ((torch.ones(3, 3), torch.ones(3, 2), torch.tensor([0.0, float("nan")])), "NaN"),
    ((torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.ones(2, 2), torch.ones(2)), "symmetric"),
    ((torch.ones(2, 2), torch.tensor([[1.0, float("inf")], [1.0, 1.0]]), torch.ones(2)), "NaN/inf"),
])
def test_harmonic_batch_bad_input(args, match):
    from clss.seriation import harmonic_batch

    with pytest.raises(ValueError, match=match):
        harmonic_batch(*args)
