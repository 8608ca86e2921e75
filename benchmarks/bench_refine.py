"""Order quality on criteria: spectral, olo and rcm orders, each refined on one criterion.

Families (shuffled; the hidden order is known): ``toeplitz`` (``exp(-10|i-j|/n)`` plus symmetric
Gaussian noise, sd 0.05, clipped at 0), ``points`` (Gaussian kernel of sorted uniform points on a
line, scale 0.2, plus the same noise: a Robinson matrix with random spacings, as R's
``random.robinson`` draws), ``curve`` (``exp(-(d/0.1)²)`` of points on a noisy 3-D curve,
``noisy_curve(noise=0.02)``). For each order: the criteria 2SUM, path length, AR events, AR
deviations, gradient_raw, gradient_weighted and LS (the definitions of ``clss.seriation.quality``;
the three O(n³) ones are summed by the refinement's numba kernel, which the tests check against
``quality.criterion``, because the latter's torch pass takes ~1 min at n = 1000), the wall time of
the method (refinement time included) and |Kendall τ| against the hidden order.

R is not installed here, so ARSA (R seriation's simulated annealing on AR events) is not run. A
plain simulated annealing on AR events written here (random insertion moves within 50 positions,
Metropolis acceptance, geometric cooling over 200·n proposals, from a random order as ARSA starts)
stands in for it at n <= 200 (``sa_ar_events``).

Usage: ``python benchmarks/bench_refine.py [--sizes 100 200 500 1000] [--families ...]``.
Writes ``benchmarks/results/refine.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from clss._jit import jit
from clss.seriation import _refine_kernels as kern
from clss.seriation import compare_orders, criteria, refine_order, seriate
from clss.seriation.generators import noisy_curve, permute_matrix, points_robinson, toeplitz_robinson

RESULTS = Path(__file__).resolve().parent / "results" / "refine.json"
REFINE = ("2sum", "path_length", "ls", "ar_events", "ar_deviations", "gradient_raw")
PAIR = ("2sum", "path_length", "gradient_weighted", "ls")
TRIPLE = {"ar_events": kern.EVENTS, "ar_deviations": kern.DEVIATIONS, "gradient_raw": kern.GRADIENT}
SA_MAX = 200


def family(name: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled similarity matrix and its hidden order."""
    rng = np.random.default_rng(seed)
    if name == "curve":
        x, t = noisy_curve(n, noise=0.02, rng=rng)
        d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        return np.exp(-d2 / 0.01), np.argsort(t)
    s = toeplitz_robinson(n, rate=10.0 / n) if name == "toeplitz" else points_robinson(n, rng=rng)
    e = rng.normal(0.0, 0.05, (n, n))
    s = np.clip(s + (e + e.T) / 2, 0.0, None)
    perm = rng.permutation(n)
    return permute_matrix(s, perm), np.argsort(perm)


def values(s: np.ndarray, order: np.ndarray) -> dict[str, float]:
    out = criteria(s, order, list(PAIR))
    x = np.ascontiguousarray(-s / 2 - s.T / 2)
    o = np.asarray(order, dtype=np.int64)
    out.update({name: float(kern.triple_value(x, o, code)) for name, code in TRIPLE.items()})
    return out


@jit
def _anneal(m, order, steps, window, seed):
    """Simulated annealing on AR events (minimised), insertion moves; returns the best order."""
    np.random.seed(seed)  # noqa: NPY002 (numba kernels have only the legacy generator)
    n = order.shape[0]
    # Temperature scale: mean |delta| of random adjacent swaps.
    scale = 0.0
    for _ in range(100):
        b = np.random.randint(0, n - 1)  # noqa: NPY002
        scale += abs(kern.swap_delta(m, order, b, kern.EVENTS, 1.0))
    t0 = max(scale / 100.0, 1.0)
    cost = 0.0
    best_cost = 0.0
    best = order.copy()
    for step in range(steps):
        temp = t0 * 0.001 ** (step / steps)
        a = np.random.randint(0, n)  # noqa: NPY002
        b = min(n - 1, max(0, a + np.random.randint(-window, window + 1)))  # noqa: NPY002
        if a == b:
            continue
        delta = 0.0
        if b > a:
            for p in range(a, b):
                delta += kern.swap_delta(m, order, p, kern.EVENTS, 1.0)
                order[p], order[p + 1] = order[p + 1], order[p]
        else:
            for p in range(a - 1, b - 1, -1):
                delta += kern.swap_delta(m, order, p, kern.EVENTS, 1.0)
                order[p], order[p + 1] = order[p + 1], order[p]
        if delta <= 0 or np.random.random() < np.exp(-delta / temp):  # noqa: NPY002
            cost += delta
            if cost < best_cost:
                best_cost = cost
                best[:] = order
        elif b > a:
            for p in range(b - 1, a - 1, -1):
                order[p], order[p + 1] = order[p + 1], order[p]
        else:
            for p in range(b, a):
                order[p], order[p + 1] = order[p + 1], order[p]
    return best


def orders(s: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, float]]:
    """Every method's order and its wall time (seconds)."""
    out: dict[str, tuple[np.ndarray, float]] = {}
    for method in ("spectral", "olo", "rcm"):
        t = time.perf_counter()
        base = seriate(s, method=method).order
        out[method] = (base, time.perf_counter() - t)
        for name in REFINE if method != "rcm" else ():
            t = time.perf_counter()
            refined = refine_order(s, base, name).order
            out[f"{method}+{name}"] = (refined, out[method][1] + time.perf_counter() - t)
    n = s.shape[0]
    if n <= SA_MAX:
        start = np.random.default_rng(seed).permutation(n).astype(np.int64)
        t = time.perf_counter()
        best = _anneal(np.ascontiguousarray(-s), start, 200 * n, 50, seed)
        out["sa_ar_events"] = (best, time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--families", nargs="+", default=["toeplitz", "points", "curve"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Compile every kernel (and fill numba's cache) outside the timings.
    warm, _ = family("toeplitz", 30, 0)
    orders(warm, 0)
    rows: list[dict[str, Any]] = []
    for fam in args.families:
        for n in args.sizes:
            s, truth = family(fam, n, args.seed)
            for method, (order, seconds) in orders(s, args.seed).items():
                row = {"family": fam, "n": n, "method": method, "seconds": seconds,
                       "tau": compare_orders(order, truth, "kendall"), **values(s, order)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)  # after each instance: partial runs count
            RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                           "sizes": args.sizes, "rows": rows}, indent=1))
    print(table(rows))


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: each criterion relative to the spectral order of the same instance."""
    cols = ("2sum", "path_length", "ar_events", "ar_deviations", "gradient_raw", "ls")
    head = ("| family | n | method | time s | abs tau | " + " | ".join(cols) + " |\n"
            "|---|---:|---|---:|---:|" + "---:|" * len(cols))
    base = {(r["family"], r["n"]): r for r in rows if r["method"] == "spectral"}
    lines = [head]
    for r in rows:
        ref = base[(r["family"], r["n"])]
        rel = " | ".join(f"{r[c] / ref[c]:.3f}" if ref[c] else f"{r[c]:.3g}" for c in cols)
        lines.append(f"| {r['family']} | {r['n']} | {r['method']} | {r['seconds']:.3f} | "
                     f"{r['tau']:.3f} | {rel} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
