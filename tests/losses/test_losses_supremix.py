import math

import pytest
import torch
import torch.nn.functional as F
from _losses_ref import supremix_official_literal, supremix_paper_loop

from clss.losses import SupConLoss, SupReMixLoss

F64 = torch.float64


def _data(b, v=2, d=4, levels=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(b, v, d, dtype=F64, generator=g), dim=-1)
    y = torch.randint(0, levels, (b,), generator=g).to(F64)
    lam = torch.rand(b * v, b * v, dtype=F64, generator=g)
    return z, y, lam


@pytest.mark.parametrize(("b", "v"), [(1, 1), (1, 2), (2, 2), (2, 1), (5, 2), (6, 1), (4, 3)])
@pytest.mark.parametrize("window", [2.5, math.inf])
def test_matches_paper_and_official_references(b, v, window):
    z, y, lam = _data(b, v, seed=10 * b + v)
    paper = SupReMixLoss(0.5, window=window)(z, y, lambdas=lam)
    assert torch.allclose(paper, supremix_paper_loop(z, y, 0.5, window, lam), rtol=1e-12, atol=1e-13)
    if v > 1:  # the official code needs a positive per anchor (NaN otherwise)
        official = SupReMixLoss(0.5, window=window, mode="official")(z, y, lambdas=lam)
        reference = supremix_official_literal(z, y, 0.5, window, lam)
        assert torch.allclose(official, reference, rtol=1e-12, atol=1e-13)


def test_ties_duplicates_and_no_positives():
    z, _, lam = _data(6, seed=1)
    tied = torch.full((6,), 3.0, dtype=F64)
    # All targets tied: no mixtures, weights 1, so both modes are SupCon with τ_base = τ.
    expected = SupConLoss(temperature=0.3, base_temperature=0.3)(z, tied)
    for mode in ("paper", "official"):
        assert torch.allclose(SupReMixLoss(0.3, mode=mode)(z, tied, lambdas=lam), expected, rtol=1e-12)
    y = torch.tensor([0.0, 1.0, 1.0, 2.0, 7.0, 7.0], dtype=F64)
    dup = torch.cat([z[:1], z[:1], z[2:]]).requires_grad_()
    value = SupReMixLoss(0.5)(dup, y, lambdas=lam)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(dup.grad).all()
    assert torch.allclose(value, supremix_paper_loop(dup.detach(), y, 0.5, 5.0, lam), rtol=1e-12)
    # One view, distinct targets 10 apart: no positives at all, every anchor contributes 0.
    single = z[:3, 0].clone().requires_grad_()
    value = SupReMixLoss(0.5)(single, torch.tensor([0.0, 10.0, 20.0]), generator=torch.Generator())
    value.backward()
    assert value.item() == 0.0 and torch.equal(single.grad, torch.zeros_like(single))


def _two_sample_official(z, lam, tau, aligned):
    """Official value for targets [0, 1] with two views, written out: two Mix-neg columns per
    anchor, no padding; weights paired with the sorted labels (Q1), two shifts (Q2)."""
    flat = z.transpose(0, 1).reshape(4, -1)
    y = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=F64)
    real = flat @ flat.T / tau
    losses = []
    for i in range(4):
        others = [k for k in range(4) if y[k] != y[i]]
        mix = torch.stack([(lam[i, k] * flat[i] + (1 - lam[i, k]) * flat[k]) @ flat[i] / tau for k in others])
        labels = torch.stack([lam[i, k] * y[i] + (1 - lam[i, k]) * y[k] for k in others])
        paired = labels if aligned else labels.sort().values
        c_real, c_mix = real[i].max(), mix.max()
        denom = sum((1 + abs(y[i] - y[k])) * torch.exp(real[i, k] - c_real) for k in range(4) if k != i)
        denom = denom + ((1 + (y[i] - paired).abs()) * torch.exp(mix - c_mix)).sum()
        losses.append(-(real[i, (i + 2) % 4] - c_real) + torch.log(denom))
    return torch.stack(losses).mean()


def test_official_mode_pins_the_documented_quirks():
    z, _, _ = _data(2, seed=2)
    y = torch.tensor([0.0, 1.0], dtype=F64)
    # Anchor 0's Mix-neg labels are 1 − λ[0, k] for k = 1, 3, anchor 1's λ[1, k] for k = 0, 2 (and
    # so on): these draws make every anchor's labels ascend in column order, those descend.
    ascending = torch.tensor(
        [[0, 0.9, 0, 0.2], [0.1, 0, 0.6, 0], [0, 0.8, 0, 0.3], [0.2, 0, 0.7, 0]], dtype=F64
    )
    descending = torch.tensor(
        [[0, 0.2, 0, 0.9], [0.6, 0, 0.1, 0], [0, 0.3, 0, 0.8], [0.7, 0, 0.2, 0]], dtype=F64
    )
    official, paper = SupReMixLoss(0.5, mode="official"), SupReMixLoss(0.5)
    for lam in (ascending, descending):
        got = official(z, y, lambdas=lam)
        assert torch.allclose(got, _two_sample_official(z, lam, 0.5, aligned=False), rtol=1e-12)
        assert torch.allclose(paper(z, y, lambdas=lam), supremix_paper_loop(z, y, 0.5, 5.0, lam), rtol=1e-12)
        assert not torch.allclose(got, paper(z, y, lambdas=lam), rtol=1e-3)
    # Aligned labels: Q1 is void and only the two shifts (Q2) remain.
    aligned = _two_sample_official(z, ascending, 0.5, aligned=True)
    assert torch.allclose(official(z, y, lambdas=ascending), aligned, rtol=1e-12)
    # Misaligned labels: the weights of the two Mix-neg columns are swapped (Q1).
    assert not torch.allclose(
        _two_sample_official(z, descending, 0.5, aligned=True), official(z, y, lambdas=descending)
    )


def test_permutation_invariance_paper_but_not_official():
    z, y, lam = _data(7, seed=3)
    y = torch.tensor([0.0, 1.0, 2.0, 2.0, 3.0, 5.0, 6.0], dtype=F64)
    perm = torch.randperm(7, generator=torch.Generator().manual_seed(1))
    rows = torch.cat([perm, perm + 7])  # the permutation acting on the view-major rows
    lam_perm = lam[rows][:, rows]
    paper, official = SupReMixLoss(0.5, window=3.0), SupReMixLoss(0.5, window=3.0, mode="official")
    assert torch.allclose(paper(z[perm], y[perm], lambdas=lam_perm), paper(z, y, lambdas=lam), rtol=1e-12)
    assert not torch.allclose(official(z[perm], y[perm], lambdas=lam_perm), official(z, y, lambdas=lam))
    assert torch.allclose(paper(z, y + 10.0, lambdas=lam), paper(z, y, lambdas=lam), rtol=1e-12)


def test_generator_makes_the_mixing_reproducible():
    z, y, _ = _data(6, seed=4)
    loss = SupReMixLoss(0.5)
    first = loss(z, y, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, loss(z, y, generator=torch.Generator().manual_seed(5)))
    assert not torch.equal(first, loss(z, y, generator=torch.Generator().manual_seed(6)))
    # λ ~ Beta(α, β): a degenerate Beta(1e6, 1e-6) puts every λ at 1 (Mix-neg = anchor).
    at_anchor = SupReMixLoss(0.5, alpha=1e6, beta=1e-6)(z, y, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(at_anchor, loss(z, y, lambdas=torch.ones(12, 12, dtype=F64)), rtol=1e-5)


@pytest.mark.parametrize(
    ("mode", "reference"), [("paper", supremix_paper_loop), ("official", supremix_official_literal)]
)
def test_gradients_flow_through_anchors_only(mode, reference):
    # Mixtures are detached copies, so the gradient is that of the loss with the mixtures held
    # fixed (not the full derivative of the value): compare with the loops' autograd gradients.
    z, _, lam = _data(4, d=3, seed=5)
    y = torch.tensor([0.0, 1.0, 2.0, 1.0], dtype=F64)
    leaf, ref_leaf = z.clone().requires_grad_(), z.clone().requires_grad_()
    SupReMixLoss(0.5, mode=mode)(leaf, y, lambdas=lam).backward()
    reference(ref_leaf, y, 0.5, 5.0, lam).backward()
    assert torch.allclose(leaf.grad, ref_leaf.grad, rtol=1e-10, atol=1e-13)
    # Without mixtures (all targets tied) the loss is an ordinary function of the features.
    tied = torch.ones(4, dtype=F64)
    loss = SupReMixLoss(0.5, mode=mode)
    assert torch.autograd.gradcheck(lambda x: loss(x, tied, lambdas=lam), (z.clone().requires_grad_(),))


def test_weights_mask_dtypes_and_bad_input():
    z, y, lam = _data(5, seed=6)
    w = torch.tensor([1.0, 2.0, 0.0, 1.0, 3.0], dtype=F64)
    loss = SupReMixLoss(0.5)
    per_anchor = SupReMixLoss(0.5, reduction="none")(z, y, lambdas=lam)
    assert torch.allclose(
        loss(z, y, weights=w, lambdas=lam), (w.repeat(2) * per_anchor).sum() / (2 * w.sum())
    )
    keep = torch.tensor([True, False, True, True, True])
    rows = keep.repeat(2).nonzero().squeeze(1)
    masked = loss(z, y, mask=keep, lambdas=lam[rows][:, rows])
    assert torch.allclose(masked, loss(z[keep], y[keep], lambdas=lam[rows][:, rows]), rtol=1e-12)
    half = loss(z.half(), y, generator=torch.Generator().manual_seed(0))
    assert half.dtype == torch.float32 and torch.isfinite(half)
    with pytest.raises(ValueError, match="scalar targets"):
        loss(z, torch.stack([y, y], 1))
    with pytest.raises(ValueError, match="NaN"):
        loss(z, torch.tensor([0.0, 1, 2, 3, float("nan")]))
    with pytest.raises(ValueError, match="batch size mismatch"):
        loss(z, y[:4])
    with pytest.raises(ValueError, match="lambdas must have shape"):
        loss(z, y, lambdas=lam[:5])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        loss(z, y, lambdas=lam + 1)
    with pytest.raises(ValueError, match="not both"):
        loss(z, y, lambdas=lam, generator=torch.Generator())
    for kwargs in ({"window": 0.0}, {"alpha": -1.0}, {"mode": "compat"}, {"temperature": 0.0}):
        with pytest.raises(ValueError):
            SupReMixLoss(**{"temperature": 0.5, **kwargs})
