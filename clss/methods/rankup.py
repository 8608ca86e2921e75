"""RankUp (Huang et al., "RankUp: Boosting Semi-Supervised Regression with an Auxiliary Ranking
Classifier", NeurIPS 2024): regression plus an auxiliary ranking classifier (ARC) over row pairs, trained
on labelled pairs and, FixMatch-style, on confident unlabelled pairs.

Per step, as the official code (pm25/Semi-Supervised-Regression, ``algorithms/rankup``): the labelled weak
view gives the regression loss and the ARC's labelled pair loss; the unlabelled weak view, forwarded
without gradient and without updating batch-norm running statistics (the official code freezes them for
this view), gives hard pair pseudo-labels and a confidence mask; the unlabelled strong view learns them.
Loss: ``regression + arc_loss_ratio · (ARC_labelled + arc_ulb_loss_ratio · ARC_unlabelled)``.

Not kept from the official code: it adds the constant ``ulb_loss_ratio`` (1.0) to the loss, which changes
no gradient; its temperature ``T`` only matters for soft pseudo-labels, which its configurations never use.
The official targets are min-max scaled to [0, 1]; ours are standardised, so the regression term's scale
relative to the ARC terms differs by the ratio of the target's range to its standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from clss.methods.base import Batch, Method, OptimizerConfig, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, REGRESSION_LOSSES, contrastive_loss
from clss.methods.parts import (
    arc_head,
    ema_copy,
    ema_update,
    frozen_batchnorm,
    labeled_pair_loss,
    pair_logits,
    pair_targets,
    supervised_terms,
    unlabeled_pair_loss,
)
from clss.methods.supervised import SupervisedParams
from clss.schema import param


@dataclass
class RankUpParams(SupervisedParams):
    """Defaults are the official UTKFace configuration (``config/classic_cv/rankup/rankup_utkface_lb*``,
    the same for 50, 250 and 2000 labels).

    ``regression_loss``: ``"l1"`` (the configuration's criterion) or ``"mse"``. ``contrastive``: the
    labelled contrastive term of :class:`~clss.methods.Supervised` (with its ``contrastive_weight``,
    ``contrastive_rows``, ``oe_variant``, ``lambda_val`` and ``seed``), off as in RankUp.
    ``arc_loss_ratio``: weight of the whole ARC term (0.2). ``arc_ulb_loss_ratio``: weight of the unlabelled
    pair loss inside it (1).
    ``p_cutoff``: confidence a weak-view pair probability needs to become a pseudo-label (0.95).
    ``ema``: decay of the EMA copy of the model that predictions and evaluation use (0.999; 0 evaluates
    the trained model itself).
    """

    regression_loss: str = param("l1", "str", choices=REGRESSION_LOSSES)
    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    arc_loss_ratio: float = param(0.2, ge=0)
    arc_ulb_loss_ratio: float = param(1.0, ge=0)
    p_cutoff: float = param(0.95, gt=0, le=1)
    ema: float = param(0.999, ge=0, lt=1)


#: The published UTKFace settings, pinned for the ``utkface-rankup`` preset.
UTKFACE_RANKUP = {"regression_loss": "l1", "contrastive": "none", "arc_loss_ratio": 0.2,
                  "arc_ulb_loss_ratio": 1.0, "p_cutoff": 0.95, "ema": 0.999}


@register_method
class RankUp(Method):
    """RankUp: regression + auxiliary ranking classifier with FixMatch on unlabelled pairs."""

    name = "rankup"
    description = "RankUp: auxiliary pairwise ranking classifier, FixMatch on unlabelled pairs"
    semi_supervised = True
    Params = RankUpParams
    params: RankUpParams
    unlabeled_views = ("weak", "strong")
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "utkface-rankup": {"method_params": UTKFACE_RANKUP},
        # Our choice: a 500-step run would leave a 0.999 average near its initialisation.
        "digits-rotation": {"method_params": {"ema": 0.99}},
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

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        if not self.optimizers:  # the ARC head trains with the model; the EMA copy never does
            trained = [*self.model.parameters(), *self.arc.parameters()]
            self.optimizers = [self.optimizer_config.build(trained)]
        return self.optimizers

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows (set "
                             "unlabeled_batch_size to 2 or more)")
        p = self.params
        self.model.train()
        out_l = self(labeled.view("weak"))
        with torch.no_grad(), frozen_batchnorm(self.model):
            weak = pair_logits(self.arc(self(unlabeled.view("weak"))["feat"]))
        strong = pair_logits(self.arc(self(unlabeled.view("strong"))["feat"]))
        arc_unlabeled, mask = unlabeled_pair_loss(weak, strong, p.p_cutoff)
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
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
