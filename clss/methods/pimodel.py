"""Π-model (Laine & Aila, ICLR 2017, "Temporal ensembling for semi-supervised learning"), regression form.

Per step, as RankUp's USB fork (``semilearn/algorithms/pimodel``) runs it: the supervised terms on the
labelled rows; two stochastic forwards of the unlabelled rows (views ``"weak"`` and ``"weak@2"``, two
independent draws of the weak augmentation, plus dropout); the MSE between the second pass's predictions and
the first pass's, which is the target and carries no gradient (the fork detaches it); weighted by
``unlabeled_weight`` times a ramp-up over the first ``ramp_up`` fraction of training.

Tabular data has no augmentation, so both views are the same rows: the noise must come from the model's
dropout or from ``input_noise``. Without either the two passes are equal and the term trains nothing; the
method warns once in that case. The unlabelled passes leave the batch-norm running statistics alone (the
fork freezes them there), so evaluation normalises with statistics of labelled batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from clss.methods.balance import AUTO, AUTO_RATIO
from clss.methods.base import Batch, Method, OptimizerConfig, register_method
from clss.methods.common import CONTRASTIVE_LOSSES, contrastive_loss
from clss.methods.parts import (
    RAMP_SHAPES,
    frozen_batchnorm,
    input_noise,
    ramp_weight,
    supervised_terms,
    warn_if_noiseless,
)
from clss.methods.supervised import SupervisedParams
from clss.schema import param

#: RankUp's UTKFace configurations of the consistency baselines (``config/classic_cv/{pimodel,meanteacher,
#: mixmatch}/*_utkface_lb*_s0.yaml``): L1 supervised loss, unlabelled weight 0.1 ramped over 40 % of
#: training, as many unlabelled as labelled rows per step (``uratio: 1``), no labelled contrastive term.
FORK_UTKFACE: dict[str, Any] = {"unlabeled_batch_size": 32, "method_params": {
    "regression_loss": "l1", "contrastive": "none", "unlabeled_weight": 0.1, "ramp_up": 0.4}}


@dataclass
class PiModelParams(SupervisedParams):
    """Defaults from RankUp's USB fork, which ran the consistency baselines of the RankUp tables.

    ``unlabeled_weight``: weight of the consistency MSE (``ulb_loss_ratio: 0.1`` in the fork's UTKFace, BVCC
    and Yelp configurations). ``ramp_up``: fraction of the run's steps over which that weight ramps up
    (``unsup_warm_up: 0.4``), with the shape ``ramp_shape`` (``"linear"`` as the fork;
    ``"sigmoid"``: ``exp(-5 (1 - t)²)``, Laine & Aila's schedule). ``input_noise``: std of Gaussian noise
    added to each unlabelled view (in standardised input units, drawn from the method's seeded stream; 0 =
    off): needed on tabular data with a model without dropout, where the two views are the same rows.
    ``contrastive``: the labelled contrastive term of :class:`~clss.methods.Supervised`, off by default
    (the fork trains the regression loss alone); the other supervised keys are as there.
    """

    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    unlabeled_weight: float | str = param(0.1, ge=0, words=(AUTO,))
    auto_ratio: float = param(AUTO_RATIO, gt=0)
    ramp_up: float = param(0.4, ge=0, le=1)
    ramp_shape: str = param("linear", "str", choices=RAMP_SHAPES)
    input_noise: float = param(0.0, ge=0)


@register_method
class PiModel(Method):
    """Π-model: consistency of two stochastic passes over the unlabelled rows."""

    name = "pimodel"
    description = "Π-model: MSE between two stochastic passes (views weak, weak@2) of the unlabelled rows"
    semi_supervised = True
    Params = PiModelParams
    params: PiModelParams
    unlabeled_views = ("weak", "weak@2")
    # Only the RankUp fork publishes settings (UTKFace). Elsewhere (operator-sde, utkface, agedb-dir,
    # digits-rotation) no official setting exists: the defaults above apply, our choice.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"utkface-rankup": FORK_UTKFACE}

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)
        self._noise_checked = False

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) == 0:
            raise ValueError(f"{self.name} needs unlabelled rows in every step")
        p = self.params
        length = round(p.ramp_up * self.require_context().total_steps)
        self.model.train()
        out_l = self(labeled.view("weak"))
        parts = supervised_terms(out_l["pred"], out_l["feat"], labeled.y, regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        first = input_noise(unlabeled.view("weak"), p.input_noise, self.generator)
        second = input_noise(unlabeled.view("weak@2"), p.input_noise, self.generator)
        if not self._noise_checked:
            self._noise_checked = True
            warn_if_noiseless(self.name, self.model, first, second, p.input_noise)
        with frozen_batchnorm(self.model):  # as the fork: only labelled passes move the statistics
            with torch.no_grad():  # the first pass is the target (detached in the fork)
                target = self(first)["pred"]
            pred = self(second)["pred"]
        ramp = ramp_weight(step, length, p.ramp_shape)
        weight = self.unlabeled_factor(p.unlabeled_weight, ramp)
        parts["unlabeled_consistency"] = weight * F.mse_loss(pred, target)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "ramp": ramp, **stats}
