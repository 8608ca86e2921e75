"""The process-wide switch of the losses' NaN/inf checks (clss.losses.set_finite_checks / finite_checks)."""

import math

import pytest
import torch

from clss.losses import (
    NonFiniteError,
    RankSimLoss,
    RnCLoss,
    SupConLoss,
    finite_checks,
    set_finite_checks,
)
from clss.methods import NonFiniteLossError


def _batch(bad: float | None = None):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(16, 8, generator=g)
    if bad is not None:
        z[3, 2] = bad
    return z.requires_grad_(), torch.randn(16, generator=g)


@pytest.mark.parametrize("loss", [RnCLoss(), SupConLoss(), RankSimLoss()], ids=lambda m: type(m).__name__)
def test_off_the_losses_let_nan_through_and_on_again_they_refuse_it(loss) -> None:
    z, y = _batch(math.nan)
    with pytest.raises(NonFiniteError, match="features contain NaN or inf"):
        loss(z, y)
    with finite_checks(False):
        value = loss(z, y)
        value.backward()
    assert not (torch.isfinite(value) and torch.isfinite(z.grad).all())  # the NaN reaches value or gradient
    with pytest.raises(NonFiniteError):  # restored after the block
        loss(z, y)


def test_values_are_identical_with_and_without_the_checks() -> None:
    z, y = _batch()
    for loss in (RnCLoss(), SupConLoss(), RankSimLoss(), RnCLoss(feature_sim="cosine", temperature=0.1)):
        on = loss(z, y)
        with finite_checks(False):
            off = loss(z, y)
        torch.testing.assert_close(on, off, rtol=1e-6, atol=1e-7 * max(1.0, abs(float(on.detach()))))


def test_set_finite_checks_returns_the_previous_setting_and_checks_its_argument() -> None:
    assert set_finite_checks(False) is True
    try:
        assert set_finite_checks(False) is False
    finally:
        assert set_finite_checks(True) is False
    with pytest.raises(TypeError, match="enabled must be True or False"):
        set_finite_checks(0)


def test_the_training_guard_still_stops_a_step_when_the_checks_are_off() -> None:
    from clss.data import InputSpec
    from clss.methods import OptimizerConfig, build_method
    from clss.methods.base import Batch
    from clss.models import build_model

    torch.manual_seed(0)
    spec = InputSpec("tabular", (4,))
    method = build_method("clss", lambda: build_model("mlp", spec, hidden=[8]), OptimizerConfig(),
                          {"contrastive_weight": 1.0})
    before = [p.detach().clone() for p in method.parameters()]
    x = torch.randn(12, 4)
    x[0, 0] = math.inf
    lab = Batch({"weak": x}, torch.arange(12), torch.randn(12))
    ulb = Batch({"weak": torch.randn(12, 4)}, torch.arange(12, 24), None)
    with finite_checks(False), pytest.raises(NonFiniteLossError):
        method.training_step(lab, ulb, 0)
    assert all(torch.equal(a, b.detach()) for a, b in zip(before, method.parameters(), strict=True))
