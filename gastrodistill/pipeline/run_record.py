"""A run folder's earlier run record, kept in ``history/<n>/`` before a later run rewrites it, and put back
when that run stops before any of its stages finished."""

from __future__ import annotations

from pathlib import Path

from gastrodistill.cli.run_folder import HISTORY_DIR, RECORD_FILES
from gastrodistill.utils.atomic import atomic_dir, atomic_path

#: The files of a run folder's record that a later run in the same folder rewrites.
RUN_RECORD = (*RECORD_FILES, "timings.json", "SUMMARY.md")


def keep_earlier_record(out: Path) -> Path | None:
    """Before a run in an existing run folder ``out`` (``hydra.run.dir``: say, one stage again) rewrites its
    record, copy the earlier record's files (:data:`RUN_RECORD`) to ``out/history/<n>/`` (n = 1, 2, ...), so
    the command that made the folder's outputs stays on record. Returns that folder, or None when ``out``
    holds no earlier record. (Hydra's ``.hydra/`` is rewritten before any of our code runs.)"""
    import shutil

    present = [f for f in RUN_RECORD if (out / f).is_file()]
    if "run_info.json" not in present:
        return None
    dest = next_history_folder(out, create=False)
    with atomic_dir(dest) as tmp:  # whole or not at all
        for f in present:
            shutil.copy2(out / f, tmp / f)
    return dest


def put_back_record(out: Path, kept: Path) -> None:
    """Undo :func:`keep_earlier_record` for a command stopped or failed before any of its stages finished:
    the earlier record's files in ``kept`` (``history/<n>``) go back to ``out``, so the run record keeps
    describing the outputs beside it (a re-run stopped midway had left its own settings there, beside the
    earlier command's table and audit), and ``kept`` is removed when it holds nothing else (evaluation
    records that a resume retired there stay)."""
    import shutil

    for name in RUN_RECORD:
        if (kept / name).is_file():
            with atomic_path(out / name) as tmp:
                shutil.copy2(kept / name, tmp)
    if all(p.name in RUN_RECORD for p in kept.iterdir()):
        shutil.rmtree(kept, ignore_errors=True)
        history = kept.parent
        if not any(history.iterdir()):
            history.rmdir()


def next_history_folder(out: Path, create: bool = True) -> Path:
    """``out/history/<n>`` for the first n = 1, 2, ... not taken (made when ``create``)."""
    n = 1
    while (out / HISTORY_DIR / str(n)).exists():
        n += 1
    dest = out / HISTORY_DIR / str(n)
    if create:
        dest.mkdir(parents=True)
    return dest
