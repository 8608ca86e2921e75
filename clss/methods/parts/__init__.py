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
- :func:`ramp_weight`, :func:`ema_update`: ramp-ups of unlabelled terms and the EMA teacher;
- :func:`input_noise`, :func:`warn_if_noiseless`, :func:`has_dropout`: the noise of the consistency methods
  and the check that their two passes can differ; :func:`batch_norm_frozen`: unlabelled passes that leave
  the batch-norm statistics alone; :func:`mixup`, :func:`beta_draw`: MixMatch's mixup.
- :func:`evaluating`: evaluation mode for the networks of a two-network method (CPS, UCVME).

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
from clss.methods.parts.consistency import (
    batch_norm_frozen,
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
from clss.methods.parts.schedules import RAMP_SHAPES, ema_update, ramp_weight
from clss.methods.parts.supervised import labeled_contrastive_term, supervised_terms
from clss.methods.parts.two_networks import evaluating

__all__ = [
    "RAMP_SHAPES",
    "anchored_contrastive_terms",
    "anchored_targets",
    "batch_norm_frozen",
    "beta_draw",
    "draw_rows",
    "ema_update",
    "evaluating",
    "has_dropout",
    "input_noise",
    "kept_count",
    "labeled_contrastive_term",
    "mixup",
    "perturbation_norm",
    "pseudo_rank_terms",
    "pseudo_target_losses",
    "ramp_weight",
    "ranks_of",
    "reachable",
    "recovery_diagnostics",
    "seriation_ranks",
    "stable_subset",
    "supervised_terms",
    "warn_if_noiseless",
]
