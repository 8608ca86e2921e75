"""The differentiable blackbox rank operator (Vlastelica et al., ICLR 2020) of RankSim and CLSS.

``rank_normalised(x)`` ranks each row of ``x`` in descending order and divides by the row length:
the largest entry gets ``1/n``, the smallest ``n/n``. The rank is piecewise constant, so its true
gradient is zero almost everywhere; :class:`BlackboxRank` replaces it by the blackbox
differentiation gradient. With upstream gradient ``g`` and interpolation strength ``λ``::

    s' = s + λ·g
    ∂L/∂s = −(rank_normalised(s) − rank_normalised(s')) / (λ + 1e-8)

which is the (negated) finite difference of the rank along the loss-increasing direction. It is
piecewise constant and exactly 0 when the perturbation leaves the order unchanged, so
``torch.autograd.gradcheck`` does not apply; the tests check this formula directly.

Ties. ``ties="index"`` reproduces the official RankSim/CLSS code on CPU (double argsort with a
flip): among equal values the **later index gets the better (smaller) rank**. It uses a stable
sort, so it is deterministic on every device (the official CUDA argsort may break ties differently).
``ties="average"`` gives every member of a tie group the mean of the group's ranks; use it for
targets whose distances tie by construction (CLSS pseudo-ranks: ``|R_i − R_{i±1}|``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from clss.losses._common import check_positive
from clss.losses.errors import NonFiniteError

TIES = ("index", "average")


def rank_normalised(scores: Tensor, ties: str = "index", dtype: torch.dtype | None = None) -> Tensor:
    """Normalised descending ranks along the last dimension.

    Args:
        scores: ``[..., n]`` real tensor.
        ties: ``"index"`` (later index ranks first, official behaviour) or ``"average"``.
        dtype: floating dtype of the result (default: that of ``scores``; the official code always
            returns float32).

    Returns:
        ``[..., n]`` in ``{1/n, …, n/n}`` (``"average"``: possibly half-integers ``/ n``). Not
        differentiable; see :func:`blackbox_rank`.

    Raises:
        NonFiniteError: NaN/inf scores (their rank would be arbitrary).
    """
    if ties not in TIES:
        raise ValueError(f"rank_normalised: ties must be one of {TIES}, got {ties!r}")
    _check_scores("rank_normalised", scores)
    return _ranks(scores, ties, dtype)


def _check_scores(name: str, scores: Tensor) -> None:
    if not isinstance(scores, Tensor):
        raise TypeError(f"{name}: scores must be a torch.Tensor, got {type(scores).__name__}")
    if scores.dtype == torch.bool or scores.is_complex() or scores.dim() == 0:
        raise ValueError(f"{name}: scores must be a real tensor [..., n], got {scores.dtype} of shape "
                         f"{tuple(scores.shape)}")
    if scores.is_floating_point() and not bool(torch.isfinite(scores).all()):
        bad = int((~torch.isfinite(scores)).sum())
        raise NonFiniteError(f"{name}: scores contain NaN or inf ({bad} of {scores.numel()} entries)")


def _ranks(scores: Tensor, ties: str = "index", dtype: torch.dtype | None = None) -> Tensor:
    """:func:`rank_normalised` without the checks (inputs already validated)."""
    scores = scores.detach()
    dtype = dtype or (scores.dtype if scores.is_floating_point() else torch.get_default_dtype())
    n = scores.shape[-1]
    if ties == "index":
        # Ascending stable sort then flip = descending with later indices first among equals.
        order = torch.argsort(scores, dim=-1, stable=True).flip(-1)
        positions = torch.arange(1, n + 1, device=scores.device).expand_as(order).contiguous()
        ranks = torch.empty_like(order).scatter_(-1, order, positions)
        return ranks.to(dtype) / n
    neg = (-scores).contiguous()
    sorted_neg = neg.sort(dim=-1).values
    greater = torch.searchsorted(sorted_neg, neg, side="left")
    greater_or_equal = torch.searchsorted(sorted_neg, neg, side="right")
    # Mean of the 1-based positions greater+1 … greater_or_equal.
    return (greater + greater_or_equal + 1).to(dtype) / (2 * n)


class BlackboxRank(torch.autograd.Function):
    """``rank_normalised`` (index ties) with the blackbox backward (see the module docstring)."""

    @staticmethod
    def forward(ctx, scores: Tensor, lambda_val: float) -> Tensor:
        ranks = _ranks(scores)
        ctx.lambda_val = lambda_val
        ctx.save_for_backward(scores, ranks)
        return ranks

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        scores, ranks = ctx.saved_tensors
        perturbed = _ranks(scores + ctx.lambda_val * grad_output)
        # `grad_output * 0` keeps a NaN/inf upstream gradient visible: ranks alone would launder it.
        return -(ranks - perturbed) / (ctx.lambda_val + 1e-8) + grad_output * 0, None


def blackbox_rank(scores: Tensor, lambda_val: float = 2.0) -> Tensor:
    """Row-wise ``rank_normalised(scores)`` with the blackbox gradient of Vlastelica et al.

    Args:
        scores: ``[..., n]``; every row along the last dimension is ranked independently.
        lambda_val: interpolation strength ``λ > 0`` (RankSim README and CLSS: 2.0).

    Raises:
        NonFiniteError: NaN/inf scores. ValueError: ``lambda_val`` not a finite number > 0.
    """
    _check_scores("blackbox_rank", scores)
    if not scores.is_floating_point():
        raise ValueError(f"blackbox_rank: scores must be floating point, got {scores.dtype}")
    return BlackboxRank.apply(scores, check_positive("blackbox_rank", "lambda_val", lambda_val))


def rank_matching_loss(
    scores: Tensor, target_scores: Tensor, lambda_val: float, target_ties: str = "index"
) -> Tensor:
    """Per-anchor rank-matching MSE shared by RankSim and the CLSS losses.

    For anchor ``i``: ``MSE(blackbox_rank(scores_i·), rank_normalised(target_scores_i·))``, the mean
    over the ``n`` entries of the row (self entry included, as in the official code).

    Args:
        scores: ``[n, n]`` differentiable similarities (larger = more similar).
        target_scores: ``[n, n]`` constant target similarities (e.g. ``−|y_i − y_j|``).

    Returns:
        ``[n]`` per-anchor losses.
    """
    target = _ranks(target_scores, ties=target_ties, dtype=scores.dtype)
    predicted = BlackboxRank.apply(scores, lambda_val)  # the caller checks the scores with the value
    return (predicted - target).pow(2).mean(-1)


def unique_representatives(targets: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One random row per distinct target, in sorted order of the distinct targets (RankSim).

    If every target is distinct the identity ``arange(n)`` is returned (the official code then keeps
    the batch order). Otherwise each distinct value (row of ``[n, m]`` targets) keeps one row drawn
    uniformly from its occurrences, and the result is ordered by ``torch.unique`` (sorted) order.

    Args:
        targets: ``[n]`` or ``[n, m]``.
        generator: optional ``torch.Generator`` making the draw reproducible. Under
            ``gather=True`` pass generators seeded identically on every rank, so that every rank
            keeps the same rows.

    Returns:
        ``[U]`` int64 row indices.
    """
    y = targets[:, None] if targets.dim() == 1 else targets
    n = y.shape[0]
    _, inverse, counts = torch.unique(y, dim=0, return_inverse=True, return_counts=True)
    if counts.numel() == n:
        return torch.arange(n, device=y.device)
    rng_device = generator.device if generator is not None else y.device
    keys = torch.rand(n, generator=generator, device=rng_device).to(y.device)
    # Order rows by group and, within a group, by random key; the last row of each group wins.
    by_key = torch.argsort(keys)
    order = by_key[torch.argsort(inverse[by_key], stable=True)]
    return order[torch.cumsum(counts, 0) - 1]
