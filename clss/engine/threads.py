"""How many torch CPU threads a run uses: ``threads: auto`` picks one thread for small models.

A small model's step is a few hundred tiny kernels; splitting each across threads costs more in
synchronisation than it saves (and on a busy machine a thread waiting for a core stalls the whole step).
``auto`` therefore uses one thread when the work per step, ``parameters x rows``, is below
:data:`AUTO_ONE_THREAD_BELOW` and otherwise keeps the process's current setting (torch's default unless the
caller changed it). The threshold is measured by ``benchmarks/threads.py`` (see ``docs/training.md``).

Only torch's intra-op pool is set, and only for the duration of a call decorated with
:func:`restores_torch_threads` (``train``, the estimator's ``fit``). The numba kernels of the seriation
step are compiled without ``parallel=True`` and run single-threaded whatever the setting; numpy/scipy's
BLAS keeps its own pool (``OMP_NUM_THREADS``/``OPENBLAS_NUM_THREADS``); the batch sampler draws indices
in the training process (no loader workers), so it starts no threads either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import torch

__all__ = ["AUTO_ONE_THREAD_BELOW", "choose_threads", "restores_torch_threads", "run_threads",
           "validate_threads", "work_per_step"]

# parameters x rows per step below which one thread is faster (benchmarks/threads.py, docs/training.md).
AUTO_ONE_THREAD_BELOW = 50_000_000

F = TypeVar("F", bound=Callable[..., Any])


def validate_threads(setting: Any, name: str = "threads") -> int | str | None:
    """Check a thread setting as the configuration does: ``"auto"``, an int >= 1 (returned as ``int``),
    or None.

    Raises
    ------
    ValueError
        For anything else, naming ``name`` and the accepted values.
    """
    from clss.config import TrainConfig
    from clss.schema import check_value, specs_of

    return check_value(name, setting, specs_of(TrainConfig)["threads"])


def work_per_step(n_params: int, rows: int) -> int:
    """The work of one training step as ``auto`` measures it: parameters x rows per step.

    Proportional to the multiply-adds of the forward and backward passes of a dense network.
    """
    return int(n_params) * int(rows)


def choose_threads(setting: int | str | None, *, n_params: int, rows: int) -> int:
    """The number of torch intra-op threads for a run.

    Parameters
    ----------
    setting : "auto", int >= 1 or None
        ``None`` keeps the current setting; an int is used as given; ``"auto"`` is 1 when
        ``work_per_step(n_params, rows) < AUTO_ONE_THREAD_BELOW``, else the current setting.
    n_params : int
        Trainable parameters of the model.
    rows : int
        Rows the model sees per step (labelled plus unlabelled).

    Returns
    -------
    int
        The thread count to pass to ``torch.set_num_threads``.
    """
    setting = validate_threads(setting)
    if isinstance(setting, int):
        return setting
    if setting == "auto" and work_per_step(n_params, rows) < AUTO_ONE_THREAD_BELOW:
        return 1
    return torch.get_num_threads()


def run_threads(setting: int | str | None, model: torch.nn.Module, *, labeled_rows: int,
                unlabeled_rows: int = 0) -> int:
    """:func:`choose_threads` for a training run: the model's trainable parameters and its rows per step.

    Parameters
    ----------
    setting : "auto", int >= 1 or None
        The configuration's ``threads``.
    model : torch.nn.Module
        The network (or the method holding it).
    labeled_rows, unlabeled_rows : int
        Rows per step from each part (``unlabeled_rows`` 0 for a supervised method).
    """
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return choose_threads(setting, n_params=n_params, rows=labeled_rows + unlabeled_rows)


def restores_torch_threads(func: F) -> F:
    """Decorate ``func`` so that torch's intra-op thread count is restored when it returns or raises.

    ``torch.set_num_threads`` is process-wide; a library call that changes it must put it back so that
    the caller's process is unchanged. (Inter-op threads are never touched: torch lets a process set them
    only once.)
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        previous = torch.get_num_threads()
        try:
            return func(*args, **kwargs)
        finally:
            if torch.get_num_threads() != previous:
                torch.set_num_threads(previous)

    return wrapper  # type: ignore[return-value]
