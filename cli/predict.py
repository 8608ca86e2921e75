"""``clss predict``: a trained run's predictions for new rows or images (thin layer over
:mod:`clss.engine.predict`)."""

from __future__ import annotations

from pathlib import Path

import click

from clss_cli.console import console, fail_cleanly

# Options that only runs trained on images read (their defaults are None: given or not is visible).
_IMAGE_OPTIONS = {"path_column": "--path-column", "target_column": "--target-column",
                  "data_root": "--data-root", "workers": "--workers", "skip_bad": "--skip-bad"}


def _workers(value: str | None) -> int | str | None:
    if value is None or value == "auto":
        return value
    if not value.isdigit():
        raise click.BadParameter(f"must be an integer >= 0 or 'auto', got {value!r}")
    return int(value)


@click.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.argument("input_arg", metavar="[INPUT]", required=False, type=click.Path(path_type=Path))
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="The same as INPUT. Table runs: a CSV with a header naming the run's feature columns "
                   "(other columns are ignored), or a .npy array [rows, features] in training column "
                   "order. Image runs: a folder of images (recursive), a CSV with a path column "
                   "(optionally a target column), one image, or a text file of image paths, one per line.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Output CSV. Tables: index (input data row, from 0), the --id-column if given, y_pred. "
                   "Images: index (position in the input), path, y_pred, and y_true when the CSV has "
                   "targets.")
@click.option("--checkpoint", type=click.Choice(["best", "last"]), default="best", show_default=True,
              help="best: the weights selected on validation; last: the latest state.")
@click.option("--id-column", help="Tables: a CSV column copied to the output beside the index.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Inputs per forward pass [default: 4096 rows, 256 images].")
@click.option("--path-column", default=None, help="Images: the CSV column of image paths [default: path].")
@click.option("--target-column", default=None,
              help="Images: a CSV column of true targets; metrics are then printed and written to "
                   "OUT_STEM.metrics.json [default: the run's target column, when the CSV has it].")
@click.option("--data-root", type=click.Path(path_type=Path), default=None,
              help="Images: folder that relative paths of a CSV or list resolve against [default: that "
                   "file's folder].")
@click.option("--workers", default=None, callback=lambda ctx, param, value: _workers(value),
              help="Images: DataLoader processes decoding the files, N or auto [default: auto].")
@click.option("--skip-bad", is_flag=True, default=None,
              help="Images: leave out missing, unreadable, corrupt or wrongly sized files, listed in "
                   "OUT_STEM.skipped.csv, instead of stopping at them.")
@click.option("--no-progress", is_flag=True, help="No progress bar or progress lines.")
@fail_cleanly
def predict_command(run_dir: Path, input_arg: Path | None, input_file: Path | None, out: Path,
                    checkpoint: str, id_column: str | None, device: str, batch_size: int | None,
                    no_progress: bool, **image_options: object) -> None:
    """Predict the target of a trained run for new rows or images, in the original target units.

    Examples: clss predict runs/x new_rows.csv --out preds.csv --id-column patient;
    clss predict runs/faces photos/ --out ages.csv --skip-bad
    """
    from clss.engine.predict import load_predictor, predict_file, predict_images_file

    if input_arg is None and input_file is None:
        raise click.UsageError("Missing argument 'INPUT' (or option '--input')")
    if input_arg is not None and input_file is not None:
        raise click.UsageError("give the input once: as INPUT or as --input")
    source = input_arg if input_arg is not None else input_file
    predictor = load_predictor(run_dir, checkpoint=checkpoint, device=device)
    if predictor.kind == "tabular":
        given = [flag for key, flag in _IMAGE_OPTIONS.items() if image_options[key] is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to runs trained on images; {run_dir} was trained on "
                             f"table rows")
        pred, written = predict_file(predictor, source, out, id_column=id_column,
                                     batch_size=batch_size or 4096)
        console.print(f"{len(pred)} predictions ({checkpoint} weights of {run_dir}) written to "
                      f"[bold]{written}[/bold]")
        return
    if id_column is not None:
        raise ValueError(f"--id-column applies to runs trained on table rows; {run_dir} was trained on "
                         f"images and names each prediction by its path")
    opts = {key: value for key, value in image_options.items() if value is not None}
    result = predict_images_file(predictor, source, out, batch_size=batch_size or 256,
                                 **{"workers": "auto", **opts}, progress=not no_progress)  # type: ignore[arg-type]
    written = result.written
    console.print(f"{len(result.y_pred)} predictions ({checkpoint} weights of {run_dir}) written to "
                  f"[bold]{written['predictions']}[/bold]")
    if "skipped" in written:
        console.print(f"{len(result.skipped)} file(s) skipped, listed in [bold]{written['skipped']}[/bold]")
    metrics = result.metrics
    if metrics is not None:
        shown = " ".join(f"{k}={metrics[k]:.4g}" for k in ("mae", "rmse", "r2") if k in metrics)
        console.print(f"on the {metrics['n']} file(s) with a target: {shown} (all metrics in "
                      f"[bold]{written['metrics']}[/bold])")
