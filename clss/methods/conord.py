"""ConOrd (contrastive order learning) as its paper trains and predicts: the ConOrd loss (eq. 3) plus the
centre loss with learnable reference points (eq. 8) on unit embeddings, and k-NN inference over the
labelled training rows' embeddings (eq. 10) as the prediction.

Per step, the labelled rows' features (one ``"weak"`` view: the paper needs no augmentation) are
L2-normalised; the loss is ``L_ConOrd(z, y) + center_weight · L_center(z, bin(y))`` with one reference
point per equal-width bin of the labelled targets' range (``bins``; the paper has one per integer rank).
Before every evaluation the engine embeds the labelled training rows with the current weights
(:meth:`ConOrd.index_rows`); :meth:`ConOrd.predict` is the mean target of the ``k`` nearest of them. The
index is saved with the weights, so ``clss eval`` and ``clss predict`` answer from the checkpoint alone
(``last.pt`` holds the index of its run's last evaluation). The model's regression head is not used.

Semi-supervised form (``unlabeled_weight > 0``; no official code offers it): seriation pseudo-targets of
the unlabelled rows (``pseudo_targets``: label-anchored pseudo-values over the labelled and unlabelled
rows, or spectral pseudo-ranks of the unlabelled rows mapped onto the labelled targets' distribution; see
:mod:`clss.methods.probe`) enter the ConOrd loss as the term ``unlabeled_conord``.
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
from clss.methods.common import diagnose, kendall_tau
from clss.methods.modes import evaluating
from clss.methods.parts.recipes import (
    PseudoTargetParams,
    bin_index,
    equal_width_edges,
    joint_inputs,
    linear_head,
    pseudo_target_term,
    seriation_pseudo_targets,
)
from clss.schema import param


@dataclass
class ConOrdParams(PseudoTargetParams):
    """``temperature`` τ (0.07), ``eps`` ε (1e-7), ``similarity`` κ, ``affinity`` a and ``disparity`` b: the
    paper's best configuration by default (method VIII of its Table 1; choices as
    :class:`clss.losses.ConOrdLoss`). ``bins``: reference points of the centre loss, one per equal-width bin
    of the labelled targets' range; ``center_weight`` its weight (the paper adds it at 1, summed over the
    batch). ``k``: neighbours of the inference (the paper uses 4 to 60; its results are stable in k).
    ``unlabeled_weight``, ``pseudo_targets``, ``pseudo_weight``, ``diagnostics_every`` as for ``rnc``.
    ``seed`` seeds the method's own draws."""

    temperature: float = param(0.07, gt=0)
    eps: float = param(1e-7, gt=0)
    similarity: str = param("sq_l2", "str", choices=("dot", "sq_l2"))
    affinity: str = param("inv_sq", "str", choices=("inv_abs", "inv_sq"))
    disparity: str = param("sq", "str", choices=("one", "abs", "sq"))
    bins: int = param(50, "int", ge=2)
    center_weight: float = param(1.0, ge=0)
    k: int = param(10, "int", ge=1)


@register_method
class ConOrd(Method):
    """ConOrd + centre loss on unit embeddings; k-NN inference over the labelled training rows."""

    name = "conord"
    description = "ConOrd + centre loss, k-NN inference over training embeddings (+ pseudo-targets)"
    semi_supervised = True
    unlabeled_optional = True
    Params: ClassVar[type[MethodParams]] = ConOrdParams
    params: ConOrdParams
    indexes_training_rows = True
    ddp_unused_parameters = True  # the network's regression head is unused (k-NN predicts)

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        head = linear_head(self.model, self.name)
        self.loss = losses.ConOrdLoss(temperature=p.temperature, eps=p.eps, similarity=p.similarity,
                                      affinity=p.affinity, disparity=p.disparity)
        self.center = losses.ConOrdCenterLoss(p.bins, head.in_features).to(head.weight)
        self.generator = torch.Generator().manual_seed(p.seed)
        self.edges: torch.Tensor | None = None
        self.index_emb: torch.Tensor | None = None
        self.index_y: torch.Tensor | None = None

    def setup(self, context: TrainingContext) -> None:
        super().setup(context)
        self.edges = equal_width_edges(context.labeled_y, self.params.bins, self.name)

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimiser over the model and the reference points."""
        if not self.optimizers:
            self.optimizers = [self.optimizer_config.build(list(self.model.parameters())
                                                           + list(self.center.parameters()))]
        return self.optimizers

    # ------------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Unit embeddings ``[B, d]`` of inputs ``x`` with the model in evaluation mode."""
        with evaluating(self.model):
            return F.normalize(self.model(x)["feat"], dim=-1)

    def index_rows(self, emb: torch.Tensor, y: torch.Tensor) -> None:
        """Keep the embeddings ``[M, d]`` (:meth:`embed`) and standardised targets ``[M]`` of the labelled
        training rows that :meth:`predict` searches."""
        if emb.dim() != 2 or y.dim() != 1 or emb.shape[0] != y.shape[0] or emb.shape[0] == 0:
            raise ValueError(f"{self.name}: index_rows needs embeddings [M, d] and targets [M] with M >= 1, "
                             f"got {list(emb.shape)} and {list(y.shape)}")
        self.index_emb, self.index_y = emb.detach().clone(), y.detach().clone().to(emb.dtype)

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions ``[B]``: the mean target of the ``k`` nearest indexed training rows (all
        of them when fewer are indexed)."""
        if self.index_emb is None or self.index_y is None:
            raise ValueError(f"{self.name} predicts from the labelled training rows' embeddings and none are "
                             "indexed: the engine indexes them before each evaluation (or call "
                             "method.index_rows(method.embed(x_labelled), y_labelled))")
        z = self.embed(x)
        emb, y = self.index_emb.to(z), self.index_y.to(z)
        return losses.knn_predict(emb, y, z, k=min(self.params.k, emb.shape[0]))

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        if self.index_emb is not None and self.index_y is not None:
            state["index"] = {"emb": self.index_emb, "y": self.index_y}
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        if "index" in state:
            self.index_rows(state["index"]["emb"], state["index"]["y"])

    # ------------------------------------------------------------------------------------ step
    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        p = self.params
        y = labeled.y
        if y is None or len(labeled) < 2:
            raise ValueError(f"{self.name} needs at least 2 labelled rows with targets")
        edges = self.edges if self.edges is not None else equal_width_edges(
            self.require_context().labeled_y, p.bins, self.name)
        self.model.train()
        n_l = len(labeled)
        x, with_u = joint_inputs(labeled, unlabeled, ("weak",), p.unlabeled_weight)
        z = F.normalize(self(x)["feat"], dim=-1)
        z_l = z[:n_l]
        parts = {"conord": self.loss(z_l, y),
                 "center": p.center_weight * self.center(z_l, bin_index(y, edges))}
        logs: dict[str, float] = {}
        if with_u:
            assert unlabeled is not None
            z_u = z[n_l:]
            values, rows = seriation_pseudo_targets(p.pseudo_targets, z_l.detach(), z_u.detach(), y,
                                                    self.require_context().labeled_y)
            if rows.numel() >= 2:
                term = pseudo_target_term(self.loss, p.pseudo_targets, z_l, z_u[rows], y, values,
                                          p.pseudo_weight)
                parts["unlabeled_conord"] = p.unlabeled_weight * term
                if unlabeled.y is not None and diagnose(p.diagnostics_every, step):
                    logs["pseudo_target_tau"] = abs(kendall_tau(values, unlabeled.y[rows]))
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats,
                **logs}
