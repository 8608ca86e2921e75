"""Figures: a similarity matrix before and after reordering by a seriation.

matplotlib is imported inside the functions (with the non-interactive Agg backend when no display is
configured), so importing clss never pays for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from clss.seriation.result import Seriation

MAX_PIXELS = 600


def _image(matrix: Any, order: NDArray[np.int64] | None) -> NDArray[np.float64]:
    """Dense picture of a (possibly huge, sparse) matrix: large ones are block-averaged."""
    m = sp.csr_matrix(matrix) if sp.issparse(matrix) else np.asarray(matrix, dtype=np.float64)
    n = m.shape[0]
    if order is None:
        order = np.arange(n)
    if n <= MAX_PIXELS:
        dense = m.toarray() if sp.issparse(m) else m
        return dense[np.ix_(order, order)]
    # position of each item in the picture, then sum weights into MAX_PIXELS² bins
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    coo = sp.coo_matrix(m)
    bins = pos * MAX_PIXELS // n
    img = np.zeros((MAX_PIXELS, MAX_PIXELS))
    np.add.at(img, (bins[coo.row], bins[coo.col]), coo.data)
    return img / (n / MAX_PIXELS) ** 2


def plot_seriation(similarity: Any, result: Seriation, path: str | Path | None = None, *,
                   title: str | None = None, cmap: str = "viridis",
                   label: str = "similarity") -> Any:
    """Side-by-side heatmaps of ``similarity`` in input order and in ``result.order``.

    ``similarity``: the matrix that was seriated (numpy, scipy.sparse or torch), shape ``(n, n)``;
    matrices larger than 600 items are block-averaged. ``label`` names its values on the colour bar
    (``"distance"`` for a dissimilarity). Saves a PNG/PDF/SVG to ``path`` when given. Returns the
    matplotlib Figure.
    """
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo"):
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if type(similarity).__module__.startswith("torch"):
        similarity = similarity.detach().cpu().numpy()
    before = _image(similarity, None)
    after = _image(similarity, result.order)
    vmax = float(np.nanmax(np.abs(before))) or 1.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), constrained_layout=True)
    for ax, img, name in ((axes[0], before, "input order"),
                          (axes[1], after, f"{result.method} seriation")):
        im = ax.imshow(img, cmap=cmap, vmin=min(0.0, float(np.nanmin(img))), vmax=vmax,
                       interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=axes, shrink=0.8, label=label)
    if title:
        fig.suptitle(title)
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return fig
