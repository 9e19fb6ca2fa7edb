"""Patch grid over a whole image: fixed size and overlap, last row/column aligned to the border.

With the paper's 299 px patches and 50 px overlap (stride 249) a 2048 px side gives offsets
0, 249, ..., 1743 and a last one at 2048 - 299 = 1749, so 9 x 9 = 81 patches and no pixel dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gastrodistill.data.errors import GeometryError
from gastrodistill.data.sizes import pixel_size


@dataclass(frozen=True)
class Geometry:
    """Patch size and overlap in source pixels."""

    patch_size: int = 299
    overlap: int = 50

    def __post_init__(self) -> None:
        # a string of digits (e.g. from ${oc.env:...}) becomes its integer; true, "abc" or 1.5 are refused
        object.__setattr__(
            self, "patch_size", pixel_size(self.patch_size, "data.patch_size", GeometryError, example=299)
        )
        object.__setattr__(
            self, "overlap", pixel_size(self.overlap, "data.overlap", GeometryError, low=0, example=50)
        )
        if self.patch_size is None or self.overlap is None:
            raise GeometryError("data.patch_size and data.overlap must be numbers of pixels, not null")
        if not 0 <= int(self.overlap) < int(self.patch_size):
            raise GeometryError(
                f"data.overlap={self.overlap} must be >= 0 and smaller than data.patch_size={self.patch_size}"
            )

    @property
    def stride(self) -> int:
        """Step between neighbouring patches in px: ``patch_size - overlap``."""
        return int(self.patch_size) - int(self.overlap)

    def positions(self, length: int, what: str = "image") -> list[int]:
        """Top-left offsets (px) along a side of ``length`` px (:func:`grid_positions`)."""
        return grid_positions(length, self.patch_size, self.overlap, what)

    def grid(self, height: int, width: int, what: str = "image") -> list[tuple[int, int]]:
        """All ``(row, col)`` top-left corners (px) in a ``height`` x ``width`` image, row-major."""
        return tile_positions(height, width, self.patch_size, self.overlap, what)

    def count(self, height: int, width: int, what: str = "image") -> int:
        """Number of patches in a ``height`` x ``width`` px image."""
        return len(self.positions(height, what)) * len(self.positions(width, what))

    def as_dict(self) -> dict[str, int]:
        """``patch_size``, ``overlap`` and ``stride`` in px, for hashes and records."""
        return {"patch_size": int(self.patch_size), "overlap": int(self.overlap), "stride": self.stride}


def grid_positions(length: int, size: int = 299, overlap: int = 50, what: str = "image") -> list[int]:
    """Top-left offsets along one side: multiples of the stride, plus one aligned to the far border."""
    if length < size:
        raise GeometryError(
            f"{what}: side of {length} px is smaller than the {size} px patch; "
            f"use a larger image or a smaller data.patch_size"
        )
    stride = size - overlap
    if stride < 1:
        raise GeometryError(f"data.overlap={overlap} must be smaller than data.patch_size={size}")
    last = length - size
    positions = list(range(0, last + 1, stride))
    if positions[-1] != last:
        positions.append(last)
    return positions


def tile_positions(
    height: int, width: int, size: int = 299, overlap: int = 50, what: str = "image"
) -> list[tuple[int, int]]:
    """All ``(row, col)`` top-left corners, row-major."""
    rows = grid_positions(height, size, overlap, what)
    cols = grid_positions(width, size, overlap, what)
    return [(r, c) for r in rows for c in cols]


def extract_patches(image: np.ndarray, positions: list[tuple[int, int]], size: int) -> np.ndarray:
    """Copy the patches at ``positions`` out of a 2-D image: ``[len(positions), size, size]``."""
    out = np.empty((len(positions), size, size), dtype=image.dtype)
    for i, (r, c) in enumerate(positions):
        out[i] = image[r : r + size, c : c + size]
    return out
