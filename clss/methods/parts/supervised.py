"""The labelled terms every method trains with: regression, plus a contrastive term on a row subsample."""

from __future__ import annotations

import torch
from torch import nn

from clss.methods.common import regression_loss, subsample


def labeled_contrastive_term(feat: torch.Tensor, y: torch.Tensor, *, contrastive: nn.Module | None,
                             weight: float, rows: int | None,
                             generator: torch.Generator) -> torch.Tensor | None:
    """``weight × contrastive(features, targets)`` on ``rows`` distinct labelled rows drawn with
    ``generator`` (all rows, and no draw, when ``rows`` is ``None`` or ``>= B``); ``None`` when the term is
    off (no loss or weight 0: nothing is drawn). ``feat`` ``[B, d]``, ``y`` ``[B]``."""
    if contrastive is None or weight <= 0:
        return None
    drawn = subsample(feat.shape[0], rows, generator)
    f, t = (feat, y) if drawn is None else (feat[drawn.to(feat.device)], y[drawn.to(feat.device)])
    return weight * contrastive(f, t)


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
        draw, when ``None`` or ``>= B``); see :func:`labeled_contrastive_term`.

    Returns
    -------
    ``{"regression": ..., "contrastive": weight × loss}`` (``"contrastive"`` only when on).
    """
    if y is None:
        raise ValueError("the labelled batch has no targets")
    parts = {"regression": regression_loss(pred, y, regression)}
    term = labeled_contrastive_term(feat, y, contrastive=contrastive, weight=weight, rows=rows,
                                    generator=generator)
    if term is not None:
        parts["contrastive"] = term
    return parts
