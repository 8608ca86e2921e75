"""Training methods for (semi-supervised) deep regression, by name: ``build_method("gclss", ...)``.

Every method is a :class:`Method` that owns its networks and optimisers and runs whole training steps;
see :mod:`clss.methods.base` for the interface a new method implements, :mod:`clss.methods.parts` for the
pieces the steps are built from and :mod:`clss.methods.precision` for mixed precision.
"""

from clss.methods.base import (
    METHODS,
    Batch,
    Method,
    MethodParams,
    NonFiniteLossError,
    OptimizerConfig,
    TrainingContext,
    build_method,
    list_methods,
    register_method,
)
from clss.methods.clss import CLSS
from clss.methods.gclss import GCLSS
from clss.methods.rankup import RankUp
from clss.methods.rankup_rda import RankUpRDA
from clss.methods.rda import RDA
from clss.methods.supervised import Supervised

__all__ = [
    "CLSS",
    "GCLSS",
    "METHODS",
    "RDA",
    "Batch",
    "Method",
    "MethodParams",
    "NonFiniteLossError",
    "OptimizerConfig",
    "RankUp",
    "RankUpRDA",
    "Supervised",
    "TrainingContext",
    "build_method",
    "list_methods",
    "register_method",
]
