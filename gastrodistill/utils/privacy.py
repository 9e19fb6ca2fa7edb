"""Filters that keep paths and identifiers out of anything that leaves the machine (W&B, artifacts, cards)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

#: Config keys whose values are local paths or otherwise site-specific; never logged or shared.
PRIVATE_KEY_PARTS = ("path", "root", "dir", "file", "patient", "manifest")
PRIVATE_GROUPS = ("paths", "hydra")
#: Config keys (dotted paths from the root) whose values are folders or files though their names do not
#: say so (``audit.sets``: set name -> folder; ``distill.resume``: a run folder or checkpoint): every text
#: below them but a keyword of :data:`PATH_KEYWORDS` is redacted, with or without a slash (a folder
#: relative to the working directory). A ``resume`` elsewhere (a W&B logger's ``resume: allow``) is kept.
PATH_VALUED_KEYS = ("audit.sets", "distill.resume")
#: What :func:`public_config` puts in place of a path.
REDACTED = "<redacted>"
#: Values of :data:`PATH_VALUED_KEYS` that are not paths (``distill.resume=last``).
PATH_KEYWORDS = ("last", "auto")


def _is_private_key(key: str) -> bool:
    k = key.lower()
    return any(part in k for part in PRIVATE_KEY_PARTS)


def public_config(cfg: DictConfig | Mapping[str, Any], at: str = "") -> dict[str, Any]:
    """The resolved config without paths, directories or identifiers: safe for W&B and artifact cards.
    ``at``: the dotted path of ``cfg`` in the root config when it is a part of it (``public_config(
    cfg.distill, at="distill")``), for :data:`PATH_VALUED_KEYS`."""
    if isinstance(cfg, DictConfig):
        container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    else:
        container = dict(cfg)

    def clean(node: Any, where: str, path_valued: bool = False) -> Any:
        if isinstance(node, Mapping):
            out = {}
            for k, v in node.items():
                if k in PRIVATE_GROUPS or _is_private_key(str(k)):
                    continue
                key = f"{where}.{k}" if where else str(k)
                out[k] = clean(v, key, path_valued or key in PATH_VALUED_KEYS)
            return out
        if isinstance(node, list):
            return [clean(v, where, path_valued) for v in node]
        if isinstance(node, str) and path_valued and node.strip() not in PATH_KEYWORDS:
            return REDACTED
        if (
            isinstance(node, str)
            and ("/" in node or "\\" in node)
            and not node.startswith(("gastrodistill.", "torch.", "pytorch_lightning.", "albumentations."))
        ):
            return REDACTED
        return node

    return clean(container, at)
