"""Pretrained weights from a local file (``model.weights=PATH``); nothing is ever downloaded.

A file is read with ``torch.load(weights_only=True)`` (tensors and plain containers only, no code) and may
hold

- a clss checkpoint (``RUN/best.pt``, ``RUN/last.pt``): its network's weights;
- a whole model's ``state_dict()`` (``torch.save(model.state_dict(), PATH)`` of a clss model);
- a backbone's ``state_dict()`` in the architecture's own naming: a torchvision ResNet's (as
  ``torchvision.models.resnet18().state_dict()`` or a torchvision weights file), a USB WideResNet's. Its
  classification layer (``fc`` / ``classifier``) is skipped and the regression head starts fresh.

A leading ``module.`` on every key (``nn.DataParallel`` checkpoints) is removed. A 3-channel first
convolution loads into a 1-channel model summed over its input channels, which makes the 1-channel model
on a grey image ``g`` compute exactly what the 3-channel model computes on ``(g, g, g)``. Any other
mismatch (missing or unknown tensors, shapes) means another architecture and is refused, and so are
NaN or infinite values.
"""

from __future__ import annotations

import errno
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clss.models.backbone import BackboneRegressor

__all__ = ["load_weights"]

# Step counters of batch norm: absent from old torchvision files and meaningless for transfer.
_COUNTER = "num_batches_tracked"


def load_weights(model: nn.Module, path: str | Path, name: str) -> str:
    """Load the weights in ``path`` into ``model`` (in place) and return a one-line report.

    Parameters
    ----------
    model : nn.Module
        A model of :mod:`clss.models` (``build_model`` output).
    path : str or Path
        A local file (see the module docstring for what it may hold).
    name : str
        The model's registry name, used in messages.

    Returns
    -------
    str
        What was loaded, skipped or adapted.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        The file is not a torch file, holds objects other than tensors, or does not fit the model.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        folder = " (it is a folder)" if p.is_dir() else ""
        raise FileNotFoundError(f"model.weights: no file at {p}{folder}")
    state = _tensors(_read(p), p)
    target = model.state_dict()
    skipped: list[str] = []
    prefix = ""  # what the model's keys have and the file's lack (messages use the file's names)
    if isinstance(model, BackboneRegressor) and not any(k.startswith("backbone.") for k in state):
        prefix = "backbone."
        skipped = [k for k in state if k.startswith(model.classifier_prefixes)]
        state = {prefix + k: v for k, v in state.items() if k not in skipped}
    needed = {k for k in target if k.startswith(prefix) and not k.endswith(_COUNTER)}
    given = {k for k in state if not k.endswith(_COUNTER)}
    if not given & needed:
        raise ValueError(f"model.weights: {p} holds no tensor of a {name!r} model (its keys look like "
                         f"{_examples(given, prefix)}, the model's like {_examples(needed, prefix)}); it is "
                         f"another architecture")
    missing, unknown = needed - given, given - set(target)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"lacks {len(missing)} of the model's tensors (e.g. {_examples(missing, prefix)})")
        if unknown:
            parts.append(f"has {len(unknown)} the model does not have (e.g. {_examples(unknown, prefix)})")
        raise ValueError(f"model.weights: {p} does not fit model {name!r}: it {' and '.join(parts)}; it is "
                         f"another architecture or configuration")
    adapted = _adapt_first_conv(model, state, target, prefix)
    for k, v in state.items():
        if k in target and tuple(v.shape) != tuple(target[k].shape):
            raise ValueError(f"model.weights: {p} does not fit model {name!r}: {k.removeprefix(prefix)!r} "
                             f"has shape {list(v.shape)} in the file, {list(target[k].shape)} in the model")
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise ValueError(f"model.weights: {p}: {k.removeprefix(prefix)!r} holds NaN or infinite values; "
                             f"the file's weights are unusable")
    model.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
    report = f"model.weights: loaded {len(given)} tensors from {p}"
    if skipped:
        report += f"; skipped its classifier ({', '.join(skipped)}), the regression head starts fresh"
    if adapted:
        report += f"; {adapted}"
    return report


def _read(p: Path) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        from clss.engine.checkpoint import _unpickler_reason

        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found:
            raise ValueError(f"model.weights: {p} holds a {found.group(1)} object, which torch.load("
                             f"weights_only=True) refuses; save the weights with torch.save("
                             f"model.state_dict(), PATH)") from None
        raise ValueError(f"model.weights: {p} is not a torch weights file (torch.load(weights_only=True): "
                         f"{_unpickler_reason(exc)}); save the weights with torch.save(model.state_dict(), "
                         f"PATH)") from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, KeyError, IndexError, OSError) as exc:
        # torch reports some truncations as OSError(EINVAL); other OS errors (permissions...) are not ours.
        if isinstance(exc, OSError) and exc.errno != errno.EINVAL:
            raise
        reason = "the file is empty" if p.stat().st_size == 0 else f"{type(exc).__name__}: {exc}"
        reason = reason.splitlines()[0]
        raise ValueError(f"model.weights: {p} is not a torch weights file ({reason})") from None


def _tensors(obj: Any, p: Path) -> dict[str, torch.Tensor]:
    """The name -> tensor mapping a loaded file holds (a clss checkpoint's network, or the file itself)."""
    from clss.engine.checkpoint import FORMAT_KEY  # here: clss.engine imports clss.models

    if isinstance(obj, dict) and isinstance(obj.get(FORMAT_KEY), dict):
        method = obj.get("method")
        if not isinstance(method, dict):
            raise ValueError(f"model.weights: {p} is a clss checkpoint without network weights (no 'method' "
                             f"entry); use RUN/best.pt or RUN/last.pt of a training run")
        obj = {k.removeprefix("model."): v for k, v in method.items() if k.startswith("model.")}
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                       for k, v in obj.items()):
        what = (f"a dict with the keys {_examples(list(obj))}" if isinstance(obj, dict) and obj else
                "an empty dict" if isinstance(obj, dict) else f"a {type(obj).__name__}")
        raise ValueError(f"model.weights: {p} holds {what}, not a mapping of names to tensors; save the "
                         f"weights with torch.save(model.state_dict(), PATH)")
    if all(k.startswith("module.") for k in obj):  # nn.DataParallel / DistributedDataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return obj


def _adapt_first_conv(model: nn.Module, state: dict[str, torch.Tensor], target: dict[str, torch.Tensor],
                      prefix: str) -> str:
    """Sum a 3-channel first convolution over its input channels for a 1-channel model (in ``state``)."""
    key = getattr(model, "first_conv", "")
    if key not in state or key not in target:
        return ""
    have, want = state[key], target[key]
    if have.dim() == 4 and want.dim() == 4 and have.shape[1] == 3 and want.shape[1] == 1 \
            and have.shape[0] == want.shape[0] and have.shape[2:] == want.shape[2:]:
        state[key] = have.sum(dim=1, keepdim=True)
        return f"summed the 3-channel {key.removeprefix(prefix)} over its channels for 1-channel inputs"
    return ""


def _examples(keys: Any, prefix: str = "") -> str:
    keys = sorted(k.removeprefix(prefix) for k in keys)
    return ", ".join(repr(k) for k in keys[:3]) + (", ..." if len(keys) > 3 else "")
