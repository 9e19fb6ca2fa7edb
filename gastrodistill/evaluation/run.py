"""The evaluation stage: fresh networks for every job, patch and patient metrics, the table and plots.

Read it in this order:

1. :mod:`~gastrodistill.evaluation.jobs`: the flat job list (method, schedule, architecture, network)
   from ``cfg.eval``, split across ranks and resumable;
2. :mod:`~gastrodistill.evaluation.splits`: the test, validation and fitting splits, read once;
3. :class:`Study` (here): trains the networks of one setting together (``torch.func`` ensembles, the
   loop as fallback; the full-data bound by a Lightning Trainer, :mod:`.full_data`);
4. :mod:`~gastrodistill.evaluation.scoring`: all networks of a setting scored in one pass per split;
5. :mod:`~gastrodistill.evaluation.report` and :mod:`~gastrodistill.evaluation.results`: records,
   ``networks.csv``, the table with paired differences, and the figures.

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
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn
from tqdm.auto import tqdm

from gastrodistill.evaluation import baselines, report
from gastrodistill.evaluation.checks import check_distilled_sets
from gastrodistill.evaluation.ensemble import (
    Ensemble,
    check_finite,
    supports_ensemble,
    train_or_learned_nothing,
    train_replays,
    train_small_sets,
    trains_as_ensemble,
)
from gastrodistill.evaluation.fresh_training import (
    NetSpec,
    distilled_tensors,
    standard_schedule,
    train_replay,
    train_small_set,
)
from gastrodistill.evaluation.full_data import RealRecipe, in_memory, train_full_data
from gastrodistill.evaluation.jobs import (
    BASELINES,
    RANDOM_SUBSET_BASELINES,
    REAL_SCHEDULE,
    SAME,
    EvaluationConfigError,
    Job,
    as_list,
    build_jobs,
    by_setting,
    pending,
    shard,
)
from gastrodistill.evaluation.networks import architecture_config, check_distinct, net_spec
from gastrodistill.evaluation.record_settings import RecordSettings, study_settings
from gastrodistill.evaluation.results import (  # noqa: F401 - re-exported for callers of this module
    headline,
    log_results,
    method_metrics,
    primary_rows,
    summarise,
    write_results,
)
from gastrodistill.evaluation.scoring import evaluate_network, score_networks, val_scores, val_selector  # noqa: F401
from gastrodistill.evaluation.splits import Context, build_context, check_random_subset_size  # noqa: F401
from gastrodistill.models.weights import load_weights, save_weights
from gastrodistill.models.zca import without_zca_kernel
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.privacy import public_config
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import derive_seed, torch_generator

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet

log = logging.getLogger(__name__)

__all__ = [
    "BASELINES",
    "SAME",
    "EvaluationConfigError",
    "Study",
    "build_context",
    "evaluate_network",
    "finalize",
    "headline",
    "method_metrics",
    "net_spec",
    "run_evaluation",
    "run_jobs",
    "val_selector",
]


def real_recipe(ev: DictConfig) -> RealRecipe:
    """``eval.baselines.real`` as a :class:`RealRecipe`."""
    return RealRecipe(**OmegaConf.to_container(ev.baselines.real, resolve=True))


def recorded_model(ds: DistilledSet) -> dict[str, Any] | None:
    """The model config a distilled set records (``_target_`` and kwargs), if any."""
    m = getattr(ds, "model_config", None)
    return dict(m) if m else None


def ensemble_mode(value: Any, device: torch.device) -> bool:
    """``eval.ensemble``: ``auto`` (ensembles on CUDA; on the CPU the loop, measured faster there for
    LeNet and inference), ``true`` (wherever the architecture allows) or ``false`` (always the loop)."""
    if isinstance(value, bool):
        return value
    if str(value).lower() == "auto":
        return torch.device(device).type == "cuda"
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise EvaluationConfigError(f"eval.ensemble = {value!r}; use auto, true or false")


def random_per_class(ev: DictConfig, sets: Mapping[str, Any], num_classes: int) -> int:
    """Real images per class of the random-subset baselines: ``eval.baselines.n_per_class``, else the first
    set's images / classes. Raises :class:`EvaluationConfigError` when there is neither."""
    n = ev.baselines.get("n_per_class")
    if n is not None:
        return int(n)
    if not sets:
        raise EvaluationConfigError(
            "eval.baselines.n_per_class is needed for the 'random' baselines without a distilled set: "
            "set it (e.g. eval.baselines.n_per_class=10), give eval.distilled_dirs, or leave random "
            "and random_soft out of eval.baselines.methods"
        )
    first = next(iter(sets.values()))
    return max(1, int(first.images.shape[0]) // num_classes)


def other_architecture(cfg: DictConfig, ds: DistilledSet) -> dict[str, Any] | None:
    """The model config ``ds`` records without its ZCA filter (its architecture) when it is not ``model.*``,
    else None (also for a set that records no model)."""
    recorded = recorded_model(ds)
    architecture = dict(without_zca_kernel(recorded)) if recorded else None
    return architecture if architecture and architecture != public_config(cfg.model) else None


def baseline_model(cfg: DictConfig, sets: Mapping[str, Any]) -> dict[str, Any] | None:
    """The architecture the baselines' ``same`` networks are built from when it is not ``model.*``: the
    first set's :func:`other_architecture` (the baselines take the data's ZCA filter, ``data.zca``); else
    None."""
    first = next(iter(sets.values()), None)
    return other_architecture(cfg, first) if first is not None else None


def study_record_settings(cfg: DictConfig, dm: ImageDataModule, sets: Mapping[str, Any]) -> RecordSettings:
    """The settings of every job of a study of ``sets`` on ``dm`` (:class:`RecordSettings`); reads no
    split into memory."""
    return RecordSettings(
        study_settings(cfg, dm),
        sets,
        lambda: random_per_class(cfg.eval, sets, dm.num_classes),
        lambda arch: OmegaConf.to_container(architecture_config(cfg, arch), resolve=True),
        baseline_model(cfg, sets),
    )


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


class Study:
    """Trains and scores the jobs of one process; every network is seeded by its own job.

    ``gen(method, schedule, arch, index)`` is ``torch_generator(seed, 'eval', method, schedule, arch,
    index)``: a network's weights depend on its job only, never on the rank or its ensemble.
    """

    def __init__(
        self,
        cfg: DictConfig,
        dm: ImageDataModule,
        distilled_sets: Mapping[str, Any],
        out: str | Path | None = None,
        progress: bool = True,
    ) -> None:
        self.cfg, self.ev, self.dm, self.sets = cfg, cfg.eval, dm, dict(distilled_sets)
        self.out = Path(out) if out is not None else None
        self.ctx = build_context(cfg, dm)
        self.progress = progress
        self.records: list[dict[str, Any]] = []
        self.selected: dict[str, Any] = {}
        self.specs: dict[tuple[str, str], NetSpec] = {}
        self._train: tuple[torch.Tensor, torch.Tensor] | None = None
        self._means: tuple[torch.Tensor, torch.Tensor] | None = None
        self.reference_net: nn.Module | None = None  # the first full-data network (reused by the audit)
        self.use_ensembles = ensemble_mode(self.ev.get("ensemble", "auto"), self.ctx.test.device)
        # score every network of a setting in one pass (False: one network at a time, as before)
        self.score_together = bool(self.ev.get("score_together", True))
        self._vmappable: dict[NetSpec, bool] = {}
        self.timings: list[dict[str, Any]] = []  # seconds per setting (training, scoring)
        self.write_progress = True  # rewrite networks.csv after every setting (single-process runs)
        self.diverged: weakref.WeakSet[nn.Module] = weakref.WeakSet()  # trained into a non-finite loss
        self._record_settings: RecordSettings | None = None

    # -- networks ----------------------------------------------------------------------------------
    def owner(self, method: str) -> str | None:
        """The set whose recorded architecture ``same`` means for ``method`` (baselines: the first set)."""
        if method in self.sets:
            return method
        return next(iter(self.sets), None)

    def spec(self, arch: str, method: str | None = None) -> NetSpec:
        """How to build networks of ``arch`` for ``method`` (``same``: its owner set's recorded model)."""
        owner = self.owner(method) if method is not None else next(iter(self.sets), None)
        owner_model = recorded_model(self.sets[owner]) if owner is not None else None
        recorded = owner_model if arch == SAME else None
        # a set's networks of every architecture see its own ZCA filter (or none); the baselines the data's
        zca_of = (owner_model or {}) if method in self.sets else None
        key = (arch, json.dumps([recorded, zca_of], sort_keys=True, default=str))
        if key not in self.specs:
            self.specs[key] = net_spec(self.cfg, arch, self.dm, recorded, zca_of=zca_of)
        return self.specs[key]

    @property
    def record_settings(self) -> RecordSettings:
        """What each job's record depends on (:mod:`gastrodistill.evaluation.record_settings`)."""
        if self._record_settings is None:
            self._record_settings = study_record_settings(self.cfg, self.dm, self.sets)
        return self._record_settings

    def check_finished(self, jobs: Sequence[Job]) -> None:
        """Refuse, before anything trains or is written, an output folder whose finished networks were
        trained with other settings than this study's (:meth:`RecordSettings.check`)."""
        if self.out is not None:
            self.record_settings.check(self.out, report.finished_jobs(self.out), jobs)

    @property
    def primary(self) -> str:
        """The distillation architecture's name (rows on other architectures are cross-architecture)."""
        return self.spec(SAME).name

    def gen(self, *parts: int | str) -> torch.Generator:
        """A CPU generator seeded by ``(seed, "eval", *parts)``."""
        return torch_generator(int(self.cfg.seed), "eval", *parts)

    def build(self, job: Job) -> tuple[nn.Module, torch.Generator]:
        """A fresh network for ``job`` and the generator it was built from (seeded by the job's identity)."""
        g = self.gen(job.method, job.schedule, job.arch, job.index)
        return self.spec(job.arch, job.method).build(g), g

    def ensemble_ok(self, spec: NetSpec, n: int) -> bool:
        """Whether ``n`` networks of ``spec`` train and score as one ``torch.func`` ensemble."""
        if not self.use_ensembles or n < 2:
            return False
        if spec not in self._vmappable:
            probe = spec.build(torch_generator(0, "probe"))
            self._vmappable[spec] = supports_ensemble(probe, self.dm.image_shape)
        return self._vmappable[spec]

    # -- data --------------------------------------------------------------------------------------
    def train_tensors(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The training split in memory (normalised, CPU) if it fits ``eval.max_in_memory_mb``, else None."""
        if self._train is None:
            n = len(self.dm.labels("train"))
            if n * int(np.prod(self.dm.image_shape)) * 4 > int(self.ev.max_in_memory_mb) * 2**20:
                return None
            self._train = self.dm.load_split("train")
        return self._train

    def mean_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The class-mean baseline: one mean training image per class ``[K, C, H, W]`` and its labels."""
        if self._means is None:
            cached = self.train_tensors()
            if cached is not None:
                batches = [cached]
            else:
                from torch.utils.data import DataLoader

                batches = DataLoader(
                    self.dm.dataset("train", augment=False), batch_size=int(self.ev.batch_size)
                )
            self._means = baselines.class_means(batches, self.dm.num_classes, list(self.dm.class_names))
        return self._means

    def random_per_class(self) -> int:
        """Real images per class of the random-subset baselines (module-level :func:`random_per_class`)."""
        return random_per_class(self.ev, self.sets, self.dm.num_classes)

    #: The first full-data network of the distillation architecture (job ``full__real__same__0``), saved
    #: so that the audit, the ``random_soft`` teacher, other ranks, worker processes and re-runs reuse it.
    REFERENCE_FILE = "reference.safetensors"
    #: What the saved reference network was trained with (the reference job's record settings).
    REFERENCE_SETTINGS = "reference.settings.json"
    REFERENCE_JOB = Job("full", REAL_SCHEDULE, SAME, 0)

    def save_reference(self, net: nn.Module) -> None:
        """Keep ``net`` as the reference network (and write it to ``REFERENCE_FILE`` in the output folder,
        its settings to ``REFERENCE_SETTINGS`` first)."""
        self.reference_net = net
        if self.out is not None:
            self.record_settings.write_file(self.out / self.REFERENCE_SETTINGS, self.REFERENCE_JOB)
            save_weights(net, self.out / self.REFERENCE_FILE)

    def reference_is_current(self) -> bool:
        """Whether the output folder holds a reference network trained with this study's settings (a file
        without its settings, from an earlier version, is not current)."""
        if self.out is None or not (self.out / self.REFERENCE_FILE).is_file():
            return False
        return self.record_settings.matches(self.out / self.REFERENCE_SETTINGS, self.REFERENCE_JOB)

    def drop_stale_reference(self, retrain: bool) -> None:
        """Remove the saved reference network when its job is to be trained again (``retrain``) or it was
        trained with other settings: the ``random_soft`` teacher and the audit never get a network of
        another recipe (a folder whose ``full`` job is not listed, or whose first run stopped early)."""
        if self.out is None or not (self.out / self.REFERENCE_FILE).is_file():
            return
        if retrain or not self.reference_is_current():
            (self.out / self.REFERENCE_FILE).unlink()
            (self.out / self.REFERENCE_SETTINGS).unlink(missing_ok=True)

    def reference(self) -> nn.Module:
        """The reference network: job ``full__real__same__0``'s network, from memory, from
        ``REFERENCE_FILE``, or trained now by that job's seeds and recipe (the same weights the job gets)."""
        if self.reference_net is None:
            path = self.out / self.REFERENCE_FILE if self.out is not None else None
            if path is not None and self.reference_is_current():
                spec = self.spec(SAME)
                net = spec.build(self.gen("reference-load"))
                self.reference_net = load_weights(net, path, device=str(spec.device))
            else:
                job = self.REFERENCE_JOB
                net, _ = self.build(job)
                net, _ = self.train_full(net, (job.method, job.schedule, job.arch, job.index))
                self.save_reference(net)
        return self.reference_net

    def teacher(self) -> nn.Module:
        """The soft-label teacher of ``random_soft``: the reference network (a full-data network; one
        training serves the ``full`` row, the teacher and the audit)."""
        return self.reference().eval()

    def small_set(self, method: str, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training set of network ``index`` of a small-set method."""
        if method in self.sets:
            return distilled_tensors(self.sets[method])
        if method == "mean":  # one image per class: needs no subset size
            return self.mean_images()
        k = self.random_per_class()
        if method == "random":
            return baselines.random_subset(self.dm, k, self.gen("random-subset", index))
        if method == "random_soft":
            x, _ = baselines.random_subset(self.dm, k, self.gen("random-soft-subset", index))
            return x, baselines.teacher_labels(
                self.teacher(), x, float(self.ev.baselines.get("teacher_temperature", 1.0))
            )
        raise EvaluationConfigError(f"no small set for method {method!r}")

    # -- training ----------------------------------------------------------------------------------
    def choose_lr(self, method: str, arch: str) -> tuple[float, nn.Module | None]:
        """The standard-schedule learning rate with the best validation balanced accuracy, and the network
        that chose it: network 0 of the setting (job ``(method, 'standard', arch, 0)``: its seeds, its set)
        trained once per lr of ``eval.lr_grid``, so the winner *is* job 0's network and is not trained
        again. Returns ``(lr, None)`` for a single lr or a choice made earlier in this study."""
        grid = [float(v) for v in as_list(self.ev.get("lr_grid"))] or [float(self.ev.standard.lr)]
        if len(grid) == 1:
            return grid[0], None
        key = f"{method}/{arch}/standard_lr"
        if key in self.selected:
            return float(self.selected[key]["chosen"]), None
        first = Job(method, "standard", arch, 0)
        x, y = self.small_set(method, first.index)
        trained = []
        for lr in grid:
            net, g = self.build(first)
            sched = standard_schedule(self.ev, lr)
            trained.append(
                self.guarded(
                    lambda n, s=sched, g=g: train_small_set(n, x, y, s, g), net, f"{first.key} lr {lr:g}"
                )
            )
        scores = dict(zip(grid, val_scores(trained, self.ctx), strict=True))
        best = max(grid, key=lambda v: scores[v])
        self.selected[key] = {"chosen": best, "val_balanced_accuracy": scores, "selected_with": first.key}
        return best, trained[grid.index(best)]

    def guarded(self, train: Callable[[nn.Module], nn.Module], net: nn.Module, what: str) -> nn.Module:
        """``train(net)`` (trains ``net`` in place). A network whose training loss turns non-finite (a learned
        schedule too steep for this architecture, a standard lr too high), or whose weights end non-finite
        after a last finite loss, does not end the study: it is kept as a network that learned nothing
        (``fresh_training.learned_nothing``: uniform predictions, chance-level metrics), recorded with
        ``diverged: true``, counted under the results table and named in a warning."""
        trained, why = train_or_learned_nothing(train, net)
        if why is not None:
            log.warning("%s diverged (%s); scored as a network that learned nothing", what, why)
            self.diverged.add(trained)
        return trained

    def train_full(self, net: nn.Module, seed_parts: Sequence[Any]) -> tuple[nn.Module, dict[str, float]]:
        """One full-data network by the Lightning recipe (in memory or streamed, the same batches)."""
        recipe = real_recipe(self.ev)
        cached = self.train_tensors()
        train = in_memory(*cached) if cached is not None else self.dm.dataset("train", augment=False)
        val_x, val_y = self.ctx.val.tensors()
        device = next(net.parameters()).device
        net, info = train_full_data(
            net,
            train,
            self.dm.labels("train"),
            in_memory(val_x, val_y),
            recipe,
            self.dm.num_classes,
            (int(self.cfg.seed), "eval", *seed_parts),
            progress=self.progress,
            num_workers=int(getattr(self.dm, "num_workers", 0)),
        )
        return net.to(device), info

    def train_each(
        self,
        jobs: Sequence[Job],
        one: Callable[[int, nn.Module, torch.Generator], nn.Module],
        together: Callable[[list[nn.Module], list[torch.Generator]], list[nn.Module]] | None = None,
    ) -> list[nn.Module]:
        """The networks of ``jobs``, freshly built (:meth:`build`) and trained: as one ensemble by
        ``together(nets, generators)`` when given; otherwise, or when a network of the ensemble diverges
        (rebuilt, so every network starts again from its own seeds), one by one by ``one(k, net, generator)``
        under :meth:`guarded`, which keeps the others."""
        built = [self.build(j) for j in jobs]
        if together is not None:
            try:
                trained = together([b[0] for b in built], [b[1] for b in built])
                check_finite(trained)
                return trained
            except FloatingPointError:
                built = [self.build(j) for j in jobs]
        return [
            self.guarded(lambda n, k=k, g=g: one(k, n, g), n, j.key)
            for k, (j, (n, g)) in enumerate(zip(jobs, built, strict=True))
        ]

    def train_setting(
        self, setting: tuple[str, str, str], jobs: Sequence[Job]
    ) -> tuple[list[nn.Module], dict]:
        """The trained networks of ``jobs`` (one setting) and what to record beside their metrics."""
        method, schedule, arch = setting
        if schedule == REAL_SCHEDULE:
            nets, extras = [self.build(j)[0] for j in jobs], []
            for j, net in zip(jobs, nets, strict=True):
                _, info = self.train_full(net, ("full", REAL_SCHEDULE, arch, j.index))
                extras.append({"best_epoch": int(info["best_epoch"])})
                if j == self.REFERENCE_JOB:
                    self.save_reference(net)
            return nets, {"per_net": extras}
        together = self.ensemble_ok(self.spec(arch, method), len(jobs))
        if schedule == "replay":
            ds, aug = self.sets[method], self.ev.get("replay_augment")
            replays = (lambda nets, gens: train_replays(nets, ds, aug, gens)) if together else None
            return self.train_each(jobs, lambda _k, n, g: train_replay(n, ds, aug, g), replays), {}
        lr, chosen = self.choose_lr(method, arch)
        sched = standard_schedule(self.ev, lr)
        done = {0: chosen} if chosen is not None else {}  # network 0 trained while choosing the lr
        rest = [j for j in jobs if j.index not in done]
        sets = [self.small_set(method, j.index) for j in rest]
        ensemble = together and len(rest) > 1 and trains_as_ensemble(sched)
        trained = self.train_each(
            rest,
            lambda k, n, g: train_small_set(n, *sets[k], sched, g),
            (lambda nets, gens: train_small_sets(nets, sets, sched, gens)) if ensemble else None,
        )
        by_index = {**done, **{j.index: net for j, net in zip(rest, trained, strict=True)}}
        return [by_index[j.index] for j in jobs], {"lr": lr}

    def run_setting(self, setting: tuple[str, str, str], jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """Train the networks of ``jobs`` (one setting), score them, save and return their records."""
        t0 = time.perf_counter()
        nets, extra = self.train_setting(setting, jobs)
        t1 = time.perf_counter()
        spec = self.spec(setting[2], setting[0])
        if self.score_together:
            # vmapped inference pays off on CUDA; on the CPU a loop over the networks per batch is faster
            on_cuda = self.ctx.test.device.type == "cuda"
            models = Ensemble(nets) if on_cuda and self.ensemble_ok(spec, len(nets)) else nets
            recs = score_networks(models, self.ctx)
        else:
            recs = [score_networks([n], self.ctx)[0] for n in nets]
        self.timings.append(
            {
                "setting": "/".join(setting),
                "train_s": t1 - t0,
                "score_s": time.perf_counter() - t1,
                "n": len(nets),
            }
        )
        out = []
        for i, (job, rec) in enumerate(zip(jobs, recs, strict=True)):
            full = {
                "job": job.key,
                "method": job.method,
                "schedule": job.schedule,
                "architecture": spec.name,
                "network": job.index,
            }
            if "lr" in extra:
                full["lr"] = extra["lr"]
            if "per_net" in extra:
                full.update(extra["per_net"][i])
            if nets[i] in self.diverged:
                full["diverged"] = True
            full.update(rec)
            if self.out is not None:
                self.record_settings.write(self.out, job)  # first: a record never lacks its settings
                report.save_record(self.out, full)
            out.append(full)
        self.records += out
        return out

    def run(self, jobs: Sequence[Job] | None = None) -> list[dict[str, Any]]:
        """Train and score ``jobs`` (default: every job of the config), setting by setting."""
        jobs = build_jobs(self.ev, list(self.sets)) if jobs is None else list(jobs)
        self.check_jobs(jobs)
        bar = tqdm(total=len(jobs), desc="evaluation: fresh networks", disable=not self.progress)
        earlier: list[dict[str, Any]] = []
        if self.out is not None and self.write_progress:
            mine = {j.key for j in jobs}
            earlier = report.load_records(self.out, sorted(report.finished_jobs(self.out) - mine))
        for setting, group in by_setting(jobs).items():
            self.run_setting(setting, group)
            bar.update(len(group))
            if self.out is not None and self.write_progress:
                report.write_network_records(earlier + self.records, self.out / report.NETWORKS_CSV)
        bar.close()
        return self.records

    def check_jobs(self, jobs: Sequence[Job]) -> None:
        """Refuse a job whose method is neither a set nor a baseline, a random-subset job whose size is
        unknown (no set and no ``eval.baselines.n_per_class``: refused here, before the full-data network
        trains), and two architecture keys naming one network for a method
        (:class:`EvaluationConfigError`)."""
        methods = {j.method for j in jobs}
        for method in methods:
            if method not in self.sets and method not in BASELINES:
                raise EvaluationConfigError(
                    f"job method {method!r} is neither a distilled set nor a baseline"
                )
        archs: dict[tuple[str, str], list[str]] = {}
        for method, schedule, arch in by_setting(jobs):
            archs.setdefault((method, schedule), []).append(arch)
        for (method, _), names in archs.items():
            check_distinct(names, lambda arch, m=method: self.spec(arch, m).name, repr(method))
        if methods & RANDOM_SUBSET_BASELINES:
            check_random_subset_size(self.dm, self.random_per_class())

    def sizes(self) -> dict[str, dict[str, int]]:
        """Per method, the training set's size: number of images and bytes as stored or shared."""
        shape = tuple(self.dm.image_shape)
        bpp = int(getattr(self.dm, "bytes_per_pixel", None) or self.ev.get("real_bytes_per_pixel", 1))
        n_train = len(self.dm.labels("train"))
        out = {"full": {"n_images": n_train, "bytes": baselines.real_set_bytes(n_train, shape, bpp)}}
        for name, ds in self.sets.items():
            out[name] = {"n_images": int(ds.images.shape[0]), "bytes": baselines.distilled_bytes(ds)}
        methods = as_list(self.ev.baselines.methods)
        if RANDOM_SUBSET_BASELINES & set(methods):
            n = self.random_per_class() * self.dm.num_classes
            out["random"] = {"n_images": n, "bytes": baselines.real_set_bytes(n, shape, bpp)}
            # pixels at the store's depth plus K float32 soft labels per image
            out["random_soft"] = {
                "n_images": n,
                "bytes": n * (int(np.prod(shape)) * bpp + 4 * self.dm.num_classes),
            }
        k = self.dm.num_classes
        out["mean"] = {"n_images": k, "bytes": k * (int(np.prod(shape)) * 4 + 1)}
        return out


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
    try:
        log_public_hyperparams(loggers, cfg)
        df = finalize(cfg, datamodule, distilled_sets, out, loggers, study)
        # the stage's record describes the results table beside it: written with it, so a re-run stopped
        # midway leaves the earlier table's record (each finished network keeps its own settings file)
        threads = training_threads(cfg, world_size)
        save_run_info(out, cfg, extra={"stage": "evaluate", "training_threads": threads})
    finally:
        if own_loggers:  # closed also when the stage fails
            finish_loggers(loggers)
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
    cfg: DictConfig, datamodule: ImageDataModule, seed_parts: Sequence[Any], epochs: int | None = None
) -> tuple[nn.Module, dict[str, float]]:
    """One network of the distillation architecture trained by the full-data recipe (``eval.baselines.real``,
    ``epochs`` overridden when given), seeded by ``(seed, *seed_parts)``: the audit's reference network."""
    _prepare(datamodule)
    if epochs is not None:
        cfg = OmegaConf.merge(cfg, {"eval": {"baselines": {"real": {"epochs": int(epochs)}}}})
    study = Study(cfg, datamodule, {}, None, progress=False)
    net = study.spec(SAME).build(torch_generator(int(cfg.seed), *seed_parts))
    return study.train_full(net, tuple(seed_parts))


def architecture_of(cfg: DictConfig, arch: str) -> DictConfig:
    """The model config of a ``conf/model`` name (kept for callers of the old module)."""
    return architecture_config(cfg, arch)
