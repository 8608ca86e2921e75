"""Fault suite of :mod:`clss.models`: bad names, inputs, keyword arguments and weights files.

Entry points: ``build_model`` (names, inputs, keyword arguments), ``build_model(weights=...)`` /
``load_weights`` (files), the configuration's ``model.*`` keys (``TrainConfig``) and ``clss train --set
model.*=...`` (exit code 2 with one line). Every refusal is one line naming the problem.
"""

from __future__ import annotations

import argparse
import functools
import pickle
import re

import pytest
import torch
import torchvision
from click.testing import CliRunner

from clss.config import TrainConfig
from clss.data.dataset import InputSpec
from clss.engine.checkpoint import save_checkpoint
from clss.models import build_model
from clss_cli.main import main

RGB = InputSpec("image", (3, 32, 32))
GREY8 = InputSpec("image", (1, 8, 8))
TAB = InputSpec("tabular", (5,))


def _one_line(exc_info) -> None:
    assert "\n" not in str(exc_info.value)


# ---------------------------------------------------------------- build_model: names, inputs, arguments
BUILD = [
    pytest.param(
        "resnet101",
        RGB,
        {},
        ValueError,
        r"unknown model 'resnet101'; available: mlp, resnet18",
        id="unknown-name",
    ),
    pytest.param(
        "resnet18",
        (3, 32, 32),
        {},
        TypeError,
        r"takes the data's InputSpec .* got tuple",
        id="shape-not-inputspec",
    ),
    pytest.param("mlp", 241, {}, TypeError, r"takes the data's InputSpec .* got int", id="int-not-inputspec"),
    *[
        pytest.param(
            name,
            TAB,
            {},
            ValueError,
            rf"model '{name}' takes image inputs, but the data's inputs are "
            r"tabular of shape \(5,\)",
            id=f"tabular-into-{name}",
        )
        for name in ("resnet18", "resnet34", "resnet50", "wrn28_2", "cnn")
    ],
    pytest.param(
        "resnet18",
        RGB,
        {"hidden": [8]},
        TypeError,
        r"model 'resnet18' has no parameter 'hidden'; its parameters: dropout, small_input, weights",
        id="resnet-unknown-kwarg",
    ),
    pytest.param(
        "wrn28_2",
        RGB,
        {"small_input": True},
        TypeError,
        r"model 'wrn28_2' has no parameter "
        r"'small_input'",
        id="wrn-unknown-kwarg",
    ),
    pytest.param(
        "resnet18",
        RGB,
        {"dropout": 1.0},
        ValueError,
        r"dropout must be in \[0, 1\), got 1\.0",
        id="resnet-dropout-1",
    ),
    pytest.param(
        "wrn28_2",
        RGB,
        {"dropout": -0.1},
        ValueError,
        r"dropout must be in \[0, 1\), got -0\.1",
        id="wrn-dropout-negative",
    ),
    pytest.param(
        "cnn",
        GREY8,
        {"dropout": float("nan")},
        ValueError,
        r"dropout must be in \[0, 1\), got nan",
        id="cnn-dropout-nan",
    ),
    pytest.param(
        "cnn",
        GREY8,
        {"blocks": 4},
        ValueError,
        r"model 'cnn' with blocks=4 halves the image 4 "
        r"times and needs at least 16x16 pixels, got 8x8; use fewer blocks",
        id="cnn-image-too-small",
    ),
    pytest.param(
        "cnn",
        InputSpec("image", (1, 3, 64)),
        {},
        ValueError,
        r"needs at least 4x4 pixels, got 3x64",
        id="cnn-too-thin",
    ),
    pytest.param(
        "cnn", GREY8, {"channels": 0}, ValueError, r"channels and blocks must be >= 1", id="cnn-zero-channels"
    ),
    pytest.param("mlp", TAB, {"hidden": []}, ValueError, r"invalid MLP sizes", id="mlp-no-hidden"),
]


@pytest.mark.parametrize(("name", "spec", "kwargs", "error", "match"), BUILD)
def test_build_model_refuses(name, spec, kwargs, error, match):
    with pytest.raises(error, match=match) as info:
        build_model(name, spec, **kwargs)
    _one_line(info)


# ---------------------------------------------------------------- weights files
@functools.cache
def _torchvision_state(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return getattr(torchvision.models, arch)(weights=None).state_dict()


def _save(obj):
    return lambda path: torch.save(obj() if callable(obj) else obj, path)


def _write_bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated(path):
    torch.save(_torchvision_state("resnet18"), path)
    path.write_bytes(path.read_bytes()[:5000])


def _pickled_namespace(path):
    torch.save({"args": argparse.Namespace(lr=1), "conv1.weight": torch.zeros(1)}, path)


def _plain_pickle(path):
    with open(path, "wb") as fh:
        pickle.dump({"conv1.weight": [0.0]}, fh, protocol=4)


def _checkpoint_without_method(path):
    save_checkpoint(path, {"step": 3}, kind="weights")


def _mlp_checkpoint(path):
    from clss.methods import build_method

    method = build_method("supervised", lambda: build_model("mlp", RGB, hidden=[4]))
    save_checkpoint(path, {"step": 3, "method": method.state_dict()}, kind="weights")


def _wrn_backbone(path):
    torch.save(build_model("wrn28_2", RGB).backbone.state_dict(), path)


def _nan_weight(path):
    state = dict(_torchvision_state("resnet18"))
    state["layer2.0.conv1.weight"] = state["layer2.0.conv1.weight"].clone()
    state["layer2.0.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, path)


def _grey_conv1(path):
    state = dict(_torchvision_state("resnet18"))
    state["conv1.weight"] = state["conv1.weight"][:, :1]
    torch.save(state, path)


WEIGHTS = [
    pytest.param(
        None,
        "resnet18",
        RGB,
        {},
        FileNotFoundError,
        r"model\.weights: no file at .*absent\.pth$",
        id="missing-file",
    ),
    pytest.param(
        "folder", "resnet18", RGB, {}, FileNotFoundError, r"no file at .*\(it is a folder\)", id="folder"
    ),
    pytest.param(
        _write_bytes(b""),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"is not a torch weights file \(the file is empty\)",
        id="empty-file",
    ),
    pytest.param(
        _write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200)),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"is not a torch weights file \(torch\.load\(weights_only=True\): Unsupported operand",
        id="png-bytes",
    ),
    pytest.param(
        _plain_pickle,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"is not a torch weights file \(torch\.load\(weights_only=True\): Unsupported operand",
        id="plain-pickle",
    ),
    pytest.param(
        _truncated, "resnet18", RGB, {}, ValueError, r"is not a torch weights file \(", id="truncated"
    ),
    pytest.param(
        _pickled_namespace,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds a argparse\.Namespace object, which torch\.load\(weights_only=True\) refuses; save the "
        r"weights with torch\.save\(model\.state_dict\(\), PATH\)",
        id="pickle-with-objects",
    ),
    pytest.param(
        _save(lambda: torchvision.models.resnet18(weights=None)),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds a torchvision\.models\.resnet\.ResNet object",
        id="whole-module-pickled",
    ),
    pytest.param(
        _save(torch.zeros(3)),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds a Tensor, not a mapping of names to tensors",
        id="bare-tensor",
    ),
    pytest.param(
        _save([torch.zeros(3)]), "resnet18", RGB, {}, ValueError, r"holds a list, not a mapping", id="list"
    ),
    pytest.param(
        _save({}), "resnet18", RGB, {}, ValueError, r"holds an empty dict, not a mapping", id="empty-dict"
    ),
    pytest.param(
        _save({"epoch": 3, "lr": 0.1}),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds a dict with the keys 'epoch', 'lr', not a mapping of names to tensors",
        id="dict-of-numbers",
    ),
    pytest.param(
        _save(lambda: {"state_dict": _torchvision_state("resnet18")}),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds a dict with the keys 'state_dict', not a mapping",
        id="nested-state-dict",
    ),
    pytest.param(
        _checkpoint_without_method,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"is a clss checkpoint without network weights",
        id="checkpoint-without-method",
    ),
    pytest.param(
        _mlp_checkpoint,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"holds no tensor of a 'resnet18' model \(its keys look like 'head\.bias'",
        id="mlp-into-resnet",
    ),
    pytest.param(
        _wrn_backbone,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"does not fit model 'resnet18': it lacks 95 of the model's tensors .* and has 151 the model "
        r"does not have \(e\.g\. 'block1\.layer\.0\.bn1\.bias'.*; it is another architecture",
        id="wrn-into-resnet",
    ),
    pytest.param(
        _save(lambda: _torchvision_state("resnet34")),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"does not fit model 'resnet18': it has 80 the model does not have \(e\.g\. 'layer1\.2\.bn1\.",
        id="resnet34-into-resnet18",
    ),
    pytest.param(
        _save(lambda: _torchvision_state("resnet18")),
        "resnet34",
        RGB,
        {},
        ValueError,
        r"does not fit model 'resnet34': it lacks 80 of the model's tensors \(e\.g\. 'layer1\.2\.",
        id="resnet18-into-resnet34",
    ),
    pytest.param(
        _save(lambda: _torchvision_state("resnet50")),
        "resnet18",
        RGB,
        {},
        ValueError,
        r"does not fit model 'resnet18': it has 165 the model does not have \(e\.g\. 'layer1\.0\.bn3",
        id="resnet50-into-resnet18",
    ),
    pytest.param(
        _save(lambda: _torchvision_state("resnet18")),
        "resnet18",
        RGB,
        {"small_input": True},
        ValueError,
        r"'conv1\.weight' has shape \[64, 3, 7, 7\] in the file, \[64, 3, 3, 3\] in the "
        r"model",
        id="7x7-conv1-into-small-input",
    ),
    pytest.param(
        _save(lambda: _torchvision_state("resnet18")),
        "resnet18",
        InputSpec("image", (2, 32, 32)),
        {},
        ValueError,
        r"'conv1\.weight' has shape \[64, 3, 7, 7\] in the file, \[64, 2, 7, 7\]",
        id="rgb-into-2-channels",
    ),
    pytest.param(
        _grey_conv1,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"'conv1\.weight' has shape \[64, 1, 7, 7\] in the file, \[64, 3, 7, 7\]",
        id="grey-into-rgb",
    ),
    pytest.param(
        _save(lambda: build_model("cnn", GREY8).state_dict()),
        "cnn",
        GREY8,
        {"channels": 16},
        ValueError,
        r"does not fit model 'cnn': 'backbone\.layers\.0\.weight' has shape \[32, 1, 3, 3\]",
        id="cnn-other-width",
    ),
    pytest.param(
        _save(lambda: build_model("mlp", TAB, hidden=[4]).state_dict()),
        "mlp",
        TAB,
        {"hidden": [4, 4]},
        ValueError,
        r"does not fit model 'mlp': it lacks 2 of the model's tensors",
        id="mlp-other-depth",
    ),
    pytest.param(
        _nan_weight,
        "resnet18",
        RGB,
        {},
        ValueError,
        r"'layer2\.0\.conv1\.weight' holds NaN or infinite values; the file's weights are unusable",
        id="nan-weight",
    ),
]


@pytest.mark.parametrize(("writer", "name", "spec", "kwargs", "error", "match"), WEIGHTS)
def test_weights_files_are_refused(tmp_path, writer, name, spec, kwargs, error, match):
    path = tmp_path / "absent.pth"
    if writer == "folder":
        path.mkdir()
    elif writer is not None:
        writer(path)
    with pytest.raises(error, match=match) as info:
        build_model(name, spec, weights=str(path), **kwargs)
    _one_line(info)


# ---------------------------------------------------------------- configuration keys and the command line
CONFIG = [
    pytest.param({"name": "resnet152"}, r"model\.name must be one of 'mlp', 'resnet18'", id="unknown-name"),
    pytest.param(
        {"name": "resnet18", "dropout": 1.5},
        r"model\.dropout must be a float in \[0, 1\), got 1\.5",
        id="dropout",
    ),
    pytest.param(
        {"name": "resnet18", "small_input": "yes"},
        r"model\.small_input must be true or false",
        id="small-input-not-bool",
    ),
    pytest.param(
        {"name": "wrn28_2", "weights": 3},
        r"model\.weights must be the path of a local weights file "
        r"or null, got 3",
        id="weights-not-a-path",
    ),
    pytest.param(
        {"name": "cnn", "blocks": 9}, r"model\.blocks must be an integer in \[1, 6\], got 9", id="cnn-blocks"
    ),
    pytest.param({"name": "cnn", "hidden": [8]}, r"unknown key 'model\.hidden'", id="cnn-foreign-key"),
]


@pytest.mark.parametrize(("model", "match"), CONFIG)
def test_model_keys_are_refused_by_name(model, match):
    with pytest.raises(ValueError, match=match) as info:
        TrainConfig(model=model)
    _one_line(info)


CLI = [
    pytest.param(
        ["--set", "model.name=resnet18"],
        r"model 'resnet18' takes image inputs, but the data's inputs "
        r"are tabular",
        id="image-model-on-tabular-data",
    ),
    pytest.param(
        ["--set", "model.weights=/nonexistent/w.pth"],
        r"model\.weights: no file at /nonexistent/w\.pth",
        id="missing-weights",
    ),
    pytest.param(
        ["--set", "model.name=resnet18", "--set", "model.dropout=2"],
        r"model\.dropout must be a float in",
        id="bad-dropout",
    ),
]


@pytest.mark.parametrize(("args", "match"), CLI)
def test_cli_refuses_bad_model_settings(tmp_path, args, match):
    result = CliRunner().invoke(
        main, ["train", "--dataset", "diabetes", "--steps", "2", "--out", str(tmp_path / "run"), *args]
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and re.search(match, lines[0]), result.output
