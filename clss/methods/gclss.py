"""GCLSS: CLSS generalised with label-anchored seriation over the joint labelled + unlabelled batch
(Wang, Dai, Bai & Li, arXiv 2512.09267; official GCLSS code).

``mode="clean"`` (default; the official code's bugs fixed): a no-gradient "memory" pass on the view
``"weak@2"`` and a gradient pass on ``"weak"`` (two stochastic forwards of two independent augmentation
draws; dropout must make them differ where the data has no augmentation), the cross-view coefficient of
variation of the unlabelled similarities, the stable-subset DP *minimising* it, the cross-view averaged
similarity ``S̄ = P̄ P̄ᵀ`` of the selected unlabelled rows and every labelled row, the harmonic
(label-anchored) solution as pseudo-values and pseudo-ranks, L_UR and L_UC on them, one optimiser step.
By default (``memory="unlabeled"``) the memory pass covers the unlabelled rows only and the labelled
anchors enter ``P̄`` with their gradient-pass embeddings: the cross-view statistics concern the rows
being ranked, and a memory pass over the labelled batch would cost a third more compute per step
(``memory="all"`` averages the labelled rows over both passes too, as the official pass 2 does).

``mode="faithful"`` reproduces the official code where it changes numbers: pass 1 anchors the ranking on
7 labelled rows (batch max, min and 5 random) and steps the optimiser; pass 2 re-forwards the same
batch (view ``"weak"`` only), selects unlabelled rows with the DP in the official (maximising) direction,
anchors on all labelled rows and steps again — two optimiser steps per iteration.

The step is composed of the parts in :mod:`clss.methods.parts`; it reads top to bottom below.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from clss.methods.base import Batch, Method, OptimizerConfig, register_method
from clss.methods.clss import CLSS, CLSSParams, unlabeled_weights
from clss.methods.common import contrastive_loss, diagnose, kendall_tau
from clss.methods.parts import (
    anchored_contrastive_terms,
    anchored_targets,
    draw_rows,
    pseudo_rank_terms,
    pseudo_target_losses,
    reachable,
    recovery_diagnostics,
    stable_subset,
    supervised_terms,
)
from clss.schema import param


@dataclass
class GCLSSParams(CLSSParams):
    """``mode``: ``"clean"`` or ``"faithful"`` (see the module docstring). ``keep``: unlabelled rows kept
    by the stable-subset DP, a fraction in (0, 1] or a count (official: 8 of 8 on AgeDB/UTK, 5 of 8 on
    IXI). ``selection``: the DP's objective, ``"min"`` (the paper: most stable rows) or
    ``"max_faithful"`` (the official code's direction; the faithful mode's default when left at
    ``None``). ``anchor_extremes``: pass-1 random anchors besides the max and min in faithful mode (5).
    ``perturbation``: ``"cv"`` (std / (|mean| + eps): the paper's ratio, guarded at mean 0) or ``"std"``.
    ``negative``: policy for negative similarities in the anchored system (``"clip"`` or ``"shift"``).
    ``pseudo_weight``: weight of pseudo-labelled rows when ``unlabeled_loss`` is a contrastive loss
    (labelled rows weigh 1). ``rank_rows``: unlabelled rows drawn per step before the two passes and the
    selection (all when ``None``; the image scripts use batches of 8). ``diagnostics_every``: also log
    the recovery tolerance against the measured perturbation (two small symmetric eigendecompositions).
    ``memory``: rows of the clean mode's no-gradient pass, ``"unlabeled"`` or ``"all"`` (module
    docstring)."""

    mode: str = param("clean", "str", choices=("clean", "faithful"))
    keep: float = param(0.75, gt=0, check=lambda k: k <= 1 or (k >= 2 and k.is_integer()),
                        describe="a fraction in (0, 1] or a count >= 2")
    selection: str | None = param(None, "str", choices=("min", "max_faithful", None))
    anchor_extremes: int = param(5, "int", ge=0)
    perturbation: str = param("cv", "str", choices=("cv", "std"))
    negative: str = param("clip", "str", choices=("clip", "shift"))
    pseudo_weight: float = param(1.0, ge=0)
    memory: str = param("unlabeled", "str", choices=("unlabeled", "all"))


@register_method
class GCLSS(Method):
    """GCLSS: label-anchored pseudo-values over the joint batch, stable-subset selection."""

    name = "gclss"
    description = "GCLSS: label-anchored seriation of the joint batch, stable-subset selection (DP)"
    semi_supervised = True
    Params = GCLSSParams
    params: GCLSSParams
    presets = CLSS.presets  # the synthetic GCLSS script keeps CLSS's unlabelled weights and subsample

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.rank_loss, self.consistency_loss = pseudo_target_losses(
            p.unlabeled_loss, lambda_val=p.lambda_val, oe_variant=p.oe_variant)
        self.generator = torch.Generator().manual_seed(p.seed)

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        """Clean mode: the gradient pass on ``"weak"``, the memory pass on a second draw ``"weak@2"``;
        faithful mode re-forwards one batch (``"weak"``), as the official code."""
        return ("weak",) if self.params.mode == "faithful" else ("weak", "weak@2")

    @property
    def labeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        """``"weak@2"`` too when the memory pass covers the labelled rows (clean mode, ``memory="all"``)."""
        both = self.params.mode == "clean" and self.params.memory == "all"
        return ("weak", "weak@2") if both else ("weak",)

    # ------------------------------------------------------------------------------------ shared
    def _supervised(self, labeled: Batch, pred: torch.Tensor, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        p = self.params
        return supervised_terms(pred, feat, labeled.y, regression=p.regression_loss,
                                contrastive=self.labeled_contrastive, weight=p.contrastive_weight,
                                rows=p.contrastive_rows, generator=self.generator)

    def _pseudo(self, pred_u: torch.Tensor, emb_u: torch.Tensor, values: torch.Tensor, ranks: torch.Tensor,
                feat_l: torch.Tensor, y_l: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_UR + L_UC on the pseudo-ranks, or (``unlabeled_loss`` a contrastive loss) that loss over the
        labelled rows and the pseudo-valued unlabelled rows, + L_UC."""
        p = self.params
        if p.unlabeled_loss == "rank":
            return pseudo_rank_terms(pred_u, emb_u, ranks, rank_loss=self.rank_loss, **self._consistency())
        return anchored_contrastive_terms(pred_u, emb_u, values, ranks, feat_l, y_l, loss=self.rank_loss,
                                          pseudo_weight=p.pseudo_weight, **self._consistency())

    def _consistency(self) -> dict[str, Any]:
        """The term weights and the L_UC loss, as the pseudo-target parts take them."""
        p = self.params
        return {**unlabeled_weights(p, self.unlabeled_factor(p.unlabeled_weight)),
                "consistency_loss": self.consistency_loss}

    # ------------------------------------------------------------------------------------ steps
    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if unlabeled is None or len(unlabeled) < 2:
            raise ValueError(f"{self.name} needs an unlabelled batch of at least 2 rows")
        if labeled.y is None or len(labeled) < 2:
            raise ValueError(f"{self.name} needs at least 2 labelled rows with targets")
        unlabeled = draw_rows(unlabeled, self.params.rank_rows, self.generator)
        self.model.train()
        if self.params.mode == "faithful":
            return self._faithful_step(labeled, unlabeled, step)
        return self._clean_step(labeled, unlabeled, step)

    def _clean_step(self, labeled: Batch, unlabeled: Batch, step: int) -> dict[str, float]:
        p = self.params
        n_l, y = len(labeled), labeled.y
        assert y is not None  # checked by training_step
        # Memory pass (no gradient) on the second weak draw, gradient pass on the first.
        with torch.no_grad():
            feat0 = self(torch.cat([labeled.view("weak@2"), unlabeled.view("weak@2")]) if p.memory == "all"
                         else unlabeled.view("weak@2"))["feat"]
        out1 = self(torch.cat([labeled.view("weak"), unlabeled.view("weak")]))
        pred1, feat1 = out1["pred"], out1["feat"]
        parts = self._supervised(labeled, pred1[:n_l], feat1[:n_l])
        feat0_u = feat0[-len(unlabeled):]
        sel = stable_subset(feat0_u, feat1[n_l:], p.keep, perturbation=p.perturbation,
                            objective=p.selection or "min")
        # Only the kept unlabelled rows carry gradient; the labelled rows serve as anchors.
        p0_u = F.normalize(feat0_u[sel], dim=-1)
        p1_u = F.normalize(feat1[n_l:][sel], dim=-1)
        p_mean_u = (p0_u + p1_u) / 2
        with torch.no_grad():
            p1_l = F.normalize(feat1[:n_l], dim=-1)
            p0_l = F.normalize(feat0[:n_l], dim=-1) if p.memory == "all" else p1_l
            p_mean_l = (p0_l + p1_l) / 2
        # S̄ = P̄ P̄ᵀ, the 4-way cross-view average, through its unlabelled rows
        values, ranks = anchored_targets(p_mean_u, p_mean_l, y, negative=p.negative)
        rows, sel, values, ranks = reachable(sel, values, ranks)
        if sel.shape[0] >= 2:
            parts.update(self._pseudo(pred1[n_l:][sel], p_mean_u[rows], values, ranks, feat1[:n_l], y))
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        logs = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "unlabeled_kept": float(sel.shape[0]), **stats}
        if diagnose(p.diagnostics_every, step):
            logs.update(recovery_diagnostics(p0_u, p1_u, p0_l, p1_l, negative=p.negative))
            if unlabeled.y is not None:
                logs["pseudo_value_tau"] = kendall_tau(values, unlabeled.y[sel])
        return logs

    def _faithful_step(self, labeled: Batch, unlabeled: Batch, step: int) -> dict[str, float]:
        n_l, n_u = len(labeled), len(unlabeled)
        p = self.params
        n_anchor = 2 + p.anchor_extremes
        if n_l < n_anchor:
            raise ValueError(f"faithful GCLSS anchors pass 1 on {n_anchor} labelled rows (max, min and "
                             f"{p.anchor_extremes} random); the labelled batch has {n_l}")
        y = labeled.y
        assert y is not None  # checked by training_step
        hi, lo = int(torch.argmax(y)), int(torch.argmin(y))
        if hi == lo:
            raise ValueError("faithful GCLSS needs distinct labels in the batch (max == min)")
        others = torch.ones(n_l, dtype=torch.bool)
        others[[hi, lo]] = False
        rest = others.nonzero().squeeze(-1)
        extra = rest[torch.randperm(rest.numel(), generator=self.generator)[: p.anchor_extremes]]
        anchor_rows = torch.cat([torch.tensor([hi, lo]), extra]).to(y.device)

        # Pass 1: 7 anchors, unlabelled block of every unlabelled row, optimiser step.
        x = torch.cat([labeled.view("weak"), unlabeled.view("weak")])
        out0 = self(x)
        pred0, feat0 = out0["pred"], out0["feat"]
        parts1 = self._supervised(labeled, pred0[:n_l], feat0[:n_l])
        emb0 = F.normalize(feat0, dim=-1)
        values1, ranks1 = anchored_targets(emb0[n_l:], emb0[:n_l][anchor_rows], y[anchor_rows],
                                           negative=p.negative)
        _, rows1, _, ranks1 = reachable(torch.arange(n_u, device=y.device), values1, ranks1)
        if rows1.shape[0] >= 2:
            parts1.update(pseudo_rank_terms(pred0[n_l:][rows1], feat0[n_l:][rows1], ranks1,
                                            rank_loss=self.rank_loss, **self._consistency()))
        loss1 = torch.stack(list(parts1.values())).sum()
        stats1 = self.optimize(loss1, parts1)

        # Pass 2: re-forward with the updated weights, DP selection, all labelled anchors, second step.
        out1 = self(x)
        pred1, feat1 = out1["pred"], out1["feat"]
        parts2 = self._supervised(labeled, pred1[:n_l], feat1[:n_l])
        sel = stable_subset(feat0[n_l:].detach(), feat1[n_l:], p.keep, perturbation=p.perturbation,
                            objective=p.selection or "max_faithful")
        emb0 = emb0.detach()
        p_mean_u = (emb0[n_l:][sel] + F.normalize(feat1[n_l:][sel], dim=-1)) / 2
        p_mean_l = (emb0[:n_l] + F.normalize(feat1[:n_l].detach(), dim=-1)) / 2
        values, ranks2 = anchored_targets(p_mean_u, p_mean_l, y, negative=p.negative)
        rows, sel, values, ranks2 = reachable(sel, values, ranks2)
        if sel.shape[0] >= 2:
            parts2.update(self._pseudo(pred1[n_l:][sel], p_mean_u[rows], values, ranks2, feat1[:n_l], y))
        loss2 = torch.stack(list(parts2.values())).sum()
        stats2 = self.optimize(loss2, parts2)
        logs = {"loss": float(loss1.detach() + loss2.detach()), "loss_pass1": float(loss1.detach()),
                "loss_pass2": float(loss2.detach()), **{k: float(v.detach()) for k, v in parts2.items()},
                "unlabeled_kept": float(sel.shape[0]), **_two_steps(stats1, stats2)}
        if unlabeled.y is not None and diagnose(p.diagnostics_every, step):
            logs["pseudo_value_tau"] = kendall_tau(values, unlabeled.y[sel])
        return logs


def _two_steps(first: dict[str, float], second: dict[str, float]) -> dict[str, float]:
    """The optimiser statistics of an iteration with two steps: the second step's, with the skipped fp16
    steps of both counted."""
    out = dict(second)
    if "amp_skipped" in second:
        out["amp_skipped"] = first.get("amp_skipped", 0.0) + second["amp_skipped"]
    return out
