"""What Hydra says of the running job: whether it is a job of a sweep (``-m``), and which."""

from __future__ import annotations


def sweep_job_number() -> int | None:
    """The number N of this job in a Hydra multirun (its folder ``<hydra.sweep.dir>/<N>``), or None in a
    single run, or outside Hydra (a function called from Python)."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
            return None
        return int(HydraConfig.get().job.num)
    except Exception:  # noqa: BLE001 - a Hydra config without a job number: no sweep's job
        return None


def new_run_folder_advice() -> str:
    """How a refused command starts in a new run folder: by dropping the folder it was given,
    ``hydra.sweep.dir`` for a sweep's job (whose folder is ``<hydra.sweep.dir>/<N>``), else
    ``hydra.run.dir`` or ``paths.output_dir``."""
    if sweep_job_number() is not None:
        return "drop hydra.sweep.dir, or give another"
    return "drop hydra.run.dir or paths.output_dir"
