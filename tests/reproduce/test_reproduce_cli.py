"""``clss reproduce``: dry run, SLURM emission, report-only, and (slow) real grids in parallel processes that
resume after a job is killed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _reproduce_helpers import write_table
from click.testing import CliRunner

from clss.reproduce import load_plan, run_cell
from clss.reproduce.worker import main as worker_main
from clss_cli.main import main


def invoke(*args):
    return CliRunner().invoke(main, ["reproduce", *map(str, args)])


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    table = write_table(tmp_path)
    out = tmp_path / "grid"
    result = invoke(table, "--seeds", 0, 1, 2, "--out", out, "--dry-run", "--methods", "supervised,gclss")
    assert result.exit_code == 0, result.output
    assert "diabetes-tiny: 12 runs" in result.output and "estimated total" in result.output
    assert "documented" in result.output and "assumed" in result.output
    assert "nothing was written" in result.output and not out.exists()
    shipped = invoke("operator-sde", "--dry-run", "--quick", "--methods", "supervised,clss,gclss")
    assert shipped.exit_code == 0, shipped.output
    assert "18 runs" in shipped.output and "10000" in shipped.output and "1-4" not in shipped.output
    example = Path(__file__).resolve().parents[2] / "examples" / "tables" / "digits-rotation.yaml"
    costless = invoke(example, "--dry-run", "--methods", "supervised,gclss")  # a table without a cost block
    assert costless.exit_code == 0, costless.output
    assert "estimated total: unknown" in costless.output and " 0 s" not in costless.output


def test_slurm_emission_writes_an_array_whose_range_and_manifest_match_the_plan(tmp_path, capsys):
    table = write_table(tmp_path)
    out = tmp_path / "grid"
    result = invoke(table, "--seeds", "0,1", "--methods", "supervised", "--methods", "gclss", "--out", out,
                    "--emit", "slurm", "--set", "optimizer.lr=0.01")
    assert result.exit_code == 0, result.output
    runs, meta = load_plan(out)
    assert len(runs) == 8 and meta["name"] == "diabetes-tiny"
    script = (out / "slurm" / "reproduce.sbatch").read_text()
    assert "#SBATCH --array=0-7\n" in script and "clss.reproduce.worker" in script
    assert '"$SLURM_ARRAY_TASK_ID"' in script and "--report-only" in script and "#SBATCH --time=" in script
    lines = (out / "slurm" / "manifest.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["index", "method", "setting", "seed", "run_dir"] and len(lines) == 9
    for i, (line, run) in enumerate(zip(lines[1:], runs, strict=True)):
        assert line.split("\t") == [str(i), run.method, run.setting, str(run.seed),
                                    str(out.resolve() / run.run_dir)]
    assert all(r.config["optimizer"]["lr"] == 0.01 for r in runs)
    assert not any((out / r.run_dir).exists() for r in runs)  # nothing trained
    # an array task is the worker on the plan (here in this process): it trains exactly its run
    assert worker_main([str(out / "plan.json"), "3"]) == 0
    assert [(out / r.run_dir / "summary.json").is_file() for r in runs] == [i == 3 for i in range(8)]
    assert worker_main([str(out / "plan.json"), "8"]) == 2
    assert "task index 8 is out of range: the plan has 8 runs (0-7)" in capsys.readouterr().err
    # the report command printed for after the array: it builds the report from what has finished
    report = invoke(table, "--seeds", "0,1", "--methods", "supervised,gclss", "--out", out, "--report-only",
                    "--set", "optimizer.lr=0.01")
    assert report.exit_code == 0, report.output
    assert "- gclss/p20/seed0: new" in (out / "table.md").read_text()


def _run_grid_command(table, out, *extra):
    return [sys.executable, "-m", "clss_cli.main", "reproduce", str(table), "--out", str(out),
            "--no-progress", *map(str, extra)]


@pytest.mark.slow
def test_a_tiny_real_grid_runs_in_parallel_processes(tmp_path):
    table = write_table(tmp_path)
    out = tmp_path / "grid"
    done = subprocess.run(_run_grid_command(table, out, "--jobs", 2), capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    runs, _ = load_plan(out)
    assert len(runs) == 12
    for run in runs:
        summary = json.loads((out / run.run_dir / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["method"] == run.method
        assert (out / "logs" / f"{run.method}-{run.setting}-seed{run.seed}.log").is_file()
    for name in ("table.md", "table.csv", "runs.csv", "figure.png"):
        assert (out / name).is_file()
    assert "[12/12] finished" in done.stderr
    again = subprocess.run(_run_grid_command(table, out, "--jobs", 2), capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0 and "0 runs trained, 12 already done" in again.stdout


@pytest.mark.slow
def test_an_interrupted_grid_resumes_and_reuses_finished_runs(tmp_path):
    from _reproduce_helpers import TINY

    values = {**TINY, "config": {**TINY["config"], "steps": 400, "eval_every": 20}}
    table = write_table(tmp_path, values)
    out = tmp_path / "grid"
    args = ("--methods", "supervised", "--settings", "p20", "--seeds", "0,1")
    first = out / "supervised/p20/seed0"
    # finish seed 0 first, in this process, so the grid must reuse it
    from clss.reproduce import load_table, plan_table

    runs = plan_table(load_table(table), methods=["supervised"], settings=["p20"], seeds=[0, 1])
    run_cell(out, runs[0])
    finished_at = (first / "summary.json").stat().st_mtime_ns
    proc = subprocess.Popen(_run_grid_command(table, out, *args), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    log = out / "supervised/p20/seed1/metrics.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 40):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the grid and its job die mid-run (no checkpoint on the way out)
    proc.wait()
    assert log.is_file(), "the job never started"
    summary = out / "supervised/p20/seed1/summary.json"
    assert not summary.exists()
    rerun = subprocess.run(_run_grid_command(table, out, *args), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "1 runs trained, 1 already done" in rerun.stdout
    assert (first / "summary.json").stat().st_mtime_ns == finished_at
    assert json.loads(summary.read_text())["status"] == "finished"
    resumes = (out / "supervised/p20/seed1/resumes.jsonl").read_text().splitlines()
    assert len(resumes) == 1 and json.loads(resumes[0])["step"] >= 20
    # the resumed run ends where an uninterrupted one does
    direct = tmp_path / "direct"
    run_cell(direct, runs[1])
    assert (json.loads(summary.read_text())["test"]
            == json.loads((direct / runs[1].run_dir / "summary.json").read_text())["test"])
    assert Path(out / "table.md").is_file()


@pytest.mark.slow
def test_sigterm_to_the_grid_checkpoints_its_job_and_a_rerun_completes(tmp_path):
    """A scheduler's time limit or `kill PID`: the grid passes SIGTERM on, the job checkpoints the step under
    way (not only the last evaluation) and stops; the same command then finishes the run."""
    from _reproduce_helpers import TINY

    from clss.engine import load_checkpoint

    values = {**TINY, "config": {**TINY["config"], "steps": 400, "eval_every": 100}}
    table = write_table(tmp_path, values)
    out = tmp_path / "grid"
    args = ("--methods", "supervised", "--settings", "p20", "--seeds", "0")
    proc = subprocess.Popen(_run_grid_command(table, out, *args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    run = out / "supervised/p20/seed0"
    deadline = time.monotonic() + 600
    log = run / "metrics.jsonl"
    while time.monotonic() < deadline and not (log.is_file() and len(log.read_text().splitlines()) >= 30):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # the grid process only: it passes the signal on to its job
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "interrupted" in stderr, stderr[-2000:]
    step = load_checkpoint(run / "last.pt")["step"]
    logged = [json.loads(line)["step"] for line in log.read_text().splitlines()]
    assert step == logged[-1] and 30 <= step < 400  # the step under way, checkpointed on the way out
    rerun = subprocess.run(_run_grid_command(table, out, *args), capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"


def test_the_help_names_every_shipped_table():
    from clss.reproduce import list_tables

    text = " ".join(CliRunner().invoke(main, ["reproduce", "--help"]).output.split())
    for name in list_tables():
        assert name in text, name
