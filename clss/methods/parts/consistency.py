"""Pieces of the consistency methods (Π-model, Mean Teacher, MixMatch): input noise drawn from the method's
stream, the check that two passes can differ at all, and mixup."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn
from torch.nn.modules.dropout import _DropoutNd


def input_noise(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    """``x + std · ε`` with ``ε ~ N(0, 1)`` of ``x``'s shape drawn with ``generator`` (on the CPU, then moved
    to ``x``'s device and dtype), or ``x`` itself when ``std`` is 0 (no draw: the generator is not advanced).
    """
    if std == 0:
        return x
    draw_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    eps = torch.randn(x.shape, generator=generator, dtype=draw_dtype)
    return x + std * eps.to(device=x.device, dtype=x.dtype)


def has_dropout(model: nn.Module) -> bool:
    """Whether ``model`` holds a dropout layer with a rate above 0 (a source of noise in training mode)."""
    return any(isinstance(m, _DropoutNd) and m.p > 0 for m in model.modules())


def warn_if_noiseless(method: str, model: nn.Module, first: torch.Tensor, second: torch.Tensor,
                      noise: float) -> bool:
    """Warn (and return True) when two passes over views ``first`` and ``second`` cannot differ: the views
    are equal (data without augmentation), ``model`` has no dropout and ``noise`` is 0. The Π-model's term
    would then compare a pass with itself and train nothing; Mean Teacher's would only compare the student
    with its average, without the noise the method is about."""
    if noise > 0 or has_dropout(model) or not (first is second or torch.equal(first, second)):
        return False
    warnings.warn(f"{method}: the unlabelled rows' views are identical (no augmentation), the model has no "
                  "dropout and method_params.input_noise is 0, so the consistency term has no noise to be "
                  "robust to (the Π-model's is 0 and trains nothing); set method_params.input_noise "
                  "(e.g. 0.1) or model.dropout (e.g. 0.1)", UserWarning, stacklevel=3)
    return True


def beta_draw(alpha: float, generator: torch.Generator) -> float:
    """One draw of ``Beta(alpha, alpha)`` from ``generator``'s stream (torch's Beta sampler takes no
    generator: one 63-bit integer from it seeds a NumPy generator for the draw)."""
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mixup(x: torch.Tensor, y: torch.Tensor, alpha: float, generator: torch.Generator
          ) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """MixMatch's mixup of rows ``x`` ``[n, ...]`` with targets ``y`` ``[n]``: one ``λ ~ Beta(α, α)`` per
    call, ``λ' = max(λ, 1 − λ)`` (each mixed row stays closer to its own row), and a random permutation ``π``:
    ``x̃ = λ' x + (1 − λ') x[π]``, ``ỹ = λ' y + (1 − λ') y[π]``. Both draws come from ``generator``.

    Returns ``(x̃, ỹ, λ', π)``.
    """
    lam = beta_draw(alpha, generator)
    lam = max(lam, 1.0 - lam)
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm], lam, perm
