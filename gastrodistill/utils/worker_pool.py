"""A ``spawn`` process pool that stops its workers at once when the caller fails.

``concurrent.futures.ProcessPoolExecutor`` used as a context manager waits for every running task when
the body raises: a worker's error re-raised by ``future.result()`` (or any error of the parent) reaches
the user only after the other workers' tasks end, minutes later in ``gastrodistill-reproduce``. Here the
workers are terminated first, so the error prints at once; tasks still queued are cancelled.

Stopping: each worker ignores Ctrl-C from its start (SIGINT reaches the whole process group; the parent,
whose ``KeyboardInterrupt`` ends the body, terminates the workers), exits on SIGTERM even where a library took
over the signal inside a task (Lightning's ``Trainer.fit`` only takes note of it, which left a worker idle
for good), and exits by itself within a second when its parent dies without stopping it (SIGKILL, a
crash), so that no worker computes on as an orphan. The parent's side (SIGTERM handled as Ctrl-C) is
:func:`gastrodistill.cli.errors.signals_as_interrupts`.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.context
import multiprocessing.util
import os
import signal
import threading
import time
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
    threads), shut down normally when the body ends (its tasks run to their end, waited for), its workers
    terminated and its queued tasks cancelled when the body raises.

    ``initializer(*initargs)`` runs once in each worker, as with ``ProcessPoolExecutor``, after the
    worker's signal set-up (module docstring). The body's exception is re-raised unchanged; futures still
    running then fail with ``BrokenProcessPool``.
    """
    pool = _Executor(
        workers,
        mp_context=_SpawnContext(),
        initializer=_start_worker,
        initargs=(os.getpid(), initializer, initargs),
    )
    try:
        yield pool
    except BaseException:
        terminate_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)  # as ProcessPoolExecutor's own exit: the tasks the body did not wait for run


class _Executor(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` whose helper threads (its manager, and the call queue's feeder that the
    manager starts) block SIGINT and SIGTERM. The kernel hands a signal sent to the process to any thread
    that does not block it; one taken by a helper thread sets Python's flag but need not wake the main
    thread asleep in ``future.result()``. Blocked there, the signals go to the main thread and interrupt
    its wait (a precaution: the hang it was written for turned out to be an inherited, ignored SIGINT)."""

    def _start_executor_manager_thread(self) -> None:  # Python 3.9+: called by submit(), main thread
        with signals_blocked(signal.SIGINT, signal.SIGTERM):  # a thread starts with its creator's mask
            super()._start_executor_manager_thread()  # type: ignore[misc]


@contextmanager
def signals_blocked(*signums: int) -> Iterator[None]:
    """Within: ``signums`` blocked in the calling thread (pending, not lost); its mask is restored after.
    Threads and processes started within inherit the blocked mask (a process keeps it across exec)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, set(signums))
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def terminate_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (SIGTERM) without waiting for their tasks."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    # Python 3.11-3.13 keep the workers in a private mapping (pid -> Process) and offer no public call
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        if process.is_alive():
            process.terminate()


class _WorkerProcess(mp.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        # born with SIGINT blocked (the mask survives exec): a Ctrl-C while it imports is no traceback
        with signals_blocked(signal.SIGINT):
            return mp.context.SpawnProcess._Popen(process_obj)


class _SpawnContext(mp.context.SpawnContext):
    Process = _WorkerProcess


#: How often (seconds) a worker checks that its parent is still alive.
PARENT_CHECK_S = 0.5


def _start_worker(parent: int, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    """A worker's set-up: Ctrl-C left to the parent, SIGTERM always ends it, it ends with its parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # ignored from now on, also in its children
    signal.signal(signal.SIGTERM, _exit_on_signal)  # a library's own handler calls this one too
    threading.Thread(target=_exit_with_parent, args=(parent,), name="exit-with-parent", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _exit_on_signal(signum: int, _frame: Any) -> None:
    """End the process by the signal itself (exit status -signum, as ``Process.terminate`` expects), once
    multiprocessing's exit clean-up ran: a semaphore a task made (tqdm's lock) is released, not reported
    as leaked by the resource tracker below the command's last line."""
    signal.signal(signum, signal.SIG_IGN)  # meanwhile: the pool sends a broken pool's workers another
    with contextlib.suppress(Exception):
        mp.util._run_finalizers(0)  # what a process's normal exit runs first
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _exit_with_parent(parent: int) -> None:
    # signals go to the main thread, whose handlers end the worker (not to this thread, asleep)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    while os.getppid() == parent:  # an orphan is adopted by init or a subreaper: another parent id
        time.sleep(PARENT_CHECK_S)
    os._exit(1)
