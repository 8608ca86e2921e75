"""Fault suite of the methods' precision, gradient clipping and views: bad settings at every entry point
(build_method, OptimizerConfig, TrainConfig, train, the CLI) are refused early in one line, and a refused
run leaves nothing on disk."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from clss.config import resolve_config
from clss.engine import train
from clss.methods import Batch, OptimizerConfig, build_method
from clss.models import MLPRegressor
from clss_cli.main import main

NO_CUDA = not torch.cuda.is_available()


def model_fn():
    return MLPRegressor(4, (8,), dropout=0.0)


@pytest.mark.parametrize(("precision", "error", "message"), [
    pytest.param("fp8", ValueError, r"precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'", id="fp8"),
    pytest.param("FP16", ValueError, r"precision must be one of .* got 'FP16'", id="upper-case"),
    pytest.param(None, ValueError, r"precision must be one of .* got None", id="none"),
    pytest.param(16, ValueError, r"precision must be one of .* got 16", id="int"),
    pytest.param("fp16", ValueError, r"precision 'fp16' needs a CUDA device .*use precision 'bf16' or 'fp32'",
                 id="fp16-without-cuda", marks=pytest.mark.skipif(not NO_CUDA, reason="CUDA present")),
])
def test_build_method_precision(precision, error, message):
    for name in ("supervised", "clss", "gclss"):
        with pytest.raises(error, match=message):
            build_method(name, model_fn, precision=precision)


@pytest.mark.parametrize(("value", "message"), [
    pytest.param(0, r"optimizer\.clip_grad_norm must be a float > 0 or null, got 0", id="zero"),
    pytest.param(-1.0, r"optimizer\.clip_grad_norm must be a float > 0", id="negative"),
    pytest.param("abc", r"optimizer\.clip_grad_norm must be a float > 0.*'abc'", id="text"),
    pytest.param(float("nan"), r"optimizer\.clip_grad_norm must be a float", id="nan"),
    pytest.param(float("inf"), r"optimizer\.clip_grad_norm must be a float", id="inf"),
    pytest.param(True, r"optimizer\.clip_grad_norm must be a float", id="bool"),
])
def test_optimizer_config_clip_grad_norm(value, message):
    with pytest.raises(ValueError, match=message):
        OptimizerConfig(clip_grad_norm=value)
    with pytest.raises(ValueError, match=message):
        OptimizerConfig.from_dict({"clip_grad_norm": value})


@pytest.mark.parametrize(("overrides", "message"), [
    pytest.param({"precision": "fp8"}, r"precision must be one of 'fp32', 'bf16', 'fp16', got 'fp8'",
                 id="fp8"),
    pytest.param({"precision": "half"}, r"precision must be one of", id="half"),
    pytest.param({"precison": "bf16"}, r"unknown key 'precison'; did you mean 'precision'", id="typo"),
    pytest.param({"optimizer": {"clip_grad_norm": 0}}, r"optimizer\.clip_grad_norm must be a float > 0",
                 id="clip-zero"),
    pytest.param({"optimizer": {"clip_grad_norm": "big"}}, r"optimizer\.clip_grad_norm must be a float > 0",
                 id="clip-text"),
])
def test_train_config(overrides, message):
    with pytest.raises(ValueError, match=message):
        resolve_config({}, {"dataset": "diabetes", **overrides})


def test_train_refuses_fp16_on_cpu_before_writing(tmp_path):
    cfg = resolve_config({}, {"dataset": "diabetes", "method": "gclss", "steps": 2, "precision": "fp16",
                              "device": "cpu", "progress": False, "plots": False})
    with pytest.raises(ValueError, match=r"precision 'fp16' needs a CUDA device .* the device is cpu"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(["--set", "precision=fp16", "--device", "cpu"], "precision 'fp16' needs a CUDA device",
                 id="fp16-cpu"),
    pytest.param(["--set", "precision=fp64"], "precision must be one of", id="fp64"),
    pytest.param(["--set", "optimizer.clip_grad_norm=-2"], "optimizer.clip_grad_norm must be a float > 0",
                 id="clip-negative"),
])
def test_cli_train(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", "--dataset", "diabetes", "--steps", "2", "--no-progress",
                                       "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_gclss_batch_without_the_second_draw():
    x = torch.randn(6, 4)
    lab = Batch({"weak": x, "weak@2": x}, torch.arange(6), x[:, 0])
    ulb = Batch({"weak": x}, torch.arange(6, 12), None)
    with pytest.raises(ValueError, match=r"the batch has no view 'weak@2' \(it has \['weak'\]\); declare it"):
        build_method("gclss", model_fn).training_step(lab, ulb, 0)
