"""``clss train``, ``clss eval`` and ``clss methods``: thin commands over :mod:`clss.engine`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click

from clss_cli.console import UserError, console, fail_cleanly


class _PositiveIntOrAll(click.ParamType):
    """A batch size: a positive integer, or ``all`` (every row in one batch)."""

    name = "INTEGER|all"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip()
        if text == "all":
            return text
        if text.lstrip("+").isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is not a positive integer or 'all'", param, ctx)


class _WorkersOrAuto(click.ParamType):
    """DataLoader workers: an integer >= 0, or ``auto``."""

    name = "INTEGER|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        text = str(value).strip()
        if text == "auto":
            return text
        if text.lstrip("+").isdigit():
            return int(text)
        self.fail(f"{value!r} is not an integer >= 0 or 'auto'", param, ctx)


class _PositiveFloat(click.ParamType):
    """A finite float > 0 (a learning rate)."""

    name = "FLOAT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(x) and x > 0):
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return x


@click.command("train")
@click.option("--dataset", help="diabetes or digits-rotation (built in), operator-sde, csv:PATH or "
                                "image-csv:PATH.")
@click.option("--target", help="Target column for csv:PATH datasets.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the dataset's files.")
@click.option("--data-root", type=click.Path(path_type=Path),
              help="Image datasets: folder the image paths are resolved under (image-csv default: the CSV "
                   "file's folder).")
@click.option("--run", "run_index", type=click.IntRange(min=0),
              help="operator-sde: which 1000-row run (0-9).")
@click.option("--method", help="Training method (see `clss methods`).")
@click.option("--unlabeled-loss", type=click.Choice(["rank", "rnc", "conord", "supremix", "oe", "ranksim"]),
              help="clss/gclss: the loss fed the pseudo-targets (rank = the papers' L_UR).")
@click.option("--labeled", help="Labelled rows: 10%, 0.1, 250 or all (default: every row with a target when "
                                "some target cells are empty, else 20%).")
@click.option("--unlabeled", help="Unlabelled rows: rest (default), a fraction, a count, or paper.")
@click.option("--seed", type=click.IntRange(min=0))
@click.option("--split-seed", type=click.IntRange(min=0),
              help="Seed of the labelled/unlabelled split (default: --seed).")
@click.option("--steps", type=click.IntRange(min=1), help="Training iterations (>= 1).")
@click.option("--batch-size", type=_PositiveIntOrAll(),
              help="Labelled rows per step (>= 1), or 'all' for every labelled row.")
@click.option("--unlabeled-batch-size", type=_PositiveIntOrAll(),
              help="Unlabelled rows per step (>= 1), or 'all'.")
@click.option("--lr", type=_PositiveFloat(), help="Learning rate (> 0).")
@click.option("--eval-every", type=click.IntRange(min=0),
              help="Validate every N steps (0: no validation, keep the final weights).")
@click.option("--device", help="auto, cpu or cuda.")
@click.option("--threads", type=click.IntRange(min=1),
              help="torch CPU threads (default: auto, one thread for small models).")
@click.option("--workers", type=_WorkersOrAuto(),
              help="Processes that decode and augment inputs (default auto: 0 for in-memory tables, up to "
                   "8 for image files); results do not depend on it.")
@click.option("--val-protocol", type=click.Choice(["holdout", "test"]),
              help="test reproduces the official code's (optimistic) selection on the test set.")
@click.option("--standardize", type=click.Choice(["xy", "y", "x", "none"]),
              help="Standardise inputs and/or target on training rows (operator-sde preset: y).")
@click.option("--features", help="CSV: feature columns, comma-separated (default: all but target and split).")
@click.option("--exclude", help="CSV: columns to leave out of the features, comma-separated.")
@click.option("--missing", type=click.Choice(["error", "drop", "mean", "median"]),
              help="CSV: missing feature cells (default error; empty target cells are unlabelled rows).")
@click.option("--categorical", type=click.Choice(["error", "onehot"]),
              help="CSV: text feature columns: error (default) or onehot.")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="YAML file of configuration keys; flags override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any key, e.g. --set method_params.rank_weight=0.1 --set model.dropout=0.2.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (new or empty).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path),
              help="Continue the run in this directory with its saved configuration; only --steps (extend), "
                   "--device, --threads, --workers and --no-progress may change it.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@fail_cleanly
def train_command(dataset: str | None, target: str | None, data_dir: Path | None, data_root: Path | None,
                  run_index: int | None,
                  method: str | None, unlabeled_loss: str | None, labeled: str | None,
                  unlabeled: str | None, seed: int | None,
                  split_seed: int | None, steps: int | None, batch_size: int | str | None,
                  unlabeled_batch_size: int | str | None, lr: float | None, eval_every: int | None,
                  device: str | None, threads: int | None, workers: int | str | None,
                  val_protocol: str | None,
                  standardize: str | None, features: str | None, exclude: str | None,
                  missing: str | None, categorical: str | None, config_file: Path | None,
                  sets: tuple[str, ...], out: Path | None, resume_dir: Path | None,
                  no_progress: bool) -> None:
    """Train a (semi-supervised) regression method and write a run directory.

    Example: clss train --dataset operator-sde --method gclss --labeled 20% --seed 0 --out runs/x

    Under torchrun (torchrun --nproc-per-node N -m clss train ...) the N processes train one run on the
    global batch together; rank 0 writes it and prints (docs/distributed.md).
    """
    from clss.config import load_yaml, merge_dicts, parse_overrides, resolve_config
    from clss.engine.ddp import stop_distributed
    from clss.engine.trainer import train

    ctx = click.get_current_context()
    ctx.call_on_close(stop_distributed)
    if resume_dir is not None:
        result = _run_interruptibly(ctx, lambda: train(None, resume_dir, resume=True,
                                                       overrides=_resume_overrides(ctx)))
        if result.already_finished and result.summary:
            click.echo(f"{resume_dir} already finished at step {result.summary['steps']}; pass --steps M "
                       f"(more than {result.summary['steps']}) to extend it")
    else:
        if out is None:
            raise click.UsageError("--out RUN_DIR is required (or --resume RUN_DIR)")
        flags: dict[str, Any] = {
            "dataset": dataset, "target": target, "data_dir": None if data_dir is None else str(data_dir),
            "data_root": None if data_root is None else str(data_root),
            "run": run_index, "method": method, "labeled": labeled, "unlabeled": unlabeled, "seed": seed,
            "split_seed": split_seed, "steps": steps, "batch_size": batch_size,
            "unlabeled_batch_size": unlabeled_batch_size, "eval_every": eval_every, "device": device,
            "threads": threads, "workers": workers, "val_protocol": val_protocol, "standardize": standardize,
            "features": features, "exclude": exclude, "missing": missing, "categorical": categorical}
        if lr is not None:
            flags["optimizer"] = {"lr": lr}
        if unlabeled_loss is not None:
            flags["method_params"] = {"unlabeled_loss": unlabeled_loss}
        if no_progress:
            flags["progress"] = False
        file_values = load_yaml(config_file) if config_file is not None else {}
        cfg = resolve_config(merge_dicts(file_values, parse_overrides(sets)), flags)
        result = _run_interruptibly(ctx, lambda: train(cfg, out))
    if result.summary:  # empty on the processes of a torchrun job other than rank 0
        _print_summary(result.run_dir, result.summary)


# Flags that may accompany --resume (the run keeps the rest of its config.yaml), by parameter name.
_RESUME_FLAGS = {"steps": "steps", "device": "device", "threads": "threads", "workers": "workers",
                 "no_progress": "progress"}


def _resume_overrides(ctx: click.Context) -> dict[str, Any]:
    """The allowed flags given with --resume as train() overrides; any other flag is a usage error."""
    from click.core import ParameterSource

    typed = (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)
    given = [p for p in ctx.command.params
             if p.name not in ("resume_dir", None) and ctx.get_parameter_source(p.name) in typed]
    refused = [p.opts[-1] for p in given if p.name not in _RESUME_FLAGS]
    if refused:
        allowed = ", ".join(f"--{name.replace('_', '-')}" for name in _RESUME_FLAGS)
        raise click.UsageError(f"--resume continues the run with its saved config.yaml, so "
                               f"{', '.join(refused)} cannot be combined with it (allowed: {allowed}); "
                               f"start a new run with --out for other settings")
    values = {_RESUME_FLAGS[p.name]: ctx.params[p.name] for p in given}
    if "progress" in values:
        values["progress"] = not values["progress"]
    return values


def _run_interruptibly(ctx: click.Context, run: Any) -> Any:
    """``run()``; Ctrl-C ends the command with one line (how to resume) and exit code 130."""
    from clss.engine import TrainingInterrupted

    try:
        return run()
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
    except KeyboardInterrupt:
        click.echo("interrupted before training started; nothing was written", err=True)
    ctx.exit(130)


def _print_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    from rich.table import Table

    # A short title: the table is narrower than a sentence, and rich would break it mid-phrase.
    console.print(f"{summary['method']} on {summary['dataset']}: {summary['labeled']} labelled and "
                  f"{summary['unlabeled']} unlabelled rows, {summary['steps']} steps")
    table = Table(title="metrics (original target units)")
    table.add_column("split")
    # and the method's own metrics where it reports them (an ordinal classifier's accuracy and kappa)
    keys = [k for k in ("mae", "rmse", "r2", "spearman", "accuracy", "qwk") if k in summary["val"]]
    for key in keys:
        table.add_column(key, justify="right")
    for split in ("val", "test"):
        m = summary[split]
        table.add_row(split, *(f"{m[k]:.4f}" for k in keys))
    console.print(table)
    console.print(f"run directory: [bold]{run_dir}[/bold] ({summary['seconds']:.1f} s)")


@click.command("eval")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--split", type=click.Choice(["train", "val", "test"]), default="test", show_default=True)
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
@fail_cleanly
def eval_command(run_dir: Path, split: str, checkpoint: str, as_json: bool) -> None:
    """Evaluate a run directory's weights on a split."""
    from clss.engine.trainer import evaluate_run

    if not run_dir.exists():
        raise UserError(f"no run directory at {run_dir}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is a file, not a run directory")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir} is not a run directory: it has no config.yaml (clss train --out "
                        f"{run_dir} writes one)")
    metrics = evaluate_run(run_dir, split, checkpoint=checkpoint)
    if as_json:
        click.echo(json.dumps(metrics, indent=2))
        return
    from rich.table import Table

    table = Table(title=f"{run_dir} ({checkpoint} weights) on {split}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in metrics.items():
        table.add_row(k, f"{v:.5g}")
    console.print(table)


@click.command("methods")
@click.argument("names", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Parameters of every method.")
def methods_command(names: tuple[str, ...], show_all: bool) -> None:
    """List the training methods, one line each; with NAMES (or --all), their parameters, defaults and
    accepted values.

    Example: clss methods gclss meanteacher. Set a parameter with --set method_params.NAME=VALUE (or a
    method_params mapping in --config).
    """
    from rich.table import Table
    from rich.text import Text

    from clss.methods import METHODS, list_methods
    from clss.schema import specs_of

    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise UserError(f"unknown method {unknown[0]!r}; available: {', '.join(METHODS)}")
    infos = list_methods()
    if not names and not show_all:
        listing = Table.grid(padding=(0, 2))
        listing.add_column(no_wrap=True, style="bold cyan")
        listing.add_column(no_wrap=True)
        listing.add_column(overflow="fold")
        for info in infos:
            kind = "semi-supervised" if info.semi_supervised else "labelled only"
            listing.add_row(info.name, kind, Text(info.description))
        console.print(listing)
        return
    # One parameter per row, its default and accepted values wrapped at spaces beside the name: complete
    # at any width and when piped (a table cell would cut them).
    for info in infos:
        if names and info.name not in names:
            continue
        kind = "semi-supervised" if info.semi_supervised else "labelled rows only"
        console.print(f"[bold cyan]{info.name}[/bold cyan] ({kind}): {info.description}", highlight=False)
        specs = specs_of(METHODS[info.name].Params)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, min_width=2 + max(map(len, info.params)))
        grid.add_column(overflow="fold")
        for key, default in info.params.items():
            shown = "null" if default is None else default
            grid.add_row(f"  {key}", Text(f"= {shown} ({specs[key].description()})"))
        console.print(grid)
        console.print()
