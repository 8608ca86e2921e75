"""``torchrun --nproc-per-node 2 -m clss train``: the real launcher, two gloo processes on the CPU.

The job trains the run one process would train with the same global batch (the same logged losses and
validation scores), rank 0 alone writes it, it resumes in one process, and when one process is killed the
job stops, its last checkpoint loads and a resume completes the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clss.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.distributed

COMMON = ["--dataset", "diabetes", "--device", "cpu", "--no-progress", "--threads", "1",
          "--set", "plots=false", "--set", "model.dropout=0"]


def clss(*args: str, procs: int = 1, **kw) -> subprocess.Popen:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs),
                 "--standalone", "-m", "clss"] if procs > 1 else [sys.executable, "-m", "clss"])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*launcher, "train", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **kw)


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out


def log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def same_training(a: list[dict], b: list[dict]) -> None:
    """The same steps and, within float32 rounding (the blocks' and the whole batch's matrix products may
    round differently), the same losses and validation scores; exactness is tested in float64 in
    test_engine_ddp."""
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-4, abs=1e-6), ra["step"]
        if "val_mae" in ra:
            assert rb["val_mae"] == pytest.approx(ra["val_mae"], rel=1e-4), ra["step"]


def test_a_two_process_job_trains_the_one_process_run(tmp_path):
    args = [*COMMON, "--method", "gclss", "--steps", "16", "--eval-every", "8"]
    job = clss(*args, "--out", str(tmp_path / "two"), procs=2)
    single = clss(*args, "--out", str(tmp_path / "one"))
    out = finish(job)
    finish(single)
    assert out.count("run directory:") == 1  # rank 0 alone reports
    two, one = log(tmp_path / "two"), log(tmp_path / "one")
    same_training(one, two)
    assert all(r["world_size"] == 2 for r in two)
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["world_size"] == 2
    reference = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert summary["test"]["mae"] == pytest.approx(reference["test"]["mae"], rel=1e-4)


def test_a_job_resumes_in_one_process_with_the_same_global_batch(tmp_path):
    args = [*COMMON, "--method", "clss", "--eval-every", "5"]
    finish(clss(*args, "--steps", "10", "--out", str(tmp_path / "job"), procs=2))
    finish(clss("--resume", str(tmp_path / "job"), "--steps", "20"))
    finish(clss(*args, "--steps", "20", "--out", str(tmp_path / "straight")))
    same_training(log(tmp_path / "straight"), log(tmp_path / "job"))
    resumes = [json.loads(line) for line in (tmp_path / "job" / "resumes.jsonl").read_text().splitlines()]
    assert resumes[-1]["step"] == 10


def _worker_of(launcher: int, rank: int) -> int | None:
    """The pid of the training process of ``rank`` started by the torchrun process ``launcher``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_killing_one_process_stops_the_job_and_the_run_resumes(tmp_path):
    run = tmp_path / "job"
    job = clss(*COMMON, "--method", "meanteacher", "--steps", "400", "--eval-every", "2",
               "--out", str(run), procs=2)
    deadline = time.monotonic() + 120
    while not ((run / "last.pt").exists() and load_checkpoint(run / "last.pt")["step"] >= 4):
        assert job.poll() is None and time.monotonic() < deadline, "the job ended before its fourth step"
        time.sleep(0.05)
    victim = _worker_of(job.pid, 1)
    assert victim is not None
    os.kill(victim, signal.SIGKILL)
    job.communicate(timeout=120)
    assert job.returncode != 0  # torchrun reports the lost process and stops the other
    state = load_checkpoint(run / "last.pt", kind="train")
    assert 4 <= state["step"] < 400
    assert not (run / "summary.json").exists()
    finish(clss("--resume", str(run)))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 400
    assert [r["step"] for r in log(run)] == list(range(1, 401))


def test_the_split_backward_options_train_as_one_process(tmp_path):
    """The gradient probe and the automatic weight take their gradients with torch.autograd.grad, averaged
    over the processes by the method (DDP's own backward does not run on those steps): the job logs the
    weights and per-term gradient norms one process logs."""
    args = [*COMMON, "--method", "gclss", "--steps", "8", "--eval-every", "4", "--set", "probe_every=2",
            "--set", "method_params.unlabeled_weight=auto"]
    job = clss(*args, "--out", str(tmp_path / "two"), procs=2)
    single = clss(*args, "--out", str(tmp_path / "one"))
    finish(job), finish(single)
    one, two = log(tmp_path / "one"), log(tmp_path / "two")
    same_training(one, two)
    probed = [r for r in one if "grad_ratio" in r]
    assert [r["step"] for r in probed] == [1, 3, 5, 7]  # steps 0, 2, 4, 6 (logged from 1)
    for ra, rb in zip(one, two, strict=True):
        keys = sorted(k for k in ra if k.startswith("grad_") or k == "unlabeled_weight")
        assert keys == sorted(k for k in rb if k.startswith("grad_") or k == "unlabeled_weight")
        for key in keys:
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key)
    assert any(r.get("unlabeled_weight", 0) > 0 for r in one)
