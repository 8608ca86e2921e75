"""Model registry: build a network by name for the data's inputs (an :class:`~clss.data.InputSpec`)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from clss.data.dataset import InputSpec
from clss.models.cnn import CNNRegressor
from clss.models.mlp import MLP_PARAMS, MLPRegressor
from clss.models.resnet import RESNETS, ResNetRegressor
from clss.models.weights import load_weights
from clss.models.wrn import WideResNetRegressor
from clss.schema import Spec

_DROPOUT = Spec("float", ge=0, lt=1)
#: ``model.weights``: a local file loaded by :func:`~clss.models.load_weights` after the model is built.
WEIGHTS_SPEC = Spec("str", optional=True, describe="the path of a local weights file or null")


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: ``build(input, **kwargs)``, a description, its keys, the input kinds it takes."""

    build: Callable[..., nn.Module]
    description: str
    params: dict[str, Spec]
    kinds: tuple[str, ...]


def _resnet(arch: str) -> ModelEntry:
    return ModelEntry(lambda input, **kw: ResNetRegressor(arch, input.channels, **kw),
                      f"torchvision {arch} with a regression head; feature: pooled {RESNETS[arch][1]}-d",
                      {"dropout": _DROPOUT, "small_input": Spec("bool"), "weights": WEIGHTS_SPEC}, ("image",))


MODELS: dict[str, ModelEntry] = {
    "mlp": ModelEntry(lambda input, **kw: MLPRegressor(input.size, **kw),
                      "multilayer perceptron: trunk -> feature -> linear head (images are flattened)",
                      {**MLP_PARAMS, "weights": WEIGHTS_SPEC}, ("tabular", "image")),
    **{arch: _resnet(arch) for arch in RESNETS},
    "wrn28_2": ModelEntry(lambda input, **kw: WideResNetRegressor(input.channels, 28, 2, **kw),
                          "WideResNet-28-2 (USB/RankUp's 32-40 px network); feature: pooled 128-d",
                          {"dropout": _DROPOUT, "weights": WEIGHTS_SPEC}, ("image",)),
    "cnn": ModelEntry(lambda input, **kw: CNNRegressor(input.channels, input.shape[1:], **kw),
                      "small CNN for 8x8-28x28 images; feature: pooled, channels * 2**(blocks-1)-d",
                      {"channels": Spec("int", ge=1), "blocks": Spec("int", ge=1, le=6), "dropout": _DROPOUT,
                       "weights": WEIGHTS_SPEC}, ("image",)),
}

#: Declared keyword arguments of each model (the configuration's ``model.*`` keys besides ``name``).
MODEL_PARAMS: dict[str, dict[str, Spec]] = {name: entry.params for name, entry in MODELS.items()}


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description."""
    return {name: entry.description for name, entry in MODELS.items()}


def build_model(name: str, input: InputSpec, *, weights: str | None = None, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model for inputs described by ``input``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``"mlp"``, ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"wrn28_2"``,
        ``"cnn"``.
    input : InputSpec
        The data's inputs (``DataSplits.input``): kind and shape of one input. Image models refuse tabular
        inputs; the MLP flattens images.
    weights : str, optional
        A local weights file loaded into the fresh model (see :func:`~clss.models.load_weights`); a
        warning reports a skipped classifier or an adapted first convolution.
    **kwargs
        The model's keyword arguments (the configuration's ``model.*`` keys, checked against
        :data:`MODEL_PARAMS`).

    Returns
    -------
    nn.Module
        A network whose ``forward`` returns a :class:`~clss.models.ModelOutput`.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    if not isinstance(input, InputSpec):
        raise TypeError(f"build_model takes the data's InputSpec (DataSplits.input), got "
                        f"{type(input).__name__}")
    entry = MODELS[name]
    if input.kind not in entry.kinds:
        raise ValueError(f"model {name!r} takes {' or '.join(entry.kinds)} inputs, but the data's inputs are "
                         f"{input.kind} of shape {input.shape}; the 'mlp' model takes them")
    unknown = sorted(set(kwargs) - set(entry.params))
    if unknown:
        raise TypeError(f"model {name!r} has no parameter {unknown[0]!r}; its parameters: "
                        f"{', '.join(entry.params)}")
    model = entry.build(input, **kwargs)
    if weights is not None:
        report = load_weights(model, weights, name)
        if ";" in report:  # something was skipped or adapted: say so
            warnings.warn(report, UserWarning, stacklevel=2)
    return model
