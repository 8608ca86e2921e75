"""Training-step time per method on a GPU: precision fp32 / bf16 / fp16, and the channels-last layout.

Each method (``--methods``, default supervised, meanteacher, cps, clss, gclss) trains a ResNet
(``--model``, default resnet18) on random ``3 x size x size`` images with ``--batch`` labelled/unlabelled
rows per step. For every (method, precision, layout) the first steps run untimed (cuDNN autotuning,
allocator), then ``--steps`` steps are timed with the device synchronised; the variants are interleaved
``--reps`` times (cuDNN autotuning on, as ``cudnn_benchmark: true``) and the median per-step time is
reported with images per second and the ratio to the method's fp32 step. The seriation of a batch
against a bare batched ``eigh`` is measured by ``benchmarks/gpu_seriate.py``.

Usage on a GPU machine:

    python benchmarks/gpu_step.py --json benchmarks/results/gpu_step.json

and on a CPU, to check the script itself with small sizes:

    python benchmarks/gpu_step.py --device cpu --size 32 --batch 8/8 --precisions fp32 bf16 --steps 2 --reps 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from clss.data import InputSpec
from clss.methods import Batch, OptimizerConfig, TrainingContext, build_method
from clss.models import build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _method(name: str, model: str, size: int, device: torch.device, precision: str, channels_last: bool):
    spec = InputSpec(kind="image", shape=(3, size, size))
    torch.manual_seed(0)
    method = build_method(name, lambda: build_model(model, spec),
                          OptimizerConfig(name="adam", lr=1e-4), {}, precision=precision).to(device)
    if channels_last:
        method.to(memory_format=torch.channels_last)
    return method


def _batches(n_l: int, n_u: int, size: int, device: torch.device) -> tuple[Batch, Batch]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n_l + n_u, 3, size, size, generator=g).to(device)
    y = torch.randn(n_l + n_u, generator=g).to(device)
    views = {"weak": x, "weak@2": x.flip(-1), "strong": x.flip(-2)}
    lab = Batch({k: v[:n_l] for k, v in views.items()}, torch.arange(n_l, device=device), y[:n_l])
    ulb = Batch({k: v[n_l:] for k, v in views.items()}, torch.arange(n_l, n_l + n_u, device=device), y[n_l:])
    return lab, ulb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", default="64/64", help="labelled/unlabelled rows per step")
    parser.add_argument("--methods", nargs="+", default=["supervised", "meanteacher", "cps", "clss", "gclss"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    n_l, n_u = map(int, args.batch.split("/"))
    lab, ulb = _batches(n_l, n_u, args.size, device)
    variants = [(m, p, cl) for m in args.methods for p in args.precisions for cl in (False, True)
                if not (p == "fp16" and device.type != "cuda")]
    methods, times = {}, {v: [] for v in variants}
    for v in variants:
        method = _method(v[0], args.model, args.size, device, v[1], v[2])
        method.setup(TrainingContext(total_steps=10 ** 6, train_size=n_l + n_u, labeled_y=lab.y,
                                     unlabeled_index=ulb.index))
        for step in range(args.warmup):
            method.training_step(lab, ulb if method.semi_supervised else None, step)
        methods[v] = method
    for _ in range(args.reps):  # interleaved, so that drift hits every variant alike
        for v, method in methods.items():
            _sync(device)
            start = time.perf_counter()
            for step in range(args.steps):
                method.training_step(lab, ulb if method.semi_supervised else None, step)
            _sync(device)
            times[v].append((time.perf_counter() - start) / args.steps)
    rows = []
    print(f"{args.model} {args.size}px, batch {args.batch}, {device}; ms per step (median of {args.reps})")
    print(f"{'method':<12}{'precision':<10}{'layout':<15}{'ms':>9}{'images/s':>10}{'vs fp32':>9}")
    for v in variants:
        ms = 1e3 * statistics.median(times[v])
        base = 1e3 * statistics.median(times[(v[0], "fp32", v[2])]) if (v[0], "fp32", v[2]) in times else ms
        images = (n_l + n_u) / (ms / 1e3)
        layout = "channels_last" if v[2] else "contiguous"
        rows.append({"method": v[0], "precision": v[1], "layout": layout, "ms": ms, "images_per_s": images,
                     "vs_fp32": ms / base})
        print(f"{v[0]:<12}{v[1]:<10}{layout:<15}{ms:>9.1f}{images:>10.0f}{ms / base:>9.2f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": str(device), "model": args.model, "size": args.size,
                                         "batch": args.batch, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
