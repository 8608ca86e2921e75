"""Training-step time of gclss and clss relative to the supervised baseline, plus a gclss step breakdown.

All variants use the operator-sde preset of :func:`clss.config.resolve_config` (MLP 241-100-100, AdamW 1e-3,
OE/UR/UC weights 1e-3, 10-row subsamples; gclss: dropout 0.05 and all kept unlabelled rows ranked), the same
labelled/unlabelled batch sizes (``--sizes``, default 200/200 = the paper's full batch at 1/5 labels, and a
64/64 mini-batch), the same rows (standardised rows of operator-sde run 0, or Gaussian inputs without the
files) and one torch thread. Variants: ``supervised``, ``clss``, ``gclss`` (clean, diagnostics off),
``gclss+diag`` (clean with its default per-step diagnostics) and ``gclss-faithful``.

Method: each variant gets its own method instance; its first ``training_step`` (LAPACK/numba start-up,
allocator warm-up) is timed and reported separately, then ``--warmup`` more steps run untimed. The timed
part interleaves the variants: for each of ``--reps`` repetitions every variant runs ``--inner`` steps in
turn, and the per-step median over repetitions is reported, so machine-load drift hits all variants alike.
The ratios ``<variant> / supervised`` are taken within one run (target for gclss and clss: <= 1.5).

The gclss breakdown re-runs the clean step's pieces (``GCLSS._clean_step`` at the time of writing) with
manual timers: pass 0 (no-grad forward), pass 1 (forward), labelled losses, cross-view perturbation,
stable-subset DP, anchored seriation, unlabelled losses, backward + optimiser step, diagnostics.

Usage: ``python benchmarks/step_time.py [--sizes 200/200 64/64] [--reps 15] [--inner 10]``.
Writes ``benchmarks/results/step_time.json`` and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from clss.config import resolve_config
from clss.methods import Batch, OptimizerConfig, build_method
from clss.models import build_model
from clss.seriation import cross_view_perturbation, select_stable_subset

DATA_DIR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "operator_sde"
RESULTS = Path(__file__).resolve().parent / "results" / "step_time.json"
VARIANTS = {  # name: (method, extra method parameters)
    "supervised": ("supervised", {}),
    "clss": ("clss", {}),
    "gclss": ("gclss", {"diagnostics_every": 0}),
    "gclss+diag": ("gclss", {"diagnostics_every": 1}),
    "gclss-faithful": ("gclss", {"mode": "faithful", "diagnostics_every": 0}),
}


def build(method: str, extra: dict, seed: int):
    """A method configured exactly as ``clss train --dataset operator-sde --method <method>``."""
    cfg = resolve_config(None, {"dataset": "operator-sde", "method": method})
    params = {**cfg.method_params, **extra}
    kwargs = {k: v for k, v in cfg.model.items() if k != "name"}
    torch.manual_seed(seed)
    m = build_method(method, lambda: build_model("mlp", 241, **kwargs), OptimizerConfig(**cfg.optimizer),
                     {"seed": seed, **params})
    m.configure_optimizers()
    return m, {"model": cfg.model, "params": m.params.to_dict()}


def rows(n_l: int, n_u: int) -> tuple[Batch, Batch, str]:
    if (DATA_DIR / "train_sde.npz").is_file():
        with np.load(DATA_DIR / "train_sde.npz") as z:
            x = np.hstack([z["X_train0"], z["X_train1"]])[:1000]
            y = z["y_train"].reshape(-1)[:1000]
        source = "operator-sde run 0"
    else:
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(1000, 241)), rng.normal(size=1000)
        source = "gaussian"
    x = torch.as_tensor((x - x.mean(0)) / (x.std(0) + 1e-8), dtype=torch.float32)
    y = torch.as_tensor((y - y.mean()) / y.std(), dtype=torch.float32)
    perm = torch.randperm(1000, generator=torch.Generator().manual_seed(0))
    li, ui = perm[:n_l], perm[n_l:n_l + n_u]
    return Batch(x[li], li, y[li]), Batch(x[ui], ui, None), source


def gclss_breakdown(m, lab: Batch, ulb: Batch, steps: int) -> dict[str, float]:
    """Median ms per piece of the clean gclss step (mirrors ``GCLSS._clean_step``)."""
    times: dict[str, list[float]] = defaultdict(list)
    t = [0.0]

    def mark(name: str) -> None:
        t.append(time.perf_counter())
        times[name].append(1e3 * (t[-1] - t[-2]))

    for _ in range(steps):
        t[:] = [time.perf_counter()]
        m.model.train()
        n_l = len(lab)
        x = torch.cat([lab.x, ulb.x])
        with torch.no_grad():
            _, feat0 = m.model(x)
        mark("forward pass 0 (no grad)")
        pred1, feat1 = m.model(x)
        mark("forward pass 1")
        parts = m.supervised_terms(lab, pred1[:n_l], feat1[:n_l])
        mark("labelled losses (MSE + OE)")
        n_u, k = len(ulb), m._kept(len(ulb))
        if k < n_u:
            pert = cross_view_perturbation(feat0[n_l:], feat1[n_l:], mode=m.params.perturbation)
            mark("cross-view perturbation")
            sel = torch.as_tensor(select_stable_subset(pert, k, objective=m.params.selection or "min"))
            mark("stable-subset DP")
        else:
            sel = torch.arange(n_u)
        p0 = F.normalize(torch.cat([feat0[n_l:][sel], feat0[:n_l]]), dim=-1)
        p1 = F.normalize(torch.cat([feat1[n_l:][sel], feat1[:n_l]]), dim=-1)
        p_mean = (p0 + p1) / 2
        sim = p_mean.detach() @ p_mean.detach().T
        values, ranks = m._anchored_targets(sim, k, lab.y)
        mark("anchored seriation (+ similarity)")
        parts.update(m._pseudo_terms(pred1[n_l:][sel], p_mean[:k], values, ranks, feat1[:n_l], lab.y))
        loss = torch.stack(list(parts.values())).sum()
        mark("unlabelled losses (UR + UC)")
        m.optimize(loss, parts)
        mark("backward + optimiser step")
        m._diagnostics(sim, k, p0, p1)
        mark("diagnostics (default on)")
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", nargs="+", default=["200/200", "64/64"], help="labelled/unlabelled rows")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--inner", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report: dict = {"argv": vars(args) | {"out": str(args.out)}, "torch": torch.__version__,
                    "platform": platform.platform(), "processor": platform.processor(), "sizes": {}}
    for size in args.sizes:
        n_l, n_u = (int(s) for s in size.split("/"))
        lab, ulb, source = rows(n_l, n_u)
        methods, first, configs = {}, {}, {}
        for name in args.variants:
            method, extra = VARIANTS[name]
            methods[name], configs[name] = build(method, extra, args.seed)
            t0 = time.perf_counter()
            methods[name].training_step(lab, ulb, 0)
            first[name] = time.perf_counter() - t0
            for i in range(args.warmup):
                methods[name].training_step(lab, ulb, i + 1)
        per_step: dict[str, list[float]] = defaultdict(list)
        for _ in range(args.reps):
            for name, m in methods.items():
                t0 = time.perf_counter()
                for i in range(args.inner):
                    m.training_step(lab, ulb, i)
                per_step[name].append(1e3 * (time.perf_counter() - t0) / args.inner)
        med = {name: statistics.median(v) for name, v in per_step.items()}
        base = med.get("supervised")
        breakdown = gclss_breakdown(build("gclss", {}, args.seed)[0], lab, ulb, args.reps * 2)
        report["sizes"][size] = {
            "rows": source, "first_step_s": first, "ms_per_step_median": med,
            "ms_per_step_all": dict(per_step),
            "ratio_to_supervised": {n: v / base for n, v in med.items()} if base else None,
            "gclss_breakdown_ms": breakdown, "configs": configs}
        print(f"\n## {size} labelled/unlabelled rows ({source}), threads={args.threads}, "
              f"median of {args.reps} interleaved reps x {args.inner} steps")
        print("| variant | ms/step | x supervised | first step (s) |\n|---|---:|---:|---:|")
        for name in methods:
            ratio = f"{med[name] / base:.2f}" if base else "-"
            print(f"| {name} | {med[name]:.2f} | {ratio} | {first[name]:.3f} |")
        total = sum(breakdown.values())
        print(f"\ngclss clean step breakdown (ms, median; sum {total:.2f})")
        print("| piece | ms | share |\n|---|---:|---:|")
        for piece, ms in breakdown.items():
            print(f"| {piece} | {ms:.2f} | {100 * ms / total:.0f}% |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
