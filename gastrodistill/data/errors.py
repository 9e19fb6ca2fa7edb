"""Errors for bad user data: each lists every problem found, where it is, and what to fix."""

from __future__ import annotations

from collections.abc import Iterable


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


class GeometryError(DataInputError):
    """Patch geometry that does not fit (bad size/overlap, image smaller than a patch)."""


class ManifestError(DataInputError):
    """Problems in manifest.csv or in the files it points to."""


class PatchLabelError(DataInputError):
    """Problems in patch_labels.csv, or images that have neither a mask nor manual labels."""


class StoreError(DataInputError):
    """A patch store that is missing or unreadable."""
