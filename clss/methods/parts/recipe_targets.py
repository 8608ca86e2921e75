"""Targets of the seed papers' recipes: equal-width bins of continuous targets (SupCon's classes, ConOrd's
reference points) and seriation pseudo-targets of unlabelled rows on the labelled targets' scale."""

from __future__ import annotations

import torch

from clss.methods.parts.anchored import anchored_targets, reachable
from clss.methods.parts.pseudo_ranks import seriation_ranks
from clss.methods.parts.rda import quantile_map

PSEUDO_TARGETS = ("anchored", "ranks")


def equal_width_edges(labeled_y: torch.Tensor, bins: int, method: str) -> torch.Tensor:
    """The ``bins - 1`` inner edges (float64) of ``bins`` equal-width classes over the range of the
    labelled targets ``[n]``; :func:`bin_index` puts values beyond the range in the end classes."""
    y = labeled_y.detach().double()
    if y.numel() == 0 or not bool(torch.isfinite(y).all()):
        raise ValueError(f"{method} bins the labelled targets, which are empty or not finite")
    lo, hi = float(y.min()), float(y.max())
    if hi <= lo:
        raise ValueError(f"{method} bins the labelled targets, which are all equal ({lo:g})")
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=y.device)[1:-1]


def bin_index(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The class ``[N]`` (0 .. len(edges)) of each value: the number of inner edges strictly below it."""
    return torch.bucketize(values.detach().double(), edges.to(values.device))


def seriation_pseudo_targets(kind: str, mean_l: torch.Tensor, mean_u: torch.Tensor, y: torch.Tensor,
                             labeled_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-targets of unlabelled rows on the labelled targets' scale and the rows they belong to.

    ``mean_l`` ``[m, d]`` / ``mean_u`` ``[k, d]``: unit (or view-averaged unit) embeddings of the batch's
    labelled and unlabelled rows; ``y`` ``[m]``: the batch's labelled targets; ``labeled_y``: every labelled
    target of the run. ``kind="anchored"``: the harmonic solution anchored on the labelled rows (GCLSS),
    rows no anchor reaches dropped. ``kind="ranks"``: the spectral seriation of the unlabelled rows alone
    (CLSS) mapped onto ``labeled_y``'s distribution (its direction is arbitrary). No gradient flows.
    """
    if kind == "anchored":
        values, ranks = anchored_targets(mean_u, mean_l, y, negative="clip")
        rows, _, values, _ = reachable(torch.arange(mean_u.shape[0], device=y.device), values, ranks)
        return values.to(y.dtype), rows
    if kind == "ranks":
        values = quantile_map(seriation_ranks(mean_u), labeled_y.to(mean_u.device))
        return values.to(y.dtype), torch.arange(mean_u.shape[0], device=y.device)
    raise ValueError(f"pseudo_targets must be one of {PSEUDO_TARGETS}, got {kind!r}")
