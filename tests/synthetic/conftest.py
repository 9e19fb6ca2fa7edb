"""A tiny synthetic collection generated once per session through the real config path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """``conf/synthetic/tiny.yaml`` composed from the root config and instantiated (writes the folder)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import instantiate

    from gastrodistill.cli import CONF_DIR

    base = tmp_path_factory.mktemp("tiny")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["synthetic=tiny", f"paths.root_dir={base}", "seed=11"])
    GlobalHydra.instance().clear()
    root = Path(instantiate(cfg.synthetic))
    assert root == base / "data" / "synthetic" / "tiny"
    return root
