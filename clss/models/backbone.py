"""The shape every image model shares: ``backbone -> pooled feature -> dropout -> Linear(d, 1)``."""

from __future__ import annotations

import torch
from torch import nn

from clss.models.output import ModelOutput


class BackboneRegressor(nn.Module):
    """A feature extractor with a regression head; ``forward`` returns ``{"pred": [B], "feat": [B, d]}``.

    ``feat`` is the backbone's pooled feature after the optional dropout (dropout is the identity in
    evaluation mode), so two stochastic passes in training mode differ in ``feat`` as in ``pred``, as in
    :class:`~clss.models.MLPRegressor` whose dropout sits inside the trunk.

    Subclasses set ``backbone`` (a module mapping ``[B, C, H, W]`` to ``[B, d]``) and the class attributes
    that describe how a file holding only the backbone's weights maps onto it (see
    :func:`clss.models.load_weights`).

    Parameters
    ----------
    backbone : nn.Module
        Maps a batch of inputs to ``[B, feature_dim]``.
    feature_dim : int
        ``d``.
    dropout : float, default 0.0
        Dropout on the feature before the head.
    """

    #: Key prefixes of a backbone file's classification layer, skipped on loading (the head is new).
    classifier_prefixes: tuple[str, ...] = ()
    #: The first convolution's weight (a model key); 3-channel weights are adapted to 1-channel models.
    first_conv: str = ""

    def __init__(self, backbone: nn.Module, feature_dim: int, *, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(feature_dim, 1)
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feat = self.dropout(self.backbone(x))
        return {"pred": self.head(feat).squeeze(-1), "feat": feat}
