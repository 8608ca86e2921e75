import pytest
import torch

from clss.losses import RnCLoss, SupConLoss
from clss.losses._common import prepare_batch, reduce_anchors
from clss.losses.pairwise import feature_similarity, label_distance, off_diagonal

F64 = torch.float64


def test_view_flattening_is_view_major_with_repeated_targets():
    z = torch.arange(3 * 2 * 1, dtype=F64).view(3, 2, 1)  # sample b, view v → 2b + v
    y = torch.tensor([10.0, 20.0, 30.0])
    w = torch.tensor([1.0, 2.0, 3.0])
    b = prepare_batch("X", z, y, weights=w)
    assert b.features[:, 0].tolist() == [0, 2, 4, 1, 3, 5]
    assert b.targets[:, 0].tolist() == [10, 20, 30, 10, 20, 30]
    assert b.weights.tolist() == [1, 2, 3, 1, 2, 3]
    assert b.sample.tolist() == [0, 1, 2, 0, 1, 2]
    assert b.view.tolist() == [0, 0, 0, 1, 1, 1]
    assert b.n_views == 2


def test_mask_drops_rows_and_ignores_their_nan_targets():
    z = torch.randn(4, 2, 3)
    y = torch.tensor([1.0, float("nan"), 3.0, 4.0])
    b = prepare_batch("X", z, y, mask=torch.tensor([True, False, True, True]))
    assert b.n == 6
    assert b.sample.tolist() == [0, 2, 3, 0, 2, 3]
    assert b.rows.tolist() == [0, 2, 3, 4, 6, 7]


def test_half_precision_is_upcast_and_integer_targets_cast():
    b = prepare_batch("X", torch.randn(4, 3, dtype=torch.float16), torch.arange(4))
    assert b.features.dtype == torch.float32
    assert b.targets.dtype == torch.float32 and b.targets.shape == (4, 1)


@pytest.mark.parametrize(
    ("features", "targets", "kwargs", "match"),
    [
        (torch.randn(4), torch.randn(4), {}, r"\[N, d\] or \[N, V, d\]"),
        (torch.randn(4, 2, 3, 1), torch.randn(4), {}, r"\[N, d\] or \[N, V, d\]"),
        (torch.randn(4, 3), torch.randn(5), {}, "batch size mismatch"),
        (torch.randn(4, 3), torch.randn(4, 2, 1), {}, r"\[N\] or \[N, m\]"),
        (torch.randn(4, 3), torch.tensor([1.0, float("nan"), 2.0, 3.0]), {}, "NaN or inf"),
        (torch.randn(4, 3), torch.tensor([1.0, float("inf"), 2.0, 3.0]), {}, "NaN or inf"),
        (torch.randint(0, 3, (4, 3)), torch.randn(4), {}, "floating point"),
        (torch.randn(1, 3), torch.randn(1), {}, "at least 2 samples"),
        (torch.randn(4, 3), torch.randn(4), {"weights": torch.ones(3)}, "weights must have"),
        (torch.randn(4, 3), torch.randn(4), {"weights": -torch.ones(4)}, "non-negative"),
        (torch.randn(4, 3), torch.randn(4), {"mask": torch.ones(4)}, "bool"),
        (
            torch.randn(4, 3),
            torch.randn(4),
            {"mask": torch.zeros(4, dtype=torch.bool)},
            "at least 2 samples",
        ),
    ],
)
def test_bad_input_raises_value_error(features, targets, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RnCLoss()(features, targets, **kwargs)


def test_bad_hyperparameters_raise():
    with pytest.raises(ValueError, match="temperature"):
        RnCLoss(temperature=0)
    with pytest.raises(ValueError, match="label_diff"):
        RnCLoss(label_diff="cos")
    with pytest.raises(ValueError, match="reduction"):
        SupConLoss(reduction="avg")
    with pytest.raises(TypeError):
        RnCLoss()([[1.0]], torch.zeros(1))


def test_reductions():
    values = torch.tensor([1.0, 2.0, 3.0])
    w = torch.tensor([0.0, 1.0, 3.0])
    assert reduce_anchors(values, None, "mean").item() == 2.0
    assert reduce_anchors(values, w, "mean").item() == pytest.approx(11 / 4)
    assert reduce_anchors(values, w, "sum").item() == 11.0
    assert reduce_anchors(values, w, "none").tolist() == [0.0, 2.0, 9.0]
    assert reduce_anchors(values, torch.zeros(3), "mean").item() == 0.0
    valid = torch.tensor([True, False, True])
    bad = torch.tensor([1.0, float("nan"), 3.0])
    assert reduce_anchors(bad, None, "mean", valid=valid).item() == 2.0


def test_label_distance_l1_l2_and_exact_zero_for_ties():
    y = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]], dtype=F64)
    assert label_distance(y, "l1").tolist() == [[0, 7, 0], [7, 0, 7], [0, 7, 0]]
    assert label_distance(y, "l2").tolist() == [[0, 5, 0], [5, 0, 5], [0, 5, 0]]
    assert torch.equal(label_distance(y[:, 0]), label_distance(y[:, :1]))
    with pytest.raises(ValueError, match="metric"):
        label_distance(y, "linf")


def test_feature_similarities_and_zero_distance_gradient():
    z = torch.randn(5, 3, dtype=F64)
    z = torch.cat([z, z[:1]]).requires_grad_()  # a duplicate row
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    assert torch.allclose(feature_similarity(z, "neg_sq_l2"), -d)
    assert torch.allclose(feature_similarity(z, "neg_l2"), -d.sqrt())
    zn = z / z.norm(dim=1, keepdim=True)
    assert torch.allclose(feature_similarity(z, "cosine"), zn @ zn.T)
    assert torch.allclose(feature_similarity(z, "dot"), z @ z.T)
    assert feature_similarity(z, "neg_l2")[0, 5].item() == 0.0
    feature_similarity(z, "neg_l2").sum().backward()
    assert torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="kind"):
        feature_similarity(z, "manhattan")


def test_off_diagonal():
    m = torch.arange(16).view(4, 4)
    expected = torch.stack([torch.cat([m[i, :i], m[i, i + 1 :]]) for i in range(4)])
    assert torch.equal(off_diagonal(m), expected)


def test_half_precision_features_and_gather_without_process_group():
    z = torch.randn(6, 2, 8)
    y = torch.randn(6)
    half = RnCLoss()(z.half(), y)
    assert half.dtype == torch.float32 and torch.isfinite(half)
    assert torch.allclose(half, RnCLoss()(z.half().float(), y))
    assert torch.equal(RnCLoss()(z, y, gather=True), RnCLoss()(z, y))
