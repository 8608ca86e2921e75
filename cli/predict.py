"""``clss predict``: a trained run's predictions for new rows (thin layer over :mod:`clss.engine.predict`)."""

from __future__ import annotations

from pathlib import Path

import click

from clss_cli.console import console, fail_cleanly


@click.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--input", "input_file", required=True, type=click.Path(path_type=Path),
              help="CSV with a header naming the run's feature columns (other columns are ignored), or a "
                   ".npy array [rows, features] in training column order.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output CSV: index (input data row, from 0), the --id-column if given, y_pred.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best: the weights selected on validation; last: the latest state.")
@click.option("--id-column", help="A CSV column copied to the output beside the index.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@fail_cleanly
def predict_command(run_dir: Path, input_file: Path, out: Path, checkpoint: str, id_column: str | None,
                    device: str) -> None:
    """Predict the target of a trained run for new rows, in the original target units.

    Example: clss predict runs/x --input new_rows.csv --out preds.csv --id-column patient
    """
    from clss.engine.predict import predict_file

    pred, written = predict_file(run_dir, input_file, out, checkpoint=checkpoint, id_column=id_column,
                                 device=device)
    console.print(f"{len(pred)} predictions ({checkpoint} weights of {run_dir}) written to "
                  f"[bold]{written}[/bold]")
