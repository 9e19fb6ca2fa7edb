"""Building blocks shared by the networks: normalisation layers without running statistics.

Distillation unrolls the inner training functionally (``higher`` / ``torch.func.functional_call``,
optionally with activation checkpointing that re-runs each step). A BatchNorm with running statistics
would mutate its buffers during the unroll (and twice under checkpointing), so every norm here
normalises with the statistics of the current batch only: ``instance`` and ``group`` by construction,
``batch`` as ``BatchNorm2d(track_running_stats=False)`` (batch statistics in eval mode too), and
``none``.
"""

from __future__ import annotations

from torch import nn

NORMS = ("instance", "group", "batch", "none")


class ModelConfigError(ValueError):
    """A network that cannot be built for the data it is given (the message says what to change)."""


class ModelSizeError(ModelConfigError):
    """A network whose settings are valid but too deep for this image size (a 1x1 map would be normalised)."""


def channels_per_group(kind: str, channels: int, groups: int = 8) -> int:
    """How many channels one normaliser of :func:`norm2d` pools (0 for ``batch`` and ``none``)."""
    if kind == "instance":
        return 1
    if kind == "group":
        g = max(1, min(groups, channels))
        while channels % g:
            g -= 1
        return channels // g
    return 0


#: Where the image size is set: the stored side (gastric patches; a cap on a collection's longer side,
#: which experiment presets set, e.g. 64 px in ``experiment=cpu``), or a collection's resize.
IMAGE_SIZE_KEYS = (
    "data.storage_size: the stored side of gastric patches and the cap on npz/folder images; "
    "data.image_size: an npz/folder resize"
)
#: What to change when a norm of a network without ``depth`` (ResNet, AlexNet) would see a 1x1 map.
NORM_SIZE_FIX = (
    f"use larger images ({IMAGE_SIZE_KEYS}), model.norm=none, or a group norm over more channels "
    "(model.width)"
)


def check_norm_size(
    kind: str,
    channels: int,
    h: int,
    w: int,
    layer: int,
    what: str,
    fix: str = f"lower model.depth or give larger images ({IMAGE_SIZE_KEYS})",
) -> None:
    """Refuse a norm that would pool one value over a 1×1 feature map: an ``instance`` norm, or a ``group``
    norm with one channel per group (``width`` <= 8); its output is then its bias whatever the image (and
    torch raises for a batch of one).

    ``h``, ``w``: the map's size in px at layer ``layer`` (1-based); ``what`` names the network and its
    settings, ``fix`` says what to change. Raises :class:`ModelSizeError`.
    """
    if h * w == 1 and channels_per_group(kind, channels) == 1:
        raise ModelSizeError(
            f"{what}: layer {layer} would normalise a 1x1 feature map ({kind} norm over one value per "
            f"channel: a constant output); {fix}"
        )


def norm2d(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """A stateless 2-D normalisation layer (see the module docstring for why stateless)."""
    if kind == "instance":
        return nn.GroupNorm(channels, channels, affine=True)  # == InstanceNorm2d(affine=True), no buffers
    if kind == "group":
        return nn.GroupNorm(channels // channels_per_group(kind, channels, groups), channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use one of {', '.join(NORMS)}")


def activation(kind: str) -> nn.Module:
    """A new activation layer of ``kind`` (relu, leaky_relu, tanh, elu); raises ``ValueError`` otherwise."""
    acts = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "elu": nn.ELU}
    if kind not in acts:
        raise ValueError(f"unknown activation {kind!r}: use one of {', '.join(acts)}")
    return acts[kind]()


def pool2d(kind: str) -> nn.Module:
    """A 2x halving pool that never fails on a 1-pixel map (ceil mode), so any input size works."""
    if kind == "max":
        return nn.MaxPool2d(2, ceil_mode=True)
    if kind == "avg":
        return nn.AvgPool2d(2, ceil_mode=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown pooling {kind!r}: use max, avg or none")


def check_sizes(network: str, **sizes: int) -> None:
    """Refuse a layer size below 1 (``width=0`` made a ZeroDivisionError or "negative dimension" deep in
    torch). Raises :class:`ModelConfigError` naming the config keys, e.g. ``model.width``."""
    bad = {k: v for k, v in sizes.items() if isinstance(v, bool) or not isinstance(v, int) or v < 1}
    if bad:
        got = ", ".join(f"model.{k}={v!r}" for k, v in bad.items())
        raise ModelConfigError(f"{network} needs {' and '.join(f'{k} >= 1' for k in bad)}, got {got}")


def check_shape(
    in_channels: int, num_classes: int, image_size: tuple[int, int] | list[int] | int
) -> tuple[int, int]:
    """Validate the common constructor arguments; returns ``(H, W)``. Raises :class:`ModelConfigError`."""
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(int(s) for s in image_size)
    if len(size) != 2 or min(size) < 1:
        raise ModelConfigError(f"image_size must be (H, W) with positive sides, got {image_size!r}")
    if in_channels < 1:
        raise ModelConfigError(f"in_channels must be >= 1, got {in_channels}")
    if num_classes < 2:
        raise ModelConfigError(f"num_classes must be >= 2, got {num_classes}")
    return size  # type: ignore[return-value]
