"""The data side of the data → step contract: what an input is, indexable datasets, and a dataset's splits.

Every modality implements :class:`RegressionDataset`: ``len(ds)``, ``ds[i]`` (the decoded, preprocessed
input of row ``i`` as a tensor, before any augmentation), ``ds.targets`` (all targets as float64, read
without decoding a single input), ``ds.source(i)`` (where row ``i`` comes from: a file path, or the row
number of an in-memory table) and ``ds.input`` (an :class:`InputSpec`: the kind and shape of one input,
which is what :func:`clss.models.build_model` builds a network for).

:class:`DataSplits` bundles the train / validation / test datasets of one dataset with its protocol
(fixed labelled rows, if any) and its augmentation pipelines, which map *pipeline names* (``"weak"``,
``"strong"``) to transforms of one input. A method asks for views by name (``"weak"``, ``"strong"``, or
``"weak@2"`` for a second independent draw of the weak pipeline, see :func:`view_pipeline`); the loader
applies the named pipeline to each row. A pipeline name the dataset does not define gives the plain
input (tabular data has no augmentation).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from clss.data.encoding import TabularEncoding

__all__ = ["INPUT_KINDS", "DataSplits", "InputSpec", "RegressionDataset", "TabularDataset", "view_pipeline"]

INPUT_KINDS = ("tabular", "image")

#: A transform of one preprocessed input (a tensor) into one augmented view of it.
Pipeline = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class InputSpec:
    """What one input is, after the dataset's preprocessing.

    Attributes
    ----------
    kind : {"tabular", "image"}
        The modality (volumes and audio will add kinds).
    shape : tuple of int
        Shape of one input tensor: ``(d,)`` for tabular rows, ``(C, H, W)`` for images.
    feature_names : tuple of str
        Tabular column names (``d`` of them); empty for other kinds.
    """

    kind: Literal["tabular", "image"]
    shape: tuple[int, ...]
    feature_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in INPUT_KINDS:
            raise ValueError(f"input kind must be one of {INPUT_KINDS}, got {self.kind!r}")
        shape = tuple(int(s) for s in self.shape)
        if not shape or any(s < 1 for s in shape):
            raise ValueError(f"input shape must be a non-empty tuple of positive sizes, got {self.shape!r}")
        if self.kind == "tabular" and len(shape) != 1:
            raise ValueError(f"a tabular input has shape (d,), got {shape}")
        if self.kind == "image" and len(shape) != 3:
            raise ValueError(f"an image input has shape (C, H, W), got {shape}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "feature_names", tuple(str(n) for n in self.feature_names))
        if self.feature_names and len(self.feature_names) != math.prod(shape):
            raise ValueError(f"{len(self.feature_names)} feature names for inputs of shape {shape}")

    @property
    def size(self) -> int:
        """Number of scalars in one input (``d`` for tabular rows, ``C·H·W`` for images)."""
        return math.prod(self.shape)

    @property
    def channels(self) -> int:
        """Image channels (``C``); 1 for tabular inputs."""
        return self.shape[0] if self.kind == "image" else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (written to a run's ``splits.json``)."""
        return {"kind": self.kind, "shape": list(self.shape), "feature_names": list(self.feature_names)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Rebuild from :meth:`to_dict` output."""
        return cls(d["kind"], tuple(d["shape"]), tuple(d.get("feature_names", ())))


class RegressionDataset(torch.utils.data.Dataset):
    """An indexable regression dataset: subclasses set ``input`` and ``targets`` and implement
    :meth:`__getitem__` and :meth:`source`.

    Attributes
    ----------
    input : InputSpec
        What ``self[i]`` returns: a tensor of shape ``input.shape``.
    targets : np.ndarray
        float64 ``[n]``; NaN marks a training row without a target (an unlabelled row).
    """

    input: InputSpec
    targets: np.ndarray
    #: True when every input is already decoded in memory (worker processes would only add overhead).
    in_memory: bool = False

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        """The decoded, preprocessed input of row ``i`` (no augmentation), shape ``input.shape``."""
        raise NotImplementedError

    def source(self, i: int) -> str:
        """Where row ``i`` comes from (a file path; a row number for in-memory tables)."""
        raise NotImplementedError


class TabularDataset(RegressionDataset):
    """Rows of an in-memory float32 table ``x`` ``[n, d]`` with targets ``y`` ``[n]``.

    The trainer's fast path reads ``x`` directly (one device tensor, gathered by index), so a tabular step
    costs what it did before datasets existed; ``self[i]`` serves the general loader.
    """

    in_memory = True

    def __init__(self, x: np.ndarray, y: np.ndarray, feature_names: tuple[str, ...] | list[str] = ()) -> None:
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.targets = np.asarray(y, dtype=np.float64).reshape(-1)
        if self.x.ndim != 2 or self.x.shape[0] != self.targets.shape[0]:
            raise ValueError(f"TabularDataset needs x [n, d] and y [n], got {self.x.shape} and "
                             f"{self.targets.shape}")
        self.input = InputSpec("tabular", (self.x.shape[1],), tuple(feature_names))

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.x[i])

    def source(self, i: int) -> str:
        return str(int(i))


@dataclass
class DataSplits:
    """One dataset's train / validation / test datasets, protocol and augmentation pipelines.

    Attributes
    ----------
    name : str
        The ``--dataset`` value it was loaded from.
    train, val, test : RegressionDataset
        Same ``input`` spec; only ``train`` may hold NaN targets (rows without a target).
    target_name : str
    meta : dict
        Provenance (source, protocol, preprocessing); JSON-able.
    labeled, unlabeled : np.ndarray or None
        Protocol-fixed training rows (e.g. a paper's split file); ``None`` leaves the labelled split to
        :func:`clss.data.split_labeled`.
    pipelines : dict of str to callable
        Augmentation pipeline per name (``"weak"``, ``"strong"``); a name not here gives the plain input.
    encoding : TabularEncoding or None
        A CSV dataset's fitted feature preprocessing.
    """

    name: str
    train: RegressionDataset
    val: RegressionDataset
    test: RegressionDataset
    target_name: str
    meta: dict[str, Any] = field(default_factory=dict)
    labeled: np.ndarray | None = None
    unlabeled: np.ndarray | None = None
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    encoding: TabularEncoding | None = None

    def __post_init__(self) -> None:
        for split in ("val", "test"):
            ds = getattr(self, split)
            if ds.input != self.train.input:
                raise ValueError(f"{self.name}: the {split} inputs are {ds.input}, the training inputs "
                                 f"{self.train.input}")
            if len(ds) == 0:
                raise ValueError(f"{self.name}: the {split} split is empty")
            if not np.isfinite(ds.targets).all():
                raise ValueError(f"{self.name}: the {split} split has non-finite targets")

    @property
    def input(self) -> InputSpec:
        """The inputs' kind and shape (the same for every split)."""
        return self.train.input

    @property
    def no_target(self) -> np.ndarray:
        """int64 indices of the training rows without a target (NaN): always unlabelled."""
        return np.flatnonzero(np.isnan(self.train.targets))


def view_pipeline(view: str) -> str:
    """The pipeline a view name draws from: ``"weak@2"`` → ``"weak"`` (a second independent draw).

    Raises
    ------
    ValueError
        An empty pipeline name or a draw number that is not an integer >= 1.
    """
    name, _, draw = view.partition("@")
    if not name or (draw and not (draw.isdigit() and int(draw) >= 1)):
        raise ValueError(f"a view name is PIPELINE or PIPELINE@N (N >= 1), e.g. 'weak' or 'weak@2'; got "
                         f"{view!r}")
    return name
