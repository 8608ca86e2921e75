"""Pieces shared by the methods that train two networks side by side (CPS, UCVME)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


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
