"""A multilayer perceptron with a feature trunk and a linear regression head."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from clss.models.output import ModelOutput
from clss.schema import Spec

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}

#: The keyword arguments of :class:`MLPRegressor` as configuration keys (``model.*``).
MLP_PARAMS = {
    "hidden": Spec("int_list", ge=1),
    "dropout": Spec("float", ge=0, lt=1),
    "activation": Spec("str", choices=tuple(ACTIVATIONS)),
    "init": Spec("str", choices=("paper", "default")),
    "init_std": Spec("float", gt=0),
}


class MLPRegressor(nn.Module):
    """``x -> trunk -> feature -> linear head``; ``forward`` returns ``{"pred": [B], "feat": [B, h]}``.

    Inputs of any shape ``[B, ...]`` are flattened, so an MLP also runs on small images.

    The CLSS/GCLSS operator-learning model is ``MLPRegressor(241, (100, 100))`` with ReLU and the
    paper's initialisation (weights ~ N(0, 0.001²), biases 0, as the official synthetic code).

    Parameters
    ----------
    in_features : int
        Input dimension.
    hidden : sequence of int, default (100, 100)
        Widths of the trunk layers; the last one is the feature dimension.
    dropout : float, default 0.0
        Dropout after every hidden activation (GCLSS draws two stochastic passes from it).
    activation : {"relu", "gelu", "tanh", "silu"}, default "relu"
        Post-ReLU features give non-negative cosine similarities, which the anchored seriation prefers.
    init : {"paper", "default"}, default "paper"
        ``"paper"``: N(0, ``init_std``²) weights and zero biases; ``"default"``: PyTorch's initialisation.
    init_std : float, default 1e-3
    """

    def __init__(self, in_features: int, hidden: Sequence[int] = (100, 100), *, dropout: float = 0.0,
                 activation: str = "relu", init: str = "paper", init_std: float = 1e-3) -> None:
        super().__init__()
        if in_features < 1 or not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"invalid MLP sizes: in_features={in_features}, hidden={tuple(hidden)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if init not in ("paper", "default"):
            raise ValueError(f"init must be 'paper' or 'default', got {init!r}")
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1)
        self.feature_dim = width
        if init == "paper":
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0.0, init_std)
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feat = self.trunk(x.flatten(1))
        return {"pred": self.head(feat).squeeze(-1), "feat": feat}
