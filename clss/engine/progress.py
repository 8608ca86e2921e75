"""A rich progress bar for training loops, with live columns for the latest scalars (loss, val_mae, ...).

Output modes:

* interactive terminal or Jupyter, ``enabled=True``: a live bar (steps done/total, elapsed, remaining)
  followed by ``name=value`` for every scalar passed to :meth:`TrainingProgress.update`;
* not a terminal (CI logs, files, pipes), ``enabled=True``: nothing, or with ``log_every=N`` one plain line
  ``train step 200/1000 loss=0.123 val_mae=0.45`` each time the step crosses a multiple of ``N`` (and at
  the last step);
* ``enabled=False`` (e.g. ranks other than 0): nothing at all.

:meth:`~TrainingProgress.update` only stores the values; they are formatted (and tensors converted with
``float()``, which synchronises CUDA) at most once per ``refresh_interval`` seconds, so calling it every
step costs about a microsecond.
"""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["TrainingProgress"]


def _format_value(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(number) or math.isinf(number):
        return str(number)
    return f"{number:.4g}"


class TrainingProgress:
    """Progress of a training loop over ``total_steps`` steps (see the module docstring for the modes).

    Parameters
    ----------
    total_steps : int
        Number of steps of the whole run (>= 0).
    enabled : bool, default True
        False prints nothing at all (use it on every rank but 0).
    start : int, default 0
        Step already done (a resumed run).
    description : str, default "train"
        Label in front of the bar and of the log lines.
    unit : str, default "step"
        What is counted, in the log lines (``predict images 512/2000``).
    log_every : int, optional
        Without a terminal, print one line every ``log_every`` steps; None (default) prints nothing.
    console : rich.console.Console, optional
        Where to draw (default: a new console on stdout); share the one of a ``RichHandler`` so that log
        messages appear above the bar.
    refresh_interval : float, default 0.1
        Least number of seconds between two redraws of the scalars and the bar.

    Examples
    --------
    >>> with TrainingProgress(1000, enabled=False) as bar:
    ...     for step in range(1, 1001):
    ...         bar.update(step, loss=0.5)
    """

    def __init__(self, total_steps: int, *, enabled: bool = True, start: int = 0, description: str = "train",
                 unit: str = "step", log_every: int | None = None, console: Console | None = None,
                 refresh_interval: float = 0.1) -> None:
        if total_steps < 0:
            raise ValueError(f"total_steps must be >= 0, got {total_steps}")
        if not 0 <= start <= total_steps:
            raise ValueError(f"start must be between 0 and total_steps={total_steps}, got {start}")
        if log_every is not None and log_every < 1:
            raise ValueError(f"log_every must be a positive number of steps or None, got {log_every}")
        self.total_steps = total_steps
        self.step = start
        self.scalars: dict[str, Any] = {}
        self.description = description
        self.unit = unit
        self._console = console if console is not None else Console()
        self.live = enabled and (self._console.is_interactive or self._console.is_jupyter)
        self._log_every = log_every if enabled and not self.live else None
        self._last_logged = start
        self._interval = refresh_interval
        self._last_push = -math.inf
        self._progress: Progress | None = None
        self._task = TaskID(0)

    def __enter__(self) -> TrainingProgress:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def start(self) -> None:
        """Show the live bar (no-op when not live or already started)."""
        if not self.live or self._progress is not None:
            return
        self._progress = Progress(
            TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("<"), TimeRemainingColumn(), TextColumn("{task.fields[scalars]}"),
            console=self._console, transient=False, refresh_per_second=max(1.0, 1.0 / self._interval))
        self._task = self._progress.add_task(self.description, total=self.total_steps, completed=self.step,
                                             scalars="")
        self._progress.start()

    def update(self, step: int, **scalars: Any) -> None:
        """Record that ``step`` steps are done and the latest values of some scalars.

        Parameters
        ----------
        step : int
            Steps done so far (absolute, not an increment).
        **scalars
            Latest values (floats, ints, 0-d tensors). A scalar keeps its last value until updated; None
            means "no new value" (e.g. ``val_mae`` between evaluations).
        """
        self.step = step
        for name, value in scalars.items():
            if value is not None:
                self.scalars[name] = value
        if self._progress is not None:
            now = time.monotonic()
            if now - self._last_push >= self._interval or step >= self.total_steps:
                self._push(self._progress, now)
        elif self._log_every is not None and (step // self._log_every > self._last_logged // self._log_every
                                              or step >= self.total_steps > self._last_logged):
            self._last_logged = step
            line = f"{self.description} {self.unit} {step}/{self.total_steps} {self._format()}"
            self._console.print(line.rstrip(), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Draw the final state and stop the live bar (idempotent)."""
        if self._progress is None:
            return
        self._push(self._progress, time.monotonic())
        self._progress.stop()
        self._progress = None

    def _format(self) -> str:
        return " ".join(f"{name}={_format_value(value)}" for name, value in self.scalars.items())

    def _push(self, progress: Progress, now: float) -> None:
        self._last_push = now
        progress.update(self._task, completed=self.step, scalars=self._format())
