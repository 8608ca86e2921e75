"""Training and evaluation modes of networks, set for a block and restored after it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

_STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


@contextlib.contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in evaluation mode for the block and restore each one's own mode afterwards (the
    networks of a two-network method are predicted together)."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


@contextlib.contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Within the block, training-mode forwards of ``model`` still normalise with the batch's statistics
    but the running mean, variance and batch count are unchanged afterwards (USB's ``bn_controller``
    freeze/unfreeze around the unlabelled weak view), so evaluation statistics come from the other
    forwards only. A model without batch norm is unaffected.

    The block's forwards update copies that are dropped at its end: the original tensors are never written,
    since autograd may hold them for a backward through an earlier forward (writing them back in place
    would fail that backward's version check).
    """
    saved = []
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            held = {k: getattr(module, k) for k in _STATISTICS if getattr(module, k, None) is not None}
            saved.append((module, held))
            for name, value in held.items():
                setattr(module, name, value.clone())
    try:
        yield
    finally:
        for module, held in saved:
            for name, value in held.items():
                setattr(module, name, value)
