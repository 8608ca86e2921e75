"""Model registry: build a network by name from the data's input shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

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


def build_model(name: str, in_features: int, **kwargs: Any) -> nn.Module:
    """Instantiate a registered model for inputs of ``in_features`` dimensions."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {sorted(MODELS)}")
    return MODELS[name][0](in_features, **kwargs)
