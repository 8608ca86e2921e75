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
from clss.methods.supervised import Supervised

# isort: split
# The baselines register after the package's own methods, so that `clss methods` lists those first.
from clss.methods.cps import CPS
from clss.methods.fullysupervised import FullySupervised
from clss.methods.meanteacher import MeanTeacher
from clss.methods.mixmatch import MixMatch
from clss.methods.pimodel import PiModel
from clss.methods.rankup import RankUp
from clss.methods.rankup_rda import RankUpRDA
from clss.methods.rda import RDA
from clss.methods.ucvme import UCVME

# isort: split
# The seed papers' recipes.
from clss.methods.cloc import CLOC
from clss.methods.conord import ConOrd
from clss.methods.probe import RepresentationProbe, RnC, SupCon, SupReMix

__all__ = [
    "CLOC",
    "CLSS",
    "CPS",
    "GCLSS",
    "METHODS",
    "RDA",
    "UCVME",
    "Batch",
    "ConOrd",
    "FullySupervised",
    "MeanTeacher",
    "Method",
    "MethodParams",
    "MixMatch",
    "NonFiniteLossError",
    "OptimizerConfig",
    "PiModel",
    "RankUp",
    "RankUpRDA",
    "RepresentationProbe",
    "RnC",
    "SupCon",
    "SupReMix",
    "Supervised",
    "TrainingContext",
    "build_method",
    "list_methods",
    "register_method",
]
