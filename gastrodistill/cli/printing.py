"""Printing the tables of the command-line tools (``compare_runs``, ``paired_over_runs``,
``check_experiment``) to a reader that may leave early (``| head``)."""

from __future__ import annotations

import os
import sys


def print_to_reader(text: str) -> None:
    """Print ``text`` and flush; a reader that closed the pipe (``| head``) ends the printing without a
    traceback: standard output then goes to ``os.devnull``, so the flush at exit raises nothing either (a
    traceback and exit status 1 before). Raises nothing for a closed pipe; other ``OSError``s (a full disk
    behind ``> file``) propagate."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
