"""A command-line override of a key the config does not have: named, with the nearest keys, before Hydra.

Hydra answers ``distill.ipcc=3`` with "To append to your config use +distill.ipcc=3", which is the wrong
advice for a typo: the run would then ignore the value. :func:`check_override_keys` (one decorator line
above ``@hydra.main``) composes the config with the command line's group choices (``data=npz``,
``experiment=cpu``; about 0.2 s), looks up every plain ``key=value`` override in it and, for a key that
is not there, prints one line naming it and the closest existing keys (``difflib``), then exits with
status 1 before Hydra starts. Overrides Hydra treats specially are left to Hydra: ``+key``/``++key``/
``~key``, ``hydra.*``, group choices, and anything the override parser or the composition refuses.
"""

from __future__ import annotations

import difflib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gastrodistill.cli.errors import EXIT_STATUS


def _dotted_keys(node: Any, prefix: str = "") -> Iterator[str]:
    """Every key path of a plain container (``to_container``), parents included (``distill``,
    ``distill.ipc``, ...); list items as their index."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for k, v in items:
        key = f"{prefix}{k}"
        yield key
        yield from _dotted_keys(v, f"{key}.")


def _has_key(node: Any, key: str) -> bool:
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def unknown_key_message(overrides: list[str], conf_dir: str, config_name: str = "config") -> str | None:
    """The error line for the first plain override whose key the composed config lacks, else None.

    ``overrides``: command-line arguments (flags such as ``-m`` are ignored). Returns None whenever the
    question cannot be answered here (unparsable overrides, a composition error): Hydra then reports.
    """
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    args = [a for a in overrides if "=" in a and not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except Exception:  # noqa: BLE001 - Hydra's own message is the right one for a malformed override
        return None
    groups, values = [], []
    for text, o in zip(args, parsed, strict=True):
        key = o.key_or_group
        hydra_own = key.split("/")[0].split(".")[0] == "hydra"  # hydra.run.dir, hydra/launcher=...
        if o.is_add() or o.is_force_add() or o.is_delete() or hydra_own or o.package:
            continue
        is_group = "/" in key or (Path(conf_dir) / key).is_dir()  # a/b=c always names a config group
        (groups if is_group else values).append((text, key))
    if not values:
        return None
    was_initialized = GlobalHydra.instance().is_initialized()
    if was_initialized:  # never disturb a Hydra that is already running (tests, notebooks)
        return None
    try:
        with initialize_config_dir(config_dir=conf_dir, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=[t for t, _ in groups])
        tree = OmegaConf.to_container(cfg, resolve=False)
    except Exception:  # noqa: BLE001 - a bad group choice: Hydra's message names it
        return None
    finally:
        GlobalHydra.instance().clear()
    known = list(_dotted_keys(tree))
    for text, key in values:
        if _has_key(tree, key):
            continue
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.75)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        return (
            f"error: {text}: the config has no key {key!r}{hint} (`--cfg job` lists every key; a key of "
            f"your own is added with +{text})"
        )
    return None


def check_override_keys(conf_dir: str, config_name: str = "config") -> Callable:
    """Decorator for a ``@hydra.main`` function: refuse an override of an unknown key (module docstring)."""

    def decorate(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            text = unknown_key_message(sys.argv[1:], conf_dir, config_name)
            if text is not None:
                print(text, file=sys.stderr)
                raise SystemExit(EXIT_STATUS)
            return main(*args, **kwargs)

        return wrapper

    return decorate
