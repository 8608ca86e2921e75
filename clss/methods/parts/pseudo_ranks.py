"""CLSS's pseudo-ranks and the terms that train on pseudo-targets (L_UR, L_UC)."""

from __future__ import annotations

import torch
from torch import nn

from clss.losses import PseudoRankPredictionLoss, PseudoRankSimilarityLoss
from clss.losses.pairwise import feature_similarity
from clss.methods.common import contrastive_loss
from clss.seriation import seriate_batch


@torch.no_grad()
def seriation_ranks(feat: torch.Tensor) -> torch.Tensor:
    """Pseudo-ranks ``[n]`` (0..n-1, in ``feat``'s dtype) of rows with features ``feat`` ``[n, d]``: the
    spectral seriation (Fiedler vector of ``L = D − S``) of their cosine similarities, negative entries
    shifted. No gradient flows. ``feat`` should be float32 or float64 (half precision is cast up first)."""
    sim = feature_similarity(feat.detach(), "cosine")
    _, ranks = seriate_batch(sim, negative="shift", validate=False)  # built here: well formed
    return ranks.to(feat.dtype)


def ranks_of(values: torch.Tensor) -> torch.Tensor:
    """Ranks 0..k-1 of ``values`` ``[k]`` (ties in index order), in the values' dtype."""
    return torch.argsort(torch.argsort(values, stable=True)).to(values.dtype)


def pseudo_target_losses(unlabeled_loss: str, *, lambda_val: float, oe_variant: str
                         ) -> tuple[nn.Module, nn.Module]:
    """The loss modules that train on pseudo-targets: L_UR (``unlabeled_loss="rank"``, the papers) or a
    contrastive loss of :mod:`clss.losses` by name fed the pseudo-targets, and L_UC."""
    rank = (PseudoRankSimilarityLoss(lambda_val=lambda_val) if unlabeled_loss == "rank"
            else contrastive_loss(unlabeled_loss, oe_variant=oe_variant, lambda_val=lambda_val))
    assert rank is not None  # the parameter's choices exclude "none"
    return rank, PseudoRankPredictionLoss(lambda_val=lambda_val)


def pseudo_rank_terms(pred: torch.Tensor, feat: torch.Tensor, targets: torch.Tensor, *,
                      rank_loss: nn.Module, consistency_loss: nn.Module, rank_weight: float,
                      consistency_weight: float) -> dict[str, torch.Tensor]:
    """L_UR (``rank_loss`` of the features against the pseudo-targets) and L_UC (``consistency_loss`` of the
    predictions against them), weighted; L_UC runs only when L_UR does (as in the official code).

    ``pred`` ``[k]``, ``feat`` ``[k, d]``, ``targets`` ``[k]`` (pseudo-ranks or pseudo-values; they carry
    no gradient). Returns ``{"unlabeled_rank": ..., "unlabeled_consistency": ...}``, each only when on.
    """
    parts: dict[str, torch.Tensor] = {}
    if rank_weight > 0:
        parts["unlabeled_rank"] = rank_weight * rank_loss(feat, targets)
        if consistency_weight > 0:
            parts["unlabeled_consistency"] = consistency_weight * consistency_loss(pred, targets)
    return parts
