"""What Lightning prints around a Trainer, without its noise.

Every ``Trainer`` of pytorch-lightning 2.6 logs an advertisement ("💡 Tip: ... litlogger ...") and, under
torch 2.13, every ``fit`` warns that Lightning's own pytree helper builds a deprecated ``LeafSpec``
(``FutureWarning`` from ``pytorch_lightning/utilities/_pytree.py``). Neither says anything about the run,
so :func:`lightning_output` drops both, and the warning that a checkpoint resumes in another folder than
it was written in (a copied run folder; the warning names the old folder's absolute path); the device
summary ("GPU available: ...") and Lightning's other lines and warnings stay unless ``quiet``. Lightning's
lines name the checkpoint a run resumes from by its absolute path ("Restoring states from the checkpoint
path at /home/…"), which would reach the run's log (``distill.log``): within the block such a path is
shown relative to the run folder, or by its last parts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

#: The loggers Lightning writes its info lines to (both package names, and Fabric's).
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")
#: The loggers of Lightning's rank-zero lines (a logger's filters see its own records only, not its
#: children's).
RANK_ZERO_LOGGERS = tuple(f"{n}.utilities.rank_zero" for n in LIGHTNING_LOGGERS)
#: Lightning's advertisement lines start so.
TIP_PREFIX = "💡 Tip:"
#: The message of the pytree deprecation Lightning's own code triggers under torch 2.13.
TREESPEC_WARNING = r".*isinstance\(treespec, LeafSpec\).*"
#: Lightning's warning when a checkpoint is resumed in another folder than it was written in (a copied or
#: moved run folder, which the project supports): it names the old folder by its absolute path.
DIRPATH_WARNING = r"The dirpath has changed from .*"


#: Where an absolute POSIX path starts in a line of text (not the ``/`` of ``1/2``, a URL or a relative path).
PATH_START = re.compile(r"(?<![\w.~/:-])/")
#: Characters that may end a path in a line of text (a path may hold them too: see :func:`path_end`).
PATH_BREAKS = frozenset(" \t\n'\"`,;()")
#: A path's text up to the first of :data:`PATH_BREAKS`.
UNBROKEN = re.compile(r"[^\s'\"`,;()]*")
#: How many trailing parts of a path outside the run folder a line keeps.
SHOWN_PARTS = 3


def path_end(text: str, start: int, run_dir: str | os.PathLike | None = None) -> int:
    """Where the absolute path starting at ``text[start]`` ends. Folder names may hold spaces and quotes
    (``/home/Jane Doe/...``, ``/data/o'brien/...``), so the end is the furthest of the places a path may
    end (:data:`PATH_BREAKS`, the end of the line, before a closing ``.`` or ``:``) at which a file or folder
    exists (Lightning names
    checkpoints that exist); a path beginning with the run folder (as given, or resolved) runs at least
    through it; otherwise, the first break ends it (a path that does not exist and holds a space is cut
    there: its first part is shown, the rest stays as text)."""
    floor = start + 1
    if run_dir is not None:
        for folder in {str(Path(run_dir).absolute()), str(Path(run_dir).resolve())}:
            if text.startswith(folder.rstrip("/") + "/", start):
                floor = max(floor, start + len(folder.rstrip("/")) + 1)
    ends = {i for i in range(floor, len(text)) if text[i] in PATH_BREAKS} | {len(text)}
    ends |= {e - 1 for e in ends if e - 1 > floor and text[e - 1] in ".:"}  # a sentence's end after it
    for end in sorted(ends, reverse=True):
        if os.path.lexists(text[start:end]):
            return end
    return UNBROKEN.match(text, floor).end()


def shown_in_log(path: str, run_dir: str | os.PathLike | None) -> str:
    """``path`` as Lightning's lines show it within :func:`lightning_output`: relative to ``run_dir`` when
    inside it (``soft/checkpoints/last.ckpt``), else its last :data:`SHOWN_PARTS` parts after ``…/``
    (``…/soft/checkpoints/last.ckpt``): never the folders above, which may name a site or a person."""
    p = Path(path)
    if run_dir is not None:
        with contextlib.suppress(ValueError, OSError):
            return p.resolve().relative_to(Path(run_dir).resolve()).as_posix()
    parts = p.parts[1:] if p.is_absolute() else p.parts  # not the root's "/"
    return "…/" + "/".join(parts[-SHOWN_PARTS:])


def shown_paths(text: str, run_dir: str | os.PathLike | None) -> str:
    """``text`` with each absolute path (:data:`PATH_START` to :func:`path_end`) shown by
    :func:`shown_in_log`."""
    out, pos = [], 0
    for match in PATH_START.finditer(text):
        if match.start() < pos:
            continue  # inside a path already shown
        end = path_end(text, match.start(), run_dir)
        out += [text[pos : match.start()], shown_in_log(text[match.start() : end], run_dir)]
        pos = end
    return "".join([*out, text[pos:]])


class _LightningLines(logging.Filter):
    """Drops Lightning's tips; shows the absolute paths in its other lines by :func:`shown_paths`."""

    def __init__(self, run_dir: str | os.PathLike | None) -> None:
        super().__init__()
        self.run_dir = run_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(TIP_PREFIX):
            return False
        text = record.getMessage()
        shown = shown_paths(text, self.run_dir)
        if shown != text:
            record.msg, record.args = shown, None
        return True


@contextlib.contextmanager
def lightning_output(quiet: bool = False, run_dir: str | os.PathLike | None = None) -> Iterator[None]:
    """Within the block, Lightning's tips and its pytree ``FutureWarning`` are dropped and absolute paths in
    its lines are shown relative to ``run_dir`` or by their last parts (:func:`shown_in_log`); with
    ``quiet`` also its info lines (device summary, "`Trainer.fit` stopped") are dropped, its loggers raised
    to WARNING. Loggers' levels and filters and the warning filters are restored after the block, also when
    it raises."""
    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    drop = _LightningLines(run_dir)
    for name in RANK_ZERO_LOGGERS:
        logging.getLogger(name).addFilter(drop)
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=TREESPEC_WARNING, category=FutureWarning)
            warnings.filterwarnings("ignore", message=DIRPATH_WARNING)
            yield
    finally:
        for name in RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(drop)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
