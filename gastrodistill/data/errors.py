"""Errors for bad user data: each lists every problem found, where it is, and what to fix."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

#: What to do with an image that is not one 2-D grayscale image (every reader's advice).
GRAYSCALE_FIX = "save it as a single-channel 8- or 16-bit grayscale PNG/TIFF or a MONOCHROME DICOM"


def error_text(exc: BaseException, path: Path, where: str) -> str:
    """An exception's text with the file's full path replaced by ``where`` (messages name files as given).

    The resolved path first: a relative ``path`` is part of it, and replaced first would leave its folder."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(str(path.resolve()), where).replace(str(path), where)


class DataInputError(ValueError):
    """Bad input data. ``problems`` holds one line per problem (file/row/key + what to fix)."""

    def __init__(self, problems: Iterable[str] | str, header: str = "") -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if header:
            text = header + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        else:
            text = "; ".join(self.problems)
        super().__init__(text)


class ImageReadError(DataInputError):
    """An image or mask file that cannot be read as a 2-D grayscale 8/16-bit image."""


class BitDepthExceeded(ImageReadError):
    """Pixel values above the largest value of ``data.bit_depth``; ``top`` is the file's largest value."""

    def __init__(self, problems: Iterable[str] | str, top: int = 0) -> None:  # default: unpickling
        super().__init__(problems)
        self.top = top


class GeometryError(DataInputError):
    """Patch geometry that does not fit (bad size/overlap, image smaller than a patch)."""


class ManifestError(DataInputError):
    """Problems in manifest.csv or in the files it points to."""


class PatchLabelError(DataInputError):
    """Problems in patch_labels.csv, or images that have neither a mask nor manual labels."""


class StoreError(DataInputError):
    """A patch store that is missing or unreadable."""


#: Said of a missing relative path that Hydra's working folder does not explain.
RELATIVE_PATH_NOTE = (
    " ({path} is relative, so it is read from the folder the command runs in, {cwd}: run the command from "
    "your project's folder, or set GASTRODISTILL_ROOT=<project folder> (paths.root_dir), where every "
    "default data and output path starts, or give an absolute path)"
)


def relative_path_hint(path: Path, key: str) -> str:
    """A hint for a missing relative ``path`` (``key`` names it): when Hydra changed the working folder
    (``hydra.job.chdir=true``) and it exists where the command started, how to name it from there; else
    that a relative path is read from the folder the command runs in (:data:`RELATIVE_PATH_NOTE`: a
    command started from ``docs/`` or a SLURM job from ``$HOME`` missed ``data/synthetic/...``).
    ``""`` for an absolute path."""
    if path.is_absolute():
        return ""
    note = RELATIVE_PATH_NOTE.format(path=path.as_posix(), cwd=Path.cwd())
    try:
        from hydra.core.hydra_config import HydraConfig

        started = Path(HydraConfig.get().runtime.cwd)
    except Exception:  # noqa: BLE001 - not inside a Hydra run: nothing moved
        return note
    if started.resolve() == Path.cwd().resolve() or not (started / path).exists():
        return note
    return (
        f" (with hydra.job.chdir=true a relative {key} is read from the run folder; it exists where the "
        f"command started: give an absolute path, or {key}=${{hydra:runtime.cwd}}/{path.as_posix()})"
    )
