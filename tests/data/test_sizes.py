"""``data.sizes``: the size keys read as pixels (or refused naming the key), and the memory check."""

from __future__ import annotations

import numpy as np
import pytest

from gastrodistill.data.errors import DataInputError
from gastrodistill.data.sizes import image_size_hw, pixel_size


def test_the_memory_advice_counts_every_channel(monkeypatch):
    """105 RGB images in 1 MiB: (2**20 / (105 x 3 x 4)) ** 0.5 = 28.8, so at most 28 px per side (49 px for
    one channel, the advice a formula without the channels would give)."""
    import gastrodistill.data.sizes as sizes
    from gastrodistill.data.errors import DataInputError

    monkeypatch.setattr(sizes, "available_memory", lambda: 1 << 20)
    with pytest.raises(DataInputError, match="105 images of 3 channel") as info:
        sizes.check_fits_in_memory(105, 3, (64, 64))
    assert "at most about 28 px per side fits" in str(info.value)
    sizes.check_fits_in_memory(105, 3, (28, 28))  # 105 x 3 x 28 x 28 x 4 bytes = 0.94 MiB: fits


def test_a_containers_memory_limit_caps_what_is_available(tmp_path, monkeypatch):
    """cgroup v2: memory.max - memory.current is all this process may still take, whatever the machine has;
    "max" means no limit; a use above the limit leaves nothing."""
    import gastrodistill.data.sizes as sizes

    monkeypatch.setattr(sizes, "_CGROUP", tmp_path)
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("524288\n")
    machine = sizes.available_memory()
    assert machine is not None and machine > 1 << 20  # this machine has more than a MiB free
    (tmp_path / "memory.max").write_text("1048576\n")
    assert sizes.available_memory() == 1048576 - 524288
    (tmp_path / "memory.current").write_text("2097152\n")
    assert sizes.available_memory() == 0


@pytest.mark.parametrize(
    ("value", "size"),
    [(32, 32), (np.int64(32), 32), (32.0, 32), ("32", 32), (" +32 ", 32), (1, 1)],
)
def test_a_pixel_size_is_read_from_an_int_an_integral_float_or_a_string_of_digits(value, size):
    assert pixel_size(value, "data.patch_size") == size


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (True, " (a boolean, not a number of pixels)"),
        (np.bool_(True), " (a boolean, not a number of pixels)"),
        ("32px", " (text that is not a whole number; write digits only)"),
        ("3 2", " (text that is not a whole number; write digits only)"),
        (2.5, ""),
        (0, ""),
    ],
)
def test_a_pixel_size_that_is_no_positive_whole_number_is_refused_naming_key_and_example(value, hint):
    with pytest.raises(DataInputError) as info:
        pixel_size(value, "data.patch_size")
    assert str(info.value) == (
        f"data.patch_size must be a positive whole number of pixels, got {value!r}{hint}; "
        "e.g. data.patch_size=64"
    )


def test_a_pixel_size_names_its_lower_bound_and_what_null_would_do():
    assert pixel_size(None, "data.storage_size") is None
    assert pixel_size(0, "data.overlap", low=0) == 0
    with pytest.raises(DataInputError) as info:
        pixel_size(-1, "data.overlap", low=0, example=8, null="keep no overlap")
    assert str(info.value) == (
        "data.overlap must be a whole number of pixels >= 0, got -1; e.g. data.overlap=8, or null to keep "
        "no overlap"
    )


@pytest.mark.parametrize(
    ("value", "hw"),
    [(64, (64, 64)), ("32", (32, 32)), ([64, 48], (64, 48)), (("48", 64.0), (48, 64)), ([1, 1], (1, 1))],
)
def test_an_image_size_is_one_side_or_height_and_width(value, hw):
    """``"32"`` is 32 x 32 (not the characters 3 and 2); a pair is (height, width) in that order."""
    assert image_size_hw(value) == hw


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ([64], "[64]"),
        ([64, 48, 32], "[64, 48, 32]"),
        ([64, 0], "[64, 0]"),
        (0, "0"),
        (True, "True (a boolean, not a number of pixels)"),
        ("big", "'big' (text that is not a whole number; write digits only)"),
        ([64, "wide"], "[64, 'wide'] (text that is not a whole number; write digits only)"),
    ],
)
def test_an_image_size_that_is_no_side_or_pair_of_positive_sides_is_refused(value, shown):
    with pytest.raises(DataInputError) as info:
        image_size_hw(value)
    assert str(info.value) == (
        f"data.image_size must be a positive int (px) or [height, width] of positive ints, got {shown}; "
        "e.g. data.image_size=64 or data.image_size=[64,48], or null to keep the files' size"
    )


def test_images_that_fill_the_memory_exactly_fit_and_one_byte_less_is_refused(monkeypatch):
    """2 images x 1 channel x 8 x 8 px x 4 bytes = 512 B: fits in 512 B; in 511 B, sqrt(511 / 8) = 7.99, so
    at most 7 px (truncated, not rounded) per side; 3 channels need three times the bytes."""
    import gastrodistill.data.sizes as sizes

    monkeypatch.setattr(sizes, "available_memory", lambda: 512)
    sizes.check_fits_in_memory(2, 1, (8, 8))
    with pytest.raises(DataInputError) as info:
        sizes.check_fits_in_memory(2, 3, (8, 4))  # 2 x 3 x 8 x 4 x 4 = 768 B
    assert "need about 768 B of memory, more than the 512 B available" in str(info.value)
    monkeypatch.setattr(sizes, "available_memory", lambda: 511)
    with pytest.raises(DataInputError) as info:
        sizes.check_fits_in_memory(2, 1, (8, 8))
    assert str(info.value) == (
        "data.image_size=8x8: 2 images of 1 channel(s) at that size need about 512 B of memory, more than "
        "the 511 B available; choose a smaller data.image_size (at most about 7 px per side fits), or use "
        "fewer images"
    )


def test_the_memory_advice_for_one_px_and_for_none_and_for_the_images_own_size(monkeypatch):
    """8 B for 2 one-channel images: 1 px per side (2 x 4 B) fits; 7 B: not even that. Unset, the key is said
    to be unset and the size the images' own; no answer from the system refuses nothing."""
    import gastrodistill.data.sizes as sizes

    monkeypatch.setattr(sizes, "available_memory", lambda: 8)
    with pytest.raises(DataInputError, match=r"\(at most about 1 px per side fits\)"):
        sizes.check_fits_in_memory(2, 1, (2, 2))
    monkeypatch.setattr(sizes, "available_memory", lambda: 7)
    with pytest.raises(DataInputError) as info:
        sizes.check_fits_in_memory(2, 1, (3, 2), key="data.image_size", key_set=False)
    assert str(info.value) == (
        "3x2 px (the images' own size; data.image_size unset): 2 images of 1 channel(s) at that size need "
        "about 48 B of memory, more than the 7 B available; choose a smaller data.image_size (even 1 px per "
        "side does not fit), or use fewer images"
    )
    monkeypatch.setattr(sizes, "available_memory", lambda: None)
    sizes.check_fits_in_memory(10**9, 3, (10**4, 10**4))


def test_without_psutil_the_available_memory_is_linuxs_mem_available_in_kib(tmp_path, monkeypatch):
    """/proc/meminfo's ``MemAvailable: 2048 kB`` is 2048 x 1024 bytes; a meminfo without that line falls back
    on the physical memory (os.sysconf); no cgroup limit here."""
    import os
    import sys
    from pathlib import Path

    import gastrodistill.data.sizes as sizes

    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    monkeypatch.setattr(sizes, "_CGROUP", tmp_path / "no-cgroup")
    meminfo = tmp_path / "meminfo"
    monkeypatch.setattr(sizes, "Path", lambda p: meminfo if p == "/proc/meminfo" else Path(p))
    meminfo.write_text("MemTotal:       8192 kB\nMemFree:        1024 kB\nMemAvailable:   2048 kB\n")
    assert sizes.available_memory() == 2048 * 1024
    meminfo.write_text("MemTotal:       8192 kB\n")
    assert sizes.available_memory() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
