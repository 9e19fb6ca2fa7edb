"""Stopping a command whose work runs in :func:`spawn_pool` workers leaves no worker behind.

A real command (a Hydra main under ``friendly_errors``, as every ``gastrodistill-*`` command) runs two
endless tasks in spawned workers; each task makes a semaphore (as tqdm does) and takes note of SIGTERM
and calls the handler it found, as Lightning's ``Trainer.fit`` does. Every process of the command
carries a marker in its environment, so that the checks find the workers (and multiprocessing's
resource tracker) by ``/proc`` wherever they were re-parented.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc (Linux)")

SCRIPT = """
import faulthandler
import multiprocessing
import os
import signal
import time

import hydra

from gastrodistill.cli.errors import friendly_errors
from gastrodistill.utils.worker_pool import spawn_pool

LOCKS = []
faulthandler.register(signal.SIGUSR1, all_threads=True)  # the test asks for a hanging command's stacks


def endless(pids_file):
    LOCKS.append(multiprocessing.RLock())  # a semaphore of the worker's own, as tqdm's lock
    previous = signal.getsignal(signal.SIGTERM)

    def take_note(signum, frame):  # what Lightning's fit installs: note it, call the handler found
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, take_note)
    with open(pids_file, "a") as f:
        f.write(f"{os.getpid()}\\n")
    while True:
        time.sleep(0.05)


@hydra.main(version_base=None, config_path=None)
@friendly_errors
def main(cfg):
    if os.environ.get("LIBRARY_CHILDREN"):  # processes of a library's own, e.g. Lightning's ddp_spawn ranks
        spawn = multiprocessing.get_context("spawn")
        children = [spawn.Process(target=endless, args=(os.environ["PIDS_FILE"],)) for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join()
        return
    with spawn_pool(2) as pool:
        for job in [pool.submit(endless, os.environ["PIDS_FILE"]) for _ in range(2)]:
            job.result()


if __name__ == "__main__":
    main()
"""

#: Starts the command with Ctrl-C at its default, as a terminal's foreground job has it: where the tests
#: themselves run as a background job of a non-interactive shell (``pytest ... &``), SIGINT is ignored,
#: every child inherits that across exec, and a command rightly leaves an ignored Ctrl-C ignored.
FOREGROUND = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
)

#: Seconds the processes get to go once the command is stopped.
GRACE_S = 10


def marked(marker: str) -> set[int]:
    """PIDs of live (not zombie) processes whose environment holds ``marker``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():  # a zombie's reads empty
                found.add(int(entry.name))
        except OSError:  # gone meanwhile, or another user's
            pass
    return found


def wait_until(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def start_command(tmp_path: Path, **env_vars: str) -> tuple[subprocess.Popen, str, list[int]]:
    """The command, started in a session of its own, once both workers run their task; its environment
    marker and the workers' PIDs."""
    script = tmp_path / "endless_command.py"
    script.write_text(SCRIPT)
    pids_file = tmp_path / "pids.txt"
    marker = f"STOP_SIGNALS_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    env = {**os.environ, "PIDS_FILE": str(pids_file), name: value, "OMP_NUM_THREADS": "1", **env_vars}
    env.pop("HYDRA_FULL_ERROR", None)
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        # files, not pipes: a worker left running would hold a pipe open
        proc = subprocess.Popen(
            [sys.executable, "-c", FOREGROUND, str(script), f"hydra.run.dir={tmp_path / 'run'}"],
            env=env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )

    def started() -> list[int]:
        return [int(x) for x in pids_file.read_text().split()] if pids_file.exists() else []

    if not wait_until(lambda: len(started()) == 2 or proc.poll() is not None, 45):
        os.killpg(proc.pid, signal.SIGKILL)
    assert len(started()) == 2, (tmp_path / "stderr.txt").read_text()
    assert set(started()) < marked(marker)  # the command itself, its workers, the resource tracker
    return proc, marker, started()


def ended(proc: subprocess.Popen) -> bool:
    """Whether the command ends within ``GRACE_S``; if not, its threads' stacks are dumped to its stderr
    (SIGUSR1, faulthandler), for the failure message."""
    if wait_until(lambda: proc.poll() is not None, GRACE_S):
        return True
    os.kill(proc.pid, signal.SIGUSR1)
    time.sleep(1.0)
    return False


def stderr_tail(tmp_path: Path) -> str:
    return (tmp_path / "stderr.txt").read_text()[-4000:]


def kill_leftovers(marker: str) -> None:
    for pid in marked(marker):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("signum", "whole_group", "line"),
    [
        (signal.SIGTERM, False, "interrupted (SIGTERM)"),  # kill PID, timeout, a scheduler
        (signal.SIGINT, True, "interrupted (Ctrl-C)"),  # Ctrl-C in a terminal
    ],
)
def test_a_stopped_command_stops_its_workers_and_says_so_in_one_line(tmp_path, signum, whole_group, line):
    proc, marker, _ = start_command(tmp_path)
    try:
        (os.killpg if whole_group else os.kill)(proc.pid, signum)
        assert ended(proc), "the command did not end; its stderr:\n" + stderr_tail(tmp_path)
        assert wait_until(lambda: not marked(marker), GRACE_S), "left running: " + str(marked(marker))
    finally:
        kill_leftovers(marker)
    err = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 128 + signum, err
    assert [x for x in err.splitlines() if x.strip()] == [line], err
    assert not (tmp_path / "run").exists()  # the job's output folder held only Hydra's bookkeeping


def test_workers_end_by_themselves_when_the_command_is_killed(tmp_path):
    proc, marker, _ = start_command(tmp_path)
    try:
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up possible: the workers must notice it themselves
        proc.wait(timeout=GRACE_S)
        assert wait_until(lambda: not marked(marker), GRACE_S), "left running: " + str(marked(marker))
    finally:
        kill_leftovers(marker)


def test_a_stopped_command_stops_child_processes_a_library_started(tmp_path):
    """Children started outside the pool (Lightning's ``ddp_spawn`` ranks) do not see a SIGTERM sent to the
    command alone, and the interpreter would wait for them at exit: they are terminated, then killed."""
    proc, marker, _ = start_command(tmp_path, LIBRARY_CHILDREN="1")
    try:
        os.kill(proc.pid, signal.SIGTERM)
        assert ended(proc), "the command did not end; its stderr:\n" + stderr_tail(tmp_path)
        assert wait_until(lambda: not marked(marker), GRACE_S), "left running: " + str(marked(marker))
    finally:
        kill_leftovers(marker)
    assert proc.returncode == 128 + signal.SIGTERM
    err = (tmp_path / "stderr.txt").read_text()
    # killed, they leave their semaphores to multiprocessing's resource tracker, which says so
    assert err.splitlines()[0] == "interrupted (SIGTERM)" and "Traceback" not in err, err
