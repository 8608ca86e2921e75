"""Weights that change over training: ramp-ups of unlabelled terms and the EMA teacher update."""

from __future__ import annotations

import math

import torch
from torch import nn

RAMP_SHAPES = ("linear", "sigmoid")


def ramp_weight(step: int, length: int, shape: str = "linear") -> float:
    """The ramp-up factor in [0, 1] of an unlabelled term at ``step`` (0-based) of a ``length``-step ramp.

    ``"linear"``: ``min(1, step / length)`` (USB and RankUp: ``length`` = 40 % of training).
    ``"sigmoid"``: ``exp(-5 (1 - t)^2)`` with ``t = min(1, step / length)`` (Laine & Aila 2017, also Mean
    Teacher's original schedule). ``length <= 0`` means no ramp (1 from the first step).
    """
    if shape not in RAMP_SHAPES:
        raise ValueError(f"ramp shape must be one of {RAMP_SHAPES}, got {shape!r}")
    if length <= 0:
        return 1.0
    t = min(1.0, max(step, 0) / length)
    return t if shape == "linear" else math.exp(-5.0 * (1.0 - t) ** 2)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, decay: float, step: int | None = None) -> float:
    """Move ``teacher``'s parameters towards ``student``'s: ``θ' ← m θ' + (1 − m) θ``; copy its floating
    buffers (batch-norm statistics) from the student, as USB's EMA does. Returns the decay ``m`` used.

    With ``step`` given, the decay warms up as in Tarvainen & Valpola (2017): ``m = min(decay, 1 − 1/(step +
    1))``, so the teacher is the student's running mean early on instead of staying near its initialisation.
    Both modules must have the same architecture.
    """
    m = decay if step is None else min(decay, 1.0 - 1.0 / (step + 1))
    t_params, s_params = list(teacher.parameters()), list(student.parameters())
    if len(t_params) != len(s_params):
        raise ValueError("the teacher and the student must have the same architecture")
    torch._foreach_lerp_(t_params, [p.detach() for p in s_params], 1.0 - m)
    for tb, sb in zip(teacher.buffers(), student.buffers(), strict=True):
        tb.copy_(sb)
    return m
