"""Refinement: speed against the previous implementation, and order quality of every method, refined.

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

Usage: ``python benchmarks/bench_refine.py --methods [--sizes 100 200 500 1000] [--families ...]``
writes ``benchmarks/results/refine.json`` and prints a markdown table.

Without ``--methods`` (the default; ``--sizes`` 200 500 1000 2000): the speed of ``refine_order``
against the previous implementation (kept here as ``legacy_refine``: adjacent-swap walks with an O(n)
delta per swap, every item every pass, values by ``criterion`` and an O(n³) triple sum), side by side
on the same instances, both starting from the spectral order. For each family, size and criterion:
the CPU time of the spectral ``seriate`` call (best of three) and of each refinement, one thread
(BLAS, torch), so that other jobs on a shared machine inflate no number; the ratio of the two; the
criterion's improvement over the spectral order in percent. The previous implementation runs up to
``--legacy-max`` items (default 1000). Writes ``benchmarks/results/refine_speed.json`` and prints a
markdown table (per size and criterion: mean spectral time, worst ratio and mean gain over the
families).
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
from clss.seriation import REFINABLE, compare_orders, criteria, criterion, refine_order, seriate
from clss.seriation import _refine_kernels as kern
from clss.seriation.generators import noisy_curve, permute_matrix, points_robinson, toeplitz_robinson
from clss.seriation.quality import CRITERIA
from clss.seriation.refine import _OBJECTIVES

RESULTS = Path(__file__).resolve().parent / "results" / "refine.json"
SPEED = RESULTS.with_name("refine_speed.json")
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
    o = np.asarray(order, dtype=np.int64)
    out.update({name: value_of(s, o, name) for name in TRIPLE})
    return out


@jit
def legacy_swap_delta(m, order, b, code, sign):
    """Change of the objective when positions ``b`` and ``b + 1`` swap."""
    n = order.shape[0]
    x = order[b]
    y = order[b + 1]
    total = 0.0
    if code == kern.ADJACENT:
        if b > 0:
            k = order[b - 1]
            total += m[y, k] - m[x, k]
        if b + 2 < n:
            k = order[b + 2]
            total += m[x, k] - m[y, k]
        return total
    if code <= kern.LINEAR:
        for p in range(b):
            k = order[p]
            g = 2.0 * (b - p) + 1.0 if code == kern.SQUARE else 1.0
            total += (m[x, k] - m[y, k]) * g
        for p in range(b + 2, n):
            k = order[p]
            g = 2.0 * (p - b - 1) + 1.0 if code == kern.SQUARE else 1.0
            total += (m[y, k] - m[x, k]) * g
        return total
    # Only triples {x, y, k} change. With u = x_xk, v = x_yk, w = x_xy, a k on the left turns the
    # middle from x to y: F(k) = φ(u-v) - φ(v-u) + φ(u-w) - φ(v-w); a k on the right gives -F(k).
    # F is written out per φ so that each loop is branch-free.
    w = m[x, y]
    for p in range(n):
        if p == b or p == b + 1:
            continue
        k = order[p]
        u = m[x, k]
        v = m[y, k]
        if code == kern.EVENTS:
            f = np.sign(v - u) + (1.0 if u < w else 0.0) - (1.0 if v < w else 0.0)
        elif code == kern.DEVIATIONS:
            f = v - u + max(w - u, 0.0) - max(w - v, 0.0)
        elif code == kern.GRADIENT:
            f = 2.0 * np.sign(u - v) + np.sign(u - w) - np.sign(v - w)
        else:
            f = 3.0 * (u - v)
        total += f if p < b else -f
    return sign * total


@jit
def _legacy_swap(order, b):
    t = order[b]
    order[b] = order[b + 1]
    order[b + 1] = t


@jit
def legacy_insertion_pass(m, order, visit, code, sign, window, tol):
    """One pass of best-slot insertion moves for the items in ``visit`` order, in place.

    Returns ``(improvement, moves)``: the summed (negative) objective change and the number of
    accepted moves.
    """
    n = order.shape[0]
    gained = 0.0
    moves = 0
    for item in visit:
        a = -1
        for p in range(n):  # positions shift after each move: look the item up
            if order[p] == item:
                a = p
                break
        best = 0.0
        best_at = a
        cum = 0.0
        end = min(n - 1, a + window)
        for b in range(a, end):  # walk right
            cum += legacy_swap_delta(m, order, b, code, sign)
            _legacy_swap(order, b)
            if cum < best - tol:
                best = cum
                best_at = b + 1
        for b in range(end - 1, best_at - 1, -1):  # back to the best slot
            _legacy_swap(order, b)
        if best_at == a:
            cum = 0.0
            start = max(0, a - window)
            for b in range(a - 1, start - 1, -1):  # walk left
                cum += legacy_swap_delta(m, order, b, code, sign)
                _legacy_swap(order, b)
                if cum < best - tol:
                    best = cum
                    best_at = b
            for b in range(start, best_at):
                _legacy_swap(order, b)
        if best_at != a:
            gained += best
            moves += 1
    return gained, moves




@jit
def legacy_triple_value(m, order, code):
    """The previous O(n³) sum over all triples (item-indexed ``m``)."""
    n = order.shape[0]
    total = 0.0
    for q in range(1, n - 1):
        mid = order[q]
        for p in range(q):
            a = order[p]
            inner = m[a, mid]
            for r in range(q + 1, n):
                c = order[r]
                outer = m[a, c]
                total += _phi(code, outer - inner) + _phi(code, outer - m[mid, c])
    return total


@jit
def _phi(code, t):
    if code == kern.EVENTS:
        return 1.0 if t < 0 else 0.0
    if code == kern.DEVIATIONS:
        return max(-t, 0.0)
    return np.sign(t)


def legacy_refine(s: np.ndarray, order: np.ndarray, name: str, window: int = 50,
                  max_passes: int = 20, seed: int = 0) -> tuple[np.ndarray, float]:
    """The previous ``refine_order`` search on a similarity (adjacent-swap walks, O(n) per swap,
    every item every pass, values by ``criterion`` or the O(n³) triple sum); returns the order and
    the wall time."""
    t = time.process_time()
    code_name, operand, sign = _OBJECTIVES[name]
    code = getattr(kern, code_name)
    triple = code_name in ("EVENTS", "DEVIATIONS", "GRADIENT")
    m = s if operand == "s" else -s
    m = np.ascontiguousarray(m if triple else sign * m)
    np.fill_diagonal(m, 0.0)
    n = s.shape[0]
    tol = 0.5 if code_name in ("EVENTS", "GRADIENT") else 1e-13 * n * n * np.abs(m).max() * (
        2.0 * n if code_name == "SQUARE" else 1.0)

    def value(o: np.ndarray) -> float:
        return legacy_triple_value(m, o, code) if triple else criterion(s, o, name)

    value(order)
    work = np.asarray(order, dtype=np.int64).copy()
    rng = np.random.default_rng(seed)
    for _ in range(max_passes):
        found = 0
        if code_name == "ADJACENT":
            found += kern.two_opt_pass(m, work, window, tol)[1]
        found += legacy_insertion_pass(m, work, rng.permutation(n).astype(np.int64), code, sign,
                                       window, tol)[1]
        if not found:
            break
    value(work)
    return work, time.process_time() - t


@jit
def _anneal(m, order, steps, window, seed):
    """Simulated annealing on AR events (minimised), insertion moves; returns the best order."""
    np.random.seed(seed)  # noqa: NPY002 (numba kernels have only the legacy generator)
    n = order.shape[0]
    # Temperature scale: mean |delta| of random adjacent swaps.
    scale = 0.0
    for _ in range(100):
        b = np.random.randint(0, n - 1)  # noqa: NPY002
        scale += abs(legacy_swap_delta(m, order, b, kern.EVENTS, 1.0))
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
                delta += legacy_swap_delta(m, order, p, kern.EVENTS, 1.0)
                order[p], order[p + 1] = order[p + 1], order[p]
        else:
            for p in range(a - 1, b - 1, -1):
                delta += legacy_swap_delta(m, order, p, kern.EVENTS, 1.0)
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


def improvement(name: str, base: float, value: float) -> float:
    """Relative improvement over the spectral order's value, in percent (positive = better)."""
    change = (base - value) if CRITERIA[name].direction == "loss" else (value - base)
    return 100.0 * change / abs(base) if base else 0.0


def value_of(s: np.ndarray, order: np.ndarray, name: str) -> float:
    """One criterion's value (the triple ones by the O(n² log n) kernel, checked against
    ``criterion`` in the tests)."""
    if name not in TRIPLE:
        return criterion(s, order, name)
    o = np.asarray(order, dtype=np.int64)
    return float(kern.triple_value(np.ascontiguousarray(-(s / 2 + s.T / 2)[np.ix_(o, o)]), TRIPLE[name]))


def speed_rows(fam: str, n: int, seed: int, legacy_max: int) -> list[dict[str, Any]]:
    """Spectral solve time, then per criterion the gain and time of ``refine_order`` (after) and of
    the previous implementation (before, up to ``legacy_max`` items), on one instance."""
    s, truth = family(fam, n, seed)
    spectral = np.inf
    for _ in range(3):  # best of three
        t = time.process_time()
        order = seriate(s).order
        spectral = min(spectral, time.process_time() - t)
    rows = []
    for name in REFINABLE:
        start = value_of(s, order, name)
        t = time.process_time()
        res = refine_order(s, order, name)
        seconds = time.process_time() - t
        assert np.isclose(value_of(s, res.order, name), res.after, rtol=1e-9, atol=1e-9)
        row: dict[str, Any] = {
            "family": fam, "n": n, "criterion": name, "spectral_s": spectral,
            "after_s": seconds, "after_ratio": seconds / spectral,
            "after_gain_pct": improvement(name, start, res.after), "after_moves": res.moves,
            "after_tau": abs(compare_orders(res.order, truth, "kendall"))}
        if n <= legacy_max:
            old, seconds = legacy_refine(s, order, name)
            row.update({"before_s": seconds, "before_ratio": seconds / spectral,
                        "before_gain_pct": improvement(name, start, value_of(s, old, name)),
                        "before_tau": abs(compare_orders(old, truth, "kendall"))})
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def speed_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: per size and criterion, the worst time ratio and the mean gain over the families."""
    head = ("| n | criterion | spectral s | ratio before | ratio after | gain % before | gain % after |\n"
            "|---:|---|---:|---:|---:|---:|---:|")
    lines = [head]
    for n in sorted({r["n"] for r in rows}):
        for name in REFINABLE:
            sel = [r for r in rows if r["n"] == n and r["criterion"] == name]
            spectral = float(np.mean([r["spectral_s"] for r in sel]))
            after = max(r["after_ratio"] for r in sel)
            gain_after = float(np.mean([r["after_gain_pct"] for r in sel]))
            if all("before_s" in r for r in sel):
                before = f"{max(r['before_ratio'] for r in sel):.1f}"
                gain_before = f"{float(np.mean([r['before_gain_pct'] for r in sel])):.4g}"
            else:
                before = gain_before = "-"
            lines.append(f"| {n} | {name} | {spectral:.3f} | {before} | {after:.2f} | {gain_before} | "
                         f"{gain_after:.4g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", action="store_true",
                        help="compare spectral/olo/rcm orders, refined, on every criterion "
                             "(writes refine.json) instead of the speed comparison")
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--families", nargs="+", default=["toeplitz", "points", "curve"])
    parser.add_argument("--legacy-max", type=int, default=1000,
                        help="largest n at which the previous implementation runs (speed mode)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # Compile every kernel (and fill numba's cache) outside the timings.
    warm, _ = family("toeplitz", 30, 0)
    if not args.methods:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)  # one thread everywhere: CPU times below are one core's
        sizes = args.sizes or [200, 500, 1000, 2000]
        speed_rows("toeplitz", 30, 0, 30)
        rows: list[dict[str, Any]] = []
        for n in sizes:
            for fam in args.families:
                with threadpool_limits(1):
                    rows += speed_rows(fam, n, args.seed, args.legacy_max)
                SPEED.parent.mkdir(parents=True, exist_ok=True)
                SPEED.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                             "sizes": sizes, "rows": rows}, indent=1))
        print(speed_table(rows))
        return
    sizes = args.sizes or [100, 200, 500, 1000]
    orders(warm, 0)
    rows = []
    for fam in args.families:
        for n in sizes:
            s, truth = family(fam, n, args.seed)
            for method, (order, seconds) in orders(s, args.seed).items():
                row = {"family": fam, "n": n, "method": method, "seconds": seconds,
                       "tau": compare_orders(order, truth, "kendall"), **values(s, order)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            RESULTS.parent.mkdir(parents=True, exist_ok=True)  # after each instance: partial runs count
            RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                           "sizes": sizes, "rows": rows}, indent=1))
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
