"""``cli/printing.print_to_reader``: a reader that leaves early ends the printing quietly; another write error
is one line and status 2 (compare_runs, paired_over_runs and check_experiment print through it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

#: The command's environment as a shell gives it: standard output to a pipe or file is block-buffered.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
PRINT = (
    "import time; from gastrodistill.cli.printing import print_to_reader; "
    "time.sleep({wait}); print_to_reader({text!r})"
)


def test_a_short_table_to_a_reader_already_gone_ends_quietly_with_0() -> None:
    """A table shorter than the pipe's buffer, printed after the reader left (`| true`): without the flush
    inside the guard the write failed at exit, with 'Exception ignored' and status 120 (kills the flush)."""
    code = PRINT.format(wait=0.5, text="| job | 0.5 |")
    done = subprocess.run(
        f'{sys.executable} -c "{code}" | true; exit ${{PIPESTATUS[0]}}',
        shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=60, env=ENV,
    )  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_behind_the_output_is_one_line_and_status_2_not_a_closed_pipe() -> None:
    """`> file` on a full disk: one line naming ENOSPC's reason and status 2, not swallowed as a reader
    that left (kills `except OSError` for `except BrokenPipeError`); paired_over_runs and check_experiment
    ended in a traceback here."""
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-c", PRINT.format(wait=0, text="| job | 0.5 |")],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=60, env=ENV,
        )  # fmt: skip
    assert (done.returncode, done.stderr) == (
        2,
        "error: cannot write the table to standard output (No space left on device)\n",
    )
