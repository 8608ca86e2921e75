"""RankUp's Auxiliary Ranking Classifier (ARC): regression ranking as a two-class problem over row pairs.

Huang et al., "RankUp: Boosting Semi-Supervised Regression with an Auxiliary Ranking Classifier", NeurIPS
2024. A linear head gives each row two scores ``a_i`` ``[B, 2]``; the pair ``(i, j)`` has logits
``z_ij = a_j − a_i`` ``[B, B, 2]``, class 0 meaning "row j ranks above row i". Labelled pairs learn soft
targets; unlabelled pairs learn, FixMatch-style, the confident hard decisions of a weak view on a strong view.
Every pair is kept, the diagonal included (its logits are 0: target ½/½ on labelled rows, never confident on
unlabelled rows), and losses average over all ``B²`` pairs, as the official code does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def arc_head(model: nn.Module) -> nn.Linear:
    """RankUp's auxiliary ranking classifier: ``Linear(feature_dim, 2)`` on the model's feature, Xavier-normal
    weights and zero bias (as the official code), in the model's dtype."""
    head = nn.Linear(model.feature_dim, 2)
    nn.init.xavier_normal_(head.weight)
    nn.init.zeros_(head.bias)
    return head.to(next(model.parameters()).dtype)


def pair_logits(scores: torch.Tensor) -> torch.Tensor:
    """Pairwise logits ``z[i, j] = scores[j] − scores[i]`` ``[B, B, 2]`` from the ARC scores ``[B, 2]``."""
    if scores.dim() != 2 or scores.shape[1] != 2:
        raise ValueError(f"ARC scores must have shape [B, 2], got {list(scores.shape)}")
    return scores.unsqueeze(0) - scores.unsqueeze(1)


def pair_targets(y: torch.Tensor) -> torch.Tensor:
    """Soft pair targets ``[B, B, 2]`` of targets ``y`` ``[B]``: class 0 has ``½ (1 + sign(y_j − y_i))``
    (1 when row j is above row i, ½ on ties), class 1 the rest."""
    if y.dim() != 1:
        raise ValueError(f"targets must have shape [B], got {list(y.shape)}")
    above = 0.5 * (1.0 + torch.sign(y.unsqueeze(0) - y.unsqueeze(1)))
    return torch.stack((above, 1.0 - above), dim=-1)


def labeled_pair_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of pair ``logits`` ``[B, B, 2]`` against soft ``targets`` ``[B, B, 2]``, averaged over
    the ``B²`` pairs."""
    return -(targets * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def unlabeled_pair_loss(weak_logits: torch.Tensor, strong_logits: torch.Tensor,
                        p_cutoff: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch on pairs: the weak view's pair probabilities (no gradient) give hard pseudo-labels (argmax)
    and a mask ``max p >= p_cutoff``; the strong view's pair logits learn them by cross-entropy.

    Parameters
    ----------
    weak_logits, strong_logits : pair logits ``[B, B, 2]`` of the same rows under two views.
    p_cutoff : confidence threshold in (0, 1] (0.95 in RankUp).

    Returns
    -------
    ``(loss, mask)``: the masked cross-entropy averaged over all ``B²`` pairs (masked pairs count as 0, as in
    USB's ``cls_consistency_loss``), and the mask ``[B, B]`` (float, 1 for the pairs used).
    """
    probs = torch.softmax(weak_logits.detach(), dim=-1)
    confidence, pseudo = probs.max(dim=-1)
    mask = (confidence >= p_cutoff).to(strong_logits.dtype)
    ce = -F.log_softmax(strong_logits, dim=-1).gather(-1, pseudo.unsqueeze(-1)).squeeze(-1)
    return (ce * mask).mean(), mask
