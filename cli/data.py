"""``clss data check``: verify a copy of a dataset against its manifest before training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from clss_cli.console import USER_ERROR, console, fail_cleanly

if TYPE_CHECKING:
    from clss.data.manifest import DataCheckReport


@click.group("data")
def data_group() -> None:
    """Check your copies of the papers' datasets (manifests in data_manifests/)."""


@data_group.command("check")
@click.argument("manifest")
@click.option("--data-root", required=True, type=click.Path(path_type=Path),
              help="Your copy of the dataset (the folder the manifest's paths are relative to).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@fail_cleanly
def check_command(manifest: str, data_root: Path, as_json: bool) -> None:
    """Verify the files under --data-root against MANIFEST (a manifest YAML file, or a built-in dataset
    name: utkface, utkface-rankup, agedb-dir): files present, split files byte-identical to the published
    ones, rows per split, labelled rows, label range and the UTKFace age offset, every image present.

    Exit codes: 0 the data matches, 2 problems (listed), or a bad manifest.
    """
    from clss.data.faces import FACE_DATASETS, builtin_manifest
    from clss.data.manifest import check_data, load_manifest

    chosen = builtin_manifest(manifest) if manifest in FACE_DATASETS else load_manifest(manifest)
    report = check_data(chosen, data_root)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    elif sys.stdout.isatty():
        _print_table(report)
    else:
        click.echo(report.text())
    if not report.ok:
        sys.exit(USER_ERROR)


@data_group.command("make-splits")
@click.argument("dataset", type=click.Choice(["agedb-dir"]))
@click.option("--data-root", required=True, type=click.Path(path_type=Path),
              help="Your AgeDB-DIR copy, with DIR's agedb.csv.")
@click.option("--overwrite", is_flag=True, help="Rewrite split files that are already there.")
@fail_cleanly
def make_splits_command(dataset: str, data_root: Path, overwrite: bool) -> None:
    """Write the CLSS split files FileList_ssl_{407,488,610,814}_0.csv of DATASET from its agedb.csv,
    byte-identical to the published ones (checked against the manifest by clss data check)."""
    from clss.data.faces import write_agedb_split_files

    written = write_agedb_split_files(data_root, overwrite=overwrite)
    for name in written:
        click.echo(f"wrote {data_root / name}")
    if not written:
        click.echo("all split files are already there (--overwrite rewrites them)")


def _print_table(report: DataCheckReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    style = {"ok": "green", "warn": "yellow", "problem": "bold red"}
    table = Table(title=f"data check: {escape(report.manifest)} at {escape(report.data_root)}")
    for column in ("status", "item", "detail"):
        table.add_column(column)
    for c in report.checks:
        table.add_row(f"[{style[c.status]}]{c.status}[/]", escape(c.item), escape(c.detail))
    console.print(table)
    console.print(("[green]" if report.ok else "[bold red]") + escape(report.verdict()))
