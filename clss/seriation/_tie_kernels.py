"""numba kernel that splits long chains of near-equal positions into tie groups (private)."""

from __future__ import annotations

import numpy as np

from clss._jit import jit


@jit
def tie_run_starts(p: np.ndarray, t: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Start indices of greedy runs of the sorted positions ``p``: a run takes the next item while it
    lies within ``max(t[start], t[i])`` of the run's first item (``t``: per-item tolerances)."""
    n = p.shape[0]
    starts = np.empty(n, np.int64)
    starts[0] = 0
    k = 1
    s = 0
    for i in range(1, n):
        if p[i] - p[s] > max(t[s], t[i]):
            starts[k] = i
            k += 1
            s = i
    return starts[:k]
