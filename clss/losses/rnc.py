"""Rank-N-Contrast (Zha et al., NeurIPS 2023), by sorting: O(n² log n) time, O(n²) memory."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    check_temperature,
    loss_batch,
    reduce_anchors,
)
from clss.losses.pairwise import LABEL_DISTANCES, feature_similarity, label_distance, off_diagonal

RNC_FEATURE_SIMS = {"l2": "neg_l2", "cosine": "cosine"}


class RnCLoss(nn.Module):
    r"""Rank-N-Contrast loss (Zha et al., "Rank-N-Contrast: Learning Continuous Representations for
    Regression", NeurIPS 2023).

    With ``n`` view-major rows, similarities ``s_ij`` and label distances ``D_ij``, every ordered
    pair ``i ≠ j`` treats ``j`` as the positive and every sample at least as far in label space as
    negative::

        S_ij = {k ≠ i : D_ik ≥ D_ij}                  (contains j and every tie)
        ℓ_ij = −s_ij + log Σ_{k∈S_ij} exp(s_ik)
        L    = 1/(n(n−1)) Σ_i Σ_{j≠i} ℓ_ij            (reduction="mean")

    Computed per anchor by sorting the row by ``D``, a reverse cumulative log-sum-exp, and reading
    it at the first position of each tie group: identical values to the definition (ties
    included) in O(n² log n) time and O(n²) memory, where the official loop needs O(n³) autograd
    memory.

    Args:
        temperature: τ (official 2.0).
        label_diff: ``"l1"`` (official; ``Σ_c |y_ic − y_jc|``) or ``"l2"`` (Euclidean; the same
            loss for scalar targets, different for ``[N, m]``).
        feature_sim: ``"l2"`` (official; ``s_ij = −‖z_i − z_j‖₂/τ``) or ``"cosine"``
            (``cos(z_i, z_j)/τ``; use a small τ such as 0.1).
        reduction: ``"mean"`` (official; weighted mean over anchors of ``mean_j ℓ_ij``), ``"sum"``
            or ``"none"`` (``[n]``).

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` (official: ``[B, 2, d]`` raw encoder output, no
      normalisation); views are flattened view-major and targets repeated. Any float dtype/device;
      half precision is computed in float32.
    * ``targets``: ``[N]`` or ``[N, m]`` (true targets, or pseudo-targets from
      :mod:`clss.seriation` for unlabeled rows; only their order by distance matters, so the loss
      is invariant to translating and positively scaling them).
    * ``weights``: ``[N]`` anchor weights (e.g. to down-weight pseudo-labeled anchors; every row
      still serves as positive/negative of the others); ``mask``: ``[N]`` bool rows to keep.
    * ``gather``: use the global batch under ``torch.distributed``.

    Needs at least 2 rows (``ValueError`` otherwise). One sample with two views gives exactly 0;
    all targets tied give an InfoNCE-like loss (not 0). Duplicate features have gradient 0, not NaN.
    """

    def __init__(
        self,
        temperature: float = 2.0,
        label_diff: str = "l1",
        feature_sim: str = "l2",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.temperature = check_temperature(name, "temperature", temperature)
        self.label_diff = check_choice(name, "label_diff", label_diff, LABEL_DISTANCES)
        self.feature_sim = check_choice(name, "feature_sim", feature_sim, tuple(RNC_FEATURE_SIMS))
        self.reduction = check_choice(name, "reduction", reduction, REDUCTIONS)

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        with loss_batch(self, features, targets, weights=weights, mask=mask,
                        gather=gather) as batch:
            kind = RNC_FEATURE_SIMS[self.feature_sim]
            sim = feature_similarity(batch.features, kind, largest=batch.largest)
            sim = off_diagonal(sim / self.temperature)
            dist = off_diagonal(label_distance(batch.targets, self.label_diff))
            dist_sorted, order = dist.sort(dim=1)
            sim_sorted = sim.gather(1, order)
            # tail[p] = log Σ_{q ≥ p} exp(sim_sorted[q]): the denominator when position p is the
            # positive, except that ties must start their sum at the first member of the group.
            tail = torch.logcumsumexp(sim_sorted.flip(1), dim=1).flip(1)
            first_of_tie = torch.searchsorted(dist_sorted, dist_sorted, side="left")
            per_pair = tail.gather(1, first_of_tie) - sim_sorted
            return batch.finite(reduce_anchors(per_pair.mean(1), batch.weights, self.reduction), sim)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, label_diff={self.label_diff!r}, "
            f"feature_sim={self.feature_sim!r}, reduction={self.reduction!r}"
        )
