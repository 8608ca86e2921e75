"""Pairwise label distances and feature similarities shared by the losses.

Both return dense ``[n, n]`` matrices (O(n²) memory). Distances are computed from exact pairwise
differences rather than the ``‖a‖² + ‖b‖² − 2a·b`` expansion, so that equal labels and duplicate
features give exactly 0: label ties stay ties (RnC's ``≥`` sets, OE's classes), and the gradient of
a zero feature distance is 0 instead of NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LABEL_DISTANCES = ("l1", "l2")
FEATURE_SIMILARITIES = ("neg_l2", "neg_sq_l2", "cosine", "dot")


def label_distance(targets: Tensor, metric: str = "l1") -> Tensor:
    """Pairwise distances ``D_ij`` between targets.

    Args:
        targets: ``[n]`` or ``[n, m]``.
        metric: ``"l1"`` (``Σ_c |y_ic − y_jc|``, RnC's official choice) or ``"l2"``
            (Euclidean; identical to ``"l1"`` for scalar targets).

    Returns:
        ``[n, n]`` symmetric, zero diagonal, same dtype as ``targets``.
    """
    y = targets[:, None] if targets.dim() == 1 else targets
    diff = y[:, None, :] - y[None, :, :]
    if metric == "l1":
        return diff.abs().sum(-1)
    if metric == "l2":
        return torch.linalg.vector_norm(diff, dim=-1)
    raise ValueError(f"label_distance: metric must be one of {LABEL_DISTANCES}, got {metric!r}")


def feature_similarity(features: Tensor, kind: str, other: Tensor | None = None, *,
                       largest: float | None = None) -> Tensor:
    """Pairwise similarities ``s_ij`` (larger = more similar) between rows.

    Args:
        features: ``[n, d]``.
        kind: ``"neg_l2"`` (``−‖z_i − z_j‖₂``), ``"neg_sq_l2"`` (``−‖z_i − z_j‖₂²``), ``"cosine"``
            or ``"dot"``.
        other: optional ``[k, d]`` second set (default: ``features``).
        largest: the largest ``|entry|`` of ``features`` when known (the losses know it from their input
            check); ``"cosine"`` then skips the rescaling of :func:`unit_rows` when nothing can overflow.

    Returns:
        ``[n, k]``.
    """
    same = other is None
    other = features if same else other
    if kind in ("neg_l2", "neg_sq_l2"):
        # The direct kernel keeps zero distances exact and their gradient 0 (no sqrt(0) NaN).
        dist = torch.cdist(features, other, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
        return -dist if kind == "neg_l2" else -(dist * dist)
    if kind == "cosine":
        unit = unit_rows(features, largest)
        return unit @ (unit if same else unit_rows(other)).T
    if kind == "dot":
        return features @ other.T
    raise ValueError(f"feature_similarity: kind must be one of {FEATURE_SIMILARITIES}, got {kind!r}")


def unit_rows(features: Tensor, largest: float | None = None) -> Tensor:
    """``F.normalize(features, dim=1)`` that stays right for entries up to the float limit.

    A row whose largest ``|entry|`` exceeds 1 is first divided by it (a detached constant, so the value
    and the gradient are those of the plain normalisation): otherwise its squared norm overflows above
    about 1e19 in float32 and the row silently normalises to zeros. Rows with smaller entries are left
    as they are, so a row whose norm is below ``F.normalize``'s ``eps`` (1e-12) still comes out shorter
    than 1 rather than with an overflowing gradient. ``largest`` (the largest ``|entry|``, when known)
    skips the rescaling when no squared norm can overflow.
    """
    if features.numel() == 0 or (largest is not None and not squares_overflow(largest, features)):
        return F.normalize(features, dim=1)
    scale = features.detach().abs().amax(dim=1, keepdim=True).clamp_min(1)
    return F.normalize(features / scale, dim=1)


def squares_overflow(largest: float, features: Tensor) -> bool:
    """Whether a row's sum of squares can overflow the dtype of ``features`` ``[n, d]`` (entries up to
    ``largest`` in absolute value)."""
    return largest * largest * features.shape[-1] >= torch.finfo(features.dtype).max / 4


def off_diagonal(matrix: Tensor) -> Tensor:
    """``[n, n]`` → ``[n, n − 1]``: each row without its diagonal entry, order kept."""
    n = matrix.shape[0]
    return matrix.flatten()[1:].view(n - 1, n + 1)[:, :-1].reshape(n, n - 1)
