"""What Lightning prints around a Trainer, without its noise.

Every ``Trainer`` of pytorch-lightning 2.6 logs an advertisement ("💡 Tip: ... litlogger ...") and, under
torch 2.13, every ``fit`` warns that Lightning's own pytree helper builds a deprecated ``LeafSpec``
(``FutureWarning`` from ``pytorch_lightning/utilities/_pytree.py``). Neither says anything about the run,
so :func:`lightning_output` drops both; the device summary ("GPU available: ...") and Lightning's other
lines and warnings stay unless ``quiet``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

#: The loggers Lightning writes its info lines to (both package names, and Fabric's).
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")
#: The loggers of Lightning's rank-zero lines (a logger's filters see its own records only, not its
#: children's).
RANK_ZERO_LOGGERS = tuple(f"{n}.utilities.rank_zero" for n in LIGHTNING_LOGGERS)
#: Lightning's advertisement lines start so.
TIP_PREFIX = "💡 Tip:"
#: The message of the pytree deprecation Lightning's own code triggers under torch 2.13.
TREESPEC_WARNING = r".*isinstance\(treespec, LeafSpec\).*"


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TIP_PREFIX)


@contextlib.contextmanager
def lightning_output(quiet: bool = False) -> Iterator[None]:
    """Within the block, Lightning's tips and its pytree ``FutureWarning`` are dropped; with ``quiet``
    also its info lines (device summary, "`Trainer.fit` stopped"), its loggers raised to WARNING. Loggers'
    levels and filters and the warning filters are restored after the block, also when it raises."""
    loggers = [logging.getLogger(n) for n in LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    drop = _DropTips()
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
