"""The exponential-moving-average copy of a model that a method evaluates through (moved by
:func:`clss.methods.parts.ema_update`)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (USB's EMA model starts as the model); it is a submodule of the method,
    so it is saved and restored with the method's state dict."""
    return copy.deepcopy(model).requires_grad_(False)


@torch.no_grad()
def eval_predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s predictions ``[B]`` on ``x`` in evaluation mode, its training mode restored after."""
    was_training = model.training
    model.eval()
    try:
        return model(x)["pred"]
    finally:
        model.train(was_training)
