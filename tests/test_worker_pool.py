"""``spawn_pool``: a worker's error stops the other workers instead of waiting for their tasks."""

from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool

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
