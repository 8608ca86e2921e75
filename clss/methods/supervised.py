"""The supervised baseline: regression on the labelled rows, with an optional labelled contrastive term."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from clss.methods.base import Batch, Method, MethodParams, OptimizerConfig, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, REGRESSION_LOSSES, contrastive_loss
from clss.methods.parts import supervised_terms
from clss.schema import param


@dataclass
class SupervisedParams(MethodParams):
    """``regression_loss``: ``"mse"`` or ``"l1"`` on standardised targets. ``contrastive``: a labelled
    term from :mod:`clss.losses` (``"oe"`` Ordinal Entropy, as in the CLSS/GCLSS papers; ``"rnc"``,
    ``"conord"``, ``"ranksim"``, ``"supremix"`` or ``"none"``) weighted by ``contrastive_weight``
    (w_ctr: 1 on images, 1e-3 on the synthetic benchmark) and computed on ``contrastive_rows`` random
    labelled rows (all when ``None``; 10 in the synthetic scripts). ``oe_variant``: ``"center"``
    (AgeDB/UTK) or ``"pairwise"`` (IXI/synthetic). ``seed`` seeds the method's own subsampling."""

    regression_loss: str = param("mse", "str", choices=REGRESSION_LOSSES)
    contrastive: str | None = param("oe", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    contrastive_weight: float = param(1.0, ge=0)
    contrastive_rows: int | None = param(None, "int", ge=2, optional=True)
    oe_variant: str = param("center", "str", choices=("center", "pairwise"))
    lambda_val: float = param(2.0, gt=0)
    seed: int = param(0, "int", ge=0)


@register_method
class Supervised(Method):
    """Regression on the labelled part only (the papers' "Regression" rows)."""

    name = "supervised"
    description = "regression on labelled rows (+ optional labelled contrastive term, OE by default)"
    semi_supervised = False
    Params = SupervisedParams
    params: SupervisedParams

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        p = self.params
        self.model.train()
        out = self(labeled.view("weak"))
        parts = supervised_terms(out["pred"], out["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats}
