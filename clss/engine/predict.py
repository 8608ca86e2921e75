"""Predictions of a trained run on new data: what ``clss predict`` runs.

Everything a run does to its inputs before the network sees them is read from the run directory by
:func:`load_predictor` (one place, so that a new preprocessing step is added here once): the input
columns in training order (recorded in ``splits.json`` as ``features``) and the standardisation
(stored in each checkpoint). Predictions come back in the original target units.

Input files: a ``.npy`` array ``[n, d]`` of the run's width, or a CSV file with a header row that holds
every feature column of the run (by name; other columns are ignored, so a file with the target or an id
column is fine). Rows with a missing or non-finite feature value are refused, naming the rows.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from clss.atomic import atomic_write_text
from clss.config import TrainConfig
from clss.data import InputSpec, Standardizer
from clss.data.csvfile import read_csv_table
from clss.data.encoding import ColumnEncoding, TabularEncoding
from clss.engine.checkpoint import load_checkpoint
from clss.engine.rundir import RunDir
from clss.methods import Method

__all__ = ["UNLABELED_PREDICTIONS", "Predictor", "load_predictor", "predict_array", "predict_file",
           "write_predictions_csv"]

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
    """

    run_dir: Path
    checkpoint: str
    method: Method
    standardizer: Standardizer
    features: list[str] | None
    target: str | None
    device: torch.device
    encoding: TabularEncoding | None = None

    @property
    def n_features(self) -> int:
        """Input width ``d`` the network expects."""
        return int(self.standardizer.x_mean.shape[0])

    def predict(self, x: Any, batch_size: int = 4096) -> np.ndarray:
        """Predictions ``[n]`` (float64, target units) for raw inputs ``x`` ``[n, d]``.

        Raises
        ------
        ValueError
            ``x`` not 2-D of width ``d``, empty, or with non-finite values (the rows are named), or
            values that overflow float32 once standardised.
        """
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
        standardisation; a run trained on inputs other than table rows (images).
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
    kind = split_info.get("input", {}).get("kind", "tabular")  # runs before the input record: tables
    if kind != "tabular":
        raise ValueError(f"{run_path} was trained on {kind} inputs; clss predict reads tables only "
                         f"(.npy or CSV rows), prediction for {kind} files is not available yet")
    dev = _device(device)
    state = load_checkpoint(path, map_location=dev, kind=("train", "weights"), keys=WEIGHTS_KEYS)
    std = Standardizer.from_state_dict(state["standardizer"])
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
    return Predictor(run_path, path.stem, method, std, features, split_info.get("target"), dev, encoding)


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
                          ids: list[str] | None = None, id_column: str | None = None) -> Path:
    """Write predictions atomically as CSV: ``index[,<id_column>],y_pred`` (floats at full precision).

    Parameters
    ----------
    path : str or PathLike
        Output file (replaced if it exists; a directory is refused with a ValueError).
    index : array-like of int, shape (n,)
        Row index of each prediction in its source (input file rows, or training rows).
    y_pred : array-like of float, shape (n,)
    ids, id_column : list of str and str, optional
        An id column copied from the input, written after ``index``.

    Returns
    -------
    Path
    """
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"output {p} is a directory; name a file such as {p / 'predictions.csv'}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["index", *([id_column] if ids is not None else []), "y_pred"])
    index, y_pred = np.asarray(index).tolist(), np.asarray(y_pred, dtype=np.float64).tolist()
    columns = (index, ids, y_pred) if ids is not None else (index, y_pred)
    writer.writerows([[*row[:-1], repr(row[-1])] for row in zip(*columns, strict=True)])
    return atomic_write_text(p, buffer.getvalue())


def predict_file(run_dir: str | os.PathLike[str], input: str | os.PathLike[str],
                 out: str | os.PathLike[str] | None = None, *, checkpoint: Literal["best", "last"] = "best",
                 id_column: str | None = None, device: str = "cpu") -> tuple[np.ndarray, Path | None]:
    """Predict a run's target for the rows of a ``.npy`` or CSV file and optionally write them.

    Parameters
    ----------
    run_dir : str or PathLike
        The trained run (see :func:`load_predictor`).
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

    Returns
    -------
    predictions : ndarray of shape (n,), float64, target units
    written : Path or None

    Raises
    ------
    FileNotFoundError
        Missing run directory, checkpoint or input file.
    ValueError
        Input or output a directory, missing feature columns (named), wrong
        ``.npy`` width, rows with missing values (named), an empty file.
    """
    src = Path(input)
    if not src.exists():
        raise FileNotFoundError(f"input file {src} does not exist")
    if src.is_dir():
        raise ValueError(f"input {src} is a directory; pass a .csv or .npy file")
    if out is not None and Path(out).is_dir():
        raise ValueError(f"output {out} is a directory; name a file such as "
                                f"{Path(out) / 'predictions.csv'}")
    predictor = load_predictor(run_dir, checkpoint=checkpoint, device=device)
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
        pred = predictor.predict(x)
    except ValueError as exc:
        raise ValueError(f"{src}: {exc}") from None
    if out is None:
        return pred, None
    return pred, write_predictions_csv(out, index, pred, ids=ids, id_column=id_column)
