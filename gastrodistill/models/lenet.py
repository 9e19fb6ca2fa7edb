"""LeNet-5-style network (Wang et al.'s MNIST experiments). "Same" padding and an adaptive pool to at most
5x5 make it accept any input size and channel count."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.models.layers import activation, check_shape, pool2d
from gastrodistill.models.zca import zca_layer
from gastrodistill.utils.seeding import torch_generator


class LeNet(nn.Module):
    """The LeNet-5-style classifier of this module's docstring (two 5x5 convolutions, three linear layers)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] | list[int] | int,
        act: str = "relu",
        init: str = "xavier",
        init_seed: int = 0,
        zca_kernel: Sequence[Any] | Tensor | None = None,
    ) -> None:
        super().__init__()
        h, w = check_shape(in_channels, num_classes, image_size)
        self.zca = zca_layer(zca_kernel, in_channels)  # fixed local-ZCA filter, or identity
        self.init_scheme = check_scheme(init)
        h, w = math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2)
        out = (min(5, h), min(5, w))
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            activation(act),
            pool2d("max"),
            nn.Conv2d(6, 16, 5, padding=2),
            activation(act),
            pool2d("max"),
            nn.AdaptiveAvgPool2d(out),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * out[0] * out[1], 120),
            activation(act),
            nn.Linear(120, 84),
            activation(act),
            nn.Linear(84, num_classes),
        )
        initialize(self, init, torch_generator(init_seed, "model-init"))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for images ``x`` ``[N, in_channels, H, W]``."""
        return self.classifier(self.features(self.zca(x)).flatten(1))
