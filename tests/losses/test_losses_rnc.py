import pytest
import torch
from _losses_ref import rnc_naive_3d, rnc_paper

from clss.losses import RnCLoss

F64 = torch.float64


def _data(b, v=2, d=4, m=1, seed=0, ties=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, v, d, dtype=F64, generator=g)
    if ties:
        y = torch.randint(0, 3, (b, m), generator=g).to(F64)
    else:
        y = torch.randn(b, m, dtype=F64, generator=g)
    return z, y


def _value_and_grad(fn, z, y, **kwargs):
    z = z.clone().requires_grad_()
    value = fn(z, y, **kwargs)
    value.backward()
    return value.detach(), z.grad


@pytest.mark.parametrize(
    ("b", "m", "ties"),
    [(1, 1, False), (2, 1, False), (5, 1, False), (6, 1, True), (5, 3, True), (4, 2, False)],
)
@pytest.mark.parametrize(("label_diff", "feature_sim", "tau"), [("l1", "l2", 2.0), ("l2", "cosine", 0.1)])
def test_matches_paper_definition(b, m, ties, label_diff, feature_sim, tau):
    z, y = _data(b, m=m, seed=10 * b + m, ties=ties)
    loss = RnCLoss(temperature=tau, label_diff=label_diff, feature_sim=feature_sim)
    v, g = _value_and_grad(loss, z, y)
    v_ref, g_ref = _value_and_grad(
        rnc_paper, z, y, temperature=tau, label_diff=label_diff, feature_sim=feature_sim
    )
    assert torch.allclose(v, v_ref, rtol=1e-12, atol=1e-14)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-13)


def test_matches_naive_cubic_formulation_on_a_larger_tied_batch():
    z, y = _data(16, d=8, seed=1, ties=True)
    assert torch.allclose(RnCLoss()(z, y), rnc_naive_3d(z, y), rtol=1e-12)


def test_single_sample_two_views_is_exactly_zero_with_zero_gradient():
    z, y = _data(1)
    v, g = _value_and_grad(RnCLoss(), z, y)
    assert v.item() == 0.0 and g.abs().max() < 1e-14 * z.abs().max()


def test_all_targets_tied_is_infonce_not_zero():
    z, _ = _data(4)
    y = torch.zeros(4, 1, dtype=F64)
    flat = z.transpose(0, 1).reshape(8, -1)
    s = -torch.cdist(flat, flat) / 2.0
    off = ~torch.eye(8, dtype=torch.bool)
    lse = torch.logsumexp(s.masked_fill(~off, float("-inf")), dim=1, keepdim=True)
    expected = (lse - s)[off].mean()
    assert torch.allclose(RnCLoss()(z, y), expected, rtol=1e-12)
    assert RnCLoss()(z, y).item() > 0


def test_duplicate_features_have_finite_gradient():
    z, y = _data(3)
    z[1] = z[0]
    v, g = _value_and_grad(RnCLoss(), z, y)
    assert torch.isfinite(v) and torch.isfinite(g).all()


@pytest.mark.parametrize("feature_sim", ["l2", "cosine"])
def test_gradcheck(feature_sim):
    z, y = _data(3, d=3, seed=2, ties=True)
    loss = RnCLoss(temperature=0.5, feature_sim=feature_sim)
    assert torch.autograd.gradcheck(lambda x: loss(x, y), (z.requires_grad_(),))


def test_invariances_permutation_translation_scaling():
    z, y = _data(7, seed=3)
    loss = RnCLoss()
    base = loss(z, y)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss(z[perm], y[perm]), base, rtol=1e-12)
    assert torch.allclose(loss(z, y + 100.0), base, rtol=1e-12)
    assert torch.allclose(loss(z, y * 3.7), base, rtol=1e-12)


def test_label_l2_equals_l1_for_scalar_targets_only():
    z, y = _data(6, seed=4)
    assert torch.allclose(RnCLoss(label_diff="l2")(z, y), RnCLoss()(z, y), rtol=1e-12)
    z, y = _data(6, m=2, seed=4)
    assert not torch.allclose(RnCLoss(label_diff="l2")(z, y), RnCLoss()(z, y))


def test_memory_is_quadratic_not_cubic():
    # The autograd graph must not hold an [n, n, n] tensor: n = 400 rows would need 64e6 entries.
    z = torch.randn(200, 2, 8, requires_grad=True)
    y = torch.randn(200)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        RnCLoss()(z, y)
    assert max(saved) <= 400 * 400


def test_weights_and_mask_for_pseudo_labeled_rows():
    z, y = _data(6, seed=5)
    loss = RnCLoss(reduction="none")
    per_anchor = loss(z, y)
    w = torch.tensor([1.0, 1.0, 1.0, 0.2, 0.2, 0.2], dtype=F64)
    w2 = torch.cat([w, w])
    assert torch.allclose(RnCLoss()(z, y, weights=w), (w2 * per_anchor).sum() / w2.sum())
    y_nan = y.clone()
    y_nan[4:] = float("nan")  # unlabeled rows without a pseudo-target
    mask = torch.arange(6) < 4
    assert torch.allclose(RnCLoss()(z, y_nan, mask=mask), RnCLoss()(z[:4], y[:4]), rtol=1e-12)
