"""Augmentation views of images that keep the target: "weak" and "strong" pipelines.

A dataset declares the geometric transforms its target is invariant to (an age survives a horizontal flip
and a small translation; a rotation angle survives a translation but not a flip or a rotation). The
pipeline builders refuse any geometric op outside that declaration, so no configuration can silently
change the labels. Photometric ops and cutout change no geometry and are always allowed.

- **weak**: pad by ``pad`` pixels and crop back at a random offset (a translation of up to ``pad``
  pixels), then a horizontal flip with probability 1/2 when ``hflip``.
- **strong**: the weak ops, then ``num_ops`` photometric ops drawn uniformly from
  :data:`PHOTOMETRIC_OPS` (RandAugment-style, each with a random magnitude in ``[0, magnitude]``), then
  cutout (a square of side up to ``cutout`` of the image side, filled with mid-grey). RandAugment's
  geometric ops (rotate, shear, translate) are left out: they would change many targets.

Pipelines take and return one normalised ``[C, H, W]`` float tensor (as the dataset returns it): they
undo the normalisation, work on the [0, 1] scale, clamp, and normalise again. All randomness comes from
torch's global generator (the loader seeds it per item, so views do not depend on the worker count).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from clss.data.images import ImagePreprocessing

__all__ = [
    "GEOMETRIC_OPS",
    "PAD_MODES",
    "PHOTOMETRIC_OPS",
    "ViewPipeline",
    "build_pipelines",
    "check_invariances",
    "default_pad",
    "strong_pipeline",
    "weak_pipeline",
]

#: Geometric ops a dataset may declare its target invariant to (only the first two are used by the views).
GEOMETRIC_OPS = ("translate", "hflip", "vflip", "rotate", "shear", "scale")
#: The strong view's photometric ops (``saturation`` applies to colour images only).
PHOTOMETRIC_OPS = ("identity", "brightness", "contrast", "saturation", "sharpness", "posterize", "solarize",
                   "autocontrast", "equalize")
# Largest relative change of the enhancement ops at magnitude 1 (factor in [0.1, 1.9]).
_MAX_FACTOR = 0.9
# Cutout fill on the [0, 1] scale.
_CUTOUT_FILL = 0.5


def check_invariances(invariant_to: Iterable[str]) -> tuple[str, ...]:
    """The declared label invariances as a tuple; a ValueError for names outside :data:`GEOMETRIC_OPS`."""
    if isinstance(invariant_to, str):
        raise TypeError(f"invariant_to must be a sequence of op names, e.g. ('translate', 'hflip'), got the "
                        f"string {invariant_to!r}")
    ops = tuple(invariant_to)
    unknown = sorted(set(ops) - set(GEOMETRIC_OPS))
    if unknown:
        raise ValueError(f"unknown geometric ops {unknown} in invariant_to; known: {list(GEOMETRIC_OPS)}")
    return ops


def _allowed(ops: Sequence[str], invariant_to: tuple[str, ...], how: dict[str, str]) -> None:
    forbidden = [op for op in ops if op not in invariant_to]
    if forbidden:
        fixes = "; ".join(how[op] for op in forbidden)
        raise ValueError(f"{', '.join(forbidden)} would change the target: the dataset's label is invariant "
                         f"to {list(invariant_to) or 'no geometric op'} only; {fixes}")


class ViewPipeline:
    """One augmentation pipeline: a picklable callable ``[C, H, W]`` → ``[C, H, W]`` (normalised tensors).

    Build it with :func:`weak_pipeline`, :func:`strong_pipeline` or :func:`build_pipelines`.

    Attributes
    ----------
    name : str
    ops : tuple of str
        Every op the pipeline may apply (geometric, photometric, ``"cutout"``), for inspection.
    """

    def __init__(self, name: str, preprocessing: ImagePreprocessing, *, pad: int, hflip: bool,
                 photometric: tuple[str, ...] = (), num_ops: int = 0, magnitude: float = 0.0,
                 cutout: float = 0.0, pad_mode: str = "zeros") -> None:
        if not preprocessing.resolved:
            raise ValueError("the preprocessing's normalisation is not estimated yet; pass the training "
                             "dataset's preprocessing")
        self.name, self.pad, self.hflip, self.pad_mode = name, pad, hflip, pad_mode
        self.photometric, self.num_ops, self.magnitude, self.cutout = photometric, num_ops, magnitude, cutout
        self.mean = torch.tensor(preprocessing.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(preprocessing.std, dtype=torch.float32).view(-1, 1, 1)
        geometric = (("translate",) if pad else ()) + (("hflip",) if hflip else ())
        self.ops = geometric + (photometric if num_ops else ()) + (("cutout",) if cutout else ())

    def __repr__(self) -> str:
        return f"ViewPipeline({self.name!r}, ops={self.ops})"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = (x * self.std + self.mean).clamp(0, 1)
        if self.pad:
            x = _translate(x, self.pad, self.pad_mode, self.mean)
        if self.hflip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        for _ in range(self.num_ops):
            op = self.photometric[int(torch.randint(len(self.photometric), ()))]
            x = _photometric(op, x, float(torch.rand(())) * self.magnitude)
        if self.cutout:
            x = _cutout(x, self.cutout)
        return (x.clamp(0, 1) - self.mean) / self.std


def _translate(x: torch.Tensor, pad: int, mode: str, mean: torch.Tensor) -> torch.Tensor:
    """Pad by ``pad`` (:data:`PAD_MODES`) and crop the original size at a random offset."""
    h, w = x.shape[-2:]
    sides = (pad, pad, pad, pad)
    if mode == "reflect":
        padded = torch.nn.functional.pad(x[None], sides, mode="reflect")[0]
    elif mode == "mean":
        padded = torch.nn.functional.pad(x - mean, sides) + mean
    else:
        padded = torch.nn.functional.pad(x, sides)
    top, left = (int(v) for v in torch.randint(2 * pad + 1, (2,)))
    return padded[..., top:top + h, left:left + w]


def _signed(m: float) -> float:
    """An enhancement factor ``1 ± 0.9 m`` with a random sign."""
    return 1.0 + (_MAX_FACTOR * m if bool(torch.rand(()) < 0.5) else -_MAX_FACTOR * m)


def _photometric(op: str, x: torch.Tensor, m: float) -> torch.Tensor:
    # Imported here: torchvision takes seconds to import, and `import clss.data` must stay light.
    from torchvision.transforms.v2 import functional as F

    if op == "brightness":
        return F.adjust_brightness(x, _signed(m))
    if op == "contrast":
        return F.adjust_contrast(x, _signed(m))
    if op == "saturation":
        return F.adjust_saturation(x, _signed(m))
    if op == "sharpness":
        return F.adjust_sharpness(x, _signed(m))
    if op == "posterize":
        levels = 2 ** (8 - round(4 * m))  # 8 to 4 bits
        return torch.floor(x * (levels - 1e-3)) / (levels - 1)
    if op == "solarize":
        return F.solarize(x, 1.0 - m)
    if op == "autocontrast":
        return F.autocontrast(x)
    if op == "equalize":
        return F.equalize(x)
    return x  # identity


def _cutout(x: torch.Tensor, fraction: float) -> torch.Tensor:
    """Fill a square of side ``U(0, fraction)·min(H, W)`` centred at a random pixel (clipped at the edges)."""
    h, w = x.shape[-2:]
    side = int(float(torch.rand(())) * fraction * min(h, w))
    if side == 0:
        return x
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    out = x.clone()
    out[..., max(cy - side // 2, 0):cy - side // 2 + side, max(cx - side // 2, 0):cx - side // 2 + side] = (
        _CUTOUT_FILL)
    return out


_HOW = {"translate": "pass pad=0", "hflip": "pass hflip=False"}


#: How a translation fills the border: black pixels, the mean colour (what zero-padding a normalised tensor
#: does, as the CLSS image code), or the mirrored image (as USB/RankUp's random crops).
PAD_MODES = ("zeros", "mean", "reflect")


def _check_common(invariant_to: Iterable[str], pad: int, hflip: bool, pad_mode: str = "zeros"
                  ) -> tuple[str, ...]:
    inv = check_invariances(invariant_to)
    if isinstance(pad, bool) or not isinstance(pad, int) or pad < 0:
        raise ValueError(f"pad must be an integer >= 0 (pixels), got {pad!r}")
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
    _allowed((("translate",) if pad else ()) + (("hflip",) if hflip else ()), inv, _HOW)
    return inv


def weak_pipeline(invariant_to: Iterable[str], preprocessing: ImagePreprocessing, *, pad: int,
                  hflip: bool = False, pad_mode: str = "zeros") -> ViewPipeline:
    """The weak view: a random translation of up to ``pad`` pixels (zero padding), optionally a random
    horizontal flip.

    Parameters
    ----------
    invariant_to : sequence of str
        The dataset's label invariances (names from :data:`GEOMETRIC_OPS`).
    preprocessing : ImagePreprocessing
        The dataset's (resolved) preprocessing: its mean/std undo and redo the normalisation.
    pad : int
        Translation range in pixels (0: none).
    hflip : bool, default False
    pad_mode : {"zeros", "mean", "reflect"}, default "zeros"
        The border a translation shows (:data:`PAD_MODES`); a reflected border needs ``pad`` smaller than
        the image sides.

    Raises
    ------
    ValueError
        An op the target is not invariant to (``pad > 0`` without ``"translate"``, ``hflip`` without
        ``"hflip"``), a negative pad, unknown invariance names.
    """
    _check_common(invariant_to, pad, hflip, pad_mode)
    return ViewPipeline("weak", preprocessing, pad=pad, hflip=hflip, pad_mode=pad_mode)


def strong_pipeline(invariant_to: Iterable[str], preprocessing: ImagePreprocessing, *, pad: int,
                    hflip: bool = False, pad_mode: str = "zeros", ops: Sequence[str] | None = None,
                    num_ops: int = 2, magnitude: float = 1.0, cutout: float = 0.5) -> ViewPipeline:
    """The strong view: the weak view's ops, ``num_ops`` random photometric ops, then cutout.

    Parameters
    ----------
    invariant_to, preprocessing, pad, hflip, pad_mode
        As :func:`weak_pipeline`.
    ops : sequence of str, optional
        Photometric ops to draw from (default :data:`PHOTOMETRIC_OPS`, without ``saturation`` for
        grayscale images).
    num_ops : int, default 2
        Ops applied per draw (each drawn uniformly, with replacement).
    magnitude : float, default 1.0
        Largest strength in [0, 1]; each op draws its strength uniformly in ``[0, magnitude]``.
    cutout : float, default 0.5
        Largest cutout side as a fraction of the image side, in [0, 1] (0: no cutout).

    Raises
    ------
    ValueError
        As :func:`weak_pipeline`; a geometric op (or any unknown name) in ``ops``; out-of-range
        ``num_ops``, ``magnitude`` or ``cutout``.
    """
    _check_common(invariant_to, pad, hflip, pad_mode)
    if ops is None:
        ops = tuple(op for op in PHOTOMETRIC_OPS if preprocessing.channels == 3 or op != "saturation")
    ops = tuple(ops)
    geometric = [op for op in ops if op in GEOMETRIC_OPS]
    if geometric:
        raise ValueError(f"the strong view's ops are photometric; {geometric} are geometric (their use is "
                         f"set by pad= and hflip=, within the dataset's label invariances)")
    unknown = sorted(set(ops) - set(PHOTOMETRIC_OPS))
    if unknown or not ops:
        raise ValueError(f"ops must be a non-empty selection of {list(PHOTOMETRIC_OPS)}, got {list(ops)}")
    if isinstance(num_ops, bool) or not isinstance(num_ops, int) or num_ops < 1:
        raise ValueError(f"num_ops must be an integer >= 1, got {num_ops!r}")
    if not 0 <= magnitude <= 1:
        raise ValueError(f"magnitude must lie in [0, 1], got {magnitude!r}")
    if not 0 <= cutout <= 1:
        raise ValueError(f"cutout must lie in [0, 1] (a fraction of the image side), got {cutout!r}")
    return ViewPipeline("strong", preprocessing, pad=pad, hflip=hflip, photometric=ops, num_ops=num_ops,
                        magnitude=float(magnitude), cutout=float(cutout), pad_mode=pad_mode)


def default_pad(size: tuple[int, ...]) -> int:
    """The default translation range: 1/8 of the smaller image side, rounded (at least 1 pixel)."""
    return max(1, round(min(size[-2:]) / 8))


def build_pipelines(invariant_to: Iterable[str], preprocessing: ImagePreprocessing,
                    size: tuple[int, ...], *, pad: int | None = None, hflip: bool | None = None,
                    pad_mode: str = "zeros", **strong: object) -> dict[str, ViewPipeline]:
    """A dataset's ``{"weak": ..., "strong": ...}`` pipelines (:attr:`DataSplits.pipelines`).

    Parameters
    ----------
    invariant_to : sequence of str
        The dataset's label invariances.
    preprocessing : ImagePreprocessing
        The training split's resolved preprocessing.
    size : tuple of int
        The input shape ``(C, H, W)`` (for the default pad).
    pad : int, optional
        Default: :func:`default_pad` when the target is invariant to ``"translate"``, else 0.
    hflip : bool, optional
        Default: whether the target is invariant to ``"hflip"``.
    pad_mode : {"zeros", "mean", "reflect"}, default "zeros"
    **strong
        Options of :func:`strong_pipeline` (``ops``, ``num_ops``, ``magnitude``, ``cutout``).
    """
    inv = check_invariances(invariant_to)
    pad = (default_pad(size) if "translate" in inv else 0) if pad is None else pad
    hflip = ("hflip" in inv) if hflip is None else hflip
    return {"weak": weak_pipeline(inv, preprocessing, pad=pad, hflip=hflip, pad_mode=pad_mode),
            "strong": strong_pipeline(inv, preprocessing, pad=pad, hflip=hflip, pad_mode=pad_mode,
                                      **strong)}  # type: ignore[arg-type]
