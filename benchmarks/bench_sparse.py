"""Sparse Fiedler and anchored (harmonic) solvers on large k-NN curve graphs.

Graphs: ``noisy_curve(n, noise, dim=3)`` (latent parameter ``t``) and ``knn_graph(k=10,
weights="local")``, as in docs/sparse_solvers.md (Measured table). Each case runs in a fresh
subprocess so that its peak memory is its own: the graph is built (timed separately), the kernel's
resident-set high-water mark is reset (``/proc/self/clear_refs``), the solver runs, and ``VmHWM``
is read; the peak (``peak MB``, absolute: interpreter, imports and graph included) covers native
allocations, which ``tracemalloc`` cannot see, and ``extra MB`` is the peak minus the resident set
before the solve. pyamg is imported before the clock starts. Scored by |Kendall τ| of the computed
coordinates against ``t`` (unanchored items only for the harmonic solve).

Cases: ``fiedler_sparse`` (k = 3, unnormalised Laplacian) with every method that is feasible at the
size (shift-invert's LU fill explodes beyond ~2e5 nodes, see docs/sparse_solvers.md), ``harmonic_sparse``
with ``--anchor-fraction`` random anchors valued ``t``, and the public entry point with default
options: ``seriate`` (``seriate(w)``, unanchored spectral; validation, component labels and the
symmetry check included in its time and memory) and ``seriate-anchored`` (``seriate(w, anchors=...,
anchor_values=t[anchors])``). Above 1e6 nodes only the ``seriate`` cases run unless ``--all``.
``build_peak_mb`` is the process's peak while generating the points and the graph.

Usage: ``python benchmarks/bench_sparse.py [--sizes 1e4 1e5 1e6] [--noise 0.002] [--methods ...]``;
the 1e7 run: ``python benchmarks/bench_sparse.py --sizes 1e7 --methods seriate seriate-anchored``.
Writes ``benchmarks/results/sparse.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

EIG_METHODS = ("shift-invert", "lobpcg-amg", "multilevel")
HARM_METHODS = ("direct", "amg-cg", "jacobi-cg")
# The public entry point with default options: unanchored spectral, and anchored (harmonic).
SERIATE_METHODS = ("seriate", "seriate-anchored")
# Largest n at which a method is run by default (LU fill-in: >4 GB and >200 s at 1e6, measured;
# beyond 1e6 only the public entry point is timed, one case per process).
FEASIBLE_MAX = {"shift-invert": 200_000, "direct": 200_000, "lobpcg-amg": 1_000_000,
                "multilevel": 1_000_000, "amg-cg": 1_000_000, "jacobi-cg": 1_000_000}
RESULTS = Path(__file__).resolve().parent / "results" / "sparse.json"


def _status_kb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return float(line.split()[1])
    return float("nan")


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def run_case(case: dict[str, Any]) -> dict[str, Any]:
    """Build the graph, run one solver, return the measurements (executed in a worker process)."""
    import pyamg  # noqa: F401  (imported up front: a one-off cost, not the solver's)
    import threadpoolctl  # noqa: F401
    from scipy.stats import kendalltau

    from clss.seriation import seriate
    from clss.seriation._sparse_kernels import exactly_symmetric
    from clss.seriation.generators import knn_graph, noisy_curve
    from clss.seriation.sparse_solvers import fiedler_sparse, harmonic_sparse

    exactly_symmetric(np.zeros(2, np.int32), np.zeros(0, np.int32), np.zeros(0))  # numba warm-up
    n, seed = case["n"], case["seed"]
    t0 = time.perf_counter()
    x, t = noisy_curve(n, noise=case["noise"], dim=3, rng=seed)
    w = knn_graph(x, k=case["k"], weights="local")
    build_s = time.perf_counter() - t0
    del x
    out: dict[str, Any] = {**case, "build_s": build_s, "nnz": int(w.nnz),
                           "index_dtype": str(w.indices.dtype),
                           "build_peak_mb": _status_kb("VmHWM") / 1024,
                           "graph_rss_mb": _status_kb("VmRSS") / 1024}
    peak_reset = _reset_peak()
    c0, t0 = time.process_time(), time.perf_counter()
    if case["problem"] == "seriate":
        anchors = None
        if case["method"] == "seriate-anchored":
            rng = np.random.default_rng(seed + 1)
            anchors = np.sort(rng.choice(n, max(2, round(case["anchor_fraction"] * n)),
                                         replace=False))
            res = seriate(w, anchors=anchors, anchor_values=t[anchors])
        else:
            res = seriate(w)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak_kb = _status_kb("VmHWM")
        score = res.positions
        free = np.ones(n, dtype=bool)
        if anchors is not None:
            free[anchors] = False
        out.update(tau=abs(float(kendalltau(score[free], t[free])[0])), converged=res.converged,
                   rel_residual=float(res.residual), solver=res.solver, iterations=-1,
                   lambda2=float(res.lambda2), anchors=0 if anchors is None else int(anchors.size))
        out.update(solve_s=wall, cpu_s=cpu, peak_rss_mb=peak_kb / 1024,
                   peak_is_solve_only=peak_reset,
                   solve_extra_mb=peak_kb / 1024 - out["graph_rss_mb"])
        return out
    if case["problem"] == "fiedler":
        sol = fiedler_sparse(w, k=3, laplacian=case["laplacian"], method=case["method"],
                             tol=case["tol"], seed=seed)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        coord = sol.vectors[:, 1]
        if case["laplacian"] == "symmetric":  # order by the random-walk vector D^{-1/2} u
            coord = coord / np.sqrt(np.asarray(w.sum(axis=1)).ravel())
        out.update(lambda2=float(sol.values[1]), lambda3=float(sol.values[2]),
                   rel_residual=float(np.max(sol.info["rel_residuals"])),
                   angle_bound=sol.info["angle_bound"], converged=sol.converged,
                   iterations=sol.iterations, solver=sol.solver,
                   tau=abs(float(kendalltau(coord, t)[0])),
                   levels=sol.info.get("levels"), level_iterations=sol.info.get("level_iterations"),
                   setup_s=sol.info.get("setup_s", sol.info.get("factor_s")))
    else:
        rng = np.random.default_rng(seed + 1)
        anchors = np.sort(rng.choice(n, max(2, round(case["anchor_fraction"] * n)),
                                     replace=False))
        sol_h = harmonic_sparse(w, anchors, t[anchors], method=case["method"], tol=case["tol"])
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        unknown = np.setdiff1d(np.arange(n), anchors)
        out.update(rel_residual=sol_h.residual, converged=sol_h.converged,
                   iterations=sol_h.iterations, solver=sol_h.solver, anchors=int(anchors.size),
                   tau=abs(float(kendalltau(sol_h.x, t[unknown])[0])),
                   levels=sol_h.info.get("levels"),
                   setup_s=sol_h.info.get("setup_s", sol_h.info.get("factor_s")))
    peak_kb = (_status_kb("VmHWM") if peak_reset
               else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    out.update(solve_s=wall, cpu_s=cpu, peak_rss_mb=peak_kb / 1024, peak_is_solve_only=peak_reset,
               solve_extra_mb=peak_kb / 1024 - out["graph_rss_mb"])
    return out


def spawn(case: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one case in a fresh interpreter; a timeout or crash is recorded, not raised."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(case)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {**case, "error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {**case, "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else
                f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt_row(r: dict[str, Any]) -> str:
    name = f"{r['problem']}:{r['method']}"
    if "error" in r:
        return f"{r['n']:>9,d}  {name:<22} {r['error']}"
    lam = f"{r['lambda2']:.3e}" if "lambda2" in r else "-"
    return (f"{r['n']:>9,d}  {name:<22} {r['build_s']:7.2f} {r['solve_s']:8.2f} {r['cpu_s']:8.2f} "
            f"{r['peak_rss_mb']:8.0f} {r['solve_extra_mb']:8.0f} {r['tau']:8.5f} {lam:>10} "
            f"{r['rel_residual']:9.1e} {r['iterations']:>5} {'yes' if r['converged'] else 'NO':>4}")


HEADER = (f"{'n':>9}  {'case':<22} {'build s':>7} {'solve s':>8} {'cpu s':>8} {'peak MB':>8} "
          f"{'extra MB':>8} {'|tau|':>8} {'lambda2':>10} {'rel res':>9} {'iter':>5} {'conv':>4}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", type=float, default=[1e4, 1e5, 1e6])
    ap.add_argument("--methods", nargs="+", default=[*EIG_METHODS, *HARM_METHODS, "seriate"],
                    choices=[*EIG_METHODS, *HARM_METHODS, *SERIATE_METHODS])
    ap.add_argument("--noise", type=float, default=0.002, help="curve noise σ (default 0.002)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--laplacian", default="unnormalized", choices=["unnormalized", "symmetric"],
                    help="Laplacian of the Fiedler cases (symmetric: scored on D^{-1/2} u)")
    ap.add_argument("--anchor-fraction", type=float, default=0.01)
    ap.add_argument("--eig-tol", type=float, default=1e-8)
    ap.add_argument("--harmonic-tol", type=float, default=1e-10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    ap.add_argument("--all", action="store_true", help="also run methods beyond FEASIBLE_MAX")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(run_case(json.loads(args.worker))))
        return

    cases = []
    for n in (int(s) for s in args.sizes):
        for m in args.methods:
            if not args.all and n > FEASIBLE_MAX.get(m, n):
                continue
            problem = ("fiedler" if m in EIG_METHODS else "seriate" if m in SERIATE_METHODS
                       else "harmonic")
            cases.append({"problem": problem, "method": m, "n": n, "noise": args.noise,
                          "k": args.k, "seed": args.seed, "anchor_fraction": args.anchor_fraction,
                          "laplacian": args.laplacian,
                          "tol": (args.eig_tol if problem == "fiedler" else None
                                  if problem == "seriate" else args.harmonic_tol)})
    print(HEADER, flush=True)
    rows = []
    for case in cases:
        row = spawn(case, args.timeout)
        rows.append(row)
        print(fmt_row(row), flush=True)
    import numpy
    import pyamg
    import scipy

    meta = {"machine": platform.machine(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": numpy.__version__, "scipy": scipy.__version__, "pyamg": pyamg.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "load_avg_end": os.getloadavg(),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("worker", "out")}}  # no machine paths in shared results
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "cases": rows}, indent=1, default=float))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
