"""Training-step time of MLPs of several sizes at 1, 2 and N torch threads, side by side.

The measurement behind ``threads: auto`` (:mod:`clss.engine.threads`): for each MLP (input width ``d``,
two hidden layers of width ``W``) and rows per step ``B``, a ``supervised`` method (the trainer's step:
forward, L1 loss, backward, AdamW) runs ``--inner`` steps at each thread count in turn, ``--reps`` times
(interleaved, so machine-load drift hits every thread count alike); the median ms per step is reported
beside the work per step, ``parameters x rows``, and the speed-up of each thread count over one thread.

Usage: ``python benchmarks/threads.py [--widths 32 100 256 512 1024] [--rows 16 64 256 1024]
[--features 10 241] [--threads 1 2 N] [--reps 7] [--inner 5]``. ``N`` is torch's default thread count on
this machine. Writes ``benchmarks/results/threads.json`` and prints the table sorted by work per step.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from clss.data import InputSpec
from clss.engine.threads import work_per_step
from clss.methods import Batch, OptimizerConfig, build_method
from clss.models import build_model

RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"


def _method(d: int, width: int, seed: int = 0):
    torch.manual_seed(seed)
    spec = InputSpec("tabular", (d,))
    m = build_method("supervised", lambda: build_model("mlp", spec, hidden=[width, width], dropout=0.1),
                     OptimizerConfig(name="adamw", lr=1e-3, weight_decay=0.01), {"seed": seed})
    m.configure_optimizers()
    return m


def _time_steps(m, lab: Batch, threads: int, inner: int) -> float:
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    for i in range(inner):
        m.training_step(lab, None, i)
    return 1e3 * (time.perf_counter() - t0) / inner


def main() -> None:
    default_threads = torch.get_num_threads()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--widths", nargs="+", type=int, default=[32, 100, 256, 512, 1024])
    ap.add_argument("--rows", nargs="+", type=int, default=[16, 64, 256, 1024])
    ap.add_argument("--features", nargs="+", type=int, default=[10, 241])
    ap.add_argument("--threads", nargs="+", default=["1", "2", "N"],
                    help=f"thread counts; N = torch's default here ({default_threads})")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--inner", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    counts = sorted({default_threads if t == "N" else int(t) for t in args.threads})
    rows_out = []
    gen = torch.Generator().manual_seed(0)
    for d in args.features:
        for width in args.widths:
            for b in args.rows:
                m = _method(d, width)
                lab = Batch({"weak": torch.randn(b, d, generator=gen)}, torch.arange(b),
                            torch.randn(b, generator=gen))
                for t in counts:
                    _time_steps(m, lab, t, args.warmup)
                samples: dict[int, list[float]] = {t: [] for t in counts}
                for _ in range(args.reps):
                    for t in counts:
                        samples[t].append(_time_steps(m, lab, t, args.inner))
                med = {t: statistics.median(v) for t, v in samples.items()}
                params = sum(p.numel() for p in m.parameters())
                rows_out.append({"features": d, "width": width, "rows": b, "params": params,
                                 "work": work_per_step(params, b),
                                 "ms_median": {str(t): med[t] for t in counts},
                                 "ms_all": {str(t): samples[t] for t in counts},
                                 "speedup_vs_1": ({str(t): med[1] / med[t] for t in counts}
                                                  if 1 in med else {})})
                print(f"d={d:4d} W={width:5d} B={b:5d} work={rows_out[-1]['work']:.2e}  " +
                      "  ".join(f"{t}t {med[t]:8.2f} ms" for t in counts), flush=True)
    torch.set_num_threads(default_threads)
    rows_out.sort(key=lambda r: r["work"])
    print("\nwork/step (params x rows)   " + "   ".join(f"{t} thr ms" for t in counts) +
          "   " + "   ".join(f"x{t} vs 1" for t in counts if t != 1))
    for r in rows_out:
        print(f"{r['work']:.2e} (d={r['features']}, W={r['width']}, B={r['rows']})".ljust(36) +
              "   ".join(f"{r['ms_median'][str(t)]:9.2f}" for t in counts) + "   " +
              "   ".join(f"{r['speedup_vs_1'].get(str(t), float('nan')):7.2f}" for t in counts if t != 1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"argv": vars(args) | {"out": str(args.out)}, "torch": torch.__version__,
              "default_threads": default_threads, "platform": platform.platform(),
              "processor": platform.processor(), "results": rows_out}
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
