"""The labelled terms every method trains with: regression, plus a contrastive term on a row subsample."""

from __future__ import annotations

import torch
from torch import nn

from clss.methods.common import regression_loss, subsample


def supervised_terms(pred: torch.Tensor, feat: torch.Tensor, y: torch.Tensor | None, *, regression: str,
                     contrastive: nn.Module | None, weight: float, rows: int | None,
                     generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The labelled loss terms, by name.

    Parameters
    ----------
    pred, feat : predictions ``[B]`` and features ``[B, d]`` of the labelled rows.
    y : standardised targets ``[B]`` (``None`` is refused: the batch is not labelled).
    regression : ``"mse"`` or ``"l1"``.
    contrastive : a loss of :mod:`clss.losses` taking ``(features, targets)``, or ``None`` for no term.
    weight : the contrastive term's weight (no term at 0).
    rows : the contrastive term sees this many distinct rows drawn with ``generator`` (all rows, and no
        draw, when ``None`` or ``>= B``).

    Returns
    -------
    ``{"regression": ..., "contrastive": weight × loss}`` (``"contrastive"`` only when on).
    """
    if y is None:
        raise ValueError("the labelled batch has no targets")
    parts = {"regression": regression_loss(pred, y, regression)}
    if contrastive is not None and weight > 0:
        drawn = subsample(pred.shape[0], rows, generator)
        f, t = (feat, y) if drawn is None else (feat[drawn.to(feat.device)], y[drawn.to(feat.device)])
        parts["contrastive"] = weight * contrastive(f, t)
    return parts
