import pytest
import torch
from _losses_ref import prediction_rank_loop, ranksim_loop

from clss.losses import PseudoRankPredictionLoss, PseudoRankSimilarityLoss, RankSimLoss
from clss.losses.ranking import unique_representatives

F64 = torch.float64


def _data(n, d=5, seed=0, ties=False):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, dtype=F64, generator=g)
    y = torch.randint(0, n // 2, (n,), generator=g) if ties else torch.randn(n, generator=g)
    return z, y.to(F64)


def _value_and_grad(fn, z, *args, **kwargs):
    z = z.clone().requires_grad_()
    value = fn(z, *args, **kwargs)
    value.backward()
    return value.detach(), z.grad


@pytest.mark.parametrize("n", [1, 2, 3, 8, 17])
def test_ranksim_matches_official_loop_values_and_gradients(n):
    z, y = _data(n, seed=n)
    v, g = _value_and_grad(RankSimLoss(lambda_val=2.0), z, y)
    v_ref, g_ref = _value_and_grad(ranksim_loop, z, y, 2.0)
    assert torch.allclose(v, v_ref, rtol=1e-12, atol=1e-14)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12)


def test_ranksim_deduplication_replays_official_with_the_same_draw():
    z, y = _data(12, seed=3, ties=True)
    keep = unique_representatives(y, torch.Generator().manual_seed(5))
    assert len(keep) < 12
    v, g = _value_and_grad(RankSimLoss(), z, y, generator=torch.Generator().manual_seed(5))
    v_ref, g_ref = _value_and_grad(ranksim_loop, z, y, 2.0, keep=keep)
    assert torch.allclose(v, v_ref, rtol=1e-12)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12 * float(g_ref.abs().max()))


def test_ranksim_single_distinct_target_is_zero_and_reduction_mean():
    z, _ = _data(6)
    v = RankSimLoss()(z.requires_grad_(), torch.full((6,), 3.0, dtype=F64))
    assert v.item() == 0.0
    v.backward()
    assert torch.equal(z.grad, torch.zeros_like(z))
    z, y = _data(9, seed=4)
    assert torch.allclose(RankSimLoss(reduction="mean")(z, y), RankSimLoss()(z, y) / 9)
    assert RankSimLoss(reduction="none")(z, y).shape == (9,)


def test_ranksim_invariances_permutation_translation():
    z, y = _data(10, seed=6)
    loss = RankSimLoss()
    base = loss(z, y)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(loss(z[perm], y[perm]), base, rtol=1e-12)
    assert torch.allclose(loss(z, y + 17.0), base, rtol=1e-12)


def test_ranksim_multiview_and_multidim_targets():
    g = torch.Generator().manual_seed(8)
    z = torch.randn(5, 2, 4, dtype=F64, generator=g)
    y = torch.randn(5, generator=g, dtype=F64)
    flat = z.transpose(0, 1).reshape(10, 4)
    loss = RankSimLoss(deduplicate=False)
    assert torch.allclose(loss(z, y), ranksim_loop(flat, torch.cat([y, y])), rtol=1e-12)
    y2 = torch.randn(5, 3, generator=g, dtype=F64)
    assert torch.isfinite(RankSimLoss(label_diff="l2")(z[:, 0], y2))


def test_ranksim_weights_and_mask():
    z, y = _data(8, seed=9)
    w = torch.rand(8, dtype=F64)
    per_anchor = RankSimLoss(reduction="none")(z, y)
    assert torch.allclose(RankSimLoss()(z, y, weights=w), (w * per_anchor).sum())
    mask = torch.tensor([True] * 6 + [False] * 2)
    y_nan = y.clone()
    y_nan[6:] = float("nan")
    assert torch.allclose(RankSimLoss()(z, y_nan, mask=mask), RankSimLoss()(z[:6], y[:6]))


@pytest.mark.parametrize("n", [2, 8, 16])
def test_pseudo_rank_similarity_is_ranksim_loop_on_pseudo_ranks(n):
    z, _ = _data(n, seed=10 + n)
    ranks = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    v, g = _value_and_grad(PseudoRankSimilarityLoss(), z, ranks)
    v_ref, g_ref = _value_and_grad(ranksim_loop, z, ranks.to(F64), 2.0)
    assert torch.allclose(v, v_ref, rtol=1e-12)
    assert torch.allclose(g, g_ref, rtol=1e-10, atol=1e-12 * float(g_ref.abs().max()))
    # Orientation of the seriation is irrelevant: only |π_i − π_j| is used.
    assert torch.allclose(PseudoRankSimilarityLoss()(z, n - 1 - ranks), v, rtol=1e-12)


@pytest.mark.parametrize("n", [2, 9, 16])
def test_pseudo_rank_prediction_matches_loop(n):
    g = torch.Generator().manual_seed(n)
    pred = torch.randn(n, 1, dtype=F64, generator=g)
    ranks = torch.randperm(n, generator=g)
    v, grad = _value_and_grad(PseudoRankPredictionLoss(), pred, ranks)
    v_ref, grad_ref = _value_and_grad(prediction_rank_loop, pred, ranks)
    assert torch.allclose(v, v_ref, rtol=1e-12)
    assert torch.allclose(grad, grad_ref, rtol=1e-10, atol=1e-14)
    assert torch.allclose(PseudoRankPredictionLoss()(pred[:, 0], ranks), v, rtol=1e-12)


def test_pseudo_rank_average_ties_differs_only_through_tied_targets():
    z, _ = _data(8, seed=20)
    ranks = torch.arange(8)
    index = PseudoRankSimilarityLoss()(z, ranks)
    average = PseudoRankSimilarityLoss(target_ties="average")(z, ranks)
    assert not torch.allclose(index, average)  # |π_i − π_{i±1}| always tie
    # With a single anchor pair there are no ties: both rules agree.
    assert torch.allclose(
        PseudoRankSimilarityLoss()(z[:2], ranks[:2]),
        PseudoRankSimilarityLoss(target_ties="average")(z[:2], ranks[:2]),
    )


def test_rank_losses_bad_input():
    z, y = _data(6)
    with pytest.raises(ValueError, match="lambda_val"):
        RankSimLoss(lambda_val=-1)
    with pytest.raises(ValueError, match="batch size mismatch"):
        PseudoRankSimilarityLoss()(z, y[:5])
    with pytest.raises(ValueError, match="NaN"):
        PseudoRankPredictionLoss()(y, torch.tensor([0.0, 1, 2, 3, 4, float("nan")]))
    with pytest.raises(ValueError, match="target_ties"):
        PseudoRankSimilarityLoss(target_ties="min")
