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
from typing import Any, ClassVar

import torch
from torch import nn

from clss.methods.balance import AUTO, AUTO_RATIO
from clss.methods.base import Batch, Method, OptimizerConfig, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, contrastive_loss, diagnose, kendall_tau
from clss.methods.parts import (
    draw_rows,
    pseudo_rank_terms,
    pseudo_target_losses,
    seriation_ranks,
    supervised_terms,
)
from clss.methods.supervised import SupervisedParams
from clss.schema import param


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
    strength of the blackbox rank operator. ``unlabeled_weight`` multiplies both unlabelled terms (1: the
    weights above as they are); ``"auto"`` keeps their ratio (the larger at unit weight) and sets the
    overall weight so that the unlabelled gradient's norm is ``auto_ratio`` times the supervised gradient's
    (moving averages of both, :mod:`clss.methods.balance`).
    """

    rank_weight: float = param(0.05, ge=0)
    consistency_weight: float = param(0.01, ge=0)
    unlabeled_weight: float | str = param(1.0, ge=0, words=(AUTO,))
    auto_ratio: float = param(AUTO_RATIO, gt=0)
    rank_rows: int | None = param(None, "int", ge=2, optional=True)
    unlabeled_loss: str = param("rank", "str", choices=("rank", *CONTRASTIVE_LOSSES))
    diagnostics_every: int = param(10, "int", ge=0)


def unlabeled_weights(p: CLSSParams, factor: float) -> dict[str, float]:
    """``rank_weight`` and ``consistency_weight`` times ``factor`` (the ``unlabeled_weight``), as the
    pseudo-target parts take them. Under ``"auto"`` both are divided by the larger of the two instead, so
    that the larger term enters at unit weight: the blackbox rank operator of L_UR and L_UC perturbs the
    scores by λ times the incoming gradient, so a small weight inside the loss (1e-3) leaves the ranks
    unchanged and the gradient exactly zero on most steps; the balance then scales the gradient itself."""
    if p.unlabeled_weight == AUTO:
        top = max(p.rank_weight, p.consistency_weight)
        factor = 1.0 / top if top > 0 else 0.0
    return {"rank_weight": p.rank_weight * factor, "consistency_weight": p.consistency_weight * factor}


@register_method
class CLSS(Method):
    """CLSS with spectral-seriation pseudo-ranks of each unlabelled batch."""

    name = "clss"
    description = "CLSS: L_UR/L_UC on spectral-seriation pseudo-ranks of unlabelled features"
    semi_supervised = True
    Params = CLSSParams
    params: CLSSParams
    # The official synthetic scripts: every unlabelled weight 1e-3, 10-row unlabelled subsamples.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"operator-sde": {"method_params": {
        "rank_weight": 1e-3, "consistency_weight": 1e-3, "rank_rows": 10}}}

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.rank_loss, self.consistency_loss = pseudo_target_losses(
            p.unlabeled_loss, lambda_val=p.lambda_val, oe_variant=p.oe_variant)
        self.generator = torch.Generator().manual_seed(p.seed)

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows")
        p = self.params
        unlabeled = draw_rows(unlabeled, p.rank_rows, self.generator)
        self.model.train()
        out_l = self(labeled.view("weak"))
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        # A separate forward of the unlabelled rows (official: their own batch statistics).
        out_u = self(unlabeled.view("weak"))
        ranks = seriation_ranks(out_u["feat"])
        parts.update(pseudo_rank_terms(out_u["pred"], out_u["feat"], ranks, rank_loss=self.rank_loss,
                                       consistency_loss=self.consistency_loss,
                                       **unlabeled_weights(p, self.unlabeled_factor(p.unlabeled_weight))))
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        logs = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats}
        if unlabeled.y is not None and diagnose(p.diagnostics_every, step):
            # unanchored seriation has no direction: only |τ| measures the recovered order
            logs["pseudo_rank_tau"] = abs(kendall_tau(ranks, unlabeled.y))
        return logs
