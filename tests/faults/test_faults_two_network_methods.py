"""Fault suite of the two-network methods (cps, ucvme): bad hyper-parameters are refused by name at every
entry point (build_method, the configuration, the CLI) in one line, and bad batches before any step."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from clss.config import resolve_config
from clss.methods import Batch, build_method
from clss.models import MLPRegressor
from clss_cli.main import main


def model_fn():
    return MLPRegressor(4, (8,), dropout=0.0)


P = r"method_params\."
PARAMS = [
    pytest.param("cps", {"unlabeled_weight": -1},
                 rf"cps: {P}unlabeled_weight must be a float >= 0 or 'auto', got -1",
                 id="cps-negative-weight"),
    pytest.param("cps", {"unlabeled_weight": "abc"},
                 rf"{P}unlabeled_weight must be a float >= 0 or 'auto', got 'abc'",
                 id="cps-text-weight"),
    pytest.param("cps", {"unlabeled_weight": float("nan")},
                 r"unlabeled_weight must be a float >= 0 or 'auto', got nan",
                 id="cps-nan-weight"),
    pytest.param("cps", {"contrastive": "triplet"}, rf"{P}contrastive must be one of", id="cps-loss"),
    pytest.param("cps", {"contrastive_weight": -0.5}, rf"{P}contrastive_weight must be a float >= 0",
                 id="cps-negative-contrastive"),
    pytest.param("ucvme", {"unlabeled_weight": -0.1}, rf"ucvme: {P}unlabeled_weight must be a float >= 0",
                 id="ucvme-negative-weight"),
    pytest.param("ucvme", {"dropout": 1.0}, rf"{P}dropout must be a float in \[0, 1\), got 1\.0",
                 id="dropout-one"),
    pytest.param("ucvme", {"dropout": -0.1}, rf"{P}dropout must be a float in \[0, 1\)",
                 id="dropout-negative"),
    pytest.param("ucvme", {"pseudo_samples": 0}, rf"{P}pseudo_samples must be an integer >= 1, got 0",
                 id="pseudo-samples-zero"),
    pytest.param("ucvme", {"pseudo_samples": True}, r"pseudo_samples must be an integer >= 1, got True",
                 id="pseudo-samples-bool"),
    pytest.param("ucvme", {"predict_samples": 2.5}, r"predict_samples must be an integer >= 1, got 2\.5",
                 id="predict-samples-fraction"),
    pytest.param("ucvme", {"log_var_limit": 0}, rf"{P}log_var_limit must be a float > 0, got 0",
                 id="log-var-limit-zero"),
    pytest.param("ucvme", {"log_var_limit": float("inf")}, r"log_var_limit must be a float > 0",
                 id="log-var-limit-inf"),
    pytest.param("ucvme", {"regression_loss": "l1"}, rf"{P}regression_loss must be one of 'mse', got 'l1'",
                 id="ucvme-l1"),
    pytest.param("ucvme", {"unlabelled_weight": 1},
                 rf"unknown key '{P}unlabelled_weight'; did you mean 'unlabeled_weight'", id="typo"),
]


@pytest.mark.parametrize(("method", "params", "message"), PARAMS)
def test_build_method(method, params, message):
    with pytest.raises(ValueError, match=message):
        build_method(method, model_fn, params=params)


@pytest.mark.parametrize(("method", "params", "message"), PARAMS)
def test_train_config(method, params, message):
    with pytest.raises(ValueError, match=message):
        resolve_config({}, {"dataset": "diabetes", "method": method, "method_params": params})


@pytest.mark.parametrize(("method", "setting", "message"), [
    pytest.param("cps", "method_params.unlabeled_weight=-1",
                 "method_params.unlabeled_weight must be a float >= 0", id="cps-weight"),
    pytest.param("ucvme", "method_params.dropout=1.5", "method_params.dropout must be a float in [0, 1)",
                 id="ucvme-dropout"),
    pytest.param("ucvme", "method_params.pseudo_samples=0",
                 "method_params.pseudo_samples must be an integer >= 1", id="ucvme-samples"),
])
def test_cli_train(tmp_path, method, setting, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--method", method, "--steps", "2",
                                       "--no-progress", "--out", str(out), "--set", setting])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def _batches():
    x = torch.randn(6, 4)
    return Batch({"weak": x, "weak@2": x}, torch.arange(6), x[:, 0]), Batch({"weak": x, "weak@2": x},
                                                                            torch.arange(6, 12), None)


@pytest.mark.parametrize(("method", "case", "message"), [
    pytest.param(m, "no-unlabelled", "needs an unlabelled batch when unlabeled_weight > 0",
                 id=f"{m}-no-unlabelled") for m in ("cps", "ucvme")
] + [
    pytest.param(m, "no-targets", "the labelled batch has no targets", id=f"{m}-no-targets")
    for m in ("cps", "ucvme")
] + [  # cps's second network reads the second draw; ucvme's networks share the "weak" view
    pytest.param("cps", "no-second-view", r"the batch has no view 'weak@2'", id="cps-no-second-view"),
])
def test_training_step_bad_batches(method, case, message):
    lab, ulb = _batches()
    m = build_method(method, model_fn)
    args = {"no-unlabelled": (lab, None), "no-targets": (Batch(lab.views, lab.index, None), ulb),
            "no-second-view": (Batch({"weak": lab.views["weak"]}, lab.index, lab.y), ulb)}[case]
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.raises(ValueError, match=message):
        m.training_step(*args, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_ucvme_needs_the_model_feature_dim():
    class Bare(torch.nn.Module):  # a network of the output contract without the feature_dim attribute
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3)

        def forward(self, x):
            feat = self.lin(x)
            return {"pred": feat.sum(-1), "feat": feat}

    with pytest.raises(TypeError, match=r"ucvme builds its mean and log-variance heads from the model's "
                                        r"feature_dim, but Bare has none \(got None\)"):
        build_method("ucvme", Bare)
