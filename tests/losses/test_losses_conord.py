import pytest
import torch
import torch.nn.functional as F
from _losses_ref import conord_paper

from clss.losses import ConOrdCenterLoss, ConOrdLoss, knn_predict

F64 = torch.float64


def _data(b, v=1, d=4, seed=0, n_ranks=4):
    g = torch.Generator().manual_seed(seed)
    z = F.normalize(torch.randn(b, v, d, dtype=F64, generator=g), dim=-1)
    r = torch.randint(0, n_ranks, (b,), generator=g).to(F64)
    return (z[:, 0] if v == 1 else z), r


TABLE_1 = [
    (sim, aff, disp)
    for sim in ("dot", "sq_l2")
    for aff, disp in (("inv_abs", "one"), ("inv_sq", "one"), ("inv_abs", "abs"), ("inv_sq", "sq"))
]


@pytest.mark.parametrize(("similarity", "affinity", "disparity"), TABLE_1)
@pytest.mark.parametrize(("b", "v"), [(2, 1), (5, 2), (9, 1)])
def test_matches_paper_formula_for_every_table_1_configuration(b, v, similarity, affinity, disparity):
    z, r = _data(b, v, seed=b * v)
    r[0] = r[1] + 1  # at least two distinct ranks
    loss = ConOrdLoss(similarity=similarity, affinity=affinity, disparity=disparity)
    ref = conord_paper(z, r, similarity=similarity, affinity=affinity, disparity=disparity)
    assert torch.allclose(loss(z, r), ref, rtol=1e-10, atol=1e-12)


def test_all_tied_anchors_are_excluded_and_finite():
    z, _ = _data(5)
    z = z.clone().requires_grad_()
    value = ConOrdLoss()(z, torch.full((5,), 2.0, dtype=F64))
    value.backward()
    assert value.item() == 0.0 and torch.isfinite(z.grad).all()
    assert torch.isfinite(ConOrdLoss(disparity="one")(z, torch.full((5,), 2.0, dtype=F64)))


def test_autograd_matches_appendix_a_closed_form():
    z, r = _data(6, seed=3)
    tau = 0.5
    loss = ConOrdLoss(temperature=tau, reduction="none")
    i = 2
    zi = z[i].clone().requires_grad_()
    rows = torch.cat([z[:i], zi[None], z[i + 1 :]])
    loss(rows, r)[i].backward()
    kappa = -((z[i] - z) ** 2).sum(1)
    delta = (r[i] - r).abs()
    a, b = 1 / (delta**2 + 1e-7), delta**2
    e = torch.exp(kappa / tau)
    others = torch.arange(6) != i
    alpha, beta = (a * e)[others].sum(), (b * e)[others].sum()
    coeff = (e * (a / alpha - b / beta))[others]
    expected = 2 / (tau * 5) * (coeff[:, None] * (z[i] - z[others])).sum(0)
    assert torch.allclose(zi.grad, expected, rtol=1e-8)


def test_gradcheck_invariances_and_bad_input():
    z, r = _data(5, d=3, seed=4)
    loss = ConOrdLoss(temperature=0.5)
    assert torch.autograd.gradcheck(lambda x: loss(x, r), (z.clone().requires_grad_(),))
    perm = torch.randperm(5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss(z[perm], r[perm]), loss(z, r), rtol=1e-12)
    assert torch.allclose(loss(z, r + 10), loss(z, r), rtol=1e-12)
    with pytest.raises(ValueError, match="affinity"):
        ConOrdLoss(affinity="exp")
    with pytest.raises(ValueError, match="at least 2"):
        loss(z[:1], r[:1])


def test_center_loss():
    torch.manual_seed(0)
    crit = ConOrdCenterLoss(num_ranks=4, dim=4).double()
    z, r = _data(6, v=2, seed=5)
    value = crit(z, r)
    flat = z.transpose(0, 1).reshape(12, 4)
    rr = torch.cat([r, r]).long()
    expected = sum(torch.linalg.vector_norm(flat[i] - crit.centers[rr[i]]) for i in range(12))
    assert torch.allclose(value, expected)
    value.backward()
    assert crit.centers.grad.abs().sum() > 0
    mean = ConOrdCenterLoss(4, 4, reduction="mean").double()
    mean.load_state_dict(crit.state_dict())
    assert torch.allclose(mean(z, r), value / 12)
    with pytest.raises(ValueError, match="integers in"):
        crit(z, r + 0.5)
    with pytest.raises(ValueError, match="integers in"):
        crit(z, r + 4)
    with pytest.raises(ValueError, match="dimension"):
        crit(z[..., :3], r)


def test_knn_predict():
    g = torch.Generator().manual_seed(6)
    train = torch.randn(30, 3, dtype=F64, generator=g)
    y = torch.randn(30, dtype=F64, generator=g)
    query = torch.randn(7, 3, dtype=F64, generator=g)
    pred = knn_predict(train, y, query, k=4, chunk_size=3)
    for q in range(7):
        nearest = ((train - query[q]) ** 2).sum(1).argsort()[:4]
        assert torch.allclose(pred[q], y[nearest].mean())
    assert knn_predict(train, torch.stack([y, 2 * y], 1), query, k=1).shape == (7, 2)
    assert torch.allclose(knn_predict(train, y, train, k=1), y)
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(train, y, query, k=31)
