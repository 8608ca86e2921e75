"""Interleaved labeled / unlabeled index batches with the paper's ratios (as the official CLSS code)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

__all__ = ["SemiSupervisedSampler"]


def _index_tensor(name: str, idx: int | np.ndarray | torch.Tensor | list[int]) -> torch.Tensor:
    if isinstance(idx, (int, np.integer)) and not isinstance(idx, bool):
        if idx < 0:
            raise ValueError(f"{name}: number of rows must be >= 0, got {idx}")
        return torch.arange(int(idx), dtype=torch.long)
    t = torch.as_tensor(np.asarray(idx) if not isinstance(idx, torch.Tensor) else idx)
    if t.ndim != 1 or (t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool)):
        raise ValueError(
            f"{name} must be a row count or a 1-D array of integer indices, got {t.dtype} {tuple(t.shape)}"
        )
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} contains negative indices")
    return t.to(torch.long).clone()


def _n_batches(n: int, batch: int, drop_last: bool) -> int:
    return n // batch if drop_last else math.ceil(n / batch)


def _batch_size(name: str, flag: str, value: Any, n_rows: int, what: str) -> int:
    """A positive batch size or ``"all"``, capped at ``n_rows`` (with a warning when it had to be capped)."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return max(n_rows, 1)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or 'all' (CLI: {flag} N or {flag} all), "
                         f"got {value!r}")
    if 0 < n_rows < value:
        warnings.warn(f"{name} {value} is larger than the {n_rows} {what} rows: every {what} batch uses all "
                      f"{n_rows} of them", UserWarning, stacklevel=3)
        return n_rows
    return int(value)


class SemiSupervisedSampler:
    """Yield ``(labeled_idx, unlabeled_idx)`` LongTensor pairs, one per training iteration.

    Mini-batch mode follows the official image/volume code: every epoch the labeled indices,
    repeated ``ssl_mult`` times, are shuffled and cut into batches of ``batch_size``; the unlabeled indices
    are shuffled and cut into batches of ``unlabeled_batch_size``; an epoch has
    ``min(#labeled batches, #unlabeled batches)`` iterations. Full-batch mode (the synthetic protocol)
    yields all labeled and all unlabeled indices once per epoch. With no unlabeled indices (supervised
    use) the unlabeled half of each pair is empty and the epoch length is set by the labeled batches.

    Iterating the sampler runs (the rest of) one epoch; iterate again for the next. :meth:`state_dict` /
    :meth:`load_state_dict` resume mid-epoch with exactly the remaining batches. Randomness comes from a
    private ``torch.Generator``, never from global RNG state.

    Parameters
    ----------
    labeled : int, array-like or LongTensor
        Number of labeled rows (indices ``0..n-1``) or the labeled row indices.
    unlabeled : array-like or LongTensor
        Unlabeled row indices (may be empty).
    batch_size : int or "all", optional
        Labeled batch size (>= 1); required unless ``full_batch``. ``"all"``, or any size larger than the
        labeled set, makes each labeled batch the whole labeled set (a ``UserWarning`` says so when a
        number had to be capped), so a handful of labels still trains.
    unlabeled_batch_size : int or "all", optional
        Unlabeled batch size; defaults to ``batch_size``; capped at the unlabeled set likewise.
    ssl_mult : int, default 1
        Times the labeled set is repeated per epoch (``ssl_mult`` of the official training scripts).
    seed : int
        Seed of the private generator.
    drop_last : bool, default True
        Drop incomplete final batches (as the official loaders do). Batch sizes are capped at the set
        sizes first, so every epoch has at least one iteration.
    full_batch : bool, default False
        Yield every row every iteration, unshuffled; batch sizes and ``ssl_mult`` are ignored.

    Raises
    ------
    ValueError
        Empty labeled set, non-positive batch sizes or a bad ``ssl_mult``.
    """

    def __init__(
        self,
        labeled: int | np.ndarray | torch.Tensor | list[int],
        unlabeled: np.ndarray | torch.Tensor | list[int],
        *,
        batch_size: int | Literal["all"] | None = None,
        unlabeled_batch_size: int | Literal["all"] | None = None,
        ssl_mult: int = 1,
        seed: int,
        drop_last: bool = True,
        full_batch: bool = False,
    ) -> None:
        self.labeled = _index_tensor("labeled", labeled)
        self.unlabeled = _index_tensor("unlabeled", unlabeled)
        if self.labeled.numel() == 0:
            raise ValueError("the labeled set is empty")
        if isinstance(ssl_mult, bool) or not isinstance(ssl_mult, (int, np.integer)) or ssl_mult < 1:
            raise ValueError(f"ssl_mult must be an integer >= 1 (CLI: --set ssl_mult=N), got {ssl_mult!r}")
        self.full_batch = full_batch
        self.ssl_mult = int(ssl_mult)
        self.drop_last = drop_last
        self.seed = int(seed)
        if not full_batch:
            if batch_size is None:
                raise ValueError("batch_size is required unless full_batch=True (CLI: --batch-size N or "
                                 "--batch-size all)")
            unlabeled_batch_size = batch_size if unlabeled_batch_size is None else unlabeled_batch_size
            batch_size = _batch_size("batch_size", "--batch-size", batch_size, self.labeled.numel(),
                                     "labeled")
            unlabeled_batch_size = _batch_size("unlabeled_batch_size", "--unlabeled-batch-size",
                                               unlabeled_batch_size, self.unlabeled.numel(), "unlabeled")
        self.batch_size = batch_size
        self.unlabeled_batch_size = unlabeled_batch_size
        self._generator = torch.Generator().manual_seed(self.seed)
        self.epoch = 0
        self._position = 0
        self._epoch_rng: torch.Tensor | None = None  # generator state before this epoch's shuffles
        self._lab_order: torch.Tensor | None = None
        self._unl_order: torch.Tensor | None = None

    @property
    def iterations_per_epoch(self) -> int:
        """Iterations in one epoch (1 in full-batch mode)."""
        if self.full_batch:
            return 1
        n_lab = _n_batches(self.labeled.numel() * self.ssl_mult, self.batch_size, self.drop_last)
        if self.unlabeled.numel() == 0:
            return n_lab
        return min(n_lab, _n_batches(self.unlabeled.numel(), self.unlabeled_batch_size, self.drop_last))

    def __len__(self) -> int:
        return self.iterations_per_epoch

    def _draw_epoch(self) -> None:
        self._epoch_rng = self._generator.get_state()
        if self.full_batch:
            self._lab_order, self._unl_order = self.labeled, self.unlabeled
            return
        pool = self.labeled.repeat(self.ssl_mult)
        self._lab_order = pool[torch.randperm(pool.numel(), generator=self._generator)]
        self._unl_order = self.unlabeled[torch.randperm(self.unlabeled.numel(), generator=self._generator)]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n_iter = self.iterations_per_epoch
        if self._lab_order is None or self._position >= n_iter:
            if self._lab_order is not None:
                self.epoch += 1
            self._position = 0
            self._draw_epoch()
        lab, unl = self._lab_order, self._unl_order
        while self._position < n_iter:
            i = self._position
            # Advance before yielding so that a state_dict taken after receiving batch i resumes at i + 1.
            self._position += 1
            if self.full_batch:
                yield lab, unl
            else:
                ub = self.unlabeled_batch_size
                yield lab[i * self.batch_size : (i + 1) * self.batch_size], unl[i * ub : (i + 1) * ub]

    @property
    def position(self) -> int:
        """Batches of the current epoch handed out so far (the next one is at this position)."""
        return self._position

    def state_at(self, epoch: int, position: int) -> dict[str, Any]:
        """The :meth:`state_dict` as it was right after batch ``position - 1`` of ``epoch`` was handed out.

        A loader that prefetches draws batches ahead of the training loop; checkpointing this state (the
        last batch *consumed*) instead of the live one keeps a resume exact. ``epoch`` must be the current
        epoch, or the previous one at its end (the next epoch drawn but none of it consumed).

        Raises
        ------
        ValueError
            Any other ``(epoch, position)``.
        """
        n_iter = self.iterations_per_epoch
        started = self._lab_order is not None
        if started and epoch == self.epoch and 0 <= position <= self._position:
            return {**self.state_dict(), "position": int(position)}
        if started and epoch == self.epoch - 1 and position == n_iter:  # as if the next epoch were not drawn
            return {**self.state_dict(), "epoch_started": False, "position": 0}
        raise ValueError(f"no state at epoch {epoch}, position {position}: the sampler is at epoch "
                         f"{self.epoch}, position {self._position}")

    def _config(self) -> dict[str, Any]:
        return {
            "n_labeled": self.labeled.numel(),
            "n_unlabeled": self.unlabeled.numel(),
            "batch_size": self.batch_size,
            "unlabeled_batch_size": self.unlabeled_batch_size,
            "ssl_mult": self.ssl_mult,
            "drop_last": self.drop_last,
            "full_batch": self.full_batch,
        }

    def state_dict(self) -> dict[str, Any]:
        """Position and RNG state: plain ints/bools and a uint8 tensor (safe for ``weights_only`` loading)."""
        started = self._lab_order is not None
        return {
            **self._config(),
            "seed": self.seed,
            "epoch": self.epoch,
            "position": self._position,
            "epoch_started": started,
            "rng_state": (self._epoch_rng if started else self._generator.get_state()).clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next iteration continues exactly where it stopped.

        Raises
        ------
        ValueError
            If the state came from a sampler with a different configuration.
        """
        config = self._config()
        mismatched = {k: (state.get(k), v) for k, v in config.items() if state.get(k) != v}
        if mismatched:
            raise ValueError(f"sampler state does not match this sampler (saved, current): {mismatched}")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self._generator.set_state(state["rng_state"].clone())
        if state["epoch_started"]:
            self._draw_epoch()
        else:
            self._epoch_rng = self._lab_order = self._unl_order = None
        self._position = int(state["position"])
