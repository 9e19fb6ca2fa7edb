"""Write-then-rename helpers so that an interrupted run never leaves a file or folder that looks complete."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    """Yield a temporary path beside ``target``; rename it onto ``target`` only if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix + ".tmp", dir=target.parent)
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


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; it replaces ``target`` only if the block succeeds.

    An earlier ``target`` stays as it was until then; should the swap itself be stopped (Ctrl-C between its
    two renames), the earlier folder is put back."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    _usual_mode(tmp_path, directory=True)
    try:
        yield tmp_path
        _usual_mode(tmp_path, directory=True)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
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
    finally:
        if tmp_path.exists():
            shutil.rmtree(tmp_path, ignore_errors=True)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``target`` via a temporary file and a rename (:func:`atomic_path`); returns it."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
    return Path(target)
