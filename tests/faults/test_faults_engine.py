"""Fault suite of the training engine: bad checkpoints, refused configurations, interrupted writes,
SIGKILL and SIGINT followed by resume, resume conflicts, finished runs and a full disk.

Every interruption must resume to the same ``metrics.jsonl`` lines and the same final metrics as an
uninterrupted run, and every refusal must leave the disk as it was.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from clss.atomic import atomic_write_text
from clss.config import resolve_config
from clss.engine import (
    CorruptCheckpointError,
    RunDir,
    TrainingInterrupted,
    evaluate_run,
    load_checkpoint,
    save_checkpoint,
    train,
)
from clss.engine.checkpoint import FORMAT_KEY
from clss_cli.main import main

BASE = {"dataset": "diabetes", "method": "clss", "steps": 6, "eval_every": 3, "progress": False, "threads": 1,
        "batch_size": 12, "unlabeled_batch_size": 12, "plots": False}


def cfg(**overrides):
    return resolve_config({}, {**BASE, **overrides})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of the fault configuration: its log and summary."""
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = train(cfg(), out).summary
    return RunDir(out, resume=True).read_log(), summary, out


def assert_same_log(records, expected):
    """Same steps and keys; floats equal up to 1e-6 of each column's scale (runs are bitwise identical on
    one machine, the tolerance only guards against kernels that differ between processes)."""
    assert [r["step"] for r in records] == [r["step"] for r in expected]
    scale = {k: max(abs(r[k]) for r in expected if k in r) for r in expected for k in r}
    for got, want in zip(records, expected, strict=True):
        assert got.keys() == want.keys()
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-9 * max(scale[key], 1e-300)), key


def assert_same_summary(summary, expected):
    for split in ("val", "test"):
        for key in ("mae", "rmse", "r2"):
            assert summary[split][key] == pytest.approx(expected[split][key], rel=1e-6,
                                                        abs=1e-9 * abs(expected[split]["mae"]))


def finish(out: Path, config) -> dict:
    """What a user does after a crash: resume when the directory holds a checkpoint, else start again."""
    if (out / "last.pt").exists():
        return train(None, out, resume=True).summary
    assert not out.exists() or not any(out.iterdir()), "a crash left debris that blocks a new run"
    return train(config, out).summary


# -- checkpoints: truncated, foreign, malicious, schema-less ---------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def _truncated(run: Path, target: Path) -> None:
    data = (run / "last.pt").read_bytes()
    target.write_bytes(data[: len(data) // 2])


def _zip(run: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("readme.txt", "not a checkpoint")


def _other_model(run: Path, target: Path) -> None:
    other = target.parent.parent / "small"
    train(cfg(model={"name": "mlp", "hidden": [8], "dropout": 0.1, "init": "default"}, steps=3), other)
    shutil.copy(other / "last.pt", target)


def _old_other_model(run: Path, target: Path) -> None:
    # as clss wrote checkpoints before they carried a format marker and the run's settings
    _other_model(run, target)
    state = load_checkpoint(target)
    del state[FORMAT_KEY], state["config"]
    torch.save(state, target)


def _other_method(run: Path, target: Path) -> None:
    other = target.parent.parent / "sup"
    train(cfg(method="supervised", steps=3), other)
    shutil.copy(other / "last.pt", target)


CHECKPOINTS = [
    pytest.param(lambda run, t: t.write_bytes(b""), CorruptCheckpointError, "the file is empty",
                 id="zero-bytes"),
    pytest.param(_truncated, CorruptCheckpointError, "truncated or corrupt", id="truncated"),
    pytest.param(lambda run, t: t.write_text("step: 3\n"), CorruptCheckpointError, "not a valid checkpoint",
                 id="text"),
    pytest.param(lambda run, t: np.save(t.with_suffix(".npy"), np.ones(3)) or t.with_suffix(".npy").rename(t),
                 CorruptCheckpointError, "not a valid checkpoint", id="npy"),
    pytest.param(_zip, CorruptCheckpointError, "not a valid checkpoint", id="zip"),
    pytest.param(lambda run, t: t.write_bytes(pickle.dumps({"step": _Evil()})), CorruptCheckpointError,
                 "not a valid checkpoint|refuses", id="malicious-pickle"),
    pytest.param(lambda run, t: torch.save({"step": 1, "x": _Evil()}, t), CorruptCheckpointError,
                 "posix.system|refuses", id="malicious-torch-save"),
    pytest.param(lambda run, t: torch.save(torch.nn.Linear(10, 1).state_dict(), t), CorruptCheckpointError,
                 "plain state_dict of 2 tensors", id="plain-state-dict"),
    pytest.param(lambda run, t: torch.save([1, 2], t), CorruptCheckpointError, "holds a list", id="a-list"),
    pytest.param(lambda run, t: torch.save({"step": 3}, t), CorruptCheckpointError, r"lacks \[",
                 id="keys-missing"),
    pytest.param(lambda run, t: shutil.copy(run / "best.pt", t), CorruptCheckpointError,
                 "'weights' checkpoint.*expected a clss 'train'", id="best-as-last"),
    pytest.param(lambda run, t: save_checkpoint(t, {FORMAT_KEY: {"kind": "train", "version": 99}}),
                 CorruptCheckpointError, "format version 99, newer", id="newer-format"),
    pytest.param(_other_model, ValueError, r"checkpoint of another run: model=\{'name': 'mlp', 'hidden': \[8",
                 id="other-model-size"),
    pytest.param(_old_other_model, ValueError, "holds weights of another model or method than this run's",
                 id="old-other-model-size"),
    pytest.param(_other_method, ValueError, "checkpoint of another run: method='supervised'",
                 id="other-method"),
]


@pytest.mark.parametrize(("make", "error", "match"), CHECKPOINTS)
def test_bad_last_checkpoint_is_refused_by_resume_and_eval(reference, tmp_path, make, error, match):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    make(run, run / "last.pt")
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(error, match=match):
        train(None, run, resume=True, overrides={"steps": 9})
    if "'weights' checkpoint" in match:  # evaluation needs only weights: best.pt's are fine there
        assert evaluate_run(run, checkpoint="last") == evaluate_run(run, checkpoint="best")
    else:
        with pytest.raises(error, match=match):
            evaluate_run(run, checkpoint="last")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # nothing written


def test_checkpoint_errors_are_one_line_in_the_cli(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    torch.save(torch.nn.Linear(10, 1).state_dict(), run / "best.pt")
    out = CliRunner().invoke(main, ["eval", str(run)])
    assert out.exit_code != 0 and "Traceback" not in out.output
    assert "plain state_dict" in out.output and "expected a clss" in out.output


def test_checkpoints_without_the_format_marker_still_load(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    for name in ("last", "best"):
        state = load_checkpoint(run / f"{name}.pt")
        del state[FORMAT_KEY]
        torch.save(state, run / f"{name}.pt")  # as clss wrote them before the marker existed
    assert evaluate_run(run)["mae"] == pytest.approx(reference[1]["test"]["mae"], rel=1e-9)
    assert train(None, run, resume=True).already_finished


# -- a refused configuration writes nothing ----------------------------------------------------------------

REFUSED = [
    pytest.param({"method": "nope"}, ValueError, "method must be one of", id="method"),
    pytest.param({"method_params": {"rank_wieght": 1}}, ValueError, "unknown key 'method_params.rank_wieght'",
                 id="method-param"),
    pytest.param({"labeled": "5000"}, ValueError, "only 266", id="labeled-too-many"),
    pytest.param({"labeled": "0"}, ValueError, "0", id="labeled-zero"),
    pytest.param({"labeled": "100%"}, ValueError, "unlabeled", id="no-unlabelled-rows"),
    pytest.param({"dataset": "csv:/no/such/file.csv", "target": "y"}, FileNotFoundError, "file.csv",
                 id="dataset-missing"),
    pytest.param({"unlabeled": "paper"}, ValueError, "paper", id="paper-protocol"),
    pytest.param({"schedule": {"name": "zigzag"}}, ValueError, "schedule", id="schedule"),
    pytest.param({"standardize": "z"}, ValueError, "standardize", id="standardize"),
    pytest.param({"eval_every": -1}, ValueError, "eval_every", id="eval-every"),
    pytest.param({"steps": 0}, ValueError, "steps must be an integer >= 1", id="steps"),
    pytest.param({"select_metric": "r2"}, ValueError, "select_metric", id="select-metric"),
    pytest.param({"threads": 0}, ValueError, "threads", id="threads"),
    pytest.param({"device": "tpu"}, ValueError, "device must be", id="device-unknown"),
    pytest.param({"device": "cuda:64"}, ValueError, "device 'cuda:64'", id="device-missing"),
    pytest.param({"optimizer": {"name": "adamw", "lr": -1.0}}, ValueError, "optimizer.lr must be a float > 0",
                 id="optimizer-lr"),
    pytest.param({"optimizer": {"name": "lbfgs"}}, ValueError, "optimizer.name must be one of",
                 id="optimizer-name"),
]


@pytest.mark.parametrize(("overrides", "error", "match"), REFUSED)
def test_a_refused_configuration_writes_nothing(tmp_path, overrides, error, match):
    with pytest.raises(error, match=match):
        train(cfg(**overrides), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(error, match=match):
        train(cfg(**overrides), tmp_path / "empty")
    assert list((tmp_path / "empty").iterdir()) == []


def test_the_corrected_command_then_succeeds_with_the_same_out(tmp_path):
    runner = CliRunner()
    out = tmp_path / "runs" / "a"
    common = ["train", "--dataset", "diabetes", "--steps", "4", "--eval-every", "2", "--out", str(out),
              "--no-progress", "--threads", "1", "--set", "plots=false"]
    for bad in (["--method", "nope"], ["--labeled", "5000"], ["--set", "method_params.rank_wieght=1"],
                ["--dataset", "csv:/no/such.csv", "--target", "y"]):
        result = runner.invoke(main, common + bad)
        assert result.exit_code != 0 and "Traceback" not in result.output, result.output
        assert not out.exists() and not (tmp_path / "runs").exists()
    result = runner.invoke(main, [*common, "--method", "clss"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["status"] == "finished"
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["a"]  # no staging folder left


# -- a fault between each pair of writes -----------------------------------------------------------------


class Killed(BaseException):
    """A process death: no handler of the trainer catches it, so nothing is cleaned up or checkpointed."""


def count_writes(monkeypatch, die_at: int, die) -> list[str]:
    """Make the ``die_at``-th completed write of the run directory call ``die()``; returns the log of writes.

    The writes are ``os.replace`` (every atomic file and the creation of the directory) and the appends to
    ``metrics.jsonl`` / ``resumes.jsonl``.
    """
    done: list[str] = []
    real_replace, real_append = os.replace, RunDir._append

    def after(name: str) -> None:
        done.append(name)
        if len(done) == die_at:
            die()

    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        after(Path(dst).name)

    def append(self, name, plain, *, sync):
        real_append(self, name, plain, sync=sync)
        after(name)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(RunDir, "_append", append)
    return done


def _raise_killed():
    raise Killed


def test_the_write_sequence(reference, tmp_path, monkeypatch):
    writes = count_writes(monkeypatch, 0, _raise_killed)
    train(cfg(), tmp_path / "run")
    # directory with config, splits and a step-0 checkpoint; each evaluation logs before best.pt/last.pt;
    # the summary marks the end
    assert writes == ["config.yaml", "splits.json", "last.pt", "run",
                      *["metrics.jsonl"] * 3, "best.pt", "last.pt",
                      *["metrics.jsonl"] * 3, "best.pt", "last.pt",
                      "predictions.csv", "predictions.csv", "predictions_unlabeled.csv", "summary.json"]


N_WRITES = 18  # of the fault configuration (listed above)


@pytest.mark.parametrize("die_at", range(1, N_WRITES + 1))
def test_a_fault_after_any_write_resumes_to_the_same_log_and_metrics(reference, tmp_path, monkeypatch,
                                                                     die_at):
    records, summary, _ = reference
    out = tmp_path / "run"
    count_writes(monkeypatch, die_at, _raise_killed)
    with pytest.raises(Killed):
        train(cfg(), out)
    monkeypatch.undo()
    assert_same_summary(finish(out, cfg()), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


@pytest.mark.parametrize("die_at", range(1, 6))
def test_a_fault_while_resuming_with_more_steps(tmp_path, monkeypatch, die_at):
    # writes of a resume: resumes.jsonl, config.yaml (steps changed), metrics.jsonl (cut back), then steps
    full = train(cfg(steps=9), tmp_path / "full")
    out = tmp_path / "run"
    train(cfg(), out)
    writes = count_writes(monkeypatch, die_at, _raise_killed)
    with pytest.raises(Killed):
        train(None, out, resume=True, overrides={"steps": 9})
    assert writes[:3] == ["resumes.jsonl", "config.yaml", "metrics.jsonl"][:len(writes[:3])]
    monkeypatch.undo()
    result = train(None, out, resume=True, overrides={"steps": 9})
    assert not result.already_finished
    assert_same_summary(result.summary, full.summary)
    assert_same_log(RunDir(out, resume=True).read_log(), RunDir(full.run_dir, resume=True).read_log())


DRIVER = """
import json, os, signal, sys
from pathlib import Path
from clss.config import resolve_config
from clss.engine import RunDir, train

config, out, kill_at = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
done = [0]
real_replace, real_append = os.replace, RunDir._append

def after():
    done[0] += 1
    if done[0] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

def replace(src, dst, *a, **k):
    real_replace(src, dst, *a, **k)
    after()

def append(self, name, plain, *, sync):
    real_append(self, name, plain, sync=sync)
    after()

os.replace, RunDir._append = replace, append
train(resolve_config({}, config), out)
"""


def run_driver(tmp_path: Path, config: dict, out: Path, kill_at: int) -> subprocess.CompletedProcess:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.run([sys.executable, str(script), json.dumps(config), str(out), str(kill_at)],
                          capture_output=True, text=True, timeout=300)


def test_sigkill_after_the_log_line_of_an_evaluation_resumes_losslessly(reference, tmp_path):
    # the 7th write is step 3's metrics line (with validation metrics), right before best.pt and last.pt
    records, summary, _ = reference
    out = tmp_path / "run"
    proc = run_driver(tmp_path, BASE, out, 7)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [r["step"] for r in RunDir(out, resume=True).read_log()] == [1, 2, 3]
    assert load_checkpoint(out / "last.pt")["step"] == 0
    assert_same_summary(finish(out, cfg()), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", range(1, N_WRITES + 1))
def test_sigkill_after_any_write_in_a_real_process(reference, tmp_path, kill_at):
    records, summary, _ = reference
    out = tmp_path / "run"
    proc = run_driver(tmp_path, BASE, out, kill_at)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert_same_summary(finish(out, cfg()), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


# -- SIGKILL and SIGINT at random times ----------------------------------------------------------------

LONG = {**BASE, "method": "gclss", "steps": 1500, "eval_every": 50}


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("long") / "run"
    summary = train(resolve_config({}, LONG), out).summary
    return RunDir(out, resume=True).read_log(), summary


@pytest.fixture(autouse=True)
def python_sigint():
    """Python's own SIGINT handler during each test: a test process started in the background (nohup,
    `&`, some CI runners) inherits an ignored SIGINT, which the trainer rightly leaves alone."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _default_sigint() -> None:
    """In a child before exec: SIGINT at its default, so that Python installs its handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def clss_train(out: Path, *extra: str) -> subprocess.Popen:
    args = ["--dataset", "diabetes", "--method", LONG["method"], "--steps", str(LONG["steps"]),
            "--eval-every", str(LONG["eval_every"]), "--batch-size", "12", "--unlabeled-batch-size", "12",
            "--threads", "1", "--no-progress", "--set", "plots=false", "--out", str(out)]
    code = "import sys; from clss_cli.main import main; sys.exit(main())"
    return subprocess.Popen([sys.executable, "-c", code, "train", *args, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint)


def wait_for_steps(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until the run has logged a first line (so the signal lands inside the training loop)."""
    deadline = time.monotonic() + timeout
    while not (out / "metrics.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before its first step"
        time.sleep(0.02)


def resume_cli(out: Path) -> None:
    result = CliRunner().invoke(main, ["train", "--resume", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def sigint_and_resume(tmp_path: Path, reference, delay: float) -> None:
    records, summary = reference
    out = tmp_path / "run"
    proc = clss_train(out)
    wait_for_steps(out, proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:  # finished before the signal landed
        pytest.fail("the run finished before SIGINT; lengthen LONG")
    assert proc.returncode == 130, stderr
    line = stderr.strip().splitlines()[-1]
    step = load_checkpoint(out / "last.pt")["step"]
    assert line == f"interrupted at step {step}; checkpoint saved; resume with: clss train --resume {out}"
    # the interrupted step was completed and checkpointed: the log ends with it
    assert RunDir(out, resume=True).read_log()[-1]["step"] == step
    resume_cli(out)
    assert_same_summary(RunDir(out, resume=True).read_summary(), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


@pytest.mark.slow
def test_sigint_checkpoints_the_step_under_way_and_prints_the_resume_command(tmp_path, long_reference):
    sigint_and_resume(tmp_path, long_reference, 0.3)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_ctrl_c_prints_the_resume_command_and_exits_130(reference, tmp_path, monkeypatch, sig):
    # a real SIGINT (or SIGTERM: kill, a scheduler's time limit) to this process while step 4's line is
    # written (write 10: after the directory, three lines, best.pt and last.pt): step 4 is completed, saved,
    # and the command says so
    records, summary, _ = reference
    out = tmp_path / "run"
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the default a process starts with: the trainer takes it
    count_writes(monkeypatch, 10, lambda: os.kill(os.getpid(), sig))
    args = ["train", "--dataset", "diabetes", "--method", "clss", "--steps", "6", "--eval-every", "3",
            "--batch-size", "12", "--unlabeled-batch-size", "12", "--threads", "1", "--no-progress",
            "--set", "plots=false", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"interrupted at step 4; checkpoint saved; resume with: clss train --resume {out}")
    assert load_checkpoint(out / "last.pt")["step"] == 4
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the trainer put the default back
    signal.signal(signal.SIGTERM, previous)
    monkeypatch.undo()
    resume_cli(out)
    assert_same_summary(RunDir(out, resume=True).read_summary(), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigint_at_random_times(tmp_path, long_reference, seed):
    sigint_and_resume(tmp_path, long_reference, random.Random(seed).uniform(0.0, 2.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_at_random_times(tmp_path, long_reference, seed):
    records, summary = long_reference
    out = tmp_path / "run"
    proc = clss_train(out)
    wait_for_steps(out, proc)
    time.sleep(random.Random(seed).uniform(0.0, 2.0))
    proc.kill()
    proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("the run finished before SIGKILL; lengthen LONG")
    resume_cli(out)
    assert_same_summary(RunDir(out, resume=True).read_summary(), summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


def test_sigint_inside_a_step_completes_it_and_checkpoints(tmp_path):
    # the signal arrives during step 5's callback; step 6 still runs, is logged and checkpointed
    def interrupt(step, logs):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted, match="interrupted at step 6; checkpoint saved") as info:
        train(cfg(steps=20, eval_every=10), tmp_path / "run", callback=interrupt)
    assert info.value.step == 6 and load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 6
    assert RunDir(tmp_path / "run", resume=True).read_log()[-1]["step"] == 6
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_a_second_sigint_stops_at_once(tmp_path):
    def interrupt(step, logs):
        if step == 5:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(cfg(steps=20, eval_every=10), tmp_path / "run", callback=interrupt)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 5  # the last logged step


# -- resume: conflicts, allowed changes, finished runs ----------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    pytest.param({"overrides": {"method": "gclss"}}, r"overrides may change only .*\['method'\]",
                 id="method"),
    pytest.param({"overrides": {"eval_every": 2}}, "eval_every", id="eval-every"),
    pytest.param({"overrides": {"steps": 3}}, r"steps \(3\) is fewer than the 6 steps", id="fewer-steps"),
    pytest.param({"config": {"steps": 9}}, "pass config=None", id="config-with-resume"),
])
def test_resume_conflicts_are_refused(reference, tmp_path, kwargs, match):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match=match):
        train(kwargs.get("config"), run, resume=True, overrides=kwargs.get("overrides"))
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_overrides_need_resume_and_a_cosine_schedule_cannot_be_extended(tmp_path):
    with pytest.raises(ValueError, match="only with resume=True"):
        train(cfg(), tmp_path / "a", overrides={"steps": 9})
    train(cfg(schedule={"name": "cosine"}), tmp_path / "cos")
    with pytest.raises(ValueError, match="learning rates depend on the total number of steps"):
        train(None, tmp_path / "cos", resume=True, overrides={"steps": 9})
    assert not (tmp_path / "a").exists() and not (tmp_path / "cos" / "resumes.jsonl").exists()


@pytest.mark.parametrize("flags", [
    ["--method", "gclss"], ["--lr", "0.1"], ["--set", "steps=9"], ["--out", "x"], ["--eval-every", "2"],
    ["--labeled", "10", "--seed", "3"],
])
def test_cli_resume_refuses_other_flags_in_one_line(reference, tmp_path, flags):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    out = CliRunner().invoke(main, ["train", "--resume", str(run), *flags])
    assert out.exit_code == 2 and "Traceback" not in out.output
    for flag in flags[::2]:
        assert flag in out.output.splitlines()[-1]
    assert "allowed: --steps, --device, --threads, --workers, --no-progress" in out.output


def test_resuming_a_finished_run_changes_nothing(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()}
    result = train(None, run, resume=True, overrides={"device": "cpu", "threads": 1})
    assert result.already_finished and result.summary == reference[1]
    out = CliRunner().invoke(main, ["train", "--resume", str(run), "--no-progress"])
    assert out.exit_code == 0, out.output
    assert f"{run} already finished at step 6; pass --steps M (more than 6) to extend it" in out.output
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir() if p.is_file()} == before


def test_extending_a_finished_run_matches_a_longer_run_and_keeps_its_seconds(reference, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    full = train(cfg(steps=9), tmp_path / "full")
    out = CliRunner().invoke(main, ["train", "--resume", str(run), "--steps", "9", "--threads", "1"])
    assert out.exit_code == 0, out.output
    rundir = RunDir(run, resume=True)
    summary = rundir.read_summary()
    assert summary["steps"] == 9 and rundir.read_config()["steps"] == 9
    assert summary["seconds"] > reference[1]["seconds"]  # training time accumulates across resumes
    assert_same_summary(summary, full.summary)
    assert_same_log(rundir.read_log(), RunDir(full.run_dir, resume=True).read_log())
    (entry,) = rundir.read_resumes()
    assert entry["step"] == 6 and entry["changed"] == {"steps": [6, 9]} and entry["time"].endswith("+00:00")


def test_seconds_accumulate_over_an_interruption(tmp_path):
    def stop(step, logs):
        if step == 4:
            time.sleep(0.3)
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted):
        train(cfg(), tmp_path / "run", callback=stop)
    spent = load_checkpoint(tmp_path / "run" / "last.pt")["seconds"]
    assert spent >= 0.3
    assert train(None, tmp_path / "run", resume=True).summary["seconds"] > spent


# -- a full disk ---------------------------------------------------------------------------------------


def test_a_full_disk_gives_a_clear_error_and_keeps_the_previous_checkpoint(reference, tmp_path, monkeypatch):
    records, summary, _ = reference
    out = tmp_path / "run"
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if Path(dst).name == "last.pt" and Path(dst).parent == out:  # the first periodic checkpoint
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match=r"could not write .*last\.pt: No space left on device; the") as info:
        train(cfg(), out)
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []  # no temporary file left
    assert load_checkpoint(out / "last.pt")["step"] == 0  # the previous checkpoint is intact
    assert_same_summary(train(None, out, resume=True).summary, summary)
    assert_same_log(RunDir(out, resume=True).read_log(), records)


def test_atomic_write_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "f.txt"
    atomic_write_text(target, "old")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match=r"could not write .*f\.txt: No space left on device"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]


# -- entry points: bad arguments ------------------------------------------------------------------------


def _finished_copy(reference, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(reference[2], run)
    return run


EVALUATE_RUN = [
    pytest.param(lambda ref, tmp: (tmp / "missing", {}), FileNotFoundError, "run directory not found",
                 id="missing-directory"),
    pytest.param(lambda ref, tmp: (tmp, {}), FileNotFoundError, "has no best.pt", id="no-checkpoint"),
    pytest.param(lambda ref, tmp: (_finished_copy(ref, tmp), {"split": "train2"}), ValueError,
                 "split must be 'train', 'val' or 'test'", id="split"),
    pytest.param(lambda ref, tmp: (_finished_copy(ref, tmp), {"checkpoint": "first"}), ValueError,
                 "checkpoint must be 'best' or 'last'", id="checkpoint-name"),
]


@pytest.mark.parametrize(("make", "error", "match"), EVALUATE_RUN)
def test_evaluate_run_bad_arguments(reference, tmp_path, make, error, match):
    run, kwargs = make(reference, tmp_path)
    with pytest.raises(error, match=match):
        evaluate_run(run, **kwargs)


def _file(tmp: Path) -> Path:
    (tmp / "f").write_text("")
    return tmp / "f"


def _non_empty(tmp: Path) -> Path:
    (tmp / "d").mkdir()
    (tmp / "d" / "x").write_text("")
    return tmp / "d"


TRAIN_CALLS = [
    pytest.param(lambda tmp: (None, tmp / "new", {}), ValueError, "config is required", id="no-config"),
    pytest.param(lambda tmp: (None, tmp / "missing", {"resume": True}), FileNotFoundError,
                 "cannot resume: the run directory .* does not exist", id="resume-missing"),
    pytest.param(lambda tmp: (None, tmp, {"resume": True}), FileNotFoundError, "has no checkpoint last.pt",
                 id="resume-without-checkpoint"),
    pytest.param(lambda tmp: (None, _file(tmp), {"resume": True}), NotADirectoryError, "is a file",
                 id="resume-a-file"),
    pytest.param(lambda tmp: (cfg(), _file(tmp), {}), NotADirectoryError, "is a file", id="out-is-a-file"),
    pytest.param(lambda tmp: (cfg(), _non_empty(tmp), {}), FileExistsError,
                 r"already holds other files \(x\)",
                 id="out-not-empty"),
]


@pytest.mark.parametrize(("make", "error", "match"), TRAIN_CALLS)
def test_train_bad_calls(tmp_path, make, error, match):
    config, out, kwargs = make(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(error, match=match):
        train(config, out, **kwargs)
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
