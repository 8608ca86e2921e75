"""seriate_batch vs the bare eigensolver and vs the official CLSS-style per-matrix loop.

Measured side by side in one run on the same batches (Gaussian-kernel similarities of noisy 1-D points):

* ``seriate_batch`` (validation on, the default CPU policy: LAPACK ?syevr for one eigenpair from n = 16);
* a bare batched ``torch.linalg.eigh`` of the Laplacians (the eigensolver floor of a full decomposition);
* the official code's route, re-implemented here: per
  matrix, an orthonormal basis of 1⊥ from numpy ``eigh`` of the centring matrix, ``M = Zᵀ L Z``, general
  ``torch.linalg.eig``, real parts, Fiedler ``r = Z v``, the "upsets" sign step, ``argsort(argsort(r))``.

Usage: ``python benchmarks/bench_seriate_batch.py [--sizes 8 32 128 256] [--batches 64 512] [--threads 1]``.
Writes ``benchmarks/results/seriate_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from clss.seriation import seriate_batch


def make_batch(bsz: int, n: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(bsz, n)) + rng.normal(scale=0.01, size=(bsz, n))
    d2 = (x[:, :, None] - x[:, None, :]) ** 2
    return torch.tensor(np.exp(-d2 / 0.2), dtype=dtype)  # connected graphs, as dense feature similarities are


def bare_eigh(s: torch.Tensor) -> None:
    w = s - torch.diag_embed(torch.diagonal(s, dim1=-2, dim2=-1))
    torch.linalg.eigh(torch.diag_embed(w.sum(-1)) - w)


def official_style(s: torch.Tensor) -> None:
    for b in range(s.shape[0]):
        sim = s[b]
        n = sim.shape[0]
        lap = torch.diag(sim.sum(1)) - sim
        centring = np.eye(n) - np.ones((n, n)) / n
        vals, vecs = np.linalg.eigh(centring)
        z = torch.tensor(vecs[:, np.abs(vals - 1) < 1e-8], dtype=sim.dtype)
        ev, evec = torch.linalg.eig(z.T @ lap @ z)
        ev, evec = ev.real, evec.real
        r = z @ evec[:, torch.argsort(ev)[0]]
        diff = r[:, None] - r[None, :]
        nz = sim != 0
        plus = (torch.sign(diff) != torch.sign(sim))[nz].sum()
        minus = (torch.sign(-diff) != torch.sign(sim))[nz].sum()
        r = r if plus < minus else -r
        torch.argsort(torch.argsort(r))


def best_time(fn, *args, repeats: int) -> float:
    fn(*args)  # warm-up (allocations, first LAPACK call)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32, 128, 256])
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--official-max-batch", type=int, default=64,
                        help="time the slow official loop on at most this many matrices, scaled")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "seriate_batch.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    rows = []
    print(f"{'B':>5} {'n':>4} {'eigh ms':>10} {'seriate_batch ms':>17} {'ratio':>6} "
          f"{'official ms':>12} {'speed-up':>9}")
    with threadpool_limits(args.threads):
        for bsz in args.batches:
            for n in args.sizes:
                s = make_batch(bsz, n, dtype)
                # sub-millisecond cells need many repeats for a stable minimum
                reps = (max(args.repeats, 200) if bsz * n * n < 1e5 else args.repeats if bsz * n * n < 2e7
                        else max(2, args.repeats // 2))
                t_eigh = best_time(bare_eigh, s, repeats=reps)
                t_ours = best_time(seriate_batch, s, repeats=reps)
                sub = min(bsz, args.official_max_batch)
                t_off = best_time(official_style, s[:sub], repeats=max(1, reps // 2)) * bsz / sub
                row = {"B": bsz, "n": n, "dtype": args.dtype, "eigh_s": t_eigh,
                       "seriate_batch_s": t_ours, "ratio_vs_eigh": t_ours / t_eigh,
                       "official_loop_s": t_off, "speedup_vs_official": t_off / t_ours}
                rows.append(row)
                print(f"{bsz:5d} {n:4d} {1e3 * t_eigh:10.2f} {1e3 * t_ours:17.2f} "
                      f"{row['ratio_vs_eigh']:6.2f} {1e3 * t_off:12.1f} "
                      f"{row['speedup_vs_official']:8.1f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor(), "note": "best of repeats; official loop timed on "
            "at most --official-max-batch matrices and scaled to B"}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
