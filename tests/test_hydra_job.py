"""``utils.hydra_job``: which job of a sweep this is, read from Hydra's runtime config, and what a refused
command is told to drop; the W&B run name's ``-job<N>`` follows it."""

from __future__ import annotations

import copy

import pytest

from gastrodistill.utils.hydra_job import new_run_folder_advice, sweep_job_number
from gastrodistill.utils.loggers import sweep_job_suffix


@pytest.fixture
def hydra_runtime(tmp_path):
    """Sets Hydra's runtime config as a job process has it: ``set(mode, num)``; cleared after the test."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from gastrodistill.cli import CONF_DIR

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        base = compose("config", [f"paths.root_dir={tmp_path}"], return_hydra_config=True)

    def set_job(mode, num) -> None:
        cfg = copy.deepcopy(base)
        cfg.hydra.mode = mode
        if num is not None:
            cfg.hydra.job.num = num
        HydraConfig.instance().set_config(cfg)

    yield set_job
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


def test_a_single_runs_job_is_no_sweeps_job(hydra_runtime):
    """A plain run has a job number too (0): kills the mode check dropped."""
    from hydra.types import RunMode

    hydra_runtime(RunMode.RUN, 0)
    assert sweep_job_number() is None and sweep_job_suffix() == ""
    assert new_run_folder_advice() == "drop hydra.run.dir or paths.output_dir"


def test_the_first_job_of_a_sweep_is_job_0(hydra_runtime):
    """Job 0 is a sweep's job like the others (kills a number read as true or false)."""
    from hydra.types import RunMode

    hydra_runtime(RunMode.MULTIRUN, 0)
    assert sweep_job_number() == 0 and sweep_job_suffix() == "-job0"
    assert new_run_folder_advice() == "drop hydra.sweep.dir, or give another"


def test_a_multirun_config_without_a_job_number_is_no_sweeps_job(hydra_runtime):
    """``hydra.job.num`` still missing (``???``): no number, not job 0."""
    from hydra.types import RunMode

    hydra_runtime(RunMode.MULTIRUN, None)
    assert sweep_job_number() is None and sweep_job_suffix() == ""
