"""clss: semi-supervised deep regression with contrastive learning and spectral seriation.

Subpackages are imported lazily so that ``import clss`` (and the ``clss`` command) stays fast:
``clss.seriation`` (ordering similarity matrices), ``clss.losses`` (contrastive and ranking losses),
``clss.metrics`` (regression metrics), ``clss.distributed`` (gathers with exact gradients),
``clss.plotting`` (figures).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("seriation", "metrics", "losses", "distributed", "plotting", "data", "models", "methods",
               "engine", "config")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"clss.{name}")
    raise AttributeError(f"module 'clss' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
