"""Training under DistributedDataParallel is the single-process training of the global batch.

Two gloo processes on CPU (a file:// store, no TCP ports), each running its half of every batch through a
DDP replica (:func:`clss.engine.ddp.attach`), must reach after several steps the same parameters and the
same logged losses as one process with the whole batch, in float64. Independent reference: the same
method, seed and batches in one process without any distributed code. The optimiser is SGD, whose step is
proportional to the gradient, so a gradient off by a factor (1/W or W) cannot go unnoticed."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clss.engine.ddp import Distributed, attach
from clss.methods import Batch, OptimizerConfig, TrainingContext, build_method
from clss.models import MLPRegressor

pytestmark = pytest.mark.distributed

STEPS = 4
N_L, N_U, D = 13, 11, 5  # odd sizes: the two processes get blocks of different lengths


def _batches(step: int, device: str = "cpu") -> tuple[Batch, Batch]:
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(N_L + N_U, D, generator=g, dtype=torch.float64)
    y = torch.sin(x[:, 0]) + 0.5 * x[:, 1]
    noisy = x + 0.05 * torch.randn(x.shape, generator=g, dtype=torch.float64)  # a second view
    views = {"weak": x, "weak@2": noisy, "strong": noisy}
    views = {k: v.to(device) for k, v in views.items()}
    lab = Batch({k: v[:N_L] for k, v in views.items()}, torch.arange(N_L, device=device), y[:N_L].to(device))
    ulb = Batch({k: v[N_L:] for k, v in views.items()}, torch.arange(N_L, N_L + N_U, device=device),
                y[N_L:].to(device))
    return lab, ulb


def _train(case: str, params: dict, ddp: Distributed | None, device: str = "cpu"
           ) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """``case`` is a method name, optionally ``name+probe``: every step is a gradient-probe step."""
    name, _, probe = case.partition("+")
    torch.manual_seed(0)
    method = build_method(name, lambda: MLPRegressor(D, (12, 12), dropout=0.0, init="default").double(),
                          OptimizerConfig(name="sgd", lr=0.05, weight_decay=0.0), params).to(device)
    method.probe_gradients = probe == "probe"
    if ddp is not None:
        attach(method, ddp)
    method.setup(TrainingContext(total_steps=STEPS, train_size=N_L + N_U, labeled_y=_batches(0, device)[0].y,
                                 unlabeled_index=torch.arange(N_L, N_L + N_U, device=device)))
    losses = []
    for step in range(STEPS):
        lab, ulb = _batches(step, device)
        losses.append(method.training_step(lab, ulb if method.semi_supervised else None, step))
    return losses, {k: v.detach().cpu().clone() for k, v in method.state_dict().items() if torch.is_tensor(v)}


def _worker(rank: int, world: int, folder: str, cases: list[tuple[str, dict]], device: str = "cpu") -> None:
    torch.set_num_threads(1)
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"file://{folder}/store", rank=rank, world_size=world)
    where = f"cuda:{rank}" if device == "cuda" else "cpu"
    try:
        for name, params in cases:  # one job for every case: a process group costs seconds to start
            losses, state = _train(name, params, Distributed(rank, world, rank, world, torch.device(where)),
                                   where)
            torch.save({"losses": losses, "state": state}, f"{folder}/{_key(name, params)}-rank{rank}.pt")
    finally:
        dist.destroy_process_group()


CASES = [
    ("ucvme", {"unlabeled_weight": 1.0}),
    ("supervised", {}),
    ("clss", {"rank_weight": 1.0, "consistency_weight": 1.0}),
    ("gclss", {"unlabeled_weight": 1.0}),
    ("meanteacher", {"unlabeled_weight": 1.0}),
    ("cps", {"unlabeled_weight": 1.0}),
    # the split backward (torch.autograd.grad, averaged over the processes by the method, not by DDP):
    # the automatic unlabelled weight, and the gradient probe on every step (two networks for CPS)
    ("gclss", {"unlabeled_weight": "auto"}),
    ("cps+probe", {"unlabeled_weight": 1.0}),
]


def _run_job(folder, device: str = "cpu") -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(r, 2, str(folder), CASES, device)) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0, f"a process of the job failed (exit code {p.exitcode})"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The folder of a two-process job that trained every case."""
    folder = tmp_path_factory.mktemp("ddp")
    _run_job(folder)
    return folder


def _key(name: str, params: dict) -> str:
    return f"{name}-w{params.get('unlabeled_weight', '')}"


@pytest.mark.parametrize(("name", "params"), CASES, ids=[_key(*c) for c in CASES])
def test_two_processes_train_exactly_as_one_with_the_global_batch(job, name, params):
    _check_against_one_process(job, name, params)


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices (NCCL, one per process)")
def test_two_gpus_train_exactly_as_one(tmp_path):
    _run_job(tmp_path, "cuda")
    for name, params in CASES:
        _check_against_one_process(tmp_path, name, params, "cuda")


def _check_against_one_process(job, name: str, params: dict, device: str = "cpu") -> None:
    reference_losses, reference = _train(name, params, None, "cuda:0" if device == "cuda" else "cpu")
    for rank in range(2):
        saved = torch.load(job / f"{_key(name, params)}-rank{rank}.pt", weights_only=True)
        losses, state = saved["losses"], saved["state"]
        assert [s.keys() for s in losses] == [s.keys() for s in reference_losses], rank
        for logged, expected in zip(losses, reference_losses, strict=True):  # losses, weights, probe norms
            assert logged == pytest.approx(expected, rel=1e-9, abs=1e-12), rank
        assert state.keys() == reference.keys()
        for key, value in reference.items():
            if value.is_floating_point():
                scale = float(value.abs().max()) + 1e-12
                assert float((state[key] - value).abs().max()) <= 1e-9 * scale + 1e-12, (rank, key)
            else:
                assert torch.equal(state[key], value), (rank, key)
    # the parameters moved: the comparison is not between two untrained networks
    torch.manual_seed(0)
    start = MLPRegressor(D, (12, 12), dropout=0.0, init="default").double().state_dict()
    assert any(not torch.equal(reference[f"model.{k}"], v) for k, v in start.items())


def test_sync_batchnorm_is_refused_on_the_cpu():
    method = build_method("supervised", lambda: MLPRegressor(D, (4,), dropout=0.0, init="default"))
    with pytest.raises(ValueError, match="sync_batchnorm needs CUDA devices"):
        attach(method, Distributed(0, 2, 0, 2, torch.device("cpu")), sync_batchnorm=True)
    assert method.shard is None and not method.replicas  # nothing half-done


def test_outside_torchrun_a_run_is_one_process(monkeypatch):
    from clss.engine.ddp import start_distributed

    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert start_distributed("auto") is None
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: nothing to distribute
    assert start_distributed("auto") is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="each process takes the GPU of its LOCAL_RANK"):
        start_distributed("cuda:1")
