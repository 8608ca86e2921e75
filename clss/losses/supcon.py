"""Supervised contrastive loss (Khosla et al., NeurIPS 2020), the classification baseline."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    check_temperature,
    loss_batch,
    reduce_anchors,
    zero_loss,
)
from clss.losses.pairwise import feature_similarity

CONTRAST_MODES = ("all", "one")


class SupConLoss(nn.Module):
    r"""Supervised contrastive loss (Khosla et al., "Supervised Contrastive Learning",
    NeurIPS 2020).

    With view-major rows ``z_1 … z_n`` (``n = V·N``), ``s_ik = z_i·z_k/τ`` and positives
    ``P(i) = {k ≠ i : c_k = c_i}``::

        ℓ_i = −(τ/τ_base) · (1/|P(i)|) Σ_{p∈P(i)} [ s_ip − log Σ_{k≠i} exp(s_ik) ]
        L   = mean over anchors i

    Anchors are all rows (``contrast_mode="all"``) or the rows of view 0 (``"one"``); the contrast
    set is always every row. With ``targets=None`` (and no ``pair_mask``) the positives are the
    other views of the same sample: SimCLR / NT-Xent. Anchors without positives contribute 0 and
    still count in the mean (official code since its Dec 2023 NaN fix); a batch of one row gives 0.

    Features are used as given: L2-normalise them first (the official projection head does).

    Args:
        temperature: τ (official default 0.07; README SupCon 0.1, SimCLR 0.5).
        base_temperature: τ_base (0.07); the loss is scaled by τ/τ_base.
        contrast_mode: ``"all"`` or ``"one"``.
        reduction: ``"mean"`` (weighted mean over anchors), ``"sum"`` or ``"none"``.

    Call: ``loss(features, targets=None, *, pair_mask=None, weights=None, mask=None,
    gather=False)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]``; any float dtype/device (half → float32).
    * ``targets``: ``[N]`` or ``[N, m]`` labels, equal rows are positives (floats compare exactly,
      so bin continuous targets first); ``None`` for SimCLR.
    * ``pair_mask``: ``[N, N]`` positive mask between samples (may be asymmetric), replaces
      ``targets``; passing both raises ``ValueError``; not available with ``gather``.
    * ``weights``: ``[N]`` anchor weights; ``mask``: ``[N]`` bool rows to keep.
    * ``gather``: use the global batch under ``torch.distributed``.
    """

    def __init__(
        self,
        temperature: float = 0.07,
        base_temperature: float = 0.07,
        contrast_mode: str = "all",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.temperature = check_temperature(name, "temperature", temperature)
        self.base_temperature = check_temperature(name, "base_temperature", base_temperature)
        self.contrast_mode = check_choice(name, "contrast_mode", contrast_mode, CONTRAST_MODES)
        self.reduction = check_choice(name, "reduction", reduction, REDUCTIONS)

    def forward(
        self,
        features: Tensor,
        targets: Tensor | None = None,
        *,
        pair_mask: Tensor | None = None,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        name = type(self).__name__
        if targets is not None and pair_mask is not None:
            raise ValueError(f"{name}: pass either targets or pair_mask, not both")
        if pair_mask is not None and gather:
            raise ValueError(f"{name}: pair_mask cannot be gathered; pass targets instead")
        with loss_batch(self, features, targets, weights=weights, mask=mask, gather=gather, kind="labels",
                        min_samples=1) as batch:
            n = batch.n
            eye = torch.eye(n, dtype=torch.bool, device=batch.features.device)
            if batch.targets is not None:
                positive = (batch.targets[:, None, :] == batch.targets[None, :, :]).all(-1)
            elif pair_mask is not None:
                n_samples = features.shape[0]
                if pair_mask.shape != (n_samples, n_samples):
                    raise ValueError(
                        f"{name}: pair_mask must have shape [N, N] = [{n_samples}, {n_samples}], "
                        f"got {tuple(pair_mask.shape)}"
                    )
                positive = pair_mask.to(device=eye.device, dtype=torch.bool)
                positive = positive[batch.sample][:, batch.sample]
            else:
                positive = batch.sample[:, None] == batch.sample[None, :]
            positive = positive & ~eye

            if n < 2:
                return zero_loss(batch.features)
            logits = feature_similarity(batch.features, "dot") / self.temperature
            log_denominator = torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1)
            log_prob = logits - log_denominator[:, None]
            n_positive = positive.sum(1)
            mean_log_prob = torch.where(positive, log_prob, 0.0).sum(1) / n_positive.clamp_min(1)
            per_anchor = -(self.temperature / self.base_temperature) * mean_log_prob
            weights = batch.weights
            if self.contrast_mode == "one":
                anchors = batch.view == 0
                per_anchor = per_anchor[anchors]
                weights = None if weights is None else weights[anchors]
            return batch.finite(reduce_anchors(per_anchor, weights, self.reduction), logits)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, base_temperature={self.base_temperature}, "
            f"contrast_mode={self.contrast_mode!r}, reduction={self.reduction!r}"
        )
