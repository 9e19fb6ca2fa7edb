"""The distilled sets named on the command line of ``gastrodistill-evaluate`` and ``gastrodistill-audit``:
a wrong shape of the option or a set made for other data is an ``error:`` line naming the option, exit 1,
and no run folder left behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from _cli_runner import assert_nothing_written, run_main
from _eval_sets import small_npz

from gastrodistill.cli import audit, evaluate
from gastrodistill.distillation.distilled_set import DistilledSet

MAINS = {"evaluate": (evaluate.main, "eval.distilled_dirs"), "audit": (audit.main, "audit.sets")}


def _small_npz(path: Path) -> Path:
    small_npz(path, side=20)
    return path


def _run(command: str, option: str, tmp_path: Path, monkeypatch, capsys) -> tuple[int, str]:
    main, _ = MAINS[command]
    argv = [
        f"gastrodistill-{command}",
        "experiment=tiny",
        "data=npz",
        f"data.path={_small_npz(tmp_path / 'small.npz')}",
        f"paths.root_dir={tmp_path / 'work'}",
        "logger=csv",
        option,
    ]
    return run_main(main, argv, monkeypatch, capsys)


def _nothing_left(tmp_path: Path) -> None:
    assert_nothing_written(tmp_path / "work")


@pytest.mark.parametrize("command", sorted(MAINS))
def test_a_set_folder_given_without_a_name_says_how_to_name_it(tmp_path, monkeypatch, capsys, command):
    key = MAINS[command][1]
    code, text = _run(command, f"{key}={tmp_path / 'some_set'}", tmp_path, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    assert f"{key} must map a name to each set's folder or artifact" in text
    assert f"'{key}={{soft: " in text  # the example to copy
    _nothing_left(tmp_path)


@pytest.mark.parametrize("command", sorted(MAINS))
def test_a_missing_set_is_named_by_the_commands_own_option(tmp_path, monkeypatch, capsys, command):
    key = MAINS[command][1]
    code, text = _run(command, f"{key}={{soft: {tmp_path / 'nowhere'}}}", tmp_path, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    assert f"{key}.soft: nothing at {tmp_path / 'nowhere'}" in text
    _nothing_left(tmp_path)


@pytest.mark.parametrize("command", sorted(MAINS))
def test_a_set_distilled_from_other_data_is_an_error_line(tmp_path, monkeypatch, capsys, command):
    """A 12 px set against the tiny preset's 16 px patches: the mismatch names the field, and the
    command exits without a traceback."""
    DistilledSet(2, 1, 1, 1, (1, 12, 12), mean=[0.4], std=[0.2]).save(tmp_path / "set")
    key = MAINS[command][1]
    code, text = _run(command, f"{key}={{soft: {tmp_path / 'set'}}}", tmp_path, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error:") and "image size: set (12, 12), data (16, 16)" in last
    _nothing_left(tmp_path)


@pytest.mark.parametrize("command", sorted(MAINS))
@pytest.mark.parametrize(
    ("name", "needle"),
    [
        *(
            (bad, "cannot name files")
            for bad in ("../escape", "a/b", "a b", ".hidden", "soft.", "nul", "COM1.v2")
        ),
        ("soft.zip", "ends in .zip; the artifact of a set 'soft' would be written at artifacts/soft.zip"),
        ("real", "is the name of one of the anonymity audit's own rows"),
        ("Control_Copy", "is the name of one of the anonymity audit's own rows"),
    ],
)
def test_a_set_name_that_cannot_name_files_is_refused_before_the_set_loads(
    tmp_path, monkeypatch, capsys, command, name, needle
):
    """Set names become file and folder names (records, plots, artifacts): ``../escape`` would write
    beside the run folder; ``soft.zip`` made ``artifacts/soft.zip`` the folder of one set and the archive of
    another; ``nul`` and a trailing dot cannot name files on Windows. A set named ``control_copy`` was
    audited as the copy control (a noise set reported as 6 of 6 flagged), and ``real`` replaced the real
    network's row, then ended in a traceback. The set itself (12 px against 16 px data) would be refused
    for its size, so the name's message shows that the name is checked first."""
    DistilledSet(2, 1, 1, 1, (1, 12, 12), mean=[0.4], std=[0.2]).save(tmp_path / "set")
    key = MAINS[command][1]
    code, text = _run(command, f"{key}={{{name}: {tmp_path / 'set'}}}", tmp_path, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    last = text.strip().splitlines()[-1]
    assert last.startswith("error:") and f"{key}: the set name {name!r}" in last and needle in last
    _nothing_left(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "small.npz", "work"]


@pytest.mark.parametrize("command", sorted(MAINS))
@pytest.mark.parametrize(
    ("option", "needle"),
    [
        ("{true: SET}", "the set name true is read as a boolean"),
        ("{soft: null}", ".soft has no path"),
        ("{soft: ''}", ".soft has no path"),
    ],
)
def test_a_name_hydra_reads_as_a_boolean_and_a_missing_path_are_named(
    tmp_path, monkeypatch, capsys, command, option, needle
):
    """``{true: PATH}`` was evaluated as a set called ``True``; ``{soft: null}`` said "nothing at None"."""
    DistilledSet(2, 1, 1, 1, (1, 12, 12), mean=[0.4], std=[0.2]).save(tmp_path / "set")
    key = MAINS[command][1]
    value = option.replace("SET", str(tmp_path / "set"))
    code, text = _run(command, f"{key}={value}", tmp_path, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text
    assert needle in text.strip().splitlines()[-1]
    _nothing_left(tmp_path)
