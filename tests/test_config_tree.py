"""Every option of every config group composes with the root config, and every ``_target_`` imports.

The options are discovered from ``conf/*/*.yaml`` when the tests are collected, so a new file is
covered without touching this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import get_object
from omegaconf import OmegaConf

from gastrodistill.cli import CONF_DIR

OPTIONS = sorted((p.parent.name, p.stem) for p in Path(CONF_DIR).glob("*/*.yaml"))


def _targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(config key, ``_target_`` value) for every node that names one, lists included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield where or "<root>", value
            else:
                yield from _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}[{i}]")


def test_the_tree_has_the_documented_groups():
    groups = {g for g, _ in OPTIONS}
    expected = {"paths", "synthetic", "data", "model", "distill", "eval", "audit", "trainer", "logger"}
    assert expected <= groups, f"missing config groups: {sorted(expected - groups)}"
    assert {("data", "gastric"), ("data", "folder"), ("data", "npz")} <= set(OPTIONS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_targets_import(compose_cfg, group: str, option: str):
    cfg = compose_cfg([f"{group}={option}"])
    # every value resolves (mandatory ``???`` values, e.g. data.root, may stay missing)
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict) and "seed" in container
    for key, target in _targets(container):
        assert isinstance(target, str) and target, f"{group}={option}: empty _target_ at {key}"
        try:
            get_object(target)
        except Exception as exc:  # noqa: BLE001 - report any import failure with its key
            pytest.fail(f"{group}={option}: _target_ {target!r} at {key} does not import: {exc}")
