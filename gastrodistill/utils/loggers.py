"""Experiment loggers built from ``conf/logger``: CSV always, W&B offline unless the user opts in.

The W&B logger is created with code saving, git metadata and machine/host metadata switched off,
and the run record's host and user names left blank, so neither file paths nor host or user names
reach a run; hyper-parameters go through ``public_config``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from pytorch_lightning.loggers import Logger, WandbLogger

from gastrodistill.utils.privacy import public_config


def private_wandb_logger(
    project: str = "gastrodistill",
    group: str | None = None,
    save_dir: str | os.PathLike = ".",
    offline: bool = True,
    name: str | None = None,
    tags: list[str] | None = None,
    job_type: str | None = None,
) -> WandbLogger:
    """A ``WandbLogger`` that records no code, git, host or program path; offline unless WANDB_MODE=online
    and ``offline`` is false; with WANDB_MODE=disabled (W&B's own switch) it writes nothing at all."""
    import wandb

    Path(save_dir).mkdir(parents=True, exist_ok=True)
    mode = os.environ.get("WANDB_MODE", "offline")
    online = mode == "online" and not offline
    disabled = {"mode": "disabled"} if mode == "disabled" else {}
    settings = wandb.Settings(
        disable_code=True,
        disable_git=True,
        disable_job_creation=True,
        save_code=False,
        x_disable_meta=True,
        x_disable_stats=True,
        x_disable_machine_info=True,
        console="off",
        silent=True,
        host="",  # W&B fills these with the machine's and the user's names otherwise
        username="",
    )
    logger = WandbLogger(
        project=project,
        group=group,
        name=name,
        save_dir=str(save_dir),
        offline=not (online or disabled),  # offline=True makes Lightning set WANDB_MODE=dryrun
        tags=list(tags or []),
        job_type=job_type,
        settings=settings,
        **disabled,
    )
    # Lightning passes `anonymous=None` to wandb.init, which W&B 0.31 answers with a deprecation warning on
    # every run ("The anonymous setting has no effect"); the key is left out instead
    getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def instantiate_loggers(logger_cfg: DictConfig | Mapping[str, Any] | None) -> list[Logger]:
    """Build every logger under ``cfg.logger`` (a mapping of name -> config with ``_target_``)."""
    loggers: list[Logger] = []
    if not logger_cfg:
        return loggers
    for _, conf in logger_cfg.items():
        if isinstance(conf, Mapping | DictConfig) and "_target_" in conf:
            loggers.append(hydra.utils.instantiate(conf))
    return loggers


def free_csv_version(save_dir: str | Path, name: str | None, stage: str) -> str:
    """The CSV logger's version folder for ``stage``: ``stage`` itself, or ``stage-2``, ``stage-3``, ... when
    ``<save_dir>/<name>/<stage>`` already holds a ``metrics.csv``. Lightning's ``CSVLogger`` deletes the
    ``metrics.csv`` of a version folder it is given, so a stage run again in the same run folder (a resumed
    distillation, an evaluate-only ``reproduce``) would lose the earlier attempt's log; a folder with only
    ``hparams.yaml`` (an attempt that logged nothing) is used again. Every rank computes this, and a later
    rank may see rank 0's new folder and pick the next name: harmless, since only rank 0 writes CSV logs."""
    root = Path(save_dir) / (name or "")
    version, attempt = stage, 1
    while (root / version / "metrics.csv").is_file():
        attempt += 1
        version = f"{stage}-{attempt}"
    return version


def sweep_job_suffix() -> str:
    """``-job<N>`` in job N of a Hydra multirun (``-m``; its folder ``multiruns/<time>/<N>``), else empty."""
    from gastrodistill.utils.hydra_job import sweep_job_number

    job = sweep_job_number()
    return "" if job is None else f"-job{job}"


def stage_loggers(cfg: DictConfig, stage: str) -> list[Logger]:
    """The configured loggers for one stage of a run: CSV in its own version folder (a new one for each
    attempt, :func:`free_csv_version`), W&B as its own job, named ``<name>-<stage>`` (``name``:
    ``logger.wandb.name``, else ``experiment_name``), with ``-job<N>`` in a sweep's job N
    (:func:`sweep_job_suffix`), so the runs of a sweep can be told apart."""
    loggers: list[Logger] = []
    for key, conf in (cfg.get("logger") or {}).items():
        if not isinstance(conf, Mapping | DictConfig) or "_target_" not in conf:
            continue
        target = str(conf["_target_"])
        if target.endswith("CSVLogger"):
            version = free_csv_version(conf.get("save_dir") or ".", conf.get("name", "lightning_logs"), stage)
            loggers.append(hydra.utils.instantiate(conf, version=version))
        elif "wandb" in target.lower():
            name = f"{conf.get('name') or cfg.experiment_name}-{stage}{sweep_job_suffix()}"
            loggers.append(hydra.utils.instantiate(conf, name=name, job_type=stage))
        else:
            loggers.extend(instantiate_loggers({key: conf}))
    return loggers


def log_public_hyperparams(loggers: list[Logger], cfg: DictConfig) -> None:
    """Log the config without paths or identifiers, and the code's git revision (``git_revision``,
    :func:`gastrodistill.utils.run_info.git_revision`: a commit hash, ``-dirty`` with uncommitted changes),
    which W&B's own git record (switched off: it holds the remote's URL) would have given."""
    from gastrodistill.utils.run_info import git_revision

    params = {**public_config(cfg), "git_revision": git_revision()}
    for lg in loggers:
        lg.log_hyperparams(params)


def finish_loggers(loggers: list[Logger], failed: bool = False) -> None:
    """Finalise every logger (status ``success``, or ``failed``) and end the W&B run a W&B logger started,
    with exit code 0, or 1 when the stage ``failed`` (an error, Ctrl-C, SIGTERM), so that W&B marks such a
    run failed instead of finished (a sweep's broken jobs looked successful)."""
    for lg in loggers:
        lg.finalize("failed" if failed else "success")
        if isinstance(lg, WandbLogger):
            import wandb

            if wandb.run is not None:
                wandb.finish(exit_code=1 if failed else 0)
