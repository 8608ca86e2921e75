"""The interface every training method implements, and the method registry.

A method owns its networks and optimisers and performs whole training steps, because methods differ
in how they step: GCLSS's faithful mode takes two optimiser steps per iteration, Mean Teacher updates
an EMA teacher after each step, CPS and UCVME train two networks. The engine only feeds batches,
schedules learning rates, evaluates, logs and checkpoints, so new methods need no engine change.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from clss.losses._common import finite_sum
from clss.losses.errors import NonFiniteLossError  # defined with the losses, which raise a subclass
from clss.schema import check_dataclass, check_mapping, param, specs_of

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


@dataclass
class OptimizerConfig:
    """Optimiser settings shared by all methods (per-parameter-group tuning is out of scope).

    ``name``: ``"adam"`` (coupled L2 weight decay, as the CLSS image scripts), ``"adamw"`` (decoupled, as
    the synthetic script) or ``"sgd"`` (with ``momentum``, Nesterov off).
    """

    name: str = param("adamw", "str", choices=("adam", "adamw", "sgd"))
    lr: float = param(1e-3, gt=0)
    weight_decay: float = param(0.01, ge=0)
    momentum: float = param(0.9, ge=0, lt=1)

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

    Parameters
    ----------
    model_fn : callable returning a fresh network whose ``forward(x)`` gives a
        :class:`clss.models.ModelOutput` (``{"pred": [B], "feat": [B, d], ...}``).
    optimizer : OptimizerConfig
    params : mapping of method hyper-parameters (validated against ``Params``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    semi_supervised: ClassVar[bool] = True
    #: Views of the labelled / unlabelled rows the loader must provide (see :class:`Batch`).
    labeled_views: ClassVar[tuple[str, ...]] = ("weak",)
    unlabeled_views: ClassVar[tuple[str, ...]] = ("weak",)
    Params: ClassVar[type[MethodParams]] = MethodParams

    def __init__(self, model_fn: Callable[[], nn.Module], optimizer: OptimizerConfig | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__()
        self.params = self.Params.from_dict(params, self.name)
        self.optimizer_config = optimizer or OptimizerConfig()
        self.model = model_fn()
        self.optimizers: list[torch.optim.Optimizer] = []

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """Create (once) and return the optimisers; the engine attaches schedules and checkpoints them."""
        if not self.optimizers:
            self.optimizers = [self.optimizer_config.build(self.model.parameters())]
        return self.optimizers

    def training_step(self, labeled: Batch, unlabeled: Batch | None, step: int) -> dict[str, float]:
        """Run one iteration (forward, backward, optimiser step(s)); return scalars to log."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions ``[B]`` in evaluation mode."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self.model(x)["pred"]
        finally:
            self.model.train(was_training)

    def optimize(self, loss: torch.Tensor, parts: Mapping[str, torch.Tensor],
                 optimizer: torch.optim.Optimizer | None = None) -> None:
        """Backward and step, refusing non-finite losses and gradients before they touch the weights.

        After the backward, the sum of every gradient the optimiser holds and a single device sync test the
        gradients (the exact per-entry test runs only when the sum is not finite). A NaN/inf gradient raises
        :class:`NonFiniteLossError` naming the parameters and the loss terms (keys of ``parts``) whose own
        gradient is not finite; the gradients are cleared and the optimiser does not step. To find those
        terms the backward keeps the graph until the caller drops ``loss``: no time, and memory only while
        the optimiser steps.
        """
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLossError(f"{self.name}: the loss is {value} ({_describe(parts)}); the step was "
                                     f"skipped")
        opt = optimizer or self.configure_optimizers()[0]
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        grads = [p.grad for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if grads and not finite_sum(*grads) and not all(bool(torch.isfinite(g).all()) for g in grads):
            self._refuse_gradients(opt, parts)
        opt.step()

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
                 params: Mapping[str, Any] | None = None) -> Method:
    """Instantiate a registered method."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {sorted(METHODS)}")
    return METHODS[name](model_fn, optimizer, params)
