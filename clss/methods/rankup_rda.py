"""RankUp + RDA (Huang et al., NeurIPS 2024): RankUp's loss plus RDA's aligned pseudo-label term.

Per step, as the official code (pm25/Semi-Supervised-Regression, ``algorithms/rankuprda``): the labelled
weak view gives the regression loss and the ARC's labelled pair loss; the unlabelled weak view, forwarded
without updating batch-norm running statistics, gives the predictions that refresh the RDA buffer and learn
their aligned pseudo-labels by MSE (ramped up linearly over the first ``warmup`` fraction), and the ARC pair
pseudo-labels with their confidence mask; the unlabelled strong view learns those pairs. Loss:
``regression + ramp · rda_weight · MSE + arc_loss_ratio · (ARC_labelled + arc_ulb_loss_ratio ·
ARC_unlabelled)``. See :mod:`clss.methods.rankup` and :mod:`clss.methods.rda` for the parts of the official
code not kept (the constant added to RankUp's loss, ``T``, the pre-start RDA term that is identically 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clss.methods.base import Batch, Method, OptimizerConfig, TrainingContext, register_method
from clss.methods.common import contrastive_loss
from clss.methods.parts import (
    DistributionAlignment,
    arc_head,
    ema_copy,
    ema_update,
    frozen_batchnorm,
    labeled_pair_loss,
    pair_logits,
    pair_targets,
    ramp_weight,
    supervised_terms,
    unlabeled_pair_loss,
)
from clss.methods.rankup import UTKFACE_RANKUP, RankUpParams
from clss.methods.rda import DIGITS_RDA, UTKFACE_RDA, RDAParams


@dataclass
class RankUpRDAParams(RankUpParams, RDAParams):
    """RankUp's and RDA's parameters together (see :class:`~clss.methods.rankup.RankUpParams` and
    :class:`~clss.methods.rda.RDAParams`); defaults are the official UTKFace configuration
    (``config/classic_cv/rankuprda/rankuprda_utkface_lb*``), which uses both methods' values unchanged."""


@register_method
class RankUpRDA(Method):
    """RankUp with RDA's distribution-aligned pseudo-label term."""

    name = "rankup_rda"
    description = "RankUp + RDA: ranking classifier and distribution-aligned pseudo-labels"
    semi_supervised = True
    Params = RankUpRDAParams
    params: RankUpRDAParams
    unlabeled_views = ("weak", "strong")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "utkface-rankup": {"method_params": UTKFACE_RANKUP | UTKFACE_RDA},
        "digits-rotation": {"method_params": DIGITS_RDA},  # our choice, see clss.methods.rda
    }

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)
        self.arc = arc_head(self.model)
        self.ema_model = ema_copy(self.model) if self.params.ema > 0 else None

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        self.alignment = DistributionAlignment(context.unlabeled_index, context.labeled_y,
                                               self.params.refine_every)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        if not self.optimizers:  # the ARC head trains with the model; the EMA copy never does
            trained = [*self.model.parameters(), *self.arc.parameters()]
            self.optimizers = [self.optimizer_config.build(trained)]
        return self.optimizers

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        context = self.require_context()
        assert self.alignment is not None  # built by setup
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows (set "
                             "unlabeled_batch_size to 2 or more)")
        p = self.params
        self.model.train()
        out_l = self(labeled.view("weak"))
        with frozen_batchnorm(self.model):
            out_w = self(unlabeled.view("weak"))
        strong = pair_logits(self.arc(self(unlabeled.view("strong"))["feat"]))
        arc_unlabeled, mask = unlabeled_pair_loss(pair_logits(self.arc(out_w["feat"])), strong, p.p_cutoff)
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        pseudo = self.alignment.update(unlabeled.index, out_w["pred"], step)
        if step >= p.rda_start:
            ramp = ramp_weight(step, p.warmup * context.total_steps)
            parts["unlabeled_rda"] = p.rda_weight * ramp * F.mse_loss(out_w["pred"], pseudo)
        parts["arc"] = p.arc_loss_ratio * labeled_pair_loss(pair_logits(self.arc(out_l["feat"])),
                                                            pair_targets(labeled.y))
        parts["unlabeled_arc"] = p.arc_loss_ratio * p.arc_ulb_loss_ratio * arc_unlabeled
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        if self.ema_model is not None:
            ema_update(self.ema_model, self.model, p.ema)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "mask": float(mask.mean()), **stats}

    @property
    def prediction_model(self) -> nn.Module:
        """The EMA copy when ``ema > 0`` (as the official evaluation), else the model."""
        return self.model if self.ema_model is None else self.ema_model
