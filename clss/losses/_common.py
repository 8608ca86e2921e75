"""Input handling shared by every loss in :mod:`clss.losses`.

One place validates shapes and values, flattens multi-view features, selects rows with a ``mask``,
carries per-row anchor ``weights``, gathers the global batch under ``torch.distributed`` and reduces
per-anchor losses. The losses only see a :class:`Batch` of ``n`` rows in view-major order.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from clss.losses.errors import NonFiniteError

REDUCTIONS = ("mean", "sum", "none")
TARGET_KINDS = ("continuous", "labels")
# Below this, 1/τ times a unit-scale similarity difference overflows float32 gradients while the loss
# value stays finite (RnC at τ = 1e-38), so the losses refuse such temperatures up front.
MIN_TEMPERATURE = 1e-6


_FINITE_CHECKS = [True]  # a list so that the switch below can change it in place


def set_finite_checks(enabled: bool) -> bool:
    """Switch the losses' NaN/inf and overflow checks on or off for the whole process; returns the
    previous setting.

    The checks cost one reduction and one device synchronisation per loss call (about 0.03-0.15 ms on a
    CPU, see ``docs/losses.md``). Switched off, a loss given NaN/inf features, targets or weights (or
    features that overflow) returns NaN or a finite value with a NaN gradient instead of raising, and
    negative weights are not refused; the training methods' guard still stops a step whose loss or
    gradient is not finite. Shapes, dtypes and hyper-parameters are always checked.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"set_finite_checks: enabled must be True or False, got {enabled!r}")
    previous = _FINITE_CHECKS[0]
    _FINITE_CHECKS[0] = enabled
    return previous


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """``with finite_checks(False): ...``: :func:`set_finite_checks` for a block, restored afterwards."""
    previous = set_finite_checks(enabled)
    try:
        yield
    finally:
        set_finite_checks(previous)


@dataclass(frozen=True)
class Batch:
    """A validated, flattened batch.

    Attributes:
        features: ``[n, d]`` rows in view-major order (row ``v·N + b`` is view ``v`` of sample
            ``b``), float32 or wider.
        targets: ``[n, m]`` targets repeated per view (``None`` when the loss ran without targets).
            Continuous targets are floating point; class labels keep their dtype.
        weights: ``[n]`` non-negative anchor weights, or ``None`` for uniform weights.
        rows: ``[n]`` index of each kept row in the flattened batch before ``mask`` was applied, or
            ``None`` when no mask was given.
        n_views: number of views ``V``.
        n_samples: number of samples ``N`` before flattening and masking.
        sample: ``[n]`` index of the sample (in the possibly gathered batch) each row belongs to.
        view: ``[n]`` view index of each row.
        loss_name: the loss, for error messages.
        largest: the largest ``|feature|`` (known after the finiteness check; cosine similarities use it
            to skip a rescaling that cannot matter).

    ``sample`` and ``view`` are built on first use: most losses never need them, and a training step
    calls its losses every iteration.
    """

    features: Tensor
    targets: Tensor | None
    weights: Tensor | None
    rows: Tensor | None
    n_views: int
    n_samples: int
    loss_name: str = "loss"
    largest: float | None = None  # largest |feature|, from the finiteness check

    @property
    def n(self) -> int:
        return self.features.shape[0]

    def finite(self, value: Tensor, *logits: Tensor) -> Tensor:
        """Return the loss ``value`` or raise :class:`NonFiniteError` if it, or any of ``logits``, is NaN
        or infinite.

        The inputs were checked to be finite, so a non-finite value is an overflow (features too large for
        their dtype at this temperature); the message says by how much. Losses with unbounded
        similarities pass them as ``logits``: an overflowed similarity of an anchor that the loss masks
        out (no positives, a tied rank) leaves the value finite but makes the gradient NaN.
        """
        if not _FINITE_CHECKS[0] or finite_sum(value, *logits) or all(
                bool(torch.isfinite(x).all()) for x in (value, *logits)):
            return value
        largest = float(self.features.detach().abs().amax())
        if bool(torch.isfinite(value).all()):
            what = "the similarities are not finite"
        else:
            what = f"the loss is {'nan' if bool(torch.isnan(value).any()) else 'inf'}"
        raise NonFiniteError(
            f"{self.loss_name}: {what} although its inputs are finite: it overflowed "
            f"{str(self.features.dtype).removeprefix('torch.')} (largest |feature| {largest:.3g}); "
            "L2-normalise the features, raise the temperature or pass float64 features")
        return value

    @functools.cached_property
    def sample(self) -> Tensor:
        sample = torch.arange(self.n_samples, device=self.features.device).repeat(self.n_views)
        return sample if self.rows is None else sample[self.rows]

    @functools.cached_property
    def view(self) -> Tensor:
        view = torch.arange(self.n_views, device=self.features.device).repeat_interleave(self.n_samples)
        return view if self.rows is None else view[self.rows]


def check_positive(loss_name: str, name: str, value: float) -> float:
    """Return ``float(value)`` or raise ``ValueError`` unless it is a finite number > 0 (``TypeError``
    for a string, a bool or anything else that is not a real number)."""
    try:
        if isinstance(value, (str, bytes, bool)):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{loss_name}: {name} must be a real number, got {type(value).__name__} "
                        f"{value!r}") from None
    if not (number > 0 and number != float("inf")):
        raise ValueError(f"{loss_name}: {name} must be a finite number > 0, got {number}")
    return number


def check_temperature(loss_name: str, name: str, value: float) -> float:
    """:func:`check_positive` with the lower bound :data:`MIN_TEMPERATURE`."""
    number = check_positive(loss_name, name, value)
    if number < MIN_TEMPERATURE:
        raise ValueError(f"{loss_name}: {name} must be >= {MIN_TEMPERATURE:g}, got {number:g} (smaller "
                         "temperatures overflow float32 gradients)")
    return number


def check_choice(loss_name: str, name: str, value: str, choices: tuple[str, ...]) -> str:
    """Return ``value`` or raise ``ValueError`` unless it is one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{loss_name}: {name} must be one of {choices}, got {value!r}")
    return value


@contextlib.contextmanager
def full_precision(features: object) -> Iterator[None]:
    """Disable autocast on the device of ``features`` inside a loss: exp/log-sum-exp and ranks need
    fp32 or wider. Non-tensors pass through (``prepare_batch`` rejects them)."""
    device_type = features.device.type if isinstance(features, Tensor) else "cpu"
    try:
        active = torch.is_autocast_enabled(device_type)
    except RuntimeError:  # a device type without autocast support has nothing to disable
        active = False
    if not active:  # the common case costs nothing (building an autocast context is not free)
        yield
        return
    with torch.autocast(device_type, enabled=False):
        yield


def _check_features(loss_name: str, features: Tensor) -> Tensor:
    if not isinstance(features, Tensor):
        raise TypeError(f"{loss_name}: features must be a torch.Tensor, got {type(features).__name__}")
    if features.dim() not in (2, 3) or features.shape[-1] == 0:
        raise ValueError(
            f"{loss_name}: features must be [N, d] or [N, V, d] with d >= 1, got shape "
            f"{tuple(features.shape)}"
        )
    if not features.is_floating_point():
        raise ValueError(f"{loss_name}: features must be floating point, got {features.dtype}")
    if features.dtype in (torch.float16, torch.bfloat16):
        features = features.float()
    return features


def _check_targets(
    loss_name: str, targets: Tensor, n: int, kind: str, multi_dim: bool, dtype: torch.dtype
) -> Tensor:
    if not isinstance(targets, Tensor):
        raise TypeError(f"{loss_name}: targets must be a torch.Tensor, got {type(targets).__name__}")
    if targets.dim() not in (1, 2):
        raise ValueError(f"{loss_name}: targets must be [N] or [N, m], got shape {tuple(targets.shape)}")
    if targets.shape[0] != n:
        raise ValueError(
            f"{loss_name}: batch size mismatch: features has {n} samples but targets has {targets.shape[0]}"
        )
    if targets.dim() == 1:
        targets = targets[:, None]
    if not multi_dim and targets.shape[1] != 1:
        raise ValueError(
            f"{loss_name}: only scalar targets ([N] or [N, 1]) are supported, got shape "
            f"{tuple(targets.shape)}"
        )
    if targets.shape[1] == 0:
        raise ValueError(f"{loss_name}: targets have zero columns")
    if targets.is_complex():
        raise ValueError(f"{loss_name}: targets must be real numbers, got {targets.dtype}")
    if kind == "continuous":
        if targets.dtype == torch.bool:
            raise ValueError(f"{loss_name}: targets must be real numbers, got {targets.dtype}")
        if not targets.is_floating_point() or targets.dtype in (torch.float16, torch.bfloat16):
            targets = targets.to(dtype)
    return targets.detach()


def _check_row_vector(loss_name: str, name: str, value: Tensor, n: int) -> None:
    if not isinstance(value, Tensor):
        raise TypeError(f"{loss_name}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 1 or value.shape[0] != n:
        raise ValueError(f"{loss_name}: {name} must have shape [N] = [{n}], got {tuple(value.shape)}")


def prepare_batch(
    loss_name: str,
    features: Tensor,
    targets: Tensor | None,
    *,
    weights: Tensor | None = None,
    mask: Tensor | None = None,
    gather: bool = False,
    kind: str = "continuous",
    multi_dim: bool = True,
    min_samples: int = 2,
    parameters: Mapping[str, Tensor] | None = None,
) -> Batch:
    """Validate, (optionally) gather, flatten and mask one batch.

    Args:
        loss_name: used in error messages.
        features: ``[N, d]`` or ``[N, V, d]`` floating point; half precision is upcast to float32.
        targets: ``[N]`` or ``[N, m]`` (``None`` for losses that allow it). ``kind="continuous"``
            casts integer targets to the feature dtype and rejects NaN/inf; ``kind="labels"``
            keeps the dtype (class labels compared for equality) and rejects NaN/inf floats.
        weights: optional ``[N]`` non-negative finite per-sample anchor weights (repeated per view).
        mask: optional ``[N]`` bool; rows with ``False`` are dropped before the loss (their targets
            are not inspected, so unlabeled rows may hold NaN placeholders).
        gather: all-gather features (with exact gradients), targets, weights and mask across the
            process group first (:func:`clss.distributed.gather_with_grad`), so that every rank
            computes the loss of the global batch. A no-op without an initialised process group.
        multi_dim: whether ``[N, m]`` targets with ``m > 1`` are accepted.
        min_samples: fewest rows (after flattening and masking) the loss needs.
        parameters: the loss's own tensors (learned margins, reference points) by name, checked for
            NaN/inf together with the batch.

    Every tensor is checked for NaN/inf after masking (masked-out rows may hold anything) in one
    fused reduction with a single device synchronisation; counting the bad entries happens only on
    the error path.

    Raises:
        NonFiniteError: NaN/inf features or ``parameters`` (a ``ValueError``; in a training step it
            stops the run as diverged).
        ValueError: wrong dimensionality, batch-size mismatch, NaN/inf targets, negative or
            non-finite weights, a non-bool mask, or fewer than ``min_samples`` rows.
    """
    if kind not in TARGET_KINDS:
        raise ValueError(f"unknown target kind {kind!r}")
    features = _check_features(loss_name, features)
    n_local = features.shape[0]
    if targets is not None:
        targets = _check_targets(loss_name, targets, n_local, kind, multi_dim, features.dtype)
    if weights is not None:
        _check_row_vector(loss_name, "weights", weights, n_local)
        if weights.dtype == torch.bool or weights.is_complex():
            raise ValueError(f"{loss_name}: weights must be real numbers, got {weights.dtype}")
        if not weights.is_floating_point():
            weights = weights.to(features.dtype)
        weights = weights.detach()
    if mask is not None:
        _check_row_vector(loss_name, "mask", mask, n_local)
        if mask.dtype != torch.bool:
            raise ValueError(f"{loss_name}: mask must be a bool tensor, got {mask.dtype}")

    if gather:
        from clss.distributed import gather as gather_plain
        from clss.distributed import gather_with_grad

        features = gather_with_grad(features)
        targets = None if targets is None else gather_plain(targets)
        weights = None if weights is None else gather_plain(weights)
        mask = None if mask is None else gather_plain(mask)

    n_samples = features.shape[0]
    n_views = 1 if features.dim() == 2 else features.shape[1]
    if features.dim() == 3:
        # View-major: row v·N + b is view v of sample b, as in the official SupCon/RnC code.
        features = features.transpose(0, 1).reshape(n_views * n_samples, features.shape[2])
    if n_views > 1:
        targets = None if targets is None else targets.repeat(n_views, 1)
        weights = None if weights is None else weights.repeat(n_views)
        mask = None if mask is None else mask.repeat(n_views)

    rows = None
    if mask is not None:
        rows = mask.nonzero().squeeze(1)
        features = features[rows]
        targets = None if targets is None else targets[rows]
        weights = None if weights is None else weights[rows]

    if features.shape[0] < min_samples:
        raise ValueError(
            f"{loss_name}: needs at least {min_samples} samples (rows after view flattening and "
            f"masking), got {features.shape[0]}"
        )
    largest = (_check_finite(loss_name, features, targets, weights, parameters or {})
               if _FINITE_CHECKS[0] else None)
    return Batch(features, targets, weights, rows, n_views, n_samples, loss_name, largest)


def finite_sum(*tensors: Tensor) -> bool:
    """Whether the sum of all entries of ``tensors`` is finite: one sum per tensor and one device sync.

    A NaN or infinite entry always makes the sum non-finite, so ``True`` proves every entry finite. Finite
    entries whose sum overflows also give ``False``: callers then run the exact (slower) test, which is
    the error path. A sum costs about a tenth of ``torch.isfinite(x).all()``.
    """
    with torch.no_grad():
        total = tensors[0].sum()
        for tensor in tensors[1:]:
            total = total + tensor.sum()
        return math.isfinite(float(total))


def _check_finite(loss_name: str, features: Tensor, targets: Tensor | None, weights: Tensor | None,
                  parameters: Mapping[str, Tensor]) -> float | None:
    """One fused finiteness test of every input (:func:`finite_sum`, a single sync); the exact test and
    the diagnosis run only when it fails. Returns the largest ``|feature|`` when the inputs are finite
    (the features enter the test as that maximum, which is NaN or inf exactly when they are not finite)."""
    largest = features.detach().abs().amax()
    checked = {"features": features, **{name: value.detach() for name, value in parameters.items()}}
    if targets is not None and targets.is_floating_point():
        checked["targets"] = targets
    probes = [largest, *list(checked.values())[1:]]
    if weights is not None:  # sqrt of the smallest weight is NaN when it is negative or NaN
        probes += [weights, weights.amin().sqrt() if weights.numel() else weights]
    if finite_sum(*probes):
        return float(largest)
    for name, value in checked.items():
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            where = f"({bad} of {value.numel()} entries)"
            if name == "targets":
                raise ValueError(f"{loss_name}: targets contain NaN or inf {where} (mask such rows out)")
            raise NonFiniteError(f"{loss_name}: {name} contain NaN or inf {where}")
    if weights is not None:
        bad = int((~torch.isfinite(weights)).sum())
        if bad:
            raise ValueError(f"{loss_name}: weights contain NaN or inf ({bad} of {weights.numel()} entries)")
        if bool((weights < 0).any()):
            raise ValueError(f"{loss_name}: weights must be non-negative, got min {float(weights.min()):g}")
    # Every entry is finite: the sum overflowed (entries near the float limit). Nothing to refuse.
    return float(largest)


@contextlib.contextmanager
def loss_batch(owner: nn.Module, features: Tensor, targets: Tensor | None, **options: Any) -> Iterator[Batch]:
    """The body of every loss's ``forward``: autocast off (:func:`full_precision`) around the validated
    batch of :func:`prepare_batch` (``options`` are its keyword arguments). The body returns
    ``batch.finite(value)``."""
    with full_precision(features):
        yield prepare_batch(type(owner).__name__, features, targets, **options)


def integer_indices(loss_name: str, values: Tensor, upper: int, what: str) -> Tensor:
    """``values`` (integer-valued, any dtype but bool) as long indices in ``[0, upper)``.

    Raises a ValueError naming ``what`` (e.g. "class indices") for non-integer values or values out of
    range; for continuous targets the message suggests binning them first.
    """
    index = values.round().long() if values.is_floating_point() else values.long()
    if values.dtype == torch.bool or not torch.equal(index.to(values.dtype), values):
        raise ValueError(f"{loss_name}: {what} must be integers in [0, {upper}), got non-integer "
                         f"{values.dtype} values; bin continuous targets first")
    if index.numel() and (index.min() < 0 or index.max() >= upper):
        raise ValueError(f"{loss_name}: {what} out of range: they must be integers in [0, {upper}), "
                         f"got min {int(index.min())}, max {int(index.max())}")
    return index


def zero_loss(features: Tensor) -> Tensor:
    """A scalar 0 that stays connected to the graph (so DDP sees every parameter used)."""
    return (features * 0).sum()


def reduce_anchors(
    per_anchor: Tensor,
    weights: Tensor | None,
    reduction: str,
    valid: Tensor | None = None,
) -> Tensor:
    """Reduce ``[n]`` per-anchor losses.

    ``weights`` (``[n]``, default 1) multiply each anchor; anchors with ``valid == False`` get
    weight 0 (their value is ignored, even if it is not finite). ``"mean"`` is the weighted mean
    ``Σ w_i ℓ_i / Σ w_i`` (0 when every weight is 0), ``"sum"`` is ``Σ w_i ℓ_i`` and ``"none"``
    returns the ``[n]`` vector ``w_i ℓ_i``.
    """
    if weights is None and valid is None:  # uniform weights: skip building them
        if reduction == "none":
            return per_anchor
        total = per_anchor.sum()
        return total if reduction == "sum" else total / max(per_anchor.numel(), 1)
    w = torch.ones_like(per_anchor) if weights is None else weights.to(per_anchor.dtype)
    if valid is not None:
        w = w * valid
        per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
    weighted = w * per_anchor
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    total = w.sum()
    return weighted.sum() / total.clamp_min(torch.finfo(per_anchor.dtype).tiny)
