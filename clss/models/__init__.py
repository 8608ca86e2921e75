"""Regression networks that return ``(prediction [B], feature [B, d])``.

Every model used by :mod:`clss.methods` follows that interface: the feature feeds the contrastive and
ranking losses, the prediction the regression loss. Image backbones (torchvision) will plug in
through the same registry.
"""

from clss.models.mlp import MLPRegressor
from clss.models.registry import MODEL_PARAMS, MODELS, build_model, list_models

__all__ = ["MODELS", "MODEL_PARAMS", "MLPRegressor", "build_model", "list_models"]
