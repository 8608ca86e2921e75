"""The gradient of a step split into its labelled and unlabelled parts: the measurements behind
``unlabeled_weight="auto"`` and the gradient probe of the training log.

A method's loss terms are keyed by name; every term computed from unlabelled rows has a key starting
with ``"unlabeled_"`` (:func:`is_unlabeled_term`), the others are supervised. With the two parts' gradients
``g_s`` and ``g_u`` over the optimiser's parameters, the automatic weight keeps the unlabelled gradient at a
fixed fraction of the supervised one: the applied gradient is ``g_s + ramp · ratio · (ḡ_s / ḡ_u) · g_u``,
where ``ḡ`` are exponential moving averages of the norms ``‖g_s‖`` and ``‖g_u‖`` (the unlabelled terms
computed at unit weight). Averaging the norms, not taking each step's ratio, keeps one batch with a tiny
unlabelled gradient from receiving a huge weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

#: ``unlabeled_weight`` value that turns the automatic balance on.
AUTO = "auto"
#: Default of ``auto_ratio``, the unlabelled gradient's norm as a fraction of the supervised one's: about
#: what the Π-model's published weight gives where it helped (docs/unlabeled_weight.md); larger ratios
#: made CLSS and GCLSS worse in every measurement.
AUTO_RATIO = 0.1
#: Decay of the moving averages of the two gradient norms: a window of about 50 steps.
NORM_DECAY = 0.98


def is_unlabeled_term(name: str) -> bool:
    """Whether the loss term ``name`` is computed from unlabelled rows (its key starts with
    ``"unlabeled_"``, the convention every method follows)."""
    return name.startswith("unlabeled_")


Grads = list[torch.Tensor | None]


def term_gradients(terms: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> Grads:
    """The gradient of ``sum(terms)`` with respect to each of ``params``, ``None`` where a parameter is not
    reached (every one for empty or constant ``terms``); the graph is kept for further calls."""
    live = [t for t in terms if t.requires_grad]
    if not live:
        return [None] * len(params)
    total = live[0] if len(live) == 1 else torch.stack(live).sum()
    return list(torch.autograd.grad(total, list(params), retain_graph=True, allow_unused=True))


def global_norm(grads: Sequence[torch.Tensor | None]) -> float:
    """The L2 norm of all of ``grads`` taken together (``None`` entries count as zero)."""
    norms = [torch.linalg.vector_norm(g) for g in grads if g is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms))) if norms else 0.0


def combine(g_s: Grads, g_u: Grads, weight: float) -> Grads:
    """``g_s + weight · g_u`` per parameter, ``None`` where neither reaches it (so that an optimiser skips
    the parameter exactly as after an ordinary backward)."""
    out: Grads = []
    for a, b in zip(g_s, g_u, strict=True):
        if b is None or weight == 0:
            out.append(a)
        else:
            out.append(weight * b if a is None else a + weight * b)
    return out


def gradient_probe(parts: Mapping[str, torch.Tensor], params: Sequence[torch.Tensor], g_s: Grads, g_u: Grads,
                   weight: float = 1.0, reduce: Callable[[Grads], Grads] | None = None) -> dict[str, float]:
    """What the probe logs: ``grad_<term>``, the norm of each term's own gradient (as the term is logged),
    ``grad_ratio`` ``= weight·‖g_u‖ / ‖g_s‖``, the unlabelled gradient applied relative to the supervised
    one, and ``grad_cosine``, the cosine between ``g_s`` and ``g_u`` (0 when either is zero). ``reduce``
    (under torchrun: the mean over the processes) is applied to each term's gradient before its norm."""
    reduce = reduce or (lambda grads: grads)
    out = {f"grad_{k}": global_norm(reduce(term_gradients([v], params))) for k, v in parts.items()}
    n_s, n_u = global_norm(g_s), global_norm(g_u)
    dot = sum(float((a * b).sum()) for a, b in zip(g_s, g_u, strict=True) if a is not None and b is not None)
    out["grad_ratio"] = weight * n_u / n_s if n_s > 0 else math.inf if weight * n_u > 0 else 0.0
    out["grad_cosine"] = dot / (n_s * n_u) if n_s > 0 and n_u > 0 else 0.0
    return out


class GradientBalance:
    """The automatic unlabelled weight: ``ratio · ḡ_s / ḡ_u``, from moving averages of the supervised and
    the unit-weight unlabelled gradient norms (:data:`NORM_DECAY`, started at the first measurement).

    Parameters
    ----------
    ratio : the unlabelled gradient's norm as a fraction of the supervised gradient's, once ramped up.
    """

    def __init__(self, ratio: float) -> None:
        if not (ratio > 0 and math.isfinite(ratio)):
            raise ValueError(f"the automatic weight's ratio must be a positive number, got {ratio!r}")
        self.ratio = float(ratio)
        self.supervised = 0.0
        self.unlabeled = 0.0
        self.count = 0

    def update(self, supervised_norm: float, unlabeled_norm: float) -> float:
        """Fold one step's norms into the averages; return the weight for this step (0 while the
        unlabelled gradient has been zero)."""
        if math.isfinite(supervised_norm) and math.isfinite(unlabeled_norm) and unlabeled_norm > 0:
            d = NORM_DECAY if self.count else 0.0
            self.supervised = d * self.supervised + (1 - d) * supervised_norm
            self.unlabeled = d * self.unlabeled + (1 - d) * unlabeled_norm
            self.count += 1
        return self.ratio * self.supervised / self.unlabeled if self.unlabeled > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"supervised": self.supervised, "unlabeled": self.unlabeled, "count": self.count}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.supervised, self.unlabeled = float(state["supervised"]), float(state["unlabeled"])
        self.count = int(state["count"])
