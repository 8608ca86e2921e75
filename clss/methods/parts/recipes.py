"""What the seed papers' recipes share: their semi-supervised parameters, step counts given as counts or
fractions, the model's linear head, equal-width bins of continuous targets (SupCon's classes, ConOrd's
reference points) and seriation pseudo-targets of unlabelled rows on the labelled targets' scale."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from clss.methods.base import Batch, MethodParams
from clss.methods.parts.anchored import anchored_targets, reachable
from clss.methods.parts.pseudo_ranks import seriation_ranks
from clss.methods.parts.rda import quantile_map
from clss.schema import param

PSEUDO_TARGETS = ("anchored", "ranks")
STEPS_SPEC = "a count >= 1 or a fraction in (0, 1) of the run's steps"


def is_step_spec(value: float) -> bool:
    """Whether ``value`` is a step count (a whole number) or a fraction in (0, 1) of the run."""
    return value < 1 or float(value).is_integer()


def steps_of(spec: float, total: int) -> int:
    """The steps a count or a fraction of a ``total``-step run stands for (fractions rounded)."""
    return int(spec) if spec >= 1 else round(spec * total)


def joint_inputs(labeled: Batch, unlabeled: Batch | None, views: Sequence[str], weight: float
                 ) -> tuple[torch.Tensor, bool]:
    """The inputs of a recipe's one forward: each of ``views`` of the labelled rows, then, when the
    unlabelled term is on (``weight > 0`` and at least 2 unlabelled rows, the fewest a seriation orders),
    the same views of the unlabelled rows. Returns the stacked inputs and whether the unlabelled rows are
    in them (one forward keeps batch-norm statistics of the whole batch)."""
    with_u = weight > 0 and unlabeled is not None and len(unlabeled) >= 2
    inputs = [labeled.view(v) for v in views]
    if with_u:
        assert unlabeled is not None
        inputs += [unlabeled.view(v) for v in views]
    return (inputs[0] if len(inputs) == 1 else torch.cat(inputs)), with_u


def linear_head(model: nn.Module, method: str) -> nn.Linear:
    """The model's linear regression head ``head`` (every built-in model has one), or a clear error."""
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Linear) or head.out_features != 1:
        raise ValueError(f"{method} needs the model's linear regression head (an nn.Linear(d, 1) named "
                         f"'head'): it reads the feature width there or fits it; {type(model).__name__} "
                         "has none")
    return head


@dataclass
class PseudoTargetParams(MethodParams):
    """The recipes' semi-supervised form: ``unlabeled_weight`` (0: the paper's supervised recipe; the
    unlabelled rows are not forwarded), ``pseudo_targets`` (``"anchored"``: label-anchored pseudo-values
    over the labelled and unlabelled rows; ``"ranks"``: spectral pseudo-ranks of the unlabelled rows mapped
    onto the labelled targets' distribution), ``pseudo_weight`` (anchor weight of pseudo-targeted rows in a
    joint loss), ``diagnostics_every`` (log ``pseudo_target_tau``, the |Kendall τ| of the pseudo-targets
    against hidden truth where a benchmark supplies it), ``seed`` (the method's own draws)."""

    unlabeled_weight: float = param(0.0, ge=0)
    pseudo_targets: str = param("anchored", "str", choices=PSEUDO_TARGETS)
    pseudo_weight: float = param(1.0, ge=0)
    diagnostics_every: int = param(10, "int", ge=0)
    seed: int = param(0, "int", ge=0)


def equal_width_edges(labeled_y: torch.Tensor, bins: int, method: str) -> torch.Tensor:
    """The ``bins - 1`` inner edges (float64) of ``bins`` equal-width classes over the range of the
    labelled targets ``[n]``; :func:`bin_index` puts values beyond the range in the end classes."""
    y = labeled_y.detach().double()
    if y.numel() == 0 or not bool(torch.isfinite(y).all()):
        raise ValueError(f"{method} bins the labelled targets, which are empty or not finite")
    lo, hi = float(y.min()), float(y.max())
    if hi <= lo:
        raise ValueError(f"{method} bins the labelled targets, which are all equal ({lo:g})")
    return torch.linspace(lo, hi, bins + 1, dtype=torch.float64, device=y.device)[1:-1]


def bin_index(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """The class ``[N]`` (0 .. len(edges)) of each value: the number of inner edges strictly below it."""
    return torch.bucketize(values.detach().double(), edges.to(values.device))


def seriation_pseudo_targets(kind: str, mean_l: torch.Tensor, mean_u: torch.Tensor, y: torch.Tensor,
                             labeled_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pseudo-targets of unlabelled rows on the labelled targets' scale and the rows they belong to.

    ``mean_l`` ``[m, d]`` / ``mean_u`` ``[k, d]``: unit (or view-averaged unit) embeddings of the batch's
    labelled and unlabelled rows; ``y`` ``[m]``: the batch's labelled targets; ``labeled_y``: every labelled
    target of the run. ``kind="anchored"``: the harmonic solution anchored on the labelled rows (GCLSS),
    rows no anchor reaches dropped. ``kind="ranks"``: the spectral seriation of the unlabelled rows alone
    (CLSS) mapped onto ``labeled_y``'s distribution (its direction is arbitrary). No gradient flows.
    """
    if kind == "anchored":
        values, ranks = anchored_targets(mean_u, mean_l, y, negative="clip")
        rows, _, values, _ = reachable(torch.arange(mean_u.shape[0], device=y.device), values, ranks)
        return values.to(y.dtype), rows
    if kind == "ranks":
        values = quantile_map(seriation_ranks(mean_u), labeled_y.to(mean_u.device))
        return values.to(y.dtype), torch.arange(mean_u.shape[0], device=y.device)
    raise ValueError(f"pseudo_targets must be one of {PSEUDO_TARGETS}, got {kind!r}")


def pseudo_target_term(loss: Callable[..., torch.Tensor], kind: str, feat_l: torch.Tensor,
                       feat_u: torch.Tensor, t_l: torch.Tensor, t_u: torch.Tensor,
                       pseudo_weight: float) -> torch.Tensor:
    """A recipe's loss on its pseudo-targeted unlabelled rows ``feat_u`` (targets ``t_u``): with
    ``kind="anchored"`` over them and the labelled rows ``feat_l`` (targets ``t_l``) together, labelled
    anchors weighted 1 and pseudo-targeted ones ``pseudo_weight`` (the pseudo-values share the labels'
    scale); with ``"ranks"`` over the unlabelled rows alone. ``loss(features, targets, weights=...)``."""
    if kind == "ranks":
        return loss(feat_u, t_u)
    weights = torch.cat([torch.ones(feat_l.shape[0], dtype=feat_l.dtype, device=feat_l.device),
                         torch.full((feat_u.shape[0],), pseudo_weight, dtype=feat_l.dtype,
                                    device=feat_l.device)])
    return loss(torch.cat([feat_l, feat_u]), torch.cat([t_l, t_u]), weights=weights)

