"""Files and folders written atomically get the mode a plain ``open``/``mkdir`` would give them (``0666``
or ``0777`` less the umask), whoever writes the temporary file: colleagues on a shared lab folder must be
able to read the distilled set and the reference network as they read every other output."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from _atomic_state import dead_pid, file_mode

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.models import ConvNet
from gastrodistill.models.weights import save_weights
from gastrodistill.utils import atomic
from gastrodistill.utils.atomic import atomic_dir, atomic_path, write_text_atomic
from gastrodistill.utils.images import save_png


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
    plain = file_mode(tmp_path / "plain.txt")
    assert plain == 0o666 & ~umask
    assert {name: oct(file_mode(p)) for name, p in written.items()} == {name: oct(plain) for name in written}
    assert file_mode(tmp_path / "folder") == file_mode(tmp_path / "plain_dir") == 0o777 & ~umask
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
    dead_writer = dead_pid()
    host = atomic._host()
    names = {
        "dead": f".audit.{host}-{dead_writer}.x1.tmp",
        "running": f".audit.{host}-{os.getppid()}.x2.tmp",
        "this process": f".audit.{host}-{os.getpid()}.x3.tmp",
        "other host": f".audit.{host}x-{dead_writer}.x4.tmp",
        "other form": ".audit.x5.tmp",
        "other target": f".audit2.{host}-{dead_writer}.x6.tmp",
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
    dead_writer = dead_pid()
    leftover = tmp_path / f".set.zip.gpu-node-3_cluster_local-{dead_writer}.ab_c.zip.tmp"
    leftover.write_text("half")
    with atomic_path(tmp_path / "set.zip", suffix=".zip") as tmp:
        assert tmp.name.startswith(f".set.zip.gpu-node-3_cluster_local-{os.getpid()}.")
        tmp.write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set.zip"]


def test_a_failed_block_leaves_the_earlier_target_and_no_temporary(tmp_path):
    """An exception inside ``atomic_path``/``atomic_dir`` leaves the earlier file or folder as it was (or
    none) and removes the temporary one: a half-written file never lies beside the finished ones."""
    done = write_text_atomic(tmp_path / "a.json", "earlier")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "x.txt").write_text("earlier")
    for target in (done, tmp_path / "new.json"):
        with pytest.raises(RuntimeError, match="stopped"), atomic_path(target, suffix=".json") as tmp:
            tmp.write_text("half")
            raise RuntimeError("stopped")
    with pytest.raises(RuntimeError, match="stopped"), atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "x.txt").write_text("half")
        raise RuntimeError("stopped")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "folder"]
    assert done.read_text() == "earlier" and (tmp_path / "folder" / "x.txt").read_text() == "earlier"


def test_a_replaced_folder_leaves_no_hidden_copy_and_missing_parents_are_made(tmp_path):
    """Replacing a folder keeps no ``.<name>.old`` copy of the earlier one (an earlier audit's pictures of
    real patches), and a folder whose parents do not exist yet is written like any other."""
    target = tmp_path / "runs" / "r1" / "audit"
    for text in ("earlier", "new"):
        with atomic_dir(target) as tmp:
            (tmp / "audit.md").write_text(text)
    assert [p.name for p in target.parent.iterdir()] == ["audit"]
    assert (target / "audit.md").read_text() == "new"


def test_temporary_names_have_the_documented_form(tmp_path):
    """``.<target>.<host>-<pid>.<random>[suffix].tmp``, beside the target: what the cleanup reads back."""
    host, pid = atomic._host(), os.getpid()
    with atomic_path(tmp_path / "set.zip", suffix=".zip") as tmp:
        assert tmp.parent == tmp_path
        assert re.fullmatch(rf"\.set\.zip\.{host}-{pid}\.[^/]+\.zip\.tmp", tmp.name), tmp.name
        tmp.write_text("x")
    with atomic_dir(tmp_path / "audit") as tmp:
        assert re.fullmatch(rf"\.audit\.{host}-{pid}\.[^/]+\.tmp", tmp.name), tmp.name


def test_target_names_with_regex_characters_and_look_alike_names(tmp_path):
    """A target's name is matched literally (``+``, ``[1]`` and ``.`` are no patterns), and only whole names
    of the temporary form count: a leftover of the target ``x.audit``, a name with more after ``.tmp`` and
    one without a pid are kept when ``audit`` is written, and none of them stops the cleanup."""
    host, dead = atomic._host(), dead_pid()
    ours = [f".a+b[1].zip.{host}-{dead}.r1.zip.tmp", f".audit.{host}-{dead}.r2.tmp"]
    kept = [
        f".aab1.zip.{host}-{dead}.r3.zip.tmp",  # what "a+b[1].zip" would match as a pattern
        f".x.audit.{host}-{dead}.r4.tmp",  # another target's leftover
        f".audit.{host}-{dead}.r5.tmp.keep",
        f".audit.{host}-.r6.tmp",
    ]
    for name in ours + kept:
        (tmp_path / name).write_text("half")
    assert atomic.remove_leftovers(tmp_path / "a+b[1].zip") == [ours[0]]
    assert atomic.remove_leftovers(tmp_path / "audit") == [ours[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(kept)


def test_a_leftover_of_another_users_running_process_is_kept(tmp_path, monkeypatch):
    """``kill(pid, 0)`` answering EPERM means the process runs (another user's): its file is not removed."""
    host, dead = atomic._host(), dead_pid()
    leftover = tmp_path / f".audit.{host}-{dead}.r.tmp"
    leftover.write_text("writing")

    def eperm(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "kill", eperm)
    assert atomic.remove_leftovers(tmp_path / "audit") == []
    assert leftover.read_text() == "writing"


def test_a_leftover_symlink_is_removed_without_following_it(tmp_path):
    """A leftover that is a link to a folder goes; the folder it points to and its files stay."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("keep")
    link = tmp_path / f".audit.{atomic._host()}-{dead_pid()}.r.tmp"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert atomic.remove_leftovers(tmp_path / "audit") == [link.name]
    assert not os.path.lexists(link) and (elsewhere / "keep.txt").read_text() == "keep"


def test_no_leftovers_in_a_folder_that_does_not_exist(tmp_path):
    assert atomic.remove_leftovers(tmp_path / "missing" / "audit") == []


def test_an_empty_host_name_still_names_and_cleans_leftovers(tmp_path, monkeypatch):
    """A machine without a host name still gets a non-empty host part, so its leftovers are found again."""
    monkeypatch.setattr(atomic.socket, "gethostname", lambda: "")
    host = atomic._host()
    assert host
    leftover = tmp_path / f".t.json.{host}-{dead_pid()}.r.tmp"
    leftover.write_text("half")
    write_text_atomic(tmp_path / "t.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]


def test_nearest_existing_is_the_path_or_its_closest_existing_parent(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert atomic.nearest_existing(tmp_path / "f.txt") == tmp_path / "f.txt"
    assert atomic.nearest_existing(tmp_path) == tmp_path
    assert atomic.nearest_existing(tmp_path / "a" / "b" / "c.txt") == tmp_path


_SWAP_KILLED = """
import os, signal, sys
from pathlib import Path
from gastrodistill.utils import atomic
target = Path(sys.argv[1])
real, calls = os.replace, []

def killed_after_the_first(src, dst):
    real(src, dst)
    calls.append(dst)
    if len(calls) == 1:  # the earlier folder set aside; killed before the new one is renamed in
        os.kill(os.getpid(), signal.SIGKILL)

atomic.os.replace = killed_after_the_first
with atomic.atomic_dir(target) as tmp:
    (tmp / "audit.md").write_text("new")
"""


def test_a_swap_killed_between_its_renames_gets_the_earlier_folder_back_at_the_next_write(tmp_path):
    """SIGKILL between the swap's two renames left no ``audit/`` at all, the earlier audit (pictures of
    real patches) in a hidden ``.audit.old`` that nothing removed or put back (a breaker's finding). The
    next write of the folder puts it back first, so that a failure of that write too leaves it as it was."""
    target = tmp_path / "audit"
    target.mkdir()
    (target / "audit.md").write_text("earlier")
    proc = subprocess.Popen([sys.executable, "-c", _SWAP_KILLED, str(target)], stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == -9, err
    prefix = f".audit.{atomic._host()}-{proc.pid}."
    left = sorted(p.name for p in tmp_path.iterdir())
    assert not target.exists() and len(left) == 2 and f"{prefix}old" in left  # and the new folder's .tmp
    assert (tmp_path / f"{prefix}old" / "audit.md").read_text() == "earlier"
    with pytest.raises(RuntimeError), atomic_dir(target):
        raise RuntimeError("this write fails too")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit"]
    assert (target / "audit.md").read_text() == "earlier"


def test_only_dead_writers_set_aside_folders_are_put_back_or_removed(tmp_path):
    """A folder set aside by a running swap (another process, this one) or on another host is left alone;
    with the target present, a dead writer's is removed (its swap was killed after the second rename); an
    earlier version's ``.<name>.old`` is treated as a dead writer's."""
    dead_writer = dead_pid()
    host = atomic._host()
    target = tmp_path / "audit"
    names = {
        "dead": f".audit.{host}-{dead_writer}.old",
        "earlier version": ".audit.old",
        "running": f".audit.{host}-{os.getppid()}.old",
        "other host": f".audit.{host}x-{dead_writer}.old",
    }
    for i, name in enumerate(names.values()):
        (tmp_path / name).mkdir()
        (tmp_path / name / "audit.md").write_text(str(i))
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    # target missing: the newest dead one goes back (the earlier version's, newer here), the other dead goes
    assert atomic.recover_interrupted_swap(target) == "audit"
    assert (target / "audit.md").read_text() == "1"
    kept = {names["running"], names["other host"]}
    assert {p.name for p in tmp_path.iterdir()} == {"audit"} | kept
    (tmp_path / names["dead"]).mkdir()
    assert atomic.recover_interrupted_swap(target) is None  # target present: removed, nothing put back
    assert {p.name for p in tmp_path.iterdir()} == {"audit"} | kept
    assert (target / "audit.md").read_text() == "1"


def test_a_study_puts_back_an_audit_and_an_artifact_whose_swap_was_killed(compose_cfg, tmp_path):
    """A swap of ``audit/`` or ``artifacts/<set>`` killed between its two renames leaves the earlier folder
    set aside; a later command of other stages (``stages=[artifact]``) read the run folder without it and
    published "not audited" cards (a tester). Any study command now puts both back first."""
    from gastrodistill.pipeline.pipeline import Pipeline

    run, host, dead = tmp_path / "run", atomic._host(), dead_pid()
    for folder, name in ((run, "audit"), (run / "artifacts", "soft")):
        aside = folder / f".{name}.{host}-{dead}.old"
        aside.mkdir(parents=True)
        (aside / "kept.txt").write_text(name)
    cfg = ["experiment=tiny", "stages=[generate]", f"paths.output_dir={run}", f"paths.root_dir={tmp_path}"]
    Pipeline(compose_cfg(cfg)).run()
    assert (run / "audit" / "kept.txt").read_text() == "audit"
    assert (run / "artifacts" / "soft" / "kept.txt").read_text() == "soft"
    assert not [p for p in (*run.iterdir(), *(run / "artifacts").iterdir()) if p.name.endswith(".old")]
