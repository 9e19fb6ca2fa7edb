"""The evaluation stage: fresh networks for every job, patch and patient metrics, the table and plots.

Read it in this order:

1. :mod:`~gastrodistill.evaluation.jobs`: the flat job list (method, schedule, architecture, network)
   from ``cfg.eval``, split across ranks and resumable;
2. :mod:`~gastrodistill.evaluation.splits`: the test, validation and fitting splits, read once;
3. :mod:`~gastrodistill.evaluation.study`: :class:`Study` trains the networks of one setting together
   (``torch.func`` ensembles, the loop as fallback; the full-data bound by a Lightning Trainer,
   :mod:`.full_data`);
4. :mod:`~gastrodistill.evaluation.scoring`: all networks of a setting scored in one pass per split;
5. this module: the stage itself (each rank's share of the jobs, worker processes, a stop's note, the
   merge of every record into the table), then :mod:`~gastrodistill.evaluation.report` and
   :mod:`~gastrodistill.evaluation.results`: records, ``networks.csv``, the table with paired differences,
   and the figures.

Methods: each distilled set (``replay`` and/or ``standard`` schedule, on its own architecture and on
others for cross-architecture generalisation) and the baselines (``full``: every real training patch,
the upper bound; ``random``: a random real subset of the distilled set's size; ``mean``: the per-class
mean images; ``random_soft``: a random real subset of that size labelled by a teacher trained on all
real data). Every small set is trained by one protocol (:class:`StandardSchedule`, the learning rate
chosen on validation patients). Nothing is chosen on test patients.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn

from gastrodistill.evaluation import report
from gastrodistill.evaluation.checks import check_distilled_sets
from gastrodistill.evaluation.jobs import (  # noqa: F401 - BASELINES re-exported for callers of this module
    BASELINES,
    SAME,
    EvaluationConfigError,
    build_jobs,
    pending,
    shard,
)
from gastrodistill.evaluation.networks import architecture_config, net_spec  # noqa: F401
from gastrodistill.evaluation.results import (  # noqa: F401 - re-exported for callers of this module
    headline,
    log_results,
    method_metrics,
    primary_rows,
    summarise,
    write_results,
)
from gastrodistill.evaluation.scoring import evaluate_network, val_selector  # noqa: F401
from gastrodistill.evaluation.splits import build_context  # noqa: F401
from gastrodistill.evaluation.study import Study, study_record_settings
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import derive_seed, torch_generator

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule

log = logging.getLogger(__name__)

__all__ = [
    "BASELINES",
    "SAME",
    "EvaluationConfigError",
    "Study",
    "build_context",
    "check_finished_networks",
    "current_results",
    "evaluate_network",
    "finalize",
    "headline",
    "method_metrics",
    "net_spec",
    "run_evaluation",
    "run_jobs",
    "run_reference_job",
    "saved_reference",
    "train_full_network",
    "val_selector",
]


def check_finished_networks(
    cfg: DictConfig,
    dm: ImageDataModule,
    sets: Mapping[str, Any],
    out: str | Path,
    skip_methods: Sequence[str] = (),
) -> None:
    """Refuse the evaluation folder ``out`` when its finished networks were trained with other settings than
    this study's (:meth:`RecordSettings.check`), without building a :class:`Study` (no split is copied):
    what ``reproduce`` checks before it rewrites a run folder's record. ``skip_methods``: sets whose
    networks are not checked (a resume is about to change them, and retires their networks). Raises
    :class:`EvaluationConfigError` naming the keys."""
    record_settings = study_record_settings(cfg, dm, sets)
    skip = tuple(f"{m}__" for m in skip_methods)
    finished = {k for k in report.finished_jobs(out) if not (skip and k.startswith(skip))}
    jobs = [j for j in build_jobs(cfg.eval, list(sets)) if j.method not in skip_methods]
    record_settings.check(Path(out), finished, jobs)


def current_results(
    cfg: DictConfig, datamodule: ImageDataModule, distilled_sets: Mapping[str, Any], output_dir: str | Path
) -> pd.DataFrame | None:
    """The table (``results.csv``) an earlier evaluation wrote in ``output_dir`` when it is this study's:
    every job of ``cfg.eval`` for ``distilled_sets`` (:func:`build_jobs`) has a finished record whose
    settings are this config's for these sets (:meth:`RecordSettings.matches`: the same set contents, patch
    store and recipe), and the table was written after the newest of those records; else None (no table, a
    job missing or trained with other settings, a record written after the table, a table that cannot be
    read).

    ``reproduce 'stages=[audit]'`` joins the audit's numbers to it and ``'stages=[artifact]'`` publishes its
    numbers on the cards, as a whole run does. Reads no split."""
    from gastrodistill.evaluation.record_settings import settings_path

    out = Path(output_dir)
    table = out / report.RESULTS_CSV
    if not table.is_file():
        return None
    jobs = build_jobs(cfg.eval, list(distilled_sets))
    finished = report.finished_jobs(out)
    if not jobs or any(j.key not in finished for j in jobs):
        return None
    if report.unfinished_evaluation(out, [j.key for j in jobs]) is not None:  # a record after the table
        return None
    settings = study_record_settings(cfg, datamodule, distilled_sets)
    if not all(settings.matches(settings_path(out, j.key), j) for j in jobs):
        return None
    try:
        return pd.read_csv(table)
    except (OSError, ValueError):
        return None


# ---- the stage ------------------------------------------------------------------------------------
def _prepare(dm: ImageDataModule) -> None:
    if not hasattr(dm, "num_classes"):
        dm.prepare_data()
        dm.setup()


def training_threads(cfg: DictConfig, world_size: int = 1) -> int:
    """The torch intra-op threads each evaluation network trains with: ``eval.num_threads`` when set, else
    1 in worker processes (``eval.processes`` > 1 on one rank) and this process's count otherwise. The
    networks, and so every figure, are bit-for-bit the same only at the same count (``run_info.json``)."""
    if cfg.eval.get("num_threads"):
        return int(cfg.eval.num_threads)
    if int(cfg.eval.get("processes") or 1) > 1 and world_size == 1:
        return 1
    return torch.get_num_threads()


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Within the block torch uses ``threads`` intra-op threads; the previous count is restored after it."""
    before = torch.get_num_threads()
    if threads != before:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads != before:
            torch.set_num_threads(before)


def run_jobs(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    rank: int = 0,
    world_size: int = 1,
    study: Study | None = None,
) -> Study:
    """Run this rank's share (``jobs[rank::world_size]``) of the unfinished jobs; records go to
    ``output_dir/records``. Returns the :class:`Study` (its ``records`` are this call's). With one rank and
    ``eval.processes`` > 1 the jobs run in that many worker processes (same records). Jobs run here train
    with :func:`training_threads` torch threads (set for the call, then restored)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    _prepare(datamodule)

    check_distilled_sets(distilled_sets, datamodule)
    study = study or Study(
        cfg, datamodule, distilled_sets, out, progress=bool(cfg.eval.get("progress", True))
    )
    study.write_progress = world_size == 1  # ranks share the folder: rank 0 writes networks.csv at the end
    every = build_jobs(cfg.eval, list(distilled_sets))
    if not every:
        raise EvaluationConfigError(
            "nothing to evaluate: no distilled set and no baseline (eval.baselines.methods is empty); give "
            "eval.distilled_dirs or list baselines, e.g. eval.baselines.methods=[full]"
        )
    study.check_jobs(every)  # all of them: finished records of a same-named network would share a row
    study.check_finished(every)  # finished networks trained with other settings would share the table
    jobs = shard(every, rank, world_size)
    todo = pending(jobs, report.finished_jobs(out))
    # its job is to be trained again, or it was trained with other settings: never hand out that teacher
    study.drop_stale_reference(retrain=Study.REFERENCE_JOB in todo)
    processes = int(cfg.eval.get("processes") or 1)
    if processes > 1 and world_size == 1 and len(todo) > 1:
        from gastrodistill.evaluation.processes import run_in_processes

        study.check_jobs(todo)
        done = run_in_processes(
            cfg,
            datamodule,
            distilled_sets,
            out,
            todo,
            processes,
            reference_done=(out / Study.REFERENCE_FILE).is_file(),
            progress=study.progress,
        )
        study.selected.update(done["selected"])
        study.timings += done["timings"]
        study.records = report.load_records(out, [j.key for j in todo])
        return study
    # the workers' count also when the jobs left run here (a re-run with one job left): the same networks
    with torch_threads(training_threads(cfg, world_size)):
        study.run(todo)
    return study


def finalize(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    loggers: list[Logger] | None = None,
    study: Study | None = None,
) -> pd.DataFrame:
    """Merge the records of every job (all ranks), write ``networks.csv``, ``results.{csv,md}``,
    ``selection.json`` and the plots, and log the table. Raises ``FileNotFoundError`` for a missing job."""
    out = Path(output_dir)
    listed = out / report.RESULTS_SOURCES
    if listed.exists() and not listed.is_file():  # a folder there would stop the write after the table
        raise EvaluationConfigError(  # refused before the table is written: the two stay one pair
            f"{listed} is not a file (the list of records results.csv is computed from, which this stage "
            "writes): remove it and run the evaluate stage again; no network is trained again"
        )
    _prepare(datamodule)
    study = study or Study(cfg, datamodule, distilled_sets, out, progress=False)
    jobs = build_jobs(cfg.eval, list(distilled_sets))
    records = report.load_records(out, [j.key for j in jobs])
    sources = report.record_digests(out, [j.key for j in jobs])  # the records as this table reads them
    report.write_network_records(records, out / report.NETWORKS_CSV)
    sizes = study.sizes()
    df = summarise(
        records,
        sizes,
        sizes["full"]["bytes"],
        int(cfg.seed),
        int(cfg.eval.bootstrap),
        float(cfg.eval.ci_level),
    )
    df.insert(3, "cross_architecture", df["architecture"] != study.primary)
    write_results(df, out, title=f"Results: {cfg.experiment_name}", max_ci_width=cfg.eval.get("max_ci_width"))
    report.write_results_sources(out, sources)  # after the table: a stop between them reads as unfinished
    write_text_atomic(
        out / "selection.json",
        json.dumps(
            {
                "threshold_source": str(cfg.eval.threshold_source),
                "standard_lr": {
                    f"{r['method']}/{r['architecture']}": r["lr"]
                    for r in records
                    if "lr" in r and r["network"] == 0
                },
                "standard_lr_selection": study.selected,
                "seed_scheme": "derive_seed(seed, 'eval', method, schedule, arch, index)",
                "bootstrap_seed_scheme": "derive_seed(seed, 'bootstrap', row_id[, 'minus', partner_row_id])",
                "eval_seed_example": derive_seed(int(cfg.seed), "eval", "soft", "replay", SAME, 0),
            },
            indent=2,
            default=str,
        ),
    )
    figures = report.make_plots(
        records, study.sets, datamodule, study.primary, study.ctx.patients, out / "plots"
    )
    if loggers:
        log_results(loggers, df)
        for lg in loggers:
            if isinstance(lg, WandbLogger):
                for key, path in figures.items():
                    lg.log_image(key=f"plots/{key}", images=[str(path)])
    return df


def run_evaluation(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    loggers: list[Logger] | None = None,
    state: dict[str, Any] | None = None,
    rank: int = 0,
    world_size: int = 1,
    barrier: Callable[[], None] | None = None,
) -> pd.DataFrame | None:
    """Evaluate every distilled set and the baselines; write ``results.{csv,md}``, plots and logs.

    ``distilled_sets`` maps a method name (e.g. ``soft``, ``hard``) to a ``DistilledSet``. Each rank runs
    ``jobs[rank::world_size]`` (unfinished ones only); after ``barrier()`` (needed when ``world_size`` > 1)
    rank 0 merges every record and returns the table (one row per method, schedule and architecture);
    other ranks return ``None``. When ``state`` is given, the reference network (job
    ``full__real__same__0``, trained here or saved by an earlier run) is left in ``state["real_model"]`` for
    later stages (the audit). ``eval.processes`` > 1 (one process only): the settings run in that many
    worker processes (:mod:`gastrodistill.evaluation.processes`), with the same records.
    """
    out = Path(output_dir)
    _prepare(datamodule)
    check_distilled_sets(distilled_sets, datamodule)  # refuse before anything is written
    out.mkdir(parents=True, exist_ok=True)
    study = Study(cfg, datamodule, distilled_sets, out, progress=bool(cfg.eval.get("progress", True)))
    study.check_finished(build_jobs(cfg.eval, list(distilled_sets)))  # before any network trains
    try:
        study = run_jobs(cfg, datamodule, distilled_sets, out, rank, world_size, study)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM (cli.errors): say what is kept and how to go on
        if rank == 0:
            print_kept_networks(out)
        raise
    if barrier is not None:
        barrier()
    elif world_size > 1:
        raise EvaluationConfigError("run_evaluation with world_size > 1 needs a barrier between the ranks")
    if state is not None:  # the reference network for the audit, when this run trained or saved one
        saved = (out / Study.REFERENCE_FILE).is_file()
        state["real_model"] = study.reference() if study.reference_net is not None or saved else None
    if rank != 0:
        return None
    own_loggers = loggers is None
    loggers = stage_loggers(cfg, "evaluation") if own_loggers else loggers
    failed = True
    try:
        log_public_hyperparams(loggers, cfg)
        df = finalize(cfg, datamodule, distilled_sets, out, loggers, study)
        # the stage's record describes the results table beside it: written with it, so a re-run stopped
        # midway leaves the earlier table's record (each finished network keeps its own settings file)
        threads = training_threads(cfg, world_size)
        save_run_info(out, cfg, extra={"stage": "evaluate", "training_threads": threads})
        failed = False
    finally:
        if own_loggers:  # closed also when the stage fails (marked failed then)
            finish_loggers(loggers, failed)
    return df


def print_kept_networks(out: Path) -> None:
    """After a stopped evaluation in ``out`` (a run folder, or ``<run>/eval`` of ``gastrodistill-reproduce``):
    say on stderr how many of its networks finished (their records, :func:`report.finished_jobs`) and how
    to go on: the same evaluation in that run folder trains only the others."""
    import sys

    from gastrodistill.evaluation.over_runs import finish_command

    n = len(report.finished_jobs(out))
    text = (
        f"{n} network(s) of this evaluation finished and are kept in {out / report.RECORDS}: "
        f"{finish_command(out)} trains only the others"
        if n
        else "no network of this evaluation finished: it starts again"
    )
    print(f"note: {text}", file=sys.stderr, flush=True)


def run_reference_job(cfg: DictConfig, datamodule: ImageDataModule, output_dir: str | Path) -> bool:
    """Train and score the evaluation's reference network (job ``full__real__same__0``) ahead of the
    evaluation, into ``output_dir`` (its record under ``records/`` and ``reference.safetensors``), with the
    torch thread count the evaluation would train it with (:func:`training_threads`), so its record is the
    one :func:`run_evaluation` would write; that stage then finds the job finished and skips it.

    ``reproduce`` runs it beside the texture-matching teacher, on a core the distillation leaves idle. It
    needs no distilled set: the distillation architecture is the configured model (what a set distilled
    from ``cfg`` records). Returns False, doing nothing, when the job is not part of the evaluation
    (no ``full`` baseline) or is already finished in ``output_dir``.
    """
    out = Path(output_dir)
    job = Study.REFERENCE_JOB
    if job not in build_jobs(cfg.eval, []) or job.key in report.finished_jobs(out):
        return False
    out.mkdir(parents=True, exist_ok=True)
    _prepare(datamodule)
    with torch_threads(training_threads(cfg)):
        study = Study(cfg, datamodule, {}, out, progress=False)
        study.check_finished([job])  # a folder of other settings: refused before the network trains
        study.write_progress = False  # the evaluation writes networks.csv when it merges every record
        study.run_setting(job.setting, [job])
    return True


def saved_reference(
    cfg: DictConfig, datamodule: ImageDataModule, distilled_sets: Mapping[str, Any], output_dir: str | Path
) -> nn.Module | None:
    """The reference network an earlier evaluation saved in ``output_dir`` (``Study.REFERENCE_FILE``) when
    it was trained with this config's settings for ``distilled_sets`` (``Study.reference_is_current``),
    else None (no file, or another recipe). ``reproduce 'stages=[audit]'`` attacks it, as a whole run's
    audit attacks the evaluation's network, instead of training another one."""
    out = Path(output_dir)
    if not (out / Study.REFERENCE_FILE).is_file():
        return None
    _prepare(datamodule)
    study = Study(cfg, datamodule, distilled_sets, out, progress=False)
    return study.reference() if study.reference_is_current() else None


def train_full_network(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    seed_parts: Sequence[Any],
    epochs: int | None = None,
    progress: bool = False,
) -> tuple[nn.Module, dict[str, float]]:
    """One network of the distillation architecture trained by the full-data recipe (``eval.baselines.real``,
    ``epochs`` overridden when given), seeded by ``(seed, *seed_parts)``: the audit's reference network.
    ``progress``: Lightning's progress bar while it trains."""
    _prepare(datamodule)
    if epochs is not None:
        cfg = OmegaConf.merge(cfg, {"eval": {"baselines": {"real": {"epochs": int(epochs)}}}})
    study = Study(cfg, datamodule, {}, None, progress=progress)
    net = study.spec(SAME).build(torch_generator(int(cfg.seed), *seed_parts))
    return study.train_full(net, tuple(seed_parts))


def architecture_of(cfg: DictConfig, arch: str) -> DictConfig:
    """The model config of a ``conf/model`` name (kept for callers of the old module)."""
    return architecture_config(cfg, arch)
