"""The small ConvNet of the dataset-distillation literature: ``depth`` x [conv3x3 -> instance norm -> ReLU ->
2x pool], then one linear layer. Works for any channel count and input size (pools use ceil mode).

``head="flatten"`` (the literature's) feeds the flattened last feature map to the linear layer;
``head="avg"`` averages it over space first (global average pooling, as in ResNets), so the classifier
sees how much of each feature an image holds, not where: the inductive bias of a texture task. On the CPU
study it learns more from 10 real patches per class and far more from 10 clean prototypes, and it learns
from texture-matched images what the flattened head does not, so the CPU preset uses it since the
twelfth round (docs/cpu_study.md, "Sixth round", "Eleventh round" and "Twelfth round")."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.models.layers import (
    ModelConfigError,
    activation,
    check_norm_size,
    check_shape,
    check_sizes,
    norm2d,
    pool2d,
)
from gastrodistill.models.zca import zca_layer
from gastrodistill.utils.seeding import torch_generator

#: Classifier heads: the flattened feature map, or its global average over space.
HEADS = ("flatten", "avg")


class ConvNet(nn.Module):
    """The ``depth``-block ConvNet of this module's docstring, with a ``flatten`` or ``avg`` head."""

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
        head: str = "flatten",
        zca_kernel: Sequence[Any] | Tensor | None = None,
    ) -> None:
        super().__init__()
        h, w = check_shape(in_channels, num_classes, image_size)
        self.zca = zca_layer(zca_kernel, in_channels)  # fixed local-ZCA filter, or identity
        check_sizes("ConvNet", depth=depth, width=width)
        self.init_scheme = check_scheme(init)
        if head not in HEADS:
            raise ModelConfigError(
                f"unknown ConvNet head {head!r} (model.head): use one of {', '.join(HEADS)}"
            )
        self.head = head
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
        self.classifier = nn.Linear(c * h * w if head == "flatten" else c, num_classes)
        initialize(self, init, torch_generator(init_seed, "model-init"))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for images ``x`` ``[N, in_channels, H, W]``."""
        f = self.features(self.zca(x))
        return self.classifier(f.flatten(1) if self.head == "flatten" else f.mean((2, 3)))
