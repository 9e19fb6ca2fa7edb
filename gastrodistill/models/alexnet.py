"""A small AlexNet-style network (five convolutions, three pools, three linear layers; SsnL's
``AlexCifarNet`` family), scaled by ``width``. An adaptive pool to at most 4x4 makes any input size work."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.models.layers import (
    NORM_SIZE_FIX,
    activation,
    check_norm_size,
    check_shape,
    check_sizes,
    norm2d,
    pool2d,
)
from gastrodistill.models.zca import zca_layer
from gastrodistill.utils.seeding import torch_generator


class AlexNet(nn.Module):
    """The AlexNet-style classifier of this module's docstring for ``in_channels`` x ``image_size`` input."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] | list[int] | int,
        width: int = 32,
        hidden: int = 256,
        norm: str = "none",
        act: str = "relu",
        init: str = "xavier",
        init_seed: int = 0,
        zca_kernel: Sequence[Any] | Tensor | None = None,
    ) -> None:
        super().__init__()
        h, w = check_shape(in_channels, num_classes, image_size)
        check_sizes("AlexNet", width=width, hidden=hidden)
        self.zca = zca_layer(zca_kernel, in_channels)  # fixed local-ZCA filter, or identity
        self.init_scheme = check_scheme(init)
        c1, c2, c3 = width, 2 * width, 3 * width

        what = f"AlexNet width {width} with {norm} norm on {h}x{w} px images"
        size, layer = [h, w], 0

        def conv(cin: int, cout: int, k: int) -> list[nn.Module]:
            nonlocal layer
            layer += 1
            check_norm_size(norm, cout, size[0], size[1], layer, what, NORM_SIZE_FIX)
            return [nn.Conv2d(cin, cout, k, padding=k // 2), norm2d(norm, cout), activation(act)]

        def pool() -> nn.Module:
            size[:] = [math.ceil(size[0] / 2), math.ceil(size[1] / 2)]
            return pool2d("max")

        self.features = nn.Sequential(
            *conv(in_channels, c1, 5),
            pool(),
            *conv(c1, c2, 5),
            pool(),
            *conv(c2, c3, 3),
            *conv(c3, c2, 3),
            *conv(c2, c2, 3),
            pool(),
        )
        h, w = size
        out = (min(4, h), min(4, w))
        self.pool = nn.AdaptiveAvgPool2d(out)
        self.classifier = nn.Sequential(
            nn.Linear(c2 * out[0] * out[1], hidden),
            activation(act),
            nn.Linear(hidden, hidden // 2),
            activation(act),
            nn.Linear(hidden // 2, num_classes),
        )
        initialize(self, init, torch_generator(init_seed, "model-init"))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for images ``x`` ``[N, in_channels, H, W]``."""
        return self.classifier(self.pool(self.features(self.zca(x))).flatten(1))
