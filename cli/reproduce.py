"""``clss reproduce TABLE``: a thin command over :mod:`clss.reproduce`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clss_cli.console import UserError, console, fail_cleanly

if TYPE_CHECKING:
    from clss.reproduce import GridRun, Table
    from clss.reproduce.plan import Estimate


def _names(values: tuple[str, ...]) -> list[str]:
    """``--methods a,b --methods c`` -> ``[a, b, c]``."""
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _seeds(given: tuple[str, ...], extra: tuple[str, ...]) -> list[int] | None:
    """``--seeds 0 1 2``, ``--seeds 0,1,2`` or ``--seeds 0 --seeds 1``; None when not given."""
    if extra and not given:
        raise click.UsageError(f"unexpected argument {extra[0]!r}: give one TABLE (seeds go after --seeds)")
    items = _names(given) + list(extra)
    seeds = []
    for item in items:
        if not item.isdigit():
            raise click.BadParameter(f"{item!r} is not an integer >= 0 (e.g. --seeds 0 1 2)",
                                     param_hint="'--seeds'")
        seeds.append(int(item))
    return seeds or None


@click.command("reproduce")
@click.argument("table")
@click.argument("more_seeds", nargs=-1, metavar="")
@click.option("--seeds", "seed_items", multiple=True, metavar="K [K ...]",
              help="Seeds of every cell (default: the table's), e.g. --seeds 0 1 2.")
@click.option("--out", type=click.Path(path_type=Path),
              help="Folder of the grid: one run directory per cell and seed, the report.")
@click.option("--methods", multiple=True,
              help="Rows to run, comma-separated row names (a row's method unless it names itself; "
                   "default: all).")
@click.option("--settings", multiple=True,
              help="Columns to run, comma-separated (names or labels; default all).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs at a time, each its own process with cores/jobs torch threads.")
@click.option("--steps", type=click.IntRange(min=1),
              help="Training steps of every run (overrides the table).")
@click.option("--quick", is_flag=True,
              help="The table's quick profile (fewer columns and steps; see its file).")
@click.option("--data-root", type=click.Path(path_type=Path), help="Image tables: the folder of the dataset.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Configuration override for every run, e.g. --set device=cuda.")
@click.option("--dry-run", is_flag=True, help="Print the plan and its estimated cost; write nothing.")
@click.option("--emit", type=click.Choice(["slurm"]),
              help="Write the grid as a SLURM job array (OUT/slurm/) instead of running it.")
@click.option("--report-only", is_flag=True,
              help="Only (re)build the report from the finished runs in --out.")
@click.option("--no-progress", is_flag=True, help="Log lines instead of a progress bar.")
@fail_cleanly
def reproduce_command(table: str, more_seeds: tuple[str, ...], seed_items: tuple[str, ...], out: Path | None,
                      methods: tuple[str, ...], settings: tuple[str, ...], jobs: int, steps: int | None,
                      quick: bool, data_root: Path | None, sets: tuple[str, ...], dry_run: bool,
                      emit: str | None, report_only: bool, no_progress: bool) -> None:
    """Reproduce a published table: train its grid (methods x settings x seeds) and write table.md,
    table.csv and figure.png with the paper's numbers beside ours.

    TABLE is a table .yaml file or a shipped table:

    \b
      operator-sde, utkface, utkface-rankup, agedb-dir,
      rnc-agedb-dir, supremix-agedb-dir, cloc-adience,
      conord-agedb-dir, conord-adience, conord-morph2,
      conord-clap2015, conord-utkface-coral, conord-cacd

    Finished runs are skipped and interrupted ones resumed, so rerunning the same command continues.

    Example: clss reproduce operator-sde --seeds 0 1 2 --jobs 2 --out runs/table
    """
    from clss.config import parse_overrides
    from clss.reproduce import emit_slurm, load_table, plan_table, run_grid, write_report
    from clss.reproduce.plan import estimate_cost

    seeds = _seeds(seed_items, more_seeds)
    if sum((dry_run, emit is not None, report_only)) > 1:
        raise click.UsageError("--dry-run, --emit and --report-only exclude each other; give one")
    if out is None and not dry_run:
        raise click.UsageError("--out DIR is required (the folder of the grid's runs and report)")
    tbl = load_table(table)
    runs = plan_table(tbl, seeds=seeds, methods=_names(methods) or None, settings=_names(settings) or None,
                      quick=quick, steps=steps, overrides=parse_overrides(sets), data_root=data_root,
                      check_data=not dry_run)
    note = tbl.quick.get("note", "quick profile") if quick else ""
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder for the grid's run directories")
    if dry_run:
        _print_plan(tbl, runs, estimate_cost(tbl, runs, out), out)
        return
    meta = {"table": str(tbl.path), "name": tbl.name, "quick": quick, "note": note}
    if report_only:
        paths = write_report(tbl, out, runs, note=note)
        console.print(f"report: [bold]{paths['md']}[/bold], {paths['csv'].name}, {paths['figure'].name}")
        return
    if emit == "slurm":
        costs = estimate_cost(tbl, runs, out)
        known = [e.seconds for e in costs.values() if e.seconds is not None]
        report = _report_command(table, out, seeds, methods, settings, quick, steps, data_root, sets)
        script, manifest = emit_slurm(out, runs, report_command=report, job_name=f"clss-{tbl.name}",
                                      meta=meta, time_limit_s=max(known) if known else None)
        console.print(f"SLURM array of {len(runs)} runs: [bold]{script}[/bold] (tasks: {manifest})")
        console.print(f"submit: sbatch {shlex.quote(str(script))}")
        console.print(f"then build the report: {report}")
        return
    try:
        result = run_grid(out, runs, jobs=jobs, meta=meta, progress=not no_progress)
    except KeyboardInterrupt:
        click.echo("interrupted: the runs under way saved a checkpoint; rerun the same command to continue",
                   err=True)
        click.get_current_context().exit(130)
    paths = write_report(tbl, out, runs, note=note)
    console.print(f"{len(result.ran)} runs trained, {len(result.skipped)} already done; report: "
                  f"[bold]{paths['md']}[/bold], {paths['csv'].name}, {paths['figure'].name}")
    if result.failed:
        lines = "; ".join(f"{name} (log: {log})" for name, log in result.failed.items())
        raise click.ClickException(f"{len(result.failed)} run(s) failed: {lines}; fix the cause and rerun "
                                   f"the same command (finished runs are kept)")


def _report_command(table: str, out: Path, seeds: list[int] | None, methods: tuple[str, ...],
                    settings: tuple[str, ...], quick: bool, steps: int | None, data_root: Path | None,
                    sets: tuple[str, ...]) -> str:
    """The ``clss reproduce ... --report-only`` command for the same grid."""
    args = ["clss", "reproduce", table, "--out", str(out.resolve())]
    if seeds:
        args += ["--seeds", ",".join(map(str, seeds))]
    args += [a for m in methods for a in ("--methods", m)] + [a for s in settings for a in ("--settings", s)]
    args += ["--quick"] if quick else []
    args += ["--steps", str(steps)] if steps else []
    args += ["--data-root", str(data_root.resolve())] if data_root else []
    args += [a for s in sets for a in ("--set", s)]
    return shlex.join([*args, "--report-only"])


def _print_plan(tbl: Table, runs: list[GridRun], costs: dict[str, Estimate], out: Path | None) -> None:
    """One plain line per (method, setting): seeds, steps, runs done and to run, estimated time and its basis
    (plain text: complete at any width and when piped)."""
    from clss.reproduce import run_state

    click.echo(f"{tbl.name}: {len(runs)} runs; selection: {tbl.selection}")
    groups: dict[tuple[str, str], list] = {}
    for run in runs:
        groups.setdefault((run.method, run.setting), []).append(run)
    header = ("method", "setting", "seeds", "steps", "done", "to run", "estimated", "step time")
    lines = [header]
    total, unknown = 0.0, 0
    for (method, setting), members in groups.items():
        states = [run_state(out / r.run_dir) if out is not None else "new" for r in members]
        seconds = [costs[r.name].seconds for r in members]
        todo = sum(s in ("new", "partial") for s in states)
        total += sum(s for s in seconds if s is not None)
        unknown += sum(s is None for s in seconds)
        lines.append((method, setting, ",".join(str(r.seed) for r in members),
                      str(members[0].config["steps"]), str(len(members) - todo), str(todo),
                      "unknown" if None in seconds else _duration(sum(s for s in seconds if s is not None)),
                      next((costs[r.name].basis for r, st in zip(members, states, strict=True)
                            if st in ("new", "partial")), "done")))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    if unknown == len(runs):
        click.echo("estimated total: unknown (the table has no step times for these runs: a cost block gives "
                   "them). Dry run: nothing was written.")
        return
    click.echo(f"estimated total: {_duration(total)} of one process"
               + (f" ({unknown} runs of unknown cost)" if unknown else "")
               + "; divide by --jobs for the wall time. Dry run: nothing was written.")


def _duration(seconds: float) -> str:
    minutes = seconds / 60
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
