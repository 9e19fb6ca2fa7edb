"""``gastrodistill-reproduce``: the whole study in one Hydra run folder (``make reproduce``).

    gastrodistill-reproduce experiment=cpu                  # ~20 min on 2 CPU cores
    gastrodistill-reproduce experiment=full trainer=ddp     # the paper's scale on GPUs
    gastrodistill-reproduce experiment=cpu 'stages=[distill,evaluate]'   # some stages only

Runs the stages of ``cfg.stages`` in order: ``generate`` (synthetic DATA_ROOT) → ``patches`` (patch
store) → ``distill`` (one set per ``reproduce.distill_modes``, soft and hard) → ``evaluate`` (baselines
and distilled sets: results table and plots) → ``audit`` (anonymity) → ``artifact`` (shareable sets).
Outputs: ``<run>/distill/<mode>``, ``<run>/eval``, ``<run>/audit``, ``<run>/artifacts/<mode>``, and
``<run>/SUMMARY.md`` listing them with each stage's wall time.

Several processes (``trainer=ddp``; Lightning's launcher, torchrun or SLURM, docs/distillation.md):
global rank 0 generates the data and builds the patch store while the others wait for it; every rank
distils; then only rank 0 runs the stages of :attr:`Pipeline.rank_zero_stages` (evaluate, audit,
artifact) and writes the run info and summary, while the other ranks end their part of the job.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.distributed import global_rank, is_global_zero, prepare_data_rank_zero_first
from gastrodistill.utils.run_info import save_run_info

STAGES = ("generate", "patches", "distill", "evaluate", "audit", "artifact")


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
        self.out = Path(cfg.paths.output_dir)
        self.rcfg = cfg.get("reproduce") or {}
        self.dm: Any = None
        self.sets: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.paths: dict[str, Path] = {}
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []

    # ---- shared pieces ---------------------------------------------------------------------------
    def datamodule(self):
        if self.dm is None:
            self.dm = hydra.utils.instantiate(self.cfg.data)
            prepare_data_rank_zero_first(self.dm)  # rank 0 builds the store; the others wait for it
            self.dm.setup()
        return self.dm

    def distilled_sets(self) -> dict[str, Any]:
        """The sets of this run, or those saved in ``<run>/distill`` by an earlier run of the stage."""
        if not self.sets:
            from gastrodistill.distillation.distilled_set import DistilledSet

            for mode in self.modes():
                d = self.out / "distill" / mode
                if (d / "distilled.json").is_file():
                    self.sets[mode] = DistilledSet.load(d)
        return self.sets

    def modes(self) -> list[str]:
        return [str(m) for m in self.rcfg.get("distill_modes", ["soft", "hard"])]

    # ---- stages ----------------------------------------------------------------------------------
    def generate(self) -> None:
        from gastrodistill.cli.generate import run as generate_run

        self.paths["data"] = Path(str(generate_run(self.cfg) or self.cfg.paths.data_root))

    def patches(self) -> None:
        from gastrodistill.cli.build_patches import summary_table

        dm = self.datamodule()
        store = getattr(dm, "store", None)
        if store is not None:
            self.paths["patch store"] = Path(store.path)
            if is_global_zero():
                print(summary_table(store.meta))

    def distill(self) -> None:
        from gastrodistill.distillation.run import run_distillation

        dm = self.datamodule()
        resume = self.resume_checkpoints()
        for mode in self.modes():
            if is_global_zero():
                print(f"--- distillation: {mode} labels")
            self.sets[mode] = run_distillation(
                self.cfg, dm, self.out / "distill", mode=mode, resume=resume[mode]
            )
            self.paths[f"distilled set ({mode})"] = self.out / "distill" / mode

    def resume_checkpoints(self) -> dict[str, Path | None]:
        """Per mode, the checkpoint ``distill.resume`` names (each mode its own, never a shared one).

        A mode without a checkpoint starts from step 0 (say, the hard run never started before the
        interruption); when a resume was asked for and no mode has one, :class:`ResumeError`.
        """
        from gastrodistill.distillation.resume import ResumeError, missing_message
        from gastrodistill.distillation.run import resume_checkpoint

        spec = self.cfg.distill.get("resume")
        found = {
            m: resume_checkpoint(self.cfg, m, self.out / "distill" / m, required=False) for m in self.modes()
        }
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
        from gastrodistill.evaluation.run import run_evaluation

        df = run_evaluation(
            self.cfg, self.datamodule(), self.distilled_sets(), self.out / "eval", state=self.state
        )
        self.state["results"] = df
        self.paths["results table"] = self.out / "eval" / "results.md"
        self.paths["results csv"] = self.out / "eval" / "results.csv"
        self.paths["plots"] = self.out / "eval" / "plots"

    def audit(self) -> None:
        from gastrodistill.anonymity.audit import run_audit

        sets = self._need_sets("audit")
        self.state["audit"] = run_audit(
            self.cfg, self.datamodule(), sets, self.out / "audit", real_model=self.state.get("real_model")
        )
        self.paths["anonymity audit"] = self.out / "audit" / "audit.md"
        if self.state.get("results") is not None:  # the audit's numbers join the results table
            from gastrodistill.evaluation.results import attach_audit, write_results

            self.state["results"] = attach_audit(self.state["results"], self.state["audit"])
            write_results(
                self.state["results"], self.out / "eval", title=f"Results: {self.cfg.experiment_name}"
            )

    def artifact(self) -> None:
        from gastrodistill.evaluation.run import method_metrics
        from gastrodistill.sharing.publish import publish_artifact

        for name, ds in self._need_sets("artifact").items():
            evaluation = method_metrics(self.state.get("results"), name)
            anonymity = (self.state.get("audit") or {}).get(name)
            path = publish_artifact(
                self.cfg,
                self.datamodule(),
                name,
                ds,
                self.out / "artifacts" / name,
                evaluation=evaluation,
                anonymity=anonymity,
            )
            self.paths[f"artifact ({name})"] = Path(path)

    def _need_sets(self, stage: str) -> dict[str, Any]:
        sets = self.distilled_sets()
        if not sets:
            raise ReproduceConfigError(
                f"stage {stage!r} needs distilled sets: put 'distill' before it in `stages`, or run it in a "
                f"run folder that already holds distill/<mode> (hydra.run.dir=...)"
            )
        return sets

    # ---- driver ----------------------------------------------------------------------------------
    def stage_fns(self) -> dict[str, tuple[Callable[[], None], str]]:
        return {
            "generate": (self.generate, "gastrodistill.cli.generate"),
            "patches": (self.patches, "gastrodistill.data.gastric"),
            "distill": (self.distill, "gastrodistill.distillation.run"),
            "evaluate": (self.evaluate, "gastrodistill.evaluation.run"),
            "audit": (self.audit, "gastrodistill.anonymity.audit"),
            "artifact": (self.artifact, "gastrodistill.sharing.publish"),
        }

    def run(self) -> dict[str, Path]:
        stages = [str(s) for s in self.cfg.stages]
        unknown = [s for s in stages if s not in STAGES]
        if unknown:
            raise ReproduceConfigError(
                f"stages {unknown} unknown; `stages` may list {list(STAGES)} in that order"
            )
        order = [STAGES.index(s) for s in stages]
        if order != sorted(order):
            raise ReproduceConfigError(f"stages {stages} are out of order; keep the order {list(STAGES)}")
        zero = is_global_zero()
        if zero:
            self.out.mkdir(parents=True, exist_ok=True)
            save_run_info(self.out, self.cfg, extra={"stage": "reproduce", "stages": stages})
        threads = self.rcfg.get("num_threads")
        if threads:
            torch.set_num_threads(int(threads))
        fns = self.stage_fns()
        start = time.time()
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
            print(f"==> [{i}/{len(stages)}] {stage} (elapsed {time.time() - start:.0f} s)", flush=True)
            t0 = time.time()
            fn()
            self.timings[stage] = time.time() - t0
            print(f"<== {stage} done in {self.timings[stage]:.0f} s", flush=True)
        self.timings["total"] = time.time() - start
        if not is_global_zero():  # rank 0 writes the run info and the summary
            return self.paths
        save_run_info(
            self.out, self.cfg, extra={"stage": "reproduce", "stages": stages, "timings": self.timings}
        )
        self.write_summary()
        return self.paths

    def write_summary(self) -> Path:
        lines = [f"# {self.cfg.experiment_name}: reproduction summary", ""]
        lines += ["| stage | wall time (s) |", "|---|---|"]
        lines += [f"| {k} | {v:.0f} |" for k, v in self.timings.items()]
        lines += ["", "## Outputs", ""] + [f"- {k}: `{v}`" for k, v in self.paths.items()]
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.state.get("results") is not None:
            lines += [
                "",
                "## Targets (patient-level HM on the distillation architecture, replay schedule)",
                "",
            ]
            lines += [f"- {t}" for t in target_lines(self.state["results"])]
        md = self.out / "eval" / "results.md"
        if md.is_file():
            lines += ["", md.read_text()]
        path = write_text_atomic(self.out / "SUMMARY.md", "\n".join(lines) + "\n")
        write_text_atomic(self.out / "timings.json", json.dumps(self.timings, indent=2))
        self.paths["summary"] = path
        return path


def target_lines(df) -> list[str]:
    """The issue's targets, as measured: soft >= 0.9 x full, soft > hard, both > a random real subset."""
    from gastrodistill.evaluation.run import headline

    h = headline(df)
    soft, hard, full, rand = h["soft_replay_hm"], h["hard_replay_hm"], h["full_hm"], h["random_hm"]

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"soft HM / full-data HM = {soft:.3f} / {full:.3f} = {soft / full if full else float('nan'):.3f} "
        f"(target >= 0.9: {verdict(soft >= 0.9 * full)})",
        f"soft HM - hard HM = {soft - hard:+.3f} (target > 0: {verdict(soft > hard)})",
        f"soft HM - random-subset HM = {soft - rand:+.3f}, hard - random = {hard - rand:+.3f} "
        f"(target both > 0: {verdict(soft > rand and hard > rand)})",
    ]


def run(cfg: DictConfig) -> dict[str, Path]:
    """Run ``cfg.stages`` and print where everything went."""
    pipe = Pipeline(cfg)
    paths = pipe.run()
    if not is_global_zero():
        print(f"rank {global_rank()}: done (evaluation, audit and outputs are global rank 0's)")
        return paths
    results = pipe.out / "eval" / "results.md"
    if results.is_file():
        print(results.read_text())
    if pipe.state.get("results") is not None:
        print("\n".join(target_lines(pipe.state["results"])))
    print(f"whole study: {pipe.timings['total']:.0f} s")
    width = max((len(k) for k in paths), default=0)
    for k, v in paths.items():
        print(f"  {k:<{width}}  {v}")
    return paths


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
