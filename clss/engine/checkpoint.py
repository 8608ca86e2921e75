"""Atomic checkpoints that load with ``torch.load(weights_only=True)``, and checkpoint-safe RNG states.

A checkpoint is a ``dict`` of tensors, plain Python values (``bool``, ``int``, ``float``, ``complex``,
``str``, ``bytes``, ``None``), ``torch.dtype``/``torch.device``/``torch.Size`` and nested ``dict``,
``OrderedDict``, ``list``, ``tuple`` or ``set`` of those: exactly what the safe unpickler of
``torch.load(weights_only=True)`` reads back. Module, optimiser, LR-scheduler and ``GradScaler``
``state_dict()``\\ s qualify as they are. Anything else (numpy arrays and scalars, ``argparse.Namespace``,
dataclasses, paths, the legacy ``np.random.get_state()`` tuple) is refused by :func:`save_checkpoint`
before anything is written, with the key path of the offending value.

A checkpoint saved with ``kind=`` carries a format marker, ``state["clss_checkpoint"] = {"kind": kind,
"version": 1}``, and :func:`load_checkpoint` with ``kind=``/``keys=`` checks it, so a file of another kind,
a plain ``state_dict`` or a newer format is refused with a message saying what the file holds and what was
expected. Files written before the marker existed are read when they hold the expected keys.

Files are replaced atomically (temporary file in the same directory, ``fsync``, ``os.replace``), so an
interruption leaves either the previous file or the new one, never a truncated one.
"""

from __future__ import annotations

import collections
import errno
import os
import pickle
import random
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clss.atomic import atomic_write

__all__ = [
    "FORMAT_KEY",
    "FORMAT_VERSION",
    "CorruptCheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "numpy_generator_state",
    "restore_rng_state",
    "save_checkpoint",
    "set_numpy_generator_state",
    "set_torch_generator_state",
    "torch_generator_state",
]

_LEAF_TYPES = (bool, int, float, complex, str, bytes, type(None), torch.dtype, torch.device)
_CONTAINER_TYPES = (dict, collections.OrderedDict, list, tuple, set, torch.Size)
_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)
_RNG_KEYS = ("python", "numpy", "torch", "cuda")
FORMAT_KEY = "clss_checkpoint"
FORMAT_VERSION = 1


class CorruptCheckpointError(ValueError):
    """A checkpoint file exists but cannot be read back (truncated, corrupt or not a checkpoint)."""


def _hint(obj: Any) -> str:
    if isinstance(obj, np.ndarray):
        return "convert it with torch.from_numpy(x) (or x.tolist())"
    if isinstance(obj, np.generic):
        return "convert it with x.item()"
    if isinstance(obj, np.random.Generator | np.random.BitGenerator):
        return "store clss.engine.numpy_generator_state(x) instead"
    if isinstance(obj, torch.Generator):
        return "store clss.engine.torch_generator_state(x) instead"
    if isinstance(obj, os.PathLike):
        return "convert it with str(x)"
    if hasattr(obj, "__dict__") or hasattr(obj, "__dataclass_fields__"):
        return "store a dict of its fields instead (vars(x), dataclasses.asdict(x) or x.state_dict())"
    return "convert it to tensors and plain Python values"


def _check_safe(obj: Any, where: str, active: set[int]) -> None:
    """Raise TypeError at the first value under ``obj`` that ``weights_only=True`` would refuse."""
    kind = type(obj)
    if kind in _LEAF_TYPES or kind in _TENSOR_TYPES:
        return
    if kind not in _CONTAINER_TYPES:
        raise TypeError(f"{where} is a {kind.__module__}.{kind.__qualname__}, which "
                        f"torch.load(weights_only=True) cannot read back; {_hint(obj)}")
    if id(obj) in active:
        raise TypeError(f"{where} contains itself (a reference cycle); checkpoints must be trees")
    active.add(id(obj))
    if isinstance(obj, dict):
        for key, value in obj.items():
            _check_safe(key, f"a key of {where}", active)
            _check_safe(value, f"{where}[{key!r}]", active)
    elif isinstance(obj, set):
        for item in obj:
            _check_safe(item, f"an element of {where}", active)
    else:
        for i, item in enumerate(obj):
            _check_safe(item, f"{where}[{i}]", active)
    active.discard(id(obj))


def save_checkpoint(path: str | Path, state: dict[str, Any], *, kind: str | None = None) -> Path:
    """Save ``state`` with ``torch.save``, atomically, after checking it loads with ``weights_only=True``.

    Parameters
    ----------
    path : str or Path
        Destination (conventionally ``*.pt``); missing parent folders are created.
    state : dict
        Tensors and plain values, possibly nested (see the module docstring).
    kind : str, optional
        Adds the format marker ``state["clss_checkpoint"] = {"kind": kind, "version": FORMAT_VERSION}``
        (e.g. ``"train"`` for the trainer's ``last.pt``, ``"weights"`` for ``best.pt``).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    TypeError
        If ``state`` is not a dict or holds a value that ``torch.load(weights_only=True)`` refuses; the
        message names its key path, e.g. ``state['rng']['numpy']``. Nothing is written then.
    """
    if not isinstance(state, dict):
        raise TypeError(f"a checkpoint must be a dict, got {type(state).__qualname__}")
    _check_safe(state, "state", set())
    if kind is not None:
        state = {FORMAT_KEY: {"kind": kind, "version": FORMAT_VERSION}, **state}
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path, map_location: Any = "cpu", *, kind: str | Sequence[str] | None = None,
                    keys: Sequence[str] = ()) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` with ``torch.load(weights_only=True)``.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    map_location : str, torch.device, dict or callable, default "cpu"
        Passed to ``torch.load``.
    kind : str or sequence of str, optional
        The accepted ``kind``\\ s of :func:`save_checkpoint`: a file marked with another kind, or with a
        format version newer than :data:`FORMAT_VERSION`, is refused. Unmarked files (older clss) pass
        when they hold ``keys``.
    keys : sequence of str, default ()
        Keys the checkpoint must hold.

    Returns
    -------
    dict
        The saved state.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a directory.
    CorruptCheckpointError
        If the file is empty, truncated, not a torch file, holds objects the safe loader refuses, holds
        something other than a dict, or does not match ``kind``/``keys``; the message says what the file
        holds and what was expected.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, expected a checkpoint file")
    advice = "resume from another checkpoint (e.g. best.pt or an earlier copy) or start the run again"
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol is not worth a warning: it is refused
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            state = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = re.search(r"GLOBAL (\S+)", str(exc))
        if refused:
            raise CorruptCheckpointError(
                f"{p} holds a {refused.group(1)} object, which torch.load(weights_only=True) refuses, so it "
                f"was not written by clss.engine.save_checkpoint; {advice}") from None
        raise CorruptCheckpointError(f"{p} is not a valid checkpoint ({_unpickler_reason(exc)}); it may be "
                                     f"truncated or corrupt: {advice}") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, IndexError, OSError) as exc:
        # torch reports some truncations as OSError(EINVAL); other OS errors (permissions...) are not ours.
        if isinstance(exc, OSError) and exc.errno != errno.EINVAL:
            raise
        reason = "the file is empty" if p.stat().st_size == 0 else f"{type(exc).__name__}: {exc}"
        raise CorruptCheckpointError(f"{p} is not a valid checkpoint ({reason}); it may be truncated or "
                                     f"corrupt: {advice}") from None
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"{p} holds a {type(state).__qualname__}, not a checkpoint dict; "
                                     f"{advice}")
    if kind is not None or keys:
        _check_schema(p, state, (kind,) if isinstance(kind, str) else tuple(kind or ()), tuple(keys))
    return state


def _describe(state: dict[str, Any]) -> str:
    """What a loaded checkpoint dict is, in a few words."""
    marker = state.get(FORMAT_KEY)
    if isinstance(marker, dict):
        return f"a clss {marker.get('kind')!r} checkpoint (format version {marker.get('version')})"
    names = [str(k) for k in state]
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        return (f"a plain state_dict of {len(state)} tensors (e.g. {names[0]!r}), as torch.save("
                f"model.state_dict()) writes")
    return f"a dict with the keys {names[:6]}" + (" ..." if len(names) > 6 else "")


def _check_schema(p: Path, state: dict[str, Any], kinds: tuple[str, ...], keys: tuple[str, ...]) -> None:
    expected = (" or ".join(repr(k) for k in kinds) + " checkpoint" if kinds else "checkpoint") + (
        f" with the keys {list(keys)}" if keys else "")
    marker = state.get(FORMAT_KEY)
    if isinstance(marker, dict):
        version = marker.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CorruptCheckpointError(
                f"{p} has checkpoint format version {version!r}, newer than this clss reads "
                f"({FORMAT_VERSION}); upgrade clss to read it")
        if kinds and marker.get("kind") not in kinds:
            raise CorruptCheckpointError(f"{p} is {_describe(state)}, expected a clss {expected}")
    missing = [k for k in keys if k not in state]
    if missing:
        raise CorruptCheckpointError(f"{p} is {_describe(state)}, expected a clss {expected} (it lacks "
                                     f"{missing}); use a file written by clss train (RUN_DIR/last.pt or "
                                     f"RUN_DIR/best.pt)")


def _unpickler_reason(exc: Exception) -> str:
    """The informative line of torch's long weights-only error (e.g. ``Unsupported operand 103``)."""
    text = str(exc)
    tail = text.split("WeightsUnpickler error:", 1)[-1].strip()
    return tail.splitlines()[0] if tail else text.splitlines()[0]


def _to_plain(obj: Any) -> Any:
    """numpy arrays and scalars inside a bit-generator state -> exact Python ints/floats/lists."""
    if isinstance(obj, dict):
        return {key: _to_plain(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray | np.generic):
        return obj.tolist()
    return obj


def numpy_generator_state(rng: np.random.Generator | np.random.BitGenerator) -> dict[str, Any]:
    """Checkpoint-safe copy of a numpy generator's ``bit_generator.state``.

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.BitGenerator
        Any bit generator (PCG64, PCG64DXSM, MT19937, Philox, SFC64).

    Returns
    -------
    dict
        The state with arrays turned into lists of Python ints (exact for every integer width), so it
        loads with ``weights_only=True``. Restore it with :func:`set_numpy_generator_state`.
    """
    bit_generator = rng.bit_generator if isinstance(rng, np.random.Generator) else rng
    return _to_plain(bit_generator.state)


def set_numpy_generator_state(rng: np.random.Generator | np.random.BitGenerator,
                              state: Mapping[str, Any]) -> None:
    """Restore a state from :func:`numpy_generator_state` into ``rng`` (in place).

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.BitGenerator
        Must use the same bit generator as the one the state was taken from.
    state : dict
        As returned by :func:`numpy_generator_state`.

    Raises
    ------
    ValueError
        If the state belongs to another kind of bit generator.
    """
    bit_generator = rng.bit_generator if isinstance(rng, np.random.Generator) else rng
    expected = type(bit_generator).__name__
    if state.get("bit_generator") != expected:
        raise ValueError(f"the state is for a {state.get('bit_generator')!r} bit generator, but rng uses "
                         f"{expected!r}; create the generator with the same bit generator")
    bit_generator.state = dict(state)


def torch_generator_state(generator: torch.Generator) -> torch.Tensor:
    """State of a ``torch.Generator`` (CPU or CUDA) as a CPU ``uint8`` tensor, safe in a checkpoint.

    Parameters
    ----------
    generator : torch.Generator

    Returns
    -------
    torch.Tensor
        Restore it with :func:`set_torch_generator_state`.
    """
    return generator.get_state()


def set_torch_generator_state(generator: torch.Generator, state: torch.Tensor) -> None:
    """Restore a state from :func:`torch_generator_state`.

    The tensor is moved back to a CPU ``uint8`` tensor first, so states loaded with
    ``map_location="cuda"`` work too.

    Parameters
    ----------
    generator : torch.Generator
    state : torch.Tensor
    """
    if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8:
        raise TypeError(f"a torch generator state must be a uint8 tensor, got "
                        f"{getattr(state, 'dtype', type(state).__qualname__)}")
    generator.set_state(state.detach().cpu())


def capture_rng_state() -> dict[str, Any]:
    """The global random states of Python, numpy (legacy ``np.random.*``), torch CPU and CUDA.

    Returns
    -------
    dict
        ``{"python": random.getstate(), "numpy": dict (see numpy_generator_state), "torch": uint8
        tensor, "cuda": list of uint8 tensors, one per device (empty without CUDA)}``; it loads with
        ``weights_only=True``. Generators the training code owns (``numpy.random.Generator``,
        ``torch.Generator`` of a DataLoader) are not global: save them with :func:`numpy_generator_state`
        and :func:`torch_generator_state`.
    """
    # The legacy global numpy state is captured on purpose: third-party code still draws from it.
    return {
        "python": random.getstate(),
        "numpy": _to_plain(np.random.get_state(legacy=False)),  # noqa: NPY002
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the global random states saved by :func:`capture_rng_state`.

    Parameters
    ----------
    state : dict
        As returned by :func:`capture_rng_state` (possibly after a checkpoint round trip).

    Raises
    ------
    ValueError
        If a key is missing.

    Warns
    -----
    RuntimeWarning
        If the number of CUDA devices differs from the saved one (only the common devices are
        restored, so the run will not be bit-reproducible).
    """
    missing = [key for key in _RNG_KEYS if key not in state]
    if missing:
        raise ValueError(f"the RNG state lacks {missing}; it must come from capture_rng_state()")
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state(dict(state["numpy"]))  # noqa: NPY002
    torch.set_rng_state(state["torch"].detach().cpu())
    saved = list(state["cuda"])
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if len(saved) != available and (saved or available):
        warnings.warn(f"the checkpoint holds {len(saved)} CUDA RNG state(s) but {available} CUDA "
                      f"device(s) are visible; only the first {min(len(saved), available)} are restored, so "
                      f"random draws on the GPU will differ from the original run", RuntimeWarning,
                      stacklevel=2)
    for device, cuda_state in enumerate(saved[:available]):
        torch.cuda.set_rng_state(cuda_state.detach().cpu(), device)
