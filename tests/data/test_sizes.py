"""``data.sizes``: the memory check's advice."""

from __future__ import annotations

import pytest


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
