"""Core data containers: :class:`RegressionData` and :class:`Standardizer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from clss.data.dataset import DataSplits, TabularDataset
from clss.data.encoding import TabularEncoding

__all__ = ["RegressionData", "Standardizer"]

# Features whose training standard deviation is below this are left unscaled (constant columns).
_STD_EPS = 1e-12

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Standardizer:
    """Per-feature input standardisation and scalar target standardisation.

    Fitted by :meth:`RegressionData.standardizer` on training rows only. Every ``transform_*`` and
    ``inverse_*`` accepts a numpy array or a torch tensor and returns the same kind (torch: same device;
    dtype follows the input for floating inputs).

    Attributes
    ----------
    x_mean, x_std : np.ndarray
        float64 ``[d]``; ``x_std`` is 1 where the training std is (numerically) zero.
    y_mean, y_std : float
        Target mean and std (``y_std`` is 1 for a constant target).
    """

    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, *, inputs: bool = True, targets: bool = True) -> Standardizer:
        """Fit on inputs ``x`` ``[n, d]`` and targets ``y`` ``[m]`` (population std, zero-std guarded).

        ``inputs=False`` / ``targets=False`` leave that side unscaled (the identity: mean 0, std 1), e.g.
        for features whose relative scales carry information, as the operator-learning KL features do.
        """
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0 or y.size == 0:
            raise ValueError(f"cannot fit a Standardizer on x of shape {x.shape} and y of shape {y.shape}")
        x_std = x.std(axis=0)
        y_std = float(y.std())
        return cls(
            x_mean=x.mean(axis=0) if inputs else np.zeros(x.shape[1]),
            x_std=np.where(x_std > _STD_EPS, x_std, 1.0) if inputs else np.ones(x.shape[1]),
            y_mean=float(y.mean()) if targets else 0.0,
            y_std=(y_std if y_std > _STD_EPS else 1.0) if targets else 1.0,
        )

    @staticmethod
    def _affine(a: ArrayT, shift: Any, scale: Any, inverse: bool) -> ArrayT:
        if isinstance(a, torch.Tensor):
            dtype = a.dtype if a.is_floating_point() else torch.get_default_dtype()
            shift = torch.as_tensor(shift, dtype=dtype, device=a.device)
            scale = torch.as_tensor(scale, dtype=dtype, device=a.device)
            a = a.to(dtype)
        else:
            a = np.asarray(a)
            if not np.issubdtype(a.dtype, np.floating):
                a = a.astype(np.float64)
            shift = np.asarray(shift, dtype=a.dtype)
            scale = np.asarray(scale, dtype=a.dtype)
        return a * scale + shift if inverse else (a - shift) / scale

    def transform_x(self, x: ArrayT) -> ArrayT:
        """Standardise inputs ``[n, d]``: ``(x - x_mean) / x_std``."""
        if x.shape[-1] != self.x_mean.shape[0]:
            raise ValueError(
                f"x has {x.shape[-1]} features, the Standardizer was fitted on {self.x_mean.shape[0]}"
            )
        return self._affine(x, self.x_mean, self.x_std, inverse=False)

    def transform_y(self, y: ArrayT) -> ArrayT:
        """Standardise targets (any shape): ``(y - y_mean) / y_std``."""
        return self._affine(y, self.y_mean, self.y_std, inverse=False)

    def inverse_y(self, y: ArrayT) -> ArrayT:
        """Map standardised targets or predictions back to target units: ``y * y_std + y_mean``."""
        return self._affine(y, self.y_mean, self.y_std, inverse=True)

    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: plain floats and lists of floats."""
        return {
            "x_mean": [float(v) for v in self.x_mean],
            "x_std": [float(v) for v in self.x_std],
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Standardizer:
        """Rebuild from :meth:`state_dict` output."""
        missing = {"x_mean", "x_std", "y_mean", "y_std"} - set(state)
        if missing:
            raise ValueError(f"Standardizer state is missing {sorted(missing)}")
        x_mean = np.asarray(state["x_mean"], dtype=np.float64)
        x_std = np.asarray(state["x_std"], dtype=np.float64)
        if x_mean.shape != x_std.shape or x_mean.ndim != 1:
            raise ValueError(f"Standardizer state has x_mean {x_mean.shape} and x_std {x_std.shape}")
        return cls(x_mean=x_mean, x_std=x_std, y_mean=float(state["y_mean"]), y_std=float(state["y_std"]))


def _as_indices(name: str, idx: Any, n: int) -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(
            f"{name} must be a 1-D array of integer row indices, got dtype {arr.dtype}, shape {arr.shape}"
        )
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n):
        raise ValueError(
            f"{name} indices must lie in [0, {n}) (the training rows), got [{arr.min()}, {arr.max()}]"
        )
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name} indices contain duplicates")
    return arr


@dataclass
class RegressionData:
    """A regression dataset split into train / validation / test.

    Parameters
    ----------
    name : str
        Dataset name as passed to :func:`clss.data.load_dataset`.
    x_train, x_val, x_test : np.ndarray
        Inputs ``[n, d]``; converted to C-contiguous float32.
    y_train, y_val, y_test : np.ndarray
        Targets ``[n]`` (``[n, 1]`` is accepted and flattened); converted to float64. NaN in ``y_train``
        marks a row without a target (an unlabelled row, e.g. an empty target cell of a CSV file); val and
        test targets must be finite.
    feature_names : list of str
        ``d`` input column names.
    target_name : str
        Target column name.
    meta : dict
        Provenance: source path or generator parameters, run index, protocol notes. JSON-able.
    labeled, unlabeled : np.ndarray or None
        Protocol-fixed row indices into the *train* arrays (e.g. the paper's operator-learning runs,
        as the official code draws them); ``None`` when the protocol leaves the labeled split to the caller
        (:func:`clss.data.split_labeled`).
    encoding : TabularEncoding or None
        The fitted feature preprocessing of a CSV dataset (apply it to new files); ``None`` otherwise.

    Raises
    ------
    ValueError
        On wrong ranks, mismatched lengths or feature counts, empty train/val/test, non-finite values or bad
        labeled/unlabeled indices (out of range, duplicated, overlapping).
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    target_name: str
    meta: dict[str, Any] = field(default_factory=dict)
    labeled: np.ndarray | None = None
    unlabeled: np.ndarray | None = None
    encoding: TabularEncoding | None = None

    def __post_init__(self) -> None:
        d = None
        for split in ("train", "val", "test"):
            x = np.ascontiguousarray(getattr(self, f"x_{split}"), dtype=np.float32)
            y = np.asarray(getattr(self, f"y_{split}"), dtype=np.float64)
            if y.ndim == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if x.ndim != 2:
                raise ValueError(f"{self.name}: x_{split} must be 2-D [n, d], got shape {x.shape}")
            if y.ndim != 1:
                raise ValueError(f"{self.name}: y_{split} must be 1-D [n], got shape {y.shape}")
            if x.shape[0] != y.shape[0]:
                raise ValueError(
                    f"{self.name}: x_{split} has {x.shape[0]} rows but y_{split} has {y.shape[0]}"
                )
            if x.shape[0] == 0:
                raise ValueError(f"{self.name}: the {split} split is empty")
            if d is not None and x.shape[1] != d:
                raise ValueError(f"{self.name}: x_{split} has {x.shape[1]} features, x_train has {d}")
            d = x.shape[1]
            bad_x = ~np.isfinite(x).all(axis=1)
            # NaN marks a training row without a target (unlabelled); anywhere else it is an error.
            bad_y = np.isinf(y) if split == "train" else ~np.isfinite(y)
            if bad_x.any() or bad_y.any():
                rows = np.flatnonzero(bad_x | bad_y)
                raise ValueError(
                    f"{self.name}: {rows.size} {split} rows contain NaN/inf (first: {rows[:10].tolist()})"
                )
            setattr(self, f"x_{split}", x)
            setattr(self, f"y_{split}", y)
        self.feature_names = [str(f) for f in self.feature_names]
        if len(self.feature_names) != d:
            raise ValueError(f"{self.name}: {len(self.feature_names)} feature names for {d} features")
        n = self.x_train.shape[0]
        if self.labeled is not None:
            self.labeled = _as_indices("labeled", self.labeled, n)
            if self.labeled.size == 0:
                raise ValueError(f"{self.name}: the protocol's labeled set is empty")
        if self.labeled is not None and np.isnan(self.y_train[self.labeled]).any():
            raise ValueError(f"{self.name}: the protocol's labeled rows include rows without a target (NaN)")
        if np.isnan(self.y_train).all():
            raise ValueError(f"{self.name}: no training row has a target (y_train is all NaN)")
        if self.unlabeled is not None:
            self.unlabeled = _as_indices("unlabeled", self.unlabeled, n)
            if self.labeled is None:
                raise ValueError(f"{self.name}: unlabeled indices given without labeled indices")
            if np.intersect1d(self.labeled, self.unlabeled).size:
                raise ValueError(f"{self.name}: labeled and unlabeled indices overlap")

    @property
    def no_target(self) -> np.ndarray:
        """int64 indices of the training rows without a target (NaN in ``y_train``): always unlabelled."""
        return np.flatnonzero(np.isnan(self.y_train))

    @property
    def n_features(self) -> int:
        """Number of input features ``d``."""
        return self.x_train.shape[1]

    def standardizer(self, y_rows: np.ndarray | None = None, *, inputs: bool = True,
                     targets: bool = True) -> Standardizer:
        """Fit a :class:`Standardizer` on the training split only.

        Input statistics use every training row (unlabeled inputs are available to a semi-supervised
        learner). Target statistics use ``y_rows`` when given, else the protocol's ``labeled`` rows when
        set, else every training row with a target: the targets of unlabeled rows are hidden from the learner.

        Parameters
        ----------
        y_rows : np.ndarray, optional
            Indices into the training rows whose targets may be used (typically the labeled rows).
        inputs, targets : bool
            Standardise that side (default both); ``False`` keeps it in its own units.

        Returns
        -------
        Standardizer
        """
        rows = y_rows if y_rows is not None else self.labeled
        if rows is None:
            y = self.y_train[~np.isnan(self.y_train)]
        else:
            y = self.y_train[_as_indices("y_rows", rows, self.y_train.shape[0])]
            if np.isnan(y).any():
                raise ValueError(
                    f"{self.name}: y_rows include {int(np.isnan(y).sum())} rows without a target"
                )
        return Standardizer.fit(self.x_train, y, inputs=inputs, targets=targets)

    def as_splits(self) -> DataSplits:
        """The same data as :class:`~clss.data.dataset.DataSplits` of in-memory tabular datasets (no
        augmentation pipelines: every view of a row is the row itself)."""
        names = tuple(self.feature_names)
        return DataSplits(self.name, TabularDataset(self.x_train, self.y_train, names),
                          TabularDataset(self.x_val, self.y_val, names),
                          TabularDataset(self.x_test, self.y_test, names), self.target_name, self.meta,
                          self.labeled, self.unlabeled, {}, self.encoding)
