"""Each part of clss.methods.parts against a direct computation of its formula."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from clss.losses import PseudoRankPredictionLoss, PseudoRankSimilarityLoss, RnCLoss
from clss.methods import Batch
from clss.methods.common import contrastive_loss
from clss.methods.parts import (
    anchored_contrastive_terms,
    draw_rows,
    kept_count,
    pseudo_rank_terms,
    ranks_of,
    reachable,
    seriation_ranks,
    stable_subset,
    supervised_terms,
)
from clss.seriation import cross_view_perturbation, select_stable_subset


def data(n=12, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    feat = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    pred = torch.randn(n, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    return pred, feat, y


@pytest.mark.parametrize("rows", [None, 5, 12, 40])
@pytest.mark.parametrize("regression", ["mse", "l1"])
def test_supervised_terms_are_the_regression_plus_the_weighted_loss_on_the_drawn_rows(rows, regression):
    pred, feat, y = data()
    loss = contrastive_loss("rnc")
    got = supervised_terms(pred, feat, y, regression=regression, contrastive=loss, weight=0.3, rows=rows,
                           generator=torch.Generator().manual_seed(7))
    ref_regression = ((pred - y) ** 2).mean() if regression == "mse" else (pred - y).abs().mean()
    drawn = (torch.arange(12) if rows is None or rows >= 12
             else torch.randperm(12, generator=torch.Generator().manual_seed(7))[:rows])
    assert set(got) == {"regression", "contrastive"}
    assert torch.allclose(got["regression"], ref_regression, rtol=1e-12, atol=0)
    assert torch.allclose(got["contrastive"], 0.3 * RnCLoss()(feat[drawn], y[drawn]), rtol=1e-12, atol=1e-15)


def test_supervised_terms_without_contrastive_term_or_targets():
    pred, feat, y = data()
    gen = torch.Generator().manual_seed(1)
    state = gen.get_state()
    for loss, weight in [(None, 1.0), (contrastive_loss("oe"), 0.0)]:
        got = supervised_terms(pred, feat, y, regression="mse", contrastive=loss, weight=weight, rows=3,
                               generator=gen)
        assert set(got) == {"regression"}
    assert torch.equal(gen.get_state(), state)  # no term, no draw
    with pytest.raises(ValueError, match="no targets"):
        supervised_terms(pred, feat, None, regression="mse", contrastive=None, weight=1.0, rows=None,
                         generator=gen)


def test_draw_rows_takes_the_generators_rows_of_every_view():
    x, x2 = torch.randn(10, 3), torch.randn(10, 3)
    batch = Batch({"weak": x, "weak@2": x2}, torch.arange(100, 110), torch.arange(10.0))
    got = draw_rows(batch, 4, torch.Generator().manual_seed(3))
    rows = torch.randperm(10, generator=torch.Generator().manual_seed(3))[:4]
    assert torch.equal(got.view("weak"), x[rows]) and torch.equal(got.view("weak@2"), x2[rows])
    assert torch.equal(got.index, 100 + rows) and torch.equal(got.y, rows.float())
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    assert draw_rows(batch, None, gen) is batch and draw_rows(batch, 10, gen) is batch
    assert torch.equal(gen.get_state(), state)


def test_seriation_ranks_are_the_fiedler_order_of_the_shifted_cosine_similarities():
    _, feat, _ = data(n=15, d=4, seed=2)
    f = feat.detach().numpy()
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    s = unit @ unit.T
    off = ~np.eye(15, dtype=bool)
    w = (s - min(s[off].min(), 0.0)) * off
    _, vecs = np.linalg.eigh(np.diag(w.sum(1)) - w)
    ref = np.argsort(np.argsort(vecs[:, 1]))
    got = seriation_ranks(feat)
    assert got.dtype == feat.dtype and not got.requires_grad
    assert np.array_equal(got.numpy(), ref) or np.array_equal(got.numpy(), 14 - ref)


def test_ranks_of_breaks_ties_in_index_order():
    assert torch.equal(ranks_of(torch.tensor([0.5, -1.0, 0.5, 2.0])), torch.tensor([1.0, 0.0, 2.0, 3.0]))


@pytest.mark.parametrize(("rank_weight", "consistency_weight", "keys"),
                         [(0.2, 0.1, {"unlabeled_rank", "unlabeled_consistency"}),
                          (0.2, 0.0, {"unlabeled_rank"}), (0.0, 0.1, set())])
def test_pseudo_rank_terms_are_the_weighted_losses(rank_weight, consistency_weight, keys):
    pred, feat, _ = data(n=8)
    targets = torch.randperm(8, generator=torch.Generator().manual_seed(0)).double()
    rank, consistency = PseudoRankSimilarityLoss(), PseudoRankPredictionLoss()
    got = pseudo_rank_terms(pred, feat, targets, rank_loss=rank, consistency_loss=consistency,
                            rank_weight=rank_weight, consistency_weight=consistency_weight)
    assert set(got) == keys
    if "unlabeled_rank" in keys:
        ref = rank_weight * rank(feat, targets)
        assert torch.allclose(got["unlabeled_rank"], ref, rtol=1e-12, atol=1e-15)
    if "unlabeled_consistency" in keys:
        assert torch.allclose(got["unlabeled_consistency"], consistency_weight * consistency(pred, targets),
                              rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("keep", "n", "k"), [(0.75, 8, 6), (0.75, 10, 8), (0.1, 10, 2), (1.0, 5, 5),
                                               (4, 10, 4), (20, 10, 10), (2, 2, 2)])
def test_kept_count(keep, n, k):
    assert kept_count(keep, n) == k


@pytest.mark.parametrize("objective", ["min", "max_faithful"])
def test_stable_subset_is_the_dp_on_the_cross_view_perturbation(objective):
    g = torch.Generator().manual_seed(4)
    f0, f1 = torch.randn(10, 6, generator=g), torch.randn(10, 6, generator=g)
    got = stable_subset(f0, f1, 0.5, perturbation="std", objective=objective)
    ref = select_stable_subset(cross_view_perturbation(f0, f1, mode="std"), 5, objective=objective)
    assert np.array_equal(got.numpy(), np.asarray(ref))
    assert torch.equal(stable_subset(f0, f1, 1.0, perturbation="cv", objective=objective), torch.arange(10))


def test_reachable_drops_nan_values_and_renumbers_the_ranks():
    sel = torch.tensor([7, 2, 9, 4])
    values = torch.tensor([0.3, float("nan"), -1.0, 2.0], dtype=torch.float64)
    pos, kept, v, r = reachable(sel, values, ranks_of(values))
    assert torch.equal(pos, torch.tensor([0, 2, 3])) and torch.equal(kept, torch.tensor([7, 9, 4]))
    assert torch.equal(v, values[[0, 2, 3]])
    assert torch.equal(r, torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64))
    fine = values.nan_to_num(0.0)
    pos, kept, _, _ = reachable(sel, fine, ranks_of(fine))
    assert torch.equal(pos, torch.arange(4)) and kept is sel


def test_anchored_contrastive_terms_put_unit_labelled_rows_and_weighted_pseudo_values_in_one_loss():
    pred_u, emb_u, _ = data(n=6, d=4, seed=5)
    _, feat_l, y_l = data(n=5, d=4, seed=6)
    emb_u = F.normalize(emb_u, dim=-1)
    values = torch.linspace(-1, 1, 6, dtype=torch.float64)
    ranks = ranks_of(values)
    loss, consistency = RnCLoss(), PseudoRankPredictionLoss()
    got = anchored_contrastive_terms(pred_u, emb_u, values, ranks, feat_l * 50, y_l, loss=loss,
                                     consistency_loss=consistency, rank_weight=0.5, consistency_weight=0.25,
                                     pseudo_weight=0.3)
    feats = torch.cat([feat_l / feat_l.norm(dim=-1, keepdim=True), emb_u])
    weights = torch.cat([torch.ones(5, dtype=torch.float64), torch.full((6,), 0.3, dtype=torch.float64)])
    ref = 0.5 * loss(feats, torch.cat([y_l, values]), weights=weights)
    assert torch.allclose(got["unlabeled_rank"], ref, rtol=1e-10, atol=1e-12)
    assert torch.allclose(got["unlabeled_consistency"], 0.25 * consistency(pred_u, ranks), rtol=1e-12,
                          atol=1e-15)


def test_joint_inputs_stack_the_views_and_add_unlabelled_rows_only_when_their_term_is_on():
    from clss.methods import Batch
    from clss.methods.parts.recipes import joint_inputs

    lab = Batch({"a": torch.zeros(3, 2), "b": torch.ones(3, 2)}, torch.arange(3), torch.zeros(3))
    ulb = Batch({"a": torch.full((4, 2), 2.0), "b": torch.full((4, 2), 3.0)}, torch.arange(3, 7))
    x, with_u = joint_inputs(lab, ulb, ("a", "b"), 0.5)
    assert with_u and x[:, 0].tolist() == [0.0] * 3 + [1.0] * 3 + [2.0] * 4 + [3.0] * 4
    for unlabeled, weight in ((ulb, 0.0), (None, 1.0), (ulb.take(torch.arange(1)), 1.0)):
        x, with_u = joint_inputs(lab, unlabeled, ("a",), weight)
        assert not with_u and torch.equal(x, lab.view("a"))
