"""clss: semi-supervised deep regression with contrastive learning and spectral seriation.

Subpackages are imported lazily so that ``import clss`` (and the ``clss`` command) stays fast:
``clss.seriation`` (ordering similarity matrices), ``clss.losses`` (contrastive and ranking losses),
``clss.metrics`` (regression metrics), ``clss.distributed`` (gathers with exact gradients),
``clss.plotting`` (figures); ``clss.SemiSupervisedRegressor`` (the scikit-learn estimator).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("seriation", "metrics", "losses", "distributed", "plotting", "data", "models", "methods",
               "engine", "config")
# Public classes imported on first access (they pull in torch), by the module that defines them.
_LAZY_ATTRS = {"SemiSupervisedRegressor": "clss.estimator"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"clss.{name}")
    if name in _LAZY_ATTRS:
        return getattr(importlib.import_module(_LAZY_ATTRS[name]), name)
    raise AttributeError(f"module 'clss' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES, *_LAZY_ATTRS])
