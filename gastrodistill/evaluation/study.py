"""One process's evaluation study: the fresh networks of its jobs, trained setting by setting and scored.

:class:`Study` builds every network from its job's seeds, trains the networks of one setting together
(``torch.func`` ensembles, the loop as fallback; the full-data bound by a Lightning Trainer,
:mod:`.full_data`), chooses the standard schedule's learning rate on validation patients, scores them
(:mod:`.scoring`) and saves each job's record with its settings (:mod:`.record_settings`). It also keeps the
evaluation's reference network (job ``full__real__same__0``), which the ``random_soft`` teacher and the
audit reuse. The stage that drives it (ranks, worker processes, the table) is :mod:`.run`.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from gastrodistill.evaluation import baselines, report
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
)
from gastrodistill.evaluation.networks import architecture_config, check_distinct, net_spec
from gastrodistill.evaluation.record_settings import RecordSettings, study_settings
from gastrodistill.evaluation.scoring import score_networks, val_scores
from gastrodistill.evaluation.splits import build_context, check_random_subset_size
from gastrodistill.models.weights import load_weights, save_weights
from gastrodistill.models.zca import without_zca_kernel
from gastrodistill.utils.privacy import public_config
from gastrodistill.utils.seeding import torch_generator

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet

log = logging.getLogger(__name__)

__all__ = [
    "Study",
    "baseline_model",
    "ensemble_mode",
    "other_architecture",
    "random_per_class",
    "real_recipe",
    "recorded_model",
    "study_record_settings",
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


def _nothing(job: Job) -> None:
    """:attr:`Study.network_trained` when nobody counts the networks."""


class NetworkBar:
    """A tqdm bar of fresh networks (``total`` jobs): each job counted once, when its network is trained
    (:attr:`Study.network_trained`, possibly in a worker process) or, at the latest, when its setting's
    records are written; a job reported twice counts once. ``progress`` false: no bar."""

    def __init__(self, total: int, desc: str, progress: bool = True) -> None:
        self.bar = tqdm(total=total, desc=desc, disable=not progress)
        self.counted: set[str] = set()

    def trained(self, *job_keys: str) -> None:
        """Count the jobs ``job_keys`` not counted yet."""
        new = [k for k in job_keys if k not in self.counted]
        self.counted.update(new)
        if new:
            self.bar.update(len(new))

    def close(self) -> None:
        self.bar.close()


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
        # called with each job as soon as its network is trained (before its setting's scoring): the
        # evaluation's bar counts networks, not settings of up to n_networks networks and a lr selection
        self.network_trained: Callable[[Job], None] = _nothing
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
                for j in jobs:
                    self.network_trained(j)
                return trained
            except FloatingPointError:
                built = [self.build(j) for j in jobs]
        trained = []
        for k, (j, (n, g)) in enumerate(zip(jobs, built, strict=True)):
            trained.append(self.guarded(lambda n, k=k, g=g: one(k, n, g), n, j.key))
            self.network_trained(j)
        return trained

    def train_setting(
        self, setting: tuple[str, str, str], jobs: Sequence[Job]
    ) -> tuple[list[nn.Module], dict]:
        """The trained networks of ``jobs`` (one setting) and what to record beside their metrics."""
        method, schedule, arch = setting
        if schedule == REAL_SCHEDULE:
            nets, extras = [self.build(j)[0] for j in jobs], []
            for j, net in zip(jobs, nets, strict=True):
                _, info = self.train_full(net, ("full", REAL_SCHEDULE, arch, j.index))
                self.network_trained(j)
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
        for j in jobs:
            if j.index in done:
                self.network_trained(j)
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
        bar = NetworkBar(len(jobs), "evaluation: fresh networks", self.progress)
        earlier: list[dict[str, Any]] = []
        if self.out is not None and self.write_progress:
            mine = {j.key for j in jobs}
            earlier = report.load_records(self.out, sorted(report.finished_jobs(self.out) - mine))
        self.network_trained = lambda job: bar.trained(job.key)
        try:
            for setting, group in by_setting(jobs).items():
                self.run_setting(setting, group)
                bar.trained(*(j.key for j in group))
                if self.out is not None and self.write_progress:
                    report.write_network_records(earlier + self.records, self.out / report.NETWORKS_CSV)
        finally:
            self.network_trained = _nothing
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
