"""Which checkpoint ``distill.resume`` means: ``last``, a run folder, or a checkpoint file.

Checkpoints live in ``<run>/<mode>/checkpoints/`` (``gastrodistill-distill``) or
``<run>/distill/<mode>/checkpoints/`` (``gastrodistill-reproduce``) and are named ``step000123.ckpt``
and ``last.ckpt`` (no ``=``: a path can be passed unquoted as a Hydra override). Every run gets a new,
timestamped folder, so ``last`` searches the earlier runs of the same experiment
(``distill.resume_root``, by default ``<root>/outputs/<experiment_name>``) and the current run folder for
checkpoints of the same label mode and takes the newest. The checkpoint also records its mode and
:class:`~gastrodistill.distillation.module.DistillModule` refuses one of the other mode, so soft and
hard runs never share a checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

from gastrodistill.distillation.distilled_set import MODES

CKPT_DIR = "checkpoints"
CKPT_FILENAME = "step{step:06d}"  # ModelCheckpoint template (auto_insert_metric_name=False)


class ResumeError(RuntimeError):
    """A resume was asked for and nothing can be loaded; the message says where it looked and what to pass."""


def _checkpoints_of(folder: Path, mode: str) -> list[Path]:
    """Every ``*.ckpt`` under ``folder`` that sits in a ``<mode>/checkpoints/`` folder."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*.ckpt")
        if p.is_file() and p.parent.name == CKPT_DIR and p.parent.parent.name == mode
    )


def _step_of(path: Path) -> int:
    stem = path.stem
    digits = stem[4:] if stem.startswith("step") else ""
    return int(digits) if digits.isdigit() else -1


def newest(paths: list[Path]) -> Path | None:
    """The most recently written checkpoint (ties: the higher step, then ``last.ckpt``)."""
    if not paths:
        return None
    return max(paths, key=lambda p: (p.stat().st_mtime_ns, _step_of(p), p.name == "last.ckpt"))


def resolve_resume(
    spec: str | os.PathLike | None,
    mode: str,
    output_dir: str | os.PathLike,
    resume_root: str | os.PathLike | None = None,
) -> Path | None:
    """The checkpoint to resume the ``mode`` run from, or None when ``spec`` is empty or nothing matches.

    ``spec``: ``None``/``""`` (no resume), ``"last"`` (newest ``mode`` checkpoint under
    ``output_dir`` and ``resume_root``), a run folder (newest ``mode`` checkpoint under it) or a ``.ckpt``
    file (used as it is when it is of this mode, or when its folder does not tell; a checkpoint in
    ``<run>/<other mode>/checkpoints/`` stands for its run folder, searched for a ``mode`` checkpoint).
    Raises :class:`ResumeError` when ``spec`` is a path that does not exist or ``mode`` is unknown.
    """
    if spec is None or str(spec).strip() in ("", "null", "None"):
        return None
    if mode not in MODES:
        raise ResumeError(f"unknown distillation mode {mode!r}; expected one of {MODES}")
    text = str(spec).strip()
    if text == "last":
        found = _checkpoints_of(Path(output_dir), mode)
        if resume_root is not None:
            found += _checkpoints_of(Path(resume_root), mode)
        return newest(sorted(set(found)))
    path = Path(text).expanduser()
    if path.is_dir():
        return newest(_checkpoints_of(path, mode))
    if path.is_file():
        parent_mode = path.parent.parent.name if path.parent.name == CKPT_DIR else None
        if parent_mode in MODES and parent_mode != mode:
            run_folder = path.parent.parent.parent
            return newest(_checkpoints_of(run_folder, mode))
        return path
    raise ResumeError(
        f"distill.resume={text}: no such checkpoint file or run folder; pass 'last', a run folder "
        f"(outputs/<experiment>/runs/<time>) or a .ckpt file"
    )


def missing_message(
    spec: str, modes: list[str], output_dir: str | os.PathLike, resume_root: str | None
) -> str:
    """The error text for a resume that found nothing (names the modes and the folders searched: the run
    folder or checkpoint passed, or for ``last`` this run's folder and ``resume_root``)."""
    if str(spec).strip() == "last":
        where = f"{output_dir}" + (f" and {resume_root}" if resume_root else "")
    else:
        path = Path(str(spec).strip()).expanduser()
        where = f"{path}" if path.is_dir() else f"the run folder of {path}"
    return (
        f"distill.resume={spec}: no checkpoint of the {' or '.join(modes)}-label run found under {where}. "
        f"Checkpoints are written every distill.ckpt_every outer steps to <run>/<mode>/checkpoints; pass an "
        f"existing run folder or .ckpt file, or drop distill.resume to start from step 0"
    )
