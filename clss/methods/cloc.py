"""CLOC (Pitawela, Carneiro & Chen, CVPR 2025): ordinal classification with cross-entropy plus the
multi-margin N-pair loss, and its two-phase schedule, in one run.

The targets are ordered classes. With ``bins=None`` every distinct labelled target value is a class (class
indices such as Adience's eight age groups, or integer ages); with ``bins=K`` the labelled targets' range is
cut into ``K`` equal-width classes (continuous targets, on request). A classifier on the model's
feature (two linear layers with a ReLU, as the paper's) gives ``K`` logits (the model's regression head is
not used); the loss is
``CE(logits, c) + mmnp_weight · MMNP(feature, c)`` with ``K − 1`` learnable gaps between neighbouring classes
(cumulative pair margins). **Phase 1** (the first ``phase1_steps``) learns the model and the margins
jointly; **phase 2** freezes the margins (no gradient: they stay bit for bit) and trains the model alone,
the official two runs as one. The prediction is the value of the arg-max class (the class index for
index targets, the bin centre for binned ones), so the run's MAE is in class units for index targets; the
engine adds accuracy, MAE in classes and quadratic weighted kappa (:meth:`CLOC.metrics`), writes the
learned margins to ``method.json`` and plots them.

Semi-supervised form (``unlabeled_weight > 0``; not in the paper): seriation pseudo-targets of the
unlabelled rows (``pseudo_targets`` as for ``rnc``: label-anchored pseudo-values, or spectral pseudo-ranks
mapped onto the labelled targets' distribution) are turned into pseudo-classes and enter the multi-margin
N-pair loss as the term ``unlabeled_mmnp`` (anchored: over the labelled and pseudo-classed rows together,
pseudo-classed anchors weighted ``pseudo_weight``; ranks: over the unlabelled rows); the cross-entropy
stays on the labelled rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from clss import losses
from clss.methods.base import Batch, Method, MethodParams, OptimizerConfig, TrainingContext, register_method
from clss.methods.common import diagnose, kendall_tau
from clss.methods.modes import evaluating
from clss.methods.parts.recipes import (
    STEPS_SPEC,
    PseudoTargetParams,
    is_step_spec,
    joint_inputs,
    linear_head,
    pseudo_target_term,
    seriation_pseudo_targets,
    steps_of,
)
from clss.metrics import ordinal_classification_metrics
from clss.schema import param

#: Distinct labelled values above which ``bins=None`` is refused (a continuous target: bin it).
MAX_CLASSES = 200


@dataclass
class CLOCParams(PseudoTargetParams):
    """``bins``: ``None`` (every distinct labelled value is a class, at most 200) or the number of
    equal-width classes over the labelled range. ``phase1_steps``: steps that learn the margins (a count or
    a fraction in (0, 1) of the run; default half). ``mmnp_weight``: weight of the multi-margin N-pair loss
    beside the cross-entropy (1). ``min_margin`` ρ: the lower bound of every gap (the paper's constraint;
    the official code uses 0). ``margin_init``: learnable gaps start uniform in this range (0.5, 1.0).
    ``normalization``: the N-pair sum's divisor, ``"paper"``, ``"mean"`` or ``"official"``
    (:class:`clss.losses.MultiMarginNPairLoss`). ``unlabeled_weight``, ``pseudo_targets``,
    ``pseudo_weight``, ``diagnostics_every``: the semi-supervised form (module docstring; as for ``rnc``).
    ``seed`` seeds the method's own draws."""

    bins: int | None = param(None, "int", ge=2, optional=True)
    phase1_steps: float | None = param(None, gt=0, optional=True, check=is_step_spec, describe=STEPS_SPEC)
    mmnp_weight: float = param(1.0, ge=0)
    min_margin: float = param(0.0, ge=0)
    margin_low: float = param(0.5, gt=0)
    margin_high: float = param(1.0, gt=0)
    normalization: str = param("official", "str", choices=("paper", "mean", "official"))


@register_method
class CLOC(Method):
    """CLOC: cross-entropy + multi-margin N-pair loss over ordered classes, margins learned then frozen."""

    name = "cloc"
    description = "CLOC ordinal classification: CE + multi-margin N-pair loss, margins learned then frozen"
    semi_supervised = True
    unlabeled_optional = True
    staged = True
    ddp_unused_parameters = True  # the network's regression head is unused (the classifier predicts)
    Params: ClassVar[type[MethodParams]] = CLOCParams
    params: CLOCParams

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        if not p.min_margin < p.margin_low <= p.margin_high:
            raise ValueError(f"cloc needs min_margin < margin_low <= margin_high, got {p.min_margin}, "
                             f"{p.margin_low}, {p.margin_high}")
        self.width = linear_head(self.model, self.name).in_features
        self.generator = torch.Generator().manual_seed(p.seed)
        # Built once the classes are known (setup, or a checkpoint's shapes: load_state_dict).
        self.classifier: nn.Sequential | None = None
        self.mmnp: losses.MultiMarginNPairLoss | None = None
        self.values: torch.Tensor | None = None  # [K] standardised value of each class (its prediction)
        self.edges: torch.Tensor | None = None  # [K - 1] inner bin edges (bins=K), else None

    # ------------------------------------------------------------------------------------ classes
    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        if self.classifier is None:
            values, edges = ordered_classes(context.labeled_y, self.params.bins)
            self._build(values, edges)
        self._phase1_steps(context.total_steps)

    def _build(self, values: torch.Tensor, edges: torch.Tensor | None) -> None:
        p = self.params
        head = self.model.head
        k = values.shape[0]
        self.values, self.edges = values.double().cpu(), None if edges is None else edges.double().cpu()
        # the paper's classifier: two linear layers on the encoder's feature (a ReLU between them)
        self.classifier = nn.Sequential(nn.Linear(self.width, self.width), nn.ReLU(),
                                        nn.Linear(self.width, k)).to(head.weight)
        self.mmnp = losses.MultiMarginNPairLoss(k, min_margin=p.min_margin,
                                                init=(p.margin_low, p.margin_high),
                                                normalization=p.normalization).to(head.weight.device)

    def _phase1_steps(self, total: int) -> int:
        s = self.params.phase1_steps
        first = total // 2 if s is None else steps_of(s, total)
        if not 1 <= first <= total:
            raise ValueError(f"cloc: phase1_steps ({first}) must be between 1 and the run's steps ({total})")
        return first

    def classes_of(self, y: torch.Tensor) -> torch.Tensor:
        """The class index ``[N]`` of standardised values: the nearest class value (distinct classes) or
        the bin (``bins=K``; values beyond the labelled range join the end classes)."""
        values = self._require_classes()
        y = y.detach().double()
        if self.edges is not None:
            return torch.bucketize(y, self.edges.to(y.device))
        return torch.argmin((y[:, None] - values.to(y.device)[None, :]).abs(), dim=1)

    def _require_classes(self) -> torch.Tensor:
        if self.values is None:
            raise ValueError("cloc learns its classes from the labelled targets: call method.setup("
                             "TrainingContext(...)) first (the engine does)")
        return self.values

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimiser over the model, the classifier and the margins (phase 2 stops the margins'
        gradient, so the optimiser leaves them as they are)."""
        if not self.optimizers:
            self._require_classes()
            assert self.classifier is not None and self.mmnp is not None
            self.optimizers = [self.optimizer_config.build(
                [*self.model.parameters(), *self.classifier.parameters(), *self.mmnp.parameters()])]
        return self.optimizers

    # ------------------------------------------------------------------------------------ state
    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        if self.values is not None:
            state["classes"] = {"values": self.values, "edges": self.edges}
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "classes" in state:
            self.values, self.edges = state["classes"]["values"], state["classes"]["edges"]

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> Any:
        """Build the classifier and margins from a checkpoint's shapes when :meth:`setup` has not run (a
        predictor loading a finished run), then load."""
        if self.classifier is None and any(k.startswith("classifier.") for k in state_dict):
            extra = state_dict.get("_extra_state", {}).get("classes")
            if extra is None:
                raise ValueError("cloc: the checkpoint has a classifier but no class values")
            self._build(extra["values"], extra["edges"])
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------------------------ step
    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        y = labeled.y
        if y is None or len(labeled) < 2:
            raise ValueError("cloc needs at least 2 labelled rows with targets")
        assert self.classifier is not None and self.mmnp is not None
        phase1 = step < self._phase1_steps(self.require_context().total_steps)
        self.mmnp.raw_margins.requires_grad_(phase1)  # phase 2: the margins are fixed
        if not phase1:
            self.mmnp.raw_margins.grad = None
        p = self.params
        self.model.train()
        n_l = len(labeled)
        x, with_u = joint_inputs(labeled, unlabeled, ("weak",), p.unlabeled_weight)
        feat = self(x)["feat"]
        feat_l = feat[:n_l]
        c = self.classes_of(y)
        parts = {"ce": F.cross_entropy(self.classifier(feat_l), c),
                 "mmnp": p.mmnp_weight * self.mmnp(feat_l, c)}
        logs: dict[str, float] = {}
        if with_u:
            assert unlabeled is not None
            unit = F.normalize(feat.detach(), dim=-1)
            values, rows = seriation_pseudo_targets(p.pseudo_targets, unit[:n_l], unit[n_l:], y,
                                                    self.require_context().labeled_y)
            if rows.numel() >= 2:
                term = pseudo_target_term(self.mmnp, p.pseudo_targets, feat_l, feat[n_l:][rows], c,
                                          self.classes_of(values), p.pseudo_weight)
                parts["unlabeled_mmnp"] = p.unlabeled_weight * term
                if unlabeled.y is not None and diagnose(p.diagnostics_every, step):
                    logs["pseudo_target_tau"] = abs(kendall_tau(values, unlabeled.y[rows]))
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "phase": 1.0 if phase1 else 2.0, **stats, **logs}

    # ------------------------------------------------------------------------------------ outputs
    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions ``[B]``: the value of the arg-max class."""
        values = self._require_classes()
        assert self.classifier is not None
        with evaluating(self.model):
            logits = self.classifier(self.model(x)["feat"])
        return values.to(logits.device, logits.dtype)[logits.argmax(dim=1)]

    def metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """Accuracy, MAE in classes and quadratic weighted kappa of standardised targets and predictions."""
        k = int(self._require_classes().shape[0])
        true = self.classes_of(torch.as_tensor(y_true)).numpy()
        pred = self.classes_of(torch.as_tensor(y_pred)).numpy()
        return ordinal_classification_metrics(true, pred, k)

    def artifacts(self) -> dict[str, Any]:
        """The learned gaps between neighbouring classes, the class positions and values: the engine writes
        them to ``method.json`` and plots the margins."""
        if self.mmnp is None or self.values is None:
            return {}
        gaps = self.mmnp.margins.double().cpu()
        return {"margins": gaps.tolist(), "positions": [0.0, *torch.cumsum(gaps, 0).tolist()],
                "class_values_standardised": self.values.tolist()}


def ordered_classes(labeled_y: torch.Tensor, bins: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The class values ``[K]`` (standardised) and inner bin edges of the labelled targets: every distinct
    value (``bins=None``) or ``bins`` equal-width bins (the values are the bin centres)."""
    y = labeled_y.detach().double().cpu()
    if y.numel() == 0 or not bool(torch.isfinite(y).all()):
        raise ValueError("cloc needs finite labelled targets")
    if bins is None:
        values = torch.unique(y)
        if values.numel() < 2:
            raise ValueError("cloc needs at least 2 distinct labelled classes")
        if values.numel() > MAX_CLASSES:
            raise ValueError(f"cloc: the labelled targets take {values.numel()} distinct values (more "
                             f"than {MAX_CLASSES}): a continuous target; set method_params.bins=K to cut it "
                             "into K ordered classes")
        return values, None
    lo, hi = float(y.min()), float(y.max())
    if hi <= lo:
        raise ValueError("cloc bins the labelled targets, which are all equal")
    grid = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    return (grid[:-1] + grid[1:]) / 2, grid[1:-1]
