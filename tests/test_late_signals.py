"""A Ctrl-C or SIGTERM that arrives after a command's work is written, while it closes up (W&B's finish,
Hydra's and the interpreter's teardown), ended it with 130/143 and no word: a scheduler took the finished
job for a failed one (a breaker's finding). Now the first such signal is reported and the command ends
with 0; a second one stops it at once."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

SCRIPT = """
import atexit
import sys
import time

import hydra

from gastrodistill.cli.errors import friendly_errors


def closing_up():  # stands in for W&B's finish and the teardown after the last output
    print("closing", flush=True)
    time.sleep(3)
    print("closed", flush=True)


@hydra.main(version_base=None, config_path=None)
@friendly_errors
def main(cfg):
    atexit.register(closing_up)
    print("done", flush=True)


main()
"""


def _start(tmp_path, name: str, text: str) -> subprocess.Popen:
    """``text`` as the script ``gastrodistill-<name>.py``, started as a command would be
    (``errors._is_top_level_command``), its output piped."""
    script = tmp_path / f"gastrodistill-{name}.py"
    script.write_text(text)
    return subprocess.Popen(
        [sys.executable, str(script), f"hydra.run.dir={tmp_path / 'run'}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # as from a terminal: a shell without job control starts background jobs with SIGINT ignored, and a
        # test suite run so (`./.ci/run &`) passed that on, so the signal never reached the command
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _run_and_signal(tmp_path, signals: int, signum: int) -> tuple[int, str, str]:
    proc = _start(tmp_path, "late", SCRIPT)
    lines = []
    while "closing" not in lines:
        line = proc.stdout.readline()
        assert line, "the command ended before closing up"
        lines.append(line.strip())
    for _ in range(signals):
        proc.send_signal(signum)
        time.sleep(0.5)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, "\n".join(lines) + out, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_one_signal_after_the_work_ends_the_command_with_0(tmp_path, signum):
    code, out, err = _run_and_signal(tmp_path, 1, signum)
    assert code == 0, err
    assert "closed" in out and "after the work finished: every output of the run is written" in err
    assert "Traceback" not in err


def test_a_second_signal_stops_it_at_once(tmp_path):
    code, out, err = _run_and_signal(tmp_path, 2, signal.SIGINT)
    assert code == -signal.SIGINT and "closed" not in out  # killed by it, as without the handler


def test_a_command_called_inside_another_program_leaves_its_ctrl_c_alone():
    """A script, notebook or test that calls a command's main goes on afterwards: its first Ctrl-C was
    swallowed by the handlers (a reviewer's finding). They are installed only in a process started as the
    command."""
    from gastrodistill.cli import errors

    before = signal.getsignal(signal.SIGINT)

    @errors.friendly_errors
    def task(cfg):
        return 1

    assert task({"seed": 0}) == 1
    assert signal.getsignal(signal.SIGINT) is before


TEARDOWN_SCRIPT = """
import os
import time

import hydra

from gastrodistill.cli.errors import friendly_errors


class Teardown:  # freed with __main__'s names, in the interpreter's teardown: after every exit function
    def __del__(self):
        os.write(1, b"tearing down\\n")
        time.sleep(3)
        os.write(1, b"torn down\\n")


keep = Teardown()


@hydra.main(version_base=None, config_path=None)
@friendly_errors
def main(cfg):
    print("done", flush=True)


main()
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_in_the_interpreters_teardown_leaves_the_finished_command_its_0(tmp_path, signum):
    """Python's own handlers are gone in the teardown after the exit functions (modules freed: about a
    second with torch), so a SIGTERM there killed a finished command with 143 and no word (a breaker's
    finding, with a signal 0-0.8 s after the last line). The signals are ignored there now."""
    proc = _start(tmp_path, "teardown", TEARDOWN_SCRIPT)
    while (line := proc.stdout.readline().strip()) != "tearing down":
        assert line, "the command ended before its teardown"
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "torn down" in out and "Traceback" not in err
