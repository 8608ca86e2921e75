"""The training step's guard: a NaN/inf loss input or gradient raises before the optimiser step, names its
source, and leaves the weights unchanged; the loss-side gradient flag it reads."""

import json

import pytest
import torch
from torch import nn

from clss.config import resolve_config
from clss.engine import TrainingDiverged, train
from clss.losses import NonFiniteError, NonFiniteLossError, RankSimLoss, RnCLoss
from clss.losses._common import GRADIENT_SUM, WATCH, watch_losses
from clss.methods import Batch, Supervised
from clss.models import MLPRegressor


class Wrapped(nn.Module):
    """An MLP regressor whose features go through ``transform`` (a fault injected into the model)."""

    def __init__(self, transform):
        super().__init__()
        self.net = MLPRegressor(6, (16, 16), dropout=0.0, init="default")
        self.transform = transform

    def forward(self, x):
        pred, feat = self.net(x)
        return pred, self.transform(feat)


def labelled(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return Batch(x, torch.arange(n), x[:, 0] + 0.5 * x[:, 1])


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
                       r".*labeled_contrastive \(RnCLoss\).*weights are unchanged") as info:
        method.training_step(labelled(), None, 0)
    assert not isinstance(info.value, ValueError)
    assert "contrastive=" in str(info.value) and "regression=" in str(info.value)
    assert unchanged(method, before)
    assert all(p.grad is None for p in method.parameters())  # nothing left for a later step to apply


def test_a_nan_gradient_from_the_model_itself_is_refused_without_blaming_a_loss():
    def norm_column(feat):  # sqrt(Σ h²) at h = 0: finite value, NaN gradient
        dead = feat * torch.tensor([0.0] + [1.0] * (feat.shape[0] - 1))[:, None]
        return torch.cat([feat, dead.pow(2).sum(1, keepdim=True).sqrt()], 1)

    torch.manual_seed(0)
    method = Supervised(lambda: Wrapped(norm_column), params={"contrastive": "oe"})
    before = snapshot(method)
    with pytest.raises(NonFiniteLossError, match=r"no loss of clss\.losses sent back a non-finite gradient"):
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
            pred, feat = forward(x)
            return pred, feat * float("inf")

        model.forward = bad_forward
        return model

    monkeypatch.setattr(trainer, "build_model", poisoned)
    cfg = resolve_config({}, {"dataset": "diabetes", "steps": 5, "eval_every": 1, "progress": False,
                              "threads": 1, "batch_size": 12, "method": "supervised",
                              "method_params": {"contrastive": "rnc"}})
    with pytest.raises(TrainingDiverged, match=r"RnCLoss: features contain NaN or inf .*\(step 0\)"):
        train(cfg, tmp_path / "run")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_a_method_watches_the_losses_it_holds():
    method = Supervised(lambda: Wrapped(lambda f: f), params={"contrastive": "rnc"})
    assert method.labeled_contrastive.__dict__.get(WATCH) is True
    assert WATCH not in method.model.__dict__


def test_the_flag_sees_only_its_own_loss_gradient():
    torch.manual_seed(0)
    z = torch.randn(6, 4, requires_grad=True)
    y = torch.arange(6.0)
    rnc, ranksim = RnCLoss(), RankSimLoss()
    rnc(z, y)
    assert GRADIENT_SUM not in rnc.__dict__  # standalone losses record nothing (and cost nothing)
    watch_losses(rnc), watch_losses(ranksim)
    total = rnc(z, y) + ranksim(z, y)
    assert getattr(rnc, GRADIENT_SUM) is None  # nothing recorded before the backward
    # a NaN upstream gradient reaches the third call (RnC) only
    (rnc(z, y) * torch.tensor(float("inf")).detach() * 0 + total).backward()
    assert not torch.isfinite(getattr(rnc, GRADIENT_SUM)) and torch.isfinite(getattr(ranksim, GRADIENT_SUM))
    with torch.no_grad():
        rnc(z, y)
    assert getattr(rnc, GRADIENT_SUM) is None
