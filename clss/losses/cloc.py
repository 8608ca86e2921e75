"""CLOC's multi-margin N-pair loss (MMNP; Pitawela, Carneiro, Chen, CVPR 2025) with cumulative
learnable margins, by sorting: O(n² log n) time and O(n²) memory instead of an [n, n, n] hinge."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    integer_indices,
    loss_batch,
    reduce_anchors,
)
from clss.losses.pairwise import feature_similarity

NORMALIZATIONS = ("paper", "mean", "official")


class MultiMarginNPairLoss(nn.Module):
    r"""Multi-margin N-pair loss of CLOC (Pitawela, Carneiro, Chen, "CLOC: Contrastive Learning
    for Ordinal Classification with Multi-Margin N-pair Loss", CVPR 2025).

    ``K`` ordered classes have ``K − 1`` gaps ``m_h`` between classes ``h`` and ``h + 1``
    (``h = 0 … K−2``); learnable gaps are ``m_h = ρ + softplus(θ_h)``, so ``m_h > ρ`` (eq. 1's
    constraint; the official code has ``ρ = 0``). Class positions ``p_c = Σ_{h<c} m_h`` give the
    **cumulative** pair margin ``M_ab = |p_a − p_b|``. With ``C_ij = cos(z_i, z_j)``, positives
    ``P_i = {j ≠ i : c_j = c_i}`` and negatives ``N_i = {k : c_k ≠ c_i}`` (eq. 2)::

        S_i = Σ_{j∈P_i} Σ_{k∈N_i} max(0, C_ik − C_ij + M_{c_i c_k})
        ℓ_i = S_i                       normalization="paper"    (eq. 2, a sum over pairs)
              S_i / (|P_i||N_i|)        normalization="mean"     (mean over the pairs)
              S_i / (|P_i||N_i|²)       normalization="official" (the official code's divisor)
        L   = mean over anchors i       (eq. 1's 1/N; anchors with empty P_i or N_i give 0 and count)

    Computed per anchor by sorting the positives' similarities and reading, for each negative,
    how many positives fall below ``C_ik + M`` and their prefix sum: the hinge sum exactly, in
    O(n² log n) time and O(n²) memory (the official loop keeps O(n³) for autograd).

    Two-phase training (paper §3.3): phase 1 optimises the model and the margins jointly (add
    ``loss.parameters()`` to the optimiser), phase 2 freezes the margins with
    :meth:`freeze_margins` (or builds a fresh loss with ``fixed_margins`` from :attr:`margins`).

    Args:
        num_classes: ``K`` ≥ 2.
        min_margin: ``ρ`` ≥ 0, the lower bound of every learnable gap (paper experiments: 0).
        init: learnable gaps start uniform in ``[low, high]`` (paper: ``(0.5, 1.0)``); needs
            ``ρ < low ≤ high``. ``(1.0, 1.0)`` with ``learn_margins=False`` is the paper's
            "all margins 1" ablation.
        learn_margins: ``False`` fixes every gap at its initial value.
        normalization: ``"paper"``, ``"mean"`` or ``"official"`` (see above).
        fixed_margins: ``{h: m_h}`` controlled gaps, fixed and not learned (post-softplus values,
            ``≥ ρ``), e.g. a large margin at a critical decision boundary (paper §4.4).
        reduction: ``"mean"`` (weighted mean over anchors), ``"sum"`` or ``"none"`` (``[n]``).

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` embeddings, any scale (cosine inside); views are
      flattened view-major and are positives of each other. Any float dtype/device.
    * ``targets``: ``[N]`` class indices in ``[0, K)`` (integer, or integral floats); anything
      else raises ``ValueError``.
    * ``weights``: ``[N]`` anchor weights; ``mask``: ``[N]`` bool rows to keep; ``gather``: the
      global batch under ``torch.distributed`` (the margins are ordinary parameters, synced by DDP).

    All classes equal or all distinct gives 0 with zero gradients (no positive-negative pairs).
    """

    def __init__(
        self,
        num_classes: int,
        min_margin: float = 0.0,
        init: tuple[float, float] = (0.5, 1.0),
        learn_margins: bool = True,
        normalization: str = "paper",
        fixed_margins: dict[int, float] | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"{name}: num_classes must be an integer ≥ 2, got {num_classes}")
        self.num_classes = int(num_classes)
        self.min_margin = float(min_margin)
        if not 0 <= self.min_margin < math.inf:
            raise ValueError(f"{name}: min_margin must be finite and ≥ 0, got {min_margin}")
        low, high = (float(v) for v in init)
        if not self.min_margin < low <= high < math.inf:
            raise ValueError(f"{name}: init must satisfy min_margin < low ≤ high < inf, got {init}")
        self.normalization = check_choice(name, "normalization", normalization, NORMALIZATIONS)
        self.reduction = check_choice(name, "reduction", reduction, REDUCTIONS)

        gaps = torch.empty(self.num_classes - 1).uniform_(low, high)
        fixed = torch.full_like(gaps, not learn_margins, dtype=torch.bool)
        for boundary, value in (fixed_margins or {}).items():
            if not 0 <= boundary < self.num_classes - 1:
                raise ValueError(
                    f"{name}: fixed_margins boundary {boundary} is not in [0, {self.num_classes - 1})"
                )
            if not self.min_margin <= value < math.inf:
                raise ValueError(f"{name}: fixed margin {value} must be finite and ≥ min_margin")
            gaps[boundary], fixed[boundary] = value, True
        self.register_buffer("fixed_gaps", torch.where(fixed, gaps, 0.0))
        self.register_buffer("learnable_index", (~fixed).nonzero().squeeze(1))
        excess = gaps[~fixed] - self.min_margin
        # Inverse softplus, the identity where torch's softplus is (threshold 20).
        raw = torch.where(excess > 20, excess, excess + torch.log(-torch.expm1(-excess)))
        self.raw_margins = nn.Parameter(raw)

    @property
    def margins(self) -> Tensor:
        """``[K − 1]`` current gaps ``m_h`` between classes ``h`` and ``h + 1`` (a detached copy,
        for interpretation: a large gap marks a boundary that is hard to separate)."""
        return self._gaps().detach()

    def margin_matrix(self) -> Tensor:
        """``[K, K]`` cumulative pair margins ``M_ab = |p_a − p_b|`` (differentiable)."""
        positions = F.pad(self._gaps().cumsum(0), (1, 0))
        return (positions[:, None] - positions[None, :]).abs()

    def freeze_margins(self) -> MultiMarginNPairLoss:
        """Phase 2 of CLOC's schedule: stop learning the margins (in place; returns ``self``).
        The optimiser may keep the parameter: it gets no gradient any more."""
        self.raw_margins.requires_grad_(False)
        self.raw_margins.grad = None
        return self

    def _gaps(self) -> Tensor:
        learned = self.min_margin + F.softplus(self.raw_margins)
        return self.fixed_gaps.index_put((self.learnable_index,), learned)

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        name = type(self).__name__
        with loss_batch(self, features, targets, weights=weights, mask=mask, gather=gather, kind="labels",
                        multi_dim=False, min_samples=1, parameters={"margins": self.raw_margins}) as batch:
            classes = integer_indices(name, batch.targets[:, 0], self.num_classes, "integer class indices")
            n = batch.n
            cos = feature_similarity(batch.features, "cosine", largest=batch.largest)
            same = classes[:, None] == classes[None, :]
            positive = same & ~torch.eye(n, dtype=torch.bool, device=cos.device)
            negative = ~same
            # Σ_j max(0, a − C_ij) over positives j = (#C_ij < a)·a − Σ_{C_ij < a} C_ij.
            keys, order = cos.detach().masked_fill(~positive, math.inf).sort(dim=1)
            sorted_pos = torch.where(positive.gather(1, order), cos.gather(1, order), 0.0)
            prefix = F.pad(sorted_pos.cumsum(1), (1, 0))
            shifted = cos + self.margin_matrix().to(cos.dtype)[classes][:, classes]
            below = torch.searchsorted(keys, shifted.detach(), side="left")
            hinge = below * shifted - prefix.gather(1, below)
            total = torch.where(negative, hinge, 0.0).sum(1)
            n_pos, n_neg = positive.sum(1), negative.sum(1)
            if self.normalization == "mean":
                total = total / (n_pos * n_neg).clamp_min(1)
            elif self.normalization == "official":
                total = total / (n_pos * n_neg * n_neg).clamp_min(1)
            return batch.finite(reduce_anchors(total, batch.weights, self.reduction))

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, min_margin={self.min_margin}, "
            f"normalization={self.normalization!r}, reduction={self.reduction!r}"
        )
