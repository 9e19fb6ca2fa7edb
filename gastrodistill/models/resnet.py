"""A ResNet-18-style network (four stages of two basic blocks), for any input size and channel count.

Normalisation defaults to GroupNorm: BatchNorm's running statistics are buffers that a functional
unroll would mutate (see ``gastrodistill.models.layers``); ``norm="batch"`` uses batch statistics only.
Small inputs (< 128 px) get a CIFAR-style 3x3 stem, larger ones the ImageNet 7x7/2 stem + max pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.models.layers import (
    NORM_SIZE_FIX,
    ModelConfigError,
    activation,
    check_norm_size,
    check_shape,
    check_sizes,
    norm2d,
)
from gastrodistill.models.zca import zca_layer
from gastrodistill.utils.seeding import torch_generator


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (a 1x1 convolution when stride or width change)."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.norm1 = norm2d(norm, cout)
        self.act = activation(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.norm2 = norm2d(norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), norm2d(norm, cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        """Features ``[N, cout, H / stride, W / stride]`` (rounded up) of ``x`` ``[N, cin, H, W]``."""
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


def _halved(n: int) -> int:
    """The size in px after a 3x3 (or 7x7, or 3x3 max-pool) stride-2 layer with its padding."""
    return (n - 1) // 2 + 1


def check_map_sizes(
    norm: str, width: int, blocks: tuple[int, ...] | list[int], stem: str, h: int, w: int
) -> None:
    """Refuse a ResNet whose norm would pool a 1x1 map (:func:`~gastrodistill.models.layers.check_norm_size`):
    the feature map halves at the ImageNet stem's conv and pool and at the first block of every stage after
    the first. Raises :class:`~gastrodistill.models.layers.ModelConfigError` naming the layer."""
    what = (
        f"ResNet width {width} with {norm} norm on {h}x{w} px images ({stem} stem; layer = stem, then blocks)"
    )
    if stem == "imagenet":
        h, w = _halved(h), _halved(w)
    check_norm_size(norm, width, h, w, 1, what, NORM_SIZE_FIX)
    if stem == "imagenet":
        h, w = _halved(h), _halved(w)
    layer = 1
    for i, n in enumerate(blocks):
        if i > 0 and n > 0:
            h, w = _halved(h), _halved(w)
        for _ in range(n):
            layer += 1
            check_norm_size(norm, width * 2**i, h, w, layer, what, NORM_SIZE_FIX)


class ResNet18(nn.Module):
    """The ResNet-18-style classifier of this module's docstring (four stages of two basic blocks)."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: tuple[int, int] | list[int] | int,
        width: int = 64,
        blocks: tuple[int, ...] | list[int] = (2, 2, 2, 2),
        norm: str = "group",
        act: str = "relu",
        stem: str = "auto",
        init: str = "xavier",
        init_seed: int = 0,
        zca_kernel: Sequence[Any] | Tensor | None = None,
    ) -> None:
        super().__init__()
        h, w = check_shape(in_channels, num_classes, image_size)
        check_sizes("ResNet18", width=width)
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in blocks):
            raise ModelConfigError(f"ResNet18 needs model.blocks as counts >= 0, got {list(blocks)!r}")
        self.zca = zca_layer(zca_kernel, in_channels)  # fixed local-ZCA filter, or identity
        self.init_scheme = check_scheme(init)
        if stem == "auto":
            stem = "imagenet" if min(h, w) >= 128 else "cifar"
        check_map_sizes(norm, width, blocks, stem, h, w)
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, padding=1, bias=False), norm2d(norm, width), activation(act)
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False),
                norm2d(norm, width),
                activation(act),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        else:
            raise ValueError(f"unknown ResNet stem {stem!r}: use auto, cifar or imagenet")
        stages: list[nn.Module] = []
        cin = width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            for j in range(n):
                stages.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, norm, act))
                cin = cout
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(cin, num_classes)
        initialize(self, init, torch_generator(init_seed, "model-init"))

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[N, num_classes]`` for images ``x`` ``[N, in_channels, H, W]``."""
        return self.classifier(self.pool(self.layers(self.stem(self.zca(x)))).flatten(1))
