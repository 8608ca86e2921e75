"""The fully supervised upper bound: the supervised method trained on every training label.

RankUp's USB fork reports it beside each table (``fullysupervised``): the same network, loss and budget as
the supervised baseline, but every training row that has a target is labelled. The engine does the
relabelling (:attr:`Method.all_labels`): the labelled rows are those a semi-supervised run of the same
configuration uses, labelled and unlabelled, minus the rows without a target; no row is unlabelled.
"""

from __future__ import annotations

from clss.methods.base import register_method
from clss.methods.supervised import Supervised


@register_method
class FullySupervised(Supervised):
    """:class:`Supervised` (same parameters and step) on every training row with a target."""

    name = "fullysupervised"
    description = "upper bound: the supervised step on every training label (labelled + unlabelled rows)"
    semi_supervised = False
    all_labels = True
