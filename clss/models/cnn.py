"""A small convolutional network for low-resolution images (8x8 digits, 28x28 MNIST-like inputs)."""

from __future__ import annotations

import torch
from torch import nn

from clss.models.backbone import BackboneRegressor


class SmallCNN(nn.Module):
    """``blocks`` times ``[conv3x3-BN-ReLU] x 2 -> max-pool 2``, channels doubling per block, then global
    average pooling: ``[B, C, H, W] -> [B, channels * 2**(blocks - 1)]``."""

    def __init__(self, in_channels: int, channels: int = 32, blocks: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = in_channels
        for b in range(blocks):
            c_out = channels * 2**b
            for c in (c_in, c_out):
                layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.out_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).mean(dim=(2, 3))


class CNNRegressor(BackboneRegressor):
    """:class:`SmallCNN` with a regression head; ``forward`` returns ``{"pred": [B], "feat": [B, d]}`` with
    ``d = channels * 2**(blocks - 1)`` (64 by default).

    Each block halves the image, so the smaller side must be at least ``2**blocks`` pixels (8x8 takes up
    to 3 blocks, 28x28 up to 4).

    Parameters
    ----------
    in_channels : int
    image_size : tuple of int
        ``(H, W)`` of the inputs (checked against ``blocks``).
    channels : int, default 32
        Channels of the first block.
    blocks : int, default 2
    dropout : float, default 0.0
        Dropout on the pooled feature before the head.
    """

    first_conv = "backbone.layers.0.weight"

    def __init__(self, in_channels: int, image_size: tuple[int, int], channels: int = 32, blocks: int = 2, *,
                 dropout: float = 0.0) -> None:
        if in_channels < 1 or channels < 1 or blocks < 1:
            raise ValueError(f"in_channels, channels and blocks must be >= 1, got {in_channels}, {channels} "
                             f"and {blocks}")
        if min(image_size) < 2**blocks:
            h, w = image_size
            raise ValueError(f"model 'cnn' with blocks={blocks} halves the image {blocks} times and needs at "
                             f"least {2**blocks}x{2**blocks} pixels, got {h}x{w}; use fewer blocks")
        net = SmallCNN(in_channels, channels, blocks)
        super().__init__(net, net.out_features, dropout=dropout)
