"""A network's weights to and from a safetensors file (never a pickle), written atomically.

One way for the project's saved networks: the evaluation's reference network (``reference.safetensors``)
and the texture-matching teacher handed between ``reproduce``'s processes.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from gastrodistill.utils.atomic import atomic_path


def save_weights(net: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``net``'s state dict (every tensor moved to the CPU, contiguous) to ``path``, through a
    temporary file renamed into place; returns ``path``."""
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    return Path(path)


def load_weights(net: nn.Module, path: str | os.PathLike, device: str | None = None) -> nn.Module:
    """``net`` with the state dict of ``path`` (tensors loaded on ``device``, default the CPU); returns
    ``net``. Raises ``RuntimeError`` when the names or shapes do not fit ``net`` (``load_state_dict``)."""
    net.load_state_dict(load_file(str(path), device=device or "cpu"))
    return net
