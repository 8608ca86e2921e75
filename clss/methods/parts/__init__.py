"""The pieces a method's training step is built from, each a plain function of tensors.

A method composes them in its own ``training_step`` and owns every stateful thing they use (the loss
modules, the seeded generator), so its state-dict keys stay where they are:

- :func:`supervised_terms`: regression and the labelled contrastive term on a seeded row subsample
  (:func:`labeled_contrastive_term` alone, for methods with their own regression loss);
- :func:`draw_rows`: the unlabelled rows of a step, drawn before any forward;
- :func:`seriation_ranks`: CLSS's pseudo-ranks, the spectral seriation of the features' cosine similarities;
- :func:`pseudo_target_losses`, :func:`pseudo_rank_terms`: L_UR and L_UC (or a contrastive loss) against
  pseudo-targets;
- :func:`stable_subset`, :func:`anchored_targets`, :func:`reachable`, :func:`anchored_contrastive_terms`:
  GCLSS's stable-subset selection, label-anchored pseudo-values, the drop of unreachable rows and the joint
  labelled + pseudo-valued contrastive term;
- :func:`perturbation_norm`, :func:`recovery_diagnostics`: GCLSS's diagnostics;
- :mod:`clss.methods.parts.recipes`: what the seed papers' recipes share (their pseudo-target parameters,
  step counts, bins of continuous targets, seriation pseudo-targets on the labelled scale);
- :func:`ramp_weight`, :func:`ema_update`: ramp-ups of unlabelled terms and the EMA teacher;
- :func:`input_noise`, :func:`warn_if_noiseless`, :func:`has_dropout`: the noise of the consistency methods
  and the check that their two passes can differ; :func:`mixup`, :func:`beta_draw`: MixMatch's mixup;
- :func:`frozen_batchnorm`: unlabelled passes that leave the batch-norm running statistics alone;
  :func:`evaluating`: evaluation mode for one or more networks, each one's mode restored afterwards;
- :func:`ema_copy`: the frozen copy an EMA teacher or an EMA-evaluated method starts from;
- :func:`arc_head`, :func:`pair_logits`, :func:`pair_targets`, :func:`labeled_pair_loss`,
  :func:`unlabeled_pair_loss`: RankUp's auxiliary ranking classifier over row pairs;
- :class:`DistributionAlignment`, :func:`quantile_map`: RDA's pseudo-labels aligned to the labelled targets.

Similarities, seriation and eigen-solvers run in the features' own precision, at least float32: a method
casts half-precision model outputs up before they reach these functions (:meth:`Method.forward`).
"""

from clss.methods.modes import evaluating, frozen_batchnorm
from clss.methods.parts.anchored import (
    anchored_contrastive_terms,
    anchored_targets,
    kept_count,
    perturbation_norm,
    reachable,
    recovery_diagnostics,
    stable_subset,
)
from clss.methods.parts.averaged import ema_copy
from clss.methods.parts.consistency import (
    beta_draw,
    has_dropout,
    input_noise,
    mixup,
    warn_if_noiseless,
)
from clss.methods.parts.draw import draw_rows
from clss.methods.parts.pseudo_ranks import (
    pseudo_rank_terms,
    pseudo_target_losses,
    ranks_of,
    seriation_ranks,
)
from clss.methods.parts.ranking import (
    arc_head,
    labeled_pair_loss,
    pair_logits,
    pair_targets,
    unlabeled_pair_loss,
)
from clss.methods.parts.rda import DistributionAlignment, quantile_map
from clss.methods.parts.schedules import RAMP_SHAPES, ema_update, ramp_weight
from clss.methods.parts.supervised import labeled_contrastive_term, supervised_terms

__all__ = [
    "RAMP_SHAPES",
    "DistributionAlignment",
    "anchored_contrastive_terms",
    "anchored_targets",
    "arc_head",
    "beta_draw",
    "draw_rows",
    "ema_copy",
    "ema_update",
    "evaluating",
    "frozen_batchnorm",
    "has_dropout",
    "input_noise",
    "kept_count",
    "labeled_contrastive_term",
    "labeled_pair_loss",
    "mixup",
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
    "warn_if_noiseless",
]
