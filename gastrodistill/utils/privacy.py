"""Filters that keep paths and identifiers out of anything that leaves the machine (W&B, artifacts, cards)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Config keys whose values are local paths or otherwise site-specific; never logged or shared.
PRIVATE_KEY_PARTS = ("path", "root", "dir", "file", "patient", "manifest")
PRIVATE_GROUPS = ("paths", "hydra")


def _is_private_key(key: str) -> bool:
    k = key.lower()
    return any(part in k for part in PRIVATE_KEY_PARTS)


def public_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config without paths, directories or identifiers: safe for W&B and artifact cards."""
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    else:
        container = dict(cfg)

    def clean(node: Any) -> Any:
        if isinstance(node, Mapping):
            return {
                k: clean(v)
                for k, v in node.items()
                if k not in PRIVATE_GROUPS and not _is_private_key(str(k))
            }
        if isinstance(node, list):
            return [clean(v) for v in node]
        if (
            isinstance(node, str)
            and ("/" in node or "\\" in node)
            and not node.startswith(("gastrodistill.", "torch.", "pytorch_lightning.", "albumentations."))
        ):
            return "<redacted>"
        return node

    return clean(container)
