"""Benchmark and quality report for :func:`clss.seriation.stable_subset.select_stable_subset`.

Three parts, all printed as tables and written to ``benchmarks/results/stable_subset.json``:

1. speed: the numba DP against the same DP run as plain Python (``backend="python"``), side by side
   in one process, at n in {8, 64, 256} with k = n // 2 (plus k = 8, the official GCLSS setting, at
   n = 256). Times are the minimum over repeats, after one warm-up call per configuration, through
   the public function (so they include input validation) and for the bare kernel;
2. JIT cost: the first call in a fresh process with an empty cache, with a warm cache, and with
   ``CLSS_NUMBA_CACHE=0``;
3. quality: how often the DP (bare and refined) hits the brute-force optimum on random instances
   with n <= 12, and its wins/ties/losses against greedy, also at n = 64 and 256.

Run ``python benchmarks/bench_stable_subset.py`` (about a minute on 2 cores) or add ``--quick``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np

from clss.seriation import _stable_subset_kernels as kernels
from clss.seriation.stable_subset import select_stable_subset

RESULTS = Path(__file__).resolve().parent / "results" / "stable_subset.json"

# (n, k, numba repeats, python repeats): the Python DP takes ~1 s at n = 256, k = 128.
SPEED_CASES = [(8, 4, 500, 200), (64, 32, 200, 10), (256, 128, 30, 3), (256, 8, 100, 5)]

FIRST_CALL = """
import json, time
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
import numpy as np
from clss.seriation.stable_subset import select_stable_subset
x = np.random.default_rng(0).uniform(size=(64, 64))
p = (x + x.T) / 2
t2 = time.perf_counter()
select_stable_subset(p, 32)
t3 = time.perf_counter()
select_stable_subset(p, 32)
t4 = time.perf_counter()
print(json.dumps({"numba_import_s": t1 - t0, "first_call_s": t3 - t2, "second_call_s": t4 - t3}))
"""


def random_symmetric(rng: np.random.Generator, n: int, family: int) -> np.ndarray:
    """Uniform, exponential, or low-rank |cosine|-like scores plus noise (as in the tests)."""
    if family == 0:
        x = rng.uniform(size=(n, n))
    elif family == 1:
        x = rng.exponential(size=(n, n))
    else:
        f = rng.normal(size=(n, 3))
        x = np.abs(f @ f.T) + 0.1 * rng.uniform(size=(n, n))
    return (x + x.T) / 2


def subset_value(p: np.ndarray, sel: np.ndarray) -> float:
    block = p[np.ix_(sel, sel)].copy()
    np.fill_diagonal(block, 0.0)
    return float(block.sum())


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (and JIT compile for numba)
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_speed(quick: bool) -> list[dict]:
    rows = []
    for n, k, reps_numba, reps_python in SPEED_CASES:
        if quick:
            reps_numba, reps_python = max(3, reps_numba // 10), 1
        p = random_symmetric(np.random.default_rng(n + k), n, 0)
        a = np.ascontiguousarray(p)
        dp_py = getattr(kernels.dp_select, "py_func", kernels.dp_select)
        row = {
            "n": n,
            "k": k,
            "api_numba_s": best_time(partial(select_stable_subset, p, k, refine=False), reps_numba),
            "api_python_s": best_time(
                partial(select_stable_subset, p, k, refine=False, backend="python"), reps_python),
            "kernel_numba_s": best_time(partial(kernels.dp_select, a, k), reps_numba),
            "kernel_python_s": best_time(partial(dp_py, a, k), reps_python),
            "refined_numba_s": best_time(partial(select_stable_subset, p, k), reps_numba),
            "greedy_numba_s": best_time(
                partial(select_stable_subset, p, k, method="greedy"), reps_numba),
        }
        row["speedup_api"] = row["api_python_s"] / row["api_numba_s"]
        row["speedup_kernel"] = row["kernel_python_s"] / row["kernel_numba_s"]
        rows.append(row)
    return rows


def bench_first_call() -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="clss-bench-numba-") as cache:
        env = {k: v for k, v in os.environ.items() if k not in ("CLSS_NUMBA_CACHE",
                                                                 "NUMBA_DISABLE_JIT")}
        env["NUMBA_CACHE_DIR"] = cache
        for label, extra in (("cold_cache", {}), ("warm_cache", {}),
                             ("cache_off", {"CLSS_NUMBA_CACHE": "0"})):
            proc = subprocess.run([sys.executable, "-c", FIRST_CALL], env={**env, **extra},
                                  capture_output=True, text=True, check=True)
            out[label] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def bench_quality(n_small: int, n_large: int) -> dict:
    rng = np.random.default_rng(2025)
    keys = ("dp", "dp_swap", "refined", "greedy")
    opt = dict.fromkeys(keys, 0)
    vs_greedy = {key: {"win": 0, "tie": 0, "loss": 0} for key in ("dp", "dp_swap", "refined")}

    def tally(values: dict[str, float], tol: float) -> None:
        for key in vs_greedy:
            diff = values[key] - values["greedy"]
            vs_greedy[key]["win" if diff < -tol else "loss" if diff > tol else "tie"] += 1

    for t in range(n_small):
        n = int(rng.integers(4, 13))
        k = int(rng.integers(2, n))
        p = random_symmetric(rng, n, t % 3)
        a = np.ascontiguousarray(p)
        best = subset_value(p, select_stable_subset(p, k, method="exact"))
        tol = 1e-9 * max(1.0, abs(best))
        values = {
            "dp": subset_value(p, select_stable_subset(p, k, refine=False)),
            "dp_swap": subset_value(p, kernels.refine_swap(a, kernels.dp_select(a, k))),
            "refined": subset_value(p, select_stable_subset(p, k)),
            "greedy": subset_value(p, select_stable_subset(p, k, method="greedy")),
        }
        for key in keys:
            opt[key] += values[key] <= best + tol
        tally(values, tol)

    large = {}
    for n in (64, 256):
        counts = {key: {"win": 0, "tie": 0, "loss": 0} for key in ("dp", "refined")}
        gaps = {"dp": [], "refined": []}
        for t in range(n_large):
            p = random_symmetric(rng, n, t % 3)
            g = subset_value(p, select_stable_subset(p, n // 2, method="greedy"))
            tol = 1e-9 * abs(g)
            for key, refine in (("dp", False), ("refined", True)):
                v = subset_value(p, select_stable_subset(p, n // 2, refine=refine))
                gaps[key].append((v - g) / abs(g))
                counts[key]["win" if v < g - tol else "loss" if v > g + tol else "tie"] += 1
        mean_gaps = {key: float(np.mean(v)) for key, v in gaps.items()}
        large[str(n)] = {"instances": n_large, "k": n // 2, "vs_greedy": counts,
                         "mean_rel_gap_to_greedy": mean_gaps}
    return {"small": {"instances": n_small, "n_range": [4, 12], "exact_optimum": opt,
                      "vs_greedy": vs_greedy},
            "large": large}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:>7.{3 if seconds < 0.1 else 1}f}ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and instances")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON output path")
    parser.add_argument("--skip-first-call", action="store_true",
                        help="skip the fresh-process JIT measurements")
    args = parser.parse_args()

    speed = bench_speed(args.quick)
    print(f"{'n':>4} {'k':>4} | {'numba':>9} {'python':>9} {'speed-up':>8} | {'kernel nb':>9} "
          f"{'kernel py':>9} {'speed-up':>8} | {'refined':>9} {'greedy':>9}")
    for r in speed:
        print(f"{r['n']:>4} {r['k']:>4} | {_ms(r['api_numba_s'])} {_ms(r['api_python_s'])} "
              f"{r['speedup_api']:>7.0f}x | {_ms(r['kernel_numba_s'])} {_ms(r['kernel_python_s'])} "
              f"{r['speedup_kernel']:>7.0f}x | {_ms(r['refined_numba_s'])} "
              f"{_ms(r['greedy_numba_s'])}")

    first = None if args.skip_first_call else bench_first_call()
    if first:
        print("\nfresh process, select_stable_subset(64x64, k=32) (dp + greedy + 1-swap kernels):")
        for label, r in first.items():
            print(f"  {label:<11} import numba {r['numba_import_s']:.2f} s, first call "
                  f"{r['first_call_s']:.2f} s, second call {r['second_call_s'] * 1e3:.2f} ms")

    quality = bench_quality(600 if args.quick else 3000, 10 if args.quick else 40)
    small = quality["small"]
    m = small["instances"]
    print(f"\nquality on {m} random instances, 4 <= n <= 12, 2 <= k < n:")
    for key, count in small["exact_optimum"].items():
        print(f"  exact optimum  {key:<8} {count:>5}/{m} = {count / m:.1%}")
    for key, c in small["vs_greedy"].items():
        print(f"  vs greedy      {key:<8} wins {c['win']}, ties {c['tie']}, losses {c['loss']}")
    for n, res in quality["large"].items():
        for key, c in res["vs_greedy"].items():
            gap = res["mean_rel_gap_to_greedy"][key]
            print(f"  n={n:<4} k={res['k']:<4} {key:<8} vs greedy: wins {c['win']}, ties "
                  f"{c['tie']}, losses {c['loss']} (mean relative gap {gap:+.2%})")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
        "speed": speed, "first_call": first, "quality": quality,
    }, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
