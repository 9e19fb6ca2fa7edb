"""Config nodes read from files that another site wrote: what may be instantiated from them.

A ``_target_`` is code to run. Hydra's ``instantiate`` builds every node that has one, nested nodes
included, and OmegaConf resolves ``${...}`` interpolations (environment variables, resolvers) when the
node is read. A node received with a distilled set (an artifact's card, a set's ``distilled.json``)
therefore may name code only at its top level, where the caller checks the target against what it
allows; below it, only plain values are accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from gastrodistill.utils.values import check_switch

#: Keys that make Hydra act on a node (build it, bind it, pass positional arguments, convert it).
HYDRA_KEYS = frozenset({"_target_", "_partial_", "_args_", "_recursive_", "_convert_"})


class UnsafeNodeError(ValueError):
    """A received config node names code or an interpolation where only plain values may be."""


def check_plain(value: Any, where: str) -> None:
    """Refuse anything below ``where`` that Hydra or OmegaConf would act on.

    Accepts None, bools, numbers, strings without ``${``, and lists and mappings of them. Raises
    :class:`UnsafeNodeError` naming the first offending field (``where.key[index]...``)."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key) in HYDRA_KEYS:
                raise UnsafeNodeError(
                    f"{where}.{key}: a nested {key} would make Hydra build or call something; a received "
                    "file may name code only at the top of a node"
                )
            check_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
    elif isinstance(value, str):
        if "${" in value:
            raise UnsafeNodeError(
                f"{where} = {value!r} is an interpolation; a received file holds plain values"
            )
    elif value is not None and not isinstance(value, bool | int | float):
        raise UnsafeNodeError(f"{where} holds a {type(value).__name__}; a received file holds plain values")


def check_received_node(
    node: Any, where: str, allowed: Callable[[str], bool] | None, allowed_text: str = ""
) -> dict[str, Any]:
    """A received node as a plain dict: its top-level ``_target_`` passes ``allowed`` (``None``: the node
    may not name a target at all), ``_partial_`` may stand beside it, and every other value is plain
    (:func:`check_plain`). Raises :class:`UnsafeNodeError` naming the field and what is allowed."""
    if not isinstance(node, Mapping):
        raise UnsafeNodeError(f"{where} must be a mapping, got {type(node).__name__}")
    out = dict(node)
    target = out.pop("_target_", None)
    partial = out.pop("_partial_", None)
    if allowed is None and target is not None:
        raise UnsafeNodeError(f"{where}._target_ {target!r}: this node may not name code to build")
    if allowed is not None and not (isinstance(target, str) and allowed(target)):
        raise UnsafeNodeError(
            f"{where}._target_ {target!r} is not {allowed_text or 'allowed'}; refusing to build it"
        )
    if partial is not None:
        check_switch(partial, f"{where}._partial_", UnsafeNodeError)
    check_plain(out, where)
    return dict(node)
