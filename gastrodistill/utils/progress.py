"""Progress bars that suit a log file as well as a terminal.

On a terminal tqdm redraws a bar in place; written to a file (``make reproduce > run.log``, a scheduler's
log) every redraw is kept, joined by carriage returns, and the two label modes' processes interleave them:
a newcomer's npz run of 1,200 outer steps left log lines of megabytes. When standard output or standard
error is not a terminal, :func:`quiet_progress_when_redirected` makes tqdm's bars (ours, through tqdm's
``TQDM_MININTERVAL`` environment default, which tqdm reads when it is imported: ``gastrodistill/__init__``
calls it before torch or Lightning import tqdm, and spawned worker processes inherit it) redraw at most
every :data:`LOG_INTERVAL_S` seconds, and :func:`lightning_progress_bar` gives Lightning's bar a refresh
rate of about :data:`LOG_UPDATES` updates per run (Lightning redraws on its own schedule, not tqdm's). Each
update writes the bar about twice (its count, then its loss), so a log holds about 2 x ``LOG_UPDATES``
bar lines per label mode: 206 for a two-mode digits run, 90 at most for one mode of 160 outer steps
(``tests/distillation/test_progress_in_logs.py``), against one or two per outer step before.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: Seconds between two redraws of one of our tqdm bars in a log file.
LOG_INTERVAL_S = 10
#: Updates of Lightning's bar over a whole run in a log file (each writes the bar about twice).
LOG_UPDATES = 40


def redirected() -> bool:
    """True when standard output or standard error is not a terminal (a file, a pipe), outside a Jupyter or
    IPython session (whose output streams are no terminals either, but show a bar in place)."""
    if "ipykernel" in sys.modules or "IPython" in sys.modules:
        return False
    return not all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def quiet_progress_when_redirected() -> None:
    """When :func:`redirected`, set tqdm's ``TQDM_MININTERVAL`` default to :data:`LOG_INTERVAL_S` (a value
    the user set is kept)."""
    if redirected():
        os.environ.setdefault("TQDM_MININTERVAL", str(LOG_INTERVAL_S))


def lightning_progress_bar(total_steps: int) -> Any | None:
    """A Lightning ``TQDMProgressBar`` that redraws about :data:`LOG_UPDATES` times over ``total_steps``
    when :func:`redirected`; None on a terminal (Lightning's own bar, redrawn every step)."""
    if not redirected():
        return None
    from pytorch_lightning.callbacks import TQDMProgressBar

    return TQDMProgressBar(refresh_rate=max(1, int(total_steps) // LOG_UPDATES))
