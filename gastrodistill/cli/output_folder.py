"""An output folder a command is told to write to, checked before any work is done.

A folder path below an existing file (``--output afile/sub``), or one the system will not let this
process create or write (``--output /proc/x``, a read-only mount, another user's folder), ended in a
``NotADirectoryError`` / ``FileNotFoundError`` / ``PermissionError`` traceback once a stage first wrote
there, after loading data or training. :func:`output_folder_problem` says why in words, by trying:
it creates the missing folders and one empty file in the last of them, then removes all it made, so a
refused command (or a later refusal of something else) leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from gastrodistill.cli.errors import CommandError
from gastrodistill.utils.atomic import nearest_existing

GIVE_FOLDER = "give a folder you can write to (it is created if missing)"


def output_folder_problem(path: str | os.PathLike) -> str | None:
    """Why no output can be written into the folder ``path`` (the words after the path in a message),
    or ``None`` when it can. Creates nothing that outlasts the call."""
    path = Path(path)
    created: list[Path] = []
    existing = path
    try:
        if path.exists() and not path.is_dir():
            return "is a file; give a folder (it is created if missing)"
        existing = nearest_existing(path)
        if existing.exists() and not existing.is_dir():
            return f"is inside {existing}, which is a file; {GIVE_FOLDER}"
        missing, folder = [], path
        while folder != existing:
            missing.append(folder)
            folder = folder.parent
        # The ranks of one distributed command check the same folder at once: one may create a folder
        # another is about to create (FileExistsError) or remove the one it made for its own check while
        # another probes it (FileNotFoundError). Neither is a problem of the folder: try again.
        for attempt in range(1, 6):
            try:
                for folder in reversed(missing):
                    try:
                        folder.mkdir()
                        created.append(folder)
                    except FileExistsError:
                        if not folder.is_dir():
                            raise
                fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
                os.close(fd)
                os.unlink(probe)
                break
            except FileNotFoundError:
                if attempt == 5 or not existing.is_dir():
                    raise
    except OSError as e:
        what = f"cannot be created in {existing}" if not created and existing != path else "cannot be written"
        return f"{what} ({e.strerror or e}); {GIVE_FOLDER}"
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
    return None


def check_output_folder(path: str | os.PathLike, option: str) -> None:
    """Raise :class:`CommandError` ``<option> <path> <problem>`` when :func:`output_folder_problem` finds
    one."""
    problem = output_folder_problem(path)
    if problem is not None:
        raise CommandError(f"{option} {path} {problem}")


#: Overrides that name the folder a Hydra command writes to (a run's, or a sweep's parent folder).
OUTPUT_KEYS = ("paths.output_dir", "hydra.run.dir", "hydra.sweep.dir")


def command_line_output_problem(argv: list[str]) -> str | None:
    """The error line for an output folder given on a Hydra command line (``paths.output_dir=...``,
    ``hydra.run.dir=...``, ``hydra.sweep.dir=...``) that cannot be written, else ``None``; checked before
    Hydra makes its run folder; an empty value is refused (Hydra would write into the current folder). Values
    with an interpolation (``${...}``) or a sweep are left to the run."""
    for arg in argv:
        key, eq, value = arg.partition("=")
        if key.startswith("~"):  # ~key=value deletes the key (when it holds value): no folder is written
            continue
        key = key.lstrip("+")  # +key=, ++key=: the same folder
        if eq and key in OUTPUT_KEYS and not value.strip("'\" "):
            # Hydra takes an empty folder for the current one: a run's files land beside the command
            # (a breaker's `hydra.run.dir=` wrote soft/, logs/ and .hydra/ into the repository)
            return (
                f"error: {key}= is empty (an unset shell variable?); give a folder, e.g. {key}=runs/first, "
                f"or {key}=. to write into the current folder on purpose"
            )
        if eq and key in OUTPUT_KEYS and value and "${" not in value and "," not in value:
            problem = output_folder_problem(value.strip("'\""))
            if problem is not None:
                return f"error: {key}={value}: {value} {problem}"
    return None
