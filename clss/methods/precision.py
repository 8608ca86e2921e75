"""Mixed precision for the methods: the accepted settings, the autocast context and the cast back up.

``"fp32"`` (default) runs everything in the model's dtype. ``"bf16"`` runs the model's forward passes under
:func:`torch.autocast` with bfloat16 (CPU and CUDA). ``"fp16"`` does the same with float16 and scales the loss
with a :class:`torch.amp.GradScaler`; it needs CUDA. The model's half-precision outputs are cast up to float32
before any loss, similarity matrix, seriation or eigen-solver sees them (:func:`full_precision`), so only
the network's own layers run in half precision.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
_HALF = (torch.float16, torch.bfloat16)


def check_precision(precision: object, device: torch.device | str | None = None) -> str:
    """``precision`` if it is one of :data:`PRECISIONS` and usable on ``device`` (``None``: on this
    machine): ``"fp16"`` needs CUDA. Raises ValueError with the accepted values otherwise."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}")
    if precision == "fp16":
        on_cuda = (torch.device(device).type == "cuda" if device is not None
                   else torch.cuda.is_available())
        if not on_cuda:
            where = f"the device is {torch.device(device).type}" if device is not None else \
                "CUDA is not available"
            raise ValueError(f"precision 'fp16' needs a CUDA device (its gradient scaler is CUDA-only) and "
                             f"{where}; use precision 'bf16' or 'fp32'")
    return str(precision)


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The context the model's forward passes run in: nothing for ``"fp32"``, else :func:`torch.autocast`
    on ``device``'s type with bfloat16 or float16."""
    if precision == "fp32":
        return contextlib.nullcontext()
    check_precision(precision, device)
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST[precision])


def full_precision(output: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``output`` with every half-precision tensor cast up to float32 (others, float64 included, as
    they are); the casts keep the gradient."""
    return {k: v.float() if isinstance(v, torch.Tensor) and v.dtype in _HALF else v
            for k, v in output.items()}
