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
