"""The small ConvNet of the dataset-distillation literature: ``depth`` x [conv3x3 -> instance norm -> ReLU ->
2x pool], then one linear layer. Works for any channel count and input size (pools use ceil mode)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.models.layers import (
    ModelConfigError,
    activation,
    check_norm_size,
    check_shape,
    norm2d,
    pool2d,
)
from gastrodistill.utils.seeding import torch_generator


class ConvNet(nn.Module):
    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] | list[int] | int,
        width: int = 128,
        depth: int = 3,
        norm: str = "instance",
        act: str = "relu",
        pool: str = "avg",
        init: str = "xavier",
        init_seed: int = 0,
    ) -> None:
        super().__init__()
        h, w = check_shape(in_channels, num_classes, image_size)
        if depth < 1 or width < 1:
            raise ModelConfigError(
                f"ConvNet needs depth >= 1 and width >= 1, got depth={depth}, width={width}"
            )
        self.init_scheme = check_scheme(init)
        layers: list[nn.Module] = []
        c = in_channels
        what = f"ConvNet depth {depth} on {h}x{w} px images"
        for layer in range(1, depth + 1):
            check_norm_size(norm, width, h, w, layer, what)
            layers += [nn.Conv2d(c, width, 3, padding=1), norm2d(norm, width), activation(act), pool2d(pool)]
            c = width
            if pool != "none":
                h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(c * h * w, num_classes)
        initialize(self, init, torch_generator(init_seed, "model-init"))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))
