"""Dense spectral seriation against scikit-learn's spectral embedding, side by side, one core.

Families (each shuffled; the hidden order is known):

* ``curve``: Gaussian kernel ``exp(-(d/h)^2)`` of ``noisy_curve(n, noise=0.01)`` points with ``h`` the
  median pairwise distance (the default of ``seriate(kind="distance", kernel="gaussian")``).
* ``robinson``: R seriation's ``random.robinson``-style input: distances ``|x_i - x_j|`` of uniform
  points plus symmetric uniform noise in ``[-0.1, 0.1]`` (clipped at 0), mapped by ``1/(1+d)``.
* ``curve-narrow``: the same curve with ``h = 0.1``: a chain-like graph with a small λ2 (the hard case
  for Krylov methods).

For each Laplacian: ``unnormalized`` against ``spectral_embedding(norm_laplacian=False,
drop_first=True)``; ``random_walk`` against ``SpectralEmbedding(n_components=1,
affinity="precomputed")`` (normalised Laplacian, ``D^{-1/2} u``); ``symmetric`` against
``spectral_embedding(norm_laplacian=True)`` times ``√d`` (= ``u``). scikit-learn runs with its
default eigensolver (ARPACK shift-invert at σ = 1, a dense LU) and, up to ``--lobpcg-max`` items,
``eigen_solver="lobpcg"``; ``scipy.linalg.eigh(subset_by_index=[0, 2])`` of ``D - W`` is timed for
the unnormalised Laplacian up to ``--eigh-max`` items. BLAS is held to one thread (threadpoolctl).
Times are the best of ``--repeat`` runs (one run from n = 5000). Reported: wall time, the ratio
scikit-learn / ours (> 1: we are faster), |Kendall τ| between the two orders and of each against
the truth, our residual, solver and iteration count.

Usage: ``python benchmarks/bench_dense.py [--sizes 500 1000 2000 5000] [--families ...]``.
Writes ``benchmarks/results/dense.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

RESULTS = Path(__file__).resolve().parent / "results" / "dense.json"
FAMILIES = ("curve", "robinson", "curve-narrow")
KINDS = ("unnormalized", "symmetric", "random_walk")


def make(family: str, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A shuffled similarity matrix of the family and the true rank of each item."""
    from clss.seriation.generators import noisy_curve

    g = np.random.default_rng(seed)
    if family.startswith("curve"):
        x, t = noisy_curve(n, noise=0.01, rng=g)
        sq = (x * x).sum(1)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
        h2 = 0.01 if family == "curve-narrow" else float(np.median(d2[np.triu_indices(n, 1)]))
        s = np.exp(-d2 / h2)
    elif family == "robinson":
        t = g.uniform(0.0, 1.0, n)
        e = g.uniform(-0.1, 0.1, (n, n))
        d = np.maximum(np.abs(np.subtract.outer(t, t)) + np.triu(e, 1) + np.triu(e, 1).T, 0.0)
        s = 1.0 / (1.0 + d)
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    s = (s + s.T) / 2
    np.fill_diagonal(s, 1.0)
    truth = np.argsort(np.argsort(t))
    perm = g.permutation(n)
    return np.ascontiguousarray(s[np.ix_(perm, perm)]), truth[perm]


def best(fn: Any, repeat: int) -> tuple[float, Any]:
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def tau(a: np.ndarray, b: np.ndarray) -> float:
    return abs(float(kendalltau(a, b).statistic))


def run(sizes: list[int], families: list[str], repeat: int, lobpcg_max: int,
        eigh_max: int) -> list[dict[str, Any]]:
    import scipy.linalg as sl
    from sklearn.manifold import SpectralEmbedding, spectral_embedding

    from clss.seriation import seriate

    rows = []
    for n in sizes:
        rep = repeat if n < 5000 else 1
        for family in families:
            s, truth = make(family, n)
            w = s.copy()
            np.fill_diagonal(w, 0.0)
            deg = w.sum(1)
            for kind in KINDS:
                ours_t, res = best(lambda: seriate(s, laplacian=kind), rep)  # noqa: B023
                row: dict[str, Any] = {
                    "n": n, "family": family, "laplacian": kind, "ours_s": ours_t,
                    "solver": res.solver, "converged": res.converged, "residual": res.residual,
                    "iterations": _iterations(s, kind),
                    "tau_ours_truth": tau(res.positions, truth)}
                for solver in ("arpack", "lobpcg"):
                    if solver == "lobpcg" and n > lobpcg_max:
                        continue
                    if kind == "random_walk":
                        def sk(solver: str = solver, s: np.ndarray = s) -> np.ndarray:
                            return SpectralEmbedding(n_components=1, affinity="precomputed",
                                                     eigen_solver=solver,
                                                     random_state=0).fit_transform(s)[:, 0]
                    else:
                        def sk(solver: str = solver, s: np.ndarray = s,
                               normed: bool = kind != "unnormalized") -> np.ndarray:
                            return spectral_embedding(s, n_components=1, eigen_solver=solver,
                                                      norm_laplacian=normed,
                                                      drop_first=True, random_state=0)[:, 0]
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        sk_t, emb = best(sk, rep)
                    if kind == "symmetric":
                        emb = emb * np.sqrt(deg)
                    row[f"sklearn_{solver}_s"] = sk_t
                    row[f"ratio_{solver}"] = sk_t / ours_t
                    row[f"tau_{solver}_ours"] = tau(emb, res.positions)
                    row[f"tau_{solver}_truth"] = tau(emb, truth)
                if kind == "unnormalized" and n <= eigh_max:
                    lap = np.diag(deg) - w
                    row["eigh_s"], _ = best(lambda: sl.eigh(lap, subset_by_index=[0, 2],  # noqa: B023
                                                            check_finite=False), rep)
                rows.append(row)
                print(_line(row), flush=True)
    return rows


def _iterations(s: np.ndarray, kind: str) -> int | None:
    from clss.seriation.spectral import fiedler

    w = s.copy()
    np.fill_diagonal(w, 0.0)
    return int(fiedler(w, kind=kind)[1].iterations)


def _line(r: dict[str, Any]) -> str:
    def f(key: str, fmt: str = "{:.3f}") -> str:
        return fmt.format(r[key]) if key in r else "—"

    return (f"| {r['n']} | {r['family']} | {r['laplacian']} | {f('sklearn_arpack_s')} | "
            f"{f('sklearn_lobpcg_s')} | {f('eigh_s')} | {f('ours_s')} | {f('ratio_arpack', '{:.1f}')} | "
            f"{f('tau_arpack_ours', '{:.4f}')} | {f('tau_arpack_truth', '{:.4f}')} | "
            f"{f('tau_ours_truth', '{:.4f}')} | {r['residual']:.1e} | {r['solver']} ({r['iterations']}) |")


HEADER = ("| n | family | Laplacian | sklearn arpack (s) | sklearn lobpcg (s) | eigh subset (s) | "
          "seriate (s) | sklearn/ours | \\|τ\\| sklearn-ours | \\|τ\\| sklearn-truth | "
          "\\|τ\\| ours-truth | residual | solver (iterations) |\n|" + "---:|" * 3 + "---:|" * 10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1000, 2000, 5000])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lobpcg-max", type=int, default=2000)
    parser.add_argument("--eigh-max", type=int, default=5000)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    load_before = os.getloadavg()
    print(f"load average before: {load_before}")
    print(HEADER)
    with threadpool_limits(1):
        rows = run(args.sizes, args.families, args.repeat, args.lobpcg_max, args.eigh_max)
    load_after = os.getloadavg()
    print(f"load average after: {load_after}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                   "cpus": os.cpu_count(), "load_before": load_before,
                                   "load_after": load_after, "rows": rows}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
