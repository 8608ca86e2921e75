"""A grid's report: ``table.md``, ``table.csv``, ``runs.csv`` and ``figure.png``.

Our mean ± std over seeds (test metrics of each run's selected checkpoint) beside the paper's, and a paired
comparison of every method with the ``supervised`` row: per seed the difference of the two runs (same
seed, same labelled rows), their mean with a Student-t confidence interval, and wins/losses.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from clss.atomic import atomic_write_text
from clss.engine.rundir import RunDir
from clss.reproduce.grid import GridRun, run_state
from clss.reproduce.tables import LOWER_IS_BETTER, Cell, Table

__all__ = ["Paired", "collect_results", "paired_difference", "plot_table", "write_report"]

BASELINE = "supervised"


@dataclass(frozen=True)
class Paired:
    """``method - baseline`` over the ``n`` seeds both have: mean difference and its ``confidence``
    t-interval ``[low, high]`` (NaN for fewer than two seeds), and per-seed wins, losses and ties (a win is
    a better value: lower for errors, higher for R² and correlations)."""

    n: int
    mean: float
    low: float
    high: float
    wins: int
    losses: int
    ties: int


def paired_difference(values: dict[int, float], baseline: dict[int, float], *, lower_is_better: bool = True,
                      confidence: float = 0.95) -> Paired:
    """Paired comparison over the seeds present in both ``values`` and ``baseline`` (seed -> metric).

    The interval is ``mean ± t_{(1+confidence)/2, n-1} · sd / sqrt(n)`` with the sample standard deviation
    (``ddof=1``) of the per-seed differences.

    Raises
    ------
    ValueError
        ``confidence`` outside (0, 1).
    """
    from scipy import stats

    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    seeds = sorted(set(values) & set(baseline))
    d = np.array([values[s] - baseline[s] for s in seeds], dtype=np.float64)
    n = d.size
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, 0, 0, 0)
    mean = float(d.mean())
    low = high = math.nan
    if n >= 2:
        half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(d.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    better = -d if lower_is_better else d
    return Paired(n, mean, low, high, wins=int((better > 0).sum()), losses=int((better < 0).sum()),
                  ties=int((better == 0).sum()))


def collect_results(out: str | Path, runs: Sequence[GridRun], metrics: Sequence[str], split: str = "test"
                    ) -> tuple[dict[tuple[str, str, str], dict[int, float]], dict[str, str]]:
    """Metrics on ``split`` (``"test"`` or ``"val"``) of the finished runs, ``{(method, setting, metric):
    {seed: value}}``, and the state of every run that is not finished (``run.name`` -> state)."""
    out = Path(out)
    values: dict[tuple[str, str, str], dict[int, float]] = {}
    states = {}
    for run in runs:
        state = run_state(out / run.run_dir)
        if state != "finished":
            states[run.name] = state
            continue
        scores = json.loads((out / run.run_dir / RunDir.SUMMARY).read_text())[split]
        for metric in metrics:
            values.setdefault((run.method, run.setting, metric), {})[run.seed] = float(scores[metric])
    return values, states


def _fmt(x: float | None, like: float | None = None) -> str:
    """``x`` with 3 decimals, 2 from 10 on (the magnitude of ``like`` when given: a std as its mean)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    ref = x if like is None or not math.isfinite(like) else like
    return f"{x:.3f}" if abs(ref) < 10 else f"{x:.2f}"


def _pm(mean: float | None, std: float | None) -> str:
    """``mean ± std`` (``mean`` alone without a finite std)."""
    if std is None or not math.isfinite(std):
        return _fmt(mean)
    return f"{_fmt(mean)} ± {_fmt(std, mean)}"


def _mean_std(values: dict[int, float]) -> tuple[float, float, int]:
    v = np.array(list(values.values()), dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan, int(v.size)


def write_report(table: Table, out: str | Path, runs: Sequence[GridRun], *, figure: bool = True,
                 note: str = "") -> dict[str, Path]:
    """Write ``table.md``, ``table.csv``, ``runs.csv`` (one line per finished run and metric) and
    ``figure.png`` into ``out`` from the grid's finished runs (unfinished ones are listed as such).
    ``note`` (e.g. the quick profile) is printed under the title. Returns the paths written."""
    out = Path(out)
    methods = list(dict.fromkeys(r.method for r in runs))
    settings = list(dict.fromkeys(r.setting for r in runs))
    seeds = sorted({r.seed for r in runs})
    values, unfinished = collect_results(out, runs, table.metrics)
    rows = {r.name: r for r in table.rows}
    cols = {c.name: i for i, c in enumerate(table.columns)}
    records = []
    for metric in table.metrics:
        for method in methods:
            for setting in settings:
                mine = values.get((method, setting, metric), {})
                mean, std, n = _mean_std(mine)
                paper: Cell = rows[method].published[metric][cols[setting]]
                paired = None
                if method != BASELINE and (BASELINE, setting, metric) in values:
                    paired = paired_difference(mine, values[(BASELINE, setting, metric)],
                                               lower_is_better=metric in LOWER_IS_BETTER)
                records.append({"metric": metric, "method": method, "label": rows[method].label,
                                "setting": setting, "setting_label": table.column(setting).label, "n": n,
                                "mean": mean, "std": std, "paper_mean": paper.mean, "paper_std": paper.std,
                                "paper_missing": paper.missing or "", "paired": paired})
    paths = {"md": out / "table.md", "csv": out / "table.csv", "runs": out / "runs.csv"}
    atomic_write_text(paths["csv"], _csv(records))
    atomic_write_text(paths["runs"], _runs_csv(values))
    atomic_write_text(paths["md"], _markdown(table, records, methods, settings, seeds, unfinished, note,
                                             runs))
    if figure:
        paths["figure"] = plot_table(table, records, methods, settings, out / "figure.png",
                                     n_seeds=len(seeds))
    return paths


def _csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["metric", "method", "label", "setting", "setting_label", "n_seeds", "mean", "std",
                "paper_mean", "paper_std", "paper_missing", "vs_supervised_n", "vs_supervised_mean_diff",
                "ci95_low", "ci95_high", "wins", "losses", "ties"])
    for r in records:
        p: Paired | None = r["paired"]
        w.writerow([r["metric"], r["method"], r["label"], r["setting"], r["setting_label"], r["n"],
                    _num(r["mean"]), _num(r["std"]), _num(r["paper_mean"]), _num(r["paper_std"]),
                    r["paper_missing"],
                    *([p.n, _num(p.mean), _num(p.low), _num(p.high), p.wins, p.losses, p.ties]
                      if p is not None else [""] * 7)])
    return buf.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def _runs_csv(values: dict[tuple[str, str, str], dict[int, float]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["method", "setting", "metric", "seed", "value"])
    for (method, setting, metric), by_seed in values.items():
        for seed, v in sorted(by_seed.items()):
            w.writerow([method, setting, metric, seed, repr(v)])
    return buf.getvalue()


def _markdown(table: Table, records: list[dict[str, Any]], methods: list[str], settings: list[str],
              seeds: list[int], unfinished: dict[str, str], note: str, runs: Sequence[GridRun]) -> str:
    steps = sorted({int(r.config["steps"]) for r in runs})
    labels = [table.column(s).label for s in settings]
    lines = [f"# {table.title}", "",
             f"Generated by `clss reproduce {table.name}` on {datetime.now(UTC).date().isoformat()}: dataset "
             f"`{table.dataset}`, seeds {', '.join(map(str, seeds))}, {'/'.join(map(str, steps))} steps per "
             f"run.",
             *([f"Profile: {note}."] if note else []), "",
             f"- Ours: test metrics of each run's selected checkpoint; selection: {table.selection}.",
             "- Paper: " + "; ".join(str(table.source[k]) for k in ("paper", "table", "seeds")
                                     if k in table.source) + ".",
             f"- Paper's selection: {table.source['selection'].strip()}.", ""]
    by_key = {(r["metric"], r["method"], r["setting"]): r for r in records}
    for metric in table.metrics:
        arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
        lines += [f"## Test {metric.upper()} ({arrow}): ours mean ± std (seeds) | paper", "",
                  "| method | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
        for method in methods:
            cells = []
            for s in settings:
                r = by_key[(metric, method, s)]
                ours = f"{_pm(r['mean'], r['std'])} ({r['n']})" if r["n"] else "not run"
                paper = _pm(r["paper_mean"], r["paper_std"])
                cells.append(f"{ours} \\| {paper}")
            label = by_key[(metric, method, settings[0])]["label"]
            lines.append(f"| {label} (`{method}`) | " + " | ".join(cells) + " |")
        lines.append("")
        if BASELINE in methods and len(methods) > 1:
            lines += [f"### {metric.upper()}: paired difference to `{BASELINE}` (same seeds): mean [95 % "
                      f"t-interval], wins/losses", "",
                      "| method | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
            for method in methods:
                if method == BASELINE:
                    continue
                cells = [_paired_text(by_key[(metric, method, s)]["paired"]) for s in settings]
                lines.append(f"| `{method}` | " + " | ".join(cells) + " |")
            lines.append("")
    missing = sorted({(r["method"], r["setting_label"], r["paper_missing"]) for r in records
                      if r["paper_missing"]})
    if missing:
        lines += ["## Paper cells without a number", ""]
        lines += [f"- `{m}` at {s}: {why}" for m, s, why in missing] + [""]
    if unfinished:
        lines += ["## Runs without a result", ""]
        lines += [f"- {name}: {state}" for name, state in sorted(unfinished.items())] + [""]
    return "\n".join(lines)


def _paired_text(p: Paired | None) -> str:
    """``+0.012 [-0.003, +0.027], 2/1`` (mean difference, t-interval, wins/losses)."""
    if p is None or p.n == 0:
        return "n/a"
    interval = f"[{p.low:+.3g}, {p.high:+.3g}]" if p.n > 1 else "(1 seed)"
    return f"{p.mean:+.4g} {interval}, {p.wins}/{p.losses}" + (f" ({p.ties} ties)" if p.ties else "")


def plot_table(table: Table, records: list[dict[str, Any]], methods: list[str], settings: list[str],
               path: str | Path, *, n_seeds: int) -> Path:
    """One panel per metric: ours (mean ± std over seeds, solid) and the paper's (dashed, open markers) per
    method across the label settings. Returns ``path``."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    by_key = {(r["metric"], r["method"], r["setting"]): r for r in records}
    x = np.arange(len(settings))
    fig = Figure(figsize=(5.2 * len(table.metrics), 4.4 + 0.25 * ((len(methods) + 3) // 4)),
                 layout="constrained")
    axes = fig.subplots(1, len(table.metrics), squeeze=False)[0]
    # one colour per method: the default cycle has ten, tab20 twenty
    palette = [f"C{i}" for i in range(10)] if len(methods) <= 10 else list(colormaps["tab20"].colors)
    any_paper = any(r["paper_mean"] is not None for r in records)
    for ax, metric in zip(axes, table.metrics, strict=True):
        for i, method in enumerate(methods):
            color = palette[i % len(palette)]
            shifted = x + 0.03 * (i - (len(methods) - 1) / 2)  # overlapping bars apart
            rs = [by_key[(metric, method, s)] for s in settings]
            mean = np.array([r["mean"] for r in rs], dtype=float)
            std = np.nan_to_num(np.array([r["std"] for r in rs], dtype=float))
            ax.errorbar(shifted, mean, yerr=std, color=color, marker="o", capsize=3, label=f"{method} (ours)")
            paper = np.array([np.nan if r["paper_mean"] is None else r["paper_mean"] for r in rs],
                             dtype=float)
            if np.isfinite(paper).any():
                ax.plot(shifted, paper, color=color, linestyle="--", marker="o", markerfacecolor="none",
                        label=f"{method} (paper)")
        ax.set_xticks(x, [table.column(s).label for s in settings])
        ax.set_xlabel("labelled data")
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        ax.set_ylabel(f"test {metric.upper()} ({better} is better)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=4, fontsize="x-small")
    paper = " vs paper (dashed)" if any_paper else ""
    fig.suptitle(f"{table.title}\nours ({n_seeds} seed{'s' if n_seeds != 1 else ''}, mean ± std){paper}, "
                 f"{datetime.now(UTC).date().isoformat()}", fontsize="medium")
    out = Path(path)
    fig.savefig(out, dpi=110)
    return out
