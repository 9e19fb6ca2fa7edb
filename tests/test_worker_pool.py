"""``spawn_pool``: a worker's error stops the other workers instead of waiting for their tasks."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from gastrodistill.utils.worker_pool import spawn_pool

#: Long enough that a pool which waits for it (the plain ``ProcessPoolExecutor``) fails the checks below.
LONG_S = 30


def stopped(future) -> bool:
    """Whether the task was stopped (its worker terminated) or never started, rather than run to its end."""
    return future.cancelled() or isinstance(future.exception(timeout=0), BrokenProcessPool)


def test_an_error_terminates_the_running_tasks_and_cancels_the_queued():
    with pytest.raises(ValueError, match="invalid literal"), spawn_pool(2) as pool:
        running = pool.submit(time.sleep, LONG_S)
        failing = pool.submit(int, "not a number")
        queued = pool.submit(time.sleep, LONG_S)
        failing.result()  # the child's ValueError, re-raised in the body
    # a pool that waited would have let `running` finish (result None) and run `queued` too
    assert isinstance(running.exception(timeout=0), BrokenProcessPool)
    assert stopped(queued)


def test_an_error_of_the_parent_terminates_the_workers_too():
    with pytest.raises(KeyError), spawn_pool(1) as pool:
        running = pool.submit(time.sleep, LONG_S)
        pids = pool.submit(os.getpid)  # queued behind the sleep: never runs
        raise KeyError("the parent's own error")
    assert stopped(running) and stopped(pids)


def test_without_an_error_every_task_runs_in_its_own_process_and_returns():
    with spawn_pool(2) as pool:
        futures = [pool.submit(pow, k, 2) for k in range(6)]
        pids = {pool.submit(os.getpid).result() for _ in range(4)}
    assert [f.result() for f in futures] == [k * k for k in range(6)]
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def _blocked_signals(native_id: int) -> set[int]:
    """The signals thread ``native_id`` of this process blocks, read from ``/proc`` (its ``SigBlk`` mask)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_only_the_main_thread_takes_ctrl_c_and_sigterm():
    """The pool's helper threads block SIGINT and SIGTERM, so the kernel delivers them to the main thread
    (a helper thread that took one left the main thread waiting in ``result()``); the main thread's own
    mask is as before."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with spawn_pool(1) as pool:
        assert pool.submit(os.getpid).result() != os.getpid()
        helpers = [pool._executor_manager_thread, pool._call_queue._thread]  # the manager and the feeder
        assert all(t is not None and t.is_alive() for t in helpers)
        for thread in helpers:
            assert {signal.SIGINT, signal.SIGTERM} <= _blocked_signals(thread.native_id), thread.name
        assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
        assert signal.SIGINT not in _blocked_signals(threading.get_native_id())


def _remember(*args) -> None:
    """An initializer: keeps its arguments in the worker."""
    global _INITARGS
    _INITARGS = args


_INITARGS: tuple | None = None


def _initargs_seen() -> tuple[int, tuple | None]:
    return os.getpid(), _INITARGS


def test_the_initializer_runs_in_each_worker_with_its_arguments():
    """Kills a pool that drops the caller's initializer or passes its arguments as one tuple."""
    with spawn_pool(2, initializer=_remember, initargs=("a", 2)) as pool:
        seen = [pool.submit(_initargs_seen) for _ in range(4)]
        seen = [f.result() for f in seen]
    assert {args for _, args in seen} == {("a", 2)}
    assert os.getpid() not in {pid for pid, _ in seen}


def _signal_state() -> dict:
    """A worker's SIGINT and SIGTERM handling, its main thread's mask and its exit-with-parent thread's."""
    (watcher,) = [t for t in threading.enumerate() if t.name == "exit-with-parent"]
    return {
        "sigint": signal.getsignal(signal.SIGINT),
        "sigterm_handled": callable(signal.getsignal(signal.SIGTERM)),
        "main_blocks": signal.pthread_sigmask(signal.SIG_BLOCK, set()),
        "watcher_daemon": watcher.daemon,
        "watcher_blocks": _blocked_signals(watcher.native_id),
    }


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")
def test_a_worker_ignores_ctrl_c_handles_sigterm_and_its_watcher_thread_takes_neither():
    """Each worker ignores SIGINT (no longer blocked: ignored also in its children), handles SIGTERM, and
    its exit-with-parent thread blocks both, so the main thread's handlers take them. Kills mutants that
    leave SIGINT at its default or blocked, or the watcher's mask open."""
    with spawn_pool(1) as pool:
        state = pool.submit(_signal_state).result()
    assert state["sigint"] == signal.SIG_IGN
    assert signal.SIGINT not in state["main_blocks"]
    assert state["sigterm_handled"]
    assert state["watcher_daemon"]
    assert {signal.SIGINT, signal.SIGTERM} <= state["watcher_blocks"]


def _blocked_at_birth(queue) -> None:
    queue.put(signal.pthread_sigmask(signal.SIG_BLOCK, set()))


def test_the_pools_processes_are_born_with_ctrl_c_blocked():
    """A Ctrl-C while a worker imports (before its set-up ignores it) stays pending instead of printing a
    traceback: the pool's processes start with SIGINT blocked, the parent's own mask untouched. Kills a
    pool of plain spawn processes and a process class that does not block it."""
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with spawn_pool(1) as pool:
        queue = pool._mp_context.SimpleQueue()
        process = pool._mp_context.Process(target=_blocked_at_birth, args=(queue,))
        process.start()
        blocked = queue.get()
        process.join(timeout=30)
    assert signal.SIGINT in blocked
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before


def _sleep_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_one_worker_means_one_process_for_every_task():
    """Tasks submitted at once to a pool of one run one after another in its single process (kills a pool
    with more processes than asked for)."""
    with spawn_pool(1) as pool:
        futures = [pool.submit(_sleep_then_pid, 0.2) for _ in range(3)]
        pids = {f.result() for f in futures}
    assert len(pids) == 1 and os.getpid() not in pids


def test_workers_terminated_after_an_error_end_by_sigterm():
    """A worker stopped by the pool ends with status -SIGTERM (as ``Process.terminate`` expects), after
    multiprocessing's exit clean-up: kills an exit by ``os._exit`` with another status."""
    with pytest.raises(RuntimeError), spawn_pool(2) as pool:
        running = [pool.submit(time.sleep, LONG_S) for _ in range(2)]
        while not all(f.running() for f in running):
            time.sleep(0.05)
        processes = list(pool._processes.values())
        time.sleep(2)  # both workers inside their task
        raise RuntimeError("stop")
    for process in processes:
        process.join(timeout=10)
    assert [p.exitcode for p in processes] == [-signal.SIGTERM] * 2


def test_tasks_still_queued_when_the_body_ends_normally_run_to_their_end():
    """``spawn_pool`` shuts down normally (as ``ProcessPoolExecutor`` does) when its body ends without an
    error: tasks the body submitted and did not wait for still run. They were cancelled (the pool shut down
    with ``cancel_futures`` on every exit); only an error cancels them now."""
    with spawn_pool(1) as pool:
        futures = [pool.submit(pow, k, 2) for k in range(5)]
    assert [f.result(timeout=0) for f in futures] == [k * k for k in range(5)]
