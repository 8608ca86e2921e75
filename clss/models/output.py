"""The named output every regression network returns."""

from __future__ import annotations

from typing import TypedDict

import torch

__all__ = ["ModelOutput"]


class ModelOutput(TypedDict, total=False):
    """``forward(x)`` of every model in :mod:`clss.models` returns this dict.

    Keys
    ----
    pred : Tensor ``[B]``
        The regression output (standardised target units). Always present.
    feat : Tensor ``[B, d]``
        The representation the contrastive and ranking losses use (e.g. the pooled backbone feature).
        Always present.
    log_var : Tensor ``[B]``
        Optional: a predicted log-variance (uncertainty heads).
    Models may add further named extras (e.g. a ranking head); methods read the keys they need.
    """

    pred: torch.Tensor
    feat: torch.Tensor
    log_var: torch.Tensor
