"""Pieces the methods share: regression losses, the labelled/pseudo-labelled contrastive losses by name,
seeded row subsampling, and the ranking diagnostic."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clss import losses

REGRESSION_LOSSES = ("mse", "l1")

# Losses that take continuous targets, so they accept labels and seriation pseudo-targets alike.
CONTRASTIVE_LOSSES = ("oe", "rnc", "conord", "ranksim", "supremix")


def regression_loss(pred: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean squared or absolute error on standardised targets."""
    if kind == "mse":
        return F.mse_loss(pred, target)
    if kind == "l1":
        return F.l1_loss(pred, target)
    raise ValueError(f"regression_loss must be one of {REGRESSION_LOSSES}, got {kind!r}")


def contrastive_loss(name: str | None, *, oe_variant: str = "center",
                     lambda_val: float = 2.0) -> nn.Module | None:
    """A loss of :mod:`clss.losses` by short name (``None``/``"none"``: no term)."""
    if name in (None, "none"):
        return None
    if name == "oe":
        return losses.OrdinalEntropyLoss(variant=oe_variant)
    if name == "rnc":
        return losses.RnCLoss()
    if name == "conord":
        return losses.ConOrdLoss()
    if name == "ranksim":
        return losses.RankSimLoss(lambda_val=lambda_val)
    if name == "supremix":
        return losses.SupReMixLoss()
    raise ValueError(f"unknown contrastive loss {name!r}; expected one of {CONTRASTIVE_LOSSES} or 'none'")


def subsample(n: int, k: int | None, generator: torch.Generator) -> torch.Tensor | None:
    """``k`` distinct random rows of ``n`` (``None`` when ``k`` is unset or ``>= n``: use all rows).

    Every row can be drawn (the official synthetic code never drew the last one).
    """
    if k is None or k >= n:
        return None
    return torch.randperm(n, generator=generator)[:k]


def kendall_tau(a: torch.Tensor, b: torch.Tensor) -> float:
    """Kendall τ-b of two score vectors (a diagnostic of pseudo-ranks against hidden truth)."""
    from clss.seriation.compare import rank_correlation_batch

    return float(rank_correlation_batch(a.detach().unsqueeze(0).double(),
                                        b.detach().unsqueeze(0).double(), method="kendall")[0])


def diagnose(every: int, step: int) -> bool:
    """Whether ``step`` logs diagnostics when they run every ``every`` steps (never for 0)."""
    return bool(every) and step % every == 0
