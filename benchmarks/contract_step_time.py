"""Tabular training-step time before and after the data → step contract, measured side by side.

The contract moved batching into :class:`clss.data.SemiSupervisedLoader`; tabular rows keep an in-memory fast
path, and this script checks that a tabular step did not get slower (target: after / before <= 1.1).

Method: ``--before REF`` (default ``db7696c``, the code before the contract) is checked out into a temporary
git worktree. After one untimed 3-step run per tree (numba compiles its kernels into the fresh tree's
cache), the script alternates short ``clss train`` runs between that tree and the current tree (swapping
which goes first), each in its own Python process whose ``clss`` and ``clss_cli`` packages come from that
tree (the process asserts it). Every run: the operator-sde preset (MLP 241-100-100, full batch of the
paper's 1/5 protocol: 200 labelled and 200 unlabelled rows), ``--method`` (default gclss), ``--steps``
steps, validation off (``--eval-every 0``), no plots, one torch thread (``OMP_NUM_THREADS=1``,
``--threads 1``). Data: the published operator-sde files in ``../shared/data/operator_sde`` when present,
else the built-in generator's data. The time per step is the run's training-loop seconds
(``summary.json``: no start-up, no final evaluation) divided by its steps. The report gives the per-tree
median over ``--reps`` alternations and the ratio of medians.

``--after REF`` measures another commit instead of the current tree (e.g. to attribute a difference).

Usage: ``python benchmarks/contract_step_time.py [--before REF] [--after REF] [--reps 7] [--steps 300]
[--method gclss]``.
Writes ``benchmarks/results/contract_step_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "operator_sde"
RESULTS = ROOT / "benchmarks" / "results" / "contract_step_time.json"

# Runs `clss ...` with the clss and clss_cli packages of TREE (sys.argv[1]); the CLI lives in TREE/cli.
DRIVER = """
import importlib.util, sys
tree = sys.argv[1]
sys.path.insert(0, tree)
spec = importlib.util.spec_from_file_location("clss_cli", tree + "/cli/__init__.py",
                                              submodule_search_locations=[tree + "/cli"])
module = importlib.util.module_from_spec(spec)
sys.modules["clss_cli"] = module
spec.loader.exec_module(module)
import clss
assert clss.__file__.startswith(tree), (clss.__file__, tree)
from clss_cli.main import main
main(sys.argv[2:], prog_name="clss")
"""


def _run(tree: Path, out: Path, args: argparse.Namespace) -> float:
    """ms per step of one ``clss train`` run of ``tree``."""
    cmd = [sys.executable, "-c", DRIVER, str(tree), "train", "--dataset", "operator-sde",
           "--method", args.method, "--steps", str(args.steps), "--eval-every", "0", "--threads", "1",
           "--device", "cpu", "--no-progress", "--set", "plots=false", "--out", str(out)]
    if SHARED.is_dir():
        cmd += ["--data-dir", str(SHARED)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(tree)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"clss train failed in {tree}:\n{done.stderr[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return 1000 * summary["seconds"] / summary["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="db7696c", help="git ref of the code before (default db7696c)")
    parser.add_argument("--after", help="git ref of the code after (default: the current tree as it is)")
    parser.add_argument("--reps", type=int, default=7, help="alternations (each runs both trees once)")
    parser.add_argument("--steps", type=int, default=300, help="training steps per run")
    parser.add_argument("--method", default="gclss", help="training method (default gclss)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clss-contract-") as tmp:
        trees = {"before": args.before, "after": args.after}
        made = [Path(tmp) / name for name, ref in trees.items() if ref is not None]
        for tree in made:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                            trees[tree.name]], check=True, capture_output=True)
        before, after = Path(tmp) / "before", (Path(tmp) / "after" if args.after else ROOT)
        try:
            for name, tree in (("before", before), ("after", after)):  # compiles and caches numba kernels
                _run(tree, Path(tmp) / f"warmup-{name}", argparse.Namespace(**{**vars(args), "steps": 3}))
            times: dict[str, list[float]] = {"before": [], "after": []}
            for rep in range(args.reps):
                pair = [("before", before), ("after", after)]
                for name, tree in pair if rep % 2 == 0 else pair[::-1]:  # neither tree always goes first
                    times[name].append(_run(tree, Path(tmp) / f"{name}-{rep}", args))
                print(f"rep {rep + 1}/{args.reps}: before {times['before'][-1]:.3f} ms/step, "
                      f"after {times['after'][-1]:.3f} ms/step", flush=True)
        finally:
            for tree in made:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                               check=False, capture_output=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["after"] / medians["before"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=False).stdout.strip()
    result = {"before": args.before,
              "after": args.after or head + (" (+ uncommitted changes)" if _dirty() else ""),
              "method": args.method, "steps": args.steps, "reps": args.reps,
              "data": str(SHARED) if SHARED.is_dir() else "built-in generator", "ms_per_step": times,
              "median_ms_per_step": medians, "ratio_after_over_before": ratio, "target": 1.1,
              "machine": platform.platform(), "python": platform.python_version()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"{args.method}, operator-sde preset, {args.steps} steps, one thread, median of {args.reps}:")
    print(f"  before ({args.before}): {medians['before']:.3f} ms/step")
    print(f"  after  ({result['after']}): {medians['after']:.3f} ms/step")
    print(f"  ratio after/before: {ratio:.3f} (target <= 1.1)   -> {RESULTS}")


def _dirty() -> bool:
    status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                            capture_output=True, text=True, check=False)
    return bool(status.stdout.strip())


if __name__ == "__main__":
    main()
