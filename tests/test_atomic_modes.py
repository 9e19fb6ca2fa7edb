"""Files and folders written atomically get the mode a plain ``open``/``mkdir`` would give them (``0666``
or ``0777`` less the umask), whoever writes the temporary file: colleagues on a shared lab folder must be
able to read the distilled set and the reference network as they read every other output."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.models import ConvNet
from gastrodistill.models.weights import save_weights
from gastrodistill.utils import atomic
from gastrodistill.utils.atomic import atomic_dir, atomic_path, write_text_atomic
from gastrodistill.utils.images import save_png


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077, 0o002])
def test_every_atomic_writer_gives_the_mode_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.txt", "w") as f:
            f.write("x")
        (tmp_path / "plain_dir").mkdir()
        written = {
            "text": write_text_atomic(tmp_path / "a.json", "{}"),
            "weights": save_weights(
                ConvNet(in_channels=1, num_classes=2, width=2, depth=1, image_size=8),
                tmp_path / "eval" / "reference.safetensors",
            ),
            "png": save_png(tmp_path / "grid.png", np.zeros((4, 4, 3), np.uint8)),
        }
        ds = DistilledSet(num_classes=2, ipc=1, steps=1, epochs=1, image_shape=(1, 4, 4), lr_init=0.01)
        out = ds.save(tmp_path / "distill" / "soft")
        written["distilled.safetensors"] = out / "distilled.safetensors"
        written["distilled.json"] = out / "distilled.json"
        with atomic_path(tmp_path / "via_replace.bin") as tmp:  # a writer that renames its own file in
            private = tmp.with_name("private")
            private.write_bytes(b"x")
            os.chmod(private, 0o600)
            os.replace(private, tmp)
        written["replaced"] = tmp_path / "via_replace.bin"
        with atomic_dir(tmp_path / "folder") as tmp:
            (tmp / "inside.txt").write_text("x")
        written["folder/inside.txt"] = tmp_path / "folder" / "inside.txt"
    finally:
        os.umask(old)
    plain = _mode(tmp_path / "plain.txt")
    assert plain == 0o666 & ~umask
    assert {name: oct(_mode(p)) for name, p in written.items()} == {name: oct(plain) for name in written}
    assert _mode(tmp_path / "folder") == _mode(tmp_path / "plain_dir") == 0o777 & ~umask
    assert not list(tmp_path.rglob("*.tmp")), "no temporary file left behind"


def test_reading_the_umask_never_clears_it_for_other_threads(monkeypatch):
    """The umask is read without setting it to 0, even for a moment (a file made by another thread then
    would be world-writable)."""
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
    old = real(0o027)
    try:
        assert atomic._umask() == 0o027
    finally:
        real(old)
    if os.path.exists("/proc/self/status"):
        assert calls == []


def test_a_folder_swap_stopped_between_its_renames_puts_the_earlier_folder_back(tmp_path, monkeypatch):
    """``atomic_dir`` replaces an existing folder in two renames (it aside, the new one in); Ctrl-C between
    them left no folder at all, the earlier one hidden in ``.<name>.old`` (an audit re-run stopped there lost
    the earlier finished audit). The earlier folder now goes back, as it was."""
    target = tmp_path / "audit"
    target.mkdir()
    (target / "audit.json").write_text("earlier")
    real, calls = os.replace, []

    def stopped_after_the_first(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the new folder's rename: Ctrl-C arrives just before it
            raise KeyboardInterrupt
        real(src, dst)

    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "audit.json").write_text("new")
        monkeypatch.setattr(os, "replace", stopped_after_the_first)
    monkeypatch.undo()
    assert len(calls) == 3  # aside, (stopped), back
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]
    assert [p.name for p in target.iterdir()] == ["audit.json"]
    assert (target / "audit.json").read_text() == "earlier"
