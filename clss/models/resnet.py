"""torchvision's ResNet-18/34/50 as regressors: the classifier ``fc`` becomes a ``Linear(d, 1)`` head."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet

from clss.models.backbone import BackboneRegressor

#: Architecture name -> (torchvision builder, pooled feature dimension).
RESNETS = {"resnet18": (resnet.resnet18, 512), "resnet34": (resnet.resnet34, 512),
           "resnet50": (resnet.resnet50, 2048)}


class ResNetRegressor(BackboneRegressor):
    """A torchvision ResNet whose global-average-pooled feature feeds a regression head.

    ``forward(x)`` with ``x`` of shape ``[B, C, H, W]`` returns ``{"pred": [B], "feat": [B, d]}`` with
    ``d`` = 512 (ResNet-18/34) or 2048 (ResNet-50). The backbone is built with ``weights=None`` (random
    initialisation, nothing is downloaded); pretrained weights come from a local file through
    :func:`clss.models.load_weights`. The backbone's modules keep torchvision's names under
    ``backbone.`` so that a torchvision state dict loads into it as it is.

    Parameters
    ----------
    arch : {"resnet18", "resnet34", "resnet50"}
    in_channels : int, default 3
        Image channels; other than 3, ``conv1`` takes that many channels (same kernel, stride, init).
    dropout : float, default 0.0
        Dropout on the pooled feature before the head (UCVME uses it for its Monte-Carlo passes).
    small_input : bool, default False
        For 32-40 px images: ``conv1`` becomes a 3x3 convolution with stride 1 and the max-pool is removed,
        so the last stage sees 4x4 (32 px) instead of 1x1 maps. A 7x7 pretrained ``conv1`` does not fit it.
    """

    classifier_prefixes = ("fc.",)
    first_conv = "backbone.conv1.weight"

    def __init__(self, arch: str = "resnet18", in_channels: int = 3, *, dropout: float = 0.0,
                 small_input: bool = False) -> None:
        if arch not in RESNETS:
            raise ValueError(f"arch must be one of {sorted(RESNETS)}, got {arch!r}")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        builder, dim = RESNETS[arch]
        net = builder(weights=None)
        if small_input or in_channels != 3:
            kernel, stride, pad = (3, 1, 1) if small_input else (7, 2, 3)
            net.conv1 = nn.Conv2d(in_channels, 64, kernel, stride, pad, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")  # torchvision's
        if small_input:
            net.maxpool = nn.Identity()
        net.fc = nn.Identity()
        super().__init__(net, dim, dropout=dropout)
        self.arch = arch
