"""What Lightning prints around a Trainer, without its noise.

Every ``Trainer`` of pytorch-lightning 2.6 logs an advertisement ("💡 Tip: ... litlogger ...") and, under
torch 2.13, every ``fit`` warns that Lightning's own pytree helper builds a deprecated ``LeafSpec``
(``FutureWarning`` from ``pytorch_lightning/utilities/_pytree.py``). Neither says anything about the run,
so :func:`lightning_output` drops both; the device summary ("GPU available: ...") and Lightning's other
lines and warnings stay unless ``quiet``. Lightning's lines name the checkpoint a run resumes from by its
absolute path ("Restoring states from the checkpoint path at /home/…"), which would reach the run's log
(``distill.log``): within the block such a path is shown relative to the run folder, or by its last parts.
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


#: An absolute POSIX path in a line of text (not the ``/`` of ``1/2``, a URL or a relative path).
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:-])/[^\s'\"`,;()]+")
#: How many trailing parts of a path outside the run folder a line keeps.
SHOWN_PARTS = 3


def shown_in_log(path: str, run_dir: str | os.PathLike | None) -> str:
    """``path`` as Lightning's lines show it within :func:`lightning_output`: relative to ``run_dir`` when
    inside it (``soft/checkpoints/last.ckpt``), else its last :data:`SHOWN_PARTS` parts after ``…/``
    (``…/soft/checkpoints/last.ckpt``): never the folders above, which may name a site or a person."""
    p = Path(path)
    if run_dir is not None:
        with contextlib.suppress(ValueError, OSError):
            return p.resolve().relative_to(Path(run_dir).resolve()).as_posix()
    return "…/" + "/".join(p.parts[-SHOWN_PARTS:])


class _LightningLines(logging.Filter):
    """Drops Lightning's tips; shows the absolute paths in its other lines by :func:`shown_in_log`."""

    def __init__(self, run_dir: str | os.PathLike | None) -> None:
        super().__init__()
        self.run_dir = run_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith(TIP_PREFIX):
            return False
        text = record.getMessage()
        shown = ABSOLUTE_PATH.sub(lambda m: shown_in_log(m.group(0), self.run_dir), text)
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
            yield
    finally:
        for name in RANK_ZERO_LOGGERS:
            logging.getLogger(name).removeFilter(drop)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
