"""Printing the tables of the command-line tools (``compare_runs``, ``paired_over_runs``,
``check_experiment``) to a reader that may leave early (``| head``)."""

from __future__ import annotations

import os
import sys


def print_to_reader(text: str) -> None:
    """Print ``text`` and flush; a reader that closed the pipe (``| head``) ends the printing without a
    traceback: standard output then goes to ``os.devnull``, so the flush at exit raises nothing either (a
    traceback and exit status 1 before). Any other write error (a full disk behind ``> file``) is one line
    on standard error, ``error: cannot write the table to standard output (<reason>)``, and exit status 2
    (raises ``SystemExit(2)``), as the tools' other input errors."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError as e:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        print(f"error: cannot write the table to standard output ({e.strerror or e})", file=sys.stderr)
        raise SystemExit(2) from None
