import pytest
import scipy.stats
import torch
from _losses_ref import official_rank

from clss.losses.ranking import blackbox_rank, rank_normalised, unique_representatives

F64 = torch.float64


def test_rank_normalised_matches_official_double_argsort_including_ties():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (20, 9), generator=g).to(F64)  # many ties
    assert torch.equal(rank_normalised(x), official_rank(x))
    x = torch.tensor([[5.0, 1.0, 3.0]], dtype=F64)
    assert rank_normalised(x).tolist() == [[1 / 3, 1, 2 / 3]]
    # Later index gets the better rank among equals (official CPU behaviour).
    assert rank_normalised(torch.tensor([[2.0, 2.0]])).tolist() == [[1.0, 0.5]]


def test_rank_normalised_average_ties_matches_scipy():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 5, (10, 12), generator=g).to(F64)
    expected = torch.tensor(scipy.stats.rankdata(-x.numpy(), axis=1)) / 12
    assert torch.allclose(rank_normalised(x, ties="average"), expected, atol=0, rtol=0)
    y = torch.randn(3, 7, dtype=F64)  # without ties both rules agree
    assert torch.equal(rank_normalised(y, "average"), rank_normalised(y))


def test_rank_normalised_dtype_and_bad_ties():
    x = torch.randn(2, 5)
    assert rank_normalised(x, dtype=F64).dtype == F64
    assert rank_normalised(x.to(F64)).dtype == F64
    with pytest.raises(ValueError, match="ties"):
        rank_normalised(x, ties="dense")


def test_blackbox_backward_is_the_documented_finite_difference():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(4, 6, dtype=F64, generator=g, requires_grad=True)
    upstream = torch.randn(4, 6, dtype=F64, generator=g)
    lam = 2.0
    r = blackbox_rank(s, lam)
    assert torch.equal(r, rank_normalised(s))
    (grad,) = torch.autograd.grad(r, s, upstream)
    expected = -(rank_normalised(s) - rank_normalised(s + lam * upstream)) / (lam + 1e-8)
    assert torch.equal(grad, expected)
    assert grad.abs().sum() > 0


def test_blackbox_gradient_is_zero_when_perturbation_keeps_the_order():
    s = torch.tensor([[3.0, 2.0, 1.0]], dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(blackbox_rank(s, 1.0), s, torch.full((1, 3), 0.1, dtype=F64))
    assert torch.equal(grad, torch.zeros_like(s))


def test_blackbox_gradient_descends_a_rank_mismatch():
    # Target ranks reversed: a small step against the blackbox gradient moves toward them.
    s = torch.tensor([[3.0, 2.0, 1.0]], dtype=F64, requires_grad=True)
    target = torch.tensor([[1.0, 2 / 3, 1 / 3]], dtype=F64)
    loss = (blackbox_rank(s, 2.0) - target).pow(2).sum()
    loss.backward()
    assert s.grad[0, 0] > 0 and s.grad[0, 2] < 0


def test_unique_representatives():
    y = torch.tensor([3.0, 1.0, 3.0, 2.0, 1.0, 3.0])
    assert torch.equal(unique_representatives(torch.tensor([2.0, 0.0, 1.0])), torch.arange(3))
    seen = set()
    for seed in range(40):
        keep = unique_representatives(y, torch.Generator().manual_seed(seed))
        assert y[keep].tolist() == [1.0, 2.0, 3.0]  # sorted unique order, one per value
        seen.add(tuple(keep.tolist()))
    assert len(seen) == 6  # 2 × 1 × 3 choices, all reached
    a = unique_representatives(y, torch.Generator().manual_seed(7))
    b = unique_representatives(y, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    rows = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    assert unique_representatives(rows).shape == (2,)
