"""``clss train``, ``clss eval`` and ``clss methods``: thin commands over :mod:`clss.engine`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from clss_cli.console import console, fail_cleanly


@click.command("train")
@click.option("--dataset", help="diabetes (built in), operator-sde, or csv:PATH.")
@click.option("--target", help="Target column for csv:PATH datasets.")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the dataset's files.")
@click.option("--run", "run_index", type=int, help="operator-sde: which 1000-row run (0-9).")
@click.option("--method", help="Training method (see `clss methods`).")
@click.option("--unlabeled-loss", type=click.Choice(["rank", "rnc", "conord", "supremix", "oe", "ranksim"]),
              help="clss/gclss: the loss fed the pseudo-targets (rank = the papers' L_UR).")
@click.option("--labeled", help="Labelled rows: 10%, 0.1 or 250.")
@click.option("--unlabeled", help="Unlabelled rows: rest (default), a fraction, a count, or paper.")
@click.option("--seed", type=int)
@click.option("--split-seed", type=int, help="Seed of the labelled/unlabelled split (default: --seed).")
@click.option("--steps", type=int, help="Training iterations.")
@click.option("--batch-size", type=int)
@click.option("--unlabeled-batch-size", type=int)
@click.option("--lr", type=float)
@click.option("--eval-every", type=int)
@click.option("--device", help="auto, cpu or cuda.")
@click.option("--threads", type=int, help="torch CPU threads (default: auto, 1 for small models).")
@click.option("--val-protocol", type=click.Choice(["holdout", "test"]),
              help="test reproduces the official code's (optimistic) selection on the test set.")
@click.option("--standardize", type=click.Choice(["xy", "y", "x", "none"]),
              help="Standardise inputs and/or target on training rows (operator-sde preset: y).")
@click.option("--config", "config_file", type=click.Path(path_type=Path),
              help="YAML file of configuration keys; flags override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Override any key, e.g. --set method_params.rank_weight=0.1 --set model.dropout=0.2.")
@click.option("--out", type=click.Path(path_type=Path), help="Run directory (new or empty).")
@click.option("--resume", "resume_dir", type=click.Path(path_type=Path),
              help="Continue the interrupted run in this directory.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@fail_cleanly
def train_command(dataset: str | None, target: str | None, data_dir: Path | None, run_index: int | None,
                  method: str | None, unlabeled_loss: str | None, labeled: str | None,
                  unlabeled: str | None, seed: int | None,
                  split_seed: int | None, steps: int | None, batch_size: int | None,
                  unlabeled_batch_size: int | None, lr: float | None, eval_every: int | None,
                  device: str | None, threads: int | None, val_protocol: str | None,
                  standardize: str | None, config_file: Path | None,
                  sets: tuple[str, ...], out: Path | None, resume_dir: Path | None,
                  no_progress: bool) -> None:
    """Train a (semi-supervised) regression method and write a run directory.

    Example: clss train --dataset operator-sde --method gclss --labeled 20% --seed 0 --out runs/x
    """
    from clss.config import load_yaml, merge_dicts, parse_overrides, resolve_config
    from clss.engine.trainer import train

    if resume_dir is not None:
        result = train({}, resume_dir, resume=True)
    else:
        if out is None:
            raise click.UsageError("--out RUN_DIR is required (or --resume RUN_DIR)")
        flags: dict[str, Any] = {
            "dataset": dataset, "target": target, "data_dir": None if data_dir is None else str(data_dir),
            "run": run_index, "method": method, "labeled": labeled, "unlabeled": unlabeled, "seed": seed,
            "split_seed": split_seed, "steps": steps, "batch_size": batch_size,
            "unlabeled_batch_size": unlabeled_batch_size, "eval_every": eval_every, "device": device,
            "threads": threads, "val_protocol": val_protocol, "standardize": standardize}
        if lr is not None:
            flags["optimizer"] = {"lr": lr}
        if unlabeled_loss is not None:
            flags["method_params"] = {"unlabeled_loss": unlabeled_loss}
        if no_progress:
            flags["progress"] = False
        file_values = load_yaml(config_file) if config_file is not None else {}
        cfg = resolve_config(merge_dicts(file_values, parse_overrides(sets)), flags)
        result = train(cfg, out)
    _print_summary(result.run_dir, result.summary)


def _print_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"{summary['method']} on {summary['dataset']}: {summary['labeled']} labelled, "
                        f"{summary['unlabeled']} unlabelled, {summary['steps']} steps")
    table.add_column("split")
    for key in ("mae", "rmse", "r2", "spearman"):
        table.add_column(key, justify="right")
    for split in ("val", "test"):
        m = summary[split]
        table.add_row(split, *(f"{m[k]:.4f}" for k in ("mae", "rmse", "r2", "spearman")))
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
def methods_command() -> None:
    """List the training methods and their default hyper-parameters."""
    from rich.table import Table

    from clss.methods import list_methods

    table = Table(title="clss methods")
    table.add_column("method", style="bold cyan")
    table.add_column("semi-supervised")
    table.add_column("description")
    table.add_column("parameters (defaults)")
    for info in list_methods():
        params = ", ".join(f"{k}={v}" for k, v in info.params.items())
        table.add_row(info.name, "yes" if info.semi_supervised else "no", info.description, params)
    console.print(table)
