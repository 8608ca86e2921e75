"""Small ``torch.distributed`` helpers for batch-level losses.

Batch-level losses (RnC, SupCon, the CLSS ranking losses, …) must see the global batch. The rule,
implemented by ``loss(..., gather=True)``:

1. gather the features with :func:`gather_with_grad` (forward ``all_gather`` in rank order,
   backward ``all_reduce(SUM)`` of the incoming gradient, then this rank's slice) and the targets
   with the plain :func:`gather`;
2. compute the **same** global loss on every rank and do **not** multiply it by the world size.

After the summed backward each rank holds ``W · ∂L/∂z_r``; DDP's mean over the ``W`` ranks then
yields exactly the single-process gradient. (The common SimCLR-style gather layer returns only
its own slice of the gradient without reducing and silently halves gradients on two ranks.)

Without an initialised process group (or with one rank) both gathers return their input.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "DistInfo",
    "Shard",
    "average_over_processes",
    "gather",
    "gather_with_grad",
    "get_rank",
    "get_world_size",
    "init_distributed",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank``, ``world_size``, ``local_rank`` and whether a process
    group is initialised."""

    rank: int
    world_size: int
    local_rank: int
    initialized: bool


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def get_world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def init_distributed(backend: str | None = None, init_method: str | None = None) -> DistInfo:
    """Initialise the default process group once; safe to call again.

    If a process group already exists (torchrun after a first call, Ray Train, Lightning Fabric, a
    user's own launcher) it is reused untouched. Otherwise, if the launcher environment
    (``RANK`` and ``WORLD_SIZE``, e.g. from ``torchrun``) is present, a group is created with
    ``backend`` (default: ``"nccl"`` when CUDA is available, else ``"gloo"``) and ``init_method``
    (default ``"env://"``); with NCCL the CUDA device is set to ``LOCAL_RANK``. Without that
    environment nothing is initialised and a single-process :class:`DistInfo` is returned.
    """
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)
    if not dist.is_available() or "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistInfo(0, 1, 0, False)
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, init_method=init_method or "env://")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, True)


_MAX_DIMS = 15


def _gather_sizes(tensor: Tensor) -> list[int]:
    """First-dimension sizes of every rank (the other dimensions must agree)."""
    if tensor.dim() == 0 or tensor.dim() > _MAX_DIMS:
        raise ValueError(f"gather: tensors need 1 to {_MAX_DIMS} dimensions, got {tensor.dim()}")
    # A fixed-length [ndim, *shape, -1, …] record, so that ranks disagreeing on ndim still meet.
    record = torch.full((_MAX_DIMS + 1,), -1, dtype=torch.int64, device=tensor.device)
    record[0] = tensor.dim()
    record[1 : tensor.dim() + 1] = torch.tensor(tensor.shape, dtype=torch.int64)
    records = [torch.empty_like(record) for _ in range(dist.get_world_size())]
    dist.all_gather(records, record)
    if any(
        not torch.equal(r[0:1], record[0:1]) or not torch.equal(r[2:], record[2:]) for r in records
    ):
        shapes = [tuple(r[1 : int(r[0]) + 1].tolist()) for r in records]
        raise ValueError(
            "gather: tensors must have the same number of dimensions and the same trailing "
            f"shape on every rank, got {shapes}"
        )
    return [int(r[1]) for r in records]


def _all_gather_cat(tensor: Tensor, sizes: list[int] | None = None) -> tuple[Tensor, list[int]]:
    """Concatenate every rank's tensor along dim 0 in rank order (uneven first dims allowed; ``sizes``:
    every rank's first dimension when the caller knows them, which saves a collective)."""
    sizes = _gather_sizes(tensor) if sizes is None else sizes
    largest = max(sizes)
    padded = tensor.contiguous()
    if tensor.shape[0] < largest:
        pad = tensor.new_zeros((largest - tensor.shape[0], *tensor.shape[1:]))
        padded = torch.cat([padded, pad])
    parts = [torch.empty_like(padded) for _ in sizes]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)]), sizes


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: Tensor, sizes: list[int] | None = None) -> Tensor:
        gathered, sizes = _all_gather_cat(tensor, sizes)
        rank = dist.get_rank()
        ctx.start = sum(sizes[:rank])
        ctx.size = sizes[rank]
        return gathered

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        # Every rank differentiates its own copy of the global loss; their sum is the gradient of
        # the sum of the per-rank losses, of which this rank's inputs receive their slice.
        grad = grad_output.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.start + ctx.size], None


def gather_with_grad(tensor: Tensor) -> Tensor:
    """All-gather ``tensor`` along dim 0 in rank order, with exact gradients.

    Args:
        tensor: ``[n_r, ...]`` on this rank; trailing dimensions must match across ranks, first
            dimensions may differ.

    Returns:
        ``[Σ_r n_r, ...]``, rows of rank 0 first, identical on every rank. Backward sums the
        incoming gradients over ranks and returns this rank's rows (no halving, no × world size);
        every rank must run the backward. Identity without a multi-process group.
    """
    if not _active():
        return tensor
    return _GatherWithGrad.apply(tensor, None)


def gather(tensor: Tensor) -> Tensor:
    """All-gather along dim 0 in rank order without gradient (targets, weights, masks).

    Bool tensors are supported (sent as uint8). Without a multi-process group the input is
    returned detached.
    """
    tensor = tensor.detach()
    if not _active():
        return tensor
    if tensor.dtype == torch.bool:
        return _all_gather_cat(tensor.to(torch.uint8))[0].bool()
    return _all_gather_cat(tensor)[0]


def average_over_processes(tensors: list[Tensor | None]) -> list[Tensor | None]:
    """The element-wise mean over the processes of each tensor (one all-reduce of their concatenation;
    ``None`` entries stay ``None``); the list unchanged without a multi-process group. Every process must
    call it with the same shapes and the same ``None`` entries, in the same order (the gradients of one
    global loss with respect to the same parameters)."""
    present = [t for t in tensors if t is not None]
    if not _active() or not present:
        return tensors
    flat = torch.cat([t.reshape(-1) for t in present])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    out: list[Tensor | None] = []
    start = 0
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        out.append(flat[start:start + t.numel()].view_as(t))
        start += t.numel()
    return out


@dataclass(frozen=True)
class Shard:
    """This process's share of a global batch under torchrun: rank ``r`` of ``W`` takes the ``r``-th of
    ``W`` contiguous blocks whose sizes differ by at most one (the first ``n mod W`` blocks are one row
    longer), so that gathering the blocks in rank order gives back the global batch in its order."""

    rank: int
    world_size: int

    def sizes(self, n: int) -> list[int]:
        """Rows of every rank's block of a global batch of ``n`` rows."""
        base, extra = divmod(n, self.world_size)
        return [base + (r < extra) for r in range(self.world_size)]

    def rows(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n`` rows."""
        sizes = self.sizes(n)
        start = sum(sizes[: self.rank])
        return slice(start, start + sizes[self.rank])

    def gather(self, out: Mapping[str, Any], n: int) -> dict[str, Any]:
        """The outputs of this rank's block gathered into the global batch of ``n`` rows: every tensor whose
        first dimension is this rank's block, with exact gradients (:func:`gather_with_grad`); other
        values unchanged."""
        sizes = self.sizes(n)
        local = sizes[self.rank]
        return {k: _GatherWithGrad.apply(v, sizes) if isinstance(v, Tensor) and v.dim() >= 1
                and v.shape[0] == local and _active() else v for k, v in out.items()}
