import math

import pytest
import torch
from _losses_ref import oe_official, oe_pairwise_official

from clss.losses import OrdinalEntropyLoss

F64 = torch.float64


def _data(n, d=6, n_values=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, dtype=F64, generator=g)
    y = torch.randint(0, n_values, (n,), generator=g).to(F64) / 3
    return z, y


@pytest.mark.parametrize(("n", "n_values"), [(3, 2), (8, 3), (16, 5), (24, 12)])
@pytest.mark.parametrize("tightness", ["squared", "euclidean"])
def test_center_variant_matches_official(n, n_values, tightness):
    z, y = _data(n, n_values=n_values, seed=n)
    if len(torch.unique(y)) < 2:
        pytest.skip("degenerate draw")
    value = OrdinalEntropyLoss(tightness=tightness)(z, y)
    ref = oe_official(z, y, sqrt_tightness=tightness == "euclidean")
    assert torch.allclose(value, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n", [2, 7, 15])
def test_pairwise_variant_matches_official(n):
    z, _ = _data(n, seed=n)
    y = torch.randn(n, dtype=F64, generator=torch.Generator().manual_seed(1))
    value = OrdinalEntropyLoss(variant="pairwise")(z, y)
    assert torch.allclose(value, oe_pairwise_official(z, y), rtol=1e-10, atol=1e-12)


def test_finite_where_official_is_nan_or_raises():
    z, _ = _data(6)
    unique = torch.arange(6, dtype=F64)
    assert math.isnan(oe_official(z, unique).item())  # every label unique → T over an empty set
    value = OrdinalEntropyLoss()(z, unique)
    # T := 0; with singleton classes the centres are the samples, so −D is the pairwise variant.
    assert torch.allclose(value, oe_pairwise_official(z, unique), rtol=1e-10)
    tied = torch.full((6,), 2.0, dtype=F64)
    with pytest.raises(RuntimeError):
        oe_official(z, tied)  # one distinct label → max of an empty tensor
    for variant in ("center", "pairwise"):
        zz = z.clone().requires_grad_()
        v = OrdinalEntropyLoss(variant=variant)(zz, tied)
        v.backward()
        assert torch.isfinite(v) and torch.isfinite(zz.grad).all()
    # One sample: exactly 0.
    assert OrdinalEntropyLoss()(z[:1], unique[:1]).item() == 0.0


def test_two_distinct_labels_have_zero_diversity():
    z, _ = _data(6)
    y = torch.tensor([0.0, 0, 0, 1, 1, 1], dtype=F64)
    zn = torch.nn.functional.normalize(z, dim=1)
    centres = torch.nn.functional.normalize(torch.stack([z[:3].mean(0), z[3:].mean(0)]), dim=1)
    tight = ((zn - centres[y.long()]) ** 2).sum(1).mean()
    assert torch.allclose(OrdinalEntropyLoss()(z, y), tight)


def test_weight_norm_range_differs_from_official_max():
    z, y = _data(10, n_values=5, seed=2)
    y = y + 1.0  # min label distance stays > 0 only across classes; compare the two divisors
    a = OrdinalEntropyLoss(weight_norm="max")(z, y)
    b = OrdinalEntropyLoss(weight_norm="range")(z, y)
    assert torch.allclose(a, oe_official(z, y))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("variant", ["center", "pairwise"])
def test_gradcheck(variant):
    z, y = _data(7, d=3, n_values=3, seed=4)
    fn = OrdinalEntropyLoss(variant=variant, tightness="euclidean")
    assert torch.autograd.gradcheck(lambda x: fn(x, y), (z.requires_grad_(),))


def test_invariances_permutation_translation_scaling():
    z, y = _data(12, seed=5)
    loss = OrdinalEntropyLoss()
    base = loss(z, y)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss(z[perm], y[perm]), base, rtol=1e-12)
    assert torch.allclose(loss(z, y * 2.5 - 4.0), base, rtol=1e-10)


def test_multiview_weights_mask_and_bad_input():
    z, y = _data(8, seed=6)
    zv = torch.stack([z, z.flip(0)], dim=1)
    flat = zv.transpose(0, 1).reshape(16, -1)
    assert torch.allclose(OrdinalEntropyLoss()(zv, y), oe_official(flat, torch.cat([y, y])))
    w = torch.ones(8, dtype=F64)
    assert torch.allclose(OrdinalEntropyLoss()(z, y, weights=w), OrdinalEntropyLoss()(z, y))
    mask = torch.arange(8) < 6
    assert torch.allclose(OrdinalEntropyLoss()(z, y, mask=mask), OrdinalEntropyLoss()(z[:6], y[:6]))
    with pytest.raises(ValueError, match="scalar targets"):
        OrdinalEntropyLoss()(z, torch.randn(8, 2))
    with pytest.raises(ValueError, match="variant"):
        OrdinalEntropyLoss(variant="root")
