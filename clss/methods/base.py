"""The interface every training method implements, and the method registry.

A method owns its networks and optimisers and performs whole training steps, because methods differ
in how they step: GCLSS's faithful mode takes two optimiser steps per iteration, Mean Teacher updates
an EMA teacher after each step, CPS and UCVME train two networks. The engine only feeds batches,
schedules learning rates, evaluates, logs and checkpoints, so new methods need no engine change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from clss.distributed import Shard, average_over_processes
from clss.losses._common import finite_sum
from clss.losses.errors import NonFiniteLossError  # defined with the losses, which raise a subclass
from clss.methods.balance import (
    AUTO,
    GradientBalance,
    combine,
    global_norm,
    gradient_probe,
    is_unlabeled_term,
    term_gradients,
)
from clss.methods.modes import evaluating
from clss.methods.precision import autocast, check_precision, full_precision
from clss.schema import check_dataclass, check_mapping, param, specs_of

if TYPE_CHECKING:  # the parts import this module
    from clss.methods.parts.rda import DistributionAlignment

METHODS: dict[str, type[Method]] = {}


@dataclass
class Batch:
    """Rows of the training split, as the views a method asked for.

    ``views``: view name → inputs ``[B, ...]`` (the names of :attr:`Method.labeled_views` /
    :attr:`Method.unlabeled_views`; ``"weak@2"`` is a second independent draw of the ``"weak"`` pipeline; on
    data without augmentation every view is the plain input, often the same tensor). ``index``: row indices
    into the training split ``[B]``. ``y``: standardised targets ``[B]`` for labelled rows. For unlabelled
    rows ``y`` is ``None``, or the hidden truth when the caller knows it (benchmarks) — methods may use it
    for diagnostics only, never in a loss.
    """

    views: dict[str, torch.Tensor]
    index: torch.Tensor
    y: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def view(self, name: str) -> torch.Tensor:
        """The inputs of view ``name`` (a clear error when the loader did not provide it)."""
        try:
            return self.views[name]
        except KeyError:
            raise ValueError(f"the batch has no view {name!r} (it has {sorted(self.views)}); declare it in "
                             f"the method's labeled_views / unlabeled_views") from None

    def take(self, rows: torch.Tensor) -> Batch:
        """The sub-batch of positions ``rows`` (every view, index and targets)."""
        return Batch({k: v[rows] for k, v in self.views.items()}, self.index[rows],
                     None if self.y is None else self.y[rows])


@dataclass(frozen=True)
class TrainingContext:
    """What the engine knows about a run before its first step, handed to :meth:`Method.setup`.

    ``total_steps``: iterations of the run (ramp-ups and schedules expressed as a fraction of training).
    ``train_size``: rows of the training split (``Batch.index`` values are below it). ``labeled_y``:
    standardised targets of every labelled row ``[n_labeled]`` (e.g. the quantiles a distribution alignment
    maps onto), on the training device. ``unlabeled_index``: training-split indices of the unlabelled rows
    ``[n_unlabeled]`` (empty for methods that use none).
    """

    total_steps: int
    train_size: int
    labeled_y: torch.Tensor
    unlabeled_index: torch.Tensor


@dataclass
class OptimizerConfig:
    """Optimiser settings shared by all methods (per-parameter-group tuning is out of scope).

    ``name``: ``"adam"`` (coupled L2 weight decay, as the CLSS image scripts), ``"adamw"`` (decoupled, as
    the synthetic script) or ``"sgd"`` (with ``momentum``, Nesterov off). ``clip_grad_norm``: rescale the
    gradients of each optimiser step to this total L2 norm when they exceed it (``None``: no clipping);
    see :meth:`Method.optimize`.
    """

    name: str = param("adamw", "str", choices=("adam", "adamw", "sgd"))
    lr: float = param(1e-3, gt=0)
    weight_decay: float = param(0.01, ge=0)
    momentum: float = param(0.9, ge=0, lt=1)
    clip_grad_norm: float | None = param(None, gt=0, optional=True)

    def __post_init__(self) -> None:
        check_dataclass(self, "optimizer.")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> OptimizerConfig:
        """Validated settings from a mapping (the configuration's ``optimizer`` keys)."""
        return cls(**check_mapping(values, specs_of(cls), "optimizer."))

    def build(self, params: Any) -> torch.optim.Optimizer:
        if self.name == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.name == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, weight_decay=self.weight_decay,
                                   momentum=self.momentum)
        raise ValueError(f"unknown optimizer {self.name!r}; expected 'adam', 'adamw' or 'sgd'")


@dataclass
class MethodParams:
    """Hyper-parameters of a method; subclasses add fields with the papers' defaults, each declared
    with :func:`clss.schema.param` (type, range or choices), so that every value is checked by name
    when the parameters are built: ``method_params.rank_weight must be a float >= 0, got 'abc'``."""

    def __post_init__(self) -> None:
        check_dataclass(self, "method_params.")

    @classmethod
    def check(cls, values: Mapping[str, Any] | None, method: str) -> dict[str, Any]:
        """``values`` checked and coerced (only the keys given); unknown keys are refused with the known
        ones. Messages start with ``method``'s name."""
        try:
            return check_mapping(values, specs_of(cls), "method_params.")
        except ValueError as exc:
            raise ValueError(f"{method}: {exc}") from None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, method: str) -> MethodParams:
        """Validated parameters of ``method`` (defaults for the keys not given)."""
        return cls(**cls.check(values, method))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Method(nn.Module):
    """Base class: subclasses set ``name``, ``Params`` and implement :meth:`training_step`.

    A method is built from the small functions of :mod:`clss.methods.parts` and derives from this class
    only, so that its whole step reads top to bottom in its own module.

    Parameters
    ----------
    model_fn : callable returning a fresh network whose ``forward(x)`` gives a
        :class:`clss.models.ModelOutput` (``{"pred": [B], "feat": [B, d], ...}``).
    optimizer : OptimizerConfig
    params : mapping of method hyper-parameters (validated against ``Params``).
    precision : ``"fp32"`` (default), ``"bf16"`` or ``"fp16"`` (CUDA only): the precision of the model's
        forward passes (:meth:`forward`, :meth:`optimize`; :mod:`clss.methods.precision`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    semi_supervised: ClassVar[bool] = True
    #: True for the fully supervised upper bound: the engine labels every row a semi-supervised run of the
    #: same configuration would use (labelled + unlabelled rows with a target) and gives no unlabelled rows.
    all_labels: ClassVar[bool] = False
    #: Configuration keys this method sets on a dataset's preset, by preset name (``"operator-sde"``,
    #: ``"utkface"``, ...): the paper's or official configuration's settings for that dataset, merged after
    #: the dataset's preset and before the user's file and flags (:func:`clss.config.resolve_config`).
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Views of the labelled / unlabelled rows the loader must provide (see :class:`Batch`); a method whose
    #: views depend on its parameters overrides them with properties.
    labeled_views: tuple[str, ...] = ("weak",)
    unlabeled_views: tuple[str, ...] = ("weak",)
    Params: ClassVar[type[MethodParams]] = MethodParams
    #: True for methods that train in stages set from the run's length (``rnc``'s pretraining and probe,
    #: ``cloc``'s two phases): a resumed run may not change its ``steps``.
    staged: ClassVar[bool] = False
    #: True for methods whose unlabelled term is an option (the seed papers' recipes): at
    #: ``unlabeled_weight`` 0 they train on a fully labelled set (:attr:`requires_unlabeled`).
    unlabeled_optional: ClassVar[bool] = False
    #: Whether :meth:`predict` searches the labelled training rows (k-NN inference, ``conord``): the engine
    #: then hands it their embeddings under the current weights, ``index_rows(embed(x), y)``, before every
    #: evaluation and checkpoint.
    indexes_training_rows: ClassVar[bool] = False
    #: fp16 steps skipped in a row (gradient overflow) before the run is stopped as diverged: from the
    #: scaler's initial 2**16 that many halvings leave a scale below 1e-4, which no overflow of a finite
    #: gradient explains.
    MAX_OVERFLOW_SKIPS: ClassVar[int] = 32
    #: Under torchrun: whether some parameters of a network may receive no gradient in a step (a frozen or
    #: unused part, e.g. a recipe's encoder in its probe stage), which DistributedDataParallel must then
    #: search for every step (``find_unused_parameters``).
    ddp_unused_parameters: ClassVar[bool] = False

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> None:
        super().__init__()
        self.precision = check_precision(precision)
        self.params = self.Params.from_dict(params, self.name)
        self.optimizer_config = optimizer or OptimizerConfig()
        self.model = model_fn()
        self.optimizers: list[torch.optim.Optimizer] = []
        #: The method's own seeded random stream (row subsamples, anchors), checkpointed with it; set by
        #: methods that draw.
        self.generator: torch.Generator | None = None
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self._overflow_skips = 0
        self.context: TrainingContext | None = None
        #: Set by the engine on the steps whose per-term gradient norms it logs (:meth:`optimize`).
        self.probe_gradients = False
        #: ``unlabeled_weight="auto"``: the balance that sets the unlabelled terms' weight (:meth:`optimize`).
        self.balance: GradientBalance | None = None
        if getattr(self.params, "unlabeled_weight", None) == AUTO:
            if self.precision == "fp16":
                raise ValueError(f"{self.name}: unlabeled_weight='auto' needs precision 'fp32' or 'bf16' "
                                 "(it splits the gradient, which fp16's loss scaling does not allow)")
            self.balance = GradientBalance(self.params.auto_ratio)  # type: ignore[attr-defined]
        self._ramp = 1.0
        #: Under torchrun (:func:`clss.engine.ddp.attach`): this process's share of every batch and the
        #: DistributedDataParallel replica of each network in :meth:`networks`, by ``id`` (plain attributes,
        #: so the state dict keeps the networks' own keys).
        self.shard: Shard | None = None
        self.replicas: dict[int, nn.Module] = {}
        #: Under torchrun: the stream of seeds of the networks' random layers in each sharded forward (the
        #: same on every process, checkpointed), so that dropout differs between the processes' blocks while
        #: the global torch stream, which the losses draw from after the gather, stays the same everywhere.
        self.shard_seeds: torch.Generator | None = None
        #: RDA's pseudo-label distribution alignment (a per-row buffer built by the setup of the methods
        #: that align: rda, rankup_rda), checkpointed with the method.
        self.alignment: DistributionAlignment | None = None

    def setup(self, context: TrainingContext) -> None:
        """Called by the engine once the splits are known, before the first step (and before a resumed
        run's checkpoint is loaded). Methods whose schedules or buffers depend on the run override it
        (calling this one); a method used outside the engine calls it itself."""
        self.context = context

    def require_context(self) -> TrainingContext:
        """The run's :class:`TrainingContext`, or a clear error when :meth:`setup` was not called."""
        if self.context is None:
            raise ValueError(f"{self.name} needs the run's length and splits: call method.setup("
                             "TrainingContext(...)) before training_step (the engine does)")
        return self.context

    def get_extra_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        if self.scaler is not None and self.scaler.state_dict():
            state["grad_scaler"] = self.scaler.state_dict()
        if self.balance is not None:
            state["balance"] = self.balance.state_dict()
        if self.shard_seeds is not None:
            state["shard_seeds"] = self.shard_seeds.get_state()
        if self.alignment is not None:
            state["rda"] = self.alignment.state_dict()
        return state

    @property
    def requires_unlabeled(self) -> bool:
        """Whether a run of this method needs unlabelled rows (the split then refuses to leave none):
        a semi-supervised method does, unless :attr:`unlabeled_optional` and its unlabelled terms are off."""
        return self.semi_supervised and (self.uses_unlabeled or not self.unlabeled_optional)

    @property
    def uses_unlabeled(self) -> bool:
        """Whether the unlabelled terms are on: ``unlabeled_weight`` is ``"auto"`` or above 0 (methods
        without that parameter: always)."""
        weight = getattr(self.params, "unlabeled_weight", 1.0)
        return weight == AUTO or weight > 0

    def unlabeled_factor(self, weight: float | str, ramp: float = 1.0) -> float:
        """The factor a method multiplies its unlabelled terms by: ``weight × ramp``; with ``weight="auto"``
        1 (the terms at unit weight), and :meth:`optimize` then applies ``ramp`` times the balanced weight
        to their gradient."""
        if weight == AUTO:
            self._ramp = ramp
            return 1.0
        return float(weight) * ramp

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self.generator is not None:
            self.generator.set_state(state["generator"])
        if self.balance is not None and "balance" in state:
            self.balance.load_state_dict(state["balance"])
        if self.scaler is not None and "grad_scaler" in state:
            self.scaler.load_state_dict(state["grad_scaler"])
        if self.shard_seeds is not None and "shard_seeds" in state:
            self.shard_seeds.set_state(state["shard_seeds"])
        if self.alignment is not None and "rda" in state:  # without setup (prediction) there is no buffer
            self.alignment.load_state_dict(state["rda"])

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Create (once) and return the optimisers; the engine attaches schedules and checkpoints them."""
        if not self.optimizers:
            self.optimizers = [self.optimizer_config.build(self.model.parameters())]
        return self.optimizers

    def optimizer_windows(self, total_steps: int) -> list[tuple[int, int]]:
        """``(first step, steps)`` of each optimiser of :meth:`configure_optimizers`: the engine runs the
        learning-rate schedule over each window (an optimiser that starts at a later stage begins its
        schedule afresh) and logs the learning rate of the window that holds the step. Default: every
        optimiser over the whole run."""
        return [(0, total_steps)] * len(self.configure_optimizers())

    def predicts_after(self, step: int) -> bool:
        """Whether the predictions after ``step`` completed steps are the method's output. False while a
        representation-learning stage has not trained the regressor yet: the engine then neither
        evaluates nor keeps a best checkpoint. Default: always."""
        return True

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        """Run one iteration (forward, backward, optimiser step(s)); return scalars to log."""
        raise NotImplementedError

    def metrics(self, y_true: Any, y_pred: Any) -> dict[str, float]:
        """Metrics of the method's own kind beside the regression ones, from standardised targets and
        predictions ``[n]`` (numpy): e.g. accuracy and kappa of an ordinal classifier. Default: none."""
        return {}

    def artifacts(self) -> dict[str, Any]:
        """JSON-able state worth keeping beside a finished run (``method.json``), e.g. learned margins.
        Default: none."""
        return {}

    def networks(self) -> list[nn.Module]:
        """The networks the optimisers train through :meth:`forward` (each gets a DistributedDataParallel
        replica under torchrun). Default: ``[self.model]``; two-network methods add the second. EMA copies
        and modules applied to the gathered outputs (heads, margins, centres) are not listed: every process
        computes their gradients from the same global loss."""
        return [self.model]

    def forward(self, x: torch.Tensor, model: nn.Module | None = None) -> dict[str, torch.Tensor]:
        """The output of ``model`` (default ``self.model``; methods with a second network pass it) on ``x``
        in the method's precision (a training forward: the caller sets the mode). Under ``"bf16"``/``"fp16"``
        the network runs under autocast and its half-precision outputs come back as float32, so the losses,
        similarity matrices, seriation and eigen-solvers downstream never run in half precision; under
        ``"fp32"`` this is ``model(x)``.

        Under torchrun (:attr:`shard` set) ``x`` is the global batch, the same on every process: each runs
        the network (its DistributedDataParallel replica) on its own rows only and the outputs are gathered
        back into the global batch with exact gradients (:func:`clss.distributed.gather_with_grad`), so the
        losses, similarity matrices and seriations that follow see the whole batch on every process."""
        net = self.model if model is None else model
        if self.shard is None:
            return self._forward_local(net, x)
        assert self.shard_seeds is not None
        seed = int(torch.randint(2**62, (1,), generator=self.shard_seeds))
        replica = self.replicas.get(id(net), net)
        # A split backward (probe step, automatic weight; not under fp16, see :meth:`optimize`) takes its
        # gradients with torch.autograd.grad and averages them itself: DDP must not wait for its own backward.
        split = self.scaler is None and (self.balance is not None or self.probe_gradients)
        own_sync = replica.no_sync() if split and hasattr(replica, "no_sync") else contextlib.nullcontext()
        with torch.random.fork_rng(devices=[x.device.index] if x.device.type == "cuda" else []), own_sync:
            torch.manual_seed(seed + self.shard.rank)
            out = self._forward_local(replica, x[self.shard.rows(x.shape[0])])
        return self.shard.gather(out, x.shape[0])

    def _forward_local(self, net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.precision == "fp32":
            return net(x)
        device = next(net.parameters()).device
        with autocast(self.precision, device):
            out = net(x)
        return full_precision(out)

    @property
    def prediction_model(self) -> nn.Module:
        """The network :meth:`predict` runs: the model, or an averaged copy of it for methods that evaluate
        through one (Mean Teacher's teacher, RankUp's EMA copy)."""
        return self.model

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions ``[B]`` of :attr:`prediction_model` in evaluation mode (always in the
        model's own dtype)."""
        net = self.prediction_model
        with evaluating(net):
            return net(x)["pred"]

    def optimize(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor],
                 optimizer: torch.optim.Optimizer | None = None) -> dict[str, float]:
        """Backward, gradient clipping and step, refusing non-finite losses and gradients before they touch
        the weights; every method's optimiser steps go through here.

        After the backward, the sum of every gradient the optimiser holds and a single device sync test the
        gradients (the exact per-entry test runs only when the sum is not finite). A NaN/inf gradient raises
        :class:`NonFiniteLossError` naming the parameters and the loss terms (keys of ``parts``) whose own
        gradient is not finite; the gradients are cleared and the optimiser does not step. To find those
        terms the backward keeps the graph until the caller drops ``loss``: no time, and memory only while
        the optimiser steps.

        With ``optimizer.clip_grad_norm`` set, the gradients are then rescaled to that total L2 norm when
        they exceed it (:func:`torch.nn.utils.clip_grad_norm_` over the optimiser's parameters).

        With ``precision="fp16"`` the loss is scaled by the method's :class:`torch.amp.GradScaler`; the
        gradients are unscaled before the test and the clipping, and a non-finite gradient is an overflow:
        the step is skipped and the scale lowered, not an error (``amp_skipped`` is 1), unless
        :attr:`MAX_OVERFLOW_SKIPS` steps in a row overflow.

        With ``unlabeled_weight="auto"`` (:attr:`balance`) or on a probe step (:attr:`probe_gradients`, set by
        the engine every ``probe_every`` steps) the backward runs in two parts, the supervised terms and the
        terms keyed ``unlabeled_*`` (:mod:`clss.methods.balance`), and the parameters receive their sum,
        the unlabelled part multiplied by the ramp times the balanced weight under ``"auto"``.

        Returns
        -------
        Scalars to log: ``grad_norm`` (the norm before clipping) when clipping is on; ``amp_scale`` and
        ``amp_skipped`` under fp16; ``unlabeled_weight`` (the weight applied) under ``"auto"``; on probe
        steps ``grad_<term>`` per term, ``grad_ratio`` and ``grad_cosine``
        (:func:`clss.methods.balance.gradient_probe`). Empty otherwise.
        """
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(f"{self.name}: the loss is {value} ({_describe(parts)}); the step was "
                                     f"skipped")
        opt = optimizer or self.configure_optimizers()[0]
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            return self._scaled_step(loss, parts, opt)
        stats: dict[str, float] = {}
        if self.balance is not None or self.probe_gradients:
            stats = self._split_backward(parts, opt)
        else:
            loss.backward(retain_graph=True)
        if not _gradients_finite(opt):
            self._refuse_gradients(opt, parts)
        stats.update(self._clip(opt))
        opt.step()
        return stats

    def _split_backward(self, parts: Mapping[str, torch.Tensor],
                        opt: torch.optim.Optimizer) -> dict[str, float]:
        """The gradient as its supervised part ``g_s`` plus its unlabelled part ``g_u`` (terms keyed
        ``unlabeled_*``), written to the parameters as ``g_s + w g_u``: ``w`` is 1, or under the automatic
        weight the ramp times the balanced weight. Returns the weight and, on probe steps, the probe's
        norms."""
        held = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
        g_s = term_gradients([v for k, v in parts.items() if not is_unlabeled_term(k)], held)
        g_u = term_gradients([v for k, v in parts.items() if is_unlabeled_term(k)], held)
        if self.shard is not None:  # under torchrun: the mean over the processes, as DDP's own backward
            g_s, g_u = average_over_processes(g_s), average_over_processes(g_u)
        stats: dict[str, float] = {}
        weight = 1.0
        if self.balance is not None:
            weight = self._ramp * self.balance.update(global_norm(g_s), global_norm(g_u))
            stats["unlabeled_weight"] = weight
        if self.probe_gradients:
            stats.update(gradient_probe(parts, held, g_s, g_u, weight,
                                        reduce=average_over_processes if self.shard is not None else None))
        for p, g in zip(held, combine(g_s, g_u, weight), strict=True):
            p.grad = g
        return stats

    def _clip(self, opt: torch.optim.Optimizer) -> dict[str, float]:
        """Clip the optimiser's gradients to ``clip_grad_norm``; the norm before clipping, to log."""
        limit = self.optimizer_config.clip_grad_norm
        if limit is None:
            return {}
        held = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        return {"grad_norm": float(torch.nn.utils.clip_grad_norm_(held, limit))}

    def _scaled_step(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor],
                     opt: torch.optim.Optimizer) -> dict[str, float]:
        scaler = self.scaler
        assert scaler is not None
        scaler.scale(loss).backward()
        scaler.unscale_(opt)  # clipping and the logged norm are in true gradient units
        scale = scaler.get_scale()
        overflow = not _gradients_finite(opt)
        stats = {} if overflow else self._clip(opt)
        scaler.step(opt)  # skipped by the scaler when the unscaled gradients are not finite
        scaler.update()
        self._overflow_skips = self._overflow_skips + 1 if overflow else 0
        if overflow:
            opt.zero_grad(set_to_none=True)
            if self._overflow_skips >= self.MAX_OVERFLOW_SKIPS:
                raise NonFiniteLossError(
                    f"{self.name}: the fp16 gradient was NaN or infinite in {self._overflow_skips} "
                    f"steps in a row although the loss is finite ({_describe(parts)}), and the gradient "
                    f"scale fell to {scaler.get_scale():.3g}: the gradient itself is not finite, not just "
                    "overflowing; use precision 'bf16' or 'fp32' to find the term")
        return {**stats, "amp_scale": scale, "amp_skipped": float(overflow)}

    def _refuse_gradients(self, opt: torch.optim.Optimizer, parts: Mapping[str, torch.Tensor]) -> None:
        names = {id(p): name for name, p in self.named_parameters()}
        held = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        bad = [names.get(id(p), "?") for p in held if not bool(torch.isfinite(p.grad).all())]
        opt.zero_grad(set_to_none=True)
        culprits = []
        for term, value in parts.items():  # each term's own gradient, from the kept graph
            if value.requires_grad:
                own = torch.autograd.grad(value, held, allow_unused=True, retain_graph=True)
                if not all(g is None or bool(torch.isfinite(g).all()) for g in own):
                    culprits.append(term)
        origin = (f"it comes from the term(s) {', '.join(culprits)}" if culprits else
                  "no single term has it, so the terms' gradients overflow only when added")
        shown = ", ".join(bad[:4]) + (", ..." if len(bad) > 4 else "")
        raise NonFiniteLossError(
            f"{self.name}: the gradient is NaN or infinite in {len(bad)} of {len(held)} parameter tensors "
            f"({shown}) although the loss is finite ({_describe(parts)}); {origin}. The step was skipped "
            "and the weights are unchanged")


def _gradients_finite(opt: torch.optim.Optimizer) -> bool:
    """Whether every gradient the optimiser holds is finite: one fused sum and one device sync (the exact
    per-entry test only when the sum is not finite, since finite gradients can overflow when summed)."""
    grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
    return not grads or finite_sum(*grads) or all(bool(torch.isfinite(g).all()) for g in grads)


def _describe(parts: Mapping[str, torch.Tensor]) -> str:
    return ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items())


@dataclass
class MethodInfo:
    name: str
    description: str
    semi_supervised: bool
    params: dict[str, Any] = field(default_factory=dict)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to :data:`METHODS` under ``cls.name``."""
    if not cls.name or cls.name in METHODS:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    METHODS[cls.name] = cls
    return cls


def list_methods() -> list[MethodInfo]:
    """Registered methods with their descriptions and default hyper-parameters."""
    return [MethodInfo(name, cls.description, cls.semi_supervised, cls.Params().to_dict())
            for name, cls in METHODS.items()]


def build_method(name: str, model_fn: Callable[[], nn.Module],
                 optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None, precision: str = "fp32") -> Method:
    """Instantiate a registered method (``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"``, see
    :class:`Method`)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](model_fn, optimizer, params, precision)
