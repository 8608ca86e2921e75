"""Seriation: order the items of a similarity matrix (spectral, label-anchored, batched torch).

The API follows scipy's style: plain functions, arrays in, arrays out, a small result object.
See docs/seriation.md for the methods, solver policy and diagnostics.
"""

from clss.seriation.batch import BatchDiagnostics, harmonic_batch, seriate_batch
from clss.seriation.compare import (
    align_orders,
    compare_orders,
    order_from_ranks,
    rank_correlation_batch,
    ranks_from_order,
)
from clss.seriation.core import list_methods, seriate
from clss.seriation.io import load_anchors, load_similarity, save_seriation
from clss.seriation.quality import CRITERIA, criteria, criterion, criterion_batch, list_criteria
from clss.seriation.refine import REFINABLE, Refinement, refine_order
from clss.seriation.result import ComponentInfo, Seriation
from clss.seriation.spectral import SeriationWarning
from clss.seriation.stable_subset import cross_view_perturbation, select_stable_subset
from clss.seriation.tolerance import recovery_tolerance, recovery_tolerance_blocks

__all__ = [
    "CRITERIA",
    "REFINABLE",
    "BatchDiagnostics",
    "ComponentInfo",
    "Refinement",
    "Seriation",
    "SeriationWarning",
    "align_orders",
    "compare_orders",
    "criteria",
    "criterion",
    "criterion_batch",
    "cross_view_perturbation",
    "harmonic_batch",
    "list_criteria",
    "list_methods",
    "load_anchors",
    "load_similarity",
    "order_from_ranks",
    "rank_correlation_batch",
    "ranks_from_order",
    "recovery_tolerance",
    "recovery_tolerance_blocks",
    "refine_order",
    "save_seriation",
    "select_stable_subset",
    "seriate",
    "seriate_batch",
]
