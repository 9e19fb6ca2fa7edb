"""The fixed local-ZCA first layer of a network (``model.zca_kernel``; its filter: ``data/zca.py``).

Every network family takes ``zca_kernel``: ``None`` (no whitening, the layer is an identity) or the
filter as nested lists ``[C][k][k]``, which the stages fill in from ``data.zca`` (:func:`with_zca_kernel`).
The filter is a buffer, not a parameter: no optimiser, initialisation or meta-gradient changes it, and it
travels in the model config a distilled set and an artifact card record, so a receiving site builds the
very network the images were distilled for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from gastrodistill.models.layers import ModelConfigError

#: The model keyword that holds the filter.
ZCA_KEY = "zca_kernel"


class ZCAWhitening(nn.Module):
    """Per-channel convolution of ``x`` ``[N, C, H, W]`` with a fixed odd ``k x k`` filter ``[C, k, k]``,
    mirrored (reflect) border, same size out. Differentiable in ``x``; the filter is a buffer."""

    kernel: Tensor

    def __init__(self, kernel: Tensor) -> None:
        super().__init__()
        self.register_buffer("kernel", kernel.detach().float().unsqueeze(1).clone())  # [C, 1, k, k]

    def forward(self, x: Tensor) -> Tensor:
        """Whitened images, the shape of ``x``. Raises ``ModelConfigError`` when an image side is not larger
        than half the filter (a mirrored border needs it)."""
        pad = self.kernel.shape[-1] // 2
        if pad >= min(x.shape[-2:]):
            raise ModelConfigError(
                f"model.zca_kernel of {self.kernel.shape[-1]} px cannot whiten {x.shape[-2]}x{x.shape[-1]} "
                "px images: lower data.zca.kernel_size"
            )
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect") if pad else x
        return F.conv2d(padded, self.kernel.to(x.dtype), groups=self.kernel.shape[0])


def zca_layer(kernel: Sequence[Any] | Tensor | None, in_channels: int) -> nn.Module:
    """The first layer of a network: ``nn.Identity`` for ``None``, else :class:`ZCAWhitening` of ``kernel``
    (``[C][k][k]`` numbers, ``C = in_channels``, ``k`` odd). Raises ``ModelConfigError`` naming
    ``model.zca_kernel`` for any other shape or a non-finite value."""
    if kernel is None:
        return nn.Identity()
    try:
        t = torch.as_tensor(OmegaConf.to_container(kernel) if OmegaConf.is_config(kernel) else kernel)
        t = t.float()
    except (TypeError, ValueError, RuntimeError) as exc:  # torch: "Could not infer dtype of dict", ...
        raise ModelConfigError(
            f"model.zca_kernel must be numbers [C][k][k] (one filter per image channel), got "
            f"{type(kernel).__name__} that torch cannot read as such ({exc})"
        ) from None
    if t.ndim != 3 or t.shape[0] != in_channels or t.shape[1] != t.shape[2] or t.shape[1] % 2 == 0:
        raise ModelConfigError(
            f"model.zca_kernel must be [{in_channels}][k][k] numbers with k odd (one filter per image "
            f"channel), got shape {list(t.shape)}"
        )
    if not torch.isfinite(t).all():
        raise ModelConfigError("model.zca_kernel holds a non-finite value")
    if not t.flatten(1).abs().amax(1).gt(0).all():
        raise ModelConfigError("model.zca_kernel has a filter of zeros: its channel would reach no network")
    return ZCAWhitening(t)


def with_zca_kernel(
    model_cfg: DictConfig | Mapping[str, Any], kernel: Tensor | Sequence[Any] | None
) -> DictConfig | Mapping[str, Any]:
    """``model_cfg`` with ``zca_kernel`` set to ``kernel`` (``[C, k, k]``, as nested lists), a copy; the
    config itself when ``kernel`` is ``None`` (no whitening: configs and records stay as they were)."""
    if kernel is None:
        return model_cfg
    numbers = kernel.tolist() if isinstance(kernel, Tensor) else kernel
    if isinstance(model_cfg, DictConfig):
        out = OmegaConf.create(OmegaConf.to_container(model_cfg, resolve=True))  # a resolved copy, not struct
        out[ZCA_KEY] = numbers
        return out
    return {**dict(model_cfg), ZCA_KEY: numbers}


def without_zca_kernel(model_cfg: DictConfig | Mapping[str, Any]) -> DictConfig | Mapping[str, Any]:
    """``model_cfg`` without ``zca_kernel`` (a copy; the config itself when it has none): the architecture
    alone, for a comparison of networks or a filter of another source."""
    if ZCA_KEY not in model_cfg:
        return model_cfg
    if isinstance(model_cfg, DictConfig):
        out = OmegaConf.create(OmegaConf.to_container(model_cfg, resolve=True))
        del out[ZCA_KEY]
        return out
    return {k: v for k, v in model_cfg.items() if k != ZCA_KEY}
