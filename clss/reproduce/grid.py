"""A grid of ordinary training runs: plan, run in parallel processes, skip finished runs, resume the rest.

Each grid run is one ``clss train`` run directory built from a fully resolved configuration, so it can be
inspected, evaluated and resumed by itself. The plan is written to ``OUT/plan.json``; every run is executed
by a separate process, ``python -m clss.reproduce.worker OUT/plan.json INDEX`` (:func:`run_cell`), which
is also what a SLURM array task runs (:func:`emit_slurm`). Nothing here knows about tables: a caller builds
the :class:`GridRun` list (``clss reproduce`` from a table file; any other grid the same way).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from clss.atomic import atomic_write_text
from clss.config import TrainConfig
from clss.engine.rundir import RunDir, run_status

__all__ = [
    "PLAN_FILE",
    "GridResult",
    "GridRun",
    "emit_slurm",
    "load_plan",
    "run_cell",
    "run_grid",
    "run_state",
    "write_plan",
]

PLAN_FILE = "plan.json"
LOG_DIR = "logs"
# Settings a grid run may differ in from an existing run directory (how it runs, not what it computes).
_HOW = ("device", "threads", "progress", "workers", "pin_memory")


@dataclass(frozen=True)
class GridRun:
    """One run of a grid: its labels (``method``, ``setting``, ``seed``), its directory ``run_dir``
    (relative to the grid's output folder) and its resolved configuration (``TrainConfig.to_dict()``)."""

    method: str
    setting: str
    seed: int
    run_dir: str
    config: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method}/{self.setting}/seed{self.seed}"


@dataclass
class GridResult:
    """What :func:`run_grid` did: runs skipped as finished, run now, and failed (name -> log file)."""

    skipped: list[str]
    ran: list[str]
    failed: dict[str, str]


def run_state(path: str | Path) -> str:
    """``"new"`` (no directory or an empty one), ``"finished"``, ``"diverged"`` or ``"partial"`` (a run
    directory that can be resumed).

    Raises
    ------
    ValueError
        ``path`` is a file, or a directory holding other files than a run's.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ValueError(f"{p} is a file, not a run directory; remove it or choose another --out")
    if not p.is_dir() or not any(p.iterdir()):
        return "new"
    if not (p / RunDir.CONFIG).is_file():
        raise ValueError(f"{p} holds other files than a run directory; remove them or choose another --out")
    status = run_status(p)
    return status if status in ("finished", "diverged") else "partial"


def _differences(saved: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    saved = TrainConfig.from_dict(saved).to_dict()
    return [k for k in sorted(set(saved) | set(planned)) if k not in _HOW
            and json.dumps(saved.get(k), sort_keys=True, default=str)
            != json.dumps(planned.get(k), sort_keys=True, default=str)]


def check_existing(out: Path, runs: Sequence[GridRun]) -> dict[str, str]:
    """The state of every run's directory under ``out`` (``run.name`` -> :func:`run_state`), after checking
    that each existing run was made with the planned configuration.

    Raises
    ------
    ValueError
        A run directory of the grid holds a run with another configuration (the message names the keys).
    """
    from clss.config import load_yaml

    states = {}
    for run in runs:
        path = out / run.run_dir
        state = run_state(path)
        if state != "new":
            diff = _differences(load_yaml(path / RunDir.CONFIG), run.config)
            if diff:
                shown = ", ".join(f"{k} (there: {load_yaml(path / RunDir.CONFIG).get(k)!r}, planned: "
                                  f"{run.config.get(k)!r})" for k in diff[:3])
                raise ValueError(f"{path} holds a run with another configuration: {shown}; use another --out "
                                 f"for a grid with other settings")
        states[run.name] = state
    return states


def write_plan(out: str | Path, runs: Sequence[GridRun], meta: dict[str, Any] | None = None) -> Path:
    """Write ``OUT/plan.json`` (the runs, in task order, and ``meta``); returns its path."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder for the grid's run directories")
    out.mkdir(parents=True, exist_ok=True)
    path = out / PLAN_FILE
    atomic_write_text(path, json.dumps({"meta": meta or {}, "runs": [asdict(r) for r in runs]}, indent=1,
                                       default=str) + "\n")
    return path


def load_plan(path: str | Path) -> tuple[list[GridRun], dict[str, Any]]:
    """The runs and metadata of a ``plan.json`` written by :func:`write_plan`."""
    p = Path(path)
    if p.is_dir():
        p = p / PLAN_FILE
    if not p.is_file():
        raise FileNotFoundError(f"no grid plan at {p} (clss reproduce TABLE --out DIR writes "
                                f"DIR/{PLAN_FILE})")
    values = json.loads(p.read_text(encoding="utf-8"))
    return [GridRun(**r) for r in values["runs"]], values.get("meta", {})


def run_cell(out: str | Path, run: GridRun, *, threads: int | None = None) -> str:
    """Bring one grid run to its end: train it when new, resume it when interrupted, leave it when finished
    (or diverged: resuming would diverge again). Returns the state it found.

    ``threads`` caps the torch CPU threads of a configuration whose ``threads`` is ``"auto"`` (the grid
    gives each of its parallel jobs ``cores / jobs``).
    """
    import torch

    from clss.engine.trainer import train

    path = Path(out) / run.run_dir
    state = run_state(path)
    if threads is not None:
        torch.set_num_threads(threads)
    if state == "new":
        train(TrainConfig.from_dict(run.config), path)
    elif state == "partial":
        train(None, path, resume=True, overrides={"progress": False})
    return state


def _worker_command(plan: Path, index: int) -> list[str]:
    return [sys.executable, "-m", "clss.reproduce.worker", str(plan), str(index)]


def run_grid(out: str | Path, runs: Sequence[GridRun], *, jobs: int = 1, meta: dict[str, Any] | None = None,
             progress: bool = True, log: Callable[[str], None] | None = None) -> GridResult:
    """Run every unfinished run of the grid, ``jobs`` processes at a time, and wait for them.

    Finished (and diverged) runs are skipped; interrupted ones resume from their last checkpoint. Each job
    runs ``python -m clss.reproduce.worker OUT/plan.json INDEX`` with ``cores / jobs`` torch threads; its
    output goes to ``OUT/logs/<method>-<setting>-seed<k>.log``. A failed run is reported (with its log
    file) and the others go on.

    Parameters
    ----------
    out : the grid's folder (created).
    runs : the grid, in task order.
    jobs : processes at a time (>= 1).
    meta : stored in ``plan.json`` beside the runs.
    progress : a rich bar of finished runs on a terminal; otherwise (or False) one line per event to
        ``log`` (default: stderr).

    Raises
    ------
    ValueError
        ``jobs`` < 1, ``out`` is a file, or an existing run directory holds another configuration.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; pass a folder for the grid's run directories")
    states = check_existing(out, runs)
    plan = write_plan(out, runs, meta)
    (out / LOG_DIR).mkdir(exist_ok=True)
    todo = [i for i, r in enumerate(runs) if states[r.name] in ("new", "partial")]
    result = GridResult(skipped=[r.name for r in runs if states[r.name] not in ("new", "partial")], ran=[],
                        failed={})
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "CLSS_GRID_THREADS": str(threads)}
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    running: dict[int, tuple[subprocess.Popen, Any]] = {}
    bar = _Progress(len(runs), len(result.skipped), enabled=progress, log=say)
    with bar, _forward_sigterm(running):
        try:
            while todo or running:
                while todo and len(running) < jobs:
                    i = todo.pop(0)
                    handle = open(out / LOG_DIR / _log_name(runs[i]), "a", encoding="utf-8")  # noqa: SIM115
                    running[i] = (subprocess.Popen(_worker_command(plan, i), stdout=handle,
                                                   stderr=subprocess.STDOUT, env=env), handle)
                    bar.event(f"started {runs[i].name} ({states[runs[i].name]})")
                for i, (proc, handle) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    handle.close()
                    del running[i]
                    if proc.returncode == 0:
                        result.ran.append(runs[i].name)
                        bar.done(f"finished {runs[i].name}")
                    else:
                        result.failed[runs[i].name] = str(out / LOG_DIR / _log_name(runs[i]))
                        bar.done(f"FAILED {runs[i].name} (exit code {proc.returncode}; log: "
                                 f"{result.failed[runs[i].name]})")
                time.sleep(0.2)
        except KeyboardInterrupt:  # the jobs got the same Ctrl-C or SIGTERM: each checkpoints and stops
            for proc, handle in running.values():
                proc.wait()
                handle.close()
            raise
    return result


@contextlib.contextmanager
def _forward_sigterm(running: dict[int, tuple[subprocess.Popen, Any]]) -> Iterator[None]:
    """While the grid runs, a SIGTERM to this process (``kill PID``) is passed on to the running jobs, which
    checkpoint and stop, and then stops the grid as Ctrl-C does. Main thread and default handler only."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        for proc, _ in running.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _log_name(run: GridRun) -> str:
    return f"{run.method}-{run.setting}-seed{run.seed}.log"


class _Progress:
    """Finished runs of a grid: a rich bar on a terminal, else one log line per event."""

    def __init__(self, total: int, done: int, *, enabled: bool, log: Callable[[str], None]) -> None:
        self.total, self.count, self.log = total, done, log
        self._bar = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("grid runs"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.description}"))
            self._task = self._bar.add_task("", total=total, completed=done)

    def __enter__(self) -> _Progress:
        if self._bar is not None:
            self._bar.start()
        elif self.count:
            self.log(f"{self.count}/{self.total} runs already finished")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def event(self, line: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=line)
        else:
            self.log(line)

    def done(self, line: str) -> None:
        self.count += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=line)
            if line.startswith("FAILED"):
                self._bar.console.print(line)
        else:
            self.log(f"[{self.count}/{self.total}] {line}")


def emit_slurm(out: str | Path, runs: Sequence[GridRun], *, report_command: str, job_name: str,
               meta: dict[str, Any] | None = None, time_limit_s: float | None = None) -> tuple[Path, Path]:
    """Write the grid as a SLURM job array: ``OUT/plan.json``, ``OUT/slurm/manifest.tsv`` (one line per
    array index: index, method, setting, seed, run directory) and ``OUT/slurm/reproduce.sbatch`` (array
    ``0-(N-1)``, one run per task through :func:`run_cell`, so finished runs are skipped and interrupted ones
    resume when resubmitted). ``report_command`` (the command that builds the report once the array has
    finished) is written into the script's header. Returns the script and manifest paths.

    Raises
    ------
    ValueError
        ``out`` is a file, the grid is empty, or an existing run directory holds another configuration.
    """
    if not runs:
        raise ValueError("the grid is empty: nothing to submit")
    out = Path(out).resolve()
    check_existing(out, runs)
    plan = write_plan(out, runs, meta)
    folder = out / "slurm"
    folder.mkdir(exist_ok=True)
    (out / LOG_DIR).mkdir(exist_ok=True)
    manifest = folder / "manifest.tsv"
    lines = ["index\tmethod\tsetting\tseed\trun_dir"] + [
        f"{i}\t{r.method}\t{r.setting}\t{r.seed}\t{out / r.run_dir}" for i, r in enumerate(runs)]
    atomic_write_text(manifest, "\n".join(lines) + "\n")
    limit = ""
    if time_limit_s is not None and math.isfinite(time_limit_s):
        minutes = max(10, math.ceil(2 * time_limit_s / 60))  # twice the longest estimate, at least 10 min
        limit = f"#SBATCH --time={minutes // 60:02d}:{minutes % 60:02d}:00\n"
    script = folder / "reproduce.sbatch"
    python = shlex.quote(sys.executable)
    atomic_write_text(script, (
        "#!/bin/bash\n"
        f"#SBATCH --job-name={job_name}\n"
        f"#SBATCH --array=0-{len(runs) - 1}\n"
        f"#SBATCH --output={out / LOG_DIR}/task-%a.log\n"
        "#SBATCH --cpus-per-task=1\n"
        f"{limit}"
        "# Add your cluster's partition/GPU lines here (e.g. #SBATCH --gres=gpu:1 for image tables).\n"
        f"# One grid run per array task; the task list is {manifest}.\n"
        "# Resubmitting the script skips finished runs and resumes interrupted ones.\n"
        "# Once every task has finished, build the report with:\n"
        f"#   {report_command}\n"
        "set -euo pipefail\n"
        f"exec \"${{CLSS_PYTHON:-{python}}}\" -m clss.reproduce.worker {shlex.quote(str(plan))} "
        "\"$SLURM_ARRAY_TASK_ID\"\n"))
    script.chmod(0o755)
    return script, manifest
