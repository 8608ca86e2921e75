"""WideResNet (Zagoruyko & Komodakis 2016) as the semi-supervised literature uses it at 32-40 px.

The layout, initialisation and batch-norm settings follow the FixMatch/USB WRN-28-2 that RankUp trains:
a 3x3 stem with 16 channels, three stages of ``(depth - 4) / 6`` pre-activation basic blocks with
``16k, 32k, 64k`` channels (strides 1, 2, 2), leaky ReLU with slope 0.1, batch norm with momentum 0.001
and eps 0.001, convolutions with biases, then BN-leaky ReLU and global average pooling: a ``64k``-d
feature (128 for WRN-28-2). Every block starts with BN-leaky ReLU of its input; where the width changes
(the first block of each stage) the 1x1 projection shortcut takes that activated input too, as USB's code
does. Module names match USB's ``wrn.py`` (``conv1``, ``block1.layer.0.bn1``, ``convShortcut``, final
``bn1``; its classifier ``fc``), so a USB state dict loads as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from clss.models.backbone import BackboneRegressor

_BN = {"momentum": 0.001, "eps": 0.001}
_SLOPE = 0.1


class _Block(nn.Module):
    """Pre-activation basic block: ``a = act(bn(x))``, ``shortcut + conv(act(bn(conv(a))))`` where the
    shortcut is ``x``, or a 1x1 projection of ``a`` when the width changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in, **_BN)
        self.relu1 = nn.LeakyReLU(_SLOPE)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=True)
        self.bn2 = nn.BatchNorm2d(c_out, **_BN)
        self.relu2 = nn.LeakyReLU(_SLOPE)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=True)
        self.convShortcut = None if c_in == c_out else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(act))))
        return (x if self.convShortcut is None else self.convShortcut(act)) + out


class _Stage(nn.Module):
    def __init__(self, n: int, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.layer = nn.Sequential(*(_Block(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                                     for i in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """The WRN feature extractor: ``[B, C, H, W] -> [B, 64 * widen]`` (globally average-pooled)."""

    def __init__(self, in_channels: int = 3, depth: int = 28, widen: int = 2) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (e.g. 28), got {depth}")
        if widen < 1 or in_channels < 1:
            raise ValueError(f"widen and in_channels must be >= 1, got {widen} and {in_channels}")
        n = (depth - 4) // 6
        c = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, c[0], 3, 1, 1, bias=True)
        self.block1 = _Stage(n, c[0], c[1], 1)
        self.block2 = _Stage(n, c[1], c[2], 2)
        self.block3 = _Stage(n, c[2], c[3], 2)
        self.bn1 = nn.BatchNorm2d(c[3], **_BN)
        self.relu = nn.LeakyReLU(_SLOPE)
        self.out_features = c[3]
        for m in self.modules():  # USB's initialisation (convolution biases keep PyTorch's)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return self.relu(self.bn1(out)).mean(dim=(2, 3))


class WideResNetRegressor(BackboneRegressor):
    """WRN-``depth``-``widen`` with a regression head (Xavier-normal weights, zero bias, as USB's ``fc``).

    ``forward(x)`` with ``x`` of shape ``[B, C, H, W]`` (any ``H, W``; 32 and 40 px in the literature)
    returns ``{"pred": [B], "feat": [B, 64 * widen]}``.

    Parameters
    ----------
    in_channels : int, default 3
    depth : int, default 28
        ``6n + 4``.
    widen : int, default 2
    dropout : float, default 0.0
        Dropout on the pooled feature before the head.
    """

    classifier_prefixes = ("fc.",)
    first_conv = "backbone.conv1.weight"

    def __init__(self, in_channels: int = 3, depth: int = 28, widen: int = 2, *,
                 dropout: float = 0.0) -> None:
        net = WideResNet(in_channels, depth, widen)
        super().__init__(net, net.out_features, dropout=dropout)
        nn.init.xavier_normal_(self.head.weight)
        nn.init.zeros_(self.head.bias)
