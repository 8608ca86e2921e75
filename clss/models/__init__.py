"""Regression networks that return a named output, ``{"pred": [B], "feat": [B, d], ...}``.

Every model used by :mod:`clss.methods` follows that interface (:class:`ModelOutput`): the feature feeds
the contrastive and ranking losses, the prediction the regression loss; extras such as a log-variance are
further keys. :func:`build_model` builds a registered network for the data's :class:`~clss.data.InputSpec`:
an MLP (tabular rows, flattened images), torchvision ResNet-18/34/50, WideResNet-28-2 and a small CNN
(images). Pretrained weights come only from local files (:func:`load_weights`).
"""

from clss.models.backbone import BackboneRegressor
from clss.models.cnn import CNNRegressor
from clss.models.mlp import MLPRegressor
from clss.models.output import ModelOutput
from clss.models.registry import MODEL_PARAMS, MODELS, build_model, list_models
from clss.models.resnet import ResNetRegressor
from clss.models.weights import load_weights
from clss.models.wrn import WideResNetRegressor

__all__ = ["MODELS", "MODEL_PARAMS", "BackboneRegressor", "CNNRegressor", "MLPRegressor", "ModelOutput",
           "ResNetRegressor", "WideResNetRegressor", "build_model", "list_models", "load_weights"]
