"""The GCLSS ranking-recovery tolerance, computed on the reduced Laplacian.

GCLSS (Wang, Dai, Bai & Li, arXiv 2512.09267) bounds the similarity perturbation under which spectral
seriation recovers exactly the same ranking:

    δ = min{ σ₁/2 , λ₁² σ₁ min_{i≠j,k} |α_ik − α_jk| / (8√2 λ_m m ‖L_m‖_∞) },

with σ₁ the smallest singular value, λ₁ and λ_m the smallest and largest eigenvalues, α the eigenvector
matrix (``α_ik`` = coordinate k of eigenvector i), m the size and ‖·‖_∞ the largest absolute row sum of
the matrix ``L_m``. A full graph Laplacian is singular (σ₁ = 0, so δ = 0), which is why the official code's
logged value (``compute_formula_torch``) is vacuous. The bound is meaningful on the *reduced*
Laplacian, which is non-singular for connected graphs:

* with anchors: ``L_m = L_uu``, the Laplacian restricted to the unanchored items (degrees over all
  columns) — the matrix the anchored solve inverts; m = number of unanchored items;
* without anchors: L restricted to the complement of the constant vector, i.e. the eigenpairs 2..n of L
  (eigenvectors in the original coordinates); m = n − 1 and ‖L_m‖_∞ = ‖L‖_∞.

Eigenvector signs are arbitrary, and ``|α_ik − α_jk|`` depends on them: every eigenvector is oriented so
that its largest-magnitude entry is positive (scikit-learn's convention) before the minimum is taken.
A minimum below ``64 m eps`` is within the eigensolver's rounding (structurally equal entries, e.g. of
an item whose similarities were all clipped) and counts as 0, so δ = 0 there on every machine.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from clss.seriation.batch import as_real_tensor, block_weights, check_weights, scale_by_power_of_two


def recovery_tolerance(similarity: Any, *, anchors: Any = None,
                       negative: str = "raise") -> float | torch.Tensor:
    """GCLSS perturbation tolerance δ of a similarity matrix (or of each matrix of a batch).

    Parameters
    ----------
    similarity : array-like or torch.Tensor, shape ``(n, n)`` or ``[B, n, n]``
        Symmetric similarities; the diagonal is ignored.
    anchors : array-like or torch.Tensor, optional
        Labelled items as integer indices ``(m,)`` or a boolean mask ``(n,)`` / ``[B, n]``. With
        anchors the bound is computed on ``L_uu``; without, on L restricted to 1⊥.
    negative : {"raise", "clip", "shift"}
        Policy for negative similarities, as in :func:`clss.seriation.seriate`.

    Returns
    -------
    float, or torch.Tensor ``[B]`` for batched input
        δ (0 when the reduced Laplacian is singular, e.g. a disconnected graph). A perturbation with
        ``||ΔS|| <= δ`` provably leaves the ranking unchanged, per the GCLSS theorem.
    """
    s = as_real_tensor(similarity, "similarity").detach()
    batched = s.dim() == 3
    if not batched:
        s = s.unsqueeze(0)
    if s.dim() != 3 or s.shape[-1] != s.shape[-2]:
        raise ValueError(f"similarity must have shape (n, n) or [B, n, n], got {tuple(s.shape)}")
    bsz, n = s.shape[0], s.shape[-1]
    if n < 2:
        raise ValueError(f"need at least 2 items, got n = {n}")
    w = s.to(torch.float64, copy=True)  # the diagonal is zeroed in place below
    if not bool(torch.isfinite(w).all()):  # the diagonal too, although it is ignored
        raise ValueError("similarity contains NaN/inf entries")
    w.diagonal(dim1=-2, dim2=-1).zero_()
    # symmetry, the negative-weight policy and, near overflow/underflow, an exact rescaling
    w, exponent = check_weights(w, negative, validate=True)
    lap = torch.diag_embed(w.sum(-1)) - w
    if anchors is None:
        values, vectors = torch.linalg.eigh(lap)
        delta = _bound(values[:, 1:], vectors[:, :, 1:], lap.abs().sum(-1).amax(-1), n - 1)
    else:
        amask = _anchor_mask(anchors, bsz, n, w.device)
        free_count = (~amask).sum(-1)
        if bool((free_count == free_count[0]).all()):
            u = int(free_count[0])
            free = torch.argsort(amask.to(torch.int8), dim=-1, stable=True)[:, :u]
            l_uu = lap.gather(1, free.unsqueeze(-1).expand(-1, -1, n)).gather(
                2, free.unsqueeze(1).expand(-1, u, -1))
            values, vectors = torch.linalg.eigh(l_uu)
            delta = _bound(values, vectors, l_uu.abs().sum(-1).amax(-1), u)
        else:  # ragged anchor counts: one reduced matrix at a time
            delta = torch.stack([_anchored_bound(lap[b], amask[b]) for b in range(bsz)])
    if exponent is not None:  # δ is homogeneous of degree 1 in the similarities
        delta = scale_by_power_of_two(delta, exponent)
    return delta if batched else float(delta[0])


def recovery_tolerance_blocks(s_uu: Any, s_ul: Any, *, negative: str = "raise") -> float | torch.Tensor:
    """:func:`recovery_tolerance` of an anchored system from the free items' similarity blocks only.

    ``L_uu = diag(S_uu 1 + S_ul 1) − S_uu`` does not involve the anchor-anchor block, so ``s_uu``
    ``(k, k)`` / ``[B, k, k]`` and ``s_ul`` ``(k, m)`` / ``[B, k, m]`` suffice: O(k·m) instead of the joint
    ``(k + m)²`` matrix. Equals ``recovery_tolerance(joint, anchors=...)`` for the "raise" and "clip"
    policies; "shift" subtracts the smallest entry of the two blocks (see :func:`harmonic_batch`).
    """
    s_uu, s_ul = (as_real_tensor(t, name).detach().to(torch.float64)
                  for t, name in ((s_uu, "s_uu"), (s_ul, "s_ul")))
    batched = s_uu.dim() == 3
    if not batched:
        s_uu, s_ul = s_uu.unsqueeze(0), s_ul.unsqueeze(0)
    if (s_uu.dim() != 3 or s_uu.shape[-1] != s_uu.shape[-2] or s_ul.dim() != 3
            or s_ul.shape[:2] != s_uu.shape[:2]):
        raise ValueError(f"expected s_uu [B, k, k] and s_ul [B, k, m]; got {tuple(s_uu.shape)} and "
                         f"{tuple(s_ul.shape)}")
    if s_ul.shape[-1] == 0 or s_uu.shape[-1] == 0:
        raise ValueError("anchors must leave at least one labelled and one unlabelled item")
    w_uu, w_ul, exponent = block_weights(s_uu, s_ul, negative, validate=True)
    l_uu = torch.diag_embed(w_uu.sum(-1) + w_ul.sum(-1)) - w_uu
    values, vectors = torch.linalg.eigh(l_uu)
    delta = _bound(values, vectors, l_uu.abs().sum(-1).amax(-1), l_uu.shape[-1])
    if exponent is not None:
        delta = scale_by_power_of_two(delta, exponent)
    return delta if batched else float(delta[0])


def _anchor_mask(anchors: Any, bsz: int, n: int, device: torch.device) -> torch.Tensor:
    a = torch.as_tensor(np.asarray(anchors) if not isinstance(anchors, torch.Tensor) else anchors,
                        device=device)
    if a.dtype != torch.bool:
        if a.is_floating_point() or a.is_complex():
            raise TypeError(f"anchors must be integer indices or a boolean mask, got {a.dtype}")
        if a.dim() != 1 or bool(((a < 0) | (a >= n)).any()):
            raise ValueError(f"anchor indices must be a 1-D array in [0, {n})")
        a = torch.zeros(n, dtype=torch.bool, device=device).index_fill_(0, a.long(), True)
    if a.dim() == 1:
        a = a.unsqueeze(0).expand(bsz, n)
    if tuple(a.shape) != (bsz, n):
        raise ValueError(f"anchor mask must have shape [{n}] or [{bsz}, {n}], got {tuple(a.shape)}")
    if bool((a.sum(-1) == 0).any()) or bool((a.sum(-1) == n).any()):
        raise ValueError("anchors must leave at least one labelled and one unlabelled item")
    return a


def _anchored_bound(lap: torch.Tensor, amask: torch.Tensor) -> torch.Tensor:
    free = (~amask).nonzero().squeeze(-1)
    l_uu = lap[free][:, free]
    values, vectors = torch.linalg.eigh(l_uu)
    return _bound(values.unsqueeze(0), vectors.unsqueeze(0),
                  l_uu.abs().sum(-1).amax().unsqueeze(0), free.numel())[0]


def _bound(values: torch.Tensor, vectors: torch.Tensor, inf_norm: torch.Tensor,
           m: int) -> torch.Tensor:
    """δ from ascending eigenvalues ``[B, m]``, eigenvectors ``[B, n, m]`` and ``‖L_m‖_∞`` ``[B]``."""
    lam1 = values[:, 0].clamp_min(0.0)
    lam_max = values[:, -1]
    sigma1 = lam1  # symmetric positive semi-definite: singular values are the eigenvalues
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    vectors = vectors * torch.sign(vectors.gather(1, idx))
    if vectors.shape[-1] >= 2:
        # min over eigenvector pairs i≠j and coordinates k of |α_ik − α_jk|: sort each coordinate's
        # entries across eigenvectors and take the smallest consecutive gap (O(n m log m)).
        alpha = vectors.sort(dim=-1).values.diff(dim=-1).abs().amin(dim=(-1, -2))
        # unit eigenvectors carry rounding errors of a few eps·m: a smaller gap is a tie (α = 0, δ = 0,
        # the safe answer) rather than a digit of noise that differs between BLAS kernels
        alpha = torch.where(alpha <= 64 * m * torch.finfo(vectors.dtype).eps, 0.0, alpha)
    else:  # a single eigenvector: no pair, the minimum over an empty set does not bind
        alpha = torch.full_like(lam1, math.inf)
    term = lam1**2 * sigma1 * alpha / (8 * math.sqrt(2) * lam_max.clamp_min(1e-300) * m
                                       * inf_norm.clamp_min(1e-300))
    delta = torch.minimum(sigma1 / 2, term)
    singular = lam1 <= 1e-12 * lam_max.abs().clamp_min(1e-300)
    return torch.where(singular, torch.zeros_like(delta), delta)
