"""Predictions of a trained run on new data: what ``clss predict`` runs.

Everything a run does to its inputs before the network sees them is read from the run directory by
:func:`load_predictor` (one place, so that a new preprocessing step is added here once): the input
columns in training order (recorded in ``splits.json`` as ``features``) and the standardisation
(stored in each checkpoint). Predictions come back in the original target units.

Input files: a ``.npy`` array ``[n, d]`` of the run's width, or a CSV file with a header row that holds
every feature column of the run (by name; other columns are ignored, so a file with the target or an id
column is fine). Rows with a missing or non-finite feature value are refused, naming the rows.

Runs trained on images (``splits.json``'s ``input.kind``) predict image files instead
(:meth:`Predictor.predict_images`, :func:`predict_images_file`): each file is decoded with the run's
recorded :class:`~clss.data.ImagePreprocessing` (``splits.json``'s ``image_preprocessing``: channels,
resize, crop, channel order and the normalisation statistics of the training images), which is what the
trainer's evaluation applies, without augmentation. Which files an input names is
:mod:`clss.engine.predict_inputs`' job.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from clss.atomic import atomic_write_text
from clss.config import TrainConfig
from clss.data import ImagePreprocessing, ImageReadError, InputSpec, Standardizer
from clss.data.csvfile import read_csv_table
from clss.data.encoding import ColumnEncoding, TabularEncoding
from clss.data.loader import _one_line_errors, resolve_workers
from clss.engine.checkpoint import load_checkpoint
from clss.engine.predict_inputs import is_image_file, read_image_inputs
from clss.engine.progress import TrainingProgress
from clss.engine.rundir import RunDir
from clss.methods import Method
from clss.metrics import regression_metrics

__all__ = ["UNLABELED_PREDICTIONS", "ImagePredictions", "Predictor", "load_predictor", "predict_array",
           "predict_file", "predict_images_file", "write_predictions_csv"]

UNLABELED_PREDICTIONS = "predictions_unlabeled.csv"

CHECKPOINTS = ("best", "last")
# Spellings of a missing cell, as the CSV loader reads them (clss.data.tabular).


def _names_text(names: list[str]) -> str:
    return f"{names[:10]}{' ...' if len(names) > 10 else ''}"


def _rows_text(rows: np.ndarray) -> str:
    shown = ", ".join(str(r) for r in rows[:10].tolist())
    return f"{rows.size} row(s) ({shown}{', ...' if rows.size > 10 else ''})"


@dataclass
class Predictor:
    """A trained run's network with the preprocessing it was trained with.

    Attributes
    ----------
    run_dir : Path
    checkpoint : {"best", "last"}
        The weights loaded (``"best"`` falls back to ``last.pt`` for runs that keep their final weights,
        ``eval_every=0``).
    method : clss.methods.Method
        The network, on ``device`` (its ``predict`` runs in evaluation mode).
    standardizer : clss.data.Standardizer
        The run's input and target standardisation.
    features : list of str or None
        Input column names in training order (None for runs written before they were recorded: such runs
        take ``.npy``/array input only).
    target : str or None
        The target column's name.
    device : torch.device
    encoding : TabularEncoding or None
        How a CSV file's columns become the network's inputs: the run's own fitted encoding (feature
        selection, one-hot categories, missing-value fill) or, for runs of numeric columns without one,
        the named columns as they are.
    input : InputSpec or None
        The kind and shape of one network input (None: a table run recorded before inputs were).
    image_preprocessing : ImagePreprocessing or None
        How an image run decodes a file (resolved: its normalisation statistics are the training ones).
    """

    run_dir: Path
    checkpoint: str
    method: Method
    standardizer: Standardizer
    features: list[str] | None
    target: str | None
    device: torch.device
    encoding: TabularEncoding | None = None
    input: InputSpec | None = None
    image_preprocessing: ImagePreprocessing | None = None

    @property
    def kind(self) -> str:
        """``"tabular"`` or ``"image"``: what the run was trained on."""
        return self.input.kind if self.input is not None else "tabular"

    @property
    def n_features(self) -> int:
        """Input width ``d`` the network expects (table runs)."""
        return int(self.standardizer.x_mean.shape[0])

    def _refuse_kind(self, wanted: str) -> None:
        if self.kind == wanted:
            return
        if wanted == "image":
            raise ValueError(f"{self.run_dir} was trained on table rows; pass a CSV with its feature columns "
                             f"or a .npy array (Predictor.predict), not images")
        raise ValueError(f"{self.run_dir} was trained on images; pass image files (a folder, a list of paths "
                         f"or a CSV with a path column: Predictor.predict_images), not table rows")

    def predict(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Predictions ``[n]`` (float64, target units) for raw inputs ``x`` ``[n, d]``.

        Raises
        ------
        ValueError
            ``x`` not 2-D of width ``d``, empty, or with non-finite values (the rows are named), or
            values that overflow float32 once standardised.
        """
        self._refuse_kind("tabular")
        x = np.asarray(x)
        if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
            raise ValueError(f"inputs must be numeric, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"inputs must have shape (n_rows, {self.n_features}) (the run was trained on "
                             f"{self.n_features} features), got shape {x.shape}")
        if x.shape[0] == 0:
            raise ValueError("inputs have no rows")
        _refuse_nonfinite(x, "have missing or non-finite values")
        # float32 like the training inputs (RegressionData), so that the network sees what training saw.
        with np.errstate(over="ignore"):  # overflow is reported below, naming the rows
            z = self.standardizer.transform_x(x.astype(np.float32))
        _refuse_nonfinite(z, "overflow float32 after standardisation (values too large)")
        xt = torch.as_tensor(z, device=self.device)
        with torch.inference_mode():
            pred = torch.cat([self.method.predict(xt[i:i + batch_size])
                              for i in range(0, len(xt), batch_size)])
        return self.standardizer.inverse_y(pred.double().cpu().numpy())

    def predict_images(self, files: Sequence[str | os.PathLike[str]], *, y_true: Any = None,
                       batch_size: int = 256, workers: int | str = 0, skip_bad: bool = False,
                       progress: bool = False) -> ImagePredictions:
        """Predictions (target units) for image files, decoded as the run's evaluation decodes them.

        Each file goes through the run's :class:`~clss.data.ImagePreprocessing` (mode conversion to the
        run's channels, resize, crop, channel order, the training normalisation; no augmentation) and
        ``method.predict`` in batches of ``batch_size`` through a DataLoader with ``workers`` processes,
        as the trainer evaluates. For a run that resizes nothing, every image must come out at the run's
        size (read from the file headers before anything is decoded).

        Parameters
        ----------
        files : sequence of str or PathLike
            ``n >= 1`` image files (any format Pillow reads).
        y_true : array-like, optional
            ``n`` true targets (NaN: unknown); metrics are computed over the predicted files that have one.
        batch_size : int, default 256
        workers : int or "auto", default 0
            DataLoader worker processes (0: decode in this process; ``"auto"``: ``min(8, cpu_count - 1)``).
        skip_bad : bool, default False
            False: a missing, unreadable, undecodable or wrongly sized file stops the call with one error
            naming it (nothing is returned). True: such files are left out and listed in ``skipped``.
        progress : bool, default False
            A live bar on a terminal, else about ten ``predict images k/n`` lines.

        Returns
        -------
        ImagePredictions

        Raises
        ------
        TypeError
            ``files`` is one path rather than a list of them.
        ValueError
            A table run; no files; bad ``batch_size``/``workers``/``y_true``; a bad file (without
            ``skip_bad``; ``ImageReadError`` for an undecodable one) or no good file (with it).
        FileNotFoundError
            Missing files (without ``skip_bad``), counted and the first ones named.
        """
        self._refuse_kind("image")
        if isinstance(files, str | os.PathLike):
            raise TypeError(f"files must be a list of image paths; wrap one path in a list: [{files!r}]")
        files = [os.fspath(f) for f in files]
        if not files:
            raise ValueError("no image files to predict")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1 (CLI: --batch-size N), got {batch_size!r}")
        workers = resolve_workers(workers, in_memory=False)
        truth = None if y_true is None else np.asarray(y_true, dtype=np.float64).reshape(-1)
        if truth is not None and truth.size != len(files):
            raise ValueError(f"y_true has {truth.size} values for {len(files)} image files")
        prep, shape = self.image_preprocessing, self.input.shape  # type: ignore[union-attr]
        assert prep is not None  # load_predictor sets it for every image run
        problems = _file_problems(files, prep, shape[1:])
        if problems and not skip_bad:
            _raise_problems(problems, len(files))
        bad = {i for i, _ in problems}
        good = [i for i in range(len(files)) if i not in bad]
        dataset = _ImageFiles([files[i] for i in good], prep, shape, skip_bad)
        # No more worker processes than batches: a handful of files is not worth starting eight processes.
        workers = min(workers, math.ceil(len(good) / batch_size))
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers,
                                             pin_memory=self.device.type == "cuda",
                                             generator=torch.Generator())
        preds, reasons = [], []
        log_every = max(batch_size, math.ceil(len(good) / 10)) if good else None
        with TrainingProgress(len(good), enabled=progress, description="predict", unit="images",
                              log_every=log_every) as bar, torch.inference_mode():
            for x, why in _one_line_errors(loader) if good else ():
                ok = torch.tensor([r == "" for r in why])
                if ok.any():
                    batch = x if ok.all() else x[ok]
                    preds.append(self.method.predict(batch.to(self.device, non_blocking=True)))
                reasons.extend(why)
                bar.update(len(reasons))
        skipped = sorted([*problems, *((good[k], r) for k, r in enumerate(reasons) if r)])
        kept = np.asarray([good[k] for k, r in enumerate(reasons) if not r], dtype=np.int64)
        if kept.size == 0:
            raise ValueError(f"none of the {len(files)} image files could be predicted; the first: "
                             f"{skipped[0][1]}")
        y_pred = self.standardizer.inverse_y(torch.cat(preds).double().cpu().numpy())
        return ImagePredictions([files[i] for i in kept], kept, y_pred,
                                None if truth is None else truth[kept],
                                [(i, files[i], r) for i, r in skipped])


@dataclass
class ImagePredictions:
    """What :meth:`Predictor.predict_images` returns.

    Attributes
    ----------
    files : list of str
        The ``m`` predicted files, in input order.
    index : np.ndarray
        int64 ``[m]``: each predicted file's position in the input.
    y_pred : np.ndarray
        float64 ``[m]``, target units.
    y_true : np.ndarray or None
        float64 ``[m]`` true targets (NaN: unknown) when given.
    skipped : list of (int, str, str)
        ``(position, file, reason)`` of the files left out (``skip_bad=True``).
    written : dict of str to Path
        Files written by :func:`predict_images_file` (``"predictions"``, ``"skipped"``, ``"metrics"``).
    """

    files: list[str]
    index: np.ndarray
    y_pred: np.ndarray
    y_true: np.ndarray | None = None
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    written: dict[str, Path] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float] | None:
        """:func:`clss.metrics.regression_metrics` over the predicted files with a known target (``n``: how
        many), or None when no target is known."""
        if self.y_true is None:
            return None
        known = np.isfinite(self.y_true)
        if not known.any():
            return None
        return {"n": int(known.sum()), **regression_metrics(self.y_true[known], self.y_pred[known])}


class _ImageFiles(torch.utils.data.Dataset):
    """Image files decoded for prediction: ``(x [C, H, W], "")``, or with ``skip_bad`` a zero input and
    the reason when a file cannot be decoded (so one bad file does not stop a batch)."""

    def __init__(self, files: list[str], preprocessing: ImagePreprocessing, shape: tuple[int, ...],
                 skip_bad: bool) -> None:
        self.files, self.preprocessing, self.shape, self.skip_bad = files, preprocessing, shape, skip_bad

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        try:
            x = self.preprocessing.decode(self.files[i])
            if tuple(x.shape) != self.shape:
                raise ImageReadError(f"image {self.files[i]} decodes to shape {tuple(x.shape)}; this run "
                                     f"takes {self.shape}")
        except (ImageReadError, FileNotFoundError) as exc:
            if not self.skip_bad:
                raise
            return torch.zeros(self.shape), str(exc)
        return x, ""


# How many problem files one error message names.
_SHOWN_FILES = 5


def _file_problems(files: list[str], prep: ImagePreprocessing,
                   size: tuple[int, ...]) -> list[tuple[int, str]]:
    """``(position, reason)`` of the files that cannot be predicted, found without decoding: missing,
    unreadable, or (runs that resize nothing) a header that cannot be read or a size that does not come out
    at the run's ``size`` ``(H, W)``."""
    problems = []
    for i, f in enumerate(files):
        if not os.path.isfile(f):
            problems.append((i, f"missing file (or not a file): {f}"))
        elif not os.access(f, os.R_OK):
            problems.append((i, f"cannot read (permission denied): {f}"))
        elif prep.resize is None:
            try:
                with Image.open(f) as img:
                    native = img.size[::-1]
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                problems.append((i, f"cannot read image {f}: {exc}"))
                continue
            try:
                out = prep.output_size(native)
            except ValueError:
                out = None
            if out != tuple(size):
                problems.append((i, f"image {f} is {native[0]}x{native[1]} pixels; this run was trained on "
                                    f"{size[0]}x{size[1]} images and resizes none"))
    return problems


def _raise_problems(problems: list[tuple[int, str]], n: int) -> None:
    shown = "; ".join(r for _, r in problems[:_SHOWN_FILES])
    more = f"; ... and {len(problems) - _SHOWN_FILES} more" if len(problems) > _SHOWN_FILES else ""
    error = FileNotFoundError if all(r.startswith("missing") for _, r in problems) else ValueError
    raise error(f"{len(problems)} of {n} image files cannot be predicted: {shown}{more}; fix or remove them, "
                f"or skip them with --skip-bad (Python: skip_bad=True)")


def _refuse_nonfinite(x: np.ndarray, what: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(f"{_rows_text(np.flatnonzero(bad))} {what}; remove or fill them")


def load_predictor(run_dir: str | os.PathLike[str], *, checkpoint: Literal["best", "last"] = "best",
                   device: str = "cpu") -> Predictor:
    """Rebuild a run's network and preprocessing from its directory.

    Parameters
    ----------
    run_dir : str or PathLike
        A run directory written by :func:`clss.engine.train` (``config.yaml``, ``splits.json`` and a
        checkpoint).
    checkpoint : {"best", "last"}, default "best"
        ``best.pt`` (the weights selected on validation; for a run with ``eval_every=0``, which keeps its
        final weights, ``last.pt``) or ``last.pt`` (the latest state).
    device : str, default "cpu"
        ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Returns
    -------
    Predictor

    Raises
    ------
    FileNotFoundError
        No such directory, or it lacks ``config.yaml`` or the checkpoint.
    ValueError
        ``run_dir`` is a file; unknown ``checkpoint`` or ``device``; a checkpoint without weights or
        standardisation; an image run whose splits.json records no image preprocessing (written by an
        older clss, or trained on an in-memory dataset without one).
    """
    from clss.engine.trainer import WEIGHTS_KEYS, _build_method, _device

    if checkpoint not in CHECKPOINTS:
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device.startswith("cuda")):
        raise ValueError(f"device must be 'cpu', 'cuda' (or 'cuda:N') or 'auto', got {device!r}")
    run_path = Path(run_dir)
    if not run_path.exists():
        raise FileNotFoundError(f"run directory {run_path} does not exist")
    if not run_path.is_dir():
        raise ValueError(f"run directory {run_path} is a file, not a run directory")
    run = RunDir.existing(run_path)
    cfg = TrainConfig.from_dict(run.read_config())
    path = run.checkpoint_path(checkpoint)
    if checkpoint == "best" and not path.is_file() and cfg.eval_every == 0:
        path = run.checkpoint_path("last")  # no validation: the final weights are the selected ones
    if not path.is_file():
        others = [p.name for p in (run.checkpoint_path("best"), run.checkpoint_path("last")) if p.is_file()]
        hint = f"; it has {', '.join(others)}" if others else " (the run stopped before its first checkpoint)"
        raise FileNotFoundError(f"{run_path} has no {path.name} checkpoint{hint}")
    split_info = run.read_splits() if (run_path / RunDir.SPLITS).is_file() else {}
    recorded = split_info.get("input")
    spec = InputSpec.from_dict(recorded) if recorded else None  # runs before the input record: tables
    prep = None
    if spec is not None and spec.kind == "image":
        if "image_preprocessing" not in split_info:
            raise ValueError(f"{run_path} was trained on images by an older clss that did not record its "
                             f"image preprocessing in splits.json; retrain it with this version to predict "
                             f"images")
        if split_info["image_preprocessing"] is None:
            raise ValueError(f"{run_path} was trained on images of a dataset without an ImagePreprocessing "
                             f"(data passed to train(data=...)); image files cannot be turned into its "
                             f"inputs")
        prep = ImagePreprocessing.from_dict(split_info["image_preprocessing"])
    elif spec is not None and spec.kind != "tabular":
        raise ValueError(f"{run_path} was trained on {spec.kind} inputs; clss predict reads table rows and "
                         f"image files only")
    dev = _device(device)
    state = load_checkpoint(path, map_location=dev, kind=("train", "weights"), keys=WEIGHTS_KEYS)
    std = Standardizer.from_state_dict(state["standardizer"])
    if prep is not None:
        method = _build_method(cfg, spec, pretrained=False)  # type: ignore[arg-type]
        method.load_state_dict(state["method"])
        method.to(dev)
        return Predictor(run_path, path.stem, method, std, None, split_info.get("target"), dev, None, spec,
                         prep)
    features = split_info.get("features")
    if "encoding" in split_info:
        encoding: TabularEncoding | None = TabularEncoding.from_dict(split_info["encoding"])
    else:  # numeric columns taken as they are (built-in data sets, runs without a fitted encoding)
        encoding = (TabularEncoding(tuple(ColumnEncoding(f, "numeric") for f in features))
                    if features is not None else None)
    if encoding is not None and len(encoding.feature_names) != std.x_mean.shape[0]:
        raise ValueError(f"{run_path}: splits.json describes {len(encoding.feature_names)} features but the "
                         f"checkpoint standardises {std.x_mean.shape[0]}; the run directory is inconsistent")
    method = _build_method(cfg, InputSpec("tabular", (int(std.x_mean.shape[0]),)), pretrained=False)
    method.load_state_dict(state["method"])
    method.to(dev)
    return Predictor(run_path, path.stem, method, std, features, split_info.get("target"), dev, encoding,
                     InputSpec("tabular", (int(std.x_mean.shape[0]),)))


def predict_array(run_dir: str | os.PathLike[str], x: Any, *, checkpoint: Literal["best", "last"] = "best",
                  device: str = "cpu") -> np.ndarray:
    """Predictions ``[n]`` (target units) of a run for raw inputs ``x`` ``[n, d]`` in training column order.

    See :func:`load_predictor` for the parameters and :meth:`Predictor.predict` for the checks.
    """
    return load_predictor(run_dir, checkpoint=checkpoint, device=device).predict(x)


def _read_npy(path: Path) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path} is not a readable .npy array ({exc})") from None
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{path} holds no single array (an .npz archive?); save one array with np.save")
    return x


def write_predictions_csv(path: str | os.PathLike[str], index: Any, y_pred: Any, *,
                          ids: list[str] | None = None, id_column: str | None = None,
                          y_true: Any = None) -> Path:
    """Write predictions atomically as CSV: ``index[,<id_column>],y_pred[,y_true]`` (floats at full
    precision).

    Parameters
    ----------
    path : str or PathLike
        Output file (replaced if it exists; a directory is refused with a ValueError).
    index : array-like of int, shape (n,)
        Row index of each prediction in its source (input file rows, or training rows).
    y_pred : array-like of float, shape (n,)
    ids, id_column : list of str and str, optional
        An id column copied from the input, written after ``index``.
    y_true : array-like of float, shape (n,), optional
        True targets, written last (``nan`` where unknown).

    Returns
    -------
    Path
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output {p} is a directory; name a file such as {p / 'predictions.csv'}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", *([id_column] if ids is not None else []), "y_pred",
                     *(["y_true"] if y_true is not None else [])])
    floats = [np.asarray(v, dtype=np.float64).tolist() for v in (y_pred, y_true) if v is not None]
    labels = [np.asarray(index).tolist(), *([ids] if ids is not None else [])]
    writer.writerows([[*row[:len(labels)], *map(repr, row[len(labels):])]
                      for row in zip(*labels, *floats, strict=True)])
    return atomic_write_text(p, buffer.getvalue())


def _check_output(out: str | os.PathLike[str] | None) -> None:
    if out is not None and Path(out).is_dir():
        raise ValueError(f"output {out} is a directory; name a file such as {Path(out) / 'predictions.csv'}")


def predict_file(run_dir: str | os.PathLike[str] | Predictor, input: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None, *, checkpoint: Literal["best", "last"] = "best",
                 id_column: str | None = None, device: str = "cpu",
                 batch_size: int = 4096) -> tuple[np.ndarray, Path | None]:
    """Predict a run's target for the rows of a ``.npy`` or CSV file and optionally write them.

    Parameters
    ----------
    run_dir : str, PathLike or Predictor
        The trained run (see :func:`load_predictor`; ``checkpoint`` and ``device`` are then ignored), trained
        on table rows.
    input : str or PathLike
        ``.npy``: an array ``[n, d]`` in the run's column order. Anything else is read as CSV with a header
        that names every feature column of the run; extra columns (the target, ids, notes) are ignored.
    out : str or PathLike, optional
        Where to write ``index[,id],y_pred`` (atomically); ``index`` is the 0-based data row of the input
        (blank lines skipped). None: only return the predictions.
    checkpoint : {"best", "last"}, default "best"
    id_column : str, optional
        A CSV column copied to the output beside ``index`` (CSV input only).
    device : str, default "cpu"
    batch_size : int, default 4096
        Rows per forward pass.

    Returns
    -------
    predictions : ndarray of shape (n,), float64, target units
    written : Path or None

    Raises
    ------
    FileNotFoundError
        Missing run directory, checkpoint or input file.
    ValueError
        A run trained on images; input or output a directory, an image as input, missing feature columns
        (named), wrong
        ``.npy`` width, rows with missing values (named), an empty file.
    """
    src = Path(input)
    if not src.exists():
        raise FileNotFoundError(f"input file {src} does not exist")
    _check_output(out)
    predictor = (run_dir if isinstance(run_dir, Predictor)
                 else load_predictor(run_dir, checkpoint=checkpoint, device=device))
    predictor._refuse_kind("tabular")
    if src.is_dir() or is_image_file(src):
        raise ValueError(f"input {src} is {'a directory' if src.is_dir() else 'an image'}; pass a .csv or "
                         f".npy file ({predictor.run_dir} was trained on table rows)")
    ids = None
    if src.suffix.lower() == ".npy":
        if id_column is not None:
            raise ValueError("an id column needs CSV input; a .npy array has no column names")
        x = _read_npy(src)
        index = np.arange(x.shape[0]) if x.ndim >= 1 else np.arange(0)
    else:
        if predictor.encoding is None:
            raise ValueError(f"{predictor.run_dir} records no feature names (written by an older clss); "
                             f"pass a .npy array of shape (n_rows, {predictor.n_features}) instead")
        table = read_csv_table(src)
        absent = [c.name for c in predictor.encoding.columns if c.name not in table.header]
        if absent:
            raise ValueError(f"{src} lacks the feature column(s) {_names_text(absent)} the run was "
                             f"trained on ({len(absent)} of {len(predictor.encoding.columns)} missing; "
                             f"the file has {_names_text(table.header)})")
        if not predictor.encoding.fill:  # the run fills no missing cells: name the rows here
            holes = np.flatnonzero(predictor.encoding.missing_rows(table))
            if holes.size:
                raise ValueError(f"{src}: {_rows_text(holes)} have missing values in the run's feature "
                                 f"columns (it was trained with missing={predictor.encoding.missing!r}, "
                                 f"which fills none); fill or remove them")
        x = predictor.encoding.transform(table)  # the run's columns, categories and missing-value policy
        index = np.arange(x.shape[0])
        ids = table.cells[:, table.column(id_column, "id")].tolist() if id_column is not None else None
    try:
        pred = predictor.predict(x, batch_size=batch_size)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from None
    if out is None:
        return pred, None
    return pred, write_predictions_csv(out, index, pred, ids=ids, id_column=id_column)


def predict_images_file(run_dir: str | os.PathLike[str] | Predictor, input: str | os.PathLike[str],
                        out: str | os.PathLike[str] | None = None, *,
                        checkpoint: Literal["best", "last"] = "best", device: str = "cpu",
                        path_column: str = "path", target_column: str | None = None,
                        data_root: str | os.PathLike[str] | None = None, batch_size: int = 256,
                        workers: int | str = 0, skip_bad: bool = False,
                        progress: bool = False) -> ImagePredictions:
    """Predict a run trained on images for the image files named by ``input`` and optionally write them.

    Parameters
    ----------
    run_dir : str, PathLike or Predictor
        The trained run (see :func:`load_predictor`; ``checkpoint`` and ``device`` are then ignored).
    input : str or PathLike
        A folder (its images, recursively), a CSV with a ``path_column`` (the ``image-csv`` layout), one
        image, or a text list of paths (see :mod:`clss.engine.predict_inputs`).
    out : str or PathLike, optional
        Where to write ``index,path,y_pred[,y_true]`` atomically (``index``: the file's position in the
        input; ``path``: the file as resolved). With true targets, their metrics go to
        ``<out stem>.metrics.json``; with ``skip_bad``, the files left out to ``<out stem>.skipped.csv``
        (``index,path,reason``). None: only return the predictions.
    checkpoint : {"best", "last"}, default "best"
    device : str, default "cpu"
    path_column : str, default "path"
        The CSV column of image paths.
    target_column : str, optional
        A CSV column of true targets (an error when absent). Default: the run's target name, when the CSV
        has such a column.
    data_root : str or PathLike, optional
        Folder that relative paths of a CSV or list resolve against (default: the file's folder).
    batch_size, workers, skip_bad, progress
        See :meth:`Predictor.predict_images`.

    Returns
    -------
    ImagePredictions
        With ``written`` naming the files written.

    Raises
    ------
    FileNotFoundError
        Missing run directory, checkpoint, input or image files.
    ValueError
        A run trained on table rows, an output that is a directory, and every refusal of
        :func:`~clss.engine.predict_inputs.read_image_inputs` and :meth:`Predictor.predict_images`.
    """
    _check_output(out)
    predictor = (run_dir if isinstance(run_dir, Predictor)
                 else load_predictor(run_dir, checkpoint=checkpoint, device=device))
    predictor._refuse_kind("image")
    inputs = read_image_inputs(input, path_column=path_column,
                               target_column=target_column if target_column is not None else predictor.target,
                               target_required=target_column is not None, data_root=data_root)
    result = predictor.predict_images(inputs.files, y_true=inputs.y_true, batch_size=batch_size,
                                      workers=workers, skip_bad=skip_bad, progress=progress)
    if out is None:
        return result
    out = Path(out)
    if skip_bad:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([("index", "path", "reason"), *result.skipped])
        result.written["skipped"] = atomic_write_text(out.with_name(f"{out.stem}.skipped.csv"),
                                                      buffer.getvalue())
    if result.metrics is not None:
        result.written["metrics"] = atomic_write_text(out.with_name(f"{out.stem}.metrics.json"),
                                                      json.dumps(result.metrics, indent=1) + "\n")
    result.written["predictions"] = write_predictions_csv(out, result.index, result.y_pred, ids=result.files,
                                                          id_column="path", y_true=result.y_true)
    return result

