"""One grid run in its own process: ``python -m clss.reproduce.worker PLAN_JSON INDEX``.

What every job of :func:`clss.reproduce.grid.run_grid` and every SLURM array task runs: the run at
``INDEX`` of the plan is trained, resumed or left as it is (:func:`clss.reproduce.grid.run_cell`). Exit
code 0 when the run is finished, 1 when it failed (the error is printed), 2 for a bad command line, 130 when
Ctrl-C or SIGTERM stopped it (the run checkpointed first; running the task again resumes it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2 or not argv[1].isdigit():
        print("usage: python -m clss.reproduce.worker PLAN_JSON INDEX", file=sys.stderr)
        return 2
    from clss.engine import TrainingInterrupted
    from clss.reproduce.grid import load_plan, run_cell

    plan = Path(argv[0])
    runs, _ = load_plan(plan)
    index = int(argv[1])
    if index >= len(runs):
        print(f"task index {index} is out of range: the plan has {len(runs)} runs (0-{len(runs) - 1})",
              file=sys.stderr)
        return 2
    run = runs[index]
    threads = os.environ.get("CLSS_GRID_THREADS")  # set by run_grid: cores / jobs
    print(f"grid run {index}: {run.name} in {run.run_dir}", flush=True)
    try:
        state = run_cell(plan if plan.is_dir() else plan.parent, run,
                         threads=int(threads) if threads else None)
    except TrainingInterrupted as exc:
        print(f"grid run {index}: {run.name}: {exc}", flush=True)
        return 130
    print(f"grid run {index}: {run.name}: was {state}, now done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
