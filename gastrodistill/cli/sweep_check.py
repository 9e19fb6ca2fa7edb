"""A sweep's jobs checked before the first one starts.

Hydra's basic sweeper runs a multirun's jobs one after another, and each job checks its values only when
it starts: ``-m distill.ipc=1,10,1O`` distilled two sets (hours at the paper's scale) before the third job
refused ``1O``. :func:`sweep_problem` expands the command line's sweep as Hydra does
(``BasicSweeper.split_arguments``), composes each job's config and runs the command's own value checks on
it (the ones its job runs first, before reading data: ``check_values`` in :mod:`.distill`,
:mod:`.evaluate`, :mod:`.audit` and :mod:`.reproduce`); the first refusal is printed with the job's
overrides and no job starts. At most :data:`MAX_CHECKED_JOBS` jobs are composed (about 0.2 s each): a
larger sweep is checked on jobs that together hold every swept value once (its values, not every
combination of them, are checked).

The check stands aside (the jobs then check themselves, as before) wherever it cannot answer as the job
would: a sweep Hydra's basic sweeper does not expand here (``glob(...)``, interval sweeps), flags the
override check stands aside for, a config that does not compose, and any error of a check that is not one
of the project's own (say, a value that needs Hydra's runtime, such as the job's output folder).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gastrodistill.cli.override_keys import command_line_config, composed_config, is_multirun

#: The largest number of a sweep's jobs composed and checked one by one (above: one job per swept value).
MAX_CHECKED_JOBS = 32
#: Hydra's launcher that runs a sweep's jobs in this process, one after another; with any other (a SLURM
#: launcher plugin, say) the jobs run elsewhere and this machine's devices say nothing of theirs.
LOCAL_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def sweep_jobs(args: list[str]) -> list[list[str]] | None:
    """The override lists of the jobs Hydra's basic sweeper would run for the overrides ``args`` (in its
    order), or None when they cannot be known here (an override Hydra cannot parse, a sweep it does not
    expand). Raises nothing."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(args)
        if not any(o.is_sweep_override() for o in parsed):
            return None
        (jobs,) = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # noqa: BLE001 - Hydra reports these itself when the multirun starts
        return None
    return [list(job) for job in jobs]


def jobs_to_check(jobs: list[list[str]], limit: int = MAX_CHECKED_JOBS) -> list[int]:
    """Indices (into ``jobs``, the full product of a sweep) of the jobs to compose: all of them up to
    ``limit``; else, for ``k`` up to the longest swept list, the job taking each override's ``k``-th value
    (cycling through shorter lists), so every swept value is checked in one job at least."""
    if len(jobs) <= limit:
        return list(range(len(jobs)))
    columns = [list(dict.fromkeys(job[i] for job in jobs)) for i in range(len(jobs[0]))]
    index = {tuple(job): n for n, job in enumerate(jobs)}
    longest = max(len(c) for c in columns)
    return [index[tuple(c[k % len(c)] for c in columns)] for k in range(longest)]


def _not_a_refusal(exc: BaseException) -> bool:
    """An error of OmegaConf or Hydra (an interpolation such as ``${hydra:job.num}``, which needs the job's
    runtime): the check cannot tell, the job will."""
    return type(exc).__module__.split(".")[0] in ("omegaconf", "hydra")


def sweep_problem(
    argv: list[str],
    conf_dir: str,
    config_name: str,
    check_values: Callable[[Any, Sequence[str], bool], None] | None,
    check_together: Callable[[list[tuple[str, Any]]], None] | None = None,
) -> str | None:
    """For a multirun command line ``argv`` (:func:`is_multirun`), the error line of the first job whose
    composed config ``check_values`` refuses, naming the job (its number, as Hydra numbers its jobs and
    their folders, and its swept overrides), else None. Then, when every job passed, ``check_together``
    (if given) on the checked jobs side by side, as ``("#<n> (<swept overrides>)", config)`` pairs in job
    order: a refusal of jobs that are fine alone but not in one sweep (say, each writing another synthetic
    collection into one folder) is its error line.

    ``check_values(cfg, overrides, here)``: the command's value checks on a job's composed config (no Hydra
    runtime: its ``${hydra:...}`` values do not resolve), with the job's override strings and whether it
    runs on this machine (Hydra's basic launcher: a check of this machine's devices holds). A refusal is
    one of the project's errors (:func:`gastrodistill.cli.errors.project_error`); anything else, OmegaConf's
    and Hydra's errors included, means "cannot tell here" and the job checks itself. What the checks print
    is not shown (the job prints it again). None when ``check_values`` is None. Raises nothing."""
    from hydra.core.global_hydra import GlobalHydra

    if check_values is None or not is_multirun(argv):
        return None
    if GlobalHydra.instance().is_initialized():  # never disturb a Hydra that is already running
        return None
    command = command_line_config(argv, config_name)
    if command is None:
        return None
    args, config_name, user_dir = command
    if user_dir and not (Path(conf_dir) / f"{config_name}.yaml").is_file():
        return None  # the user's own primary config: composed as Hydra would by the job itself
    jobs = sweep_jobs(args)
    if jobs is None:
        return None
    swept = [i for i in range(len(jobs[0])) if len({job[i] for job in jobs}) > 1]
    checked = []
    for n in jobs_to_check(jobs):
        text, cfg = _job_problem(conf_dir, config_name, user_dir, jobs[n], check_values)
        shown = " ".join(jobs[n][i] for i in swept)
        if text is not None:
            which = f"#{n} of {len(jobs)}" if not shuffled(args) else f"of {len(jobs)} (shuffled)"
            return f"{text} [sweep job {which}: {shown}; no job was started]"
        if cfg is not None:
            checked.append((f"#{n} ({shown})" if not shuffled(args) else f"({shown})", cfg))
    if check_together is not None and len(checked) > 1:
        text = _refusal_of(check_together, checked)
        if text is not None:
            return f"{text} [sweep of {len(jobs)} jobs; no job was started]"
    return None


def _refusal_of(check: Callable[..., None], *args: Any) -> str | None:
    """The project's error line ``check(*args)`` raises, else None (any other error: the jobs tell)."""
    from gastrodistill.cli.errors import message, project_error

    try:
        check(*args)
    except Exception as exc:  # noqa: BLE001 - only the project's own refusals count (sweep_problem)
        refusal = project_error(exc)
        if refusal is not None and not _not_a_refusal(refusal):
            return message(refusal)
    return None


def _job_problem(
    conf_dir: str,
    config_name: str,
    user_dir: str | None,
    overrides: list[str],
    check_values: Callable[[Any, Sequence[str], bool], None],
) -> tuple[str | None, Any]:
    """The error line ``check_values`` gives one job (:func:`sweep_problem`), or None, and the job's composed
    config without its ``hydra`` node (None when it does not compose)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    cfg = composed_config(conf_dir, config_name, user_dir, overrides, with_hydra=True)
    if cfg is None:
        return None, None
    here = OmegaConf.select(cfg, "hydra.launcher._target_") == LOCAL_LAUNCHER
    with open_dict(cfg):
        cfg.pop("hydra")  # the job's own config, as its task function gets it
    hydra_config, HydraConfig.instance().cfg = HydraConfig.instance().cfg, None  # ${hydra:...}: the job's
    quiet = open(os.devnull, "w")  # noqa: SIM115 - closed below
    try:
        with (
            quiet,
            contextlib.redirect_stdout(quiet),
            contextlib.redirect_stderr(quiet),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            return _refusal_of(check_values, cfg, list(overrides), here), cfg
    finally:
        HydraConfig.instance().cfg = hydra_config
        _restore_log_streams(quiet)


def _restore_log_streams(quiet: Any) -> None:
    """Undo what a library imported first during the check (Lightning, by ``check_values``) did to logging
    on the redirected stderr ``quiet``: with no root handler yet (Hydra configures logging per job,
    later), it added its own ``StreamHandler()`` on ``quiet`` and stopped propagating. Every sweep then
    printed "--- Logging error --- ... I/O operation on closed file" and its job logs lost Lightning's
    lines (a breaker's finding). Such a handler is removed and its logger propagates again, as when the
    library is first imported inside a job, after Hydra's logging is set up."""
    import logging

    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        made = [
            h
            for h in getattr(logger, "handlers", ())
            if isinstance(h, logging.StreamHandler) and h.stream is quiet
        ]
        for handler in made:
            logger.removeHandler(handler)
        if made and not logger.handlers:
            logger.propagate = True


def shuffled(args: list[str]) -> bool:
    """Whether a sweep of ``args`` is shuffled (``shuffle(...)``): its job numbers differ from run to run."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(args)
    except Exception:  # noqa: BLE001 - not reached: sweep_jobs parsed them
        return False
    return any(getattr(o.value(), "shuffle", False) for o in parsed if o.is_sweep_override())
