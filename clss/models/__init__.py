"""Regression networks that return a named output, ``{"pred": [B], "feat": [B, d], ...}``.

Every model used by :mod:`clss.methods` follows that interface (:class:`ModelOutput`): the feature feeds
the contrastive and ranking losses, the prediction the regression loss; extras such as a log-variance are
further keys. :func:`build_model` builds a registered network for the data's :class:`~clss.data.InputSpec`.
"""

from clss.models.mlp import MLPRegressor
from clss.models.output import ModelOutput
from clss.models.registry import MODEL_PARAMS, MODELS, build_model, list_models

__all__ = ["MODELS", "MODEL_PARAMS", "MLPRegressor", "ModelOutput", "build_model", "list_models"]
