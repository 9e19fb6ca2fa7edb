"""Atomic writes under failures injected midway (``utils.atomic``): texts written together, a folder a
writer renamed in, a swap interrupted after its second rename and a link named like a set-aside folder
(mutation review of utils/atomic.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from _atomic_state import dead_pid, file_mode

from gastrodistill.utils import atomic
from gastrodistill.utils.atomic import atomic_dir, write_texts_atomic


def test_texts_written_together_leave_every_earlier_file_when_one_write_fails(tmp_path, monkeypatch):
    """``write_texts_atomic`` renames no file before all are written: a full disk at the second file
    leaves the first file's earlier text too, and no temporary file (mutant: each file renamed as soon as
    it is written)."""
    write_texts_atomic(tmp_path, {"config.yaml": "earlier config", "receive.md": "earlier report"})
    real = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.startswith(".receive.md."):
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_texts_atomic(tmp_path, {"config.yaml": "new config", "receive.md": "new report"})
    monkeypatch.undo()
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "config.yaml": "earlier config",
        "receive.md": "earlier report",
    }
    assert write_texts_atomic(tmp_path, {"config.yaml": "new config", "receive.md": "new report"}) == tmp_path
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {
        "config.yaml": "new config",
        "receive.md": "new report",
    }


def test_a_folder_a_writer_renamed_onto_the_temporary_one_gets_the_usual_mode(tmp_path):
    """A writer may replace ``atomic_dir``'s (empty) temporary folder with one of its own making, private
    to its owner (``mkdtemp``); the folder still gets the mode of a plain ``mkdir`` (mutant: the mode set
    only before the block)."""
    (tmp_path / "plain").mkdir()
    with atomic_dir(tmp_path / "audit") as tmp:
        own = Path(tempfile.mkdtemp(dir=tmp_path))
        assert file_mode(own) == 0o700
        (own / "audit.md").write_text("x")
        os.replace(own, tmp)
    assert file_mode(tmp_path / "audit") == file_mode(tmp_path / "plain")
    assert (tmp_path / "audit" / "audit.md").read_text() == "x"


def test_a_swap_interrupted_just_after_its_second_rename_keeps_the_new_folder(tmp_path, monkeypatch):
    """Ctrl-C arriving as the new folder's rename returns: the new folder is in place and stays (mutant:
    the earlier one renamed back onto it, an OSError instead of the interrupt); the earlier folder, set
    aside under this process's name, is removed by the next swap before it sets the target aside under
    that same name (mutant: that rename failed onto the non-empty folder)."""
    target = tmp_path / "audit"
    target.mkdir()
    (target / "audit.md").write_text("earlier")
    real, calls = os.replace, []

    def interrupted_after_the_second(src, dst):
        real(src, dst)
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), atomic_dir(target) as tmp:
        (tmp / "audit.md").write_text("new")
        monkeypatch.setattr(os, "replace", interrupted_after_the_second)
    monkeypatch.undo()
    aside = f".audit.{atomic._host()}-{os.getpid()}.old"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([aside, "audit"])
    assert (target / "audit.md").read_text() == "new"
    with atomic_dir(target) as tmp:
        (tmp / "audit.md").write_text("newer")
    assert [p.name for p in tmp_path.iterdir()] == ["audit"]
    assert (target / "audit.md").read_text() == "newer"


def test_a_link_named_like_a_set_aside_folder_is_never_put_back_as_the_target(tmp_path):
    """Only real folders are put back or removed: a symbolic link to a folder elsewhere, named like a dead
    writer's set-aside folder, does not become the target (mutant: links accepted), and what it points to
    is kept."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = tmp_path / f".audit.{atomic._host()}-{dead_pid()}.old"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert atomic.recover_interrupted_swap(tmp_path / "audit") is None
    assert not (tmp_path / "audit").exists() and link.is_symlink()
    assert (elsewhere / "keep.txt").read_text() == "keep"
