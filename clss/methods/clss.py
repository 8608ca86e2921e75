"""CLSS: contrastive learning with ordinal pseudo-ranks from spectral seriation (Dai et al., NeurIPS 2023).

Per step (as the official CLSS code): the labelled batch gives the regression and labelled contrastive
terms; a separate forward of the unlabelled batch gives features whose cosine similarities are
seriated (Fiedler vector of ``L = D − S``; the official code's projection onto 1⊥ equals the shifted
Laplacian used here, and its "upsets" sign step is dropped because both losses only use ``|R_i − R_j|``).
The pseudo-ranks then supervise L_UR (feature-similarity ranks) and L_UC (prediction-similarity ranks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clss.losses import PseudoRankPredictionLoss, PseudoRankSimilarityLoss
from clss.losses.pairwise import feature_similarity
from clss.methods.base import Batch, OptimizerConfig, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, contrastive_loss, kendall_tau, subsample
from clss.methods.supervised import Supervised, SupervisedParams
from clss.schema import param
from clss.seriation import seriate_batch


@dataclass
class CLSSParams(SupervisedParams):
    """Defaults are the official image settings (AgeDB/IXI); the operator-learning preset uses 1e-3
    for all three weights and 10-row subsamples.

    ``rank_weight`` (w_ctrulb_0) weights the unlabelled ranking term and ``consistency_weight``
    (w_ctrulb_1) L_UC; as in the official code L_UC runs only when the ranking term does.
    ``rank_rows``: unlabelled rows drawn per step (all when ``None``); only the drawn rows are forwarded
    (the official synthetic code forwards all and uses 10, which gives the same gradients for models
    without batch statistics). ``diagnostics_every``: log the diagnostics (the Kendall τ of the
    pseudo-targets against hidden true targets when the trainer passes them; GCLSS adds the recovery
    tolerance) every N steps, 0 for never. ``unlabeled_loss``: ``"rank"``
    (L_UR, the paper) or a contrastive loss of :mod:`clss.losses` (``"rnc"``, ``"conord"``, ``"oe"``,
    ``"ranksim"``, ``"supremix"``) fed the pseudo-targets instead. ``lambda_val``: interpolation
    strength of the blackbox rank operator.
    """

    rank_weight: float = param(0.05, ge=0)
    consistency_weight: float = param(0.01, ge=0)
    rank_rows: int | None = param(None, "int", ge=2, optional=True)
    unlabeled_loss: str = param("rank", "str", choices=("rank", *CONTRASTIVE_LOSSES))
    diagnostics_every: int = param(10, "int", ge=0)


@register_method
class CLSS(Supervised):
    """CLSS with spectral-seriation pseudo-ranks of each unlabelled batch."""

    name = "clss"
    description = "CLSS: L_UR/L_UC on spectral-seriation pseudo-ranks of unlabelled features"
    semi_supervised = True
    Params = CLSSParams
    params: CLSSParams

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(model_fn, optimizer, params)
        p = self.params
        self.rank_loss = (PseudoRankSimilarityLoss(lambda_val=p.lambda_val) if p.unlabeled_loss == "rank"
                          else contrastive_loss(p.unlabeled_loss, oe_variant=p.oe_variant,
                                                lambda_val=p.lambda_val))
        self.consistency_loss = PseudoRankPredictionLoss(lambda_val=p.lambda_val)

    def unlabeled_terms(self, pred_u: torch.Tensor, feat_u: torch.Tensor, targets: torch.Tensor
                        ) -> dict[str, torch.Tensor]:
        """L_UR (or the chosen contrastive loss) and L_UC against pseudo-targets (no gradient)."""
        p = self.params
        parts: dict[str, torch.Tensor] = {}
        if p.rank_weight > 0:
            parts["unlabeled_rank"] = p.rank_weight * self.rank_loss(feat_u, targets)
            if p.consistency_weight > 0:
                parts["unlabeled_consistency"] = p.consistency_weight * self.consistency_loss(pred_u, targets)
        return parts

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows")
        unlabeled = self.draw_unlabeled(unlabeled)
        self.model.train()
        out_l = self.model(labeled.view("weak"))
        parts = self.supervised_terms(labeled, out_l["pred"], out_l["feat"])
        out_u = self.model(unlabeled.view("weak"))
        pred_u, feat_u = out_u["pred"], out_u["feat"]
        with torch.no_grad():
            sim = feature_similarity(feat_u.detach(), "cosine")
            _, ranks = seriate_batch(sim, negative="shift", validate=False)  # built here: well formed
        parts.update(self.unlabeled_terms(pred_u, feat_u, ranks.to(feat_u.dtype)))
        loss = torch.stack(list(parts.values())).sum()
        self.optimize(loss, parts)
        logs = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}}
        if unlabeled.y is not None and self.diagnose(step):
            # unanchored seriation has no direction: only |τ| measures the recovered order
            logs["pseudo_rank_tau"] = abs(kendall_tau(ranks, unlabeled.y))
        return logs

    def draw_unlabeled(self, unlabeled: Batch) -> Batch:
        """The ``rank_rows`` unlabelled rows of this step (all of them when unset)."""
        rows = subsample(len(unlabeled), self.params.rank_rows, self.generator)
        if rows is None:
            return unlabeled
        return unlabeled.take(rows.to(unlabeled.index.device))

    def diagnose(self, step: int) -> bool:
        """Whether this step logs diagnostics (every ``diagnostics_every`` steps)."""
        every = self.params.diagnostics_every
        return bool(every) and step % every == 0
