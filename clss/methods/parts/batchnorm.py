"""Forward passes that leave batch-norm running statistics untouched."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Within the block, training-mode forwards of ``model`` still normalise with the batch's statistics
    but the running mean, variance and batch count are restored afterwards (USB's ``bn_controller``
    freeze/unfreeze around the unlabelled weak view), so evaluation statistics come from the other
    forwards only. A model without batch norm is unaffected."""
    saved = [(m, {k: getattr(m, k).clone() for k in ("running_mean", "running_var", "num_batches_tracked")
                  if getattr(m, k, None) is not None})
             for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        yield
    finally:
        for module, buffers in saved:
            for name, value in buffers.items():
                getattr(module, name).copy_(value)
