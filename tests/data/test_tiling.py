"""Patch grid geometry: the paper's 81 patches per 2048² image, border alignment, bad sizes."""

from __future__ import annotations

import numpy as np
import pytest

from gastrodistill.data.errors import GeometryError
from gastrodistill.data.tiling import Geometry, extract_patches, grid_positions, tile_positions


def test_2048_gives_nine_by_nine_patches():
    pos = grid_positions(2048, 299, 50)
    assert pos == [0, 249, 498, 747, 996, 1245, 1494, 1743, 1749]
    assert len(tile_positions(2048, 2048, 299, 50)) == 81
    assert Geometry().count(2048, 2048) == 81
    assert Geometry().stride == 249


@pytest.mark.parametrize("height,width", [(1000, 777), (299, 300), (548, 2047), (640, 480)])
def test_grid_covers_every_pixel_and_ends_on_the_border(height, width):
    size, overlap = 299, 50
    cover = np.zeros((height, width), dtype=np.int32)
    positions = tile_positions(height, width, size, overlap)
    for r, c in positions:
        assert r >= 0 and r + size <= height and c >= 0 and c + size <= width
        cover[r : r + size, c : c + size] += 1
    assert cover.min() >= 1, "some pixels are not in any patch"
    rows = sorted({r for r, _ in positions})
    cols = sorted({c for _, c in positions})
    assert rows[-1] + size == height and cols[-1] + size == width
    # neighbours overlap by at least the configured overlap (the border one by more)
    assert all(0 < b - a <= size - overlap for a, b in zip(rows, rows[1:], strict=False))
    assert len(set(positions)) == len(positions)


def test_exact_fit_has_no_duplicate_last_patch():
    length = 299 + 3 * 249
    assert grid_positions(length) == [0, 249, 498, 747]
    assert grid_positions(299) == [0]


def test_image_smaller_than_patch_is_a_clear_error():
    with pytest.raises(GeometryError, match=r"298 px is smaller than the 299 px patch"):
        tile_positions(298, 4000)
    with pytest.raises(ValueError, match="patch_size"):
        Geometry(patch_size=64, overlap=64)
    with pytest.raises(ValueError, match="overlap"):
        Geometry(patch_size=64, overlap=-1)


def test_extract_patches_copies_the_right_pixels():
    img = np.arange(100 * 90, dtype=np.float32).reshape(100, 90)
    pos = tile_positions(100, 90, 32, 8)
    patches = extract_patches(img, pos, 32)
    assert patches.shape == (16, 32, 32)
    for p, (r, c) in zip(patches, pos, strict=True):
        assert p[0, 0] == img[r, c] and p[-1, -1] == img[r + 31, c + 31]


def _offsets(length, size, overlap):
    """Offsets along a side by a plain loop: step by the stride while a patch fits, then one on the border."""
    out, p = [], 0
    while p + size <= length:
        out.append(p)
        p += size - overlap
    if out[-1] + size < length:
        out.append(length - size)
    return out


def test_geometry_methods_use_its_own_size_overlap_and_both_sides():
    """``Geometry`` passes its patch size and overlap (not the defaults) to the grid, the height to the rows
    and the width to the columns, in row-major order; ``count`` multiplies the rows of one side by the
    columns of the other, and ``as_dict`` records the three numbers a store's hash depends on."""
    g = Geometry(patch_size=64, overlap=16)
    height, width = 150, 400
    rows, cols = _offsets(height, 64, 16), _offsets(width, 64, 16)
    assert len(rows) != len(cols)
    assert g.positions(width) == cols and g.positions(height) == rows
    assert g.grid(height, width) == [(r, c) for r in rows for c in cols]
    assert tile_positions(height, width, 64, 16) == [(r, c) for r in rows for c in cols]
    assert g.count(height, width) == len(rows) * len(cols) == len(g.grid(height, width))
    assert g.as_dict() == {"patch_size": 64, "overlap": 16, "stride": 48}
    assert Geometry().as_dict() == {"patch_size": 299, "overlap": 50, "stride": 249}


def test_zero_overlap_is_allowed_and_patches_abut():
    g = Geometry(patch_size=32, overlap=0)
    assert g.stride == 32 and g.positions(100) == _offsets(100, 32, 0) == [0, 32, 64, 68]


def test_null_size_and_overlap_equal_to_the_patch_are_geometry_errors():
    """Null sizes and a zero stride are refused with a GeometryError naming the key, never a TypeError from
    comparing None or a ValueError from ``range`` with step 0 (``grid_positions`` called directly)."""
    with pytest.raises(GeometryError, match="not null"):
        Geometry(patch_size=None)
    with pytest.raises(GeometryError, match="not null"):
        Geometry(overlap=None)
    with pytest.raises(GeometryError, match=r"data.overlap=64 must be smaller than data.patch_size=64"):
        grid_positions(400, 64, 64)


# ---- mutation review of data/tiling.py ------------------------------------------------------------------
def test_an_overlap_of_one_less_than_the_patch_steps_one_pixel():
    """Stride 1 is the smallest allowed: every offset from 0 to length - size (only stride 0 is refused)."""
    assert Geometry(patch_size=4, overlap=3).stride == 1
    assert grid_positions(10, 4, 3) == _offsets(10, 4, 3) == list(range(7))


def test_the_default_grid_of_tile_positions_is_the_papers():
    """tile_positions' defaults are the paper's 299 px patches with 50 px overlap, like grid_positions'."""
    offsets = [0, 249, 498, 747, 996, 1245, 1494, 1743, 1749]
    assert tile_positions(2048, 2048) == [(r, c) for r in offsets for c in offsets]
    assert tile_positions(2048, 548) == [(r, c) for r in offsets for c in (0, 249)]


@pytest.mark.parametrize("height,width", [(298, 4000), (4000, 298)])
def test_a_side_smaller_than_the_patch_is_named_by_what_for_rows_and_columns(height, width):
    """The caller's ``what`` (a manifest row) starts the message whichever side is too small, through
    tile_positions and through Geometry.count and .grid."""
    what = "manifest.csv line 3 (image 'images/x.png')"
    said = r"^manifest.csv line 3 \(image 'images/x.png'\): side of 298 px is smaller than the 299 px patch"
    with pytest.raises(GeometryError, match=said):
        tile_positions(height, width, what=what)
    with pytest.raises(GeometryError, match=said):
        Geometry().count(height, width, what=what)
    with pytest.raises(GeometryError, match=said):
        Geometry().grid(height, width, what=what)


def test_extract_patches_keeps_the_images_dtype_and_equals_numpy_slices():
    img = np.random.default_rng(0).integers(0, 256, (70, 50), dtype=np.uint8)
    pos = tile_positions(70, 50, 20, 5)
    patches = extract_patches(img, pos, 20)
    assert patches.dtype == np.uint8
    np.testing.assert_array_equal(patches, np.stack([img[r : r + 20, c : c + 20] for r, c in pos]))
