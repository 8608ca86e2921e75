"""Regression distribution alignment (RDA, Huang et al., NeurIPS 2024): pseudo-labels of unlabelled rows
whose distribution is that of the labelled targets, with the order of the model's own predictions.

:class:`DistributionAlignment` keeps the latest weak-view prediction of every unlabelled row; every
``refine_every`` steps it recomputes the pseudo-labels with :func:`quantile_map` (the k-th smallest
prediction gets the labelled targets' quantile at ``k / (n − 1)``). Any method can use it: build one from
the run's :class:`~clss.methods.base.TrainingContext` in ``setup``, call :meth:`DistributionAlignment.update`
in each step, and put :meth:`~DistributionAlignment.state_dict` in the method's extra state (its size
depends on the run, so it is no registered buffer).
"""

from __future__ import annotations

import torch


def quantile_map(values: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank-preserving map of ``values`` ``[n]`` onto the distribution of ``targets`` ``[m]``.

    The k-th smallest value (0-based, ties in index order) becomes the linear interpolation of the sorted
    targets at fraction ``k / (n − 1)`` of their range of positions (``np.interp`` on two ``linspace(0, 1)``
    grids, as the official RDA code). ``n = 1`` gives the smallest target, ``m = 1`` the single target.
    """
    if values.dim() != 1 or targets.dim() != 1 or targets.numel() == 0:
        raise ValueError(f"quantile_map needs 1-D values and non-empty 1-D targets, got shapes "
                         f"{list(values.shape)} and {list(targets.shape)}")
    n, m = values.numel(), targets.numel()
    ordered = torch.sort(targets.to(values.dtype)).values
    fraction = torch.linspace(0.0, 1.0, n, dtype=values.dtype, device=values.device)
    position = fraction * (m - 1)
    low = position.floor().long().clamp(max=m - 1)
    high = (low + 1).clamp(max=m - 1)
    w = position - low.to(values.dtype)
    quantiles = ordered[low] * (1.0 - w) + ordered[high] * w
    out = torch.empty_like(values)
    out[torch.argsort(values, stable=True)] = quantiles
    return out


class DistributionAlignment:
    """The RDA buffer of a run: raw predictions and aligned pseudo-labels of every unlabelled row.

    Parameters
    ----------
    unlabeled_index : training-split indices of the unlabelled rows ``[n]`` (``context.unlabeled_index``).
    labeled_y : standardised labelled targets ``[m]`` (``context.labeled_y``), the distribution aligned to.
    refine_every : recompute the pseudo-labels when ``step % refine_every == 0`` (1024 in RankUp).

    Raw predictions start at 0 (the labelled mean in standardised units; the official code starts at 1,
    the top of its [0, 1] target scale), so rows not yet seen sit mid-distribution at a refresh. Both
    tensors live on ``labeled_y``'s device.
    """

    def __init__(self, unlabeled_index: torch.Tensor, labeled_y: torch.Tensor, refine_every: int) -> None:
        if refine_every < 1:
            raise ValueError(f"refine_every must be an integer >= 1, got {refine_every}")
        if labeled_y.numel() == 0:
            raise ValueError("distribution alignment needs labelled targets; the run has none")
        self.rows = torch.sort(unlabeled_index.to(labeled_y.device).long()).values
        self.labeled_y = labeled_y.detach().float()
        self.refine_every = int(refine_every)
        self.raw = torch.zeros(self.rows.numel(), device=labeled_y.device)
        self.refined = torch.zeros_like(self.raw)

    def slots(self, index: torch.Tensor) -> torch.Tensor:
        """Buffer positions of training-split rows ``index`` ``[B]`` (a clear error for a labelled row)."""
        index = index.to(self.rows.device).long()
        pos = torch.searchsorted(self.rows, index).clamp(max=max(self.rows.numel() - 1, 0))
        if self.rows.numel() == 0 or not bool((self.rows[pos] == index).all()):
            raise ValueError("distribution alignment got rows that are not unlabelled rows of this run")
        return pos

    @torch.no_grad()
    def update(self, index: torch.Tensor, pred: torch.Tensor, step: int) -> torch.Tensor:
        """Store the weak-view predictions ``pred`` ``[B]`` of rows ``index``, refresh the pseudo-labels
        when ``step % refine_every == 0``, and return the rows' current pseudo-labels ``[B]`` (``pred``'s
        dtype and device)."""
        slot = self.slots(index)
        self.raw[slot] = pred.detach().to(self.raw.dtype)
        if step % self.refine_every == 0:
            self.refined = quantile_map(self.raw, self.labeled_y)
        return self.refined[slot].to(device=pred.device, dtype=pred.dtype)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"raw": self.raw.clone(), "refined": self.refined.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["raw"].shape != self.raw.shape:
            raise ValueError(f"the checkpoint's RDA buffer has {state['raw'].numel()} rows, this run has "
                             f"{self.raw.numel()} unlabelled rows")
        self.raw.copy_(state["raw"])
        self.refined.copy_(state["refined"])
