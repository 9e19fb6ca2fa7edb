"""An output folder that cannot be written (a path below a file, one the system refuses) is refused in one
line naming the option, before any work and leaving nothing behind (``cli.output_folder``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gastrodistill.cli.output_folder import GIVE_FOLDER, output_folder_problem

UNCREATABLE = Path("/proc/gastrodistill-no-such-folder")  # /proc takes no new folders, even as root


def test_the_problem_is_said_in_words_and_nothing_is_left(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("kept")
    assert output_folder_problem(afile) == "is a file; give a folder (it is created if missing)"
    for below in (afile / "sub", afile / "sub" / "deeper"):
        assert output_folder_problem(below) == (
            f"is inside {afile}, which is a file; give a folder you can write to (it is created if missing)"
        )
    if Path("/proc/self").is_dir():
        assert output_folder_problem(UNCREATABLE / "x").startswith("cannot be created in /proc (")
    assert output_folder_problem(tmp_path / "new" / "a" / "b") is None
    assert output_folder_problem(tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # the probe made and removed new/a/b
    assert afile.read_text() == "kept"


def test_another_rank_checking_the_same_folder_at_once_is_no_problem(tmp_path, monkeypatch):
    """Two torchrun ranks check hydra.run.dir together: one created the folder between the other's look
    and its mkdir ("cannot be created ... (File exists)" failed a two-rank run), or removed the folder it
    had made for its check while the other probed it. Both are no problem of the folder."""
    import tempfile

    target = tmp_path / "run"
    real_mkdir = Path.mkdir

    def other_rank_first(self, *args, **kwargs):
        if self == target:
            os.mkdir(self)  # the other rank's mkdir, just before this one's
            raise FileExistsError(17, "File exists", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", other_rank_first)
    assert output_folder_problem(target) is None
    assert target.is_dir()  # the other rank's folder: not this check's to remove
    monkeypatch.setattr(Path, "mkdir", real_mkdir)

    real_mkstemp, calls = tempfile.mkstemp, []

    def removed_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the other rank removed the folder it had made for its own check
            raise FileNotFoundError(2, "No such file or directory")
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", removed_once)
    assert output_folder_problem(tmp_path / "other" / "run") is None and len(calls) == 2
    assert not (tmp_path / "other").exists()  # what this check made, it removed


def test_a_folder_the_kernel_refuses_to_write_is_refused_with_its_reason(tmp_path, monkeypatch):
    """EACCES on creating a folder in ``locked`` and on a file in it, raised where the kernel would (CI runs
    as root, whom file modes do not stop: the test below skips there)."""
    import tempfile

    locked = tmp_path / "locked"
    locked.mkdir()
    real_mkdir, real_mkstemp = Path.mkdir, tempfile.mkstemp

    def mkdir(self, *args, **kwargs):
        if self.parent == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == locked:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert (
        output_folder_problem(locked / "out")
        == f"cannot be created in {locked} (Permission denied); {GIVE_FOLDER}"
    )
    assert output_folder_problem(locked) == f"cannot be written (Permission denied); {GIVE_FOLDER}"
    # elsewhere the same patched calls succeed, and the folders the check made are removed again
    assert output_folder_problem(tmp_path / "new" / "locked") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["locked"] and not any(locked.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (simulated above)")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        assert output_folder_problem(locked / "out").startswith(f"cannot be created in {locked} (")
        assert output_folder_problem(locked).startswith("cannot be written (")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("where", ["below a file", "uncreatable"])
def test_train_from_artifact_refuses_an_output_folder_it_cannot_write(tmp_path, capsys, where):
    """``--output afile/sub`` was a NotADirectoryError traceback, ``--output /proc/x`` a FileNotFoundError."""
    from gastrodistill.cli.train_from_artifact import main

    if where == "uncreatable" and not Path("/proc/self").is_dir():
        pytest.skip("no /proc")
    (tmp_path / "afile").write_text("kept")
    output = tmp_path / "afile" / "sub" if where == "below a file" else UNCREATABLE
    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(tmp_path / "soft.zip"), "--output", str(output)])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.startswith(f"error: --output {output} ") and err.count("\n") == 1, err
    assert "give a folder you can write to" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_check_experiment_refuses_a_run_folder_it_cannot_write_before_the_run(tmp_path, capsys, monkeypatch):
    import gastrodistill.cli.check_experiment as ce

    p = tmp_path / "r.yaml"
    p.write_text(
        "name: t\noverrides: [experiment=cpu]\nresults: eval/results.csv\nexpect:\n"
        "  - what: soft\n    value: {method: soft, schedule: replay}\n    range: [0.0, 1.0]\n"
    )
    (tmp_path / "afile").write_text("kept")
    reran: list = []
    monkeypatch.setattr(ce, "rerun", lambda recipe, run_dir: reran.append(run_dir))
    assert ce.main([str(p), "--run", "--run-dir", str(tmp_path / "afile" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: --run-dir {tmp_path / 'afile' / 'sub'} is inside {tmp_path / 'afile'}, which is a file; "
        "give a folder you can write to (it is created if missing)\n"
    )
    assert not reran


@pytest.mark.parametrize("key", ["paths.output_dir", "hydra.run.dir", "hydra.sweep.dir"])
def test_hydra_commands_refuse_an_output_folder_below_a_file_before_hydra(tmp_path, capsys, monkeypatch, key):
    """``gastrodistill-distill paths.output_dir=afile/sub`` loaded the data, then a NotADirectoryError
    traceback; ``hydra.run.dir=afile/sub`` was Hydra's own traceback."""
    import sys

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.cli.override_keys import check_override_keys

    (tmp_path / "afile").write_text("kept")
    ran: list = []
    command = check_override_keys(CONF_DIR)(lambda: ran.append(1))
    value = tmp_path / "afile" / "sub"
    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", "experiment=tiny", f"{key}={value}"])
    with pytest.raises(SystemExit) as info:
        command()
    assert info.value.code == 1 and not ran
    assert capsys.readouterr().err == (
        f"error: {key}={value}: {value} is inside {tmp_path / 'afile'}, which is a file; give a folder you "
        "can write to (it is created if missing)\n"
    )
    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", f"{key}={tmp_path / 'new'}"])
    command()
    assert ran == [1] and not (tmp_path / "new").exists()


@pytest.mark.parametrize("value", ["", "''"])
@pytest.mark.parametrize("key", ["paths.output_dir", "hydra.run.dir", "++hydra.run.dir"])
def test_an_empty_output_folder_is_refused_before_hydra(capsys, monkeypatch, key, value):
    """``hydra.run.dir=`` (an unset shell variable) made Hydra write the run into the current folder: a
    breaker's run left soft/, logs/ and .hydra/ in the repository."""
    import sys

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.cli.override_keys import check_override_keys

    ran: list = []
    command = check_override_keys(CONF_DIR)(lambda: ran.append(1))
    monkeypatch.setattr(sys, "argv", ["gastrodistill-distill", "experiment=tiny", f"{key}={value}"])
    with pytest.raises(SystemExit) as info:
        command()
    assert info.value.code == 1 and not ran
    assert capsys.readouterr().err.startswith(
        f"error: {key.lstrip('+')}= is empty (an unset shell variable?)"
    )


def test_a_deletion_of_an_output_key_is_not_checked_as_a_folder(tmp_path):
    """``~key=value`` deletes the key when it holds ``value`` (Hydra's grammar): it writes no folder, so
    neither an empty value nor a folder that cannot be written is refused for it (both were)."""
    from gastrodistill.cli.output_folder import command_line_output_problem

    blocked = tmp_path / "a file"
    blocked.write_text("")
    assert command_line_output_problem(["~hydra.run.dir="]) is None
    assert command_line_output_problem([f"~paths.output_dir={blocked}"]) is None
    assert command_line_output_problem([f"paths.output_dir={blocked}"]) is not None


def test_a_folder_made_for_the_check_that_cannot_be_written_is_refused_and_removed(tmp_path, monkeypatch):
    """mkdir succeeds but no file may be made in the new folder (a mount refusing writes): kills the mutants
    probing the nearest existing folder instead, and calling it "cannot be created" though it was."""
    import tempfile

    target = tmp_path / "new" / "out"
    real_mkstemp = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == target:
            raise PermissionError(13, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    assert output_folder_problem(target) == f"cannot be written (Permission denied); {GIVE_FOLDER}"
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_keeps_vanishing_is_refused_after_five_tries(tmp_path, monkeypatch):
    """Kills the mutants that, never raising on the last try, took a folder no file could be made in for
    writable."""
    import tempfile

    calls: list = []

    def vanished(*args, **kwargs):
        calls.append(1)
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(tempfile, "mkstemp", vanished)
    assert (
        output_folder_problem(tmp_path / "run")
        == f"cannot be written (No such file or directory); {GIVE_FOLDER}"
    )
    assert len(calls) == 5 and list(tmp_path.iterdir()) == []


def test_a_file_put_where_the_check_makes_a_folder_is_refused_as_such(tmp_path, monkeypatch):
    """Another process made a file at the path between the look and the mkdir: kills the mutant taking any
    FileExistsError for another rank's folder (it then probed a file: "Not a directory")."""
    target = tmp_path / "run"
    real_mkdir = Path.mkdir

    def file_first(self, *args, **kwargs):
        if self == target:
            self.write_text("")
            raise FileExistsError(17, "File exists", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", file_first)
    assert output_folder_problem(target) == f"cannot be created in {tmp_path} (File exists); {GIVE_FOLDER}"


def test_the_check_keeps_no_file_open_and_a_folder_another_rank_wrote_into_is_no_problem(
    tmp_path, monkeypatch
):
    """Kills the mutants leaving the probe's descriptor open and letting the removal of a folder another
    rank wrote into meanwhile (not empty: OSError) escape the check."""
    import tempfile

    fds = Path("/proc/self/fd")
    if fds.is_dir():
        open_before = len(list(fds.iterdir()))
        for i in range(3):
            assert output_folder_problem(tmp_path / f"r{i}") is None
        assert len(list(fds.iterdir())) == open_before
    real_mkstemp = tempfile.mkstemp

    def other_rank_writes(*args, dir=None, **kwargs):
        (Path(dir) / "other-rank.txt").write_text("")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", other_rank_writes)
    assert output_folder_problem(tmp_path / "shared") is None
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["other-rank.txt"]


def test_which_command_line_values_are_checked_as_folders(tmp_path):
    """Kills the mutants checking a value with an interpolation or a sweep as a literal folder (here below a
    file, but Hydra resolves or splits it first), not unquoting a quoted folder, splitting at the last ``=``,
    and dropping the folder from the message."""
    from gastrodistill.cli.output_folder import command_line_output_problem

    afile = tmp_path / "afile"
    afile.write_text("")
    below = f"is inside {afile}, which is a file; {GIVE_FOLDER}"
    assert command_line_output_problem([f"hydra.run.dir={afile}/${{now:%H}}"]) is None
    assert command_line_output_problem([f"paths.output_dir={afile}/a,{afile}/b"]) is None
    assert command_line_output_problem([f"hydra.run.dir='{afile}/x'"]) == (
        f"error: hydra.run.dir='{afile}/x': '{afile}/x' {below}"
    )
    assert command_line_output_problem([f"hydra.sweep.dir={afile}/a=b"]) == (
        f"error: hydra.sweep.dir={afile}/a=b: {afile}/a=b {below}"
    )
    assert command_line_output_problem(["seed=1", f"paths.output_dir={tmp_path / 'new'}"]) is None
    assert not (tmp_path / "new").exists()


def test_an_empty_output_folder_is_refused_with_the_whole_advice():
    """The end of the line the test above checks the start of (a mutant shortened the advice)."""
    from gastrodistill.cli.output_folder import command_line_output_problem

    assert command_line_output_problem(["hydra.run.dir=' '"]) == (
        "error: hydra.run.dir= is empty (an unset shell variable?); give a folder, e.g. "
        "hydra.run.dir=runs/first, or hydra.run.dir=. to write into the current folder on purpose"
    )
