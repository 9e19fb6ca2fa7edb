"""The stages of a study and the driver that runs them in order (:class:`Pipeline`)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gastrodistill.pipeline.preflight import PreflightChecks
from gastrodistill.pipeline.run_record import (
    RUN_RECORD,
    keep_earlier_record,
    next_history_folder,
    put_back_record,
)
from gastrodistill.pipeline.stages import LOGGING_STAGES, SET_STAGES, STAGES, ReproduceConfigError
from gastrodistill.pipeline.summary import recipe_lines, sets_distill, sets_sections, shown_path, target_lines
from gastrodistill.pipeline.workers import (
    distill_in_processes,
    one_device,
    save_teacher,
    shared_teacher,
    teacher_folder,
)
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.distributed import global_rank, is_global_zero, world_size
from gastrodistill.utils.run_info import save_run_info

if TYPE_CHECKING:
    import pandas as pd


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


class Pipeline(PreflightChecks):
    """Holds what stages hand to each other (data module, distilled sets, results) and runs them.

    Rank-aware: ``generate`` runs on global rank 0 only (the others wait for the patch store in
    :meth:`datamodule`), ``distill`` on every rank, and the stages in :attr:`rank_zero_stages` on rank 0
    only. A stage that learns to shard its work across ranks (and gather on rank 0) leaves this set and
    checks :func:`~gastrodistill.utils.distributed.global_rank` / ``world_size`` itself.
    """

    #: Stages that only global rank 0 runs (they write the run's shared outputs).
    rank_zero_stages: frozenset[str] = frozenset({"generate", "evaluate", "audit", "artifact"})

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
        if workers > 1 and world_size() == 1 and one_device(self.cfg):
            threads = int(self.rcfg.get("num_threads") or torch.get_num_threads())
            distill_in_processes(self.cfg, self.out, modes, resume, workers, threads)
            for mode in modes:
                self.sets[mode] = DistilledSet.load(self.out / "distill" / mode)
                self.paths[f"distilled set ({mode})"] = self.out / "distill" / mode
            return
        share = world_size() == 1 and sum(resume[m] is None for m in modes) > 1 and shared_teacher(self.cfg)
        with contextlib.ExitStack() as stack:
            teacher = None
            if share:  # both modes match under one teacher: trained once here, loaded by each mode
                print("--- texture-matching teacher (once, for every mode)", flush=True)
                dm.setup("fit")  # as run_distillation prepares the data
                teacher = Path(stack.enter_context(teacher_folder(self.out))) / TEACHER_FILE
                save_teacher(self.cfg, dm, teacher)
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

    def record_sets_start(self) -> None:
        """The study's config takes the start settings (``image_init``, ``lr_init``, the matching phases, ...)
        that the folder's distilled sets record where the command gives others: a resumed set keeps its
        checkpoint's start and a set of an earlier command is used as it was made, so this run's
        ``config.yaml``, its stages' (evaluation, audit) and its W&B runs name the start that shaped the
        sets, not the command's (a breaker's finding); a note says which. A setting the sets record
        differently stays the command's (each set's ``config.yaml`` is its own); nothing when a set records
        none. Rank 0, which writes the records; once per run, before the first stage that reads the sets
        (or after the distill stage when none does)."""
        from gastrodistill.distillation.distilled_set import META_FILE
        from gastrodistill.distillation.resume import with_sets_start

        if not is_global_zero():
            return
        finished = [m for m in self.modes() if (self.out / "distill" / m / META_FILE).is_file()]
        sections = sets_sections(self.out, finished)
        keys = with_sets_start(self.cfg, list(sections.values())) if len(sections) == len(finished) else []
        if keys:
            named = ", ".join(f"distill.{k}" for k in keys)
            note = (
                f"distill: the distilled sets were started with other {named} than this command gives (a "
                "resume keeps its checkpoint's start; a set of an earlier run is used as it was made), so "
                "this run's records give the sets' values"
            )
            print(note, flush=True)
            self.notes.append(note)

    def resume_checkpoints(self) -> dict[str, Path | None]:
        """Per mode, the checkpoint ``distill.resume`` names (each mode its own, never a shared one).

        A mode without a checkpoint starts from step 0 (say, the hard run never started before the
        interruption); when a resume was asked for and no mode has one, :class:`ResumeError`, except with
        ``distill.resume=auto``: every mode then starts from step 0.
        """
        from gastrodistill.distillation.resume import (
            OtherModeCheckpoint,
            ResumeError,
            missing_message,
            starts_when_none,
        )
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
        if spec not in (None, "") and not starts_when_none(spec) and not any(found.values()):
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

    def run(self) -> dict[str, Path]:
        """Check the values, then run ``cfg.stages`` with the run record kept and written; returns what
        went where (label -> path); rank 0 also writes ``SUMMARY.md``."""
        stages = self.check_values()
        self.check_names_before_data(stages)
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
            from gastrodistill.utils.atomic import recover_interrupted_swap

            # a swap of audit/ or an artifact killed between its renames (SIGKILL): the earlier folder goes
            # back before any stage reads it (stages=[artifact] published "not audited" cards beside it)
            for folder in [self.out / "audit", *(self.out / "artifacts" / m for m in self.modes())]:
                if folder.parent.is_dir():
                    recover_interrupted_swap(folder)
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
        name_checked = start_recorded = False
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
            if stage in SET_STAGES and not start_recorded:  # before its records: they name the sets' start
                self.record_sets_start()
                start_recorded = True
            print(f"==> [{i}/{len(stages)}] {stage} (elapsed {time.time() - start:.0f} s)", flush=True)
            t0 = time.time()
            fn()
            self.timings[stage] = time.time() - t0
            print(f"<== {stage} done in {self.timings[stage]:.0f} s", flush=True)
        if "distill" in stages and not start_recorded:  # a run that only distilled: its config.yaml too
            self.record_sets_start()
        self.timings["total"] = time.time() - start

    def stale_stages(self) -> list[str]:
        """The later stages to run again since a resume changed the folder's sets: those this run did not
        redo whose outputs in the folder do not describe the current sets (``eval/results.md`` without a
        current evaluation of them; ``audit/`` without an audit of them; an ``artifacts/<set>`` of other
        content: :meth:`describes`). Decided from the outputs, not from this command alone: a second
        resume with no step left, or a later command of other stages (``stages=[artifact]`` after a
        distill-only resume), still names the outputs the first one made stale. Empty without sets."""
        sets = self.distilled_sets()
        if not sets:
            return []
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
        made, differ = sets_distill(self.out, self.modes())  # the sets' own recipe, not this command's
        if differ is not None:
            self.notes.append(differ)
        lines = [f"# {self.cfg.experiment_name}: reproduction summary", ""]
        lines += ["| stage | wall time (s) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in self.timings.items()]
        lines += ["", "## Recipe", ""] + [f"- {line}" for line in recipe_lines(self.cfg, self.modes(), made)]
        lines += ["", "## Outputs (paths in this run folder relative to it; no folder outside it named)", ""]
        lines += [f"- {k}: {shown_path(self.out, k, v)}" for k, v in self.paths.items()]
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
