import math

import pytest
import torch
from _losses_ref import mmnp_loop

from clss.losses import MultiMarginNPairLoss

F64 = torch.float64


def _data(b, v=1, d=4, classes=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, v, d, dtype=F64, generator=g)
    return (z[:, 0] if v == 1 else z), torch.randint(0, classes, (b,), generator=g)


def _loss(classes=4, seed=0, **kwargs):
    torch.manual_seed(seed)
    return MultiMarginNPairLoss(classes, **kwargs).double()


@pytest.mark.parametrize(("b", "v"), [(1, 1), (2, 1), (2, 2), (7, 1), (6, 2), (5, 3)])
@pytest.mark.parametrize("normalization", ["paper", "mean", "official"])
def test_matches_loop_reference_values_and_margin_gradients(b, v, normalization):
    z, c = _data(b, v, seed=b + v)
    loss = _loss(normalization=normalization, fixed_margins={1: 2.0}, min_margin=0.1, init=(0.2, 1.5))
    value = loss(z, c)
    expected = mmnp_loop(z, c, loss._gaps(), normalization)
    assert torch.allclose(value, expected, rtol=1e-12, atol=1e-14)
    if expected.requires_grad:
        (grad,) = torch.autograd.grad(value, loss.raw_margins)
        (ref_grad,) = torch.autograd.grad(expected, loss.raw_margins)
        assert torch.allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_official_divisor_is_the_mean_over_negatives_once_more():
    z, c = _data(9, seed=1)
    mean = _loss(normalization="mean", reduction="none")(z, c)
    official = _loss(normalization="official", reduction="none")(z, c)
    n_neg = (c[:, None] != c[None, :]).sum(1).to(F64)
    assert torch.allclose(official, mean / n_neg, rtol=1e-12)
    assert (official < mean).any()


def test_gradcheck_features_and_margins():
    z, c = _data(6, seed=2)
    loss = _loss(fixed_margins={0: 0.7})
    c = torch.tensor([0, 0, 1, 2, 2, 3])
    assert torch.autograd.gradcheck(lambda x: loss(x, c), (z.clone().requires_grad_(),))

    raw = loss.raw_margins.detach().clone().requires_grad_()
    by_margins = lambda r: torch.func.functional_call(loss, {"raw_margins": r}, (z, c))  # noqa: E731
    assert torch.autograd.gradcheck(by_margins, (raw,))


def test_edge_cases_give_zero_and_zero_gradients():
    z, _ = _data(5, seed=3)
    loss = _loss(classes=5)
    for c in (torch.full((5,), 2), torch.arange(5), torch.tensor([4])):
        leaf = z[: len(c)].clone().requires_grad_()
        value = loss(leaf, c)
        value.backward()
        assert value.item() == 0.0 and torch.equal(leaf.grad, torch.zeros_like(leaf))
    dup = torch.cat([z[:2], z[:2]]).requires_grad_()  # duplicate features, also across classes
    loss(dup, torch.tensor([0, 1, 0, 2])).backward()
    assert torch.isfinite(dup.grad).all()


def test_margins_constraint_fixed_and_two_phase_schedule():
    loss = _loss(classes=5, min_margin=0.3, init=(0.5, 1.0), fixed_margins={2: 4.0})
    m = loss.margins
    assert m.shape == (4,) and m[2].item() == 4.0 and ((m > 0.3) & (m <= 4.0)).all()
    assert [p.numel() for p in loss.parameters()] == [3]
    matrix = loss.margin_matrix()
    assert torch.allclose(matrix[0, 4], m.sum()) and torch.allclose(matrix[1, 3], m[1] + m[2])
    assert torch.equal(matrix, matrix.T) and torch.equal(matrix.diagonal(), torch.zeros(5, dtype=F64))
    # Large raw parameters: softplus is the identity, so the init is exact there too.
    assert torch.allclose(_loss(init=(30.0, 30.0)).margins, torch.full((3,), 30.0, dtype=F64))

    z, c = _data(10, classes=5, seed=4)
    optimiser = torch.optim.SGD(loss.parameters(), lr=0.5)
    loss(z, c).backward()
    optimiser.step()  # phase 1: margins move
    learned = loss.margins
    assert not torch.equal(learned, m) and learned[2].item() == 4.0
    loss.freeze_margins()  # phase 2: they stay put
    optimiser.zero_grad()
    value = loss(z.requires_grad_(), c)
    value.backward()
    optimiser.step()
    assert torch.equal(loss.margins, learned) and loss.raw_margins.grad is None and z.grad is not None
    fresh = MultiMarginNPairLoss(5, fixed_margins=dict(enumerate(learned.tolist()))).double()
    assert fresh.raw_margins.numel() == 0
    assert torch.allclose(fresh(z, c), value, rtol=1e-6)  # the fresh buffers were float32
    fixed = MultiMarginNPairLoss(5, init=(1.0, 1.0), learn_margins=False).double()
    assert torch.equal(fixed.margins, torch.ones(4, dtype=F64))


def test_invariances_weights_mask_and_dtypes():
    z, c = _data(8, seed=5)
    loss = _loss()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss(z[perm], c[perm]), loss(z, c), rtol=1e-12)
    assert torch.allclose(loss(3.0 * z, c), loss(z, c), rtol=1e-12)  # cosine: scale-free
    assert torch.allclose(loss(z, c.to(F64)), loss(z, c), rtol=1e-12)
    w = torch.rand(8, dtype=F64, generator=torch.Generator().manual_seed(2))
    per_anchor = _loss(reduction="none")(z, c)
    assert torch.allclose(loss(z, c, weights=w), (w * per_anchor).sum() / w.sum(), rtol=1e-12)
    keep = torch.tensor([True, False] * 4)
    assert torch.allclose(loss(z, c, mask=keep), loss(z[keep], c[keep]), rtol=1e-12)
    half = MultiMarginNPairLoss(4)(z.half(), c)
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_bad_input():
    z, c = _data(4, seed=6)
    loss = _loss()
    with pytest.raises(ValueError, match="out of range"):
        loss(z, torch.tensor([0, 1, 2, 4]))
    with pytest.raises(ValueError, match="out of range"):
        loss(z, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match="integer class indices"):
        loss(z, torch.tensor([0.0, 0.5, 2.0, 3.0]))
    with pytest.raises(ValueError, match="NaN"):
        loss(z, torch.tensor([0.0, math.nan, 2.0, 3.0]))
    with pytest.raises(ValueError, match="batch size mismatch"):
        loss(z, c[:3])
    bad = [
        {"num_classes": 1},
        {"min_margin": -0.1},
        {"init": (0.0, 1.0)},
        {"init": (1.0, 0.5)},
        {"min_margin": 0.6},
        {"fixed_margins": {3: 1.0}},
        {"fixed_margins": {0: -1.0}},
        {"normalization": "sum"},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            MultiMarginNPairLoss(**{"num_classes": 4, **kwargs})


def _distributed_worker(rank, world, init_method, out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        z, c = _data(7, v=2, seed=7)
        rows = slice(0, 4) if rank == 0 else slice(4, 7)
        leaf = z[rows].clone().requires_grad_()
        loss = _loss(normalization="official")
        value = loss(leaf, c[rows], gather=True)
        value.backward()
        torch.save((value.detach(), leaf.grad / world, loss.raw_margins.grad), f"{out_dir}/rank{rank}.pt")
        # both ranks are done communicating before gloo is torn down (a teardown race can abort)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.timeout(120)
def test_gathered_equals_single_process(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_distributed_worker, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    z, c = _data(7, v=2, seed=7)
    leaf = z.clone().requires_grad_()
    loss = _loss(normalization="official")
    value = loss(leaf, c)
    value.backward()
    for rank, rows in enumerate((slice(0, 4), slice(4, 7))):
        got_value, got_grad, got_margin_grad = torch.load(tmp_path / f"rank{rank}.pt")
        assert torch.allclose(got_value, value, rtol=1e-12)
        assert torch.allclose(got_grad, leaf.grad[rows], rtol=1e-10, atol=1e-13)
        assert torch.allclose(got_margin_grad, loss.raw_margins.grad, rtol=1e-10, atol=1e-13)
