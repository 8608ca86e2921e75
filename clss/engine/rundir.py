"""One directory per training run: configuration, splits, metrics log, summary, predictions, checkpoints
and plots (the layout and formats are documented in ``docs/engine.md``).

Every file except the append-only ``metrics.jsonl`` and ``resumes.jsonl`` is replaced atomically, and a
new run's directory appears at once, already holding its configuration, splits and step-0 checkpoint
(:meth:`RunDir.create`), so a run directory is always resumable. JSON files hold strict JSON:
non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` and the
``read_*`` methods turn them back into floats.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import secrets
import shutil
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from clss.atomic import atomic_write_text, fsync_dir

__all__ = ["RunDir"]

_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_PREDICTION_COLUMNS = ["split", "index", "source", "y_true", "y_pred"]


def _float_to_json(x: float) -> float | str:
    if math.isfinite(x):
        return x
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def _to_builtin(obj: Any, where: str, *, encode_nonfinite: bool) -> Any:
    """Plain dict/list/str/int/float/bool/None copy of ``obj`` (numpy and torch values converted).

    ``encode_nonfinite`` turns NaN/inf into the strings of the module docstring (for strict JSON).
    """
    if obj is None or isinstance(obj, bool | str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float_to_json(obj) if encode_nonfinite else float(obj)
    if isinstance(obj, np.ndarray | np.generic | torch.Tensor):
        value = obj.detach().cpu().tolist() if isinstance(obj, torch.Tensor) else obj.tolist()
        return _to_builtin(value, where, encode_nonfinite=encode_nonfinite)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, Mapping):
        out = {}
        for key, value in obj.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise TypeError(f"{where} has the key {key!r} of type {type(key).__qualname__}; keys must be "
                                f"strings")
            out[str(key)] = _to_builtin(value, f"{where}[{key!r}]", encode_nonfinite=encode_nonfinite)
        return out
    if isinstance(obj, list | tuple):
        return [_to_builtin(v, f"{where}[{i}]", encode_nonfinite=encode_nonfinite) for i, v in enumerate(obj)]
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which cannot be written "
                    f"to a run file; convert it to numbers, strings, lists or dicts")


def _decode_nonfinite(obj: Any) -> Any:
    if isinstance(obj, str):
        return _NONFINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {key: _decode_nonfinite(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_decode_nonfinite(value) for value in obj]
    return obj


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} not found in the run directory {path.parent}")
    try:
        return _decode_nonfinite(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); the file is damaged") from None


def _vector(x: Any, name: str, dtype: type) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


class RunDir:
    """The output directory of one training run.

    Parameters
    ----------
    path : str or Path
        The run directory; created (with its parents) for a new run.
    resume : bool, default False
        Continue the run already in ``path`` (it must hold ``last.pt``). Without it, ``path`` must be
        missing or empty, so that a previous run's results are never overwritten.

    Raises
    ------
    FileExistsError
        New run in a non-empty directory.
    NotADirectoryError
        ``path`` is a file.
    FileNotFoundError
        ``resume=True`` and the directory or its ``last.pt`` checkpoint is missing.

    Notes
    -----
    Files (all directly in ``path``): ``config.yaml``, ``splits.json``, ``metrics.jsonl``,
    ``summary.json``, ``predictions.csv``, ``last.pt``, ``best.pt`` and ``plots/*.png``.
    """

    CONFIG = "config.yaml"
    SPLITS = "splits.json"
    METRICS = "metrics.jsonl"
    SUMMARY = "summary.json"
    METHOD_STATE = "method.json"
    RESUMES = "resumes.jsonl"
    PREDICTIONS = "predictions.csv"
    PLOTS = "plots"

    def __init__(self, path: str | Path, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        if resume:
            self.check_resumable(self.path)
            return
        self.check_new(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def check_new(cls, path: str | Path) -> None:
        """Raise unless ``path`` can hold a new run (missing or an empty directory); creates nothing.

        Raises
        ------
        NotADirectoryError
            ``path`` is a file.
        FileExistsError
            ``path`` is a non-empty directory.
        """
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise NotADirectoryError(f"the run directory {p} is a file; choose another output directory")
        if p.is_dir():
            entries = sorted(entry.name for entry in p.iterdir())
            if entries:
                shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                status = run_status(p)
                if status == "finished":
                    held = "a finished run"
                elif (p / cls.CONFIG).is_file():
                    held = "an unfinished run"
                else:
                    held = "other files"
                advice = (f", or continue the run it holds with: clss train --resume {p} (Python: "
                          f"train(None, {str(p)!r}, resume=True))" if held == "an unfinished run" else "")
                raise FileExistsError(f"{p} already holds {held} ({shown}); choose another output "
                                      f"directory{advice}")

    @classmethod
    def check_resumable(cls, path: str | Path) -> None:
        """Raise unless ``path`` holds a run with a ``last.pt`` checkpoint; reads nothing else.

        Raises
        ------
        NotADirectoryError, FileNotFoundError
        """
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise NotADirectoryError(f"the run directory {p} is a file")
        if not p.is_dir():
            raise FileNotFoundError(f"cannot resume: the run directory {p} does not exist")
        if not (p / "last.pt").is_file():
            raise FileNotFoundError(
                f"cannot resume from {p}: it has no checkpoint last.pt (it was not written by clss train, "
                f"or the run stopped before its first checkpoint); start a new run in another directory")

    @classmethod
    def create(cls, path: str | Path, populate: Callable[[RunDir], object]) -> RunDir:
        """Create a new run directory atomically: ``populate(run)`` fills a hidden sibling, which is then
        renamed to ``path``.

        A process killed before the rename leaves ``path`` as it was (missing or empty) and at most a
        hidden ``.NAME.incomplete-*`` sibling, which may be deleted; an exception removes the sibling.

        Parameters
        ----------
        path : str or Path
            Missing or an empty directory (see :meth:`check_new`); missing parents are created.
        populate : callable
            Called with a ``RunDir`` of the temporary directory; writes the run's first files.

        Returns
        -------
        RunDir
            The run at ``path``, in resume mode (it holds files now).
        """
        target = Path(path)
        cls.check_new(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.incomplete-{os.getpid()}-{secrets.token_hex(3)}")
        tmp.mkdir()
        try:
            populate(cls.existing(tmp))
            os.replace(tmp, target)  # POSIX rename(2) also replaces an empty directory
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fsync_dir(target.parent)
        return cls.existing(target)

    @classmethod
    def existing(cls, path: str | Path) -> RunDir:
        """Open an existing run directory for reading, with no further checks (e.g. for evaluation).

        Raises
        ------
        FileNotFoundError
            ``path`` is not a directory.
        """
        p = Path(path)
        if not p.is_dir():
            raise FileNotFoundError(f"run directory not found: {p}")
        run = cls.__new__(cls)
        run.path, run.resume = p, True
        return run

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, resume={self.resume})"

    # -- configuration and splits -------------------------------------------------------------------

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Write the resolved configuration to ``config.yaml`` (key order kept).

        Parameters
        ----------
        config : mapping
            Nested dicts/lists of strings, numbers, booleans and None; tuples become lists, paths
            strings, numpy/torch scalars numbers.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        TypeError
            For a value YAML cannot hold, naming its key path.
        """
        plain = _to_builtin(config, "config", encode_nonfinite=False)
        text = yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, allow_unicode=True)
        return atomic_write_text(self.path / self.CONFIG, text)

    def read_config(self) -> dict[str, Any]:
        """The configuration written by :meth:`write_config`.

        Raises
        ------
        FileNotFoundError
            If ``config.yaml`` is missing.
        ValueError
            If it is not a YAML mapping.
        """
        path = self.path / self.CONFIG
        if not path.is_file():
            raise FileNotFoundError(f"{self.CONFIG} not found in the run directory {self.path}")
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(config, dict):
            raise ValueError(f"{path} must hold a mapping, got {type(config).__qualname__}")
        return config

    def write_splits(self, splits: Mapping[str, Any]) -> Path:
        """Write the data splits (e.g. ``{"labeled": [...], "unlabeled": [...], "val": [...]}``) to
        ``splits.json``, one key per line.

        Parameters
        ----------
        splits : mapping of str to index arrays (lists, numpy arrays or tensors) or other JSON values

        Returns
        -------
        Path
            The file written.
        """
        plain = _to_builtin(splits, "splits", encode_nonfinite=True)
        body = ",\n".join(f"  {json.dumps(key)}: {json.dumps(value, allow_nan=False)}"
                          for key, value in plain.items())
        return atomic_write_text(self.path / self.SPLITS, "{\n" + body + "\n}\n" if body else "{}\n")

    def read_splits(self) -> dict[str, Any]:
        """The splits written by :meth:`write_splits` (index arrays as lists of int)."""
        return _read_json(self.path / self.SPLITS)

    # -- metrics log --------------------------------------------------------------------------------

    def log(self, record: Mapping[str, Any], *, sync: bool = False) -> None:
        """Append ``record`` as one JSON line to ``metrics.jsonl`` (written and closed at once).

        Parameters
        ----------
        record : mapping
            Must contain ``"step"`` (an int >= 0). Values may be numbers, strings, None, lists, dicts and
            numpy/torch scalars; NaN and infinities are stored as ``"NaN"``, ``"Infinity"``,
            ``"-Infinity"``.
        sync : bool, default False
            ``fsync`` the file after writing, so that this line and every earlier one survive a power
            loss; the trainer does so before each checkpoint that covers them.

        Raises
        ------
        ValueError
            If ``step`` is missing or not a non-negative int.
        """
        plain = _to_builtin(record, "record", encode_nonfinite=True)
        step = plain.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"a metrics record needs an int 'step' >= 0, got {record.get('step')!r}")
        self._append(self.METRICS, plain, sync=sync)

    def _append(self, name: str, plain: Mapping[str, Any], *, sync: bool) -> None:
        line = json.dumps(plain, allow_nan=False) + "\n"
        with (self.path / name).open("a", encoding="utf-8") as fh:
            fh.write(line)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())

    def sync_log(self) -> None:
        """``fsync`` ``metrics.jsonl`` (see ``sync`` of :meth:`log`)."""
        path = self.path / self.METRICS
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())

    def record_resume(self, entry: Mapping[str, Any]) -> None:
        """Append one JSON line to ``resumes.jsonl`` (fsynced): when a run was resumed, from which step
        and which settings changed (e.g. ``{"steps": [600, 800]}``).

        Parameters
        ----------
        entry : mapping
            JSON-like values.
        """
        self._append(self.RESUMES, _to_builtin(entry, "entry", encode_nonfinite=True), sync=True)

    def read_resumes(self) -> list[dict[str, Any]]:
        """The entries of ``resumes.jsonl`` in file order (``[]`` when the run was never resumed); a line
        cut short by a crash is skipped."""
        path = self.path / self.RESUMES
        entries = []
        for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
            with contextlib.suppress(ValueError):
                entries.append(_decode_nonfinite(json.loads(line)))
        return entries

    def read_log(self) -> list[dict[str, Any]]:
        """All records of ``metrics.jsonl`` in file order (``[]`` when there is none yet).

        A final line cut short by a crash is skipped with a warning (:meth:`truncate_log` removes it).

        Raises
        ------
        ValueError
            If a line other than the last one is not a JSON object.
        """
        path = self.path / self.METRICS
        if not path.is_file():
            return []
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")
        records = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                if number == len(lines):  # no newline after it: the write was interrupted
                    warnings.warn(f"{path}: skipping the incomplete last line {number}", RuntimeWarning,
                                  stacklevel=2)
                    continue
                raise ValueError(f"{path}, line {number}: {exc}") from None
            records.append(_decode_nonfinite(record))
        return records

    def truncate_log(self, step: int) -> int:
        """Drop the records with ``step`` greater than ``step`` (and any incomplete last line).

        Called on resume so that the log matches the checkpoint the run restarts from.

        Parameters
        ----------
        step : int
            The checkpoint's step.

        Returns
        -------
        int
            The number of records dropped.
        """
        path = self.path / self.METRICS
        if not path.is_file():
            return 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            records = self.read_log()
        kept = [r for r in records if r.get("step", 0) <= step]
        lines = [json.dumps(_to_builtin(r, "record", encode_nonfinite=True), allow_nan=False) + "\n"
                 for r in kept]
        atomic_write_text(path, "".join(lines))
        return len(records) - len(kept)

    # -- results ------------------------------------------------------------------------------------

    def write_summary(self, summary: Mapping[str, Any]) -> Path:
        """Write the run's final results (e.g. final and best-on-val metrics) to ``summary.json``.

        Parameters
        ----------
        summary : mapping
            JSON-like values; NaN/inf are encoded as in :meth:`log`.

        Returns
        -------
        Path
            The file written.
        """
        plain = _to_builtin(summary, "summary", encode_nonfinite=True)
        text = json.dumps(plain, indent=2, allow_nan=False) + "\n"
        return atomic_write_text(self.path / self.SUMMARY, text)

    def write_method_state(self, state: Mapping[str, Any]) -> Path:
        """Write what the method learned beside its weights (:meth:`clss.methods.Method.artifacts`, e.g.
        CLOC's margins) to ``method.json``."""
        plain = _to_builtin(state, "method state", encode_nonfinite=True)
        text = json.dumps(plain, indent=2, allow_nan=False) + "\n"
        return atomic_write_text(self.path / self.METHOD_STATE, text)

    def read_summary(self) -> dict[str, Any]:
        """The summary written by :meth:`write_summary`."""
        return _read_json(self.path / self.SUMMARY)

    def write_predictions(self, split: str, index: Any, y_true: Any, y_pred: Any, *,
                          source: Sequence[str] | None = None) -> Path:
        """Write one split's predictions to ``predictions.csv`` (``split,index,source,y_true,y_pred``).

        Rows of other splits already in the file are kept; rows of the same split are replaced. Floats
        are written with full precision (``nan``/``inf`` for non-finite values).

        Parameters
        ----------
        split : str
            E.g. ``"val"`` or ``"test"``.
        index : array-like or torch.Tensor of int, shape ``(n,)``
            Sample indices in the dataset.
        y_true, y_pred : array-like or torch.Tensor, shape ``(n,)``
            Targets and predictions, in the original target units.
        source : sequence of str, optional
            Where each row comes from (:meth:`RegressionDataset.source <clss.data.RegressionDataset.source>`:
            an image's file path, a table's row number); default: the index.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        ValueError
            Empty split name or arrays of different lengths or not 1-D.
        """
        if not isinstance(split, str) or not split:
            raise ValueError(f"split must be a non-empty string, got {split!r}")
        idx = _vector(index, "index", np.int64)
        t = _vector(y_true, "y_true", np.float64)
        p = _vector(y_pred, "y_pred", np.float64)
        src = [str(i) for i in idx.tolist()] if source is None else [str(x) for x in source]
        if not len(idx) == len(t) == len(p) == len(src):
            raise ValueError(f"index, source, y_true and y_pred must have the same length, got {len(idx)}, "
                             f"{len(src)}, {len(t)} and {len(p)}")
        path = self.path / self.PREDICTIONS
        rows = [row for row in self._prediction_rows(path) if row[0] != split]
        rows += [[split, str(i), f, repr(float(a)), repr(float(b))]
                 for i, f, a, b in zip(idx.tolist(), src, t.tolist(), p.tolist(), strict=True)]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_PREDICTION_COLUMNS)
        writer.writerows(rows)
        return atomic_write_text(path, buffer.getvalue())

    @staticmethod
    def _prediction_rows(path: Path) -> list[list[str]]:
        if not path.is_file():
            return []
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows or rows[0] != _PREDICTION_COLUMNS:
            raise ValueError(f"{path} does not start with the header {','.join(_PREDICTION_COLUMNS)}; "
                             f"move it away before writing predictions")
        return rows[1:]

    # -- paths --------------------------------------------------------------------------------------

    def checkpoint_path(self, which: Literal["last", "best"]) -> Path:
        """Path of the ``last.pt`` (latest state, for resuming) or ``best.pt`` (best on validation)
        checkpoint."""
        if which not in ("last", "best"):
            raise ValueError(f"which must be 'last' or 'best', got {which!r}")
        return self.path / f"{which}.pt"

    def plot_path(self, name: str) -> Path:
        """Path ``plots/NAME.png`` (the ``plots`` folder is created).

        Raises
        ------
        ValueError
            If ``name`` is empty or contains a path separator.
        """
        stem = name.removesuffix(".png")
        if not stem or "/" in stem or "\\" in stem or stem.startswith("."):
            raise ValueError(f"a plot name must be a plain file name such as 'learning_curves', got {name!r}")
        folder = self.path / self.PLOTS
        folder.mkdir(exist_ok=True)
        return folder / f"{stem}.png"


def run_status(path: str | Path) -> str | None:
    """The ``status`` in the ``summary.json`` of the run directory ``path`` (``"finished"``,
    ``"diverged"``; None when there is none or it is unreadable)."""
    try:
        return json.loads((Path(path) / RunDir.SUMMARY).read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None
