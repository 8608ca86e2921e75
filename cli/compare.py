"""``clss compare``: a thin command over :mod:`clss.reproduce.compare` and the grid runner."""

from __future__ import annotations

from pathlib import Path

import click

from clss_cli.console import UserError, console, fail_cleanly
from clss_cli.reproduce import _names


@click.command("compare")
@click.option("--dataset", required=True,
              help="Any --dataset value of clss train: a built-in name, csv:FILE, image-csv:FILE.")
@click.option("--target", help="csv: the target column (default: the last column).")
@click.option("--methods", multiple=True, default=("supervised", "meanteacher", "clss", "gclss"),
              show_default=True,
              help="Comma-separated registry names (clss methods); supervised is always run.")
@click.option("--labeled", multiple=True, default=("10%",), show_default=True,
              help="Label settings, comma-separated: a percentage, a fraction or a count (1/30: 3.33%).")
@click.option("--seeds", type=click.IntRange(min=1), default=3, show_default=True,
              help="Number of seeds (0 .. N-1); each fixes the split and the initialisation of every method.")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder of the runs (one per method, setting and seed) and the report.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at a time, each its own process.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Training steps of every run (default: the dataset preset's).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Configuration override for every run, e.g. --set model.dropout=0.2.")
@click.option("--test", "with_test", is_flag=True,
              help="Also report the test split (the verdict still uses validation).")
@click.option("--no-references", is_flag=True, help="Skip the ridge and gradient-boosting references.")
@click.option("--report-only", is_flag=True,
              help="Only (re)build the report from the finished runs in --out.")
@click.option("--no-progress", is_flag=True, help="Log lines instead of a progress bar.")
@fail_cleanly
def compare_command(dataset: str, target: str | None, methods: tuple[str, ...], labeled: tuple[str, ...],
                    seeds: int, out: Path, jobs: int, steps: int | None, sets: tuple[str, ...],
                    with_test: bool, no_references: bool, report_only: bool, no_progress: bool) -> None:
    """Tell whether the unlabelled rows help on your data: train every method with the same splits and
    budget, and report on the validation split the mean ± std of each, the paired difference to supervised
    per seed with a 95 % interval, wins/losses, ridge and gradient boosting fitted on the labelled rows, a
    verdict and a figure (compare.md, compare.csv, compare.json, compare.png).

    Finished runs are skipped and interrupted ones resumed: rerun the same command to continue.

    Example: clss compare --dataset csv:data.csv --target y --methods supervised,gclss --labeled 10% --seeds 5
    --out runs/cmp
    """
    from clss.config import parse_overrides
    from clss.reproduce import plan_table, run_grid
    from clss.reproduce.compare import compare_table, write_comparison

    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the runs and the report")
    overrides = parse_overrides(sets)
    config = {"target": target} if target is not None else {}
    table = compare_table(dataset, _names(methods), _names(labeled), seeds=list(range(seeds)), config=config)
    runs = plan_table(table, steps=steps, overrides=overrides)
    failed: dict[str, str] = {}
    if not report_only:
        try:
            result = run_grid(out, runs, jobs=jobs, meta={"compare": dataset}, progress=not no_progress)
        except KeyboardInterrupt:
            click.echo("interrupted: the runs under way saved a checkpoint; rerun the same command to "
                       "continue", err=True)
            click.get_current_context().exit(130)
        failed = result.failed
    report = write_comparison(table, out, runs, splits=("val", "test") if with_test else ("val",),
                              references=not no_references)
    for v in report["verdicts"]:
        console.print(f"[bold]{v.text}[/bold]", highlight=False)
    if report["labelled_loss_note"]:
        console.print(f"note: {report['labelled_loss_note']}", highlight=False)
    paths = report["paths"]
    console.print(f"report: [bold]{paths['md']}[/bold], {paths['csv'].name}, {paths['json'].name}"
                  + (f", {paths['figure'].name}" if "figure" in paths else ""))
    if failed:
        lines = "; ".join(f"{name} (log: {log})" for name, log in failed.items())
        raise click.ClickException(f"{len(failed)} run(s) failed: {lines}; fix the cause and rerun the same "
                                   f"command (finished runs are kept)")
