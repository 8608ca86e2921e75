"""Fault suite of pimodel, meanteacher, mixmatch and fullysupervised: bad parameters at every entry point
(build_method, the training configuration, the CLI) and misuse of a step are refused early in one line that
names the key and what is accepted."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner

from clss.config import resolve_config
from clss.engine import train
from clss.methods import Batch, TrainingContext, build_method
from clss.models import MLPRegressor
from clss_cli.main import main


def model_fn():
    return MLPRegressor(4, (8,), dropout=0.0)


BAD_PARAMS = [
    pytest.param("pimodel", {"unlabeled_weight": -0.1},
                 r"pimodel: method_params\.unlabeled_weight must be a float >= 0 or 'auto', got -0\.1",
                 id="pi-weight"),
    pytest.param("pimodel", {"ramp_up": 1.5}, r"method_params\.ramp_up must be a float in \[0, 1\]",
                 id="pi-ramp"),
    pytest.param("pimodel", {"ramp_shape": "cosine"}, r"method_params\.ramp_shape must be one of 'linear', "
                 r"'sigmoid'", id="pi-shape"),
    pytest.param("pimodel", {"input_noise": -1}, r"method_params\.input_noise must be a float >= 0",
                 id="pi-noise"),
    pytest.param("meanteacher", {"unlabeled_weight": "abc"},
                 r"method_params\.unlabeled_weight must be a float", id="mt-weight-text"),
    pytest.param("meanteacher", {"ema_decay": 1.0}, r"method_params\.ema_decay must be a float in \[0, 1\), "
                 r"got 1\.0", id="mt-decay-1"),
    pytest.param("meanteacher", {"ema_decay": -0.5}, r"method_params\.ema_decay must be a float in \[0, 1\)",
                 id="mt-decay-negative"),
    pytest.param("meanteacher", {"student_view": "weak"}, r"method_params\.student_view must be one of "
                 r"'strong', 'weak@2'", id="mt-view"),
    pytest.param("meanteacher", {"eval_teacher": "perhaps"}, r"method_params\.eval_teacher must be true or "
                 r"false", id="mt-eval"),
    pytest.param("meanteacher", {"input_noise": -0.1}, r"method_params\.input_noise must be a float >= 0",
                 id="mt-noise"),
    pytest.param("mixmatch", {"views": 0}, r"mixmatch: method_params\.views must be an integer >= 1, got 0",
                 id="mm-views-0"),
    pytest.param("mixmatch", {"views": 1.5}, r"method_params\.views must be an integer >= 1",
                 id="mm-views-float"),
    pytest.param("mixmatch", {"mixup_alpha": 0}, r"method_params\.mixup_alpha must be a float > 0, got 0",
                 id="mm-alpha-0"),
    pytest.param("mixmatch", {"mixup_alpha": -1.0}, r"method_params\.mixup_alpha must be a float > 0",
                 id="mm-alpha-negative"),
    pytest.param("mixmatch", {"unlabeled_weight": -2},
                 r"method_params\.unlabeled_weight must be a float >= 0", id="mm-weight"),
    pytest.param("mixmatch", {"input_noise": 0.1}, r"input_noise", id="mm-unknown-key"),
    pytest.param("fullysupervised", {"unlabeled_weight": 0.1}, r"unlabeled_weight", id="full-unknown-key"),
]


@pytest.mark.parametrize(("method", "params", "message"), BAD_PARAMS)
def test_build_method_refuses_bad_parameters(method, params, message):
    with pytest.raises(ValueError, match=message) as info:
        build_method(method, model_fn, params=params)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("method", "params", "message"), BAD_PARAMS[::3])
def test_training_refuses_bad_parameters_before_writing(tmp_path, method, params, message):
    with pytest.raises(ValueError, match=message):
        train(resolve_config({}, {"dataset": "diabetes", "method": method, "method_params": params,
                                  "steps": 2, "progress": False, "plots": False}), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("flag", "message"), [
    pytest.param("ema_decay=1", r"method_params\.ema_decay must be a float in \[0, 1\)", id="decay"),
    pytest.param("unlabeled_weight=-1", r"method_params\.unlabeled_weight must be a float >= 0", id="weight"),
])
def test_cli_refuses_bad_parameters_in_one_line(tmp_path, flag, message):
    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--method", "meanteacher",
                                       "--steps", "2", "--set", f"method_params.{flag}",
                                       "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    lines = [x for x in result.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and re.search(message, lines[0]), result.output


def _batches():
    x = torch.randn(6, 4)
    return Batch({"weak": x[:3]}, torch.arange(3), x[:3, 0]), Batch({"weak": x[3:], "weak@2": x[3:],
                                                                       "strong": x[3:]}, torch.arange(3, 6))


@pytest.mark.parametrize("method", ["pimodel", "meanteacher", "mixmatch"])
def test_steps_refuse_misuse(method):
    lab, ulb = _batches()
    m = build_method(method, model_fn)
    with pytest.raises(ValueError, match=r"needs the run's length and splits: call method\.setup"):
        m.training_step(lab, ulb, 0)
    m.setup(TrainingContext(total_steps=10, train_size=6, labeled_y=lab.y, unlabeled_index=ulb.index))
    with pytest.raises(ValueError, match=f"{method} needs unlabelled rows in every step"):
        m.training_step(lab, None, 0)
    with pytest.raises(ValueError, match="the labelled batch has no targets"):
        m.training_step(Batch(lab.views, lab.index), ulb, 0)
