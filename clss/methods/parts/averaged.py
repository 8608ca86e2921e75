"""The exponential-moving-average copy of a model that a method evaluates through (moved by
:func:`clss.methods.parts.ema_update`)."""

from __future__ import annotations

import copy

from torch import nn


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` (USB's EMA model starts as the model); it is a submodule of the method,
    so it is saved and restored with the method's state dict."""
    return copy.deepcopy(model).requires_grad_(False)
