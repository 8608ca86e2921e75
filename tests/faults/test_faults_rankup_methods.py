"""Fault suite of RankUp, RDA and RankUp + RDA: bad parameters, calls out of order and bad inputs to their
parts are refused early in one line naming the problem (build_method, the parts, training_step, the CLI)."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from clss.methods import Batch, TrainingContext, build_method
from clss.methods.parts import DistributionAlignment, pair_logits, pair_targets, quantile_map
from clss.models import MLPRegressor
from clss_cli.main import main

ALL = ("rankup", "rda", "rankup_rda")
ARC = ("rankup", "rankup_rda")
ALIGNED = ("rda", "rankup_rda")


def model_fn():
    return MLPRegressor(4, (8,), dropout=0.0)


PARAM_CASES = [
    *[pytest.param(m, {"p_cutoff": v}, rf"{m}: method_params\.p_cutoff must be a float in \(0, 1\], got {v}",
                   id=f"{m}-p_cutoff-{v}") for m in ARC for v in (0, 1.5, -0.1)],
    *[pytest.param(m, {k: -0.5}, rf"{m}: method_params\.{k} must be a float >= 0, got -0.5", id=f"{m}-{k}")
      for m in ARC for k in ("arc_loss_ratio", "arc_ulb_loss_ratio")],
    *[pytest.param(m, {"refine_every": v}, rf"method_params\.refine_every must be an integer >= 1, got {v}",
                   id=f"{m}-refine_every-{v}") for m in ALIGNED for v in (0, -3)],
    *[pytest.param(m, {"refine_every": 2.5}, r"method_params\.refine_every must be an integer >= 1",
                   id=f"{m}-refine_every-fraction") for m in ALIGNED],
    *[pytest.param(m, {"rda_start": -1}, r"method_params\.rda_start must be an integer >= 0, got -1",
                   id=f"{m}-rda_start") for m in ALIGNED],
    *[pytest.param(m, {"rda_weight": -1.0}, r"method_params\.rda_weight must be a float >= 0",
                   id=f"{m}-rda_weight") for m in ALIGNED],
    *[pytest.param(m, {"warmup": 1.2}, r"method_params\.warmup must be a float in \[0, 1\], got 1\.2",
                   id=f"{m}-warmup") for m in ALIGNED],
    *[pytest.param(m, {"ema": v}, rf"method_params\.ema must be a float in \[0, 1\), got {v}",
                   id=f"{m}-ema-{v}") for m in ALL for v in (1.0, -0.1)],
    *[pytest.param(m, {"regression_loss": "huber"},
                   r"method_params\.regression_loss must be one of 'mse', 'l1'", id=f"{m}-regression_loss")
      for m in ALL],
    pytest.param("rda", {"p_cutoff": 0.9}, r"rda: unknown key 'method_params\.p_cutoff'", id="rda-no-arc"),
    pytest.param("rankup", {"refine_every": 4}, r"rankup: unknown key 'method_params\.refine_every'",
                 id="rankup-no-rda"),
    pytest.param("rankup", {"p_cutoff": float("nan")}, r"method_params\.p_cutoff must be a float", id="nan"),
    pytest.param("rankup", {"arc_loss_ratio": "abc"}, r"arc_loss_ratio must be a float >= 0, got 'abc'",
                 id="text"),
]


@pytest.mark.parametrize(("method", "params", "message"), PARAM_CASES)
def test_build_method_refuses_bad_parameters(method, params, message):
    with pytest.raises(ValueError, match=message):
        build_method(method, model_fn, params=params)


def _context(n_l=4, n_u=6):
    return TrainingContext(total_steps=10, train_size=n_l + n_u, labeled_y=torch.randn(n_l),
                           unlabeled_index=torch.arange(n_l, n_l + n_u))


def _batches(n_u=6, labelled=True):
    lab = Batch({"weak": torch.randn(4, 4)}, torch.arange(4), torch.randn(4) if labelled else None)
    x = torch.randn(n_u, 4)
    return lab, Batch({"weak": x, "strong": x}, torch.arange(4, 4 + n_u))


STEP_CASES = [
    *[pytest.param(m, "no-setup", ValueError, r"call method\.setup\(TrainingContext\(\.\.\.\)\)",
                   id=f"{m}-no-setup") for m in ALIGNED],
    *[pytest.param(m, "no-unlabelled", ValueError, r"needs an unlabelled batch.*unlabeled_batch_size",
                   id=f"{m}-no-unlabelled") for m in ALL],
    *[pytest.param(m, "one-unlabelled", ValueError, r"at least 2 rows \(set unlabeled_batch_size to 2",
                   id=f"{m}-one-row") for m in ARC],
    *[pytest.param(m, "no-targets", ValueError, r"the labelled batch has no targets", id=f"{m}-no-targets")
      for m in ALL],
    *[pytest.param(m, "labelled-rows", ValueError, r"not unlabelled rows of this run", id=f"{m}-wrong-rows")
      for m in ALIGNED],
    *[pytest.param(m, "missing-view", ValueError, r"the batch has no view 'strong'", id=f"{m}-no-strong")
      for m in ARC],
]


@pytest.mark.parametrize(("method", "case", "error", "message"), STEP_CASES)
def test_training_step_refuses(method, case, error, message):
    m = build_method(method, model_fn, params={"ema": 0.0})
    if case != "no-setup":
        m.setup(_context())
    lab, ulb = _batches(labelled=case != "no-targets")
    if case == "no-unlabelled":
        ulb = None
    elif case == "one-unlabelled":
        ulb = ulb.take(torch.tensor([0]))
    elif case == "labelled-rows":
        ulb = Batch(ulb.views, torch.arange(ulb.index.numel()))  # rows 0..5 include labelled rows 0..3
    elif case == "missing-view":
        ulb = Batch({"weak": ulb.view("weak")}, ulb.index)
    before = [p.clone() for p in m.model.parameters()]
    with pytest.raises(error, match=message):
        m.training_step(lab, ulb, 0)
    assert all(torch.equal(a, b) for a, b in zip(before, m.model.parameters(), strict=True))


PART_CASES = [
    pytest.param(lambda: pair_logits(torch.zeros(4, 3)), r"ARC scores must have shape \[B, 2\], got \[4, 3\]",
                 id="pair_logits-classes"),
    pytest.param(lambda: pair_logits(torch.zeros(4)), r"ARC scores must have shape \[B, 2\], got \[4\]",
                 id="pair_logits-1d"),
    pytest.param(lambda: pair_targets(torch.zeros(4, 1)), r"targets must have shape \[B\], got \[4, 1\]",
                 id="pair_targets-2d"),
    pytest.param(lambda: quantile_map(torch.zeros(3, 2), torch.zeros(3)), r"1-D values and non-empty 1-D",
                 id="quantile_map-2d"),
    pytest.param(lambda: quantile_map(torch.zeros(3), torch.zeros(0)), r"non-empty 1-D targets",
                 id="quantile_map-no-targets"),
    pytest.param(lambda: DistributionAlignment(torch.arange(3), torch.zeros(2), 0),
                 r"refine_every must be an integer >= 1, got 0", id="alignment-refine_every"),
    pytest.param(lambda: DistributionAlignment(torch.arange(3), torch.zeros(0), 4),
                 r"needs labelled targets; the run has none", id="alignment-no-labels"),
    pytest.param(lambda: DistributionAlignment(torch.arange(3), torch.zeros(2), 4).update(
        torch.tensor([7]), torch.zeros(1), 0), r"not unlabelled rows of this run", id="alignment-row"),
    pytest.param(lambda: DistributionAlignment(torch.arange(3), torch.zeros(2), 4).load_state_dict(
        {"raw": torch.zeros(5), "refined": torch.zeros(5)}),
        r"checkpoint's RDA buffer has 5 rows, this run has 3 unlabelled rows", id="alignment-resume-size"),
]


@pytest.mark.parametrize(("call", "message"), PART_CASES)
def test_parts_refuse(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(("args", "phrase"), [
    pytest.param(["--method", "rankup", "--set", "method_params.p_cutoff=0"],
                 "rankup: method_params.p_cutoff must be a float in (0, 1], got 0", id="p_cutoff"),
    pytest.param(["--method", "rda", "--set", "method_params.refine_every=0"],
                 "rda: method_params.refine_every must be an integer >= 1, got 0", id="refine_every"),
    pytest.param(["--method", "rankup_rda", "--set", "method_params.arc_ulb_loss_ratio=-1"],
                 "rankup_rda: method_params.arc_ulb_loss_ratio must be a float >= 0, got -1", id="ratio"),
])
def test_cli_refuses_in_one_line_and_creates_nothing(tmp_path, args, phrase):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--steps", "2", *args,
                                       "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [x for x in result.output.splitlines() if x.strip()]
    assert len(lines) == 1 and phrase in lines[0], result.output
    assert not out.exists()
