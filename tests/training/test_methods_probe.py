"""The representation-then-probe recipes (rnc, supremix, supcon): stages, hand-off, schedules, selection,
resume, pseudo-targets and bad input."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from clss import losses
from clss.config import resolve_config
from clss.engine import train
from clss.methods import Batch, TrainingContext, build_method
from clss.methods.parts import anchored_targets
from clss.methods.probe import stage_lengths
from clss_cli.main import main

RECIPES = ("rnc", "supremix", "supcon")


class Net(nn.Module):
    """A trunk with batch norm and dropout (buffers and randomness a frozen encoder must keep) and a head."""

    def __init__(self, d=6, width=16):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d, width), nn.BatchNorm1d(width), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(width, 1)

    def forward(self, x):
        feat = self.trunk(x)
        return {"pred": self.head(feat).squeeze(-1), "feat": feat}


def batch(rows, seed, d=6, views=("strong", "strong@2", "weak")):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64)
    y = x[:, 0] + 0.5 * x[:, 1]
    return Batch({v: x + 0.05 * torch.randn(x.shape, generator=g, dtype=x.dtype) for v in views},
                 torch.arange(rows), y)


def recipe(name, total=8, **params):
    torch.manual_seed(0)
    method = build_method(name, lambda: Net().double(), params=params)
    y = batch(40, 99).y
    method.setup(TrainingContext(total_steps=total, train_size=60, labeled_y=y,
                                 unlabeled_index=torch.arange(40, 60)))
    method.configure_optimizers()
    return method


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize(("total", "s1", "s2", "expect"), [
    (10, None, None, (5, 5)), (11, None, None, (5, 6)), (10, 7, None, (7, 3)), (10, None, 4, (6, 4)),
    (10, 3, 7, (3, 7)), (2, None, None, (1, 1)), (23846, 0.8, None, (19077, 4769)), (10, 0.25, 0.75, (2, 8)),
    (10, 0.3, 7, (3, 7)),
])
def test_stage_lengths(total, s1, s2, expect):
    assert stage_lengths(total, s1, s2, "rnc") == expect


@pytest.mark.parametrize(("total", "s1", "s2"), [(10, 3, 3), (10, 10, None), (10, None, 10), (1, None, None),
                                                 (10, 0.01, None), (10, 0.5, 0.3)])
def test_stage_lengths_refused(total, s1, s2):
    with pytest.raises(ValueError, match="rnc"):
        stage_lengths(total, s1, s2, "rnc")


@pytest.mark.parametrize("name", RECIPES)
def test_stage_two_never_updates_the_encoder_and_stage_one_never_the_head(name):
    method = recipe(name, total=8, stage1_steps=4)
    head0 = snapshot(method.model.head)
    for step in range(4):
        logs = method.training_step(batch(16, step), None, step)
        assert np.isfinite(logs[name])
    assert all(torch.equal(v, head0[k]) for k, v in snapshot(method.model.head).items())
    encoder = {k: v for k, v in snapshot(method.model).items() if not k.startswith("head.")}
    projector = snapshot(method.projector)
    assert encoder["trunk.1.num_batches_tracked"] == 4  # stage 1 trained the batch norm
    for step in range(4, 8):
        logs = method.training_step(batch(16, step), None, step)
        assert set(logs) >= {"loss", "probe"} and np.isfinite(logs["probe"])
    after = snapshot(method.model)
    # bit for bit: parameters and batch-norm buffers of the encoder, and the projection head
    assert all(torch.equal(after[k], v) for k, v in encoder.items())
    assert all(torch.equal(v, projector[k]) for k, v in snapshot(method.projector).items())
    assert not torch.equal(after["head.weight"], head0["weight"])


def test_probe_fits_the_head_on_frozen_eval_features():
    # stage 2's loss is the probe loss of head(feature of the model in evaluation mode), nothing else
    method = recipe("rnc", total=4, stage1_steps=2)
    lab = batch(16, 5)
    with torch.no_grad():
        method.model.eval()
        expected = (method.model.head(method.model.trunk(lab.view("weak"))).squeeze(-1) - lab.y).abs().mean()
    logs = method.training_step(lab, None, 2)
    assert logs["probe"] == pytest.approx(float(expected), rel=1e-12)
    assert not method.model.training  # the frozen encoder stays in evaluation mode


def test_stage_one_loss_is_the_recipe_loss_on_both_views():
    method, ref = recipe("rnc", total=4), recipe("rnc", total=4)
    lab = batch(16, 3)
    torch.manual_seed(7)  # the same dropout draws in both
    logs = method.training_step(lab, None, 0)
    torch.manual_seed(7)
    ref.model.train()
    feat = ref.model(torch.cat([lab.view("strong"), lab.view("strong@2")]))["feat"]
    z = torch.stack([feat[:16], feat[16:]], dim=1)
    assert logs["rnc"] == pytest.approx(float(losses.RnCLoss(temperature=2.0)(z, lab.y).detach()), rel=1e-10)


def test_supcon_bins_are_equal_width_over_the_labelled_range():
    method = recipe("supcon", bins=5)
    y = batch(40, 99).y.numpy()
    lo, hi = y.min(), y.max()
    probe = torch.tensor([lo - 1, lo, lo + 1e-9, (lo + hi) / 2, hi - 1e-9, hi, hi + 3], dtype=torch.float64)
    width = (hi - lo) / 5
    expected = [min(max(int(np.ceil((v - lo) / width)) - 1, 0), 4) for v in probe.numpy()]
    assert method.classes(probe).tolist() == expected


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize("pseudo", ["anchored", "ranks"])
def test_semi_supervised_forms_add_a_weighted_unlabelled_term(name, pseudo):
    method = recipe(name, total=6, unlabeled_weight=0.5, pseudo_targets=pseudo, diagnostics_every=1)
    ulb = batch(12, 50, views=("strong", "strong@2"))
    logs = method.training_step(batch(16, 1), ulb, 0)
    assert np.isfinite(logs[f"unlabeled_{name}"]) and logs[f"unlabeled_{name}"] != 0
    assert 0 <= logs["pseudo_target_tau"] <= 1
    assert logs["loss"] == pytest.approx(logs[name] + logs[f"unlabeled_{name}"], rel=1e-9)


def test_anchored_form_is_the_joint_weighted_loss_on_pseudo_values():
    method = recipe("rnc", total=6, unlabeled_weight=0.5, pseudo_weight=0.25)
    lab, ulb = batch(10, 1), batch(8, 2, views=("strong", "strong@2"))
    torch.manual_seed(3)
    logs = method.training_step(lab, ulb, 0)
    ref = recipe("rnc", total=6)
    ref.model.train()
    torch.manual_seed(3)
    x = torch.cat([lab.view("strong"), lab.view("strong@2"), ulb.view("strong"), ulb.view("strong@2")])
    feat = ref.model(x)["feat"]
    f = nn.functional.normalize(feat.detach(), dim=-1)
    values, _ = anchored_targets((f[20:28] + f[28:]) / 2, (f[:10] + f[10:20]) / 2, lab.y, negative="clip")
    z = torch.cat([torch.stack([feat[:10], feat[10:20]], 1), torch.stack([feat[20:28], feat[28:]], 1)])
    w = torch.cat([torch.ones(10, dtype=torch.float64), torch.full((8,), 0.25, dtype=torch.float64)])
    joint = losses.RnCLoss(temperature=2.0)(z, torch.cat([lab.y, values]), weights=w)
    assert logs["unlabeled_rnc"] == pytest.approx(0.5 * float(joint), rel=1e-9)


def test_unlabelled_rows_are_not_forwarded_at_weight_zero():
    method = recipe("rnc", total=6)
    seen = []
    method.model.trunk.register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    method.training_step(batch(10, 1), batch(8, 2, views=("strong", "strong@2")), 0)
    assert seen == [20]


def test_a_model_without_a_linear_head_is_refused():
    class Headless(nn.Module):
        def forward(self, x):
            return {"pred": x[:, 0], "feat": x}

    with pytest.raises(ValueError, match="rnc needs the model's linear regression head"):
        build_method("rnc", Headless)


def tiny(tmp_path, name, **overrides):
    values = {"dataset": "diabetes", "method": name, "steps": 20, "eval_every": 2, "progress": False,
              "threads": 1, "batch_size": 12, "unlabeled_batch_size": 12, **overrides}
    return resolve_config({}, values)


def read_log(run):
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_engine_schedules_each_stage_afresh_and_selects_in_stage_two(tmp_path):
    cfg = tiny(tmp_path, "rnc", schedule={"name": "cosine"}, optimizer={"name": "sgd", "lr": 0.01},
               method_params={"stage1_steps": 12, "probe_lr": 0.2})
    result = train(cfg, tmp_path / "run")
    log = read_log(result.run_dir)
    lr = [r["lr"] for r in log]
    # the logged rate is the one for the next step of the stage that just stepped
    expect = [0.01 * 0.5 * (1 + np.cos(np.pi * k / 12)) for k in range(1, 13)]
    expect += [0.2 * 0.5 * (1 + np.cos(np.pi * k / 8)) for k in range(1, 9)]
    np.testing.assert_allclose(lr, expect, rtol=1e-9, atol=1e-15)
    assert [r["step"] for r in log if "val_mae" in r] == [14, 16, 18, 20]
    assert all("rnc" in r for r in log[:12]) and all("probe" in r for r in log[12:])
    assert torch.load(result.run_dir / "best.pt", weights_only=True)["step"] > 12
    assert result.summary["status"] == "finished"


@pytest.mark.parametrize("cut", [7, 15])
def test_resume_inside_either_stage_reaches_the_same_result(tmp_path, cut):
    cfg = tiny(tmp_path, "supcon", method_params={"stage1_steps": 10, "unlabeled_weight": 0.5})
    full = train(cfg, tmp_path / "full").summary

    def interrupt(step, logs):
        if step == cut:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path / "cut", callback=interrupt)
    resumed = train({}, tmp_path / "cut", resume=True).summary
    for split in ("val", "test"):
        for key in ("mae", "rmse", "r2"):
            assert resumed[split][key] == pytest.approx(full[split][key], rel=1e-6, abs=1e-9)
    for got, want in zip(read_log(tmp_path / "cut"), read_log(tmp_path / "full"), strict=True):
        assert got.keys() == want.keys()
        assert [got[k] for k in want] == pytest.approx([want[k] for k in want], rel=1e-6, abs=1e-9)


def test_dataset_preset_method_settings_apply_only_to_methods_that_have_them():
    rnc = resolve_config({}, {"dataset": "operator-sde", "method": "rnc"})
    assert "contrastive_weight" not in rnc.method_params
    sup = resolve_config({}, {"dataset": "operator-sde", "method": "supervised"})
    assert sup.method_params["contrastive_weight"] == 1e-3


def test_cli_trains_a_recipe_and_refuses_stages_that_do_not_add_up(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["train", "--dataset", "diabetes", "--method", "supremix", "--labeled", "20%",
                              "--steps", "12", "--set", "threads=1", "--out", str(tmp_path / "a"),
                              "--no-progress"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(main, ["train", "--dataset", "diabetes", "--method", "rnc", "--steps", "20",
                               "--set", "method_params.stage1_steps=5", "--set",
                               "method_params.stage2_steps=5", "--out", str(tmp_path / "b")])
    assert bad.exit_code != 0
    assert "stage1_steps (5) + stage2_steps (5) must add up to the run's steps (20)" in bad.output
    assert "Traceback" not in bad.output and not (tmp_path / "b").exists()


@pytest.mark.parametrize("name", ["rnc", "conord"])
def test_supervised_recipes_train_on_a_fully_labelled_set_and_the_pseudo_target_form_needs_unlabelled_rows(
        tmp_path, name):
    result = train(tiny(tmp_path, name, labeled="100%", steps=6, eval_every=3), tmp_path / "all")
    assert result.summary["unlabeled"] == 0 and np.isfinite(result.summary["test"]["mae"])
    with pytest.raises(ValueError, match="leaves no unlabeled rows"):
        train(tiny(tmp_path, name, labeled="100%", method_params={"unlabeled_weight": 1.0}), tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_a_resumed_staged_run_keeps_its_length(tmp_path):
    cfg = tiny(tmp_path, "rnc", steps=6, eval_every=3)
    train(cfg, tmp_path / "run")
    with pytest.raises(ValueError, match="steps cannot change on resume for rnc: its stages are set"):
        train({}, tmp_path / "run", resume=True, overrides={"steps": 12})
