"""Files and folders written atomically get the mode a plain ``open``/``mkdir`` would give them (``0666``
or ``0777`` less the umask), whoever writes the temporary file: colleagues on a shared lab folder must be
able to read the distilled set and the reference network as they read every other output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

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


_WRITER = """
import sys, time
from pathlib import Path
from gastrodistill.utils.atomic import atomic_dir, atomic_path
target = Path(sys.argv[1])
with atomic_dir(target) as tmp, atomic_path(target.with_name("audit.json"), suffix=".json") as f:
    (tmp / "closest_pairs.png").write_bytes(b"real patches")
    f.write_text("half")
    print("ready", flush=True)
    time.sleep(120)
"""


def _killed_writer(target):
    """A process that holds an ``atomic_dir`` of ``target`` and an ``atomic_path`` beside it, killed by
    SIGKILL (no ``finally`` runs): what it leaves."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    return proc.pid


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_writer(tmp_path):
    """SIGKILL (or the out-of-memory killer) leaves an audit's hidden temporary folder, pictures of real
    patches in it, and a half-written file; the next write of the same target removes both."""
    target = tmp_path / "audit"
    pid = _killed_writer(target)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 2 and not target.exists()
    assert all(
        name.startswith((f".audit.{atomic._host()}-{pid}.", f".audit.json.{atomic._host()}-{pid}."))
        for name in left
    )
    with atomic_dir(target) as tmp:
        (tmp / "audit.md").write_text("done")
    # the folder's writer removes the folder's leftovers; the file's stays until the file is written again
    (half_file,) = (name for name in left if name.startswith(".audit.json."))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["audit", half_file])
    write_text_atomic(tmp_path / "audit.json", "{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit", "audit.json"]
    assert [p.name for p in target.iterdir()] == ["audit.md"]


def test_leftovers_of_running_writers_other_hosts_and_other_names_are_kept(tmp_path):
    """Only a writer of the same target, on this host, whose process no longer runs, is cleaned up after: a
    running one (another process, or this one) is still writing, another host's may be (a shared file
    system), and a name of another form (an earlier version's, another program's) is not ours to judge."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = atomic._host()
    names = {
        "dead": f".audit.{host}-{dead.pid}.x1.tmp",
        "running": f".audit.{host}-{os.getppid()}.x2.tmp",
        "this process": f".audit.{host}-{os.getpid()}.x3.tmp",
        "other host": f".audit.{host}x-{dead.pid}.x4.tmp",
        "other form": ".audit.x5.tmp",
        "other target": f".audit2.{host}-{dead.pid}.x6.tmp",
    }
    for name in names.values():
        (tmp_path / name).mkdir()
    assert atomic.remove_leftovers(tmp_path / "audit") == [names["dead"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(v for k, v in names.items() if k != "dead")


def test_a_host_name_with_dots_and_dashes_is_read_back(monkeypatch, tmp_path):
    """Host names hold dots (``node3.cluster.local``) and dashes; the temporary name keeps the dashes and
    turns the dots into ``_``, and the cleanup still finds the pid after the last dash."""
    monkeypatch.setattr(atomic.socket, "gethostname", lambda: "gpu-node-3.cluster.local")
    assert atomic._host() == "gpu-node-3_cluster_local"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    leftover = tmp_path / f".set.zip.gpu-node-3_cluster_local-{dead.pid}.ab_c.zip.tmp"
    leftover.write_text("half")
    with atomic_path(tmp_path / "set.zip", suffix=".zip") as tmp:
        assert tmp.name.startswith(f".set.zip.gpu-node-3_cluster_local-{os.getpid()}.")
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.zip"]
