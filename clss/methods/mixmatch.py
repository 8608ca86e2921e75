"""MixMatch (Berthelot et al., NeurIPS 2019), in the regression form RankUp's USB fork runs
(``semilearn/algorithms/mixmatch``).

Per step: pseudo-targets of the unlabelled rows are the mean prediction over ``views`` weak draws (``"weak"``,
``"weak@2"``, ...; training mode, no gradient) and are not sharpened (real-valued targets have no
temperature). The labelled rows (their targets) and every weak draw of the unlabelled rows (the
pseudo-targets) are concatenated and mixed with one ``λ ~ Beta(α, α)``, ``λ' = max(λ, 1 − λ)``, and a random
permutation (both from the method's seeded stream); the mixed labelled part gets the supervised terms
against its mixed targets, the mixed unlabelled part an MSE against its mixed targets, weighted by
``unlabeled_weight`` times a ramp-up over the first ``ramp_up`` fraction of training. The two mixed parts
go through the network in separate forwards (the fork forwards them apart too), and only the labelled one
moves the batch-norm running statistics (the fork freezes them for the others). Mixing acts on the inputs,
so it needs inputs of one shape (tables, images of one size). :meth:`predict` is the network's.
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
from clss.methods.parts import RAMP_SHAPES, frozen_batchnorm, mixup, ramp_weight, supervised_terms
from clss.methods.pimodel import FORK_UTKFACE
from clss.methods.supervised import SupervisedParams
from clss.schema import param


@dataclass
class MixMatchParams(SupervisedParams):
    """Defaults from RankUp's USB fork (its UTKFace/BVCC/Yelp configurations).

    ``views``: weak draws K averaged into the pseudo-targets (2: ``x_ulb_w``, ``x_ulb_w_2``). ``mixup_alpha``:
    α of the Beta draw (0.5). ``unlabeled_weight``: weight of the mixed unlabelled MSE (``ulb_loss_ratio:
    0.1``; the paper's classification value, 100, is for probabilities). ``ramp_up``: fraction of training
    over which it ramps up (``unsup_warm_up: 0.4`` in the configurations; the code's own default, 1/64, is
    never used by them), shape ``ramp_shape``. ``contrastive``: a labelled contrastive term on the mixed
    labelled rows and their mixed targets, off by default (the fork has none).
    """

    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    views: int = param(2, "int", ge=1)
    mixup_alpha: float = param(0.5, gt=0)
    unlabeled_weight: float | str = param(0.1, ge=0, words=(AUTO,))
    auto_ratio: float = param(AUTO_RATIO, gt=0)
    ramp_up: float = param(0.4, ge=0, le=1)
    ramp_shape: str = param("linear", "str", choices=RAMP_SHAPES)


@register_method
class MixMatch(Method):
    """MixMatch for regression: mixup of labelled and pseudo-labelled rows (K-view mean pseudo-targets)."""

    name = "mixmatch"
    description = "MixMatch (regression): mixup of labelled + pseudo-labelled rows (K-view mean targets)"
    semi_supervised = True
    Params = MixMatchParams
    params: MixMatchParams
    # The fork's UTKFace settings (alpha 0.5, K = 2 are the defaults); no official setting exists for the
    # other presets: the defaults apply there, our choice.
    presets: ClassVar[dict[str, dict[str, Any]]] = {"utkface-rankup": FORK_UTKFACE}

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("weak", *(f"weak@{k}" for k in range(2, self.params.views + 1)))

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) == 0:
            raise ValueError(f"{self.name} needs unlabelled rows in every step")
        if labeled.y is None:
            raise ValueError("the labelled batch has no targets")
        p = self.params
        length = round(p.ramp_up * self.require_context().total_steps)
        self.model.train()
        draws = [unlabeled.view(v) for v in self.unlabeled_views]
        with torch.no_grad(), frozen_batchnorm(self.model):  # as the fork: labelled passes move the stats
            pseudo = torch.stack([self(x)["pred"] for x in draws]).mean(0).to(labeled.y.dtype)
        x_l = labeled.view("weak")
        rows = torch.cat([x_l, *(x.to(x_l.dtype) for x in draws)])
        targets = torch.cat([labeled.y, pseudo.repeat(len(draws))])
        mixed_x, mixed_y, lam, _ = mixup(rows, targets, p.mixup_alpha, self.generator)
        n_l = x_l.shape[0]
        out_l = self(mixed_x[:n_l])
        parts = supervised_terms(out_l["pred"], out_l["feat"], mixed_y[:n_l], regression=p.regression_loss,
                                 contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                 rows=p.contrastive_rows, generator=self.generator)
        with frozen_batchnorm(self.model):
            pred_u = self(mixed_x[n_l:])["pred"]
        ramp = ramp_weight(step, length, p.ramp_shape)
        weight = self.unlabeled_factor(p.unlabeled_weight, ramp)
        parts["unlabeled_consistency"] = weight * F.mse_loss(pred_u, mixed_y[n_l:])
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "ramp": ramp, "mixup_lambda": lam, **stats}
