"""GCLSS's pieces: the stable-subset selection, label-anchored pseudo-values, the drop of rows no anchor
reaches, the joint labelled + pseudo-valued contrastive term, and the recovery diagnostics."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from clss.methods.parts.pseudo_ranks import ranks_of
from clss.seriation import (
    cross_view_perturbation,
    harmonic_batch,
    recovery_tolerance_blocks,
    select_stable_subset,
)


def kept_count(keep: float, n: int) -> int:
    """Rows the selection keeps of ``n``: ``round(keep · n)`` for a fraction ``keep <= 1``, else the count
    ``keep``; always within ``[2, n]``."""
    k = round(keep * n) if keep <= 1 else int(keep)
    return max(2, min(k, n))


def stable_subset(feat0: torch.Tensor, feat1: torch.Tensor, keep: float, *, perturbation: str,
                  objective: str) -> torch.Tensor:
    """Indices of the ``kept_count(keep, n)`` rows whose similarities vary least (``objective="min"``) or
    most (``"max_faithful"``) between two passes ``feat0``, ``feat1`` ``[n, d]``: the stable-subset DP on
    the cross-view perturbation (``perturbation``: ``"cv"`` or ``"std"``). All rows when none is dropped."""
    n = feat0.shape[0]
    k = kept_count(keep, n)
    if k >= n:
        return torch.arange(n, device=feat0.device)
    pert = cross_view_perturbation(feat0, feat1, mode=perturbation)
    return torch.as_tensor(select_stable_subset(pert, k, objective=objective), device=feat0.device)


def anchored_targets(emb_u: torch.Tensor, emb_l: torch.Tensor, y_anchor: torch.Tensor, *,
                     negative: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-values (label scale) and pseudo-ranks ``[k]`` of unlabelled rows with embeddings ``emb_u``
    ``[k, d]`` anchored on labelled rows ``emb_l`` ``[m, d]`` with values ``y_anchor`` ``[m]``: the harmonic
    solution on the similarity blocks ``S_uu = E_u E_uᵀ``, ``S_ul = E_u E_lᵀ`` (the labelled-labelled block
    never enters it, so it is never formed). ``negative``: ``"clip"`` or ``"shift"``. No gradient flows; a
    row no anchor reaches gets a NaN value (see :func:`reachable`)."""
    emb_u, emb_l = emb_u.detach(), emb_l.detach()
    values, _ = harmonic_batch(emb_u @ emb_u.T, emb_u @ emb_l.T, y_anchor.detach(), negative=negative,
                               validate=False)
    return values, ranks_of(values)


def reachable(sel: torch.Tensor, values: torch.Tensor, ranks: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop the selected rows ``sel`` ``[k]`` whose pseudo-value is NaN (no anchor reaches them: e.g. an
    all-zero feature vector has no similarity to anything). Returns (kept positions in ``sel``, the kept
    ``sel``, their values, their ranks re-numbered 0..k'-1)."""
    ok = torch.isfinite(values)
    if bool(ok.all()):
        return torch.arange(sel.shape[0], device=sel.device), sel, values, ranks
    pos = ok.nonzero().squeeze(-1)
    values = values[pos]
    return pos, sel[pos], values, ranks_of(values)


def anchored_contrastive_terms(pred_u: torch.Tensor, emb_u: torch.Tensor, values: torch.Tensor,
                               ranks: torch.Tensor, feat_l: torch.Tensor, y_l: torch.Tensor, *,
                               loss: nn.Module, consistency_loss: nn.Module, rank_weight: float,
                               consistency_weight: float, pseudo_weight: float) -> dict[str, torch.Tensor]:
    """A contrastive loss over labelled rows (true targets ``y_l``, weight 1) and unlabelled rows
    (pseudo-values, weight ``pseudo_weight``), plus L_UC on the pseudo-ranks.

    Both kinds of row enter ``loss`` as unit embeddings: ``emb_u`` ``[k, d]`` are already averages of unit
    embeddings, and the labelled features ``feat_l`` ``[m, d]`` are normalised alike, so that the two share
    one scale whatever the scale of the model's features. Returns ``{"unlabeled_rank": ...,
    "unlabeled_consistency": ...}``, each only when its weight is on (L_UC only with the first).
    """
    parts: dict[str, torch.Tensor] = {}
    if rank_weight > 0:
        feats = torch.cat([F.normalize(feat_l, dim=-1), emb_u])
        targets = torch.cat([y_l, values.to(y_l.dtype)])
        weights = torch.cat([torch.ones_like(y_l), torch.full_like(values, pseudo_weight)])
        parts["unlabeled_rank"] = rank_weight * loss(feats, targets, weights=weights)
        if consistency_weight > 0:
            parts["unlabeled_consistency"] = consistency_weight * consistency_loss(pred_u, ranks)
    return parts


def perturbation_norm(p0: torch.Tensor, p1: torch.Tensor) -> float:
    """``‖P₁P₁ᵀ − P₀P₀ᵀ‖₂`` for embeddings ``[n, d]`` of two passes, via the rows that changed.

    When only k rows differ (changed rows first) the difference is ``[[D, B], [Bᵀ, 0]]``; with ``Bᵀ = QR``
    it has the nonzero spectrum of ``[[D, Rᵀ], [R, 0]]``, a (2k)-sized symmetric problem instead of an
    n-sized one.
    """
    changed = (p0 != p1).any(-1)
    c = changed.nonzero().squeeze(-1)
    if c.numel() == 0:
        return 0.0
    if 2 * c.numel() >= p0.shape[0]:  # no saving: the full matrix
        return float(torch.linalg.eigvalsh(p1 @ p1.T - p0 @ p0.T).abs().max())
    rows = p1[c] @ p1.T - p0[c] @ p0.T  # the changed rows of the difference, [k, n]
    u = (~changed).nonzero().squeeze(-1)
    r = torch.linalg.qr(rows[:, u].T, mode="r")[1]
    small = torch.zeros(c.numel() + r.shape[0], c.numel() + r.shape[0], dtype=p0.dtype, device=p0.device)
    small[: c.numel(), : c.numel()] = rows[:, c]
    small[c.numel():, : c.numel()] = r
    small[: c.numel(), c.numel():] = r.T
    # spectral norm of a symmetric matrix: its largest |eigenvalue| (no SVD needed)
    return float(torch.linalg.eigvalsh(small).abs().max())


def recovery_diagnostics(p0_u: torch.Tensor, p1_u: torch.Tensor, p0_l: torch.Tensor, p1_l: torch.Tensor,
                         *, negative: str) -> dict[str, float]:
    """The recovery tolerance of the anchored system against the measured perturbation between two passes,
    from unit embeddings of the kept unlabelled rows (``p0_u``, ``p1_u`` ``[k, d]``) and the labelled rows
    (``p0_l``, ``p1_l`` ``[m, d]``), in float64. ``{}`` when either set is empty."""
    if p0_u.shape[0] == 0 or p0_l.shape[0] == 0:
        return {}
    p0 = torch.cat([p0_u, p0_l]).detach().double()
    p1 = torch.cat([p1_u, p1_l]).detach().double()
    mean_u, mean_l = ((p0_u + p1_u) / 2).detach().double(), ((p0_l + p1_l) / 2).double()
    delta = recovery_tolerance_blocks(mean_u @ mean_u.T, mean_u @ mean_l.T, negative=negative)
    measured = perturbation_norm(p0, p1)
    return {"recovery_tolerance": delta, "perturbation": measured,
            "recovery_guaranteed": float(measured <= delta)}
