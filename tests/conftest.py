"""Shared fixtures: offline environment and Hydra config composition."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def compose_cfg(tmp_path) -> Callable:
    """Compose the root config with overrides, as the CLI would, with every path inside ``tmp_path``."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli import CONF_DIR

    def _compose(overrides: list[str] | None = None):
        GlobalHydra.instance().clear()
        base = [
            f"paths.root_dir={tmp_path}",
            f"paths.output_dir={tmp_path}/out",
            "logger=csv",
        ]
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose(config_name="config", overrides=base + list(overrides or []))

    yield _compose
    GlobalHydra.instance().clear()


@pytest.fixture
def multirun_job(tmp_path):
    """Hydra's runtime config of job 3 of a multirun (``-m``), as a sweep's job process has it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gastrodistill.cli import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", [f"paths.root_dir={tmp_path}"], return_hydra_config=True)
    cfg.hydra.mode, cfg.hydra.job.num = RunMode.MULTIRUN, 3
    HydraConfig.instance().set_config(cfg)
    yield
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


# The variables a launcher (torchrun, Lightning's own launcher, SLURM) leaves for each rank.
LAUNCHER_VARS = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "NODE_RANK",
    "MASTER_ADDR",
    "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_STEP_NUM_TASKS",
    "SLURM_JOB_NAME",
)


@pytest.fixture
def launcher_env(monkeypatch) -> Callable:
    """No launcher's variables in the environment; returns a setter of several at once
    (``launcher_env(RANK=1, WORLD_SIZE=2)``), undone after the test."""
    for name in LAUNCHER_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_vars(**values) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, str(value))

    return set_vars
