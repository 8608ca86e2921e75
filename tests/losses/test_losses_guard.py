"""The training step's guard: a NaN/inf loss input or gradient raises before the optimiser step, names the
loss term it comes from, and leaves the weights unchanged."""

import json

import pytest
import torch
from torch import nn

from clss.config import resolve_config
from clss.engine import TrainingDiverged, train
from clss.losses import NonFiniteError, NonFiniteLossError
from clss.methods import Batch, Supervised
from clss.models import MLPRegressor


class Wrapped(nn.Module):
    """An MLP regressor whose features go through ``transform`` (a fault injected into the model)."""

    def __init__(self, transform, pred_transform=None):
        super().__init__()
        self.net = MLPRegressor(6, (16, 16), dropout=0.0, init="default")
        self.transform, self.pred_transform = transform, pred_transform or (lambda p, f: p)

    def forward(self, x):
        out = self.net(x)
        return {"pred": self.pred_transform(out["pred"], out["feat"]), "feat": self.transform(out["feat"])}


def sqrt_at_zero(feat):
    """``sqrt(Σ h²)`` of a zeroed copy of the first row: a finite value (0) with a NaN gradient."""
    dead = feat * torch.tensor([0.0] + [1.0] * (feat.shape[0] - 1))[:, None]
    return dead.pow(2).sum(1).sqrt()


def labelled(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return Batch({"weak": x}, torch.arange(n), x[:, 0] + 0.5 * x[:, 1])


def snapshot(method):
    return [p.detach().clone() for p in method.parameters()]


def unchanged(method, before):
    return all(torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))


def test_inf_features_stop_the_step_in_the_forward_and_keep_the_weights():
    def blow_up(feat):
        return feat.index_fill(0, torch.tensor([3]), float("inf"))

    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(blow_up), params={"contrastive": "rnc"})
    before = snapshot(method)
    with pytest.raises(NonFiniteError, match=r"RnCLoss: features contain NaN or inf \(16 of 192 entries\)"):
        method.training_step(labelled(), None, 0)
    assert unchanged(method, before)


def test_a_loss_sending_back_an_infinite_gradient_is_named_and_the_step_skipped():
    # float16 features: RnC's float32 gradient times a large term weight overflows when cast back.
    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(lambda f: f.half()),
                        params={"contrastive": "rnc", "contrastive_weight": 1e7})
    before = snapshot(method)
    with pytest.raises(NonFiniteLossError, match=r"gradient is NaN or infinite .* although the loss is finite"
                       r".*it comes from the term\(s\) contrastive\. .*weights are unchanged") as info:
        method.training_step(labelled(), None, 0)
    assert not isinstance(info.value, ValueError)
    assert "contrastive=" in str(info.value) and "regression=" in str(info.value)
    assert unchanged(method, before)
    assert all(p.grad is None for p in method.parameters())  # nothing left for a later step to apply


def test_a_nan_gradient_inside_the_model_is_traced_to_the_term_that_uses_it():
    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(lambda f: torch.cat([f, sqrt_at_zero(f)[:, None]], 1)),
                        params={"contrastive": "oe"})
    before = snapshot(method)
    with pytest.raises(NonFiniteLossError, match=r"it comes from the term\(s\) contrastive\. "):
        method.training_step(labelled(), None, 0)
    assert unchanged(method, before)


def test_a_term_outside_the_losses_is_named_too():
    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(lambda f: f, lambda p, f: p + sqrt_at_zero(f)),
                        params={"contrastive": "oe"})
    before = snapshot(method)
    with pytest.raises(NonFiniteLossError, match=r"it comes from the term\(s\) regression\. "):
        method.training_step(labelled(), None, 0)
    assert unchanged(method, before)


def test_a_clean_step_passes_the_guard_and_moves_the_weights():
    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(lambda f: f), params={"contrastive": "rnc"})
    before = snapshot(method)
    logs = method.training_step(labelled(), None, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    assert not unchanged(method, before)


def test_training_run_with_inf_features_stops_as_diverged_naming_the_loss_and_the_step(tmp_path, monkeypatch):
    import clss.engine.trainer as trainer

    real = trainer.build_model

    def poisoned(*args, **kwargs):
        model = real(*args, **kwargs)
        forward = model.forward

        def bad_forward(x):
            out = forward(x)
            return {"pred": out["pred"], "feat": out["feat"] * float("inf")}

        model.forward = bad_forward
        return model

    monkeypatch.setattr(trainer, "build_model", poisoned)
    cfg = resolve_config({}, {"dataset": "diabetes", "steps": 5, "eval_every": 1, "progress": False,
                              "threads": 1, "batch_size": 12, "method": "supervised",
                              "method_params": {"contrastive": "rnc"}})
    with pytest.raises(TrainingDiverged, match=r"RnCLoss: features contain NaN or inf .*\(step 0\)"):
        train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"
