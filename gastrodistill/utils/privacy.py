"""Filters that keep paths and identifiers out of anything that leaves the machine (W&B, artifacts, cards)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Config keys whose values are local paths or otherwise site-specific; never logged or shared.
PRIVATE_KEY_PARTS = ("path", "root", "dir", "file", "patient", "manifest")
PRIVATE_GROUPS = ("paths", "hydra")
#: Config keys whose values are folders or files though their names do not say so (``audit.sets``: set name
#: -> folder; ``distill.resume``: a run folder or checkpoint): every text below them but a keyword of
#: :data:`PATH_KEYWORDS` is redacted, with or without a slash (a folder relative to the working directory).
PATH_VALUED_KEYS = ("sets", "resume")
#: Values of :data:`PATH_VALUED_KEYS` that are not paths (``distill.resume=last``).
PATH_KEYWORDS = ("last",)


def _is_private_key(key: str) -> bool:
    k = key.lower()
    return any(part in k for part in PRIVATE_KEY_PARTS)


def public_config(cfg: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The resolved config without paths, directories or identifiers: safe for W&B and artifact cards."""
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    else:
        container = dict(cfg)

    def clean(node: Any, path_valued: bool = False) -> Any:
        if isinstance(node, Mapping):
            return {
                k: clean(v, path_valued or k in PATH_VALUED_KEYS)
                for k, v in node.items()
                if k not in PRIVATE_GROUPS and not _is_private_key(str(k))
            }
        if isinstance(node, list):
            return [clean(v, path_valued) for v in node]
        if isinstance(node, str) and path_valued and node.strip() not in PATH_KEYWORDS:
            return "<redacted>"
        if (
            isinstance(node, str)
            and ("/" in node or "\\" in node)
            and not node.startswith(("gastrodistill.", "torch.", "pytorch_lightning.", "albumentations."))
        ):
            return "<redacted>"
        return node

    return clean(container)
