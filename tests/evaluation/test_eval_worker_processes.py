"""The evaluation's worker processes (``eval.processes``), their hand-out loop run in this process: the spawn
pool is replaced by one whose tasks run when the loop waits for them, the worker's study by one that logs
what it is asked to do. Each job runs once, teacher settings only after the reference network, a free
worker takes the next task, a worker's error reaches the caller naming its task, and every worker trains
with the evaluation's thread count and the parent's model configs. (The records of real workers against
one process: ``test_engine.py``.)"""

from __future__ import annotations

from concurrent.futures import ALL_COMPLETED, Future
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import torch
from _eval_sets import EVAL_GRID
from omegaconf import OmegaConf

from gastrodistill.evaluation import networks, processes
from gastrodistill.evaluation.jobs import build_jobs
from gastrodistill.evaluation.study import Study

BASE = [
    *EVAL_GRID,
    "eval.baselines.n_networks_full=2",
    "eval.progress=false",
    "eval.processes=2",
]
REFERENCE = Study.REFERENCE_JOB.key
START_WORKER = processes._start_worker  # the fixture below replaces it


class LoggingStudy:
    """A worker's study: logs each setting's job keys (or the reference network alone), keeps one lr
    selection per setting and one timing per call, as :class:`Study` does; raises on ``fail``."""

    def __init__(self, log: list, fail: tuple | None = None) -> None:
        self.log, self.fail = log, fail
        self.selected: dict = {}
        self.timings: list = []

    def run_setting(self, setting, jobs) -> None:
        if setting == self.fail:
            raise ValueError("boom")
        self.log.append(("run", setting, [j.key for j in jobs]))
        self.selected["/".join(setting)] = {"chosen": 0.01 * len(jobs)}
        self.timings.append({"setting": "/".join(setting), "n": len(jobs)})

    def reference(self) -> None:
        self.log.append(("reference",))


class InProcessPool:
    """``spawn_pool``'s stand-in: the initializer runs here once; a task runs when ``wait`` completes it,
    the task holding the reference network last (the slowest worker), so the other worker's tasks show."""

    def __init__(self, workers, initializer, initargs) -> None:
        self.workers, self.initargs = workers, initargs
        self.running: dict[Future, tuple] = {}
        self.submitted: list[dict] = []  # per task: its setting, job keys, and the tasks running beside it
        initializer(*initargs)

    def submit(self, fn, setting, jobs):
        fut: Future = Future()
        keys = [j.key for j in jobs]
        beside = [self.running[f][1] for f in self.running]
        self.submitted.append({"setting": setting, "keys": keys, "beside": beside})
        self.running[fut] = (fn, (setting, keys), (setting, jobs))
        return fut

    def holds_reference(self, fut) -> bool:
        _, (_, keys), _ = self.running[fut]
        return REFERENCE in keys or not keys

    def wait(self, fs, return_when):
        assert self.running, "waiting with no task running: the loop would spin for ever"
        assert len(self.running) <= self.workers, "more tasks handed out than workers"
        order = sorted(self.running, key=self.holds_reference)  # the reference's task finishes last
        finished = list(self.running) if return_when == ALL_COMPLETED else order[:1]
        for fut in finished:
            fn, _, args = self.running.pop(fut)
            try:
                fut.set_result(fn(*args))
            except Exception as exc:
                fut.set_exception(exc)
        return set(finished), set(self.running)


@pytest.fixture
def in_process(monkeypatch):
    """Run ``run_in_processes`` with :class:`InProcessPool` and :class:`LoggingStudy`; returns
    ``run(cfg, jobs, reference_done=False, fail=None) -> (result, pool, log)``."""
    made: dict = {}

    @contextmanager
    def pool(workers, initializer, initargs):
        made["pool"] = InProcessPool(workers, initializer, initargs)
        yield made["pool"]

    def run(cfg, jobs, reference_done=False, fail=None):
        log: list = []
        monkeypatch.setattr(processes, "spawn_pool", pool)
        monkeypatch.setattr(
            processes, "wait", lambda fs, return_when, timeout=None: made["pool"].wait(fs, return_when)
        )
        monkeypatch.setattr(
            processes, "_start_worker", lambda *a: processes._WORKER.update(study=LoggingStudy(log, fail))
        )
        result = processes.run_in_processes(
            cfg, "dm", {"soft": "set"}, "out", jobs, int(cfg.eval.processes), reference_done, progress=False
        )
        return result, made["pool"], log

    yield run
    processes._WORKER.clear()


def _ran(log) -> list[str]:
    return [key for entry in log if entry[0] == "run" for key in entry[2]]


@pytest.mark.parametrize("ensemble", ["false", "true"])
def test_each_job_runs_once_and_teacher_settings_start_after_the_reference_network(
    compose_cfg, in_process, ensemble
):
    """Two workers, the full-data network 0 the slowest task: every job runs exactly once, never more tasks
    out than workers, the other worker goes through every task that needs no teacher meanwhile, and the
    random_soft settings are handed out only after it (mutants: teacher tasks at once, the wait for all
    tasks, one task too many, replays split by the wrong ensemble mode)."""
    cfg = compose_cfg([*BASE, f"eval.ensemble={ensemble}"])
    jobs = build_jobs(cfg.eval, ["soft"])
    result, pool, log = in_process(cfg, jobs)
    assert sorted(_ran(log)) == sorted(j.key for j in jobs)
    assert ("reference",) not in log  # the full-data task trains it: no worker trains it alone
    assert max(len(t["beside"]) for t in pool.submitted) == 1  # two workers: one task beside the new one
    ref_task = next(i for i, t in enumerate(pool.submitted) if REFERENCE in t["keys"])
    teachers = [i for i, t in enumerate(pool.submitted) if processes.needs_teacher(t["setting"])]
    assert teachers and all(i > ref_task for i in teachers)
    for i in teachers:  # the reference's task had finished when a teacher task was handed out
        assert all(REFERENCE not in keys for _, keys in pool.submitted[i]["beside"])
    others = [t for i, t in enumerate(pool.submitted) if i != ref_task and i not in teachers]
    reference_task = (pool.submitted[ref_task]["setting"], [REFERENCE])
    assert all(reference_task in t["beside"] for t in others)  # handed out while the reference trained
    # replays: one task per network where networks train one by one (no ensemble), whole settings otherwise
    replays = [t["keys"] for t in pool.submitted if t["setting"][1] == "replay"]
    assert {len(k) for k in replays} == ({1} if ensemble == "false" else {2})
    # the caller gets every task's selections and one timing per task (not the worker's whole history)
    names = ["/".join(t["setting"]) for t in pool.submitted]
    chosen = {n: {"chosen": 0.01 * len(t["keys"])} for n, t in zip(names, pool.submitted, strict=True)}
    assert result["selected"] == chosen
    assert sorted(t["setting"] for t in result["timings"]) == sorted(names)


def test_without_the_full_data_job_one_task_trains_the_reference_first(compose_cfg, in_process):
    """No task holds job full__real__same__0 and its file is missing: a first task trains the reference
    alone, the teacher settings follow it (mutants: the reference alone not trained, not first, or the
    teacher settings never released: the loop span for ever); with its file, no such task."""
    cfg = compose_cfg([*BASE, "eval.baselines.methods=[random_soft,mean]"])
    jobs = build_jobs(cfg.eval, ["soft"])
    _, pool, log = in_process(cfg, jobs)
    assert sorted(_ran(log)) == sorted(j.key for j in jobs)
    assert log.count(("reference",)) == 1 and pool.submitted[0]["keys"] == []
    teachers = [i for i, t in enumerate(pool.submitted) if processes.needs_teacher(t["setting"])]
    assert teachers and all(all(keys for _, keys in pool.submitted[i]["beside"]) for i in teachers)
    assert teachers == list(range(len(pool.submitted) - len(teachers), len(pool.submitted)))  # the last ones
    _, pool, log = in_process(cfg, jobs, reference_done=True)
    assert ("reference",) not in log and all(t["keys"] for t in pool.submitted)
    first = next(i for i, t in enumerate(pool.submitted) if processes.needs_teacher(t["setting"]))
    later = pool.submitted[first + 1 :]
    assert any(not processes.needs_teacher(t["setting"]) for t in later)  # not held back to the end


def test_a_workers_error_reaches_the_caller_with_its_class_message_and_task(compose_cfg, in_process):
    """The worker's exception is re-raised unchanged, with a note naming the task's setting and jobs (the
    traceback named neither; mutant: a failed task's result taken as empty)."""
    cfg = compose_cfg(BASE)
    jobs = build_jobs(cfg.eval, ["soft"])
    with pytest.raises(ValueError) as info:
        in_process(cfg, jobs, fail=("mean", "standard", "same"))
    assert str(info.value) == "boom" and info.value.__notes__ == [
        "in the evaluation worker's task mean/standard/same (jobs mean__standard__same__0, "
        "mean__standard__same__1)"
    ]


def test_every_worker_trains_with_the_evaluations_thread_count_and_the_parents_model_configs(
    compose_cfg, in_process, monkeypatch
):
    """The workers get eval.num_threads, else 1 thread each (mutant: the parent's count), and the parent's
    composition of every architecture but ``same`` (mutant: the first job's only); a worker sets its torch
    threads, takes those configs, and builds its study without progress bars (mutants: each step left out)."""
    cfg = compose_cfg(BASE)
    jobs = build_jobs(cfg.eval, ["soft"])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _, pool, _ = in_process(cfg, jobs)
        resolved, dm, sets, out, threads, models, trained = pool.initargs
        assert (dm, sets, out, threads, trained) == (
            "dm",
            {"soft": "set"},
            "out",
            1,
            None,
        )  # no bar, no queue
        assert models == networks.precompose_models(["lenet"]) and set(models) == {"lenet"}
        _, pool, _ = in_process(compose_cfg([*BASE, "eval.num_threads=3"]), jobs)
        assert pool.initargs[4] == 3

        made: dict = {}

        class Recorded:
            def __init__(self, cfg, datamodule, sets, out, progress):
                made.update(cfg=cfg, datamodule=datamodule, sets=sets, out=out, progress=progress)

        monkeypatch.setattr("gastrodistill.evaluation.study.Study", Recorded)
        monkeypatch.setattr(networks, "_PRECOMPOSED", {})
        lenet = {**models["lenet"], "width": 5}
        START_WORKER(resolved, "dm", {"soft": "set"}, "out", 3, {"lenet": lenet})
        assert torch.get_num_threads() == 3
        assert networks.architecture_config(cfg, "lenet")["width"] == 5
        assert OmegaConf.to_container(made["cfg"]) == resolved
        assert (made["datamodule"], made["out"], made["progress"]) == ("dm", "out", False)
    finally:
        torch.set_num_threads(before)
        processes._WORKER.clear()


def test_within_a_tier_the_setting_with_more_networks_left_goes_first():
    """A resumed study leaves settings with fewer networks to train: the longest task is handed out first
    (mutant: fewer networks first)."""
    from gastrodistill.evaluation.jobs import Job

    jobs = [Job("mean", "standard", "same", 0)] + [Job("soft", "standard", "same", i) for i in range(3)]
    jobs += [Job("soft", "replay", "same", 2)] + [Job("hard", "replay", "same", i) for i in range(2)]
    assert [(s, len(g)) for s, g in processes.tasks_of(jobs)] == [
        (("soft", "standard", "same"), 3),
        (("mean", "standard", "same"), 1),
        (("hard", "replay", "same"), 2),
        (("soft", "replay", "same"), 1),
    ]


def test_the_bar_counts_each_network_as_a_worker_reports_it_and_each_job_once(
    compose_cfg, monkeypatch, capsys
):
    """With a bar, the workers get a queue (the last initarg) and their study puts each trained network's job
    key on it (:func:`processes._start_worker`); the parent counts those keys while it waits, before the
    task's end, and each job once however its count arrives (mutants: no queue, keys not drained, a job
    counted twice)."""
    import queue

    from gastrodistill.evaluation import study as study_module

    events: list[tuple] = []

    class Queue(queue.Queue):  # a multiprocessing queue's interface, without its feeder thread's delay
        def get_nowait(self):
            key = super().get_nowait()
            events.append(("got", key))
            return key

        def close(self) -> None:
            pass

    monkeypatch.setattr("multiprocessing.get_context", lambda method: SimpleNamespace(Queue=Queue))

    class LoggedBar(study_module.NetworkBar):
        def trained(self, *keys):
            events.append(("counted", keys))
            super().trained(*keys)

    monkeypatch.setattr(study_module, "NetworkBar", LoggedBar)
    made: dict = {}

    class ReportingStudy(LoggingStudy):
        def run_setting(self, setting, jobs) -> None:
            for j in jobs:
                made["queue"].put(j.key)
            super().run_setting(setting, jobs)

    @contextmanager
    def pool(workers, initializer, initargs):
        made["queue"] = initargs[-1]
        made["pool"] = InProcessPool(workers, lambda *a: None, initargs)
        processes._WORKER.update(study=ReportingStudy([]))
        yield made["pool"]

    monkeypatch.setattr(processes, "spawn_pool", pool)
    monkeypatch.setattr(
        processes, "wait", lambda fs, return_when, timeout=None: made["pool"].wait(fs, return_when)
    )
    cfg = compose_cfg(BASE)
    jobs = build_jobs(cfg.eval, ["soft"])
    try:
        processes.run_in_processes(cfg, "dm", {"soft": "set"}, "out", jobs, 2, False, progress=True)
    finally:
        processes._WORKER.clear()
    assert isinstance(made["queue"], Queue)
    for job in jobs:  # each network counted first as it came off the queue, before its task's end
        first = next(i for i, e in enumerate(events) if e[0] == "counted" and job.key in e[1])
        assert events[first - 1] == ("got", job.key) and events[first] == ("counted", (job.key,))
        assert sum(e[0] == "counted" and job.key in e[1] for e in events) == 2  # then again at the end
    err = capsys.readouterr().err
    assert f"{len(jobs)}/{len(jobs)}" in err and f"{len(jobs) + 1}/{len(jobs)}" not in err


def test_a_worker_given_a_queue_puts_each_trained_networks_job_key_on_it(monkeypatch):
    """:func:`processes._start_worker` with a queue: its study's ``network_trained`` puts the job's key."""
    import queue

    from gastrodistill.evaluation.jobs import Job

    class Recorded:
        def __init__(self, cfg, datamodule, sets, out, progress):
            pass

    monkeypatch.setattr("gastrodistill.evaluation.study.Study", Recorded)
    q: queue.Queue = queue.Queue()
    before = torch.get_num_threads()
    try:
        START_WORKER({"seed": 0}, "dm", {}, "out", 1, {}, q)
        processes._WORKER["study"].network_trained(Job("soft", "replay", "same", 3))
    finally:
        torch.set_num_threads(before)
        processes._WORKER.clear()
    assert q.get_nowait() == "soft__replay__same__3" and q.empty()
