"""The pieces a method's training step is built from, each a plain function of tensors.

A method composes them in its own ``training_step`` and owns every stateful thing they use (the loss
modules, the seeded generator), so its state-dict keys stay where they are:

- :func:`supervised_terms`: regression and the labelled contrastive term on a seeded row subsample;
- :func:`draw_rows`: the unlabelled rows of a step, drawn before any forward;
- :func:`seriation_ranks`: CLSS's pseudo-ranks, the spectral seriation of the features' cosine similarities;
- :func:`pseudo_target_losses`, :func:`pseudo_rank_terms`: L_UR and L_UC (or a contrastive loss) against
  pseudo-targets;
- :func:`stable_subset`, :func:`anchored_targets`, :func:`reachable`, :func:`anchored_contrastive_terms`:
  GCLSS's stable-subset selection, label-anchored pseudo-values, the drop of unreachable rows and the joint
  labelled + pseudo-valued contrastive term;
- :func:`perturbation_norm`, :func:`recovery_diagnostics`: GCLSS's diagnostics;
- :func:`ramp_weight`, :func:`ema_update`: ramp-ups of unlabelled terms and the EMA teacher;
  :func:`ema_copy`, :func:`eval_predict`: the EMA copy a method evaluates through;
- :func:`frozen_batchnorm`: a forward that leaves batch-norm running statistics untouched;
- :func:`pair_logits`, :func:`pair_targets`, :func:`labeled_pair_loss`, :func:`unlabeled_pair_loss`:
  RankUp's auxiliary ranking classifier over row pairs;
- :class:`DistributionAlignment`, :func:`quantile_map`: RDA's pseudo-labels aligned to the labelled targets.

Similarities, seriation and eigen-solvers run in the features' own precision, at least float32: a method
casts half-precision model outputs up before they reach these functions (:meth:`Method.forward`).
"""

from clss.methods.parts.anchored import (
    anchored_contrastive_terms,
    anchored_targets,
    kept_count,
    perturbation_norm,
    reachable,
    recovery_diagnostics,
    stable_subset,
)
from clss.methods.parts.averaged import ema_copy, eval_predict
from clss.methods.parts.batchnorm import frozen_batchnorm
from clss.methods.parts.draw import draw_rows
from clss.methods.parts.pseudo_ranks import (
    pseudo_rank_terms,
    pseudo_target_losses,
    ranks_of,
    seriation_ranks,
)
from clss.methods.parts.ranking import (
    labeled_pair_loss,
    pair_logits,
    pair_targets,
    unlabeled_pair_loss,
)
from clss.methods.parts.rda import DistributionAlignment, quantile_map
from clss.methods.parts.schedules import RAMP_SHAPES, ema_update, ramp_weight
from clss.methods.parts.supervised import supervised_terms

__all__ = [
    "RAMP_SHAPES",
    "DistributionAlignment",
    "anchored_contrastive_terms",
    "anchored_targets",
    "draw_rows",
    "ema_copy",
    "ema_update",
    "eval_predict",
    "frozen_batchnorm",
    "kept_count",
    "labeled_pair_loss",
    "pair_logits",
    "pair_targets",
    "perturbation_norm",
    "pseudo_rank_terms",
    "pseudo_target_losses",
    "quantile_map",
    "ramp_weight",
    "ranks_of",
    "reachable",
    "recovery_diagnostics",
    "seriation_ranks",
    "stable_subset",
    "supervised_terms",
    "unlabeled_pair_loss",
]
