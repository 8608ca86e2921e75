"""Ordinal Entropy (Zhang et al., ICLR 2023), CLSS's labeled contrastive term."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clss.losses._common import check_choice, loss_batch, zero_loss
from clss.losses.pairwise import feature_similarity, label_distance, squares_overflow, unit_rows

VARIANTS = ("center", "pairwise")
TIGHTNESS = ("squared", "euclidean")
WEIGHT_NORMS = ("max", "range")


def _normalised_pair_weights(distances: Tensor, weight_norm: str) -> Tensor:
    """Label-distance weights ``(w − min w) / max w`` (official) or ``/ (max w − min w)``.

    A zero divisor (all pair distances equal) gives all-zero weights instead of NaN.
    """
    low, high = distances.min(), distances.max()
    divisor = high if weight_norm == "max" else high - low
    return torch.where(
        divisor > 0, (distances - low) / divisor.clamp_min(torch.finfo(distances.dtype).tiny), 0.0
    )


class OrdinalEntropyLoss(nn.Module):
    r"""Ordinal Entropy regulariser (Zhang et al., "Improving Deep Regression with Ordinal Entropy",
    ICLR 2023), in both published forms.

    ``variant="center"`` (CLSS AgeDB/UTK, needylove ``AgeEstimation``): with the sorted distinct
    targets ``u_1 < … < u_U``, raw class centres ``c_a = mean{z_i : y_i = u_a}``,
    ``p_a = c_a/‖c_a‖`` and ``ẑ_i = z_i/‖z_i‖``::

        D = mean_{a<b} w_ab ‖p_a − p_b‖₂,   w_ab = (|u_a − u_b| − min w) / max w
        e_i = ‖ẑ_i − p_{a(i)}‖²₂
        T = mean_{i : e_i > 0} e_i          (tightness="squared", variant A, CLSS)
          = mean_{i : e_i > 0} √e_i         (tightness="euclidean", variant B, needylove latest)
        L = T − D

    ``variant="pairwise"`` (CLSS IXI/synthetic, needylove root): no centres and no tightness,
    ``L = −mean_{i<j} w_ij ‖ẑ_i − ẑ_j‖₂`` with the same weight normalisation over sample pairs (the
    official random 10-row subsample is left to the caller).

    Differences from the official code (all where it returns NaN or raises; values are otherwise
    identical up to rounding): ``T = 0`` when no sample has ``e_i > 0`` (official: NaN when every
    label is unique); ``D = 0`` when ``U = 1`` (official: RuntimeError) or when the divisor of the
    weights is 0 (pairwise variant, all labels equal); coincident centres have distance 0 (the
    official ``‖x‖² + ‖y‖² − 2x·y`` clamp gives 1e-6). A batch of one sample gives exactly 0.

    Args:
        variant: ``"center"`` (default) or ``"pairwise"``.
        tightness: ``"squared"`` (default, CLSS) or ``"euclidean"``; center variant only.
        weight_norm: ``"max"`` divides the shifted label distances by their max (official, see
            OrdinalEntropy issue #9) or ``"range"`` by ``max − min``.

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` raw (unnormalised) features; views flattened.
    * ``targets``: ``[N]`` or ``[N, 1]`` scalar targets (CLSS passes standardised ``(y − μ)/σ``
      with dataset constants); multi-dimensional targets raise ``ValueError``.
    * ``weights``: ``[N]``: center variant, weighted mean in ``T`` (the centres stay unweighted);
      pairwise variant, pair weights ``a_i a_j`` in the mean. ``mask``: ``[N]`` bool rows to keep.
    * ``gather``: compute over the global batch (centres become global; the official use is per
      GPU).

    Returns a scalar.
    """

    def __init__(self, variant: str = "center", tightness: str = "squared", weight_norm: str = "max") -> None:
        super().__init__()
        name = type(self).__name__
        self.variant = check_choice(name, "variant", variant, VARIANTS)
        self.tightness = check_choice(name, "tightness", tightness, TIGHTNESS)
        self.weight_norm = check_choice(name, "weight_norm", weight_norm, WEIGHT_NORMS)

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        with loss_batch(self, features, targets, weights=weights, mask=mask, gather=gather,
                        multi_dim=False, min_samples=1) as batch:
            args = (batch.features, batch.targets[:, 0], batch.weights, batch.largest)
            return batch.finite(self._pairwise(*args) if self.variant == "pairwise" else self._center(*args))

    def _diversity(self, points: Tensor, values: Tensor, pair_weights: Tensor | None) -> Tensor:
        """``mean_{a<b} w_ab ‖p_a − p_b‖`` over the strict upper triangle (0 without pairs)."""
        if points.shape[0] < 2:
            return zero_loss(points)
        iu = torch.triu_indices(points.shape[0], points.shape[0], 1, device=points.device)
        dist = -feature_similarity(points, "neg_l2")[iu[0], iu[1]]
        w = _normalised_pair_weights(label_distance(values)[iu[0], iu[1]], self.weight_norm)
        if pair_weights is None:
            return (w * dist).mean()
        a = pair_weights[iu[0]] * pair_weights[iu[1]]
        return (a * w * dist).sum() / a.sum().clamp_min(torch.finfo(dist.dtype).tiny)

    def _pairwise(self, z: Tensor, y: Tensor, weights: Tensor | None, largest: float | None) -> Tensor:
        return -self._diversity(unit_rows(z, largest), y, weights)

    def _center(self, z: Tensor, y: Tensor, weights: Tensor | None, largest: float | None) -> Tensor:
        values, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
        sums = torch.zeros(values.shape[0], z.shape[1], dtype=z.dtype, device=z.device)
        # The centres' directions do not change when every row is divided by one constant; dividing by
        # the largest |entry| keeps the class sums finite for features near the float limit.
        safe = largest is not None and not squares_overflow(largest * z.shape[0], z)
        scaled = z if safe else z / z.detach().abs().amax().clamp_min(1)
        centres = unit_rows(sums.index_add(0, inverse, scaled) / counts[:, None].to(z.dtype),
                            largest * z.shape[0] if safe else None)
        diversity = self._diversity(centres, values, None)

        residual = (unit_rows(z, largest) - centres[inverse]).pow(2).sum(1)
        # Singleton classes (residual 0 up to the rounding of the scaling) are left out, as in the official
        # code, and so are rows that coincide with their centre.
        keep = (residual > 0) & (counts[inverse] > 1)
        if self.tightness == "euclidean":
            residual = torch.where(keep, residual, 1.0).sqrt()
        w = keep.to(z.dtype) if weights is None else weights * keep
        tight = (w * torch.where(keep, residual, 0.0)).sum() / w.sum().clamp_min(torch.finfo(z.dtype).tiny)
        return tight - diversity
