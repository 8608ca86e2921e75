"""SupReMix: supervised contrastive regression with mixed hard pairs (Wu et al., "Mixup Your Own
Pairs", 2023), without the official dense ``[n, n, n, d]`` mixture tensor."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    check_positive,
    check_temperature,
    loss_batch,
    reduce_anchors,
    zero_loss,
)
from clss.losses.pairwise import feature_similarity

MODES = ("paper", "official")


class SupReMixLoss(nn.Module):
    r"""SupReMix loss (Wu et al., "Mixup Your Own Pairs: Supervised Contrastive Learning for
    Regression with Mixup", 2023).

    With view-major rows ``z_1 … z_n`` (``n = V·N``), scalar targets ``y`` and logits
    ``s(i, u) = u·z_i/τ``, every anchor ``i`` contrasts three kinds of columns:

    * real rows ``k ≠ i``, positive when ``y_k = y_i`` (ties and the other views are positives);
    * **Mix-neg** (anchor-inclusive, eq. 1), one per row ``k`` with ``y_k ≠ y_i``:
      ``u = λ z_i + (1 − λ) z_k``, label ``λ y_i + (1 − λ) y_k``, ``λ ~ Beta(α, β)`` per slot;
    * **Mix-pos** (anchor-exclusive, eq. 3), one per pair ``(j, k)`` with ``y_j < y_i < y_k``,
      ``y_i − y_j < γ`` and ``y_k − y_i < γ``: ``u = a z_j + (1 − a) z_k`` with
      ``a = (y_k − y_i)/(y_k − y_j)``, so its label interpolates to ``y_i``; a positive.

    Mixtures are built from detached copies (official), so gradients reach a mixture logit only
    through the anchor: the gradient treats the mixtures as constants. With the
    distance-magnifying weight ``w = 1 + |y_i − ŷ|`` (eq. 5, ``ŷ`` the column's label; 1 on
    positives) on the denominator::

        ℓ_i = −(1/|P(i)|) Σ_{p∈P(i)} s_ip + log Σ_{a∈A(i)} w_ia exp(s_ia)
        L   = mean over anchors i

    ``P(i)`` are the positives (real and Mix-pos) and ``A(i)`` every column. Eq. 5 also divides
    ``w`` by the label range ``m_max − m_min``; that only shifts the loss by a constant and is
    omitted, as in the official code. A mixture logit is a combination of two dot products
    ``z_i·z_p`` of detached copies, so the loss needs O(n²) memory for the real and Mix-neg
    columns plus O(1) per Mix-pos slot (at most ``n³/4``, far fewer with a narrow window) and never
    the official ``[n, n, n, d]`` tensor.

    ``mode="official"`` reproduces the authors' code, quirks included (Q1, Q2, Q4):

    * Q1: the mixture labels are sorted per anchor independently of the mixture columns, so the
      ``k``-th mixture column (Mix-neg by ``k``, then Mix-pos by ``(j, k)``; the official
      ``torch.sort`` is unstable, a stable order is used here) gets the weight of the ``k``-th
      smallest label (clamped at 0, as the padding labels are 0);
    * Q2/Q4: real and mixture logits are shifted by separate detached row maxima; the mixture
      maximum includes the ``−1``-vector padding columns of anchors with fewer mixtures than the
      busiest anchor. This rescales the mixture terms by ``exp(max_real − max_mix)``.

    The fp16 autocast and the ablation modes of the official script are not reproduced. Official
    mode depends on the row order (Q1); paper mode is invariant to permuting the batch together
    with the draws.

    Args:
        temperature: τ (official: 0.5 AgeDB, 0.3 IMDB-WIKI; no default, as it is per dataset).
        alpha, beta: shape of the Beta distribution of the Mix-neg coefficient λ (paper default
            Beta(2, 8), the "easy" mode; the official ``--beta 1`` is Beta(8, 2), ``2`` Beta(5, 5)).
        window: Mix-pos window γ in label units, strict (official ``--n 5``); ``math.inf`` mixes
            across the whole range.
        mode: ``"paper"`` or ``"official"``.
        reduction: ``"mean"`` (weighted mean over anchors), ``"sum"`` or ``"none"`` (``[n]``).

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False, generator=None,
    lambdas=None)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` projection outputs, **L2-normalised by the caller**
      (official: ``[B, 2, d]``); views flattened view-major. Any float dtype/device.
    * ``targets``: ``[N]`` or ``[N, 1]`` continuous targets (pseudo-targets allowed); ties are
      positives, so bin noisy targets if exact ties should count.
    * ``weights``: ``[N]`` anchor weights; ``mask``: ``[N]`` bool rows to keep; ``gather``: the
      global batch under ``torch.distributed`` (pass identically seeded generators on all ranks).
    * ``generator``: RNG for the λ draws, one ``[n, n]`` matrix per call (row ``i``, column ``k``
      is the draw of slot ``(i, k)``), drawn on the generator's device in the features' dtype.
    * ``lambdas``: explicit ``[n, n]`` draws in ``[0, 1]`` over the flattened (and masked or
      gathered) rows instead of ``generator``, e.g. to replay draws.

    Anchors without positives (one view, a unique target and nothing to interpolate) contribute 0
    and still count in the mean (the official code returns NaN; it always has two views). One row
    gives 0. All targets tied gives no mixtures: weighted SupCon.
    """

    def __init__(
        self,
        temperature: float,
        alpha: float = 2.0,
        beta: float = 8.0,
        window: float = 5.0,
        mode: str = "paper",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.temperature = check_temperature(name, "temperature", temperature)
        self.alpha = check_positive(name, "alpha", alpha)
        self.beta = check_positive(name, "beta", beta)
        self.window = float(window)
        if not self.window > 0:
            raise ValueError(f"{name}: window must be > 0 (math.inf allowed), got {window}")
        self.mode = check_choice(name, "mode", mode, MODES)
        self.reduction = check_choice(name, "reduction", reduction, REDUCTIONS)

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
        generator: torch.Generator | None = None,
        lambdas: Tensor | None = None,
    ) -> Tensor:
        name = type(self).__name__
        if generator is not None and lambdas is not None:
            raise ValueError(f"{name}: pass either generator or lambdas, not both")
        with loss_batch(self, features, targets, weights=weights, mask=mask, gather=gather, multi_dim=False,
                        min_samples=1) as batch:
            z, n = batch.features, batch.n
            y = batch.targets[:, 0].to(z.dtype)
            lam = self._lambdas(n, z, generator, lambdas)
            if n < 2:
                return zero_loss(z)
            logits = feature_similarity(z, "dot") / self.temperature
            # Mixtures are detached (official): u·z_i = c·z_i·z̄_p + (1 − c)·z_i·z̄_q, gradient via z_i.
            anchor_dot = (z @ z.detach().T) / self.temperature

            neg_slot = (y[:, None] != y[None, :]).flatten().nonzero().squeeze(1)
            i_neg, k_neg = neg_slot // n, neg_slot % n
            lam_neg = lam.flatten().index_select(0, neg_slot)
            i_pos, j_pos, k_pos = _mix_pos_slots(y, self.window)
            if self.mode == "official":  # column order of the official layout, for Q1's pairing
                order = ((i_pos * n + j_pos) * n + k_pos).argsort()
                i_pos, j_pos, k_pos = i_pos[order], j_pos[order], k_pos[order]
            coef = (y[k_pos] - y[i_pos]) / (y[k_pos] - y[j_pos])
            anchor = torch.cat([i_neg, i_pos])
            first, second = torch.cat([i_neg, j_pos]), torch.cat([k_neg, k_pos])
            coef = torch.cat([lam_neg, coef])
            # Flat index_select: much faster than 2-D advanced indexing for millions of slots.
            flat = anchor_dot.flatten()
            mix = coef * flat.index_select(0, anchor * n + first)
            mix = mix + (1 - coef) * flat.index_select(0, anchor * n + second)
            mix_label = torch.cat([lam_neg * y[i_neg] + (1 - lam_neg) * y[k_neg], y[i_pos]])
            mix_positive = torch.arange(anchor.numel(), device=z.device) >= i_neg.numel()

            real_offset = torch.zeros_like(y)
            mix_offset = torch.zeros_like(y)
            if self.mode == "official":
                mix_label = _official_label_pairing(anchor, mix_label)
                real_offset, mix_offset = self._official_shifts(logits, mix, anchor, z)
            real = logits + real_offset[:, None]
            mix = mix + mix_offset[anchor]

            eye = torch.eye(n, dtype=torch.bool, device=z.device)
            real_terms = real + torch.log1p((y[:, None] - y[None, :]).abs())
            real_terms = real_terms.masked_fill(eye, -math.inf)
            mix_terms = mix + torch.log1p((y[anchor] - mix_label).abs())
            shift = _segment_max(mix_terms.detach(), anchor, n)
            shift = torch.maximum(shift, real_terms.detach().amax(1))
            denominator = torch.exp(real_terms - shift[:, None]).sum(1)
            denominator = denominator.index_add(0, anchor, torch.exp(mix_terms - shift[anchor]))
            log_denominator = denominator.log() + shift

            positive = (y[:, None] == y[None, :]) & ~eye
            pos_anchor = anchor[mix_positive]
            pos_sum = torch.where(positive, real, 0.0).sum(1).index_add(0, pos_anchor, mix[mix_positive])
            n_positive = positive.sum(1) + torch.bincount(pos_anchor, minlength=n)
            per_anchor = log_denominator - pos_sum / n_positive.clamp_min(1)
            per_anchor = torch.where(n_positive > 0, per_anchor, 0.0)
            return batch.finite(reduce_anchors(per_anchor, batch.weights, self.reduction), logits)

    def _lambdas(
        self, n: int, like: Tensor, generator: torch.Generator | None, lambdas: Tensor | None
    ) -> Tensor:
        name = type(self).__name__
        if lambdas is not None:
            if not isinstance(lambdas, Tensor) or lambdas.shape != (n, n):
                shape = tuple(lambdas.shape) if isinstance(lambdas, Tensor) else type(lambdas).__name__
                raise ValueError(f"{name}: lambdas must have shape [n, n] = [{n}, {n}], got {shape}")
            lambdas = lambdas.detach().to(device=like.device, dtype=like.dtype)
            if not ((lambdas >= 0) & (lambdas <= 1)).all():
                raise ValueError(f"{name}: lambdas must lie in [0, 1]")
            return lambdas
        device = like.device if generator is None else generator.device
        concentration = torch.tensor([self.alpha, self.beta], dtype=like.dtype, device=device)
        # torch.distributions.Beta takes no generator; the Dirichlet sampler behind it does.
        draws = torch._sample_dirichlet(concentration.expand(n, n, 2), generator=generator)
        return draws[..., 0].to(like.device)

    def _official_shifts(
        self, logits: Tensor, mix: Tensor, anchor: Tensor, z: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Q2/Q4: ``−max`` of the real row (self included) and of the padded mixture row."""
        n = logits.shape[0]
        counts = torch.bincount(anchor, minlength=n)
        mix_max = _segment_max(mix.detach(), anchor, n)
        padding = -z.detach().sum(1) / self.temperature  # the −1-vector padding column
        mix_max = torch.where(counts < counts.max(), torch.maximum(mix_max, padding), mix_max)
        return -logits.detach().amax(1), -mix_max

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, alpha={self.alpha}, beta={self.beta}, "
            f"window={self.window}, mode={self.mode!r}, reduction={self.reduction!r}"
        )


def _mix_pos_slots(targets: Tensor, window: float) -> tuple[Tensor, Tensor, Tensor]:
    """Mix-pos slots ``(i, j, k)`` with ``y_j < y_i < y_k``, ``y_i − y_j < γ``, ``y_k − y_i < γ``.

    Both partners of anchor ``i`` lie in a contiguous run of the sorted targets, so the slots are
    enumerated from the run lengths in O(n² + slots) memory, without an ``[n, n, n]`` mask.
    Returns three ``[S]`` long tensors, grouped by anchor.
    """
    n = targets.shape[0]
    order = targets.argsort(stable=True)
    diff = targets[:, None] - targets[order][None, :]  # y_i − y_(p), non-increasing in p
    below, above = diff > 0, diff < 0
    n_left = (below & (diff < window)).sum(1)
    n_right = (above & (-diff < window)).sum(1)
    start_left = below.sum(1) - n_left
    start_right = n - above.sum(1)
    count = n_left * n_right
    anchor = torch.repeat_interleave(torch.arange(n, device=targets.device), count)
    offset = torch.arange(anchor.numel(), device=targets.device) - (count.cumsum(0) - count)[anchor]
    width = n_right[anchor]
    left = order[start_left[anchor] + torch.div(offset, width, rounding_mode="floor")]
    right = order[start_right[anchor] + offset % width]
    return anchor, left, right


def _segment_max(values: Tensor, segment: Tensor, n: int) -> Tensor:
    """``[n]`` maximum of ``values`` per segment id (``−inf`` for empty segments)."""
    out = values.new_full((n,), -math.inf)
    return out.scatter_reduce(0, segment, values, "amax")


def _official_label_pairing(anchor: Tensor, labels: Tensor) -> Tensor:
    """Q1: within each anchor, the ``t``-th mixture column gets the ``t``-th smallest label."""
    by_label = labels.clamp_min(0).sort(stable=True)
    regroup = anchor[by_label.indices].argsort(stable=True)
    columns = anchor.argsort(stable=True)
    return torch.empty_like(labels).index_put_((columns,), by_label.values[regroup])
