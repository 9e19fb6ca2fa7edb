"""What the atomic writers' tests read of files and processes: a file's permission bits, a dead pid."""

from __future__ import annotations

import os
import stat
import subprocess
import sys


def file_mode(path) -> int:
    """The permission bits of ``path`` (``0o644`` and the like)."""
    return stat.S_IMODE(os.stat(path).st_mode)


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): a killed writer's, for leftover names."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid
