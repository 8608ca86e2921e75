"""ConOrd: contrastive order learning with a centre loss and k-NN inference (seed paper 003,
eqs. 3-10). Specified from the paper; no public code exists."""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor, nn

from clss.losses._common import (
    REDUCTIONS,
    check_choice,
    check_positive,
    check_temperature,
    integer_indices,
    loss_batch,
    reduce_anchors,
)
from clss.losses.errors import NonFiniteError
from clss.losses.pairwise import LABEL_DISTANCES, feature_similarity, label_distance

SIMILARITIES = {"sq_l2": "neg_sq_l2", "dot": "dot"}
AFFINITIES = ("inv_sq", "inv_abs")
DISPARITIES = ("sq", "abs", "one")


class ConOrdLoss(nn.Module):
    r"""Contrastive order learning loss (ConOrd, eq. 3).

    With ``n`` rows, ``A(i) = {j ≠ i}``, similarity ``κ_ij``, rank difference ``Δ_ij = D(r_i, r_j)``,
    affinity ``a_ij`` and disparity ``b_ij``::

        α_i = Σ_{j∈A(i)} a_ij exp(κ_ij/τ),   β_i = Σ_{j∈A(i)} b_ij exp(κ_ij/τ)
        L   = −(1/n) Σ_i (1/|A(i)|) log(α_i / β_i)

    computed as ``logsumexp(log a + κ/τ) − logsumexp(log b + κ/τ)`` (stable for ``a = 1/ε``).
    Defaults are the paper's best configuration (Table 1, method VIII): ``κ = −‖z_i − z_j‖²``,
    ``a = 1/(Δ² + ε)``, ``b = Δ²``, τ = 0.07, ε = 1e-7. Every configuration of Table 1 is
    selectable: ``similarity ∈ {"sq_l2", "dot"}``, ``affinity ∈ {"inv_sq", "inv_abs"}``
    (``1/(Δ² + ε)``, ``1/(|Δ| + ε)``), ``disparity ∈ {"sq", "abs", "one"}`` (``Δ²``, ``|Δ|``, 1).

    Anchors whose every other row has the same rank have ``β_i = 0`` (log ratio +∞); they are
    excluded and the mean runs over the remaining anchors (0 when none remain). Ties get weight 0
    in ``β`` and the largest weight ``1/ε`` in ``α``.

    Args:
        temperature: τ (0.07).
        eps: ε of the affinity (1e-7).
        similarity, affinity, disparity: see above.
        label_diff: ``"l1"`` or ``"l2"`` rank difference for ``[N, m]`` targets (same for scalars).
        reduction: ``"mean"`` (weighted mean over valid anchors), ``"sum"`` or ``"none"``.

    Call: ``loss(features, targets, *, weights=None, mask=None, gather=False)``.

    * ``features``: ``[N, d]`` or ``[N, V, d]`` embeddings, **L2-normalised by the caller** (the
      paper puts them on the unit sphere); views flattened view-major.
    * ``targets``: ``[N]`` or ``[N, m]`` ranks or continuous targets (pseudo-targets allowed).
    * ``weights``: ``[N]`` anchor weights; ``mask``: ``[N]`` bool rows to keep; ``gather``: global
      batch under ``torch.distributed``.

    Needs at least 2 rows. Use with :class:`ConOrdCenterLoss` (eq. 9) and :func:`knn_predict`
    (eq. 10).
    """

    def __init__(
        self,
        temperature: float = 0.07,
        eps: float = 1e-7,
        similarity: str = "sq_l2",
        affinity: str = "inv_sq",
        disparity: str = "sq",
        label_diff: str = "l1",
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.temperature = check_temperature(name, "temperature", temperature)
        self.eps = check_positive(name, "eps", eps)
        if self.eps < torch.finfo(torch.float32).tiny:  # it would round to 0 and make log a_ii infinite
            raise ValueError(f"{name}: eps must be >= {torch.finfo(torch.float32).tiny:.3g}, got {eps}")
        self.similarity = check_choice(name, "similarity", similarity, tuple(SIMILARITIES))
        self.affinity = check_choice(name, "affinity", affinity, AFFINITIES)
        self.disparity = check_choice(name, "disparity", disparity, DISPARITIES)
        self.label_diff = check_choice(name, "label_diff", label_diff, LABEL_DISTANCES)
        self.reduction = check_choice(name, "reduction", reduction, REDUCTIONS)

    def forward(
        self,
        features: Tensor,
        targets: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        with loss_batch(self, features, targets, weights=weights, mask=mask,
                        gather=gather) as batch:
            n = batch.n
            logits = feature_similarity(batch.features, SIMILARITIES[self.similarity])
            logits = logits / self.temperature
            delta = label_distance(batch.targets, self.label_diff).to(logits.dtype)
            power = 2 if self.affinity == "inv_sq" else 1
            log_a = -torch.log(delta**power + self.eps)
            if self.disparity == "one":
                log_b = torch.zeros_like(delta)
            else:
                log_b = torch.log(delta ** (2 if self.disparity == "sq" else 1))  # −inf on ties
            others = ~torch.eye(n, dtype=torch.bool, device=logits.device)
            valid = ((delta > 0) & others).any(1) if self.disparity != "one" else others.any(1)
            # Rows without any b_ij > 0 get a dummy finite row so that no NaN reaches autograd.
            log_b = torch.where(valid[:, None], log_b, 0.0).masked_fill(~others, -math.inf)
            log_a = log_a.masked_fill(~others, -math.inf)
            log_ratio = torch.logsumexp(log_a + logits, 1) - torch.logsumexp(log_b + logits, 1)
            per_anchor = -log_ratio / (n - 1)
            value = reduce_anchors(per_anchor, batch.weights, self.reduction, valid=valid)
            return batch.finite(value, logits)

    def extra_repr(self) -> str:
        return (
            f"temperature={self.temperature}, eps={self.eps}, similarity={self.similarity!r}, "
            f"affinity={self.affinity!r}, disparity={self.disparity!r}"
        )


class ConOrdCenterLoss(nn.Module):
    r"""ConOrd centre loss (eq. 8) with learnable reference points ``μ_0 … μ_{M−1}``::

        L_center = Σ_i ‖z_i − μ_{r_i}‖₂        (Euclidean norm, not squared; reduction="sum")

    The total ConOrd objective is ``ConOrdLoss + ConOrdCenterLoss`` (eq. 9). The reference points
    are ordinary parameters (add them to the optimiser); the paper finds the initialisation
    irrelevant, here ``N(0, 1/dim)``.

    Args:
        num_ranks: ``M``, one reference point per rank present in training.
        dim: embedding dimension ``d``.
        reduction: ``"sum"`` (paper), ``"mean"`` or ``"none"``.

    Call: ``loss(features, ranks, *, weights=None, mask=None, gather=False)`` with ``features``
    ``[N, d]``/``[N, V, d]`` and integer ``ranks`` ``[N]`` in ``[0, M)`` (integral floats accepted).
    Continuous targets must be binned first, e.g. ``torch.bucketize(y, edges)`` with ``M − 1``
    sorted inner bin edges. Out-of-range or non-integral ranks raise ``ValueError``.
    """

    def __init__(self, num_ranks: int, dim: int, reduction: str = "sum") -> None:
        super().__init__()
        if int(num_ranks) < 1 or int(dim) < 1:
            raise ValueError(f"ConOrdCenterLoss: num_ranks and dim must be ≥ 1, got {num_ranks}, {dim}")
        self.num_ranks, self.dim = int(num_ranks), int(dim)
        self.reduction = check_choice(type(self).__name__, "reduction", reduction, REDUCTIONS)
        self.centers = nn.Parameter(torch.randn(self.num_ranks, self.dim) / math.sqrt(self.dim))

    def forward(
        self,
        features: Tensor,
        ranks: Tensor,
        *,
        weights: Tensor | None = None,
        mask: Tensor | None = None,
        gather: bool = False,
    ) -> Tensor:
        name = type(self).__name__
        with loss_batch(self, features, ranks, weights=weights, mask=mask, gather=gather, multi_dim=False,
                        min_samples=1, parameters={"centers": self.centers}) as batch:
            if batch.features.shape[1] != self.dim:
                raise ValueError(
                    f"{name}: features have dimension {batch.features.shape[1]}, expected {self.dim}"
                )
            index = integer_indices(name, batch.targets[:, 0], self.num_ranks, "ranks")
            centers = self.centers.to(batch.features.dtype)[index]
            per_row = torch.linalg.vector_norm(batch.features - centers, dim=1)
            return batch.finite(reduce_anchors(per_row, batch.weights, self.reduction))


def knn_predict(
    train_emb: Tensor,
    train_targets: Tensor,
    query_emb: Tensor,
    k: int,
    chunk_size: int = 4096,
) -> Tensor:
    """ConOrd k-NN inference (eq. 10): the mean target of the ``k`` nearest training embeddings.

    Args:
        train_emb: ``[M, d]`` training embeddings (as used in training, i.e. L2-normalised).
        train_targets: ``[M]`` or ``[M, m]`` ranks or targets.
        query_emb: ``[Q, d]``.
        k: neighbours (paper: 4 to 60 per dataset; results are stable in k).
        chunk_size: queries per block, bounding memory at ``chunk_size × M`` distances.

    Returns:
        ``[Q]`` (or ``[Q, m]``) predictions in the dtype of the embeddings. Nearest by Euclidean
        distance (equivalent to cosine for unit-norm embeddings); ties broken by ``torch.topk``.
    """
    for name, value in (("train_emb", train_emb), ("train_targets", train_targets), ("query_emb", query_emb)):
        if not isinstance(value, Tensor):
            raise TypeError(f"knn_predict: {name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dtype == torch.bool or value.is_complex() or (name != "train_targets"
                                                               and not value.is_floating_point()):
            kind = "floating point" if name != "train_targets" else "real numbers"
            raise ValueError(f"knn_predict: {name} must be {kind}, got {value.dtype}")
    if train_emb.dim() != 2 or query_emb.dim() != 2 or train_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(
            "knn_predict: embeddings must be [M, d] and [Q, d] with the same d, got "
            f"{tuple(train_emb.shape)} and {tuple(query_emb.shape)}"
        )
    if train_targets.shape[0] != train_emb.shape[0] or train_targets.dim() not in (1, 2):
        raise ValueError(
            f"knn_predict: train_targets must be [M] or [M, m] with M = {train_emb.shape[0]}, "
            f"got {tuple(train_targets.shape)}"
        )
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= train_emb.shape[0]:
        raise ValueError(f"knn_predict: k must be an integer in [1, {train_emb.shape[0]}], got {k!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, numbers.Integral) or chunk_size < 1:
        raise ValueError(f"knn_predict: chunk_size must be an integer >= 1, got {chunk_size!r}")
    for name, value in (("train_emb", train_emb), ("train_targets", train_targets), ("query_emb", query_emb)):
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise NonFiniteError(f"knn_predict: {name} contain NaN or inf ({bad} of {value.numel()} entries)")
    targets = train_targets.to(train_emb.dtype)
    out = []
    for start in range(0, query_emb.shape[0], chunk_size):
        dist = torch.cdist(query_emb[start : start + chunk_size], train_emb)
        nearest = dist.topk(int(k), dim=1, largest=False).indices
        out.append(targets[nearest].mean(1))
    if not out:
        return targets.new_zeros((0, *targets.shape[1:]))
    return torch.cat(out)
