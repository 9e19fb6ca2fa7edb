"""The evaluation's settings spread over worker processes on one machine (``eval.processes``).

On a CPU the networks of the evaluation are small and trained one after another, so one process with one
torch thread leaves the other cores idle. Here each setting (method, schedule, architecture: its learning
rate selection and all its networks) is one task of a ``spawn`` process pool (each full-data network, and
where networks train one by one each replayed network, a task of its own); a worker builds its
:class:`~gastrodistill.evaluation.study.Study` once (data module, cached splits) and runs the settings it is
handed. A free worker gets the longest task that can start (each full-data network alone, then
standard-schedule settings, then replays), so the workers finish together. The ``random_soft`` settings
need the teacher, the reference network of job ``full__real__same__0``: they can start once that job is
done (or at once when an earlier run left ``reference.safetensors``), so no worker trains it twice.

Every network is seeded by its job, and each setting's learning rate is chosen inside its own task, so the
records equal a single process's (tested in ``tests/evaluation/test_engine.py``). Records are written by
the workers into the output folder as in a single-process run; the caller merges them with
:func:`~gastrodistill.evaluation.run.finalize`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from gastrodistill.evaluation.jobs import REAL_SCHEDULE, SAME, Job, by_setting
from gastrodistill.utils.worker_pool import spawn_pool

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule

Setting = tuple[str, str, str]

#: The worker's study, built once per worker process by :func:`_start_worker` (the pool's initializer).
_WORKER: dict[str, Any] = {}


def needs_teacher(setting: Setting) -> bool:
    """Whether the setting's training sets are labelled by the teacher (the reference network)."""
    return setting[0] == "random_soft"


Task = tuple[Setting, tuple[Job, ...]]


def tasks_of(jobs: Sequence[Job], split_replays: bool = False) -> list[Task]:
    """The pool's tasks, longest first: each full-data network alone (they share nothing), then each
    standard-schedule setting whole (its learning-rate selection is shared by its networks) on the
    distillation architecture, then on other architectures, then the replays; within a tier, more networks
    first (longest-processing-time order). ``split_replays``: each replayed network is a task of its own
    (where networks train one by one, not as an ensemble, a replay setting shares nothing between its
    networks), so that the last tasks are short and the workers finish together."""
    tasks: list[Task] = []
    for setting, group in by_setting(jobs).items():
        if setting[1] == REAL_SCHEDULE or (split_replays and setting[1] == "replay"):
            tasks += [(setting, (j,)) for j in group]
        else:
            tasks.append((setting, tuple(group)))

    def rank(task: Task) -> tuple[int, int]:
        (method, schedule, arch), group = task
        if schedule == REAL_SCHEDULE:
            tier = 0
        elif schedule == "standard":
            tier = 1 if arch == SAME else 2
        else:
            tier = 3
        return tier, -len(group)

    return sorted(tasks, key=rank)


def plan(jobs: Sequence[Job], reference_done: bool, split_replays: bool = False) -> tuple[list[Task], bool]:
    """The tasks in hand-out order (:func:`tasks_of`) and whether the teacher tasks may start at once.

    Teacher (``random_soft``) tasks wait for the task holding job ``full__real__same__0``; when no task
    holds it (finished earlier, or no full-data row) and its file is missing, a first task with no jobs
    trains the reference network alone, so that no two workers train it.
    """
    from gastrodistill.evaluation.study import Study

    tasks = tasks_of(jobs, split_replays)
    ready = reference_done or not any(needs_teacher(t[0]) for t in tasks)
    if not ready and not any(Study.REFERENCE_JOB in group for _, group in tasks):
        tasks.insert(0, (Study.REFERENCE_JOB.setting, ()))
    return tasks, ready


def _start_worker(
    resolved: dict[str, Any],
    datamodule: ImageDataModule,
    sets: dict[str, Any],
    out: str,
    threads: int,
    models: dict[str, dict[str, Any]],
    trained: Any = None,
) -> None:
    from gastrodistill.evaluation.networks import use_precomposed_models
    from gastrodistill.evaluation.study import Study

    torch.set_num_threads(threads)
    use_precomposed_models(models)  # the parent's compositions: its search path held the user's -cd folder
    cfg = OmegaConf.create(resolved)
    _WORKER["study"] = Study(cfg, datamodule, sets, out, progress=False)
    _WORKER["study"].write_progress = False  # the parent writes networks.csv
    if trained is not None:  # each trained network's job key to the parent's bar, as it ends
        _WORKER["study"].network_trained = lambda job: trained.put(job.key)


def _run_setting(setting: Setting, jobs: list[Job]) -> dict[str, Any]:
    study = _WORKER["study"]
    if not jobs:  # the reference network alone (its job is finished or not configured; its file is missing)
        study.reference()
        return {"selected": {}, "timings": []}
    study.run_setting(setting, jobs)
    return {"selected": dict(study.selected), "timings": study.timings[-1:]}


def _named(group: Sequence[Job]) -> str:
    """A task's jobs for an error note: their keys, or the reference network trained alone."""
    if not group:
        return "the reference network alone"
    return "jobs " + ", ".join(j.key for j in group)


def run_in_processes(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    jobs: Sequence[Job],
    processes: int,
    reference_done: bool,
    progress: bool = True,
) -> dict[str, Any]:
    """Train and score ``jobs`` in ``processes`` spawned workers (one torch thread each unless
    ``eval.num_threads`` says otherwise); records land in ``output_dir/records``.

    ``reference_done``: the reference network's file holds job ``full__real__same__0``'s network (teacher
    settings start at once); otherwise teacher settings wait for that job, or, when it is not among
    ``jobs``, for a first task that trains the reference alone.
    Returns ``{"selected": learning-rate selections, "timings": seconds per setting}``. A worker's error is
    re-raised here with its own class and message, and a note naming its task's setting and jobs (the
    worker's traceback names neither). ``datamodule`` and the sets are sent to the workers
    (pickled in memory, never written). ``progress``: a bar counted in networks, each as its worker reports
    it trained (a queue the workers put job keys on), or at the latest when its task ends.
    """
    import multiprocessing
    from queue import Empty

    from gastrodistill.evaluation.networks import eval_device, precompose_models
    from gastrodistill.evaluation.run import training_threads
    from gastrodistill.evaluation.study import NetworkBar, Study, ensemble_mode

    reference = Study.REFERENCE_JOB
    # replayed networks train one by one unless they train as an ensemble: then one task each
    one_by_one = not ensemble_mode(cfg.eval.get("ensemble", "auto"), eval_device(cfg))
    tasks, teacher_ready = plan(jobs, reference_done, split_replays=one_by_one)
    threads = training_threads(cfg, world_size=1)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    models = precompose_models(sorted({job.arch for job in jobs}))
    selected: dict[str, Any] = {}
    timings: list[dict[str, Any]] = []
    bar = NetworkBar(len(jobs), f"evaluation: fresh networks ({processes} processes)", progress)
    # the workers put each network's job key here as it is trained: the bar moves per network, not per
    # task (a standard-schedule setting's lr selection and networks, a minute or more on the CPU preset)
    trained = multiprocessing.get_context("spawn").Queue() if progress else None

    def count_trained() -> None:
        """Count the job keys the workers have put on the queue so far."""
        if trained is None:
            return
        try:
            while True:
                bar.trained(trained.get_nowait())
        except Empty:
            return

    with spawn_pool(  # a worker's error stops the other workers and surfaces at once
        processes,
        initializer=_start_worker,
        initargs=(resolved, datamodule, dict(distilled_sets), str(output_dir), threads, models, trained),
    ) as pool:
        running: dict[Future, Task] = {}
        while tasks or running:
            while len(running) < processes:
                task = next((t for t in tasks if teacher_ready or not needs_teacher(t[0])), None)
                if task is None:
                    break
                tasks.remove(task)
                running[pool.submit(_run_setting, task[0], list(task[1]))] = task
            done, _ = wait(running, timeout=1.0 if trained is not None else None, return_when=FIRST_COMPLETED)
            count_trained()
            for fut in done:
                setting, group = running.pop(fut)
                try:
                    result = fut.result()  # a worker's error surfaces here
                except BrokenProcessPool:  # a worker died: every running task fails, not only its own
                    raise
                except Exception as exc:
                    exc.add_note(f"in the evaluation worker's task {'/'.join(setting)} ({_named(group)})")
                    raise
                selected.update(result["selected"])
                timings += result["timings"]
                bar.trained(*(j.key for j in group))  # those whose message is still on its way, once
                teacher_ready = teacher_ready or reference in group or not group
    bar.close()
    if trained is not None:
        trained.close()
    return {"selected": selected, "timings": timings}
