"""Representation losses for (semi-supervised) deep regression.

Every loss is a ``torch.nn.Module`` called as ``loss(features, targets, ...)`` with ``features``
of shape ``[N, d]`` or ``[N, V, d]`` (``V`` views, flattened view-major) and ``targets`` of shape
``[N]`` or ``[N, m]``. All accept ``weights=`` (per-row anchor weights), ``mask=`` (rows to
keep, e.g. unlabeled rows without pseudo-targets) and ``gather=True`` (global batch under
``torch.distributed``, see :mod:`clss.distributed`). See ``docs/losses.md``.

Shared pieces: :mod:`clss.losses.pairwise` (label distances, feature similarities) and
:mod:`clss.losses.ranking` (the blackbox rank operator).
"""

from clss.losses._common import finite_checks, set_finite_checks
from clss.losses.cloc import MultiMarginNPairLoss
from clss.losses.conord import ConOrdCenterLoss, ConOrdLoss, knn_predict
from clss.losses.errors import NonFiniteError, NonFiniteLossError
from clss.losses.ordinal_entropy import OrdinalEntropyLoss
from clss.losses.pairwise import feature_similarity, label_distance
from clss.losses.ranking import blackbox_rank, rank_normalised
from clss.losses.ranksim import PseudoRankPredictionLoss, PseudoRankSimilarityLoss, RankSimLoss
from clss.losses.rnc import RnCLoss
from clss.losses.supcon import SupConLoss
from clss.losses.supremix import SupReMixLoss

__all__ = [
    "ConOrdCenterLoss",
    "ConOrdLoss",
    "MultiMarginNPairLoss",
    "NonFiniteError",
    "NonFiniteLossError",
    "OrdinalEntropyLoss",
    "PseudoRankPredictionLoss",
    "PseudoRankSimilarityLoss",
    "RankSimLoss",
    "RnCLoss",
    "SupConLoss",
    "SupReMixLoss",
    "blackbox_rank",
    "feature_similarity",
    "finite_checks",
    "knn_predict",
    "label_distance",
    "rank_normalised",
    "set_finite_checks",
]
