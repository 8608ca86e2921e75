import pytest
import torch
import torch.nn.functional as F
from _losses_ref import supcon_official

from clss.losses import SupConLoss

F64 = torch.float64


def _data(b, v=2, d=5, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(b, v, d, dtype=F64, generator=g), dim=-1)
    return z, torch.randint(0, classes, (b,), generator=g)


@pytest.mark.parametrize(("b", "v"), [(1, 2), (2, 2), (6, 2), (5, 3), (7, 1)])
@pytest.mark.parametrize("mode", ["all", "one"])
def test_matches_loop_reference_supervised_and_simclr(b, v, mode):
    z, y = _data(b, v, seed=b + v)
    loss = SupConLoss(temperature=0.1, base_temperature=0.07, contrast_mode=mode)
    ref = supcon_official(z, y, 0.1, 0.07, mode)
    assert torch.allclose(loss(z, y), ref, rtol=1e-12, atol=1e-14)
    ref = supcon_official(z, None, 0.1, 0.07, mode)
    assert torch.allclose(loss(z), ref, rtol=1e-12, atol=1e-14)


def test_no_positives_contribute_zero_and_still_count():
    z, _ = _data(4, v=1, seed=3)
    y = torch.tensor([0, 1, 2, 2])
    per_anchor = SupConLoss(reduction="none")(z, y)
    assert per_anchor[:2].tolist() == [0.0, 0.0]
    assert torch.allclose(SupConLoss()(z, y), per_anchor.sum() / 4)
    assert SupConLoss()(z[:, 0], torch.arange(4)).item() == 0.0
    one = z[:1].clone().requires_grad_()
    v = SupConLoss()(one)  # a single row: nothing to contrast
    v.backward()
    assert v.item() == 0.0 and torch.equal(one.grad, torch.zeros_like(one))


def test_pair_mask_equals_label_mask_and_exclusive_with_targets():
    z, y = _data(6, seed=4)
    pm = y[:, None] == y[None, :]
    assert torch.allclose(SupConLoss()(z, pair_mask=pm), SupConLoss()(z, y), rtol=1e-12)
    with pytest.raises(ValueError, match="not both"):
        SupConLoss()(z, y, pair_mask=pm)
    with pytest.raises(ValueError, match="pair_mask must have shape"):
        SupConLoss()(z, pair_mask=pm[:5, :5])


def test_gradcheck_and_duplicate_features():
    z, y = _data(4, seed=5)
    loss = SupConLoss(temperature=0.5)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z.clone().requires_grad_(),))
    dup = torch.cat([z[:1], z[:1], z[2:]]).requires_grad_()
    v = loss(dup, y)
    v.backward()
    assert torch.isfinite(dup.grad).all()


def test_invariances_and_float_labels():
    z, y = _data(8, seed=6)
    loss = SupConLoss()
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(loss(z[perm], y[perm]), loss(z, y), rtol=1e-12)
    assert torch.allclose(loss(z, y.to(F64) * 0.5), loss(z, y), rtol=1e-12)
    y2 = torch.stack([y, y % 2], dim=1)  # multi-dim labels: positives need every column equal
    assert torch.allclose(loss(z, y2), supcon_official(z, y2), rtol=1e-12)


def test_weights_mask_and_bad_input():
    z, y = _data(6, seed=7)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 1.0, 3.0], dtype=F64)
    per_anchor = SupConLoss(reduction="none")(z, y)
    w2 = torch.cat([w, w])
    assert torch.allclose(SupConLoss()(z, y, weights=w), (w2 * per_anchor).sum() / w2.sum())
    mask = torch.tensor([True, True, False, True, True, True])
    assert torch.allclose(SupConLoss()(z, y, mask=mask), SupConLoss()(z[mask], y[mask]))
    with pytest.raises(ValueError, match="NaN"):
        SupConLoss()(z, torch.tensor([0.0, 1, 2, 3, 4, float("nan")]))
    with pytest.raises(ValueError, match="contrast_mode"):
        SupConLoss(contrast_mode="two")
