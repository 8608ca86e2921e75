"""Representation learning, then a frozen linear probe, in one run: the protocols of Rank-N-Contrast
(``rnc``; Zha et al., NeurIPS 2023), SupReMix (``supremix``; Wu et al., 2023) and SupCon (``supcon``;
Khosla et al., NeurIPS 2020, on binned targets).

**Stage 1** (the first ``stage1_steps`` steps) trains the encoder — every parameter of the model except its
linear regression head, plus a projection head where the recipe has one — with the recipe's loss on two
augmented views (``view`` and a second independent draw of it) of every labelled row, in one forward pass.

**Stage 2** (the remaining ``stage2_steps``) freezes the encoder: evaluation mode (batch-norm statistics and
dropout fixed) and no gradient, so no encoder parameter or buffer changes. The model's linear head is fitted
on the frozen features of the ``"weak"`` view with the probe loss and optimiser. Each stage has its own
optimiser, and the engine runs the learning-rate schedule over each stage afresh; it evaluates and selects
the best checkpoint only in stage 2 (before it, the head is untrained).

**Semi-supervised form** (``unlabeled_weight > 0``): the unlabelled rows get pseudo-targets from seriation
of the encoder's features and enter the same loss, weighted, as the term ``unlabeled_<recipe>``:

- ``pseudo_targets="anchored"`` (GCLSS's mechanism): label-anchored pseudo-values (the harmonic solution
  anchored on the labelled rows of the batch, from the cosine similarities of the two views' averaged unit
  features) in the target's own scale; the loss runs over the labelled and the pseudo-valued rows together,
  pseudo-valued anchors weighted ``pseudo_weight``;
- ``pseudo_targets="ranks"`` (CLSS's mechanism): the spectral seriation of the unlabelled rows alone, its
  pseudo-ranks mapped onto the labelled targets' distribution (so bins and windows keep their meaning); the
  loss runs over the unlabelled rows. The ranks' direction is arbitrary, and these losses do not depend on
  it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from clss import losses
from clss.methods.base import Batch, Method, MethodParams, OptimizerConfig, TrainingContext, register_method
from clss.methods.common import REGRESSION_LOSSES, diagnose, kendall_tau, regression_loss
from clss.methods.parts.recipes import (
    STEPS_SPEC,
    PseudoTargetParams,
    bin_index,
    equal_width_edges,
    is_step_spec,
    joint_inputs,
    linear_head,
    pseudo_target_term,
    seriation_pseudo_targets,
    steps_of,
)
from clss.schema import param


@dataclass
class ProbeParams(PseudoTargetParams):
    """Shared by the representation-then-probe recipes.

    ``stage1_steps`` / ``stage2_steps``: steps of each stage, a count or a fraction in (0, 1) of the run's
    ``steps`` (rounded); when one is unset it is the rest of the run, when both are unset the run is split
    in half, when both are set they must add up to the run's ``steps``. ``view``: the augmentation
    pipeline of stage 1's two views (``"strong"``: photometric ops and cutout on images; on data without
    augmentation every view is the plain input). ``temperature``:
    the loss's τ. ``projection``: ``"mlp"`` puts Linear–BatchNorm–ReLU–Linear (to ``projection_dim``)
    after the encoder's feature in stage 1 (discarded by the probe), ``"none"`` uses the feature itself.
    ``probe_loss``, ``probe_optimizer``, ``probe_lr``, ``probe_weight_decay``: stage 2's regression loss
    and optimiser (momentum 0.9 for SGD). The probe's optimiser defaults to Adam at 0.01 for every recipe:
    RnC's official probe (SGD at 0.05) was tuned for ResNet features on faces and diverges on smaller
    models' features (digits-rotation, seed 0: test MAE 16.1; Adam at 1e-3, 1e-2, 1e-1: 7.7, 6.9, 7.5;
    SupReMix 10.0, 9.4, 9.4; SupCon 9.2, 8.2, 8.1); the shipped tables of the papers set the papers'
    probes. ``unlabeled_weight``,
    ``pseudo_targets``, ``pseudo_weight``, ``diagnostics_every``, ``seed``: the semi-supervised form
    (:class:`clss.methods.parts.recipes.PseudoTargetParams`; module docstring)."""

    stage1_steps: float | None = param(None, gt=0, optional=True, check=is_step_spec, describe=STEPS_SPEC)
    stage2_steps: float | None = param(None, gt=0, optional=True, check=is_step_spec, describe=STEPS_SPEC)
    view: str = param("strong", "str", choices=("weak", "strong"))
    temperature: float = param(2.0, gt=0)
    projection: str = param("none", "str", choices=("none", "mlp"))
    projection_dim: int = param(128, "int", ge=1)
    probe_loss: str = param("l1", "str", choices=REGRESSION_LOSSES)
    probe_optimizer: str = param("adam", "str", choices=("adam", "adamw", "sgd"))
    probe_lr: float = param(0.01, gt=0)
    probe_weight_decay: float = param(0.0, ge=0)


def stage_lengths(total: int, stage1: float | None, stage2: float | None, method: str) -> tuple[int, int]:
    """``(stage1_steps, stage2_steps)`` of a run of ``total`` steps (see :class:`ProbeParams`)."""
    if total < 2:
        raise ValueError(f"{method} trains in two stages and needs steps >= 2, got {total}")
    first, second = (None if s is None else steps_of(s, total) for s in (stage1, stage2))
    if first is None and second is None:
        first = total // 2
    if first is None:
        first = total - second  # type: ignore[operator]
    if second is None:
        second = total - first
    if first < 1 or second < 1 or first + second != total:
        raise ValueError(f"{method}: stage1_steps ({first}) + stage2_steps ({second}) must add up to "
                         f"the run's steps ({total}), each at least 1: set --steps to their sum or give one "
                         "stage")
    return first, second


def projection_head(width: int, dim: int) -> nn.Module:
    """Linear(width, width)–BatchNorm–ReLU–Linear(width, dim): the projection of SupCon/SupReMix."""
    return nn.Sequential(nn.Linear(width, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True),
                         nn.Linear(width, dim))


class RepresentationProbe(Method):
    """Base of the recipes: subclasses set the name, ``Params``, ``normalize`` and :meth:`contrast`."""

    semi_supervised = True
    unlabeled_optional = True
    staged = True
    ddp_unused_parameters = True  # stage 1 leaves the linear head unused, stage 2 freezes the encoder
    Params: ClassVar[type[MethodParams]] = ProbeParams
    params: ProbeParams
    #: Whether stage 1's loss sees L2-normalised embeddings (SupCon, SupReMix) or raw features (RnC).
    normalize: ClassVar[bool] = False

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        head = linear_head(self.model, self.name)
        p = self.params
        self.projector = (projection_head(head.in_features, p.projection_dim).to(head.weight)
                          if p.projection == "mlp" else nn.Identity())  # the model's dtype and device
        self.generator = torch.Generator().manual_seed(p.seed)
        self.stages: tuple[int, int] | None = None

    @property
    def labeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        """Stage 1's two draws of ``view`` and the probe's ``"weak"`` view."""
        v = self.params.view
        return tuple(dict.fromkeys((v, f"{v}@2", "weak")))

    @property
    def unlabeled_views(self) -> tuple[str, ...]:  # type: ignore[override]
        v = self.params.view
        return (v, f"{v}@2")

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        p = self.params
        self.stages = stage_lengths(context.total_steps, p.stage1_steps, p.stage2_steps, self.name)

    def _stages(self, total: int | None = None) -> tuple[int, int]:
        if self.stages is None:
            total = self.require_context().total_steps if total is None else total
            self.stages = stage_lengths(total, self.params.stage1_steps, self.params.stage2_steps, self.name)
        return self.stages

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Stage 1's optimiser (the configured one) over the encoder and projection, stage 2's (the probe
        settings) over the head alone."""
        if not self.optimizers:
            p = self.params
            head = {id(q) for q in self.model.head.parameters()}
            encoder = [q for q in self.model.parameters() if id(q) not in head]
            probe = OptimizerConfig(name=p.probe_optimizer, lr=p.probe_lr, weight_decay=p.probe_weight_decay)
            self.optimizers = [self.optimizer_config.build(encoder + list(self.projector.parameters())),
                               probe.build(self.model.head.parameters())]
        return self.optimizers

    def optimizer_windows(self, total_steps: int) -> list[tuple[int, int]]:
        first, second = self._stages(total_steps)
        return [(0, first), (first, second)]

    def predicts_after(self, step: int) -> bool:
        return step > self._stages()[0]

    # ------------------------------------------------------------------------------------ the recipe
    def contrast(self, z: torch.Tensor, targets: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        """The recipe's loss of embeddings ``z`` ``[N, 2, d]`` (two views per row) with targets ``[N]``
        (standardised, or pseudo-values) and anchor weights ``[N]``."""
        raise NotImplementedError

    def embed(self, feat: torch.Tensor) -> torch.Tensor:
        """Stage 1's embedding of encoder features ``[n, d]``: the projection, normalised if the loss
        wants unit vectors."""
        z = self.projector(feat)
        return F.normalize(z, dim=-1) if self.normalize else z

    # ------------------------------------------------------------------------------------ steps
    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        if labeled.y is None or len(labeled) < 2:
            raise ValueError(f"{self.name} needs at least 2 labelled rows with targets")
        if step < self._stages()[0]:
            return self._representation_step(labeled, unlabeled, step)
        return self._probe_step(labeled)

    def _representation_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        p = self.params
        v1, v2 = p.view, f"{p.view}@2"
        y = labeled.y
        assert y is not None  # checked by training_step
        self.model.train()
        self.projector.train()
        n_l = len(labeled)
        # one forward over every view: batch-norm statistics of the whole batch, as the papers' two-view batch
        x, with_u = joint_inputs(labeled, unlabeled, (v1, v2), p.unlabeled_weight)
        feat = self(x)["feat"]
        z = self.embed(feat)
        z_l = torch.stack([z[:n_l], z[n_l:2 * n_l]], dim=1)
        parts = {self.name: self.contrast(z_l, y)}
        logs: dict[str, float] = {}
        if with_u:
            assert unlabeled is not None
            n_u = len(unlabeled)
            z_u = torch.stack([z[2 * n_l:2 * n_l + n_u], z[2 * n_l + n_u:]], dim=1)
            f = F.normalize(feat.detach(), dim=-1)
            mean_l = (f[:n_l] + f[n_l:2 * n_l]) / 2
            mean_u = (f[2 * n_l:2 * n_l + n_u] + f[2 * n_l + n_u:]) / 2
            term, targets, rows = self._pseudo_term(z_l, z_u, y, mean_l, mean_u)
            if term is not None:
                parts[f"unlabeled_{self.name}"] = p.unlabeled_weight * term
                if unlabeled.y is not None and diagnose(p.diagnostics_every, step) and rows.numel() >= 2:
                    logs["pseudo_target_tau"] = abs(kendall_tau(targets, unlabeled.y[rows]))
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts, self.configure_optimizers()[0])
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats,
                **logs}

    def _pseudo_term(self, z_l: torch.Tensor, z_u: torch.Tensor, y: torch.Tensor, mean_l: torch.Tensor,
                     mean_u: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """The loss on pseudo-targets (``None`` when fewer than 2 unlabelled rows get one), the pseudo-targets
        and the unlabelled rows they belong to."""
        p = self.params
        values, rows = seriation_pseudo_targets(p.pseudo_targets, mean_l, mean_u, y,
                                                self.require_context().labeled_y)
        if rows.numel() < 2:
            return None, values, rows
        term = pseudo_target_term(self.contrast, p.pseudo_targets, z_l, z_u[rows], y, values, p.pseudo_weight)
        return term, values, rows

    def _probe_step(self, labeled: Batch) -> dict[str, float]:
        """Stage 2: the head on frozen features (the encoder in evaluation mode, outside autograd)."""
        y = labeled.y
        assert y is not None  # checked by training_step
        self.model.eval()
        with torch.no_grad():
            feat = self(labeled.view("weak"))["feat"]
        pred = self.model.head(feat).squeeze(-1)
        parts = {"probe": regression_loss(pred, y, self.params.probe_loss)}
        stats = self.optimize(parts["probe"], parts, self.configure_optimizers()[1])
        return {"loss": float(parts["probe"].detach()), "probe": float(parts["probe"].detach()), **stats}


@dataclass
class RnCParams(ProbeParams):
    """Rank-N-Contrast: τ 2 on raw features with negative L2 similarity, no projection; probe: L1 loss
    (official ``main_rnc.py`` / ``main_linear.py``, whose SGD at lr 0.05 the ``rnc-agedb-dir`` table
    sets)."""


@register_method
class RnC(RepresentationProbe):
    """Rank-N-Contrast pretraining, then a frozen linear probe."""

    name = "rnc"
    description = "Rank-N-Contrast encoder on two views, then a linear probe (+ pseudo-targets)"
    Params = RnCParams
    params: RnCParams

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        self.loss = losses.RnCLoss(temperature=self.params.temperature)

    def contrast(self, z: torch.Tensor, targets: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss(z, targets, weights=weights)


@dataclass
class SupReMixParams(ProbeParams):
    """SupReMix: τ 0.5 (AgeDB) on normalised projections (MLP head to 128); Mix-neg λ ~ Beta(``alpha``,
    ``beta``) (2, 8), Mix-pos window ``window`` in standardised target units (0.4 ≈ the official 5 years
    on AgeDB's age spread); probe loss MSE (official ``train_linear.py``, whose Adam at lr 0.1 the
    ``supremix-agedb-dir`` table sets)."""

    temperature: float = param(0.5, gt=0)
    projection: str = param("mlp", "str", choices=("none", "mlp"))
    probe_loss: str = param("mse", "str", choices=REGRESSION_LOSSES)
    window: float = param(0.4, gt=0)
    alpha: float = param(2.0, gt=0)
    beta: float = param(8.0, gt=0)


@register_method
class SupReMix(RepresentationProbe):
    """SupReMix pretraining, then a frozen linear probe."""

    name = "supremix"
    description = "SupReMix encoder on two views, then a linear probe (+ pseudo-targets)"
    Params = SupReMixParams
    params: SupReMixParams
    normalize = True

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.loss = losses.SupReMixLoss(temperature=p.temperature, alpha=p.alpha, beta=p.beta,
                                        window=p.window)

    def contrast(self, z: torch.Tensor, targets: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss(z, targets, weights=weights, generator=self.generator)


@dataclass
class SupConParams(ProbeParams):
    """SupCon on binned targets: τ 0.1 (README) on normalised projections (MLP head to 128); the targets
    are cut into ``bins`` equal-width classes over the labelled targets' range (rows beyond it join the
    end bins); probe as RnC's (SupCon has no regression probe of its own)."""

    temperature: float = param(0.1, gt=0)
    projection: str = param("mlp", "str", choices=("none", "mlp"))
    bins: int = param(20, "int", ge=2)


@register_method
class SupCon(RepresentationProbe):
    """SupCon pretraining on binned targets, then a frozen linear probe."""

    name = "supcon"
    description = "SupCon encoder on binned targets, then a linear probe (+ pseudo-targets)"
    Params = SupConParams
    params: SupConParams
    normalize = True

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        # the base temperature stays the official 0.07: the loss is scaled by τ / 0.07
        self.loss = losses.SupConLoss(temperature=self.params.temperature)
        self.edges: torch.Tensor | None = None

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        self.edges = equal_width_edges(context.labeled_y, self.params.bins, self.name)

    def classes(self, targets: torch.Tensor) -> torch.Tensor:
        """The bin index ``[N]`` of standardised targets (or pseudo-values)."""
        if self.edges is None:
            self.edges = equal_width_edges(self.require_context().labeled_y, self.params.bins, self.name)
        return bin_index(targets, self.edges)

    def contrast(self, z: torch.Tensor, targets: torch.Tensor,
                 weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.loss(z, self.classes(targets), weights=weights)
