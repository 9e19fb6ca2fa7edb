"""What a run folder held before Hydra wrote into it, so that a refused command leaves it as it was.

Hydra makes the job's output folder and writes ``.hydra/`` (and starts its job log) before any of our
code runs. For a new, timestamped folder that is harmless: ``errors.remove_if_untouched`` removes a folder
holding only that bookkeeping. A folder that already existed (``hydra.run.dir`` given: an earlier run's
folder, a folder the user made) was removed when it had been empty, and otherwise kept with ``.hydra/``
rewritten to the refused command's config and overrides and a job log added.

:class:`RunFolderSnapshot`, a Hydra callback (``hydra.callbacks`` in ``conf/hydra/default.yaml``), records
in ``on_run_start``, before the folder is made, whether it exists, its entries and the bytes of its
``.hydra/`` files and run record (:func:`snapshot`); :func:`restore_if_refused` puts back that state after
a failure that did not rewrite the run record. Single runs only: a sweep's job folders are new ones.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

#: The run record that ``utils.run_info.save_run_info`` writes once a command has passed its checks.
RECORD_FILES = ("config.yaml", "run_info.json")
#: The folder of Hydra's own record of a job (``hydra.output_subdir``).
HYDRA_DIR = ".hydra"


@dataclass(frozen=True)
class FolderState:
    """A run folder as it was before the command: whether it existed, its entries' names, the bytes of
    each file in ``.hydra/`` and of the run record (None: absent)."""

    existed: bool
    names: frozenset[str] = frozenset()
    hydra_files: dict[str, bytes] = field(default_factory=dict)
    record: dict[str, bytes | None] = field(default_factory=dict)


#: Folder (absolute) -> its state before this process's command; one entry per run of a command.
_BEFORE: dict[Path, FolderState] = {}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes() if path.is_file() else None
    except OSError:
        return None


def snapshot(folder: str | Path) -> FolderState:
    """Record ``folder``'s state (:class:`FolderState`) for :func:`restore_if_refused`; returns it."""
    folder = Path(folder).absolute()
    if not folder.is_dir():
        state = FolderState(existed=False)
    else:
        hydra = folder / HYDRA_DIR
        files = {p.name: _read(p) for p in hydra.iterdir() if p.is_file()} if hydra.is_dir() else {}
        state = FolderState(
            existed=True,
            names=frozenset(p.name for p in folder.iterdir()),
            hydra_files={k: v for k, v in files.items() if v is not None},
            record={name: _read(folder / name) for name in RECORD_FILES},
        )
    _BEFORE[folder] = state
    return state


def state_before(folder: str | Path) -> FolderState | None:
    """The state :func:`snapshot` recorded for ``folder``, or None."""
    return _BEFORE.get(Path(folder).absolute())


def restore_if_refused(folder: Path, bookkeeping: set[str]) -> bool:
    """After a failed command in a folder that existed before it: when the run record is as it was (the
    command was refused before it wrote its own), remove what the command added among ``bookkeeping``
    (entry names: ``.hydra``, the job log, ...) and put ``.hydra/`` back as it was. Returns True when
    ``folder`` existed before (whatever was restored), False when it is new or unknown (the caller then
    decides, as for any new folder)."""
    state = state_before(folder)
    if state is None or not state.existed:
        return False
    if any(_read(folder / name) != before for name, before in state.record.items()):
        return True  # the command wrote its run record: its .hydra/ belongs with it
    for entry in list(folder.iterdir()) if folder.is_dir() else []:
        if entry.name in bookkeeping and entry.name not in state.names:
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
    hydra = folder / HYDRA_DIR
    if state.hydra_files and hydra.is_dir():
        for p in hydra.iterdir():
            if p.is_file() and p.name not in state.hydra_files:
                p.unlink(missing_ok=True)
        for name, data in state.hydra_files.items():
            (hydra / name).write_bytes(data)
    return True


class RunFolderSnapshot(Callback):
    """Hydra callback: :func:`snapshot` of ``hydra.run.dir`` before a single run makes it."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        try:
            folder = OmegaConf.select(config, "hydra.run.dir")
        except Exception:  # noqa: BLE001 - a folder that cannot be resolved is Hydra's to report
            return
        if folder:
            snapshot(Path(str(folder)))
