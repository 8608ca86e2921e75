"""Every batch-level loss with gather=True under two gloo processes (DDP) equals a single process
on the concatenated batch: values and parameter gradients."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from clss.losses import (
    ConOrdLoss,
    OrdinalEntropyLoss,
    PseudoRankPredictionLoss,
    PseudoRankSimilarityLoss,
    RankSimLoss,
    RnCLoss,
    SupConLoss,
    SupReMixLoss,
)

SIZES = (4, 3)  # uneven local batches, 7 samples in all
N, V, D_IN, D = sum(SIZES), 2, 6, 5


def _global_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, V, D_IN, dtype=torch.float64, generator=g)
    y = torch.tensor([0.5, 1.5, 0.5, 2.0, 3.0, 1.5, 4.0], dtype=torch.float64)
    weights = torch.rand(N, dtype=torch.float64, generator=g) + 0.5
    mask = torch.tensor([True, True, False, True, True, True, True])
    ranks = torch.tensor([3, 0, 6, 2, 5, 1, 4])  # pseudo-ranks, e.g. from a seriation
    return x, y, weights, mask, ranks


def _model():
    torch.manual_seed(1)
    return torch.nn.Linear(D_IN, D).double()


def _cases():
    """(name, loss, how to turn model outputs into the loss input, extra kwargs)."""
    views = lambda out: out  # noqa: E731
    normalised = lambda out: F.normalize(out, dim=-1)  # noqa: E731
    first_view = lambda out: out[:, 0]  # noqa: E731
    prediction = lambda out: out[:, 0, 0]  # noqa: E731
    return [
        ("rnc", RnCLoss(), views, {}),
        ("rnc_weighted_masked", RnCLoss(), views, {"weights": True, "mask": True}),
        ("supcon", SupConLoss(temperature=0.5), normalised, {}),
        ("simclr", SupConLoss(temperature=0.5), normalised, {"no_targets": True}),
        ("ranksim_dedup", RankSimLoss(), first_view, {"generator": True}),
        ("ur", PseudoRankSimilarityLoss(), first_view, {"ranks": True}),
        ("uc", PseudoRankPredictionLoss(), prediction, {"ranks": True}),
        ("oe", OrdinalEntropyLoss(), first_view, {}),
        ("conord", ConOrdLoss(temperature=0.5), normalised, {"weights": True}),
        ("supremix", SupReMixLoss(temperature=0.5), normalised, {"generator": True, "mask": True}),
    ]


def _run(model, x, y, weights, mask, ranks, gather):
    results = {}
    for name, loss, to_input, extra in _cases():
        model.zero_grad()
        kwargs = {"gather": gather}
        if extra.get("weights"):
            kwargs["weights"] = weights
        if extra.get("mask"):
            kwargs["mask"] = mask
        if extra.get("generator"):
            kwargs["generator"] = torch.Generator().manual_seed(3)
        targets = None if extra.get("no_targets") else y
        if extra.get("ranks"):
            targets = ranks
        value = loss(to_input(model(x)), targets, **kwargs)
        value.backward()
        params = model.module.parameters() if hasattr(model, "module") else model.parameters()
        results[name] = (value.detach(), [p.grad.clone() for p in params])
    return results


def _worker(rank, world, init_method, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world)
    try:
        rows = slice(sum(SIZES[:rank]), sum(SIZES[: rank + 1]))
        local = [t[rows] for t in _global_batch()]
        results = _run(DistributedDataParallel(_model()), *local, gather=True)
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        # both ranks are done communicating before gloo is torn down (a teardown race can abort)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.distributed
@pytest.mark.timeout(180)
def test_gathered_losses_equal_single_process(tmp_path):
    mp.spawn(_worker, args=(2, f"file://{tmp_path / 'store'}", str(tmp_path)), nprocs=2)
    reference = _run(_model(), *_global_batch(), gather=False)
    for rank in range(2):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for name, (value, grads) in reference.items():
            got_value, got_grads = results[name]
            assert torch.allclose(got_value, value, rtol=1e-12, atol=1e-14), (rank, name)
            for got, expected in zip(got_grads, grads, strict=True):
                assert torch.allclose(got, expected, rtol=1e-10, atol=1e-13), (rank, name)
