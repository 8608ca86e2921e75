"""clss.distributed: the differentiable gather, the plain gather and init_distributed.

Multi-process tests use two gloo processes on CPU with a file:// store (no TCP ports)."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clss.distributed import DistInfo, gather, gather_with_grad, init_distributed

SIZES = (3, 2)  # uneven rows per rank


def _rows(rank):
    start = sum(SIZES[:rank])
    return torch.arange(start, start + SIZES[rank], dtype=torch.float64)[:, None] * torch.tensor(
        [[1.0, -1.0]], dtype=torch.float64
    )


def _worker(rank, world, init_method):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        info = init_distributed()  # idempotent: reuses the existing group
        assert info == DistInfo(rank, world, 0, True)

        x = _rows(rank).requires_grad_()
        gathered = gather_with_grad(x)
        expected = torch.cat([_rows(r) for r in range(world)])
        assert torch.equal(gathered.detach(), expected)  # rank order, identical on every rank

        # Every rank computes the same global loss; the summed backward gives W·∂L/∂x_r.
        coeff = torch.arange(expected.numel(), dtype=torch.float64).view_as(expected)
        (gathered * coeff).pow(2).sum().backward()
        start = sum(SIZES[:rank])
        own = slice(start, start + SIZES[rank])
        assert torch.equal(x.grad, world * 2 * coeff[own] ** 2 * x.detach())

        labels = gather(torch.full((SIZES[rank],), rank, dtype=torch.int64))
        assert labels.tolist() == [0, 0, 0, 1, 1]
        flags = gather(torch.tensor([True, False, rank == 0])[: SIZES[rank]])
        assert flags.tolist() == [True, False, True, True, False]
        assert not gather(x).requires_grad

        with pytest.raises(ValueError, match="trailing shape"):
            gather(torch.zeros(2, 3 + rank))
        with pytest.raises(ValueError, match="number of dimensions"):
            gather(torch.zeros((2,) * (1 + rank)))
        # both ranks are done communicating before gloo is torn down (a teardown race can abort)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_gather_with_grad_two_gloo_processes(tmp_path):
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'store'}"), nprocs=2, join=True)


def test_single_process_is_identity(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert init_distributed() == DistInfo(0, 1, 0, False)
    assert not dist.is_initialized()
    x = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(x) is x
    assert torch.equal(gather(x), x) and not gather(x).requires_grad


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shard_blocks_partition_a_batch_in_order(world):
    from clss.distributed import Shard

    for n in range(0, 23):
        shards = [Shard(r, world) for r in range(world)]
        rows = [list(range(n))[s.rows(n)] for s in shards]
        assert [i for r in rows for i in r] == list(range(n))  # rank order: the gather restores it
        sizes = [len(r) for r in rows]
        assert sizes == shards[0].sizes(n) and max(sizes) - min(sizes) <= 1
        assert sizes == sorted(sizes, reverse=True)  # the longer blocks first
