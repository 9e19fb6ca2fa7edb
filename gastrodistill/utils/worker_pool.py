"""A ``spawn`` process pool that stops its workers at once when the caller fails.

``concurrent.futures.ProcessPoolExecutor`` used as a context manager waits for every running task when
the body raises: a worker's error re-raised by ``future.result()`` (or any error of the parent) reaches
the user only after the other workers' tasks end, minutes later in ``gastrodistill-reproduce``. Here the
workers are terminated first, so the error prints at once; tasks still queued are cancelled.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any


@contextmanager
def spawn_pool(
    workers: int,
    initializer: Callable[..., Any] | None = None,
    initargs: tuple = (),
) -> Iterator[ProcessPoolExecutor]:
    """A ``ProcessPoolExecutor`` of ``workers`` ``spawn`` processes (fresh interpreters: no forked torch
    threads), shut down normally when the body ends, its workers terminated when the body raises.

    ``initializer(*initargs)`` runs once in each worker, as with ``ProcessPoolExecutor``. The body's
    exception is re-raised unchanged; futures still running then fail with ``BrokenProcessPool``.
    """
    pool = ProcessPoolExecutor(
        workers, mp_context=mp.get_context("spawn"), initializer=initializer, initargs=initargs
    )
    try:
        yield pool
    except BaseException:
        terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (SIGTERM) without waiting for their tasks."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    # Python 3.11-3.13 keep the workers in a private mapping (pid -> Process) and offer no public call
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()
