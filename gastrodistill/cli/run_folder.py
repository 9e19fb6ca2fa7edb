"""What a run folder held before Hydra wrote into it, so that a refused command leaves it as it was.

Hydra makes the job's output folder and writes ``.hydra/`` (and starts its job log) before any of our
code runs, and a command writes its run record (``config.yaml``, ``run_info.json``) once its first checks
pass. For a new, timestamped folder that is harmless: ``errors.remove_if_untouched`` removes a folder
holding only that bookkeeping. A folder that already existed (``hydra.run.dir`` given: an earlier run's
folder, a folder the user made) was removed when it had been empty, and otherwise kept with ``.hydra/``
and the run record rewritten to the refused command's and a job log added.

:class:`RunFolderSnapshot`, a Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``), records
in ``on_run_start``, before the folder is made, whether it exists, every file below it with its size and
modification time, and the bytes of its ``.hydra/`` files and run record (:func:`snapshot`).
:func:`restore_if_refused` puts that state back after a failure only when the command produced nothing
(no file outside the bookkeeping was added or changed): a long run stopped or failing midway keeps its
log, its ``.hydra/`` and its checkpoints. Single runs on global rank 0 only (the other ranks of a
distributed run share rank 0's folder); for a sweep, the job folders already in its sweep folder when it
starts (``hydra.sweep.dir`` given again: its jobs reuse them); the sweep's own ``multirun.yaml`` is
Hydra's, rewritten by every sweep.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from gastrodistill.utils.run_info import RECORD_FILES  # written once a command has passed its checks

#: The loggers' folder of a run (``utils.loggers.stage_loggers``: ``logs/csv/<stage>-<n>/``, ...).
LOGS_DIR = "logs"
#: The folder of Hydra's own record of a job (``hydra.output_subdir``).
HYDRA_DIR = ".hydra"
#: Where ``gastrodistill-reproduce`` keeps a folder's earlier run records
#: (``pipeline.run_record.keep_earlier_record``).
HISTORY_DIR = "history"


@dataclass(frozen=True)
class FolderState:
    """A run folder as it was before the command: whether it existed, its top-level entries, every file
    below it but ``.hydra/`` as (size, mtime_ns) by relative path, and the bytes of each ``.hydra/`` file
    and of the run record (None: absent); for a new folder, the missing folders above it that making it
    creates (``made_parents``, nearest first, at most :data:`MADE_PARENTS`)."""

    existed: bool
    made_parents: tuple[str, ...] = ()
    names: frozenset[str] = frozenset()
    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    hydra_files: dict[str, bytes] = field(default_factory=dict)
    record: dict[str, bytes | None] = field(default_factory=dict)


#: How many missing folders above a new run folder are recorded (``runs/``, ``<experiment>/`` and ``outputs/``
#: of the default ``outputs/<experiment>/runs/<time>``): those a refused command removes again when empty.
MADE_PARENTS = 3
#: Folder (``os.path.abspath``, as Hydra makes it) -> its state before this process's command.
_BEFORE: dict[str, FolderState] = {}


def _key(folder: str | Path) -> str:
    return os.path.abspath(str(folder))


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def _files(folder: Path, skip: set[str]) -> dict[str, tuple[int, int]]:
    """Every file below ``folder`` (not following links) but those under the top-level entries ``skip``."""
    out: dict[str, tuple[int, int]] = {}
    for root, dirs, names in os.walk(folder):
        rel_root = Path(root).relative_to(folder)
        if rel_root == Path("."):
            dirs[:] = [d for d in dirs if d not in skip]
            names = [n for n in names if n not in skip]
        for name in names:
            try:
                st = (Path(root) / name).lstat()
            except OSError:
                continue
            out[(rel_root / name).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def snapshot(folder: str | Path) -> FolderState:
    """Record ``folder``'s state (:class:`FolderState`) for :func:`restore_if_refused`; returns it."""
    path = Path(_key(folder))
    if not path.is_dir():
        made, parent = [], path.parent
        while len(made) < MADE_PARENTS and not parent.exists():
            made.append(str(parent))
            parent = parent.parent
        state = FolderState(existed=False, made_parents=tuple(made))
    else:
        hydra = path / HYDRA_DIR
        found = {p.name: _read(p) for p in hydra.iterdir() if p.is_file()} if hydra.is_dir() else {}
        state = FolderState(
            existed=True,
            names=frozenset(p.name for p in path.iterdir()),
            files=_files(path, {HYDRA_DIR}),
            hydra_files={k: v for k, v in found.items() if v is not None},
            record={name: _read(path / name) for name in RECORD_FILES},
        )
    _BEFORE[_key(folder)] = state
    return state


def state_before(folder: str | Path) -> FolderState | None:
    """The state :func:`snapshot` recorded for ``folder``, or None."""
    return _BEFORE.get(_key(folder))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def restore_if_refused(folder: Path, bookkeeping: set[str]) -> bool:
    """After a failed command in a folder that existed before it: when the command produced nothing (every
    file below the folder but ``bookkeeping``, ``.hydra/``, the run record, new ``history/`` entries and new
    loggers' ``logs/**/hparams.yaml`` is as it was), remove what it added among ``bookkeeping`` (top-level
    names: the job log, ...) and those ``hparams.yaml`` with their emptied folders, cut the lines it
    appended to an earlier job log of the folder, and put ``.hydra/`` and the run record back as they
    were. Returns True when ``folder`` existed before (restored or, when the command produced something,
    kept as it is), False when it is new or unknown (the caller then treats it as any new folder). A file
    system error leaves the rest as it is and returns True."""
    state = state_before(folder)
    if state is None or not state.existed:
        return False
    try:
        skip = {HYDRA_DIR, *RECORD_FILES, *bookkeeping}
        now = _files(folder, skip)
        before = {k: v for k, v in state.files.items() if k.split("/", 1)[0] not in skip}
        added_history = {k for k in now if k.startswith(f"{HISTORY_DIR}/") and k not in before}
        # a stage's logger writes hparams.yaml into a new version folder as it starts (logs/csv/audit-3/)
        added_hparams = {
            k for k in now if k.startswith(f"{LOGS_DIR}/") and k.endswith("/hparams.yaml")
        } - set(before)
        if {k: v for k, v in now.items() if k not in added_history | added_hparams} != before:
            return True  # the command produced something: its log and record belong with it
        for k in added_hparams:
            (folder / k).unlink(missing_ok=True)
            parent = (folder / k).parent
            while parent != folder / LOGS_DIR and not any(parent.iterdir()):
                parent.rmdir()  # the version folder, made by the command, holds nothing now
                parent = parent.parent
        for entry in folder.iterdir():
            if entry.name in bookkeeping and entry.name not in state.names:
                _remove(entry)
            elif entry.name in bookkeeping and entry.name in state.files and entry.is_file():
                size, mtime = state.files[entry.name]  # an earlier run's job log: the lines added go
                if entry.stat().st_size > size:
                    os.truncate(entry, size)
                    os.utime(entry, ns=(mtime, mtime))
        history = folder / HISTORY_DIR
        if history.is_dir():
            for entry in history.iterdir():
                if any(k.startswith(f"{HISTORY_DIR}/{entry.name}/") for k in added_history):
                    _remove(entry)
            if HISTORY_DIR not in state.names and not any(history.iterdir()):
                history.rmdir()
        for name, data in state.record.items():
            if data is None:
                (folder / name).unlink(missing_ok=True)
            else:
                (folder / name).write_bytes(data)
        hydra = folder / HYDRA_DIR
        if HYDRA_DIR not in state.names:
            _remove(hydra)
        elif hydra.is_dir():
            for p in hydra.iterdir():
                if p.is_file() and p.name not in state.hydra_files:
                    p.unlink(missing_ok=True)
            for name, data in state.hydra_files.items():
                (hydra / name).write_bytes(data)
    except OSError:
        pass  # never hide the command's own error behind a cleanup's
    return True


class RunFolderSnapshot(Callback):
    """Hydra callback: :func:`snapshot` of ``hydra.run.dir`` before a single run makes it (global rank 0
    only: under torchrun or SLURM every rank starts the command on the same folder), and of the job
    folders a sweep finds in its sweep folder."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        """Hydra hook: on global rank 0, :func:`snapshot` of the run folder (``hydra.run.dir``) first."""
        from omegaconf import OmegaConf

        from gastrodistill.utils.distributed import global_rank

        if global_rank() != 0:
            return
        try:
            folder = OmegaConf.select(config, "hydra.run.dir")
        except Exception:  # noqa: BLE001 - a folder that cannot be resolved is Hydra's to report
            return
        if folder:
            snapshot(str(folder))

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        """Hydra hook: :func:`snapshot` of every folder already in the sweep folder (``hydra.sweep.dir``
        given again: its jobs reuse the job folders ``<N>`` of the earlier sweep, whose ``.hydra/`` a
        refused job rewrote)."""
        from omegaconf import OmegaConf

        try:
            folder = OmegaConf.select(config, "hydra.sweep.dir")
        except Exception:  # noqa: BLE001 - a folder that cannot be resolved is Hydra's to report
            return
        if folder and Path(folder).is_dir():
            for child in Path(folder).iterdir():
                if child.is_dir() and not child.is_symlink():
                    snapshot(str(child))
