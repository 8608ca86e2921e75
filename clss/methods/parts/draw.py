"""The unlabelled draw: the rows of a step, chosen before any forward so that only they are computed."""

from __future__ import annotations

import torch

from clss.methods.base import Batch
from clss.methods.common import subsample


def draw_rows(batch: Batch, k: int | None, generator: torch.Generator) -> Batch:
    """``k`` distinct rows of ``batch`` drawn with ``generator`` (every view, index and target), or the
    batch itself when ``k`` is ``None`` or ``>= len(batch)`` (no draw: the generator is not advanced)."""
    rows = subsample(len(batch), k, generator)
    return batch if rows is None else batch.take(rows.to(batch.index.device))
