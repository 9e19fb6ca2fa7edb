"""The receive command's own code (gastrodistill.cli.train_from_artifact): its options reach the training,
what it prints, and the folders it refuses, with the training replaced by a stand-in (fast)."""

from __future__ import annotations

import pytest
from _anon_data import site_npz


def _stub_training(monkeypatch):
    """Replace the training and the report of the receive command by stand-ins; returns the calls made."""
    import gastrodistill.sharing.train_from_artifact as receive

    calls = []

    def trained(artifact, cfg, dm, output, n_networks=None, schedule=None):
        calls.append({"artifact": artifact, "output": output, "n_networks": n_networks, "schedule": schedule})
        return {"stub": True}

    monkeypatch.setattr(receive, "train_from_artifact", trained)
    monkeypatch.setattr(receive, "render", lambda result: f"the report of {result}")
    return calls


def test_the_command_passes_networks_and_schedule_on_and_prints_the_report_and_its_folder(
    tmp_path, artifact_zip, capsys, monkeypatch, caplog
):
    """Without --networks and --schedule the config's audit.receive values decide (None is passed on);
    with them, theirs; the command prints the report, then its folder; data.zca set is warned of as
    unused. Kills mutants giving the options defaults, not passing them on, not printing, or inverting
    the zca warning."""
    import logging

    from gastrodistill.cli.train_from_artifact import main

    calls = _stub_training(monkeypatch)
    site_npz(tmp_path / "patches.npz")
    out = tmp_path / "site"
    argv = ["--artifact", str(artifact_zip), "--output", str(out), f"paths.root_dir={tmp_path}"]
    data = ["data=npz", f"data.path={tmp_path / 'patches.npz'}"]
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="gastrodistill.cli.train_from_artifact"):
        main([*argv, *data])
    assert calls == [{"artifact": str(artifact_zip), "output": out, "n_networks": None, "schedule": None}]
    assert capsys.readouterr().out == f"the report of {{'stub': True}}\nwritten to {out}\n"
    assert "data.zca is not used here" not in caplog.text
    zca = "data.zca={_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 3}"
    with caplog.at_level(logging.WARNING, logger="gastrodistill.cli.train_from_artifact"):
        main([*argv[:2], "--networks", "3", "--schedule", "standard", *argv[2:], *data, zca])
    assert calls[1]["n_networks"] == 3 and calls[1]["schedule"] == "standard"
    assert "data.zca is not used here" in caplog.text


def test_an_output_of_blanks_is_refused_as_empty_and_nothing_is_made(tmp_path, capsys, monkeypatch):
    """``--output "  "`` (a blank shell variable, quoted) is as empty as "" (a mutant checked ""
    only and made a folder named by two blanks in the current folder)."""
    from gastrodistill.cli.train_from_artifact import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--artifact", "soft.zip", "--output", "  ", f"paths.root_dir={tmp_path / 'work'}"])
    assert info.value.code == 1
    assert capsys.readouterr().err.startswith("error: --output is empty; give a folder of its own")
    assert list(tmp_path.iterdir()) == []


def test_the_output_may_not_be_the_sites_data_folder_on_the_command_line(
    tmp_path, artifact_zip, capsys, monkeypatch
):
    """The command passes data.path (or data.root) to the owner check: --output at the folder holding
    the site's npz is refused before anything is written (a mutant checked the output alone)."""
    from gastrodistill.cli.train_from_artifact import main

    _stub_training(monkeypatch)
    (tmp_path / "data").mkdir()
    site_npz(tmp_path / "data" / "patches.npz")
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    data = ["data=npz", f"data.path={tmp_path / 'data' / 'patches.npz'}"]
    with pytest.raises(SystemExit) as info:
        main(
            [
                "--artifact",
                str(artifact_zip),
                "--output",
                str(tmp_path / "data"),
                f"paths.root_dir={tmp_path}",
                *data,
            ]
        )
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert f"--output {tmp_path / 'data'} is the site's data folder ({tmp_path / 'data'})" in err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before


@pytest.mark.parametrize("record", ["[1]", "null", '"train-from-artifact"'])
def test_a_run_record_that_is_no_json_object_is_another_run(tmp_path, record):
    """A run_info.json holding a list, null or a string has no stage: it is another run's record, said
    in words (a mutant let the AttributeError of ``[1].get`` through as a traceback)."""
    from gastrodistill.cli.train_from_artifact import output_owner_problem

    (tmp_path / "run_info.json").write_text(record)
    problem = output_owner_problem(tmp_path)
    assert problem is not None and problem.startswith("holds the run record of another run (run_info.json")


@pytest.mark.parametrize("name", ["config.yaml", "run_info.json", "receive.json", "receive.md"])
def test_any_one_of_the_reports_files_without_a_receive_record_is_refused(tmp_path, name):
    """Each of the report's four files (config.yaml, run_info.json, receive.json, receive.md) that no
    receive report wrote is named (a mutant looked for the first name only)."""
    from gastrodistill.cli.train_from_artifact import output_owner_problem

    (tmp_path / name).write_text("{}" if name.endswith(".json") else "mine\n")
    problem = output_owner_problem(tmp_path)
    if name == "run_info.json":  # a record without a stage: another run's
        assert problem.startswith("holds the run record of another run")
    else:
        assert problem.startswith(f"holds {name} that no receive report wrote")


def test_the_site_data_root_is_taken_with_its_home_folder_and_a_missing_one_refused(tmp_path, monkeypatch):
    """``data.root=~/xrays`` is the folder under $HOME; an existing folder passes; a missing one is
    refused naming it (mutants refused every root, or read ``~`` as a folder name)."""
    from omegaconf import OmegaConf

    from gastrodistill.cli.errors import CommandError
    from gastrodistill.cli.train_from_artifact import check_site_data_root

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "xrays").mkdir()
    check_site_data_root(OmegaConf.create({"data": {"root": str(tmp_path / "xrays")}}))
    check_site_data_root(OmegaConf.create({"data": {"root": "~/xrays"}}))
    check_site_data_root(OmegaConf.create({"data": {"path": "/no/such.npz"}}))  # no root: npz data
    with pytest.raises(CommandError, match=r"^data.root ~/missing is not a folder; point data.root"):
        check_site_data_root(OmegaConf.create({"data": {"root": "~/missing"}}))


def test_a_data_file_written_two_ways_is_the_same_data_and_a_third_data_gets_the_third_folder(
    tmp_path, monkeypatch
):
    """data.path ``/site//a.npz`` is ``/site/a.npz`` (a mutant normalised data.root only); with reports on
    two other data in ``soft-abc`` and ``soft-abc-2``, a third data goes to ``soft-abc-3`` (mutants
    counted by two, or looked one folder ahead only and replaced ``-2``)."""
    import gastrodistill.cli.train_from_artifact as cli

    monkeypatch.setattr(cli, "default_folder_name", lambda artifact: "soft-abc")
    for folder, path in (("soft-abc", "/site/a.npz"), ("soft-abc-2", "/site/b.npz")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "config.yaml").write_text(f"data:\n  path: {path}\n")
    assert cli.default_folder(tmp_path, "soft", {"path": "/site//a.npz"}) == tmp_path / "soft-abc"
    assert cli.default_folder(tmp_path, "soft", {"path": "/site/./b.npz"}) == tmp_path / "soft-abc-2"
    assert cli.default_folder(tmp_path, "soft", {"path": "/site/c.npz"}) == tmp_path / "soft-abc-3"


def test_an_override_whose_interpolation_fails_is_named_as_not_composing(tmp_path, capsys, monkeypatch):
    """``experiment_name=${nope}`` composes in Hydra but fails in OmegaConf when the default folder reads
    it: the overrides are named as not composing (a mutant caught Hydra's errors only)."""
    from gastrodistill.cli.train_from_artifact import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["--artifact", "soft.zip", f"paths.root_dir={tmp_path}", "experiment_name=${nope}"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.startswith(
        f"error: the overrides ['paths.root_dir={tmp_path}', 'experiment_name=${{nope}}'] do not compose: "
        "Interpolation key 'nope' not found"
    )
    assert list(tmp_path.iterdir()) == []
