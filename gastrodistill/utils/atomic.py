"""Write-then-rename helpers so that an interrupted run never leaves a file or folder that looks complete.

A temporary file or folder is named ``.<target>.<host>-<pid>.<random>[suffix].tmp``, beside its target. A
process killed outright (SIGKILL, the out-of-memory killer, a node lost) cannot remove its own; the next
writer of the same target on the same host removes those whose process no longer runs
(:func:`remove_leftovers`): an audit's half-written folder holds pictures of real patches. A folder that
:func:`atomic_dir` had set aside to swap in its new version (``.<target>.<host>-<pid>.old``) is put back
when the swap was killed between its two renames (:func:`recover_interrupted_swap`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger(__name__)


def _host() -> str:
    """This machine's name as it stands in temporary names (characters other than letters, digits, ``_``
    and ``-`` replaced by ``_``)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname()) or "host"


def _temporary_prefix(target: Path) -> str:
    """``.<target>.<host>-<pid>.``: the start of this process's temporary names for ``target``."""
    return f".{target.name}.{_host()}-{os.getpid()}."


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine (of any user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _dead_writers_entries(target: Path, tail: str, legacy: str | None = None) -> list[Path]:
    """The entries beside ``target`` named ``.<target>.<host>-<pid>.<tail>`` (``tail`` a regex) whose
    writer ran on this host and no longer runs (not this process, not a running one, not another host's on
    a shared file system), plus an entry named ``.<target>.<legacy>`` (an earlier version's name, without
    its writer) when ``legacy`` is given."""
    name = re.escape(target.name)
    pattern = re.compile(rf"\.{name}\.(?:([A-Za-z0-9_-]+)-(\d+)\.{tail}" + (f"|{legacy})" if legacy else ")"))
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return []
    host, dead = _host(), []
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match is None:
            continue
        if match.group(1) is not None:
            pid = int(match.group(2))
            if match.group(1) != host or pid == os.getpid() or _running(pid):
                continue
        dead.append(path)
    return dead


def remove_leftovers(target: str | os.PathLike) -> list[str]:
    """Delete the temporary files and folders that writers of ``target`` (:func:`atomic_path`,
    :func:`atomic_dir`) on this host left when they were killed: those whose process no longer runs.
    Those of running processes, of this one and of other hosts (a shared file system) are kept, and so
    are temporary names of another form. Returns the names removed (never paths)."""
    target = Path(target)
    removed = []
    for path in _dead_writers_entries(target, r".*\.tmp"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                path.unlink()
        removed.append(path.name)
    if removed:
        log.info("removed %d leftover(s) of an interrupted write of %s", len(removed), target.name)
    return removed


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself when it exists, else its nearest existing parent (the folder a writer creating
    ``path`` would start from; ``/`` at worst)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where the kernel gives it (setting it to 0
    and back, the only other way, would let a file made by another thread meanwhile be world-writable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _usual_mode(path: Path, directory: bool) -> None:
    """Give a temporary file or folder the mode a plain ``open``/``mkdir`` would (``mkstemp`` and
    ``mkdtemp`` make them private to their owner: a shared artifact would be unreadable to its group)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds.
    Leftovers of killed writers of ``target`` are removed first (:func:`remove_leftovers`)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=suffix + ".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    _usual_mode(tmp_path, directory=False)
    try:
        yield tmp_path
        # Again after the block: a writer may have replaced the file with one of its own making
        # (safetensors' ``save_file`` writes a private temporary file and renames it onto ``tmp``).
        _usual_mode(tmp_path, directory=False)
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def recover_interrupted_swap(target: str | os.PathLike) -> str | None:
    """After :func:`atomic_dir`'s swap was killed outright between its two renames (SIGKILL, the
    out-of-memory killer), ``target`` is missing and its earlier, complete version sits in
    ``.<target>.<host>-<pid>.old`` (``.<target>.old`` from earlier versions): when ``target`` is missing,
    the newest such folder of a process that no longer runs on this host is put back as ``target``; the
    others, and all of them when ``target`` exists (the swap was killed after its second rename), are
    removed. Those of running processes and other hosts are kept. Returns the name put back, or None."""
    target = Path(target)
    dead = [
        p for p in _dead_writers_entries(target, "old", legacy="old") if p.is_dir() and not p.is_symlink()
    ]
    dead.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    restored = None
    if dead and not target.exists():
        os.replace(dead.pop(0), target)
        restored = target.name
        log.info("put back the earlier %s that an interrupted replacement had set aside", target.name)
    for path in dead:
        shutil.rmtree(path, ignore_errors=True)
    return restored


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it replaces ``target`` only if the block succeeds.

    An earlier ``target`` stays as it was until then; should the swap itself be stopped (Ctrl-C between its
    two renames), the earlier folder is put back. Leftovers of killed writers of ``target`` are removed
    first (:func:`remove_leftovers`), and an earlier folder that a killed swap had set aside is put back
    (:func:`recover_interrupted_swap`). Folders made for ``target``'s parent are removed again when the
    block fails and they are empty (a refused input leaves no empty folder behind)."""
    target = Path(target)
    top = nearest_existing(target.parent)
    made = [target.parent, *target.parent.parents]  # the parent folders this call makes, nearest first
    made = made[: made.index(top)] if top in made else []
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(target)
    recover_interrupted_swap(target)
    tmp_path = Path(tempfile.mkdtemp(prefix=_temporary_prefix(target), suffix=".tmp", dir=target.parent))
    _usual_mode(tmp_path, directory=True)
    done = False
    try:
        yield tmp_path
        _usual_mode(tmp_path, directory=True)
        if target.exists():
            old = target.with_name(f"{_temporary_prefix(target)}old")  # .<target>.<host>-<pid>.old
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            try:
                os.replace(tmp_path, target)
            except BaseException:
                if not target.exists():
                    os.replace(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_path, target)
        done = True
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path, ignore_errors=True)
        for made_folder in () if done else made:
            try:
                made_folder.rmdir()  # only an empty folder
            except OSError:
                break


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` via a temporary file and a rename (:func:`atomic_path`); returns it."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)


def write_texts_atomic(folder: str | os.PathLike, texts: Mapping[str, str]) -> Path:
    """Write each ``texts[name]`` to ``folder/name`` so that they replace their earlier versions together:
    every file is written to a temporary path first and renamed only when all are written, so a full disk
    or an error while writing leaves the earlier files as they were (a receive report whose new
    ``config.yaml`` stood beside the earlier run's ``receive.json`` read as one report). A kill between the
    renames can still mix them. Returns ``folder``."""
    folder = Path(folder)
    with contextlib.ExitStack() as stack:
        for name, text in texts.items():  # atomic_path renames as the stack closes, after every write
            stack.enter_context(atomic_path(folder / name)).write_text(text)
    return folder
