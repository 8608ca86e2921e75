"""RankSim (Gong et al., ICML 2022) and the CLSS unlabeled ranking losses L_UR and L_UC.

All three match, anchor by anchor, the blackbox rank of a differentiable similarity row against the
ranks of the (negated) target distances of that anchor, and sum the per-anchor MSEs. The official
code loops over anchors; here one batched rank call handles every row (identical values, because
the rank and its blackbox backward act row by row).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    check_positive,
    loss_batch,
    reduce_anchors,
)
from clss.losses.pairwise import LABEL_DISTANCES, feature_similarity, label_distance
from clss.losses.ranking import TIES, rank_matching_loss, unique_representatives


class _RankMatchingLoss(nn.Module):
    _name = "RankMatchingLoss"

    def __init__(
        self,
        lambda_val: float,
        reduction: str,
        label_diff: str,
        deduplicate: bool,
        target_ties: str,
    ) -> None:
        super().__init__()
        self.lambda_val = check_positive(self._name, "lambda_val", lambda_val)
        self.reduction = check_choice(self._name, "reduction", reduction, REDUCTIONS)
        self.label_diff = check_choice(self._name, "label_diff", label_diff, LABEL_DISTANCES)
        self.deduplicate = bool(deduplicate)
        self.target_ties = check_choice(self._name, "target_ties", target_ties, TIES)

    _bounded_scores = False

    def _scores(self, features: Tensor, largest: float | None) -> Tensor:
        raise NotImplementedError

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        with loss_batch(self, features, targets, weights=weights, mask=mask, gather=gather,
                        min_samples=1) as batch:
            z, y, w = batch.features, batch.targets, batch.weights
            if self.deduplicate:
                keep = unique_representatives(y, generator)
                z, y = z[keep], y[keep]
                w = None if w is None else w[keep]
            scores = self._scores(z, batch.largest)
            per_anchor = rank_matching_loss(
                scores, -label_distance(y, self.label_diff), self.lambda_val, self.target_ties
            )
            # Ranks of overflowed scores would be arbitrary while the value stays finite (cosines cannot).
            unbounded = () if self._bounded_scores else (scores,)
            return batch.finite(reduce_anchors(per_anchor, w, self.reduction), *unbounded)

    def extra_repr(self) -> str:
        return (
            f"lambda_val={self.lambda_val}, reduction={self.reduction!r}, "
            f"label_diff={self.label_diff!r}, deduplicate={self.deduplicate}, "
            f"target_ties={self.target_ties!r}"
        )


class RankSimLoss(_RankMatchingLoss):
    r"""RankSim ranking-similarity regulariser (Gong et al., ICML 2022).

    For every anchor ``i`` of the (deduplicated) batch of ``U`` rows::

        ρ^z_i = blackbox_rank(cos(z_i, z_·), λ)          (feature-similarity ranks)
        ρ^y_i = rank_normalised(−D(y_i, y_·))           (label-similarity ranks, constant)
        L     = Σ_i mean_j (ρ^z_ij − ρ^y_ij)²            (reduction="sum", the official one)

    ``rank_normalised`` gives the most similar entry ``1/U`` (the anchor itself) and the least
    similar ``U/U``; see :mod:`clss.losses.ranking` for the blackbox backward and ties.

    Args:
        lambda_val: blackbox interpolation strength λ (README: 2.0; argparse default 1.0).
        reduction: ``"sum"`` over anchors (official), ``"mean"`` (weighted mean over anchors) or
            ``"none"`` (``[U]``).
        label_diff: ``"l1"`` or ``"l2"`` distance for ``[N, m]`` targets (an extension: the official
            code supports scalar targets only; both agree for scalars).
        deduplicate: keep one random row per distinct target before ranking (official: True). It
            reduces label ties and boosts rare targets. Rows come out in sorted target order, which
            fixes how index ties of equal label distances are broken.
        target_ties: tie rule for the label ranks, ``"index"`` (official) or ``"average"``.

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False, generator=None)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` (views flattened view-major; targets repeated).
      Any float dtype/device; half precision is computed in float32.
    * ``targets``: ``[N]`` or ``[N, m]``; true targets and pseudo-targets may be mixed.
    * ``weights``: ``[N]`` per-anchor weights; ``mask``: ``[N]`` bool rows to keep.
    * ``gather``: use the global batch under ``torch.distributed`` (every rank computes the same
      loss; with ``deduplicate`` pass identically seeded ``generator``s on all ranks).
    * ``generator``: RNG for the deduplication draw.

    Returns a scalar (``"none"``: ``[U]``). A single distinct target gives exactly 0 (``U = 1``).
    The gradient is the blackbox gradient, not the (zero) true gradient of the ranks.
    """

    _name = "RankSimLoss"

    def __init__(
        self,
        lambda_val: float = 2.0,
        reduction: str = "sum",
        label_diff: str = "l1",
        deduplicate: bool = True,
        target_ties: str = "index",
    ) -> None:
        super().__init__(lambda_val, reduction, label_diff, deduplicate, target_ties)

    _bounded_scores = True

    def _scores(self, features: Tensor, largest: float | None) -> Tensor:
        return feature_similarity(features, "cosine", largest=largest)


class PseudoRankSimilarityLoss(RankSimLoss):
    r"""CLSS unlabeled ranking loss L_UR: feature-similarity ranks against pseudo-rank distances.

    With cosine similarities ``S`` of the unlabeled features and pseudo-ranks ``π`` (e.g. the
    spectral-seriation ranks of :mod:`clss.seriation`)::

        L_UR = Σ_i MSE(blackbox_rank(S_i·, λ), rank_normalised(−|π_i − π_·|))

    This is :class:`RankSimLoss` without deduplication (CLSS pseudo-ranks are distinct, so the
    official dedup branch never fires; enable ``deduplicate`` for real-valued pseudo-targets with
    ties, e.g. GCLSS harmonic values). The loss depends on ``|π_i − π_j|`` only, hence not on the
    orientation of the seriation. Pseudo-rank distances tie by construction (``j = i ± 1``);
    ``target_ties="index"`` reproduces the official arbitrary (index) tie-break, ``"average"``
    gives tied neighbours the same target.

    Call: ``loss(features, pseudo_ranks, *, weights=None, mask=None, gather=False, generator=None)``
    with ``features`` ``[N, d]``/``[N, V, d]`` and ``pseudo_ranks`` ``[N]`` (ranks, positions, or
    true targets for labeled rows mixed in). Defaults: λ = 2, ``reduction="sum"`` (official).
    """

    _name = "PseudoRankSimilarityLoss"

    def __init__(
        self,
        lambda_val: float = 2.0,
        reduction: str = "sum",
        label_diff: str = "l1",
        deduplicate: bool = False,
        target_ties: str = "index",
    ) -> None:
        super().__init__(lambda_val, reduction, label_diff, deduplicate, target_ties)


class PseudoRankPredictionLoss(_RankMatchingLoss):
    r"""CLSS unlabeled consistency loss L_UC: prediction-similarity ranks against pseudo-ranks.

    With scalar predictions ``ŷ`` of the unlabeled rows and pseudo-ranks ``π``::

        P_ij = −|ŷ_i − ŷ_j|
        L_UC = Σ_i MSE(blackbox_rank(P_i·, λ), rank_normalised(−|π_i − π_·|))

    The gradient reaches the regression head through ``ŷ``; ``π`` is a constant.

    Call: ``loss(predictions, pseudo_ranks, *, weights=None, mask=None, gather=False,
    generator=None)`` with ``predictions`` ``[N]`` or ``[N, 1]`` (``[N, k]`` uses the L1 distance
    of the k outputs) and ``pseudo_ranks`` ``[N]``. Defaults as :class:`PseudoRankSimilarityLoss`.
    """

    _name = "PseudoRankPredictionLoss"

    def __init__(
        self,
        lambda_val: float = 2.0,
        reduction: str = "sum",
        label_diff: str = "l1",
        deduplicate: bool = False,
        target_ties: str = "index",
    ) -> None:
        super().__init__(lambda_val, reduction, label_diff, deduplicate, target_ties)

    def _scores(self, features: Tensor, largest: float | None) -> Tensor:
        return -label_distance(features, "l1")

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        if isinstance(features, Tensor) and features.dim() == 1:
            features = features[:, None]
        return super().forward(
            features, targets, weights=weights, mask=mask, gather=gather, generator=generator
        )
