"""The label modes distilled in child processes (``reproduce.parallel_modes``), and the texture-matching
teacher the modes share (:func:`distill_in_processes`)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gastrodistill.utils.worker_pool import spawn_pool


def one_device(cfg: DictConfig) -> bool:
    """True when the trainer uses one device on one node (no launcher that would start processes itself)."""
    t = cfg.get("trainer") or {}
    return str(t.get("devices", 1)) == "1" and int(t.get("num_nodes", 1) or 1) == 1


def _child(resolved: dict[str, Any], threads: int, prepare: str | None = None) -> tuple[DictConfig, Any]:
    """In a child process of :func:`distill_in_processes`: ``threads`` torch threads, the config
    and its data module (``prepare_data()`` and ``setup(prepare)`` run when ``prepare`` is given; ``""``:
    ``setup()`` for every stage)."""
    torch.set_num_threads(threads)
    cfg = OmegaConf.create(resolved)
    dm = hydra.utils.instantiate(cfg.data)
    if prepare is not None:
        dm.prepare_data()
        dm.setup(prepare or None)
    return cfg, dm


def distill_mode(
    resolved: dict[str, Any],
    output_dir: str,
    mode: str,
    resume: Path | None,
    threads: int,
    teacher_file: str | None = None,
) -> str:
    """Child process of :func:`distill_in_processes`: one label mode, saved under ``output_dir``
    (its texture-matching teacher loaded from ``teacher_file`` when given)."""
    from gastrodistill.distillation.run import run_distillation

    cfg, dm = _child(resolved, threads)  # run_distillation prepares the data itself
    run_distillation(cfg, dm, output_dir, mode=mode, resume=resume, teacher_file=teacher_file)
    return mode


def shared_teacher(cfg: DictConfig) -> bool:
    """Whether the distillation trains a texture-matching teacher (matching on, ``features: teacher``)."""
    from gastrodistill.distillation.texture_matching import check_texture_config

    tmc = check_texture_config(cfg.distill.get("texture_matching"))
    return bool(tmc["steps"]) and tmc["features"] == "teacher"


def save_teacher(cfg: DictConfig, dm: Any, path: str | Path) -> None:
    """The texture-matching teacher, trained once for every label mode and saved to ``path``: the network
    each mode would train for itself (same seeds, same thread count), so the sets equal theirs."""
    from gastrodistill.distillation.run import network_factory, train_texture_teacher
    from gastrodistill.models.weights import save_weights

    save_weights(train_texture_teacher(cfg, dm, network_factory(cfg, dm)), path)


def texture_teacher(resolved: dict[str, Any], path: str, threads: int) -> str:
    """Child process of :func:`distill_in_processes`: the texture-matching teacher, to ``path``."""
    cfg, dm = _child(resolved, threads, prepare="fit")  # as run_distillation prepares it
    save_teacher(cfg, dm, path)
    return path


def reference_job(resolved: dict[str, Any], output_dir: str, threads: int) -> bool:
    """Child process of :func:`distill_in_processes`: the evaluation's reference network, ahead."""
    from gastrodistill.evaluation.run import run_reference_job

    cfg, dm = _child(resolved, threads, prepare="")  # as StudyContext.datamodule() prepares it
    return run_reference_job(cfg, dm, output_dir)


def teacher_folder(out: Path) -> tempfile.TemporaryDirectory:
    """A temporary ``out/distill/.teacher-*`` folder for the texture-matching teacher handed to the label
    modes (removed when its context ends)."""
    (out / "distill").mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".teacher-", dir=out / "distill")


def distill_in_processes(
    cfg: DictConfig,
    out: Path,
    modes: list[str],
    resume: dict[str, Path | None],
    workers: int,
    threads: int,
) -> None:
    """One process per label mode (``reproduce.parallel_modes``), for one machine without DDP.

    The modes are independent runs, so on a CPU with as many free cores as modes (the 2-core preset:
    one torch thread each) they finish in about the time of one. Each process receives the resolved
    config (no Hydra context is needed there), rebuilds the data module from the patch store the
    parent has already built, and saves its set to ``out/distill/<mode>``, from where the parent loads it.
    ``threads``: torch threads per process; ``resume``: each mode's checkpoint or None.

    Texture matching with a teacher (``distill.texture_matching.features: teacher``): both modes match
    under the same teacher (same seeds), so one worker trains it first and the modes load it (the same
    network, at the same thread count) instead of each training its own. Beside it, when the run
    evaluates, the other worker trains the evaluation's reference network (job ``full__real__same__0``,
    :func:`~gastrodistill.evaluation.run.run_reference_job`), which the evaluation then skips: the
    same records, about one full-data network's training less wall time. The first mode starts on the
    teacher's worker as soon as the teacher is saved, the next on the first worker free.
    """
    from concurrent.futures import as_completed

    from gastrodistill.distillation.run import TEACHER_FILE

    resolved = OmegaConf.to_container(cfg, resolve=True)
    print(f"--- distillation: {', '.join(modes)} labels in {workers} processes", flush=True)
    share = shared_teacher(cfg) and any(resume[m] is None for m in modes)
    with (
        teacher_folder(out) as tmp,
        spawn_pool(workers) as pool,  # a child's error stops the other worker and prints at once
    ):
        teacher = Path(tmp) / TEACHER_FILE if share else None
        reference = None
        if teacher is not None:
            first = pool.submit(texture_teacher, resolved, str(teacher), threads)
            if "evaluate" in [str(s) for s in cfg.stages]:
                reference = pool.submit(reference_job, resolved, str(out / "eval"), threads)
            print(
                "--- texture-matching teacher (once, for every mode)"
                + (" beside the evaluation's reference network" if reference is not None else ""),
                flush=True,
            )
            first.result()  # re-raises the child's error (its class and message) here
        # the first mode takes the teacher's worker at once; the next, the first worker free
        jobs = {
            mode: pool.submit(
                distill_mode,
                resolved,
                str(out / "distill"),
                mode,
                resume[mode],
                threads,
                str(teacher) if teacher is not None and resume[mode] is None else None,
            )
            for mode in modes
        }
        for job in as_completed([*([reference] if reference is not None else []), *jobs.values()]):
            job.result()  # re-raises the first failing child's error (its class and message) here
