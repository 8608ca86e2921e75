"""The CLSS/GCLSS operator-learning table (Dai et al., NeurIPS 2023) on a CPU budget.

For every method (``--methods``), labelled fraction (``--fractions``) and paper run (``--runs``) this trains
:func:`clss.engine.trainer.train` with the ``operator-sde`` preset (MLP 241-100-100, default init, dropout
0.05, raw inputs, AdamW 1e-3, full batch, OE/UR/UC weights 1e-3 on 10-row subsamples)
on the paper's slicing of run ``t`` (``⌊1000 f⌋`` labelled + as many unlabelled rows). All methods see the
same runs, label sets, seed and number of steps; nothing is tuned per method. Checkpoints are selected on
the holdout protocol (the next run's slice) by default; ``--val-protocol test`` reproduces the official
(optimistic) selection on the test set and is the paper-parity column only. Reported: test MAE and R² of
the selected checkpoint, mean ± population std over runs, beside the paper's numbers.

Budget: the paper trains 100 000 full-batch steps per run. ``--budget-minutes`` (used when ``--steps`` is not
given) times a few steps of every (method, fraction) first and picks one common step count, a multiple of
``--eval-every``, so that the whole grid fits; the steps used are reported. ``--curve`` instead trains the
first (fraction, run) for ``--steps`` steps per method and reports the best holdout MAE reached by 1k, 2k,
5k, ... steps (with a constant learning rate a shorter run is exactly the prefix of a longer one).

Data: ``../shared/data/operator_sde/*.npz`` relative to the repository root when present (``--data-dir``),
else the built-in generator. Extra settings for every method: ``--set method_params.rank_weight=0.01``.

Usage: ``python benchmarks/operator_sde.py --budget-minutes 20`` or
``python benchmarks/operator_sde.py --curve --steps 10000 --fractions 0.2 --runs 0``.
Writes ``<out>/operator_sde.{json,md}`` (default ``benchmarks/results/operator_sde``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clss.config import parse_overrides, resolve_config
from clss.data import InputSpec
from clss.engine.trainer import train
from clss.methods import Batch, OptimizerConfig, build_method
from clss.models import build_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT / ".." / "shared" / "data" / "operator_sde"
FRACTION_NAMES = {0.2: "1/5", 0.25: "1/4", 0.333: "1/3", 0.33: "1/3", 0.5: "1/2"}
# The official CLSS repository's docs/synthetic.png: MAE, R² in %; mean ± std over 10 runs, 100k steps,
# checkpoints selected on test.
PAPER = {
    "supervised": ([(0.098, 0.095), (0.056, 0.016), (0.041, 0.015), (0.032, 0.009)],
                   [(66.9, 39.4), (83.8, 7.7), (88.5, 8.0), (90.9, 5.1)]),
    "clss": ([(0.033, 0.008), (0.027, 0.009), (0.020, 0.007), (0.016, 0.007)],
             [(96.4, 1.7), (97.3, 2.4), (98.4, 1.3), (99.3, 0.5)]),
    "gclss": ([(0.024, 0.009), (0.021, 0.004), (0.014, 0.003), (0.010, 0.003)],
              [(97.8, 1.4), (98.4, 0.6), (99.4, 0.2), (99.7, 0.1)]),
}
PAPER_FRACTIONS = [0.2, 0.25, 0.333, 0.5]


def config(args: argparse.Namespace, method: str, fraction: float, run: int, steps: int):
    """The preset configuration of one run; method parameters a method does not take are dropped (the
    dataset preset lists the semi-supervised weights, which ``supervised`` rejects)."""
    cfg = resolve_config(parse_overrides(args.set), {
        "dataset": "operator-sde", "method": method, "labeled": str(fraction), "unlabeled": "paper",
        "run": run, "steps": steps, "eval_every": args.eval_every, "data_dir": args.data_dir,
        "val_protocol": args.val_protocol, "seed": args.seed, "threads": 1, "device": "cpu",
        "progress": False})
    if method in ("clss", "gclss"):  # logging only (τ of the pseudo-targets); numbers unchanged
        cfg.method_params.setdefault("diagnostics_every", 50)
    return cfg


def step_cost(args: argparse.Namespace, method: str, fraction: float, n: int = 15) -> float:
    """Seconds per training step at this fraction's full-batch sizes (after 5 warm-up steps)."""
    cfg = config(args, method, fraction, args.runs[0], 1)
    k = int(1000 * fraction)
    gen = torch.Generator().manual_seed(0)
    x_l, y_l = torch.randn(k, 241, generator=gen), torch.randn(k, generator=gen)
    x_u = torch.randn(k, 241, generator=gen)
    kwargs = {key: v for key, v in cfg.model.items() if key != "name"}
    m = build_method(method, lambda: build_model("mlp", InputSpec("tabular", (241,)), **kwargs),
                     OptimizerConfig(**cfg.optimizer), cfg.method_params)
    lab = Batch(dict.fromkeys(m.labeled_views, x_l), torch.arange(k), y_l)  # tabular: every view is the input
    ulb = Batch(dict.fromkeys(m.unlabeled_views, x_u), torch.arange(k))
    m.configure_optimizers()
    for i in range(5):
        m.training_step(lab, ulb, i)
    t0 = time.perf_counter()
    for i in range(n):
        m.training_step(lab, ulb, i)
    return (time.perf_counter() - t0) / n


def one_run(args: argparse.Namespace, method: str, fraction: float, run: int, steps: int) -> dict[str, Any]:
    cfg = config(args, method, fraction, run, steps)
    run_dir = args.out / "runs" / f"{method}_f{fraction}_r{run}"
    shutil.rmtree(run_dir, ignore_errors=True)
    t0 = time.perf_counter()
    res = train(cfg, run_dir)
    log = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [(r["step"], r["val_mae"]) for r in log if "val_mae" in r]
    best_step = min(curve, key=lambda c: c[1])[0] if curve else steps
    s = res.summary
    taus = [r["pseudo_value_tau" if method == "gclss" else "pseudo_rank_tau"] for r in log
            if ("pseudo_value_tau" in r or "pseudo_rank_tau" in r)]
    return {"method": method, "fraction": fraction, "run": run, "steps": steps, "best_step": best_step,
            "test_mae": s["test"]["mae"], "test_r2": s["test"]["r2"], "val_mae": s["val"]["mae"],
            "labeled": s["labeled"], "unlabeled": s["unlabeled"], "train_seconds": s["seconds"],
            "wall_seconds": time.perf_counter() - t0, "val_curve": curve,
            "pseudo_tau_last500": float(np.mean(taus[-500:])) if taus else None,
            "config": cfg.to_dict()}


def fmt(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
    a = np.asarray(values, dtype=float) * scale
    return f"{a.mean():.{digits}f}±{a.std():.{digits}f}" if len(a) else "-"


def table(results: list[dict[str, Any]], methods: list[str], fractions: list[float]) -> str:
    head = ["Method", *[f"MAE {FRACTION_NAMES.get(f, f)}" for f in fractions],
            *[f"R² {FRACTION_NAMES.get(f, f)}" for f in fractions]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        rows = [[r for r in results if r["method"] == m and r["fraction"] == f] for f in fractions]
        mae = [fmt([r["test_mae"] for r in rs]) for rs in rows]
        r2 = [fmt([r["test_r2"] for r in rs], 100, 1) + "%" for rs in rows]
        lines.append(f"| {m} (measured) | " + " | ".join(mae + r2) + " |")
    for m in methods:
        if m in PAPER:
            idx = [PAPER_FRACTIONS.index(f) if f in PAPER_FRACTIONS else None for f in fractions]
            mae = [f"{PAPER[m][0][i][0]:.3f}±{PAPER[m][0][i][1]:.3f}" if i is not None else "-" for i in idx]
            r2 = [f"{PAPER[m][1][i][0]:.1f}%±{PAPER[m][1][i][1]:.1f}" if i is not None else "-" for i in idx]
            lines.append(f"| {m} (paper) | " + " | ".join(mae + r2) + " |")
    return "\n".join(lines)


def curve_table(results: list[dict[str, Any]]) -> str:
    marks = [m for m in (500, 1000, 2000, 5000, 10000, 20000, 50000, 100000) if m <= results[0]["steps"]]
    lines = ["| method | " + " | ".join(f"best val MAE ≤{m}" for m in marks) + " | test MAE (final sel.) |",
             "|" + "---|" * (len(marks) + 2)]
    for r in results:
        best = [min((v for s, v in r["val_curve"] if s <= m), default=math.nan) for m in marks]
        cells = " | ".join(f"{b:.4f}" for b in best)
        lines.append(f"| {r['method']} | {cells} | {r['test_mae']:.4f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", nargs="+", default=["supervised", "clss", "gclss"])
    ap.add_argument("--fractions", nargs="+", type=float, default=PAPER_FRACTIONS)
    ap.add_argument("--runs", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="steps per run (default: chosen from --budget-minutes)")
    ap.add_argument("--budget-minutes", type=float, default=20.0, help="wall budget of the whole grid")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--val-protocol", choices=["holdout", "test"], default="holdout")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", default=str(SHARED.resolve()) if (SHARED / "train_sde.npz").is_file()
                    else None, help="folder of train_sde.npz/test_sde.npz (default: the shared copy)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="configuration override applied to every method (documented setting, not tuning)")
    ap.add_argument("--curve", action="store_true", help="learning-curve mode (first fraction and run)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "operator_sde")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    fractions, runs = (args.fractions[:1], args.runs[:1]) if args.curve else (args.fractions, args.runs)
    costs: dict[str, float] = {}
    steps = args.steps
    if steps is None:
        overhead = 4.0  # s per run: data loading, evaluation, test predictions, plots
        for m in args.methods:
            for f in fractions:
                costs[f"{m}@{f}"] = step_cost(args, m, f)
        per_step = sum(costs.values()) * len(runs)
        spare = args.budget_minutes * 60 - overhead * len(costs) * len(runs)
        steps = max(args.eval_every, int(spare / per_step) // args.eval_every * args.eval_every)
        print(f"budget {args.budget_minutes} min -> {steps} steps per run (s/step: "
              + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in costs.items()) + ")")
    started = time.perf_counter()
    results = []
    for f in fractions:
        for run in runs:
            for m in args.methods:
                r = one_run(args, m, f, run, steps)
                results.append(r)
                print(f"{m:>10} f={f} run={run}: test MAE {r['test_mae']:.4f} R² {r['test_r2']:.4f} "
                      f"(best step {r['best_step']}, {r['wall_seconds']:.0f} s)", flush=True)
    wall = time.perf_counter() - started
    name = "operator_sde_curve" if args.curve else "operator_sde"
    md = (curve_table(results) if args.curve else table(results, args.methods, fractions))
    header = (f"operator-sde: {steps} full-batch steps per run (paper: 100 000), runs {runs}, "
              f"seed {args.seed}, val protocol {args.val_protocol}, threads 1, grid wall {wall / 60:.1f} min"
              + (f", overrides {args.set}" if args.set else ""))
    (args.out / f"{name}.md").write_text(f"{header}\n\n{md}\n")
    argv = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    report = {"header": header, "argv": argv,
              "steps": steps, "step_cost_s": costs, "wall_seconds": wall, "torch": torch.__version__,
              "platform": platform.platform(), "paper_D5": PAPER, "results": results}
    (args.out / f"{name}.json").write_text(json.dumps(report, indent=1))
    print(f"\n{header}\n\n{md}\n\nwrote {args.out / name}.{{md,json}}")


if __name__ == "__main__":
    main()
