"""``gastrodistill-reproduce``: the whole study in one Hydra run folder (``make reproduce``).

    gastrodistill-reproduce experiment=cpu                  # ~15 min on 2 CPU cores
    gastrodistill-reproduce experiment=full trainer=ddp     # the paper's scale on GPUs
    gastrodistill-reproduce experiment=cpu 'stages=[distill,evaluate]'   # some stages only

Runs the stages of ``cfg.stages`` in order: ``generate`` (synthetic DATA_ROOT) → ``patches`` (patch
store) → ``distill`` (one set per ``reproduce.distill_modes``, soft and hard) → ``evaluate`` (baselines
and distilled sets: results table and plots) → ``audit`` (anonymity) → ``artifact`` (shareable sets).
With data other than gastric patches (``data=folder|npz|digits``) ``generate`` and ``patches`` are
skipped, with a note: they build gastric patches that such data never read.
Outputs: ``<run>/distill/<mode>``, ``<run>/eval``, ``<run>/audit``, ``<run>/artifacts/<mode>``, and
``<run>/SUMMARY.md`` listing them with each stage's wall time.

Several processes (``trainer=ddp``; Lightning's launcher, torchrun or SLURM, docs/distillation.md):
global rank 0 generates the data and builds the patch store while the others wait for it; every rank
distils; then only rank 0 runs the stages of :attr:`Pipeline.rank_zero_stages` (evaluate, audit,
artifact) and writes the run info and summary, while the other ranks end their part of the job.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.cli.run_folder import HISTORY_DIR, RECORD_FILES
from gastrodistill.data.zca import zca_settings
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.distributed import (
    global_rank,
    is_global_zero,
    prepare_data_rank_zero_first,
    world_size,
)
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.values import is_count
from gastrodistill.utils.worker_pool import spawn_pool

if TYPE_CHECKING:
    import pandas as pd

    from gastrodistill.data.base import ImageDataModule

STAGES = ("generate", "patches", "distill", "evaluate", "audit", "artifact")
#: The stages that make and read gastric patches, and the data module they are for.
GASTRIC_STAGES = ("generate", "patches")
GASTRIC_DATA = "gastrodistill.data.gastric.GastricPatchDataModule"


#: The stages that log the run (Lightning's CSV and W&B loggers under ``experiment_name``) or write cards.
LOGGING_STAGES = ("distill", "evaluate", "audit", "artifact")


class ReproduceConfigError(ValueError):
    """``stages`` or ``reproduce.*`` names something that cannot run; the message says what to change."""


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class Pipeline:
    """Holds what stages hand to each other (data module, distilled sets, results) and runs them.

    Rank-aware: ``generate`` runs on global rank 0 only (the others wait for the patch store in
    :meth:`datamodule`), ``distill`` on every rank, and the stages in :attr:`rank_zero_stages` on rank 0
    only. A stage that learns to shard its work across ranks (and gather on rank 0) leaves this set and
    checks :func:`~gastrodistill.utils.distributed.global_rank` / ``world_size`` itself.
    """

    #: Stages that only global rank 0 runs (they write the run's shared outputs).
    rank_zero_stages: frozenset[str] = frozenset({"generate", "evaluate", "audit", "artifact"})

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.rcfg = cfg.get("reproduce") or {}
        self.dm: Any = None
        self.sets: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.paths: dict[str, Path] = {}
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.history: Path | None = None  # history/<n>/: the folder's earlier run record, when kept
        self.stale: list[str] = []  # stale_stages() as write_summary found them (rank 0)

    @functools.cached_property
    def out(self) -> Path:
        """The run folder (``paths.output_dir``), read when first needed: :meth:`check_values` needs none,
        and a sweep's check composes its jobs' configs without Hydra's runtime, which names it."""
        return Path(self.cfg.paths.output_dir)

    # ---- shared pieces ---------------------------------------------------------------------------
    def datamodule(self) -> ImageDataModule:
        """The data module of ``cfg.data``, built, prepared (rank 0 first) and set up on first use."""
        if self.dm is None:
            self.dm = hydra.utils.instantiate(self.cfg.data)
            prepare_data_rank_zero_first(self.dm)  # rank 0 builds the store; the others wait for it
            self.dm.setup()
        return self.dm

    def distilled_sets(self) -> dict[str, Any]:
        """The sets of this run, or those saved in ``<run>/distill`` by an earlier run of the stage."""
        if not self.sets:
            from gastrodistill.distillation.distilled_set import META_FILE, DistilledSet

            for mode in self.modes():
                d = self.out / "distill" / mode
                if (d / META_FILE).is_file():
                    self.sets[mode] = DistilledSet.load(d)
        return self.sets

    def modes(self) -> list[str]:
        """The label modes to distil (``reproduce.distill_modes``; default soft and hard)."""
        return [str(m) for m in self.rcfg.get("distill_modes", ["soft", "hard"])]

    # ---- stages ----------------------------------------------------------------------------------
    def generate(self) -> None:
        """Stage ``generate``: write (or confirm) the synthetic data set; its folder goes into the summary."""
        from gastrodistill.cli.errors import project_error
        from gastrodistill.cli.generate import run as generate_run
        from gastrodistill.data.synthetic.writer import NotSyntheticRootError, SyntheticOutputError

        try:
            self.paths["data"] = Path(str(generate_run(self.cfg) or self.cfg.paths.data_root))
        except Exception as error:  # noqa: BLE001 - Hydra's instantiate wraps the writer's refusal
            exc = project_error(error)
            if not isinstance(exc, NotSyntheticRootError):
                raise
            rest = [str(s) for s in self.cfg.stages if str(s) != "generate"]  # a list since check_values
            rest = rest or [s for s in STAGES if s != "generate"]  # stages=[generate] alone: the study
            raise SyntheticOutputError(  # the other way on, for a study of one's own data there
                f"{exc} To distil your own data in that folder instead, leave generate out of the stages: "
                f"'stages=[{','.join(rest)}]'"
            ) from None

    def patches(self) -> None:
        """Stage ``patches``: build the data module's patch store (if it has one) and print its summary."""
        from gastrodistill.cli.build_patches import summary_table

        dm = self.datamodule()
        store = getattr(dm, "store", None)
        if store is not None:
            self.paths["patch store"] = Path(store.path)
            if is_global_zero():
                print(summary_table(store.meta))

    def distill(self) -> None:
        """Distil each label mode's set (or continue it: ``distill.resume``), then retire the evaluation's
        networks that were trained on an earlier version of a set (:meth:`retire_records`); the folder's
        later outputs that do not describe the sets are named in the summary (:meth:`stale_stages`)."""
        before = self.finished_set_digests()
        self._distill()
        if is_global_zero():
            self.retire_records(before)

    def finished_set_digests(self) -> dict[str, str | None]:
        """Per label mode, the content digest (``set_digest``) of the finished set ``distill/<mode>`` holds,
        None for one that cannot be read (it is replaced whatever it holds); modes without a set are left
        out."""
        from gastrodistill.distillation.distilled_set import META_FILE, DistilledSet
        from gastrodistill.evaluation.record_settings import set_digest

        digests: dict[str, str | None] = {}
        for mode in self.modes():
            folder = self.out / "distill" / mode
            if (folder / META_FILE).is_file():
                try:
                    digests[mode] = set_digest(DistilledSet.load(folder))
                except Exception:  # noqa: BLE001 - a damaged earlier set is replaced, whatever the cause
                    digests[mode] = None
        return digests

    def retire_records(self, before: dict[str, str | None]) -> None:
        """Move the evaluation's finished networks that were trained on another version of one of this
        run's sets (records and settings files of ``eval/records/``) to ``history/<n>/eval/records/``, so a
        later evaluation here trains them again on the current sets instead of refusing the folder
        (before, a resume with ``stages=[distill,evaluate]`` distilled, then was refused).

        A record's settings file names the digest of the set it trained on (``distilled set <mode>``);
        that is compared with the set now in ``distill/<mode>``, whatever command changed it (a resume
        interrupted after one mode included). A record of an older version, without a settings file, is
        retired when its set changed in this stage (``before``: the digests at its start). The baselines'
        networks do not depend on the sets and stay."""
        import os

        from gastrodistill.evaluation.record_settings import SETTINGS_SUFFIX, set_digests, trained_on
        from gastrodistill.evaluation.report import RECORDS, finished_jobs

        current = {m: set_digests(ds) for m, ds in self.sets.items()}
        changed = {m for m, d in before.items() if m in current and d not in current[m]}
        eval_dir = self.out / "eval"
        records = eval_dir / RECORDS
        stale: dict[str, str] = {}  # job key -> its set
        for key in sorted(finished_jobs(eval_dir)):
            mode = key.split("__", 1)[0]  # the label modes hold no "__"
            if not (records / f"{key}{SETTINGS_SUFFIX}").is_file():
                if mode in changed:
                    stale[key] = mode
                continue
            on = trained_on(eval_dir, key)  # the settings file, read once for every set
            for m, digests in current.items():
                if m in on and on[m] not in digests:
                    stale[key] = m
        if not stale:
            return
        if self.history is None:
            self.history = next_history_folder(self.out)
        dest = self.history / "eval" / RECORDS
        dest.mkdir(parents=True, exist_ok=True)
        for key in stale:
            for name in (f"{key}.npz", f"{key}{SETTINGS_SUFFIX}"):
                if (records / name).is_file():
                    os.replace(records / name, dest / name)
        modes = sorted(set(stale.values()))
        note = (
            f"distill: {len(stale)} network(s) of eval/records/ were trained on an earlier version of the "
            f"{' and '.join(modes)} set(s); they are moved to {dest.relative_to(self.out)}/"
        )
        print(note, flush=True)
        self.notes.append(note)

    def _distill(self) -> None:
        from gastrodistill.distillation.distilled_set import META_FILE, DistilledSet
        from gastrodistill.distillation.run import TEACHER_FILE, run_distillation

        dm = self.datamodule()
        resume = self.resume_checkpoints()
        modes = self.modes()
        if self.cfg.distill.get("resume") not in (None, ""):  # a finished set without a checkpoint stays
            kept = [
                m for m in modes if resume[m] is None and (self.out / "distill" / m / META_FILE).is_file()
            ]
            for m in kept:
                note = (
                    f"distill: the {m}-label set in this folder is finished and distill.resume names no "
                    f"checkpoint of it; it is kept as it is, not distilled again"
                )
                print(note, flush=True)
                self.notes.append(note)
                self.sets[m] = DistilledSet.load(self.out / "distill" / m)
            modes = [m for m in modes if m not in kept]
            if not modes:
                return
        workers = min(int(self.rcfg.get("parallel_modes") or 1), len(modes))
        if workers > 1 and world_size() == 1 and _one_device(self.cfg):
            self._distill_in_processes(modes, resume, workers)
            return
        share = world_size() == 1 and sum(resume[m] is None for m in modes) > 1 and _shared_teacher(self.cfg)
        with contextlib.ExitStack() as stack:
            teacher = None
            if share:  # both modes match under one teacher: trained once here, loaded by each mode
                print("--- texture-matching teacher (once, for every mode)", flush=True)
                dm.setup("fit")  # as run_distillation prepares the data
                teacher = Path(stack.enter_context(self._teacher_folder())) / TEACHER_FILE
                _save_teacher(self.cfg, dm, teacher)
            for mode in modes:
                if is_global_zero():
                    print(f"--- distillation: {mode} labels")
                self.sets[mode] = run_distillation(
                    self.cfg,
                    dm,
                    self.out / "distill",
                    mode=mode,
                    resume=resume[mode],
                    teacher_file=teacher if resume[mode] is None else None,
                )
                self.paths[f"distilled set ({mode})"] = self.out / "distill" / mode

    def _teacher_folder(self) -> tempfile.TemporaryDirectory:
        """A temporary ``distill/.teacher-*`` folder for the texture-matching teacher handed to the label
        modes (removed when its context ends)."""
        (self.out / "distill").mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix=".teacher-", dir=self.out / "distill")

    def _distill_in_processes(self, modes: list[str], resume: dict[str, Path | None], workers: int) -> None:
        """One process per label mode (``reproduce.parallel_modes``), for one machine without DDP.

        The modes are independent runs, so on a CPU with as many free cores as modes (the 2-core preset:
        one torch thread each) they finish in about the time of one. Each process receives the resolved
        config (no Hydra context is needed there), rebuilds the data module from the patch store the
        parent has already built, and saves its set; the parent then loads the sets from disk.

        Texture matching with a teacher (``distill.texture_matching.features: teacher``): both modes match
        under the same teacher (same seeds), so one worker trains it first and the modes load it (the same
        network, at the same thread count) instead of each training its own. Beside it, when the run
        evaluates, the other worker trains the evaluation's reference network (job ``full__real__same__0``,
        :func:`~gastrodistill.evaluation.run.run_reference_job`), which the evaluation then skips: the
        same records, about one full-data network's training less wall time. The first mode starts on the
        teacher's worker as soon as the teacher is saved, the next on the first worker free.
        """
        from concurrent.futures import as_completed

        from omegaconf import OmegaConf

        from gastrodistill.distillation.distilled_set import DistilledSet
        from gastrodistill.distillation.run import TEACHER_FILE

        resolved = OmegaConf.to_container(self.cfg, resolve=True)
        threads = int(self.rcfg.get("num_threads") or torch.get_num_threads())
        print(f"--- distillation: {', '.join(modes)} labels in {workers} processes", flush=True)
        share = _shared_teacher(self.cfg) and any(resume[m] is None for m in modes)
        with (
            self._teacher_folder() as tmp,
            spawn_pool(workers) as pool,  # a child's error stops the other worker and prints at once
        ):
            teacher = Path(tmp) / TEACHER_FILE if share else None
            reference = None
            if teacher is not None:
                first = pool.submit(_texture_teacher, resolved, str(teacher), threads)
                if "evaluate" in [str(s) for s in self.cfg.stages]:
                    reference = pool.submit(_reference_job, resolved, str(self.out / "eval"), threads)
                print(
                    "--- texture-matching teacher (once, for every mode)"
                    + (" beside the evaluation's reference network" if reference is not None else ""),
                    flush=True,
                )
                first.result()  # re-raises the child's error (its class and message) here
            # the first mode takes the teacher's worker at once; the next, the first worker free
            jobs = {
                mode: pool.submit(
                    _distill_mode,
                    resolved,
                    str(self.out / "distill"),
                    mode,
                    resume[mode],
                    threads,
                    str(teacher) if teacher is not None and resume[mode] is None else None,
                )
                for mode in modes
            }
            for job in as_completed([*([reference] if reference is not None else []), *jobs.values()]):
                job.result()  # re-raises the first failing child's error (its class and message) here
        for mode in modes:
            self.sets[mode] = DistilledSet.load(self.out / "distill" / mode)
            self.paths[f"distilled set ({mode})"] = self.out / "distill" / mode

    def resume_checkpoints(self) -> dict[str, Path | None]:
        """Per mode, the checkpoint ``distill.resume`` names (each mode its own, never a shared one).

        A mode without a checkpoint starts from step 0 (say, the hard run never started before the
        interruption); when a resume was asked for and no mode has one, :class:`ResumeError`.
        """
        from gastrodistill.distillation.resume import OtherModeCheckpoint, ResumeError, missing_message
        from gastrodistill.distillation.run import resume_checkpoint

        spec = self.cfg.distill.get("resume")
        found: dict[str, Path | None] = {}
        other: OtherModeCheckpoint | None = None
        for m in self.modes():
            try:
                found[m] = resume_checkpoint(self.cfg, m, self.out / "distill" / m, required=False)
            except OtherModeCheckpoint as e:
                found[m], other = None, e  # a lone checkpoint file of the other mode: this one starts afresh
        if other is not None and not any(found.values()):
            raise ResumeError(
                f"checkpoint {other.path} was written by the {other.saved_mode}-label run and this study "
                f"distils only {', '.join(self.modes())}: set 'reproduce.distill_modes=[{other.saved_mode}]' "
                "to continue that run, or drop distill.resume to start from step 0"
            )
        if spec not in (None, "") and not any(found.values()):
            raise ResumeError(
                missing_message(
                    str(spec), self.modes(), self.out / "distill", self.cfg.distill.get("resume_root")
                )
            )
        for m, ckpt in found.items():
            if spec not in (None, "") and ckpt is None and is_global_zero():
                print(f"no checkpoint of the {m}-label run to resume: it starts from step 0", flush=True)
        return found

    def evaluate(self) -> None:
        """Stage ``evaluate``: fresh networks on the distilled sets and the baselines, into ``eval/``."""
        from gastrodistill.evaluation.run import run_evaluation

        df = run_evaluation(
            self.cfg, self.datamodule(), self.distilled_sets(), self.out / "eval", state=self.state
        )
        saved = self.out / "audit" / "audit.json"
        audit = None if df is None else self.saved_audit(self.distilled_sets(), self.state.get("real_model"))
        if audit is not None:  # an earlier audit of these sets, data and network: its numbers stay
            from gastrodistill.evaluation.results import attach_audit

            df = attach_audit(df, audit)
            self.write_results(df)
            self.paths["anonymity audit"] = saved.with_name("audit.md")
            self.state["audit"] = audit  # an artifact stage after this one publishes its verdicts
        self.state["results"] = df
        self.paths["results table"] = self.out / "eval" / "results.md"
        self.paths["results csv"] = self.out / "eval" / "results.csv"
        self.paths["plots"] = self.out / "eval" / "plots"

    def audit(self) -> None:
        """Stage ``audit``: the anonymity audit of the distilled sets, into ``audit/``."""
        from gastrodistill.anonymity.audit import run_audit
        from gastrodistill.evaluation.run import saved_reference

        sets = self._need_sets("audit")
        real_model = self.state.get("real_model")
        if real_model is None:  # an audit without the evaluate stage: the evaluation's network when current
            real_model = saved_reference(self.cfg, self.datamodule(), sets, self.out / "eval")
        self.state["audit"] = run_audit(
            self.cfg, self.datamodule(), sets, self.out / "audit", real_model=real_model
        )
        self.paths["anonymity audit"] = self.out / "audit" / "audit.md"
        if self.state.get("results") is None:  # an audit alone: the folder's evaluation of these very sets
            self.state["results"] = self.saved_results(sets, self.state["audit"])
            if self.state["results"] is None and (self.out / "eval" / "results.csv").is_file():
                note = (
                    "audit: eval/results.csv is not a current evaluation of these sets, so the audit's "
                    "numbers are not joined to it; run 'stages=[evaluate]' here to evaluate them (the audit "
                    "is kept)"
                )
                print(note, flush=True)
                self.notes.append(note)
        if self.state.get("results") is not None:  # the audit's numbers join the results table
            from gastrodistill.evaluation.results import attach_audit

            self.state["results"] = attach_audit(self.state["results"], self.state["audit"])
            self.write_results(self.state["results"])

    def write_results(self, df: Any) -> None:
        """``eval/results.{csv,md}`` of ``df``, as the evaluation writes them (its ``eval.max_ci_width``)."""
        from gastrodistill.evaluation.results import write_results

        title = f"Results: {self.cfg.experiment_name}"
        write_results(df, self.out / "eval", title=title, max_ci_width=self.cfg.eval.get("max_ci_width"))

    def artifact(self) -> None:
        """Stage ``artifact``: each set's shareable artifact (with its audit verdict), into ``artifacts/``."""
        from gastrodistill.evaluation.results import chosen_standard_lr, method_metrics
        from gastrodistill.sharing.publish import publish_artifact, set_recipe

        sets = self._need_sets("artifact")
        if self.state.get("audit") is None:  # no audit stage in this run: the folder's, when of these sets
            self.state["audit"] = self.saved_audit(sets, self.state.get("real_model"))
        if self.state.get("results") is None:  # no evaluate stage in this run: the folder's, when current
            self.state["results"] = self.saved_results(sets, self.state["audit"])
        missing = [
            f"{what} ({folder}; run 'stages=[{stage},artifact]' here to add it)"
            for what, folder, stage, key in (
                ("evaluation numbers", "eval/results.csv", "evaluate", "results"),
                ("anonymity verdict", "audit/audit.json", "audit", "audit"),
            )
            if self.state.get(key) is None
        ]
        if missing:
            note = (
                "artifact: this folder holds no current "
                + " and no current ".join(missing)
                + " of these sets, so the cards publish none"
            )
            print(note, flush=True)
            self.notes.append(note)
        for name, ds in sets.items():
            evaluation = method_metrics(self.state.get("results"), name)
            lr = chosen_standard_lr(self.state.get("results"), self.out / "eval", name)
            anonymity = (self.state.get("audit") or {}).get(name)
            path = publish_artifact(
                self.cfg,
                self.datamodule(),
                name,
                ds,
                self.out / "artifacts" / name,
                evaluation=evaluation,
                anonymity=anonymity,
                standard_lr=lr,
                recipe=set_recipe(self.out / "distill" / name),  # the settings this set was made with
            )
            self.paths[f"artifact ({name})"] = Path(path)

    def saved_results(self, sets: dict[str, Any], audit: dict[str, Any] | None) -> pd.DataFrame | None:
        """``eval/results.csv`` of an earlier evaluation in this folder when it is of these sets, data and
        recipe (:func:`~gastrodistill.evaluation.run.current_results`), with ``audit``'s numbers joined
        (those of the audit of these sets, or None: the table's audit columns are dropped); else None."""
        from gastrodistill.evaluation.run import current_results

        df = current_results(self.cfg, self.datamodule(), sets, self.out / "eval")
        if df is None:
            return None
        if audit is None:  # numbers of an audit that is no longer this folder's do not stay
            return df.drop(columns=[c for c in df.columns if c.startswith("audit_")])
        from gastrodistill.evaluation.results import attach_audit

        return attach_audit(df, audit)

    def saved_audit(self, sets: dict[str, Any], real_model: Any) -> dict[str, Any] | None:
        """The results of ``audit/audit.json`` when it audited these sets on this patch store
        (:func:`~gastrodistill.anonymity.audit.saved_audit_results`; its ``real`` row only when
        ``real_model`` is the network it attacked), else None."""
        from gastrodistill.anonymity.audit import audit_identity, saved_audit_results

        saved = self.out / "audit" / "audit.json"
        if not (saved.is_file() and saved.with_name("audit.md").is_file()):
            return None
        return saved_audit_results(saved, audit_identity(self.datamodule(), sets, real_model))

    def _need_sets(self, stage: str) -> dict[str, Any]:
        """This run's sets, checked against the data (shape, classes, normalisation, whitening) before the
        stage does anything. Raises ``ReproduceConfigError`` without sets, ``DistilledSetMismatch``."""
        from gastrodistill.evaluation.checks import check_distilled_sets

        sets = self.distilled_sets()
        if not sets:
            raise ReproduceConfigError(
                f"stage {stage!r} needs distilled sets: put 'distill' before it in `stages`, or run it in a "
                f"run folder that already holds distill/<mode> (hydra.run.dir=...)"
            )
        check_distilled_sets(sets, self.datamodule())
        return sets

    # ---- driver ----------------------------------------------------------------------------------
    def check_networks(self, stages: list[str]) -> None:
        """Build every network the stages will build once on the data's shape, before any data is generated
        or read (:mod:`gastrodistill.models.preflight`): ``cfg.model`` (distilled on, trained by the
        evaluation's ``same`` baselines and by the audit) and each named evaluation architecture; when this
        run distils, also refuse two evaluation architectures that build one network. Raises
        ``ModelConfigError`` naming the key, or ``EvaluationConfigError`` naming the architecture."""
        from gastrodistill.models.preflight import check_model_config, data_shape

        if not {"distill", "evaluate", "audit"} & set(stages):
            return
        shape = data_shape(self.cfg.data)
        check_model_config(self.cfg.model, shape)
        if "evaluate" not in stages:
            return
        from gastrodistill.evaluation.jobs import SAME, as_list
        from gastrodistill.evaluation.networks import architecture_config, architecture_name, check_distinct

        ev = self.cfg.eval
        lists = {
            "the distilled sets": as_list(ev.architectures),
            "the baselines": as_list(ev.baselines.architectures),
        }
        configs = {SAME: self.cfg.model}
        for arch in dict.fromkeys(a for archs in lists.values() for a in archs):
            if arch not in configs:
                configs[arch] = architecture_config(self.cfg, str(arch))
                key = f"eval architecture {arch!r} (model/{arch}.yaml)"
                check_model_config(configs[arch], shape, key)
        if "distill" in stages:  # `same` is cfg.model (sets of an earlier run may record another model)
            for method, archs in lists.items():
                check_distinct(archs, lambda arch: architecture_name(configs[arch]), method)

    def stage_fns(self) -> dict[str, tuple[Callable[[], None], str]]:
        """Per stage name, the method that runs it and the module whose code it runs."""
        return {
            "generate": (self.generate, "gastrodistill.cli.generate"),
            "patches": (self.patches, "gastrodistill.data.gastric"),
            "distill": (self.distill, "gastrodistill.distillation.run"),
            "evaluate": (self.evaluate, "gastrodistill.evaluation.run"),
            "audit": (self.audit, "gastrodistill.anonymity.audit"),
            "artifact": (self.artifact, "gastrodistill.sharing.publish"),
        }

    def check_reproduce_section(self, stages: list[str], here: bool = True) -> None:
        """``reproduce.num_threads`` and ``parallel_modes``: integers >= 1 or null; ``distill_modes``: a
        list of label modes; ``trainer.accelerator``: no GPU asked of a machine without one; test patients
        of both diagnoses when the study generates its data and evaluates. Raises
        :class:`ReproduceConfigError` naming the key (a word used to be a traceback, before any stage or
        at the distillation). ``here`` False (a sweep's jobs launched onto other machines): the device
        asked for is not checked against this one."""
        from gastrodistill.distillation.distilled_set import MODES

        for key in ("num_threads", "parallel_modes"):
            value = self.rcfg.get(key)
            if value is not None and not is_count(value):
                raise ReproduceConfigError(f"reproduce.{key} must be an integer >= 1 or null, got {value!r}")
        accelerator = str((self.cfg.get("trainer") or {}).get("accelerator", "auto"))
        no_gpu_here = here and not torch.cuda.is_available()
        if accelerator in ("gpu", "cuda") and no_gpu_here:  # it failed at the distillation
            raise ReproduceConfigError(
                f"trainer.accelerator={accelerator} but this machine has no CUDA device; use trainer=cpu"
            )
        if here:  # every stage of a rank > 0 is skipped or waits: its processes must match the trainer
            from gastrodistill.utils.distributed import check_launch

            check_launch(self.cfg.trainer)
        if "generate" in stages and "evaluate" in stages and "synthetic" in self.cfg:
            for key in ("test_gastritis", "test_non_gastritis"):  # the study exited 0 with blank HM and AUC
                if self.cfg.synthetic.get(key) == 0:
                    raise ReproduceConfigError(
                        f"synthetic.{key}=0: the test split would hold no patient of that diagnosis, so the "
                        "patient HM and AUC could not be measured; use at least 1"
                    )
        data_target = str((self.cfg.get("data") or {}).get("_target_", ""))
        if "generate" in stages and "patches" in stages and data_target == GASTRIC_DATA:
            self.check_patch_fits((self.cfg.get("synthetic") or {}).get("image_size"))
        if "generate" in stages and len(stages) > 1 and data_target == GASTRIC_DATA:
            from gastrodistill.anonymity.text_check import data_root

            written, read = (self.cfg.get("synthetic") or {}).get("root"), data_root(self.cfg)
            if written and read and Path(str(written)).resolve() != Path(read).resolve():
                raise ReproduceConfigError(  # the study generated one collection and distilled another
                    f"synthetic.root={written} is where generate writes, but the later stages read "
                    f"data.root={read}; set paths.data_root alone (both follow it), or leave generate out "
                    f"of the stages to study the data already in {read}"
                )
        if "audit" in stages or "artifact" in stages:  # the name goes into the cards: refused now, not then
            from gastrodistill.sharing.publish import check_experiment_name

            check_experiment_name(self.cfg)
        if "generate" not in stages and str((self.cfg.get("data") or {}).get("_target_", "")) == GASTRIC_DATA:
            from gastrodistill.data.synthetic.generator import check_synthetic_collection

            check_synthetic_collection(self.cfg)  # the stages read the collection on disk as it is
        if "evaluate" in stages and self.cfg.get("data", {}).get("val_fraction", None) == 0:
            raise ReproduceConfigError(  # it failed after the distillation, as an empty argmax
                "data.val_fraction=0 leaves no validation patients, on which the evaluation chooses its "
                "learning rates and patient threshold; use e.g. data.val_fraction=0.2"
            )
        if "evaluate" in stages and data_target == GASTRIC_DATA:
            from gastrodistill.data.labelling import CLASS_NAMES  # the gastric classes are fixed
            from gastrodistill.evaluation.jobs import EvaluationConfigError
            from gastrodistill.evaluation.splits import class_index

            patient, names = self.cfg.eval.get("patient") or {}, list(CLASS_NAMES)
            try:
                class_index(names, patient.get("positive_class"), "positive_class", required=True)
                class_index(names, patient.get("irrelevant_class"), "irrelevant_class", required=False)
            except EvaluationConfigError as exc:
                raise ReproduceConfigError(str(exc)) from None
        modes = self.rcfg.get("distill_modes", ["soft", "hard"])
        names = [modes] if isinstance(modes, str) else list(modes or [])
        bad = [m for m in names if m not in MODES]
        if not names or bad:
            raise ReproduceConfigError(
                f"reproduce.distill_modes = {names}; list label modes from {list(MODES)}, e.g. [soft, hard]"
            )
        twice = sorted({m for m in names if names.count(m) > 1})
        if twice:  # the second distillation of a mode was refused, after data, patches and the first set
            raise ReproduceConfigError(
                f"reproduce.distill_modes = {names} lists {', '.join(twice)} twice; a run folder holds one "
                f"set per label mode: list each once, e.g. [{', '.join(dict.fromkeys(names))}]"
            )

    def check_patch_fits(self, image_size: object) -> None:
        """Refuse patch geometry that no generated image can hold, before anything is generated (the
        patches stage refused it image by image, after the collection had been written).

        Raises:
            GeometryError: ``data.patch_size`` or ``data.overlap`` not a valid geometry.
            ReproduceConfigError: ``synthetic.image_size`` (px) below ``data.patch_size`` (px).
        """
        from gastrodistill.data.tiling import Geometry

        geometry = Geometry(self.cfg.data.get("patch_size"), self.cfg.data.get("overlap"))
        if isinstance(image_size, int) and image_size < geometry.patch_size:
            raise ReproduceConfigError(
                f"synthetic.image_size={image_size} px is smaller than data.patch_size={geometry.patch_size} "
                f"px, so no patch fits an image; use synthetic.image_size >= {geometry.patch_size} or a "
                "smaller data.patch_size"
            )

    def drop_gastric_stages(self, stages: list[str]) -> list[str]:
        """``stages`` without ``generate`` and ``patches`` when the data are not gastric patches: those two
        write the synthetic gastric DATA_ROOT and its patch store, which a folder, ``.npz`` or the digits
        never read (the default ``stages`` list them, so ``data=npz`` alone would generate unused data
        and the summary would list it). A note says so."""
        data_target = str((self.cfg.get("data") or {}).get("_target_", ""))
        dropped = [s for s in stages if s in GASTRIC_STAGES]
        if data_target == GASTRIC_DATA or not dropped:
            return stages
        kind = data_target.rsplit(".", 1)[-1] or "this data"
        note = f"stages {dropped} skipped: they build gastric patches, which {kind} does not read"
        if is_global_zero():
            print(f"==> {note}", flush=True)
        self.notes.append(note)
        return [s for s in stages if s not in GASTRIC_STAGES]

    def check_values(self, here: bool = True) -> list[str]:
        """The stages to run, after every check of them and of the values they will read that needs no data
        and no run folder (``stages`` themselves, ``reproduce.*``, ``distill.*``, ``eval.*``, ``audit.*``
        and the networks): what :func:`run` checks first, and what a sweep checks for each of its jobs
        before the first starts (:mod:`gastrodistill.cli.sweep_check`; ``here`` False: its jobs run on
        other machines, whose devices are not checked). Raises the project's config errors
        (``ReproduceConfigError``, ``DistillConfigError``, ``EvaluationConfigError``, ...)."""
        if isinstance(self.cfg.stages, str):  # stages=distill (no brackets): one stage, not its letters
            with open_dict(self.cfg):
                self.cfg.stages = [self.cfg.stages]
        stages = [str(s) for s in self.cfg.stages]
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ReproduceConfigError(
                f"stages {unknown} unknown; `stages` may list {list(STAGES)} in that order"
            )
        order = [STAGES.index(s) for s in stages]
        if order != sorted(order):
            raise ReproduceConfigError(f"stages {stages} are out of order; keep the order {list(STAGES)}")
        stages = self.drop_gastric_stages(stages)
        self.check_reproduce_section(stages, here)
        if "distill" in stages:  # every distill.* value, before generation and patches (first:
            # eval.standard.augment follows distill.dsa, whose own message names the key the user set)
            from gastrodistill.distillation.config_check import check_distill_config

            for mode in self.modes():
                check_distill_config(self.cfg.distill, mode)
        if "evaluate" in stages:  # a bad eval.* value stops the study before the distillation, not after
            from gastrodistill.evaluation.jobs import validate

            validate(self.cfg.eval)
        if "audit" in stages:  # and every audit.* value, so a typo there does not wait for the audit
            from gastrodistill.anonymity.config_check import check_audit_config

            check_audit_config(self.cfg.audit)
        self.check_networks(stages)
        return stages

    def run(self) -> dict[str, Path]:
        """Check the values, then run ``cfg.stages`` with the run record kept and written; returns what
        went where (label -> path); rank 0 also writes ``SUMMARY.md``."""
        stages = self.check_values()
        self.check_sets_present(stages)
        self.check_evaluation_resume(stages)
        if "distill" in stages and self.cfg.distill.get("resume") in (None, ""):
            from gastrodistill.distillation.run import check_no_finished_set

            for mode in self.modes():  # before the run record is rewritten and any data is generated
                check_no_finished_set(self.out / "distill" / mode, mode, in_stages=True)
        threads = self.rcfg.get("num_threads")
        if threads:  # before the first run_info.json, whose compute block records the count
            torch.set_num_threads(int(threads))
        zero = is_global_zero()
        if zero:
            self.out.mkdir(parents=True, exist_ok=True)
            kept = self.history = keep_earlier_record(self.out)
            if kept is not None:
                self.notes.append(
                    f"this folder's earlier run record ({', '.join(RUN_RECORD)}) is kept in "
                    f"{kept.relative_to(self.out)}/"
                )
            save_run_info(self.out, self.cfg, extra={"stage": "reproduce", "stages": stages})
        try:
            self.run_stages(stages)
        except BaseException:
            if zero and self.history is not None and not any(s in self.timings for s in stages):
                put_back_record(self.out, self.history)  # stopped or failed before any stage finished
            raise
        if not is_global_zero():  # rank 0 writes the run info and the summary
            return self.paths
        save_run_info(
            self.out, self.cfg, extra={"stage": "reproduce", "stages": stages, "timings": self.timings}
        )
        self.write_summary()
        return self.paths

    def run_stages(self, stages: list[str]) -> None:
        """Run ``stages`` in order (each on the ranks it runs on), filling :attr:`timings` (seconds)."""
        fns = self.stage_fns()
        start = time.time()
        name_checked = False
        for i, stage in enumerate(stages, 1):
            fn, module = fns[stage]
            if not _has(module):
                note = f"stage {stage!r} skipped: {module} is not part of this installation"
                print(f"==> [{i}/{len(stages)}] {note}")
                self.notes.append(note)
                continue
            if stage in self.rank_zero_stages and not is_global_zero():
                print(
                    f"==> [{i}/{len(stages)}] {stage}: runs on global rank 0 (this is rank {global_rank()})"
                )
                continue
            if stage in LOGGING_STAGES and not name_checked:  # the data can be read: before the first log
                from gastrodistill.sharing.publish import check_logged_names_in_data

                check_logged_names_in_data(self.cfg, self.datamodule())
                if "evaluate" in stages:  # empty splits, a positive class of other data: not after distilling
                    from gastrodistill.evaluation.splits import check_evaluation_data

                    check_evaluation_data(self.cfg, self.datamodule())
                    self.check_random_subsets(stages)
                name_checked = True
            print(f"==> [{i}/{len(stages)}] {stage} (elapsed {time.time() - start:.0f} s)", flush=True)
            t0 = time.time()
            fn()
            self.timings[stage] = time.time() - t0
            print(f"<== {stage} done in {self.timings[stage]:.0f} s", flush=True)
        self.timings["total"] = time.time() - start

    @staticmethod
    def _draws_random_subsets(baselines: Any) -> bool:
        """Whether ``eval.baselines.methods`` lists a random-subset baseline (``random``, ``random_soft``)."""
        from gastrodistill.evaluation.jobs import RANDOM_SUBSET_BASELINES

        return bool(RANDOM_SUBSET_BASELINES & {str(m) for m in baselines.get("methods") or []})

    def check_random_subsets(self, stages: list[str]) -> None:
        """Before the distillation, refuse random-subset baselines that would draw more training images of
        a class than it has (:func:`~gastrodistill.evaluation.splits.check_random_subset_size`), the size
        being ``eval.baselines.n_per_class`` or, for sets distilled in this run, ``distill.ipc x
        distill.steps``; sets read from the folder are checked by the evaluation itself."""
        baselines = self.cfg.eval.baselines
        if not self._draws_random_subsets(baselines):
            return
        n = baselines.get("n_per_class")
        if n is None and "distill" in stages:
            n = int(self.cfg.distill.ipc) * int(self.cfg.distill.steps)
        if n is not None:
            from gastrodistill.evaluation.splits import check_random_subset_size

            check_random_subset_size(self.datamodule(), int(n))

    def check_sets_present(self, stages: list[str]) -> None:
        """Stages that read distilled sets, run without the distill stage in a folder that holds none (a
        new run folder: ``hydra.run.dir`` not given), are refused here, before the run record is written,
        so the empty folder is removed: the evaluation alone needs ``eval.baselines.n_per_class`` then
        (baselines only), the audit and the artifact stage always need sets. Raises
        :class:`ReproduceConfigError` saying which folder to run in."""
        needing = [s for s in ("evaluate", "audit", "artifact") if s in stages]
        if "distill" in stages or not needing or self.distilled_sets():
            return
        baselines = (self.cfg.get("eval") or {}).get("baselines") or {}
        if needing == ["evaluate"] and (
            baselines.get("n_per_class") is not None or not self._draws_random_subsets(baselines)
        ):
            return  # the baselines alone: random subsets need their size, the others nothing
        raise ReproduceConfigError(
            f"stage {needing[0]!r} needs distilled sets, and this run folder ({self.out}) holds none "
            f"(distill/<mode>/distilled.json): run it in the folder of a run that distilled them "
            f"(hydra.run.dir=outputs/{self.cfg.experiment_name}/runs/<time>), or put 'distill' before it in "
            f"`stages`"
            + (
                "; to evaluate the baselines alone, set eval.baselines.n_per_class=N"
                if needing == ["evaluate"]
                else ""
            )
        )

    def check_evaluation_resume(self, stages: list[str]) -> None:
        """A re-run of the evaluate stage on this folder's data and sets (no generate, patches or distill
        stage before it) whose finished networks were trained with other settings is refused here, before
        the run record (``config.yaml``, ``run_info.json``) is rewritten: the evaluation's own check
        (``Study.check_finished``) came after it, so a refused run left the record naming settings that
        none of the folder's networks had. Raises ``EvaluationConfigError`` naming the keys.

        A resume that evaluates (``stages=[distill,evaluate]``, ``distill.resume``) checks the baselines'
        networks the same way before distilling: the resume changes the sets (and retires their networks),
        not the baselines, which were refused only after the distillation."""
        from gastrodistill.evaluation import report

        eval_dir = self.out / "eval"
        if "evaluate" not in stages or {"generate", "patches"} & set(stages):
            return
        resuming = "distill" in stages
        if resuming and self.cfg.distill.get("resume") in (None, ""):
            return  # a fresh distillation into a folder with sets is refused on its own
        if not is_global_zero() or not report.finished_jobs(eval_dir):  # rank 0 evaluates and writes
            return
        sets = self.distilled_sets()
        if resuming and not sets:
            return
        from gastrodistill.evaluation.checks import check_distilled_sets
        from gastrodistill.evaluation.run import check_finished_networks

        if not resuming:  # a set that does not fit the data is the first thing to say (not stale records)
            check_distilled_sets(sets, self.datamodule())
        skip = self.modes() if resuming else ()
        check_finished_networks(self.cfg, self.datamodule(), sets, eval_dir, skip_methods=skip)

    def stale_stages(self) -> list[str]:
        """The later stages to run again after this run's distill stage (a resume in an existing run folder):
        those this run did not redo whose outputs in the folder do not describe the current sets
        (``eval/results.md`` without a current evaluation of them; ``audit/``
        without an audit of them; an ``artifacts/<set>`` of other content: :meth:`describes`). Decided
        from the outputs, not from this command alone: a second resume with no step left still names the
        outputs the first one made stale. Empty without a distill stage."""
        if "distill" not in self.timings:
            return []
        sets = self.distilled_sets()
        outputs = {"evaluate": "eval/results.md", "audit": "audit", "artifact": "artifacts"}
        return [
            stage
            for stage, path in outputs.items()
            if stage not in self.timings and (self.out / path).exists() and not self.describes(stage, sets)
        ]

    def describes(self, stage: str, sets: dict[str, Any]) -> bool:
        """Whether the folder's output of ``stage`` (evaluate, audit or artifact) is of ``sets`` as they are:
        a current evaluation (``current_results``), an audit of them (:meth:`saved_audit`), artifacts of
        the same content (:meth:`artifact_is_stale`)."""
        from gastrodistill.evaluation.run import current_results

        if stage == "evaluate":
            return current_results(self.cfg, self.datamodule(), sets, self.out / "eval") is not None
        if stage == "audit":
            return self.saved_audit(sets, None) is not None
        return not any(self.artifact_is_stale(name, ds) for name, ds in sets.items())

    def artifact_is_stale(self, name: str, distilled: Any) -> bool:
        """Whether ``artifacts/<name>`` exists and holds another set than ``distilled`` (or is unreadable)."""
        from gastrodistill.evaluation.record_settings import set_digest
        from gastrodistill.sharing.artifact import load_artifact

        folder = self.out / "artifacts" / name
        if not folder.is_dir():
            return False

        try:
            published, _ = load_artifact(folder)
        except Exception:  # noqa: BLE001 - an artifact that cannot be read is published again
            return True
        return set_digest(published) != set_digest(distilled)

    def write_summary(self) -> Path:
        """Write ``SUMMARY.md`` (timings, notes, results, outputs) and ``timings.json``; returns the first."""
        md = self.out / "eval" / "results.md"
        later = self.stale = self.stale_stages()  # read once: each asks current_results or the audit
        stale = "evaluate" in later  # eval/results.md describes the sets this run replaced
        if later:  # a resumed distillation replaced the sets that the folder's later outputs describe
            folders = {"evaluate": "eval/", "audit": "audit/", "artifact": "artifacts/"}
            shown = " and ".join(folders[s] for s in later)
            self.notes.append(
                f"{shown} in this folder do not describe the distilled sets as they are now (a resume "
                f"changed them): run 'stages=[{','.join(later)}]' here (hydra.run.dir=...) to bring them "
                "up to date"
            )
        lines = [f"# {self.cfg.experiment_name}: reproduction summary", ""]
        lines += ["| stage | wall time (s) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in self.timings.items()]
        lines += ["", "## Recipe", ""] + [f"- {line}" for line in recipe_lines(self.cfg, self.modes())]
        lines += ["", "## Outputs (paths in this run folder relative to it; no folder outside it named)", ""]
        lines += [f"- {k}: {self.shown_path(k, v)}" for k, v in self.paths.items()]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.state.get("results") is not None:
            lines += [
                "",
                "## Targets (distillation architecture, replay schedule; docs/evaluation.md)",
                "",
            ]
            lines += [f"- {t}" for t in target_lines(self.state["results"])]
        if md.is_file() and not stale:
            lines += ["", md.read_text()]
        path = write_text_atomic(self.out / "SUMMARY.md", "\n".join(lines) + "\n")
        write_text_atomic(self.out / "timings.json", json.dumps(self.timings, indent=2))
        self.paths["summary"] = path
        return path

    def shown_path(self, what: str, path: Path) -> str:
        """``path`` as ``SUMMARY.md`` gives it: relative to the run folder when inside it (so a moved or
        copied folder's summary stays true); else by the config key that holds it (:data:`OUTSIDE_KEYS`:
        the data's folder often names the site, and a summary is read by others), never as a local path."""
        path = Path(path)
        try:
            return f"`{path.resolve().relative_to(self.out.resolve()).as_posix()}`"
        except ValueError:
            key = OUTSIDE_KEYS.get(what)
            if key == "data.store_root":  # one folder per store under it: its name tells them apart
                return f"`{path.name}` under `{key}` (config.yaml)"
            return f"`{key}` (config.yaml)" if key else "outside the run folder (config.yaml)"


#: Outputs outside the run folder, named in ``SUMMARY.md`` by the config key that holds them.
OUTSIDE_KEYS = {"data": "paths.data_root", "patch store": "data.store_root"}


#: The files of a run folder's record that a later run in the same folder rewrites.
RUN_RECORD = (*RECORD_FILES, "timings.json", "SUMMARY.md")


def keep_earlier_record(out: Path) -> Path | None:
    """Before a run in an existing run folder ``out`` (``hydra.run.dir``: say, one stage again) rewrites its
    record, copy the earlier record's files (:data:`RUN_RECORD`) to ``out/history/<n>/`` (n = 1, 2, ...), so
    the command that made the folder's outputs stays on record. Returns that folder, or None when ``out``
    holds no earlier record. (Hydra's ``.hydra/`` is rewritten before any of our code runs.)"""
    import shutil

    present = [f for f in RUN_RECORD if (out / f).is_file()]
    if "run_info.json" not in present:
        return None
    dest = next_history_folder(out, create=False)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in present:
        shutil.copy2(out / f, tmp / f)
    tmp.rename(dest)  # whole or not at all
    return dest


def put_back_record(out: Path, kept: Path) -> None:
    """Undo :func:`keep_earlier_record` for a command stopped or failed before any of its stages finished:
    the earlier record's files in ``kept`` (``history/<n>``) go back to ``out``, so the run record keeps
    describing the outputs beside it (a re-run stopped midway had left its own settings there, beside the
    earlier command's table and audit), and ``kept`` is removed when it holds nothing else (evaluation
    records that a resume retired there stay)."""
    import shutil

    for name in RUN_RECORD:
        if (kept / name).is_file():
            tmp = out / f".{name}.tmp"
            shutil.copy2(kept / name, tmp)
            tmp.replace(out / name)
    if all(p.name in RUN_RECORD for p in kept.iterdir()):
        shutil.rmtree(kept, ignore_errors=True)
        history = kept.parent
        if not any(history.iterdir()):
            history.rmdir()


def next_history_folder(out: Path, create: bool = True) -> Path:
    """``out/history/<n>`` for the first n = 1, 2, ... not taken (made when ``create``)."""
    n = 1
    while (out / HISTORY_DIR / str(n)).exists():
        n += 1
    dest = out / HISTORY_DIR / str(n)
    if create:
        dest.mkdir(parents=True)
    return dest


def _one_device(cfg: DictConfig) -> bool:
    """True when the trainer uses one device on one node (no launcher that would start processes itself)."""
    t = cfg.get("trainer") or {}
    return str(t.get("devices", 1)) == "1" and int(t.get("num_nodes", 1) or 1) == 1


def _child(resolved: dict[str, Any], threads: int, prepare: str | None = None) -> tuple[DictConfig, Any]:
    """In a child process of :meth:`Pipeline._distill_in_processes`: ``threads`` torch threads, the config
    and its data module (``prepare_data()`` and ``setup(prepare)`` run when ``prepare`` is given; ``""``:
    ``setup()`` for every stage)."""
    torch.set_num_threads(threads)
    cfg = OmegaConf.create(resolved)
    dm = hydra.utils.instantiate(cfg.data)
    if prepare is not None:
        dm.prepare_data()
        dm.setup(prepare or None)
    return cfg, dm


def _distill_mode(
    resolved: dict[str, Any],
    output_dir: str,
    mode: str,
    resume: Path | None,
    threads: int,
    teacher_file: str | None = None,
) -> str:
    """Child process of :meth:`Pipeline._distill_in_processes`: one label mode, saved under ``output_dir``
    (its texture-matching teacher loaded from ``teacher_file`` when given)."""
    from gastrodistill.distillation.run import run_distillation

    cfg, dm = _child(resolved, threads)  # run_distillation prepares the data itself
    run_distillation(cfg, dm, output_dir, mode=mode, resume=resume, teacher_file=teacher_file)
    return mode


def _shared_teacher(cfg: DictConfig) -> bool:
    """Whether the distillation trains a texture-matching teacher (matching on, ``features: teacher``)."""
    from gastrodistill.distillation.texture_matching import check_texture_config

    tmc = check_texture_config(cfg.distill.get("texture_matching"))
    return bool(tmc["steps"]) and tmc["features"] == "teacher"


def _save_teacher(cfg: DictConfig, dm: Any, path: str | Path) -> None:
    """The texture-matching teacher, trained once for every label mode and saved to ``path``: the network
    each mode would train for itself (same seeds, same thread count), so the sets equal theirs."""
    from gastrodistill.distillation.run import network_factory, train_texture_teacher
    from gastrodistill.models.weights import save_weights

    save_weights(train_texture_teacher(cfg, dm, network_factory(cfg, dm)), path)


def _texture_teacher(resolved: dict[str, Any], path: str, threads: int) -> str:
    """Child process of :meth:`Pipeline._distill_in_processes`: the texture-matching teacher, to ``path``."""
    cfg, dm = _child(resolved, threads, prepare="fit")  # as run_distillation prepares it
    _save_teacher(cfg, dm, path)
    return path


def _reference_job(resolved: dict[str, Any], output_dir: str, threads: int) -> bool:
    """Child process of :meth:`Pipeline._distill_in_processes`: the evaluation's reference network, ahead."""
    from gastrodistill.evaluation.run import run_reference_job

    cfg, dm = _child(resolved, threads, prepare="")  # as Pipeline.datamodule() prepares it
    return run_reference_job(cfg, dm, output_dir)


def _augment_text(node: Any) -> str:
    """The DSA's operations as built (its defaults included, e.g. the flip), or the node's own keys."""
    from gastrodistill.distillation.augment import DSA

    obj = hydra.utils.instantiate(node)
    if isinstance(obj, DSA):
        ops = ("flip", "rotate", "scale", "translate", "brightness", "contrast", "shift_px")
        words = {"flip": "flip", "shift_px": f"shift {obj.shift_px} px"}
        return ", ".join(words.get(k) or f"{k} {getattr(obj, k):g}" for k in ops if getattr(obj, k)) or "none"
    return ", ".join(f"{k} {v}" for k, v in node.items() if not str(k).startswith("_")) or str(
        node.get("_target_")
    )


def recipe_lines(cfg: DictConfig, modes: list[str]) -> list[str]:
    """What a reader comparing runs needs besides the table (from the resolved config; no paths): the data
    (the synthetic generator's name and seed when the run generated it, the patch and storage size), the
    network, the distiller (images, unroll, start, outer loop, augmentation, backend and precision) and the
    evaluation (networks per row, schedules, architectures), and the networks' whitening (``data.zca``)."""
    d, ev = cfg.distill, cfg.get("eval") or {}
    model = {
        k: v for k, v in OmegaConf.to_container(cfg.model, resolve=True).items() if not k.startswith("_")
    }
    name = str(cfg.model.get("_target_", "?")).rsplit(".", 1)[-1]
    t = int(d.steps) * int(d.epochs)
    dm = (d.get("distribution_matching") or {}).get("steps", 0) or 0
    tm = d.get("texture_matching") or {}
    # gastric patches are stored at storage_size (null: their own size); other data keep their image size
    size = (cfg.data.get("storage_size") or cfg.data.patch_size) if "patch_size" in cfg.data else None
    data = str(cfg.data.get("_target_", "?")).rsplit(".", 1)[-1]
    syn = cfg.get("synthetic")
    if syn is not None and size and "generate" in [str(x) for x in cfg.get("stages") or []]:
        data += f", synthetic data {syn.get('name', '?')!r} (generator seed {syn.get('seed', '?')})"
    if size:
        data += f", {cfg.data.patch_size} px patches stored at {size} px"
    window = d.get("window")
    dsa = d.get("dsa")
    augment = "none" if not dsa else _augment_text(dsa)
    clip = d.get("grad_clip_ema")
    zca = zca_settings(cfg.data.get("zca"))
    whitening = (
        f", behind a {zca['kernel_size']} px local ZCA filter of the training split (eps {zca['eps']}, "
        f"{zca['max_windows']} windows of at most {zca['max_images']} images)"
        if zca
        else ""
    )
    lines = [
        f"data: {data}; run seed {cfg.seed}",
        f"network: {name} ({', '.join(f'{k} {v}' for k, v in model.items())}){whitening}",
        f"distillation ({', '.join(modes)}): {int(d.ipc) * int(d.steps)} images per class "
        f"(ipc {d.ipc} x {d.steps} steps); T = {t} inner steps ({d.steps} x {d.epochs} epochs), "
        f"momentum {d.get('inner_momentum', 0.0) or 0.0}, lr_init {d.lr_init}, "
        + (f"a differentiable window of {window} steps" if window else "the whole unroll differentiable")
        + f"; start {d.image_init}"
        + (
            f" + {tm.get('steps')} texture-matching steps ({tm.get('features', 'teacher')} features, "
            f"exaggeration {tm.get('exaggeration', 1.0)}"
            + (f" ± {tm.get('exaggeration_spread')}" if tm.get("exaggeration_spread") else "")
            + ")"
            if tm.get("steps")
            else ""
        )
        + (f" + {dm} distribution-matching steps" if dm else "")
        + f"; {d.outer_steps} outer steps, real batch {d.batch_real}, lr images / labels / lrs "
        f"{d.lr_images} / {d.lr_labels} / {d.lr_lrs}"
        + (f", meta-gradient clipped at {clip} x its running norm" if clip else "")
        + f"; augmentation (DSA) {augment}; backend {d.get('backend', 'func')}, precision "
        f"{d.get('precision', '32-true')}",
    ]
    if ev:
        n = ev.get("n_networks", "?")
        archs = [name if str(a) == "same" else str(a) for a in ev.get("architectures") or []]
        lines.append(
            f"evaluation: {n} fresh network{'' if n == 1 else 's'} per row; schedules "
            f"{', '.join(map(str, ev.get('schedules') or []))}; architectures {', '.join(archs)}"
        )
    return lines


def target_lines(df: pd.DataFrame) -> list[str]:
    """The study's targets as measured (``evaluation.results.target_lines``: no "nan ... NOT met" lines)."""
    from gastrodistill.evaluation.results import target_lines as lines

    return lines(df)


def run(cfg: DictConfig) -> dict[str, Path]:
    """Run ``cfg.stages`` and print where everything went."""
    pipe = Pipeline(cfg)
    paths = pipe.run()
    if not is_global_zero():
        print(f"rank {global_rank()}: done (evaluation, audit and outputs are global rank 0's)")
        return paths
    results = pipe.out / "eval" / "results.md"
    if results.is_file() and "evaluate" not in pipe.stale:  # not a table of replaced sets
        print(results.read_text())
    for note in pipe.notes:
        print(f"note: {note}")
    if pipe.state.get("results") is not None:
        print("\n".join(target_lines(pipe.state["results"])))
    print(f"whole study: {pipe.timings['total']:.0f} s")
    width = max((len(k) for k in paths), default=0)
    for k, v in paths.items():
        print(f"  {k:<{width}}  {v}")
    return paths


def check_mode_override(overrides: Sequence[str], modes: list[str], mode: str) -> None:
    """Refuse a label mode chosen on the command line (Hydra's override strings ``overrides``), which
    ``gastrodistill-reproduce`` would ignore: it distils one set per ``reproduce.distill_modes``
    (``modes``) and passes each mode to the stage.

    Refused: ``distill.mode`` in any form (set, ``++``, ``~``), and a ``distill=<option>`` whose own
    mode (``mode``, the composed ``distill.mode``) is ``hard`` while ``modes`` is not ``[hard]`` (e.g.
    ``distill=hard_cpu``: its other values are used for both label modes). A soft option is the usual
    way to choose a recipe and passes. Raises :class:`ReproduceConfigError` saying which key to set.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from gastrodistill.distillation.distilled_set import MODES

    def advice(value: object) -> str:
        if value in MODES:
            return f"set reproduce.distill_modes=[{value}] to distil only {value} labels"
        return "set reproduce.distill_modes to [soft], [hard] or [soft,hard]"

    for override in OverridesParser.create().parse_overrides(list(overrides)):
        if override.key_or_group == "distill.mode":
            value = override.value() if override.value_type is not None else None
            raise ReproduceConfigError(
                f"distill.mode does not choose what gastrodistill-reproduce distils: it runs one set per "
                f"reproduce.distill_modes (here {modes}). Drop distill.mode and {advice(value)} (or run "
                "the distill stage alone: gastrodistill-distill distill.mode=...)"
            )
        if override.key_or_group == "distill" and mode == "hard" and modes != ["hard"]:
            raise ReproduceConfigError(
                f"distill={override.value()} sets distill.mode=hard, which gastrodistill-reproduce does not "
                f"use: it distils one set per reproduce.distill_modes (here {modes}) with that config's "
                f"other values. Keep distill={override.value()} and {advice('hard')}, or choose a soft "
                "option (e.g. distill=soft_cpu) to distil both"
            )


def check_values(cfg: DictConfig, overrides: Sequence[str] = (), here: bool = True) -> None:
    """A sweep job's values, checked before the sweep's first job starts: :meth:`Pipeline.check_values`
    (``here``: the job runs on this machine) and :func:`check_mode_override` of the job's ``overrides``."""
    pipe = Pipeline(cfg)
    pipe.check_values(here)
    check_mode_override(overrides, pipe.modes(), str(cfg.distill.get("mode")))


@check_override_keys(CONF_DIR, check_values=check_values)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-reproduce``: the mode override checked, then :func:`run`."""
    from hydra.core.hydra_config import HydraConfig

    # the override strings as typed: reading them from the ListConfig would resolve ${...} in their values
    typed = OmegaConf.to_container(HydraConfig.get().overrides.task, resolve=False)
    check_mode_override(typed, Pipeline(cfg).modes(), str(cfg.distill.get("mode")))
    run(cfg)


if __name__ == "__main__":
    main()
