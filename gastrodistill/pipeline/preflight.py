"""Every check ``gastrodistill-reproduce`` makes before any stage runs, so that a bad value stops the study
before data are generated or hours of distillation are spent (:class:`PreflightChecks`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import open_dict

from gastrodistill.pipeline.context import StudyContext
from gastrodistill.pipeline.stages import (
    GASTRIC_DATA,
    GASTRIC_STAGES,
    LOGGING_STAGES,
    SET_STAGES,
    STAGES,
    ReproduceConfigError,
)
from gastrodistill.utils.distributed import is_global_zero
from gastrodistill.utils.values import is_count, listed


def stage_list(cfg: Any) -> list[str]:
    """``cfg.stages`` as a list of names (``stages=distill`` without brackets: one stage, not its letters)."""
    return [str(s) for s in listed(cfg.get("stages") or [], str)]


def data_module_target(cfg: Any) -> str:
    """The ``_target_`` of ``cfg.data`` (the data module's class path), or ``""``."""
    return str((cfg.get("data") or {}).get("_target_", ""))


def check_sweep_collections(jobs: list[tuple[str, Any]]) -> None:
    """A sweep's jobs side by side (``(label, composed config)`` pairs,
    :func:`gastrodistill.cli.sweep_check.sweep_problem`): refuse jobs that generate different synthetic
    collections into one ``synthetic.root`` (``-m seed=0,1`` without ``synthetic.seed``), where each
    job's collection replaces the one before and an earlier job's run folder keeps sets whose data are
    gone (a later evaluation of it is refused). Jobs that generate nothing, or other data, are not
    compared. Raises :class:`ReproduceConfigError` naming the first two such jobs."""
    from gastrodistill.data.synthetic.generator import planned_collection

    first: dict[Path, tuple[str, int, str]] = {}
    for label, cfg in jobs:
        if (
            "generate" not in stage_list(cfg)
            or data_module_target(cfg) != GASTRIC_DATA
            or cfg.get("synthetic") is None
        ):
            continue
        root, seed, content = planned_collection(cfg.synthetic)
        earlier, earlier_seed, earlier_content = first.setdefault(root, (label, seed, content))
        if earlier_content != content:
            one = " (seeds differ), or add synthetic.seed=N to sweep the network seeds on one collection"
            raise ReproduceConfigError(
                f"sweep jobs {earlier} and {label} generate different synthetic collections into one "
                "synthetic.root, each replacing the one before, so the earlier jobs' sets would no longer "
                "match their data: give each job its own folder through paths.data_root, e.g. "
                f"'paths.data_root=data/synthetic/seed_${{seed}}'{one if seed != earlier_seed else ''}"
            )


class PreflightChecks(StudyContext):
    """The study's checks of its stages, values, networks and run folder (each raises the project's
    config error naming the key or folder to change)."""

    def check_values(self, here: bool = True) -> list[str]:
        """The stages to run, after every check of them and of the values they will read that needs no data
        and no run folder (``stages`` themselves, ``reproduce.*``, ``distill.*``, ``eval.*``, ``audit.*``
        and the networks): what :meth:`~gastrodistill.pipeline.pipeline.Pipeline.run` checks first, and
        what a sweep checks for each of its jobs before the first starts
        (:mod:`gastrodistill.cli.sweep_check`; ``here`` False: its jobs run on other machines, whose
        devices are not checked). Raises the project's config errors (``ReproduceConfigError``,
        ``DistillConfigError``, ``EvaluationConfigError``, ...)."""
        if isinstance(self.cfg.stages, str):  # stages=distill (no brackets): one stage, not its letters
            with open_dict(self.cfg):
                self.cfg.stages = [self.cfg.stages]
        stages = stage_list(self.cfg)
        if not stages:  # a run record and a summary of a study that did nothing
            raise ReproduceConfigError(
                f"stages is empty; list some of {list(STAGES)} in that order, e.g. 'stages=[evaluate]'"
            )
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
            from gastrodistill.distillation.texture_clusters import check_cluster_classes

            for mode in self.modes():
                check_distill_config(self.cfg.distill, mode)
            check_cluster_classes(self.cfg)
        if "evaluate" in stages:  # a bad eval.* value stops the study before the distillation, not after
            from gastrodistill.evaluation.jobs import validate

            validate(self.cfg.eval, here)
        if "audit" in stages:  # and every audit.* value, so a typo there does not wait for the audit
            from gastrodistill.anonymity.config_check import check_audit_config

            check_audit_config(self.cfg.audit)
        self.check_networks(stages)
        return stages

    def check_reproduce_section(self, stages: list[str], here: bool = True) -> None:
        """``reproduce.num_threads`` and ``parallel_modes``: integers >= 1 or null; ``distill_modes``: a
        list of label modes; ``trainer``: :func:`~gastrodistill.utils.distributed.check_accelerator_here`
        and ``check_launch`` (no GPU asked of a machine without one, processes that match the trainer:
        ``LaunchError``); test patients
        of both diagnoses when the study generates its data and evaluates. Raises
        :class:`ReproduceConfigError` naming the key (a word used to be a traceback, before any stage or
        at the distillation). ``here`` False (a sweep's jobs launched onto other machines): the device
        asked for is not checked against this one."""
        from gastrodistill.distillation.distilled_set import MODES

        for key in ("num_threads", "parallel_modes"):
            value = self.rcfg.get(key)
            if value is not None and not is_count(value):
                raise ReproduceConfigError(f"reproduce.{key} must be an integer >= 1 or null, got {value!r}")
        if here:  # a GPU this machine lacks; every stage of a rank > 0 is skipped or waits: its processes
            # must match the trainer
            from gastrodistill.utils.distributed import check_accelerator_here, check_launch

            check_accelerator_here(self.cfg.trainer)
            check_launch(self.cfg.trainer)
        if "generate" in stages and "evaluate" in stages and "synthetic" in self.cfg:
            for key in ("test_gastritis", "test_non_gastritis"):  # the study exited 0 with blank HM and AUC
                if self.cfg.synthetic.get(key) == 0:
                    raise ReproduceConfigError(
                        f"synthetic.{key}=0: the test split would hold no patient of that diagnosis, so the "
                        "patient HM and AUC could not be measured; use at least 1"
                    )
        data_target = data_module_target(self.cfg)
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
        if "generate" not in stages and data_module_target(self.cfg) == GASTRIC_DATA:
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
        names = listed(modes or [], str)
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

    def check_names_before_data(self, stages: list[str]) -> None:
        """A name the study logs under that holds a patient id, header value or path of the data's files,
        refused before the patch store is built when the data is on disk already (no ``generate``) and a
        stage logs (:func:`~gastrodistill.sharing.publish.check_logged_names_in_data` without the data
        module; it came after the store was built). Called by :meth:`Pipeline.run`, not by a sweep's check
        of its jobs (their configs resolve their run folders only once they run). Raises ``CardError``."""
        if "generate" not in stages and any(s in LOGGING_STAGES for s in stages):
            from gastrodistill.sharing.publish import check_logged_names_in_data

            check_logged_names_in_data(self.cfg, None, warn=False)

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
        data_target = data_module_target(self.cfg)
        dropped = [s for s in stages if s in GASTRIC_STAGES]
        if data_target == GASTRIC_DATA or not dropped:
            return stages
        kind = data_target.rsplit(".", 1)[-1] or "this data"
        note = f"stages {dropped} skipped: they build gastric patches, which {kind} does not read"
        if is_global_zero():
            print(f"==> {note}", flush=True)
        self.notes.append(note)
        return [s for s in stages if s not in GASTRIC_STAGES]

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
        needing = [s for s in SET_STAGES if s in stages]
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
