"""Model registry: build a network by name for the data's inputs (an :class:`~clss.data.InputSpec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from clss.data.dataset import InputSpec
from clss.models.mlp import MLP_PARAMS, MLPRegressor
from clss.schema import Spec

MODELS: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "mlp": (MLPRegressor, "multilayer perceptron: trunk -> feature -> linear head"),
}

#: Declared keyword arguments of each model (the configuration's ``model.*`` keys besides ``name``).
MODEL_PARAMS: dict[str, dict[str, Spec]] = {"mlp": MLP_PARAMS}


def list_models() -> dict[str, str]:
    """Registered model names with a one-line description."""
    return {name: desc for name, (_, desc) in MODELS.items()}


def build_model(name: str, input: InputSpec, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model for inputs described by ``input``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`.
    input : InputSpec
        The data's inputs (``DataSplits.input``): kind and shape of one input.
    **kwargs
        The model's keyword arguments (the configuration's ``model.*`` keys).

    Returns
    -------
    nn.Module
        A network whose ``forward`` returns a :class:`~clss.models.ModelOutput`.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    if not isinstance(input, InputSpec):
        raise TypeError(f"build_model takes the data's InputSpec (DataSplits.input), got "
                        f"{type(input).__name__}")
    return MODELS[name][0](input.size, **kwargs)
