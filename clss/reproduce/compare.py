"""``clss compare``: do the unlabelled rows help on this dataset? Every method trained with the same
splits and budget, paired against the supervised baseline seed by seed, beside classical references fitted
on the same labelled rows, with a plain verdict.

The grid is an ordinary :class:`~clss.reproduce.tables.Table` built in memory (no published numbers), so
planning, parallel jobs, resuming and SLURM come from :mod:`clss.reproduce.grid` unchanged. Each seed sets
``seed`` and ``split_seed`` (and ``run`` on a dataset whose protocol has runs or folds: operator-sde's run
slices, Adience's and MORPH II's folds): for one seed every method sees the same labelled, unlabelled,
validation and test rows, which is what makes the per-seed differences paired.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from clss.atomic import atomic_write_text
from clss.engine.rundir import RunDir
from clss.reproduce.grid import GridRun, run_state
from clss.reproduce.report import (
    BASELINE,
    Paired,
    _fmt,
    _mean_std,
    _paired_text,
    collect_results,
    paired_difference,
)
from clss.reproduce.tables import LOWER_IS_BETTER, Cell, Column, Row, Table

__all__ = ["REFERENCES", "compare_table", "reference_scores", "verdict", "write_comparison"]

#: Classical regressors fitted on the labelled rows only (tabular data), shown beside the trained methods.
REFERENCES = ("ridge", "gbr")
_REFERENCE_LABELS = {"ridge": "ridge (labelled rows, scikit-learn RidgeCV)",
                     "gbr": "gradient boosting (labelled rows, scikit-learn HistGradientBoostingRegressor)"}
_NO_PAPER = "clss compare runs have no published numbers"


def _setting_name(labeled: str) -> str:
    """A folder name for a ``labeled`` value: ``10%`` -> ``10pct``, ``250`` -> ``250``."""
    name = re.sub(r"[^A-Za-z0-9._-]", "-", str(labeled).strip().replace("%", "pct"))
    return name if name and name[0].isalnum() else f"l{name}"


def compare_table(dataset: str, methods: Sequence[str], labeled: Sequence[str], *, seeds: Sequence[int],
                  config: dict[str, Any] | None = None, metrics: Sequence[str] = ("mae", "rmse", "r2")
                  ) -> Table:
    """The grid of a comparison as a table: ``methods`` (``supervised`` is added first when missing: it is
    the baseline) x one column per ``labeled`` value x ``seeds``; ``config`` holds the configuration keys
    every run shares (budget, model, ``--set`` values).

    Raises
    ------
    ValueError
        No method or label setting, a label setting given twice, an unknown metric.
    """
    from clss.reproduce.tables import METRICS

    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("give at least one method to compare, e.g. --methods supervised,gclss")
    if BASELINE not in methods:
        methods.insert(0, BASELINE)
    if not labeled:
        raise ValueError("give at least one label setting, e.g. --labeled 10%")
    names = [_setting_name(v) for v in labeled]
    if len(set(names)) != len(names):
        raise ValueError(f"a label setting is given twice: {list(labeled)}")
    bad = [m for m in metrics if m not in METRICS]
    if bad:
        raise ValueError(f"unknown metric {bad[0]!r}; choose from {', '.join(METRICS)}")
    columns = [Column(name=n, label=str(v), labeled=str(v)) for n, v in zip(names, labeled, strict=True)]
    rows = [Row(method=m, label=m, published={k: [Cell(missing=_NO_PAPER)] * len(columns) for k in metrics})
            for m in methods]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset.split(":", 1)[-1]).stem or dataset).strip("-")
    return Table(name=f"compare-{slug or 'data'}", title=f"{dataset}: {len(methods)} methods against "
                 f"{BASELINE}", dataset=dataset, columns=columns, rows=rows, metrics=list(metrics),
                 source={"paper": "none", "selection": "not applicable"}, path=Path("clss-compare"),
                 config=dict(config or {}), seed_keys=_seed_keys(dataset), seeds=list(seeds))


def _seed_keys(dataset: str) -> list[str]:
    """``seed`` and ``split_seed``, and ``run`` where the protocol's data differ by run (runs or folds)."""
    from clss.data import dataset_info

    info = dataset_info(dataset)
    runs = info is not None and (info.has_runs or info.folds)
    return ["seed", "split_seed", *(["run"] if runs else [])]


def reference_scores(out: str | Path, runs: Sequence[GridRun], metrics: Sequence[str],
                     splits: Sequence[str] = ("val", "test")) -> tuple[
                         dict[tuple[str, str, str, str], dict[int, float]], str]:
    """Ridge and gradient boosting fitted on the labelled rows of each finished supervised run (its
    ``splits.json``, so exactly the rows the methods were trained on), scored on ``splits``:
    ``{(reference, setting, split, metric): {seed: value}}``, and a note ('' or why there are none).

    The inputs are the dataset's features as the run loaded them (a CSV's encoding included), or the pixels
    of small in-memory images (at most :data:`REFERENCE_PIXELS` values each, e.g. digits-rotation's 8x8)
    as a flat vector; RidgeCV standardises them first and chooses its penalty by leave-one-out on the
    labelled rows. Image files give no references (the note says so).
    """
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from clss import metrics as M
    from clss.config import TrainConfig
    from clss.engine.trainer import load_data

    out = Path(out)
    scores: dict[tuple[str, str, str, str], dict[int, float]] = {}
    for run in runs:
        if run.method != BASELINE or run_state(out / run.run_dir) != "finished":
            continue
        rundir = RunDir.existing(out / run.run_dir)
        cfg = TrainConfig.from_dict(rundir.read_config())
        data = load_data(cfg)
        train_x = _reference_inputs(data.train)
        if train_x is None:
            return {}, ("the classical references need tabular inputs or small in-memory images; this "
                        "dataset's images are files")
        labeled = np.asarray(json.loads((rundir.path / RunDir.SPLITS).read_text())["labeled"], dtype=np.int64)
        x, y = train_x[labeled], data.train.targets[labeled].astype(np.float64)
        models = {"ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
                  "gbr": HistGradientBoostingRegressor(random_state=run.seed)}
        for name, model in models.items():
            model.fit(x, y)
            for split in splits:
                ds = getattr(data, split)
                truth = ds.targets.astype(np.float64)
                pred = model.predict(_reference_inputs(ds))
                for metric in metrics:
                    value = float(getattr(M, metric)(truth, pred))
                    scores.setdefault((name, run.setting, split, metric), {})[run.seed] = value
    return scores, ""


#: In-memory images with at most this many values each are given to the references as flat pixel vectors.
REFERENCE_PIXELS = 4096


def _reference_inputs(ds: Any) -> np.ndarray | None:
    """float64 ``[n, d]`` inputs for the classical references: a table's features, the raw pixels of small
    in-memory images, else None (image files)."""
    from clss.data.dataset import TabularDataset
    from clss.data.images import ArrayImageDataset

    if isinstance(ds, TabularDataset):
        return ds.x.astype(np.float64)
    if isinstance(ds, ArrayImageDataset) and ds.images[0].numel() <= REFERENCE_PIXELS:
        return ds.images.reshape(len(ds.images), -1).numpy().astype(np.float64)
    return None


@dataclass(frozen=True)
class Verdict:
    """The comparison in one sentence per label setting, and the method it singles out (None: none beats
    the baseline clearly)."""

    setting: str
    text: str
    best: str | None


def _relative(values: dict[int, float], baseline: dict[int, float], lower: bool) -> Paired:
    """Per-seed improvement over the baseline in percent of the baseline (positive = better)."""
    seeds = sorted(set(values) & set(baseline))
    sign = -1.0 if lower else 1.0
    rel = {s: sign * 100 * (values[s] - baseline[s]) / abs(baseline[s]) for s in seeds if baseline[s] != 0}
    return paired_difference(rel, dict.fromkeys(rel, 0.0), lower_is_better=False)


def verdict(values: dict[tuple[str, str, str], dict[int, float]], methods: Sequence[str], setting: str,
            label: str, metric: str, split: str, references: dict[tuple[str, str, str, str], dict[int, float]]
            | None = None) -> Verdict:
    """A plain verdict for one label setting: the method with the largest mean improvement over
    ``supervised`` whose 95 % interval excludes zero ("gclss improves MAE by 4.1 % ± 1.2 % over supervised
    on validation (5/5 seeds)"), else the best mean with its interval and "no method beats supervised
    clearly here"; plus a line when a classical reference beats every trained method on average. The fully
    supervised upper bound (a method with ``all_labels``) sees more labels than the others: it is no
    candidate, and it is left out of both."""
    from clss.methods import METHODS

    methods = [m for m in methods if not (m in METHODS and METHODS[m].all_labels)]
    lower = metric in LOWER_IS_BETTER
    name = metric.upper()
    where = {"val": "validation", "test": "test"}[split]
    base = values.get((BASELINE, setting, metric), {})
    ranked = []
    for method in methods:
        if method == BASELINE or not base:
            continue
        rel = _relative(values.get((method, setting, metric), {}), base, lower)
        if rel.n:
            ranked.append((rel.mean, method, rel))
    ranked.sort(key=lambda t: t[0], reverse=True)
    clear = [(m, p) for _, m, p in ranked if p.n >= 2 and p.low > 0]
    if clear:
        method, p = clear[0]
        text = (f"{method} improves {name} by {p.mean:.1f} % ± {(p.high - p.low) / 2:.1f} % over {BASELINE} "
                f"on {where} at {label} labels ({p.wins}/{p.n} seeds better; 95 % t-interval)")
        best: str | None = method
    elif ranked and ranked[0][0] > 0:
        _, method, p = ranked[0]
        interval = (f"its 95 % t-interval [{p.low:+.1f}, {p.high:+.1f}] % includes no change" if p.n >= 2
                    else "one seed: no interval")
        text = (f"no method beats {BASELINE} clearly on {where} at {label} labels: the best, {method}, "
                f"improves {name} by {p.mean:.1f} % on average, but {interval} ({p.wins}/{p.n} seeds "
                "better)")
        best = None
    else:
        text = f"no method beats {BASELINE} on {where} at {label} labels ({name}, mean over seeds)"
        best = None
    if references:
        trained = [_mean_std(values.get((m, setting, metric), {}))[0] for m in methods]
        trained = [v for v in trained if math.isfinite(v)]
        for ref in REFERENCES:
            mean = _mean_std(references.get((ref, setting, split, metric), {}))[0]
            if trained and math.isfinite(mean) and (mean < min(trained) if lower else mean > max(trained)):
                text += (f"; {ref} on the labelled rows alone ({_fmt(mean)}) beats every trained method "
                         f"on average")
                break
    return Verdict(setting, text, best)


def labelled_loss_note(runs: Sequence[GridRun]) -> str:
    """A sentence naming the methods whose labelled loss differs from ``supervised``'s (regression loss and
    labelled contrastive term with its weight, defaults included), or ``""`` when all agree: a difference to
    supervised may then come from the labelled loss rather than from the unlabelled rows."""
    from clss.methods import METHODS

    def loss_of(config: dict[str, Any]) -> str:
        name = config["method"]
        p = METHODS[name].Params.from_dict(config.get("method_params"), name).to_dict()
        term = p.get("contrastive")
        if term in (None, "none"):
            return f"{p.get('regression_loss', 'mse')} alone"
        return f"{p.get('regression_loss', 'mse')} + {term} x {p.get('contrastive_weight', 1.0):g}"

    losses = {r.method: loss_of(r.config) for r in runs}
    base = losses.get(BASELINE)
    differ = sorted({m for m, v in losses.items() if base is not None and v != base})
    if not differ:
        return ""
    groups: dict[str, list[str]] = {}
    for m in differ:
        groups.setdefault(losses[m], []).append(m)
    others = "; ".join(f"{', '.join(ms)}: {loss}" for loss, ms in groups.items())
    return (f"the labelled loss differs from {BASELINE}'s ({base}): {others}. Part of a difference to "
            f"{BASELINE} may come from that rather than from the unlabelled rows; compare at the same "
            "labelled loss with --set method_params.contrastive=none (or the same term for every method)")


def write_comparison(table: Table, out: str | Path, runs: Sequence[GridRun], *,
                     splits: Sequence[str] = ("val",), references: bool = True, figure: bool = True
                     ) -> dict[str, Any]:
    """Write ``compare.md``, ``compare.csv`` (one line per method or reference, setting, split and metric:
    mean, std, seeds, paired difference to supervised and its interval, wins/losses), ``compare.json`` (the
    same and the verdicts) and ``compare.png`` into ``out`` from the finished runs. ``splits``: ``("val",)``
    by default; add ``"test"`` to report the test split too (the verdicts use the first). Returns the paths
    and the verdicts."""
    out = Path(out)
    methods = list(dict.fromkeys(r.method for r in runs))
    settings = list(dict.fromkeys(r.setting for r in runs))
    seeds = sorted({r.seed for r in runs})
    refs, ref_note = reference_scores(out, runs, table.metrics, splits) if references else ({}, "")
    records: list[dict[str, Any]] = []
    unfinished: dict[str, str] = {}
    values_by_split = {}
    for split in splits:
        values, unfinished = collect_results(out, runs, table.metrics, split)
        values_by_split[split] = values
        for metric in table.metrics:
            lower = metric in LOWER_IS_BETTER
            for setting in settings:
                base = values.get((BASELINE, setting, metric), {})
                entries = [(m, "method", values.get((m, setting, metric), {})) for m in methods]
                entries += [(r, "reference", refs.get((r, setting, split, metric), {})) for r in REFERENCES
                            if (r, setting, split, metric) in refs]
                for name, kind, vals in entries:
                    mean, std, n = _mean_std(vals)
                    paired = (paired_difference(vals, base, lower_is_better=lower)
                              if name != BASELINE and base and vals else None)
                    records.append({"split": split, "metric": metric, "setting": setting,
                                    "labeled": table.column(setting).label, "name": name, "kind": kind,
                                    "n_seeds": n, "mean": mean, "std": std, "paired": paired,
                                    "values": {str(s): v for s, v in sorted(vals.items())}})
    primary = table.metrics[0]
    verdicts = [verdict(values_by_split[splits[0]], methods, s, table.column(s).label, primary, splits[0],
                        refs) for s in settings]
    loss_note = labelled_loss_note(runs)
    paths = {"md": out / "compare.md", "csv": out / "compare.csv", "json": out / "compare.json"}
    atomic_write_text(paths["csv"], _csv(records))
    atomic_write_text(paths["json"], json.dumps(_finite({
        "dataset": table.dataset, "methods": methods, "settings": [table.column(s).label for s in settings],
        "seeds": seeds, "splits": list(splits), "metrics": table.metrics, "reference_note": ref_note,
        "labelled_loss_note": loss_note,
        "verdicts": [{"labeled": table.column(v.setting).label, "best": v.best, "text": v.text}
                     for v in verdicts],
        "unfinished": unfinished,
        "records": [{**r, "paired": None if r["paired"] is None else dataclasses.asdict(r["paired"])}
                    for r in records]}), indent=1, allow_nan=False) + "\n")
    atomic_write_text(paths["md"], _markdown(table, records, verdicts, seeds, splits, runs, ref_note,
                                             unfinished, loss_note))
    if figure:
        paths["figure"] = _plot(table, records, settings, splits[0], out / "compare.png", len(seeds))
    return {"paths": paths, "verdicts": verdicts, "labelled_loss_note": loss_note}


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv(records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["split", "metric", "labeled", "name", "kind", "n_seeds", "mean", "std", "vs_supervised_mean",
                "vs_supervised_low", "vs_supervised_high", "wins", "losses", "ties"])
    for r in records:
        p: Paired | None = r["paired"]
        w.writerow([r["split"], r["metric"], r["labeled"], r["name"], r["kind"], r["n_seeds"],
                     *(("" if not math.isfinite(v) else repr(v)) for v in (r["mean"], r["std"])),
                     *(("", "", "", "", "", "") if p is None else
                       (*(("" if not math.isfinite(v) else repr(v)) for v in (p.mean, p.low, p.high)),
                        p.wins, p.losses, p.ties))])
    return buf.getvalue()


def _markdown(table: Table, records: list[dict[str, Any]], verdicts: list[Verdict], seeds: list[int],
              splits: Sequence[str], runs: Sequence[GridRun], ref_note: str, unfinished: dict[str, str],
              loss_note: str = "") -> str:
    steps = sorted({int(r.config["steps"]) for r in runs})
    lines = [f"# {table.dataset}: does unlabelled data help?", "",
             f"Generated by `clss compare` on {datetime.now(UTC).date().isoformat()}: seeds "
             f"{', '.join(map(str, seeds))} (each fixes the split and the initialisation, the same for every "
             f"method), {'/'.join(map(str, steps))} steps per run, the checkpoint with the best validation "
             f"{runs[0].config.get('select_metric', 'mae')}.", "", "## Verdict", ""]
    lines += [f"- {v.text}." for v in verdicts] + [""]
    if loss_note:
        lines += [f"Note: {loss_note}.", ""]
    if ref_note:
        lines += [f"References: {ref_note}.", ""]
    for split in splits:
        where = {"val": "Validation", "test": "Test"}[split]
        for metric in table.metrics:
            arrow = "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
            lines += [f"## {where} {metric.upper()} ({arrow})", "",
                      "| | labelled | mean ± std (seeds) | paired difference to supervised: mean [95 % "
                      "t-interval], wins/losses |", "|---|---|---|---|"]
            for r in records:
                if r["split"] != split or r["metric"] != metric:
                    continue
                name = f"`{r['name']}`" if r["kind"] == "method" else f"{r['name']} (reference)"
                std = "" if not math.isfinite(r["std"]) else f" ± {_fmt(r['std'], r['mean'])}"
                paired = "baseline" if r["name"] == BASELINE else _paired_text(r["paired"])
                lines.append(f"| {name} | {r['labeled']} | {_fmt(r['mean'])}{std} ({r['n_seeds']}) | "
                             f"{paired} |")
            lines.append("")
    lines += ["References are fitted on the labelled rows of each seed alone: "
              + "; ".join(_REFERENCE_LABELS[r] for r in REFERENCES) + ".", ""]
    if unfinished:
        lines += ["## Runs without a result", ""]
        lines += [f"- {name}: {state}" for name, state in sorted(unfinished.items())] + [""]
    return "\n".join(lines)


def _plot(table: Table, records: list[dict[str, Any]], settings: list[str], split: str, path: Path,
          n_seeds: int) -> Path:
    """One panel per label setting: the primary metric's mean ± std of every method and reference, the
    supervised baseline's mean as a dashed line."""
    from matplotlib.figure import Figure

    metric = table.metrics[0]
    fig = Figure(figsize=(max(5.0, 0.7 * len({r["name"] for r in records}) + 1.5) * len(settings) / 1.3, 4.4),
                 layout="constrained")
    axes = fig.subplots(1, len(settings), squeeze=False)[0]
    where = {"val": "validation", "test": "test"}[split]
    for ax, setting in zip(axes, settings, strict=True):
        rs = [r for r in records if r["split"] == split and r["metric"] == metric and r["setting"] == setting]
        x = np.arange(len(rs))
        means = np.array([r["mean"] for r in rs], dtype=float)
        stds = np.nan_to_num(np.array([r["std"] for r in rs], dtype=float))
        colors = ["0.55" if r["kind"] == "reference" else "C0" if r["name"] == BASELINE else "C1" for r in rs]
        ax.bar(x, means, yerr=stds, color=colors, capsize=3)
        base = [r["mean"] for r in rs if r["name"] == BASELINE]
        if base and math.isfinite(base[0]):
            ax.axhline(base[0], color="C0", linestyle="--", linewidth=1, label=f"{BASELINE} (mean)")
            ax.legend(fontsize="x-small")
        ax.set_xticks(x, [r["name"] for r in rs], rotation=45, ha="right")
        ax.set_xlabel(f"method ({table.column(setting).label} labelled; grey: references)")
        better = "lower" if metric in LOWER_IS_BETTER else "higher"
        ax.set_ylabel(f"{where} {metric.upper()} ({better} is better)")
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"{table.dataset}: mean ± std over {n_seeds} seed{'s' if n_seeds != 1 else ''}, "
                 f"{datetime.now(UTC).date().isoformat()}", fontsize="medium")
    fig.savefig(path, dpi=110)
    return path
