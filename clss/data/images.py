"""Image datasets: files decoded lazily (:class:`ImageDataset`) or arrays in memory
(:class:`ArrayImageDataset`), both shaped by one recorded :class:`ImagePreprocessing`.

Decoding happens in ``ds[i]`` (in the loader's workers), never at construction: construction only checks
that every file exists and is readable (and, for native-size datasets, reads each file's header for its
size), so that a missing file stops a run before its first step, not an hour into it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from clss.data.dataset import InputSpec, RegressionDataset

__all__ = ["NORMALIZATIONS", "ArrayImageDataset", "ImageDataset", "ImagePreprocessing", "ImageReadError"]

# ImageNet statistics on the [0, 1] scale, RGB order (torchvision's pretrained weights expect them).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
#: ``normalize`` settings: fixed ImageNet statistics, none (mean 0, std 1), or estimated from training images.
NORMALIZATIONS = ("imagenet", "none", "estimate")
# How many named files an error lists before "... and N more".
_LIST_FILES = 5


class ImageReadError(ValueError):
    """An image file that cannot be decoded (corrupt or truncated bytes, not an image); names the file.

    Raised in a ``DataLoader`` worker, it reaches the main process rebuilt from torch's multi-line report
    ("Caught ImageReadError in DataLoader worker process 0. Original Traceback ..."); the message is then
    cut back to the original one line, so the file stays named wherever the error surfaces.
    """

    _WORKER_REPORT = "Caught ImageReadError"

    def __init__(self, message: str) -> None:
        if message.startswith(self._WORKER_REPORT):
            message = message.rstrip().rpartition("ImageReadError: ")[2] or message
        super().__init__(message)


def _size_pair(value: Any, name: str) -> tuple[int, int] | None:
    """``None``, an int ``s`` (square ``(s, s)``) or ``(H, W)`` of positive ints."""
    if value is None:
        return None
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        h, w = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None, a size S or a pair (H, W), got {value!r}") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in (h, w)):
        raise ValueError(f"{name} must hold positive integer sizes, got {value!r}")
    return int(h), int(w)


@dataclass(frozen=True)
class ImagePreprocessing:
    """How an image file becomes the network's input tensor (recorded in a dataset's ``meta``).

    The steps, in order: convert the image's mode to ``channels`` (see below) → resize to ``resize``
    (bilinear with antialiasing; ``None`` keeps the native size, and then every image must have the same
    size) → center-crop to ``crop`` → scale to [0, 1] → reorder to ``order`` → ``(x - mean) / std`` per
    channel. Inputs are float32 ``[channels, H, W]``.

    Mode conversion: 3 channels use Pillow's ``convert("RGB")`` (grayscale ``L``/``1`` images are
    repeated on the three channels, ``CMYK`` and ``YCbCr`` are converted, the alpha channel of ``RGBA``
    / ``LA`` / transparent palette images is dropped, keeping the stored colours); 1 channel uses
    ``convert("L")`` (ITU-R 601-2 luma of colour images, alpha dropped). 16-bit grayscale images
    (``I;16``) are scaled by 1/65535.

    Attributes
    ----------
    channels : {3, 1}, default 3
    order : {"rgb", "bgr"}, default "rgb"
        Channel order fed to the network (3 channels only); the official CLSS code decodes with OpenCV,
        which gives BGR.
    resize : (int, int) or None, default None
        ``(H, W)`` after resizing (an int means a square); ``None`` keeps the native size.
    crop : (int, int) or None, default None
        Center crop ``(H, W)`` after resizing; must fit in the (resized) image.
    normalize : {"imagenet", "none", "estimate"}, default "none"
        ``"imagenet"``: ImageNet's mean/std (reordered for BGR; their channel average for 1 channel);
        ``"none"``: mean 0, std 1; ``"estimate"``: per channel, the average over up to
        ``estimate_images`` training images (drawn with ``estimate_seed``) of each image's mean and std, as
        the official code does. The training dataset resolves it (:meth:`ImageDataset.__init__`); its
        ``preprocessing`` then carries the numbers for the other splits.
    mean, std : tuple of float or None
        Per-channel statistics on the [0, 1] scale, in ``order``; set by ``normalize`` unless given
        (``normalize="estimate"`` leaves them ``None`` until estimated).
    estimate_images : int, default 128
    estimate_seed : int, default 0
    """

    channels: int = 3
    order: str = "rgb"
    resize: tuple[int, int] | None = None
    crop: tuple[int, int] | None = None
    normalize: str = "none"
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    estimate_images: int = 128
    estimate_seed: int = 0

    def __post_init__(self) -> None:
        if self.channels not in (1, 3) or isinstance(self.channels, bool):
            raise ValueError(f"channels must be 1 (grayscale) or 3 (colour), got {self.channels!r}")
        if self.order not in ("rgb", "bgr"):
            raise ValueError(f"order must be 'rgb' or 'bgr', got {self.order!r}")
        if self.channels == 1 and self.order != "rgb":
            raise ValueError("order='bgr' needs channels=3 (a grayscale image has no channel order)")
        object.__setattr__(self, "resize", _size_pair(self.resize, "resize"))
        object.__setattr__(self, "crop", _size_pair(self.crop, "crop"))
        if self.crop is not None and self.resize is not None and (
                self.crop[0] > self.resize[0] or self.crop[1] > self.resize[1]):
            raise ValueError(f"crop {self.crop} does not fit in the resized image {self.resize}")
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if isinstance(self.estimate_images, bool) or not (isinstance(self.estimate_images, int)
                                                          and self.estimate_images >= 1):
            raise ValueError(f"estimate_images must be an integer >= 1, got {self.estimate_images!r}")
        if not (isinstance(self.estimate_seed, int) and self.estimate_seed >= 0):
            raise ValueError(f"estimate_seed must be a non-negative integer, got {self.estimate_seed!r}")
        if (self.mean is None) != (self.std is None):
            raise ValueError("give mean and std together (or neither)")
        if self.mean is None and self.normalize != "estimate":
            mean, std = _preset_statistics(self.normalize, self.channels, self.order)
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        if self.mean is not None:
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)  # type: ignore[union-attr]
            if len(mean) != self.channels or len(std) != self.channels:
                raise ValueError(f"mean and std need {self.channels} values (one per channel), got "
                                 f"{len(mean)} and {len(std)}")
            if not (np.isfinite(mean).all() and np.isfinite(std).all() and min(std) > 0):
                raise ValueError(f"mean must be finite and std finite and > 0, got {mean} and {std}")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)

    @property
    def resolved(self) -> bool:
        """Whether the normalisation statistics are known (``False`` only for an unresolved estimate)."""
        return self.mean is not None

    def output_size(self, native: tuple[int, int]) -> tuple[int, int]:
        """``(H, W)`` of the output for an image of native size ``(H, W)``."""
        size = self.resize or native
        if self.crop is None:
            return size
        if self.crop[0] > size[0] or self.crop[1] > size[1]:
            raise ValueError(f"crop {self.crop} does not fit in images of size {size}")
        return self.crop

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` per channel of a ``[C, H, W]`` (or ``[B, C, H, W]``) tensor on the [0, 1]
        scale."""
        if self.mean is None:
            raise ValueError("the normalisation statistics are not estimated yet (normalize='estimate'); "
                             "build the training ImageDataset first and use its preprocessing")
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return (x - mean) / std

    def denormalise(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`normalise` (back to the [0, 1] scale)."""
        mean = torch.tensor(self.mean, dtype=x.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).view(-1, 1, 1)
        return x * std + mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists for tuples)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImagePreprocessing:
        """Rebuild from :meth:`to_dict` output; unknown keys are refused."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown image preprocessing keys {unknown}; known: {sorted(known)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def decode(self, path: str | os.PathLike[str]) -> torch.Tensor:
        """Read one image file into a normalised float32 ``[C, H, W]`` tensor.

        Raises
        ------
        ImageReadError
            The file cannot be decoded (names the file and the decoder's reason).
        FileNotFoundError
            The file has disappeared since the dataset was built.
        """
        try:
            with Image.open(path) as img, warnings.catch_warnings():
                # Pillow warns about transparent palette images; the alpha is dropped as documented.
                warnings.simplefilter("ignore", UserWarning)
                arr = self._to_array(img)
        except FileNotFoundError:
            raise FileNotFoundError(f"image file disappeared after the dataset was built: {path}") from None
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"cannot decode image {path}: {exc}") from None
        return self._finish(arr)

    def _to_array(self, img: Image.Image) -> np.ndarray:
        """float32 ``[H, W, C]`` on the [0, 1] scale, resized and cropped."""
        if img.mode.startswith("I;16"):
            # Mode F keeps the 16-bit precision through the resize.
            arr = np.asarray(self._geometry(img.convert("F")), dtype=np.float32)[..., None] / 65535.0
            return arr.repeat(3, axis=2) if self.channels == 3 else arr
        if img.mode == "P":
            img = img.convert("RGBA")  # palette transparency is honoured, then the alpha is dropped
        arr = np.asarray(self._geometry(img.convert("RGB" if self.channels == 3 else "L")), dtype=np.float32)
        return (arr if arr.ndim == 3 else arr[..., None]) / 255.0

    def _geometry(self, img: Image.Image) -> Image.Image:
        if self.resize is not None and img.size != (self.resize[1], self.resize[0]):
            img = img.resize((self.resize[1], self.resize[0]), Image.Resampling.BILINEAR)
        if self.crop is not None:
            w, h = img.size
            ch, cw = self.crop
            top, left = (h - ch) // 2, (w - cw) // 2
            img = img.crop((left, top, left + cw, top + ch))
        return img

    def _finish(self, arr: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        if self.order == "bgr":
            x = x.flip(0)
        return self.normalise(x) if self.mean is not None else x


def _preset_statistics(name: str, channels: int, order: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    if name == "none":
        return (0.0,) * channels, (1.0,) * channels
    mean, std = _IMAGENET_MEAN, _IMAGENET_STD
    if channels == 1:
        return (float(np.mean(mean)),), (float(np.mean(std)),)
    return (mean[::-1], std[::-1]) if order == "bgr" else (mean, std)


def _file_list(files: Sequence[str], n_bad: int) -> str:
    shown = ", ".join(files[:_LIST_FILES])
    return shown + (f" ... and {n_bad - _LIST_FILES} more" if n_bad > _LIST_FILES else "")


def _check_files(files: list[str]) -> None:
    """One error for every missing, non-file or unreadable path (counted, the first ones named)."""
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(files)} image files are missing (or not files): "
                                f"{_file_list(missing, len(missing))}")
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        raise ValueError(f"{len(unreadable)} image files cannot be read (permission denied): "
                         f"{_file_list(unreadable, len(unreadable))}")


def _native_sizes(files: list[str]) -> np.ndarray:
    """int ``[n, 2]``: each file's ``(H, W)`` from its header (no decoding)."""
    sizes = np.empty((len(files), 2), dtype=np.int64)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as img:
                sizes[i] = img.size[::-1]
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageReadError(f"cannot read image {f}: {exc}") from None
    return sizes


def _estimated(p: ImagePreprocessing, n: int,
               unnormalised: Callable[[int], torch.Tensor]) -> ImagePreprocessing:
    """``p`` with ``normalize="estimate"`` resolved from up to ``p.estimate_images`` of ``n`` images (drawn
    with ``p.estimate_seed``): per channel, the average of each image's mean and of each image's std."""
    if p.resolved:
        return p
    rows = np.random.default_rng(p.estimate_seed).choice(n, size=min(p.estimate_images, n), replace=False)
    imgs = [unnormalised(int(i)) for i in np.sort(rows)]
    means = torch.stack([x.mean(dim=(1, 2)) for x in imgs]).mean(0)
    stds = torch.stack([x.std(dim=(1, 2), correction=0) for x in imgs]).mean(0)
    # A constant channel (std 0) is left unscaled rather than divided by zero.
    stds = torch.where(stds > 1e-6, stds, torch.ones_like(stds))
    return replace(p, mean=tuple(means.tolist()), std=tuple(stds.tolist()))


class ImageDataset(RegressionDataset):
    """Image files under ``root`` with their targets, decoded lazily by ``preprocessing``.

    Parameters
    ----------
    root : str or PathLike
        Folder the relative ``paths`` are resolved under.
    paths : sequence of str
        ``n`` image paths (relative to ``root``, or absolute); any format Pillow reads (PNG, JPEG, ...).
    targets : array-like
        ``n`` targets (float64; NaN marks a training row without a target).
    preprocessing : ImagePreprocessing
        With ``normalize="estimate"`` and no statistics yet, they are estimated here from this dataset's
        images (build the training split first, then pass ``train.preprocessing`` to the others).
    sources : sequence of str, optional
        What :meth:`source` reports per row (default: the resolved file path).

    Attributes
    ----------
    files : np.ndarray
        str ``[n]``: resolved file paths.
    preprocessing : ImagePreprocessing
        Resolved (normalisation statistics known).
    input : InputSpec
        ``("image", (C, H, W))``.

    Raises
    ------
    FileNotFoundError
        Missing files (their count and the first ones named), before anything is decoded.
    ValueError
        Mismatched lengths, no rows, unreadable files, images of differing sizes without ``resize``.
    ImageReadError
        (a ValueError) A file whose header cannot be read (native size only: the others are decoded
        lazily) or, in ``ds[i]``, whose bytes cannot be decoded.
    """

    def __init__(self, root: str | os.PathLike[str], paths: Sequence[str], targets: Any,
                 preprocessing: ImagePreprocessing, *, sources: Sequence[str] | None = None) -> None:
        if not isinstance(preprocessing, ImagePreprocessing):
            raise TypeError(f"preprocessing must be an ImagePreprocessing, got "
                            f"{type(preprocessing).__name__}")
        self.root = Path(root)
        self.targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        paths = [os.fspath(p) for p in paths]
        if len(paths) != self.targets.size:
            raise ValueError(f"{len(paths)} image paths but {self.targets.size} targets")
        if not paths:
            raise ValueError("an ImageDataset needs at least one image")
        if sources is not None and len(sources) != len(paths):
            raise ValueError(f"{len(sources)} sources for {len(paths)} images")
        files = [os.path.join(self.root, p) for p in paths]
        _check_files(files)
        self.files = np.asarray(files, dtype=str)
        self.sources = None if sources is None else np.asarray([str(s) for s in sources], dtype=str)
        self.preprocessing = preprocessing
        if preprocessing.resize is None:
            sizes = _native_sizes(files)
            odd = np.flatnonzero((sizes != sizes[0]).any(axis=1))
            if odd.size:
                raise ValueError(
                    f"images differ in size ({files[0]} is {sizes[0, 0]}x{sizes[0, 1]}, {files[odd[0]]} is "
                    f"{sizes[odd[0], 0]}x{sizes[odd[0], 1]}; {odd.size} differ from the first): set a "
                    "resize (H, W) in the image preprocessing")
            native = (int(sizes[0, 0]), int(sizes[0, 1]))
        else:
            native = preprocessing.resize
        h, w = preprocessing.output_size(native)
        self.input = InputSpec("image", (preprocessing.channels, h, w))
        self.preprocessing = _estimated(preprocessing, len(paths), self._unnormalised)

    def _unnormalised(self, i: int) -> torch.Tensor:
        return replace(self.preprocessing, normalize="none", mean=None, std=None).decode(self.files[i])

    def __getitem__(self, i: int) -> torch.Tensor:
        x = self.preprocessing.decode(self.files[i])
        if tuple(x.shape) != self.input.shape:
            raise ImageReadError(f"image {self.files[i]} decodes to shape {tuple(x.shape)}, the dataset's "
                                 f"inputs are {self.input.shape} (the file changed after the dataset was "
                                 "built?)")
        return x

    def source(self, i: int) -> str:
        return str(self.sources[i] if self.sources is not None else self.files[i])


class ArrayImageDataset(RegressionDataset):
    """Images held in memory: a float array ``[n, C, H, W]`` on the [0, 1] scale, normalised by
    ``preprocessing`` (its ``mean``/``std``; resizing, cropping and channel order do not apply and must be
    left at their defaults, and ``channels`` must equal ``C``).

    Parameters
    ----------
    images : array-like
        ``[n, C, H, W]`` (or ``[n, H, W]`` for one channel), finite, in [0, 1].
    targets : array-like
        ``n`` targets.
    preprocessing : ImagePreprocessing
    sources : sequence of str, optional
        Per-row source labels (default: the row number).
    """

    in_memory = True

    def __init__(self, images: Any, targets: Any, preprocessing: ImagePreprocessing, *,
                 sources: Sequence[str] | None = None) -> None:
        x = torch.as_tensor(np.asarray(images, dtype=np.float32))
        if x.ndim == 3:
            x = x.unsqueeze(1)
        self.targets = np.asarray(targets, dtype=np.float64).reshape(-1)
        if x.ndim != 4 or x.shape[0] != self.targets.size or x.shape[0] == 0:
            raise ValueError(f"ArrayImageDataset needs images [n, C, H, W] and n targets (n >= 1), got "
                             f"{tuple(x.shape)} and {self.targets.shape}")
        if preprocessing.channels != x.shape[1]:
            raise ValueError(f"the images have {x.shape[1]} channels, the preprocessing "
                             f"{preprocessing.channels}")
        if preprocessing.resize is not None or preprocessing.crop is not None or preprocessing.order != "rgb":
            raise ValueError("in-memory images are used at their size and channel order: leave resize, crop "
                             "and order at their defaults")
        if not bool(((x >= 0) & (x <= 1)).all()):  # also false for NaN
            raise ValueError("in-memory images must be finite and on the [0, 1] scale")
        if sources is not None and len(sources) != x.shape[0]:
            raise ValueError(f"{len(sources)} sources for {x.shape[0]} images")
        self.images = x
        self.sources = None if sources is None else np.asarray([str(s) for s in sources], dtype=str)
        self.preprocessing = preprocessing
        self.input = InputSpec("image", tuple(x.shape[1:]))
        self.preprocessing = _estimated(preprocessing, x.shape[0], self._unnormalised)
        self._normalised = self.preprocessing.normalise(self.images)

    def _unnormalised(self, i: int) -> torch.Tensor:
        return self.images[i]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self._normalised[i]

    def source(self, i: int) -> str:
        return str(self.sources[i] if self.sources is not None else int(i))
