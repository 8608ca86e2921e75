"""Why a semi-supervised method helps or does not: variants of methods (their parameters) against supervised
on the same splits, with what happened inside training.

Each variant is a registered method with parameter values, e.g. ``gclss-auto=gclss:unlabeled_weight=auto``.
Every (variant, label setting, seed) is an ordinary run directory trained through ``clss reproduce``'s grid
runner (parallel jobs, finished runs skipped, interrupted ones resumed), with the gradient probe on
(``probe_every``) and the hidden targets of the unlabelled rows passed for diagnostics. The report gives,
per variant and setting:

- validation and test MAE (mean ± std over seeds) and the paired test difference to ``supervised``
  with its 95 % t-interval and wins/losses;
- from the probe (``metrics.jsonl``): the median over the first and the second half of training of
  ``grad_ratio`` (the unlabelled gradient applied, relative to the supervised one) and ``grad_cosine``
  (their alignment); under ``unlabeled_weight=auto`` the median weight applied;
- pseudo-target quality: the median ``pseudo_rank_tau`` (CLSS: |Kendall τ| of the pseudo-ranks),
  ``pseudo_value_tau`` (GCLSS: τ of the anchored pseudo-values) or ``pseudo_target_tau`` (the seed papers'
  recipes with pseudo-targets) against the hidden truth.

Usage::

    python benchmarks/ssl_study.py --dataset operator-sde --labeled 20% --seeds 3 --steps 3000 \\
        --variant gclss --variant gclss-auto=gclss:unlabeled_weight=auto --jobs 2 --out runs/study
    python benchmarks/ssl_study.py ... --report-only     # rebuild study.md / study.json from finished runs

Writes ``OUT/study.json`` and ``OUT/study.md`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import yaml

from clss.reproduce.grid import GridRun, run_grid, run_state
from clss.reproduce.plan import grid_run
from clss.reproduce.report import collect_results, paired_difference

BASELINE = "supervised"
PROBES = ("grad_ratio", "grad_cosine", "unlabeled_weight", "pseudo_rank_tau", "pseudo_value_tau",
          "pseudo_target_tau")


def parse_variant(text: str) -> tuple[str, str, dict[str, Any]]:
    """``NAME=METHOD:key=value,key=value`` (or ``METHOD`` alone, its own name) -> (name, method, params);
    values are read as YAML scalars (``0.3``, ``auto``, ``true``)."""
    name, _, spec = text.partition("=") if "=" in text.split(":", 1)[0] else (text.split(":", 1)[0], "", text)
    method, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"variant {text!r}: parameter {item!r} is not key=value")
        params[key.strip()] = yaml.safe_load(value)
    if not name or "/" in name:
        raise SystemExit(f"variant {text!r}: the name must be a non-empty folder name")
    return name, method, params


def plan(args: argparse.Namespace) -> list[GridRun]:
    variants = [parse_variant(v) for v in args.variant]
    if BASELINE not in [v[0] for v in variants]:
        variants.insert(0, (BASELINE, BASELINE, {}))
    if len({v[0] for v in variants}) != len(variants):
        raise SystemExit("two variants have the same name")
    common = {"dataset": args.dataset, "probe_every": args.probe_every, "hidden_truth": True}
    if args.target:
        common["target"] = args.target
    for item in args.set:
        key, _, value = item.partition("=")
        node = common
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    late = {"progress": False, **({"steps": args.steps} if args.steps else {})}
    runs = []
    for name, method, params in variants:
        for labeled in args.labeled:
            setting = labeled.replace("%", "pct").replace("/", "-")
            for seed in range(args.seeds):
                values = {**common, "method": method, "labeled": labeled, "seed": seed, "split_seed": seed,
                          "method_params": {**common.get("method_params", {}), **params}}
                if method == BASELINE:  # the baseline takes only the shared supervised keys
                    values["method_params"] = {k: v for k, v in values["method_params"].items()
                                               if k in _supervised_keys()}
                try:
                    where = f"variant {name} at {labeled}"
                    runs.append(grid_run(name, setting, seed, values, late, where=where))
                except ValueError as exc:
                    raise SystemExit(str(exc)) from None
    return runs


def _supervised_keys() -> set[str]:
    from clss.methods import METHODS

    return set(METHODS[BASELINE].Params().to_dict())


def _median(values: list[float]) -> float:
    values = [v for v in values if math.isfinite(v)]
    return statistics.median(values) if values else math.nan


def run_probes(path: Path, steps: int) -> dict[str, float]:
    """Medians of the probe's scalars over the first and second half of a run's log."""
    logs = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out = {}
    for key in PROBES:
        early = [r[key] for r in logs if key in r and r["step"] <= steps // 2]
        late = [r[key] for r in logs if key in r and r["step"] > steps // 2]
        if early or late:
            out[f"{key}_early"], out[f"{key}_late"] = _median(early), _median(late)
    return out


def report(out: Path, runs: list[GridRun]) -> dict[str, Any]:
    scores = {split: collect_results(out, runs, ["mae"], split)[0] for split in ("val", "test")}
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        if run_state(out / run.run_dir) != "finished":
            continue
        cell = cells.setdefault((run.method, run.setting), {
            split: scores[split][(run.method, run.setting, "mae")] for split in scores} | {"probes": []})
        cell["probes"].append(run_probes(out / run.run_dir, int(run.config["steps"])))
    records = []
    for (name, setting), cell in cells.items():
        base = cells.get((BASELINE, setting))
        rec: dict[str, Any] = {"variant": name, "setting": setting, "seeds": len(cell["test"])}
        for split in ("val", "test"):
            vals = list(cell[split].values())
            rec[f"{split}_mae"] = statistics.fmean(vals)
            rec[f"{split}_std"] = statistics.stdev(vals) if len(vals) > 1 else math.nan
        if base is not None and name != BASELINE:
            d = paired_difference(cell["test"], base["test"])
            rec.update(diff=d.mean, diff_low=d.low, diff_high=d.high, wins=d.wins, losses=d.losses)
        keys = sorted({k for p in cell["probes"] for k in p})
        rec.update({k: _median([p[k] for p in cell["probes"] if k in p]) for k in keys})
        records.append(rec)
    order = {run.method: i for i, run in enumerate(runs)}
    records.sort(key=lambda r: (r["setting"], order[r["variant"]]))
    (out / "study.json").write_text(json.dumps({"records": records}, indent=1, allow_nan=True))
    lines = ["| variant | setting | val MAE | test MAE | Δ test vs supervised [95 %] | W/L | grad ratio "
             "early/late | cosine early/late | auto weight late | pseudo τ late |", "|" + "---|" * 10]

    def f(v: Any, spec: str = ".4g") -> str:
        return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)

    for r in records:
        diff = (f"{f(r['diff'], '+.4f')} [{f(r['diff_low'], '+.4f')}, {f(r['diff_high'], '+.4f')}]"
                if "diff" in r else "")
        wl = f"{r['wins']}/{r['losses']}" if "wins" in r else ""
        tau = r.get("pseudo_value_tau_late", r.get("pseudo_rank_tau_late", r.get("pseudo_target_tau_late")))
        lines.append(f"| {r['variant']} | {r['setting']} | {f(r['val_mae'])} ± {f(r['val_std'], '.2g')} | "
                     f"{f(r['test_mae'])} ± {f(r['test_std'], '.2g')} | {diff} | {wl} | "
                     f"{f(r.get('grad_ratio_early'), '.3g')} / {f(r.get('grad_ratio_late'), '.3g')} | "
                     f"{f(r.get('grad_cosine_early'), '+.2f')} / {f(r.get('grad_cosine_late'), '+.2f')} | "
                     f"{f(r.get('unlabeled_weight_late'), '.3g')} | {f(tau, '.3f')} |")
    (out / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return {"records": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--target")
    parser.add_argument("--labeled", nargs="+", default=["10%"])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--variant", action="append", default=[], help="NAME=METHOD:key=value,... (repeat)")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE for every run (repeat)")
    parser.add_argument("--probe-every", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args(argv)
    runs = plan(args)
    if not args.report_only:
        result = run_grid(args.out, runs, jobs=args.jobs, meta={"study": vars(args) | {"out": str(args.out)}},
                          progress=False)
        for name, log in result.failed.items():
            print(f"failed: {name} (log {log})", file=sys.stderr)
    report(args.out, runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
