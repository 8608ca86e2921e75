"""Atomic checkpoints, safe loading and RNG state capture/restore (clss.engine.checkpoint)."""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from clss.engine import (
    CorruptCheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    capture_rng_state,
    load_checkpoint,
    numpy_generator_state,
    restore_rng_state,
    save_checkpoint,
    set_numpy_generator_state,
    set_torch_generator_state,
    torch_generator_state,
)


def _training_state() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    sched.step()
    return {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": torch.amp.GradScaler("cpu").state_dict(),
        "step": 7,
        "best": {"val_mae": 0.25, "step": 5, "nan": float("nan")},
        "flags": [True, None, "gclss", (1, 2.5)],
        "rng": capture_rng_state(),
        "sampler_rng": numpy_generator_state(np.random.default_rng(3)),
    }


def _assert_equal(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_equal(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_of_a_nested_training_state_with_weights_only(tmp_path: Path) -> None:
    state = _training_state()
    path = save_checkpoint(tmp_path / "sub" / "last.pt", state)
    assert path == tmp_path / "sub" / "last.pt"
    _assert_equal(state, torch.load(path, weights_only=True))
    _assert_equal(state, load_checkpoint(path))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]


@pytest.mark.parametrize(("value", "where", "advice"), [
    (np.zeros(3), "state['rng']['numpy']", "torch.from_numpy"),
    (np.float32(1.0), "state['rng']['numpy']", ".item()"),
    (argparse.Namespace(lr=1), "state['rng']['numpy']", "vars(x)"),
    (Path("x"), "state['rng']['numpy']", "str(x)"),
    (np.random.default_rng(0), "state['rng']['numpy']", "numpy_generator_state"),
])
def test_unsupported_values_are_rejected_with_their_key_path(tmp_path: Path, value, where, advice) -> None:
    with pytest.raises(TypeError) as info:
        save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": {"numpy": value}})
    assert where in str(info.value) and advice in str(info.value)
    assert not list(tmp_path.iterdir())


def test_rejection_inside_lists_keys_and_non_dict_states(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"state\['hist'\]\[1\]"):
        save_checkpoint(tmp_path / "c.pt", {"hist": [1, np.int64(2)]})
    with pytest.raises(TypeError, match=r"a key of state\['m'\]"):
        save_checkpoint(tmp_path / "c.pt", {"m": {np.int64(1): 2}})
    with pytest.raises(TypeError, match="defaultdict"):
        save_checkpoint(tmp_path / "c.pt", {"m": collections.defaultdict(int)})
    with pytest.raises(TypeError, match="must be a dict"):
        save_checkpoint(tmp_path / "c.pt", [1, 2])  # type: ignore[arg-type]
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(TypeError, match="cycle"):
        save_checkpoint(tmp_path / "c.pt", cyclic)


def test_an_exception_during_the_write_keeps_the_old_file_and_no_temporary(tmp_path: Path,
                                                                          monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1})
    before = path.read_bytes()
    real_save = torch.save

    def dying_save(obj, fh) -> None:
        real_save(obj, fh)
        fh.write(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"step": 2, "w": torch.ones(1000)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]
    assert load_checkpoint(path) == {"step": 1}


def test_a_failed_rename_removes_the_temporary(tmp_path: Path, monkeypatch) -> None:
    def no_replace(src, dst) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(tmp_path / "a.txt", "x")
    assert not list(tmp_path.iterdir())


def test_atomic_write_helpers(tmp_path: Path) -> None:
    assert atomic_write_text(tmp_path / "d" / "a.txt", "héllo\n").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_bytes(tmp_path / "d" / "a.txt", b"\x00\x01")
    assert (tmp_path / "d" / "a.txt").read_bytes() == b"\x00\x01"
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["a.txt"]
    if os.name == "posix":  # the usual umask permissions, not mkstemp's 0600
        umask = os.umask(0)
        os.umask(umask)
        assert (tmp_path / "d" / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def _hold_lock(lock: str, log: str, name: str) -> None:
    import time

    from clss.atomic import exclusive_lock

    with exclusive_lock(lock):
        with open(log, "a") as fh:
            fh.write(f"{name} in\n")
        time.sleep(0.3)  # long enough for the other process to try
        with open(log, "a") as fh:
            fh.write(f"{name} out\n")


@pytest.mark.skipif(os.name != "posix", reason="flock is POSIX; elsewhere the lock is a documented no-op")
def test_exclusive_lock_lets_one_process_in_at_a_time(tmp_path: Path) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    lock, log = str(tmp_path / "sub" / ".lock"), str(tmp_path / "log.txt")
    procs = [ctx.Process(target=_hold_lock, args=(lock, log, n)) for n in ("a", "b", "c")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert len(lines) == 6
    for i in range(0, 6, 2):  # every "in" is followed by the same process's "out": never interleaved
        assert lines[i].endswith(" in") and lines[i + 1] == lines[i].replace(" in", " out")


def test_missing_and_directory_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(IsADirectoryError):
        load_checkpoint(tmp_path)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_truncated_and_foreign_files_raise_corrupt_checkpoint_error(tmp_path: Path) -> None:
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.randn(64, 64), "step": 3}).read_bytes()
    torch.save({"rng": np.random.get_state()}, tmp_path / "legacy_numpy_rng.pt")  # noqa: NPY002
    torch.save(torch.ones(2), tmp_path / "bare_tensor.pt")
    files = {"empty": b"", "garbage": b"not a checkpoint at all" * 20, "text": b"step: 3\n",
             "pickled_namespace": pickle.dumps(argparse.Namespace(a=1))}
    files.update({f"truncated_{frac}": good[: int(len(good) * frac)] for frac in (0.1, 0.5, 0.9, 0.99)})
    for name, data in files.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
    for name in [*files, "legacy_numpy_rng", "bare_tensor"]:
        with pytest.raises(CorruptCheckpointError, match=re.escape(f"{name}.pt")) as info:
            load_checkpoint(tmp_path / f"{name}.pt")
        assert "another checkpoint" in str(info.value), name
        assert isinstance(info.value, ValueError)
    with pytest.raises(CorruptCheckpointError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(CorruptCheckpointError, match="numpy"):
        load_checkpoint(tmp_path / "legacy_numpy_rng.pt")


def _draws() -> tuple:
    return (random.random(), random.getrandbits(64), np.random.rand(3).tolist(),  # noqa: NPY002
            np.random.standard_normal(),  # noqa: NPY002
            torch.rand(3).tolist(), torch.randint(0, 1000, (4,)).tolist())


def test_global_rng_state_survives_a_checkpoint_round_trip(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)  # noqa: NPY002
    torch.manual_seed(3)
    np.random.standard_normal()  # noqa: NPY002 - leaves a cached Gaussian in the legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = _draws()
    random.seed(99)
    np.random.seed(99)  # noqa: NPY002
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert _draws() == expected


def test_restore_rejects_incomplete_states() -> None:
    with pytest.raises(ValueError, match="numpy"):
        restore_rng_state({"python": random.getstate(), "torch": torch.get_rng_state(), "cuda": []})


@pytest.mark.parametrize("bit_generator", [np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                           np.random.Philox, np.random.SFC64])
def test_numpy_generator_state_round_trip(tmp_path: Path, bit_generator) -> None:
    rng = np.random.Generator(bit_generator(12345))
    rng.random(5)
    rng.integers(0, 10, dtype=np.uint32)  # leaves a buffered 32-bit half in some generators
    save_checkpoint(tmp_path / "g.pt", {"g": numpy_generator_state(rng)})
    expected = rng.random(6)
    other = np.random.Generator(bit_generator(0))
    set_numpy_generator_state(other, load_checkpoint(tmp_path / "g.pt")["g"])
    np.testing.assert_array_equal(other.random(6), expected)
    set_numpy_generator_state(other.bit_generator, numpy_generator_state(rng.bit_generator))


def test_numpy_generator_state_checks_the_bit_generator() -> None:
    state = numpy_generator_state(np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"'PCG64'.*'MT19937'"):
        set_numpy_generator_state(np.random.Generator(np.random.MT19937(0)), state)


def test_torch_generator_state_round_trip(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    torch.rand(4, generator=gen)
    save_checkpoint(tmp_path / "t.pt", {"g": torch_generator_state(gen)})
    expected = torch.rand(4, generator=gen)
    other = torch.Generator()
    set_torch_generator_state(other, load_checkpoint(tmp_path / "t.pt")["g"])
    assert torch.equal(torch.rand(4, generator=other), expected)
    with pytest.raises(TypeError, match="uint8"):
        set_torch_generator_state(other, torch.zeros(3))


@pytest.mark.gpu
def test_cuda_rng_state_survives_a_checkpoint_loaded_onto_the_gpu(tmp_path: Path) -> None:
    torch.cuda.manual_seed_all(4)
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = torch.rand(3, device="cuda").cpu()
    torch.cuda.manual_seed_all(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt", map_location="cuda")["rng"])
    assert torch.equal(torch.rand(3, device="cuda").cpu(), expected)


def test_format_marker_and_schema(tmp_path):
    from clss.engine.checkpoint import FORMAT_KEY, FORMAT_VERSION

    path = save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.ones(2)}, kind="train")
    state = load_checkpoint(path, kind="train", keys=("step", "w"))
    assert state[FORMAT_KEY] == {"kind": "train", "version": FORMAT_VERSION} and state["step"] == 1
    assert load_checkpoint(path, kind=("weights", "train"))["step"] == 1
    with pytest.raises(CorruptCheckpointError, match=r"is a clss 'train' checkpoint \(format version 1\), "
                                                     r"expected a clss 'weights' checkpoint"):
        load_checkpoint(path, kind="weights")
    with pytest.raises(CorruptCheckpointError, match=r"lacks \['rng'\]"):
        load_checkpoint(path, kind="train", keys=("step", "rng"))
    # unmarked files (older clss) pass on their keys alone; a plain state_dict is named as such
    torch.save({"step": 1, "w": torch.ones(2)}, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt", kind="train", keys=("step",))["step"] == 1
    torch.save(torch.nn.Linear(3, 1).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(CorruptCheckpointError, match=r"plain state_dict of 2 tensors \(e\.g\. 'weight'\)"):
        load_checkpoint(tmp_path / "sd.pt", kind="train", keys=("step",))
    save_checkpoint(tmp_path / "new.pt", {FORMAT_KEY: {"kind": "train", "version": FORMAT_VERSION + 1}})
    with pytest.raises(CorruptCheckpointError, match="newer than this clss reads"):
        load_checkpoint(tmp_path / "new.pt", kind="train")
    assert load_checkpoint(path).keys() == state.keys()  # without kind/keys nothing is checked
