"""Train supervised and GCLSS on the built-in diabetes data with the Python API of ``clss train``.

``resolve_config`` builds the same configuration as the command line (defaults < dataset preset <
file values < overrides) and ``clss.engine.train`` writes one run directory per method. Both runs use
the same seed, hence the same labelled rows (20 % of the training split), the same initial weights and
the same validation split for checkpoint selection.

Run: ``python examples/train_python_api.py [OUT_DIR]`` (CPU, about 15 s); without OUT_DIR
the run directories go to a temporary folder removed at exit.
"""

import sys
import tempfile
from pathlib import Path

from clss.config import resolve_config
from clss.engine import train


def main(out: Path, *, kept: bool) -> None:
    results = {}
    for method in ("supervised", "gclss"):
        config = resolve_config(overrides={"dataset": "diabetes", "method": method, "labeled": "20%",
                                           "seed": 0, "threads": 1, "progress": False})
        results[method] = train(config, out / method)

    summary = results["gclss"].summary
    print(f"diabetes: {summary['labeled']} labelled and {summary['unlabeled']} unlabelled training rows, "
          f"{summary['steps']} steps, selection: {summary['selection']}")
    print(f"{'method':<12}{'test MAE':>10}{'test RMSE':>11}{'test R2':>9}{'seconds':>9}")
    for method, result in results.items():
        test = result.summary["test"]
        print(f"{method:<12}{test['mae']:>10.2f}{test['rmse']:>11.2f}{test['r2']:>9.3f}"
              f"{result.summary['seconds']:>9.1f}")

    run_dir = results["gclss"].run_dir
    print(f"\nthe gclss run directory {run_dir} holds:")
    for path in sorted(run_dir.rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(run_dir)}")
    if kept:
        print(f"re-evaluate it with: clss eval {run_dir}")
    else:  # the folder is deleted when main returns: an eval command for it could not work
        print("these run directories are temporary and removed at exit; to keep them and re-evaluate with "
              "`clss eval OUT_DIR/gclss`, run: python examples/train_python_api.py OUT_DIR")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]), kept=True)
    else:
        with tempfile.TemporaryDirectory(prefix="clss-example-") as tmp:
            main(Path(tmp), kept=False)
