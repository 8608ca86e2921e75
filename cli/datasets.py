"""``clss datasets``: the built-in datasets, their sizes, presets and whether they are on this machine."""

from __future__ import annotations

import json
from pathlib import Path

import click

from clss_cli.console import console, fail_cleanly


@click.command("datasets")
@click.option("--data-dir", type=click.Path(path_type=Path),
              help="Where to look for the published operator-sde files (as clss train --data-dir).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@fail_cleanly
def datasets_command(data_dir: Path | None, as_json: bool) -> None:
    """List the datasets clss train accepts (--dataset NAME)."""
    from clss.data.catalog import describe_datasets

    entries = describe_datasets(data_dir)
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    from rich.markup import escape

    for e in entries:
        rows = ", ".join(f"{k} {v}" for k, v in e.rows.items()) or "from the file"
        preset = "; ".join(f"{k}={_flat(v)}" for k, v in e.preset.items()) or "none (the defaults)"
        where = {True: "yes, ", False: "no, ", None: ""}[e.available] + e.location
        console.print(f"[bold cyan]{escape(e.name)}[/bold cyan]  {escape(e.description)}")
        console.print(f"  rows      {rows}; inputs {escape(e.inputs)}; target {escape(e.target)}")
        console.print(f"  preset    {escape(preset)}")
        for method, extra in e.method_presets.items():
            console.print(f"  {escape(method)} also  {escape(_flat(extra))}")
        console.print(f"  available {escape(where)}")


def _flat(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flat(v)}" for k, v in value.items()) + "}"
    return str(value)
