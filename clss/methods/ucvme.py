"""UCVME: uncertainty-consistent variational model ensembling (Dai et al., AAAI 2023).

Two networks of the same architecture, each with a mean head and a log-variance head on its feature, both
behind Monte-Carlo dropout that stays on in training and in prediction. The heads belong to the method
(built from the model's ``feature_dim``): dropout must act between the feature and both heads, as in the
official ``resnet50_unc`` (one mask per head) and RankUp's USB port, so the model's own ``pred`` head is
not used. Per step (as ``ucvme_age.py`` of xmed-lab/UCVME), with ``s`` the log-variance::

    labelled:   Σ_k mean ½[exp(−s̄)(ŷ_k − y)² + s̄] + mean((s₁ − s₂)²),     s̄ = (s₁ + s₂)/2
    unlabelled: ȳ, s̃ = means over T no-grad stochastic passes of both networks (2T passes)
                Σ_k mean ½[exp(−s̃)(ŷ_k − ȳ)² + s̃] + Σ_k mean((s_k − s̃)²)
    total = labelled + w · unlabelled

with one backward and one optimiser step over both networks (per-parameter optimisers: the same as the
official one-per-network). Log-variances are clamped to ``[−log_var_limit, log_var_limit]`` so that
``exp(−s)`` cannot overflow. Prediction: the mean over ``predict_samples`` dropout samples of both
networks' mean heads.
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
from clss.methods.parts import evaluating, labeled_contrastive_term
from clss.methods.supervised import SupervisedParams
from clss.schema import param


def heteroscedastic_loss(pred: torch.Tensor, target: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """``mean ½[exp(−s)(ŷ − y)² + s]``, the Gaussian negative log-likelihood with log-variance ``s`` (up to a
    constant); all arguments ``[B]``."""
    return (0.5 * (torch.exp(-log_var) * (pred - target) ** 2 + log_var)).mean()


@dataclass
class UCVMEParams(SupervisedParams):
    """Hyper-parameters of :class:`UCVME`; defaults are the official UTKFace script's (``ucvme_age.py``).

    ``unlabeled_weight`` (w_ulb): 10 (UTKFace); the official IXI scripts use 1, the synthetic ones 5e-4 (the
    operator-sde preset) and RankUp's USB port 0.05 (the utkface-rankup preset). ``dropout`` (drp_p): the
    Monte-Carlo dropout on the feature, 0.05. ``pseudo_samples`` (samp_ssl): stochastic no-grad passes per
    network that make the unlabelled pseudo-targets, 5. ``predict_samples`` (samp_fq): dropout samples per
    network averaged in prediction, 5. ``log_var_limit``: log-variances are clamped to
    ``[−log_var_limit, log_var_limit]`` (our guard: ``exp(10) ≈ 2.2e4`` keeps every term finite; a head
    beyond the limit gets no gradient through the clamp). The labelled loss is the Gaussian likelihood of
    the squared error, so ``regression_loss`` is ``"mse"`` only; ``contrastive`` adds an optional labelled
    term on each network's feature (``"none"`` by default, as UCVME).
    """

    regression_loss: str = param("mse", "str", choices=("mse",))
    contrastive: str | None = param("none", "str", choices=(*CONTRASTIVE_LOSSES, "none", None))
    unlabeled_weight: float | str = param(10.0, ge=0, words=(AUTO,))
    auto_ratio: float = param(AUTO_RATIO, gt=0)
    dropout: float = param(0.05, ge=0, lt=1)
    pseudo_samples: int = param(5, "int", ge=1)
    predict_samples: int = param(5, "int", ge=1)
    log_var_limit: float = param(10.0, gt=0)


@register_method
class UCVME(Method):
    """Two networks with mean and log-variance heads under MC dropout, co-trained with
    variance-weighted pseudo-labels and consistent uncertainties."""

    name = "ucvme"
    description = "UCVME: two MC-dropout networks with variance heads, uncertainty-weighted pseudo-labels"
    semi_supervised = True
    Params = UCVMEParams
    params: UCVMEParams
    ddp_unused_parameters = True  # the networks' own regression heads are unused (UCVME's heads predict)
    # operator-sde: the synthetic scripts' w = 5e-4 (their MLP has no dropout, so their "MC" passes are all
    # equal; we keep dropout 0.05 on the feature). Faces: the UTKFace script's w = 10; no AgeDB script
    # exists, so AgeDB takes the UTKFace setting (our choice). The batch sizes and optimiser stay the
    # dataset preset's (the UTKFace script trained with lr 1e-4 and 32 unlabelled rows), so that every
    # method of a table is trained the same way. utkface-rankup: RankUp's UCVME config (w = 0.05, as many
    # unlabelled rows as labelled: uratio 1).
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "operator-sde": {"method_params": {"unlabeled_weight": 5e-4}},
        **{key: {"method_params": {"unlabeled_weight": 10.0}}
           for key in ("utkface", "agedb-dir", "agedb-dir-rgb")},
        "utkface-rankup": {"method_params": {"unlabeled_weight": 0.05}, "unlabeled_batch_size": 32},
    }

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__(model_fn, optimizer, params, precision)
        p = self.params
        self.model2 = model_fn()  # a second call: its own random initialisation
        d = getattr(self.model, "feature_dim", None)
        if not isinstance(d, int) or d < 1:
            raise TypeError(f"{self.name} builds its mean and log-variance heads from the model's "
                            f"feature_dim, but {type(self.model).__name__} has none (got {d!r}); give the "
                            "network an integer feature_dim attribute, the size of its 'feat' output (every "
                            "clss.models model has it)")
        self.mean_heads = nn.ModuleList([nn.Linear(d, 1), nn.Linear(d, 1)])
        self.logvar_heads = nn.ModuleList([nn.Linear(d, 1), nn.Linear(d, 1)])
        dtype = next(self.model.parameters()).dtype
        self.mean_heads.to(dtype)
        self.logvar_heads.to(dtype)
        self.labeled_contrastive = contrastive_loss(p.contrastive, oe_variant=p.oe_variant,
                                                    lambda_val=p.lambda_val)
        self.generator = torch.Generator().manual_seed(p.seed)

    def networks(self) -> list[nn.Module]:
        """Both networks train through :meth:`forward`."""
        return [self.model, self.model2]

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One optimiser over both networks and their heads (per-parameter updates: the same as one each)."""
        if not self.optimizers:
            self.optimizers = [self.optimizer_config.build(self.parameters())]
        return self.optimizers

    def heads(self, k: int, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network ``k``'s mean and clamped log-variance ``[N]`` from features ``[N, d]``, each head behind
        its own dropout mask (always on)."""
        p = self.params
        mean = self.mean_heads[k](F.dropout(feat, p.dropout, training=True)).squeeze(-1)
        log_var = self.logvar_heads[k](F.dropout(feat, p.dropout, training=True)).squeeze(-1)
        return mean, log_var.clamp(-p.log_var_limit, p.log_var_limit)

    def outputs(self, k: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, log-variance ``[B]`` and feature ``[B, d]`` of network ``k`` (0 or 1) on ``x`` (one
        stochastic training forward in the method's precision)."""
        feat = self(x, model=self.model2 if k else self.model)["feat"]
        return (*self.heads(k, feat), feat)

    @torch.no_grad()
    def pseudo_targets(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ȳ and s̃ ``[B]``: the means of the mean and log-variance heads over ``pseudo_samples`` stochastic
        passes of each network. The passes run as one forward of the rows repeated ``pseudo_samples``
        times: every copy gets its own dropout masks and, with batch normalisation, the same batch
        statistics as a single pass."""
        t, b = self.params.pseudo_samples, x.shape[0]
        reps = x.repeat(t, *([1] * (x.dim() - 1)))
        means, log_vars = zip(*(self.outputs(k, reps)[:2] for k in (0, 1)), strict=True)
        return torch.stack(means).view(2 * t, b).mean(0), torch.stack(log_vars).view(2 * t, b).mean(0)

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        parts = self.loss_terms(labeled, unlabeled)
        loss = torch.stack(list(parts.values())).sum()
        stats = self.optimize(loss, parts)
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()}, **stats}

    def loss_terms(self, labeled: Batch, unlabeled: Batch | None) -> dict[str, torch.Tensor]:
        """The step's weighted loss terms, by name (both networks in training mode): ``"regression"``,
        ``"uncertainty"``, ``"contrastive"`` (when on), and ``"unlabeled_regression"``,
        ``"unlabeled_uncertainty"`` (when w > 0, multiplied by w)."""
        p = self.params
        y = labeled.y
        if y is None:
            raise ValueError("the labelled batch has no targets")
        if self.uses_unlabeled and (unlabeled is None or len(unlabeled) == 0):
            raise ValueError(f"{self.name} needs an unlabelled batch when unlabeled_weight > 0")
        self.model.train()
        self.model2.train()
        (m1, s1, f1), (m2, s2, f2) = (self.outputs(k, labeled.view("weak")) for k in (0, 1))
        s_bar = (s1 + s2) / 2  # both heads' variances enter both networks' losses, with gradient
        parts = {"regression": heteroscedastic_loss(m1, y, s_bar) + heteroscedastic_loss(m2, y, s_bar),
                 "uncertainty": ((s1 - s2) ** 2).mean()}
        for f in (f1, f2):
            term = labeled_contrastive_term(f, y, contrastive=self.labeled_contrastive,
                                            weight=p.contrastive_weight, rows=p.contrastive_rows,
                                            generator=self.generator)
            if term is not None:
                parts["contrastive"] = parts["contrastive"] + term if "contrastive" in parts else term
        if unlabeled is not None and self.uses_unlabeled:  # at weight 0 they are not forwarded at all
            x_u = unlabeled.view("weak")
            (u1, v1, _), (u2, v2, _) = (self.outputs(k, x_u) for k in (0, 1))
            y_bar, s_tilde = self.pseudo_targets(x_u)
            w = self.unlabeled_factor(p.unlabeled_weight)
            parts["unlabeled_regression"] = w * (
                heteroscedastic_loss(u1, y_bar, s_tilde) + heteroscedastic_loss(u2, y_bar, s_tilde))
            parts["unlabeled_uncertainty"] = w * (
                ((v1 - s_tilde) ** 2).mean() + ((v2 - s_tilde) ** 2).mean())
        return parts

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The mean over ``predict_samples`` dropout samples of both networks' mean heads ``[B]``, networks in
        evaluation mode. The dropout draws come from a stream seeded with ``seed`` inside a forked random
        state: predictions are repeatable and leave the training random state untouched."""
        t = self.params.predict_samples
        devices = [] if x.device.type == "cpu" else [x.device]
        with evaluating(self.model, self.model2), torch.random.fork_rng(
                devices=devices, device_type=x.device.type if devices else "cuda"):
            torch.manual_seed(self.params.seed)
            means = [self.heads(k, net(x)["feat"].repeat(t, 1))[0].view(t, -1).mean(0)
                     for k, net in enumerate((self.model, self.model2))]
        return (means[0] + means[1]) / 2
