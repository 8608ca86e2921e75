"""CPS: cross pseudo supervision for regression (Chen et al., CVPR 2021), as the CLSS repository runs it.

Two networks of the same architecture, initialised independently, each see their own augmented view of
the rows ("weak" for the first, "weak@2", a second independent draw of the same pipeline, for the
second). Per step (as the official ``synthetic/main_semi_cps.py`` and the IXI ``*_cps.py`` scripts)::

    L = Σ_k regression(ŷ_k(x_l), y) + w · Σ_k MSE(ŷ_k(x_u), stopgrad(ŷ_{1−k}(x_u)))

with one backward pass and one optimiser step. The official code keeps one optimiser per network; a
single optimiser over both networks' parameters takes the same step, because Adam, AdamW and SGD update
each parameter from its own gradient and state (only ``optimizer.clip_grad_norm`` differs: it clips the
two networks' gradients jointly). Predictions are the mean of the two networks in evaluation mode.
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
from clss.methods.parts import evaluating, supervised_terms
from clss.methods.supervised import SupervisedParams
from clss.schema import param


@dataclass
class CPSParams(SupervisedParams):
    """Hyper-parameters of :class:`CPS` (the labelled keys are :class:`SupervisedParams`').

    ``unlabeled_weight`` (w_cps): weight of the cross pseudo-supervision term; 1 as the IXI scripts
    (``--w_cps 1``); the operator-sde preset uses 5e-4 (``--ulb_w=0.0005`` in the synthetic
    ``scripts.sh``). ``contrastive``: an optional labelled contrastive term on each network's features,
    ``"none"`` by default (the IXI recipe trains CPS without OE, and the synthetic CPS script never computes
    it although it is passed ``--Yoe``).
    """

    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    unlabeled_weight: float | str = param(1.0, ge=0, words=(AUTO,))
    auto_ratio: float = param(AUTO_RATIO, gt=0)


@register_method
class CPS(Method):
    """Two independently initialised networks, each trained on the other's predictions on unlabelled rows."""

    name = "cps"
    description = "CPS: two networks, each regressed on the other's predictions for unlabelled rows"
    semi_supervised = True
    Params = CPSParams
    params: CPSParams
    labeled_views = ("weak", "weak@2")
    unlabeled_views = ("weak", "weak@2")
    # operator-sde: the synthetic scripts' w = 5e-4. Face presets: AgeDB's only CPS script is a hybrid
    # (OE and a cross-model ranking term added), so we run the pure CPS of the IXI scripts (w = 1, no OE)
    # with the face backbone and optimiser; the same on UTKFace (no CPS script exists for it).
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "operator-sde": {"method_params": {"unlabeled_weight": 5e-4}},
        **{key: {"method_params": {"unlabeled_weight": 1.0, "contrastive": "none"}}
           for key in ("utkface", "agedb-dir", "agedb-dir-rgb")},
    }

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.model2 = model_fn()  # a second call: its own random initialisation
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)

    def networks(self) -> list[nn.Module]:
        """Both networks train through :meth:`forward`."""
        return [self.model, self.model2]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimiser over both networks (per-parameter updates: the same as one each)."""
        if not self.optimizers:
            self.optimizers = [self.optimizer_config.build(self.parameters())]
        return self.optimizers

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        parts = self.loss_terms(labeled, unlabeled)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats}

    def loss_terms(self, labeled: Batch, unlabeled: Batch | None) -> dict[str, torch.Tensor]:
        """The step's weighted loss terms, by name (both networks in training mode): ``"regression"`` and
        ``"contrastive"`` (when on) summed over the two networks, ``"unlabeled_cps"`` (when w > 0)."""
        p = self.params
        if labeled.y is None:
            raise ValueError("the labelled batch has no targets")
        if self.uses_unlabeled and (unlabeled is None or len(unlabeled) == 0):
            raise ValueError(f"{self.name} needs an unlabelled batch when unlabeled_weight > 0")
        self.model.train()
        self.model2.train()
        parts: dict[str, torch.Tensor] = {}
        for net, view in ((self.model, "weak"), (self.model2, "weak@2")):
            out = self(labeled.view(view), model=net)
            terms = supervised_terms(out["pred"], out["feat"], labeled.y, regression=p.regression_loss,
                                     contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                     rows=p.contrastive_rows, generator=self.generator)
            for key, value in terms.items():
                parts[key] = parts[key] + value if key in parts else value
        if unlabeled is not None and self.uses_unlabeled:  # at weight 0 they are not forwarded at all
            pred1 = self(unlabeled.view("weak"))["pred"]
            pred2 = self(unlabeled.view("weak@2"), model=self.model2)["pred"]
            # each network regresses onto the other's prediction, which is a fixed target (no gradient)
            weight = self.unlabeled_factor(p.unlabeled_weight)
            parts["unlabeled_cps"] = weight * (F.mse_loss(pred1, pred2.detach())
                                               + F.mse_loss(pred2, pred1.detach()))
        return parts

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of the two networks' predictions ``[B]`` in evaluation mode."""
        with evaluating(self.model, self.model2):
            return (self.model(x)["pred"] + self.model2(x)["pred"]) / 2
