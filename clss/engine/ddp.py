"""Training under torchrun: one process per device, DistributedDataParallel, the global batch everywhere.

``torchrun --nproc-per-node N -m clss train ...`` starts N copies of an ordinary run. Each process:

- builds the same run (same seed, so the same initial weights, splits and sampler), and draws the same
  **global** batch each step (``batch_size`` and ``unlabeled_batch_size`` are global sizes);
- runs its networks on its own contiguous block of every batch (:class:`clss.distributed.Shard`), through
  a :class:`torch.nn.parallel.DistributedDataParallel` replica of each network the optimisers train
  (:meth:`clss.methods.Method.networks`), and gathers the outputs back into the global batch with exact
  gradients (:meth:`clss.methods.Method.forward`);
- computes the method's whole loss on the global batch, identically on every process: similarity
  matrices, stable subsets, seriations and batch losses are the single-process ones. The gathered
  backward gives each process ``W`` times its block's share of the gradient and DDP averages over the
  ``W`` processes, so every parameter receives exactly the single-process gradient of the global loss.

Rank 0 alone evaluates, logs, draws and writes the run directory (atomic writes, as in one process); the
others only train. Every process reads the checkpoint on resume. A stop (Ctrl-C, SIGTERM) is agreed by all
processes at the end of a step, so they stop after the same step and rank 0 checkpoints it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clss.distributed import Shard, init_distributed
from clss.methods.base import Method

__all__ = ["Distributed", "agree", "attach", "barrier", "locally", "start_distributed", "stop_distributed"]


@dataclass(frozen=True)
class Distributed:
    """This process in a torchrun job: ``rank`` of ``world_size``, its ``local_rank`` on its machine and
    the ``device`` it trains on."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        """Rank 0: the process that evaluates and writes."""
        return self.rank == 0


def start_distributed(device: str) -> Distributed | None:
    """Join the torchrun job this process belongs to (None outside torchrun or with one process).

    Parameters
    ----------
    device : {"auto", "cpu", "cuda", "cuda:K"}
        The run's device setting: ``"auto"`` and ``"cuda"`` train on ``cuda:LOCAL_RANK`` over NCCL when
        CUDA is available (``"auto"`` falls back to the CPU over gloo); ``"cpu"`` uses gloo. One device per
        process: ``"cuda:K"`` is refused under torchrun.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or "RANK" not in os.environ:
        return None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ["WORLD_SIZE"]))
    if device.startswith("cuda:"):
        raise ValueError(f"device {device!r}: under torchrun each process takes the GPU of its LOCAL_RANK; "
                         "use device 'cuda' or 'auto'")
    if device in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} has no GPU: {torch.cuda.device_count()} visible; "
                             "start as many processes per node as GPUs")
        where, backend = torch.device("cuda", local_rank), "nccl"
    elif device == "cuda":
        raise ValueError("device 'cuda' was requested but no CUDA device is available; use 'cpu' or 'auto'")
    else:
        where, backend = torch.device("cpu"), "gloo"
    info = init_distributed(backend=backend)
    return Distributed(info.rank, info.world_size, local_rank, local_world, where)


def attach(method: Method, ddp: Distributed, *, sync_batchnorm: bool = False) -> None:
    """Make ``method`` train on its share of every global batch: a DistributedDataParallel replica of each
    of its :meth:`~clss.methods.Method.networks` (optionally with synchronised batch normalisation, so that
    batch statistics are those of the global batch) and its :class:`~clss.distributed.Shard`.

    Call it after the method is on ``ddp.device`` and before its optimisers are built. DDP broadcasts rank
    0's weights and buffers, so every process starts from the same network.
    """
    for net in method.networks():
        if sync_batchnorm:
            if ddp.device.type != "cuda":
                raise ValueError("sync_batchnorm needs CUDA devices (torch synchronises batch statistics "
                                 "over NCCL only); leave it off on the CPU")
            _convert_batchnorm(net)
        ids = [ddp.device.index] if ddp.device.type == "cuda" else None
        method.replicas[id(net)] = DistributedDataParallel(
            net, device_ids=ids, find_unused_parameters=method.ddp_unused_parameters)
    method.shard = Shard(ddp.rank, ddp.world_size)
    method.shard_seeds = torch.Generator().manual_seed(torch.initial_seed())


def _convert_batchnorm(net: nn.Module) -> None:
    """Replace the batch-norm layers of ``net`` in place by SyncBatchNorm (same parameters and buffers, so
    the optimisers and state-dict keys are unchanged)."""
    for name, child in list(net.named_children()):
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(child)
        if converted is not child:
            setattr(net, name, converted)


@contextlib.contextmanager
def locally(method: Method) -> Iterator[None]:
    """Inside, ``method`` runs its networks on whole batches in this process alone (rank 0's evaluations,
    predictions and plots, which the other processes do not join)."""
    shard, method.shard = method.shard, None
    try:
        yield
    finally:
        method.shard = shard


def agree(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is set on any process (every process gets the same answer)."""
    value = torch.tensor([float(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    """Wait for every process of the job (nothing outside one)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def stop_distributed() -> None:
    """Leave the job: destroy the process group (nothing outside one). No barrier: rank 0 may still be
    writing the finished run when the others leave."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
