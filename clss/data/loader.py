"""From a dataset's training split to the ``(labelled, unlabelled)`` batches of each training step.

:class:`SemiSupervisedLoader` turns the index pairs of a :class:`~clss.data.SemiSupervisedSampler` into
:class:`~clss.methods.Batch` pairs on the training device, with the views a method asks for
(:attr:`~clss.methods.Method.labeled_views`, :attr:`~clss.methods.Method.unlabeled_views`) and standardised
targets. Two paths, one contract:

- **Tabular fast path** (every input a row of an in-memory table, no augmentation pipeline requested): the
  whole standardised table lives on the device as one tensor and a batch is a gather by index; every view
  is that same tensor.
- **General path** (file-backed data, or any requested pipeline): a :class:`torch.utils.data.DataLoader`
  (worker processes, pinned memory, persistent workers, prefetching) whose batch sampler yields the
  sampler's index pairs. Each row is decoded once and each requested view applies its pipeline
  (:attr:`DataSplits.pipelines <clss.data.DataSplits>` of :func:`~clss.data.view_pipeline`; the plain input
  when the dataset has none). The random draws of a view come from a generator seeded by (run seed, epoch,
  position in the epoch, labelled or unlabelled, slot in the batch, row, view name), so a batch is the same
  for any number of workers, and a resumed run draws exactly what an uninterrupted one would.

Prefetching runs the sampler ahead of training: :meth:`SemiSupervisedLoader.sampler_state` is the sampler's
state after the last batch the training loop *received*, which is what a checkpoint must hold.

:func:`predict_dataset` evaluates a function (e.g. :meth:`Method.predict <clss.methods.Method.predict>`) on a
whole dataset in batches through a loader, without augmentation.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from clss.data.dataset import Pipeline, RegressionDataset, TabularDataset, view_pipeline
from clss.data.samplers import SemiSupervisedSampler

__all__ = ["SemiSupervisedLoader", "predict_dataset", "resolve_pin_memory", "resolve_workers",
           "uses_fast_path"]

#: Rows per forward pass when predicting an in-memory table.
TABULAR_BATCH = 4096
#: Most worker processes ``workers="auto"`` starts for file-backed data.
MAX_AUTO_WORKERS = 8


def resolve_workers(workers: int | str, *, in_memory: bool) -> int:
    """Worker processes for loading: ``"auto"`` is 0 for in-memory data (a gather is faster than any
    worker) and ``min(8, cpu_count - 1)`` (at least 1) for data decoded from files; an int >= 0 is used as
    given.

    Raises
    ------
    ValueError
        Anything but ``"auto"`` or an integer >= 0.
    """
    if isinstance(workers, str) and workers == "auto":
        return 0 if in_memory else max(1, min(MAX_AUTO_WORKERS, (os.cpu_count() or 1) - 1))
    if isinstance(workers, bool) or not isinstance(workers, int | np.integer) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0 or 'auto' (CLI: --workers N or --workers auto), "
                         f"got {workers!r}")
    return int(workers)


def resolve_pin_memory(pin_memory: bool | str, device: torch.device) -> bool:
    """Pinned host memory for batches: ``"auto"`` pins when training on CUDA.

    Raises
    ------
    ValueError
        Anything but ``True``, ``False`` or ``"auto"``.
    """
    if isinstance(pin_memory, str) and pin_memory == "auto":
        return device.type == "cuda"
    if not isinstance(pin_memory, bool):
        raise ValueError(f"pin_memory must be true, false or 'auto' (--set pin_memory=auto), got "
                         f"{pin_memory!r}")
    return pin_memory


def uses_fast_path(dataset: RegressionDataset, pipelines: Mapping[str, Pipeline],
                   views: Sequence[str]) -> bool:
    """Whether batches of ``views`` of ``dataset`` can be gathered from one in-memory tensor: a
    :class:`TabularDataset` of which no view asks for a pipeline the dataset defines."""
    return isinstance(dataset, TabularDataset) and not any(view_pipeline(v) in pipelines for v in views)


def _draw_seed(seed: int, epoch: int, position: int, role: int, view: str, slot: int, row: int) -> int:
    """The torch seed of one augmented input: a hash of everything that identifies the draw."""
    words = np.random.SeedSequence([seed, epoch, position, role, zlib.crc32(view.encode()), slot, row])
    return int(words.generate_state(1, np.uint64)[0] >> 1)  # torch seeds are < 2**63


class _ViewItems(torch.utils.data.Dataset):
    """The general path's dataset: one key (epoch, position, labelled rows, unlabelled rows) gives every
    requested view of both halves of a step, stacked (runs in the worker processes)."""

    def __init__(self, dataset: RegressionDataset, pipelines: Mapping[str, Pipeline],
                 views: tuple[Sequence[str], Sequence[str]], seed: int) -> None:
        self.dataset, self.pipelines, self.views, self.seed = dataset, dict(pipelines), views, seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: Any) -> Any:
        return self.__getitems__(key)

    def __getitems__(self, key: tuple[int, int, torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        epoch, position, lab, unl = key
        out: dict[str, Any] = {"epoch": epoch, "position": position, "labeled": lab, "unlabeled": unl}
        for role, (name, rows) in enumerate((("labeled", lab), ("unlabeled", unl))):
            views = self.views[role]
            out[f"{name}_views"] = self._views(rows, views, epoch, position, role) if len(rows) else {}
        return out

    def _views(self, rows: torch.Tensor, views: Sequence[str], epoch: int, position: int,
               role: int) -> dict[str, torch.Tensor]:
        index = rows.tolist()
        plain = [self.dataset[r] for r in index]  # each row decoded once, for every view
        shape = torch.Size(self.dataset.input.shape)
        for row, x in zip(index, plain, strict=True):
            if x.shape != shape:
                raise ValueError(f"{self.dataset.source(row)} gave an input of shape {tuple(x.shape)}; the "
                                 f"dataset declares {tuple(shape)} (preprocessing must resize every input)")
        stacked: dict[str, torch.Tensor] = {}
        shared: torch.Tensor | None = None  # the views without a pipeline share one tensor
        for view in views:
            pipeline = self.pipelines.get(view_pipeline(view))
            if pipeline is None:
                shared = torch.stack(plain) if shared is None else shared
                stacked[view] = shared
                continue
            drawn = []
            with torch.random.fork_rng(devices=[]):  # the caller's global RNG is left untouched
                for slot, (row, x) in enumerate(zip(index, plain, strict=True)):
                    # The CPU generator alone: torch.manual_seed would also queue a seed for every lazy
                    # accelerator backend, with a stack trace each time (most of the cost of a small step).
                    torch.default_generator.manual_seed(_draw_seed(self.seed, epoch, position, role, view,
                                                                   slot, row))
                    drawn.append(pipeline(x))
                    if drawn[-1].shape != x.shape:
                        raise ValueError(f"augmentation pipeline {view_pipeline(view)!r} turned the input of "
                                         f"{self.dataset.source(row)} of shape {tuple(x.shape)} into shape "
                                         f"{tuple(drawn[-1].shape)}; a pipeline must keep the input's shape")
            stacked[view] = torch.stack(drawn)
        return stacked


def _one_line_errors(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    """Iterate ``loader``; an error raised in a worker process keeps its type and its own message (torch
    prepends the worker's traceback, many lines that name no input)."""
    try:
        yield from loader
    except Exception as exc:
        text = str(exc)
        if "DataLoader worker process" not in text:
            raise
        last = text.strip().splitlines()[-1]
        name = type(exc).__name__
        raise type(exc)(last[len(name) + 2:] if last.startswith(f"{name}: ") else last) from None


def _keep(batch: Any) -> Any:
    """No collation: :class:`_ViewItems` returns the step's tensors already stacked."""
    return batch


class _TaggedPairs:
    """Batch sampler of the general path: one epoch of the sampler's pairs, each tagged with the epoch and
    the position after it (what :meth:`SemiSupervisedSampler.state_at` takes)."""

    def __init__(self, sampler: SemiSupervisedSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
        for lab, unl in self.sampler:
            yield self.sampler.epoch, self.sampler.position, lab, unl


class SemiSupervisedLoader:
    """Endless ``(labelled Batch, unlabelled Batch or None)`` pairs for the training loop, on ``device``.

    Parameters
    ----------
    dataset : RegressionDataset
        The training split, as the network sees it (tabular rows already standardised).
    sampler : SemiSupervisedSampler
        Yields the labelled and unlabelled row indices of each step; its state is restored before the
        first iteration when resuming.
    labeled_views, unlabeled_views : sequence of str
        View names to provide (``"weak"``, ``"strong"``, ``"weak@2"`` ...).
    targets : torch.Tensor
        Standardised targets of every training row ``[n]`` (NaN for rows without one), on any device.
    hidden_truth : bool
        Give unlabelled batches their true targets (diagnostics only); else their ``y`` is ``None``.
    pipelines : mapping of str to callable, optional
        The dataset's augmentation pipelines by name.
    seed : int
        Run seed of the augmentation draws.
    device : torch.device
    workers : int or "auto", default 0
        DataLoader worker processes (general path only; 0 loads in the training process); see
        :func:`resolve_workers`.
    pin_memory : bool, default False
        Pin host batches for faster copies to a CUDA device (general path only).
    prefetch : int, default 2
        Batches each worker prepares ahead.

    Raises
    ------
    ValueError
        A bad view name, ``workers < 0`` or ``prefetch < 1``.
    """

    def __init__(self, dataset: RegressionDataset, sampler: SemiSupervisedSampler, *,
                 labeled_views: Sequence[str], unlabeled_views: Sequence[str], targets: torch.Tensor,
                 hidden_truth: bool, pipelines: Mapping[str, Pipeline] | None = None, seed: int,
                 device: torch.device, workers: int = 0, pin_memory: bool = False, prefetch: int = 2) -> None:
        pipelines = dict(pipelines or {})
        self.labeled_views, self.unlabeled_views = tuple(labeled_views), tuple(unlabeled_views)
        for view in (*self.labeled_views, *self.unlabeled_views):
            view_pipeline(view)  # a bad name is refused here, not in a worker process
        self.fast = uses_fast_path(dataset, pipelines, (*self.labeled_views, *self.unlabeled_views))
        workers = resolve_workers(workers, in_memory=self.fast)
        if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be an integer >= 1, got {prefetch!r}")
        self.sampler, self.device, self.hidden_truth = sampler, device, hidden_truth
        self._consumed: tuple[int, int] | None = None
        if self.fast:
            assert isinstance(dataset, TabularDataset)
            self.x = torch.as_tensor(dataset.x, device=device)
            self.y = targets.to(device=device, dtype=self.x.dtype)
            self.loader = None
        else:
            self.y = targets.to(device=device, dtype=torch.get_default_dtype())
            items = _ViewItems(dataset, pipelines, (self.labeled_views, self.unlabeled_views), seed)
            self.loader = torch.utils.data.DataLoader(
                items, batch_sampler=_TaggedPairs(sampler), collate_fn=_keep, num_workers=workers,
                pin_memory=pin_memory, persistent_workers=workers > 0,
                prefetch_factor=prefetch if workers > 0 else None,
                # the loader's own seed must not come from (and advance) the global RNG, which drives dropout
                generator=torch.Generator().manual_seed(seed))

    def sampler_state(self) -> dict[str, Any]:
        """The sampler's state after the last batch this loader handed out (for checkpoints)."""
        if self._consumed is None:
            return self.sampler.state_dict()
        return self.sampler.state_at(*self._consumed)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        from clss.methods.base import Batch

        while True:  # the sampler runs one epoch per iteration
            if self.loader is None:
                for l_idx, u_idx in self.sampler:
                    l_idx, u_idx = l_idx.to(self.device), u_idx.to(self.device)
                    x_l = self.x[l_idx]
                    lab = Batch(dict.fromkeys(self.labeled_views, x_l), l_idx, self.y[l_idx])
                    if u_idx.numel():
                        x_u = self.x[u_idx]
                        ulb = Batch(dict.fromkeys(self.unlabeled_views, x_u), u_idx,
                                    self.y[u_idx] if self.hidden_truth else None)
                    else:
                        ulb = None
                    yield lab, ulb
                continue
            if self._consumed is None:  # nothing handed out yet: the state is the sampler's current one
                self._consumed = (self.sampler.epoch, self.sampler.position)
            for item in _one_line_errors(self.loader):
                lab_idx = item["labeled"].to(self.device, non_blocking=True)
                unl_idx = item["unlabeled"].to(self.device, non_blocking=True)
                lab = Batch(self._to_device(item["labeled_views"]), lab_idx, self.y[lab_idx])
                ulb = (Batch(self._to_device(item["unlabeled_views"]), unl_idx,
                             self.y[unl_idx] if self.hidden_truth else None) if unl_idx.numel() else None)
                self._consumed = (item["epoch"], item["position"])
                yield lab, ulb

    def _to_device(self, views: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moved: dict[int, torch.Tensor] = {}  # views sharing one tensor stay shared
        return {k: moved.setdefault(id(v), v.to(self.device, non_blocking=True)) for k, v in views.items()}


def predict_dataset(fn: Callable[[torch.Tensor], torch.Tensor], dataset: RegressionDataset, *,
                    device: torch.device, rows: np.ndarray | None = None, batch_size: int = 256,
                    workers: int = 0, pin_memory: bool = False) -> torch.Tensor:
    """``fn`` applied to the plain (unaugmented) inputs of ``dataset`` in batches, concatenated.

    Parameters
    ----------
    fn : callable
        Inputs ``[B, *input.shape]`` on ``device`` to outputs ``[B, ...]`` (e.g. ``method.predict``).
    dataset : RegressionDataset
        As the network sees it (tabular rows already standardised).
    device : torch.device
    rows : ndarray of int, optional
        Rows to evaluate, in this order (default: all).
    batch_size : int, default 256
        Rows per call of ``fn`` (in-memory tables: :data:`TABULAR_BATCH`, their rows are small).
    workers, pin_memory : int and bool
        DataLoader workers and pinned memory (file-backed data; in-memory tables are sliced directly).

    Returns
    -------
    torch.Tensor
        ``[len(rows), ...]`` on ``device``.
    """
    index = np.arange(len(dataset)) if rows is None else np.asarray(rows, dtype=np.int64)
    if index.ndim != 1 or index.size == 0 or index.min() < 0 or index.max() >= len(dataset):
        raise ValueError(f"rows must be a non-empty 1-D array of row indices in [0, {len(dataset)}), got "
                         f"shape {index.shape}" + (f", values in [{index.min()}, {index.max()}]"
                                                   if index.size else ""))
    if isinstance(dataset, TabularDataset):  # a slice of the table, no per-row work
        x = torch.as_tensor(dataset.x[index] if rows is not None else dataset.x, device=device)
        return torch.cat([fn(x[i:i + TABULAR_BATCH]) for i in range(0, x.shape[0], TABULAR_BATCH)])
    subset = torch.utils.data.Subset(dataset, index.tolist())
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, num_workers=workers,
                                         pin_memory=pin_memory, generator=torch.Generator())
    return torch.cat([fn(x.to(device, non_blocking=True)) for x in _one_line_errors(loader)])
