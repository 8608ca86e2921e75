"""Training-step time of a two-process torchrun job (gloo, CPU) against one process, same global batch.

For ``supervised``, ``clss`` and ``gclss`` (operator-sde-sized MLP 241-100-100, Gaussian inputs, global
batches of ``--sizes`` labelled/unlabelled rows, one torch thread per process), the script times
``training_step`` in one process and in a two-process job launched with ``torch.distributed.run``
(each process runs its half of every batch through a DistributedDataParallel replica and gathers the
outputs: :func:`clss.engine.ddp.attach`). Inside each step it also times, by wrapping them, the forward
gathers (:meth:`clss.distributed.Shard.gather`, communication included) and the seriation work of the
step (CLSS's ``seriation_ranks``; GCLSS's ``stable_subset`` and ``anchored_targets``), so the share of the
step spent gathering and seriating the global batch is reported. The gathers' backward (an all-reduce
per gathered output) and DDP's gradient all-reduce run inside the backward and are part of the step time.

The two settings alternate ``--reps`` times (one process, then the job, ...) and the median per-step time
of each is reported with the ratio job / one process. On a machine with fewer idle cores than processes
the job cannot be faster; the ratio then measures the overhead of the distributed step, which is what this
script is for (speed-ups need one device per process).

Usage: ``python benchmarks/ddp_step.py [--sizes 256/256] [--steps 30] [--reps 3]``.
Writes ``benchmarks/results/ddp_step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results" / "ddp_step.json"
METHODS = ("supervised", "clss", "gclss")
PIECES = {"clss": ("clss.methods.clss", ("seriation_ranks",)),
          "gclss": ("clss.methods.gclss", ("stable_subset", "anchored_targets"))}


def _timed(table: dict[str, float], key: str, func):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            table[key] += time.perf_counter() - start
    return wrapper


def _measure(method_name: str, n_l: int, n_u: int, steps: int) -> dict[str, float]:
    """Per-step seconds of ``method_name``: total, forward gathers, seriation (this process)."""
    import importlib

    from clss.distributed import Shard
    from clss.engine.ddp import Distributed, attach
    from clss.methods import Batch, OptimizerConfig, TrainingContext, build_method
    from clss.models import MLPRegressor

    spent: dict[str, float] = defaultdict(float)
    torch.manual_seed(0)
    method = build_method(method_name, lambda: MLPRegressor(241, (100, 100), dropout=0.05, init="default"),
                          OptimizerConfig(name="adamw", lr=1e-3), {})
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        rank = int(os.environ["RANK"])
        attach(method, Distributed(rank, world, rank, world, torch.device("cpu")))
        gather = Shard.gather
        Shard.gather = _timed(spent, "gather", gather)  # type: ignore[method-assign]
    module, names = PIECES.get(method_name, ("", ()))
    if module:
        mod = importlib.import_module(module)
        for name in names:
            setattr(mod, name, _timed(spent, "seriation", getattr(mod, name)))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n_l + n_u, 241, generator=g)
    y = x[:, :5].sum(1) / 5 ** 0.5
    lab = Batch({"weak": x[:n_l], "weak@2": x[:n_l]}, torch.arange(n_l), y[:n_l])
    ulb = Batch({"weak": x[n_l:], "weak@2": x[n_l:]}, torch.arange(n_l, n_l + n_u), y[n_l:])
    method.setup(TrainingContext(total_steps=10 ** 6, train_size=n_l + n_u, labeled_y=y[:n_l],
                                 unlabeled_index=torch.arange(n_l, n_l + n_u)))
    for step in range(3):  # warm-up (LAPACK, numba, allocator)
        method.training_step(lab, ulb, step)
    spent.clear()
    times = []
    for step in range(steps):
        start = time.perf_counter()
        method.training_step(lab, ulb, step)
        times.append(time.perf_counter() - start)
    out = {"step": statistics.median(times)}
    out.update({k: v / steps for k, v in spent.items()})
    if world > 1:
        Shard.gather = gather  # type: ignore[method-assign]
    return out


def _worker(args: argparse.Namespace) -> None:
    """One process (of a job, under torchrun, or alone): every method, JSON to ``args.out``."""
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("gloo")
    n_l, n_u = map(int, args.sizes.split("/"))
    result = {m: _measure(m, n_l, n_u, args.steps) for m in METHODS}
    if int(os.environ.get("RANK", "0")) == 0:
        Path(args.out).write_text(json.dumps(result))
    if world > 1:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="256/256", help="global labelled/unlabelled rows per step")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return
    runs: dict[str, list[dict]] = {"1 process": [], "2 processes": []}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = [__file__, "--worker", "--sizes", args.sizes, "--steps", str(args.steps)]
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for label, launcher in (("1 process", [sys.executable]),
                                    ("2 processes", [sys.executable, "-m", "torch.distributed.run",
                                                     "--standalone", "--nproc-per-node", "2"])):
                out = Path(tmp) / f"{label}-{rep}.json"
                subprocess.run([*launcher, *common, "--out", str(out)], check=True, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                runs[label].append(json.loads(out.read_text()))
    report: dict[str, dict] = {}
    print(f"global batch {args.sizes}, {args.steps} timed steps x {args.reps} alternations, ms per step "
          "(median over alternations)")
    print(f"{'method':<12}{'1 process':>12}{'2 processes':>14}{'ratio':>8}{'gather %':>10}"
          f"{'seriation % (1p / 2p)':>24}")
    for m in METHODS:
        one = statistics.median(r[m]["step"] for r in runs["1 process"])
        two = statistics.median(r[m]["step"] for r in runs["2 processes"])
        gather = statistics.median(r[m].get("gather", 0.0) for r in runs["2 processes"])
        ser1 = statistics.median(r[m].get("seriation", 0.0) for r in runs["1 process"])
        ser2 = statistics.median(r[m].get("seriation", 0.0) for r in runs["2 processes"])
        report[m] = {"one_ms": 1e3 * one, "two_ms": 1e3 * two, "ratio": two / one,
                     "gather_share": gather / two, "seriation_share_one": ser1 / one,
                     "seriation_share_two": ser2 / two}
        print(f"{m:<12}{1e3 * one:>12.2f}{1e3 * two:>14.2f}{two / one:>8.2f}{100 * gather / two:>10.1f}"
              f"{100 * ser1 / one:>12.1f} / {100 * ser2 / two:<9.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"sizes": args.sizes, "steps": args.steps, "reps": args.reps,
                                   "cpu_count": os.cpu_count(), "results": report}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
