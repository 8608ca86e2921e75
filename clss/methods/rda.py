"""RDA: regression distribution alignment of pseudo-labels (Huang et al., NeurIPS 2024, the RankUp paper).

Per step, as the official code (pm25/Semi-Supervised-Regression, ``algorithms/rda``): regression on the
labelled weak view; the unlabelled weak view is forwarded without updating batch-norm running statistics
(the official code freezes them for this view), its predictions refresh the RDA buffer
(:class:`~clss.methods.parts.DistributionAlignment`: every ``refine_every`` steps the buffered predictions
are mapped, order kept, onto the labelled targets' quantiles) and learn their aligned pseudo-labels by MSE,
weighted by ``rda_weight`` times a linear ramp-up over the first ``warmup`` fraction of training.

The official code uses the buffer's pseudo-labels from its second epoch on (1024 iterations on UTKFace)
and, before that, the prediction itself (a term that is identically 0 with no gradient); here the term is
simply absent before ``rda_start`` steps. Its targets are min-max scaled to [0, 1] and ours standardised,
so the MSE term's scale relative to the regression term differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from clss.methods.base import Batch, Method, OptimizerConfig, TrainingContext, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, REGRESSION_LOSSES, contrastive_loss
from clss.methods.parts import (
    DistributionAlignment,
    ema_copy,
    ema_update,
    frozen_batchnorm,
    ramp_weight,
    supervised_terms,
)
from clss.methods.supervised import SupervisedParams
from clss.schema import param


@dataclass
class RDAParams(SupervisedParams):
    """Defaults are the official UTKFace configuration (``config/classic_cv/rda/rda_utkface_lb*``).

    ``regression_loss``: ``"l1"`` (the configuration's criterion) or ``"mse"``. ``contrastive``: the
    labelled contrastive term of :class:`~clss.methods.Supervised` (with its ``contrastive_weight``,
    ``contrastive_rows``, ``oe_variant``, ``lambda_val`` and ``seed``), off as in RDA. ``rda_weight``:
    weight of the pseudo-label MSE (``ulb_loss_ratio``, 1). ``warmup``: fraction of training over which that
    weight ramps up linearly from 0 (``unsup_warm_up``, 0.4). ``refine_every``: steps between refreshes of the
    aligned pseudo-labels (``rda_num_refine_iter``, 1024). ``rda_start``: first step that uses them (the
    official code's second epoch: 262 144 iterations / 256 epochs = 1024). ``ema``: decay of the EMA copy
    that predictions and evaluation use (0.999; 0 evaluates the trained model itself).
    """

    regression_loss: str = param("l1", "str", choices=REGRESSION_LOSSES)
    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    rda_weight: float = param(1.0, ge=0)
    warmup: float = param(0.4, ge=0, le=1)
    refine_every: int = param(1024, "int", ge=1)
    rda_start: int = param(1024, "int", ge=0)
    ema: float = param(0.999, ge=0, lt=1)


#: The published UTKFace settings, pinned for the ``utkface-rankup`` preset.
UTKFACE_RDA = {"regression_loss": "l1", "contrastive": "none", "rda_weight": 1.0, "warmup": 0.4,
               "refine_every": 1024, "rda_start": 1024, "ema": 0.999}
#: Our choice for the 500-step digits runs: refresh and start every 50 steps (the official 1024 would never
#: start), and an EMA that a 500-step run can move.
DIGITS_RDA = {"refine_every": 50, "rda_start": 50, "ema": 0.99}


@register_method
class RDA(Method):
    """RDA: MSE towards pseudo-labels aligned to the labelled target distribution."""

    name = "rda"
    description = "RDA: pseudo-labels = unlabelled predictions mapped onto labelled-target quantiles"
    semi_supervised = True
    Params = RDAParams
    params: RDAParams
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "utkface-rankup": {"method_params": UTKFACE_RDA},
        "digits-rotation": {"method_params": DIGITS_RDA},
    }

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)
        self.ema_model = ema_copy(self.model) if self.params.ema > 0 else None

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        self.alignment = DistributionAlignment(context.unlabeled_index, context.labeled_y,
                                               self.params.refine_every)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        if not self.optimizers:  # the EMA copy never trains
            self.optimizers = [self.optimizer_config.build(self.model.parameters())]
        return self.optimizers

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        context = self.require_context()
        assert self.alignment is not None  # built by setup
        if unlabeled is None or len(unlabeled) < 1:
            raise ValueError(f"{self.name} needs an unlabelled batch (set unlabeled_batch_size to 1 or "
                             "more)")
        p = self.params
        self.model.train()
        out_l = self(labeled.view("weak"))
        with frozen_batchnorm(self.model):
            pred_u = self(unlabeled.view("weak"))["pred"]
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        pseudo = self.alignment.update(unlabeled.index, pred_u, step)
        if step >= p.rda_start:
            ramp = ramp_weight(step, p.warmup * context.total_steps)
            parts["unlabeled_rda"] = p.rda_weight * ramp * F.mse_loss(pred_u, pseudo)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        if self.ema_model is not None:
            ema_update(self.ema_model, self.model, p.ema)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats}

    @property
    def prediction_model(self) -> nn.Module:
        """The EMA copy when ``ema > 0`` (as the official evaluation), else the model."""
        return self.model if self.ema_model is None else self.ema_model
