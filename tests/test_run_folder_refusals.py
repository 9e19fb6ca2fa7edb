"""A command refused in a run folder that existed before it (``hydra.run.dir``) leaves the folder as it was.

Hydra writes ``.hydra/`` and starts its job log before any of our code runs. A breaker found that a refused
command in a folder of their own left ``.hydra/`` and the log there, and removed an empty folder they had
made; a refused re-run in an earlier run's folder rewrote its ``.hydra/`` with the refused command's
overrides (left open since the twelfth session)."""

from __future__ import annotations

from pathlib import Path

from _cli_runner import run_main

from gastrodistill.cli.reproduce import main

REFUSED = ["gastrodistill-reproduce", "experiment=tiny", "stages=[audit]", "logger=csv"]  # no sets there


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in folder.rglob("*")}


def _refuse(folder: Path, tmp_path: Path, monkeypatch, capsys) -> str:
    code, text = run_main(
        main, [*REFUSED, f"paths.root_dir={tmp_path}", f"hydra.run.dir={folder}"], monkeypatch, capsys
    )
    assert code == 1 and "needs distilled sets" in text and "Traceback" not in text
    return text


def test_an_empty_folder_of_the_users_stays_and_stays_empty(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    folder.mkdir()
    _refuse(folder, tmp_path, monkeypatch, capsys)
    assert folder.is_dir() and _tree(folder) == {}


def test_a_folder_with_the_users_files_keeps_them_and_gets_nothing(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mine"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "sub" / "a.csv").write_text("1,2\n")
    before = _tree(folder)
    _refuse(folder, tmp_path, monkeypatch, capsys)
    assert _tree(folder) == before


def test_an_earlier_runs_hydra_record_is_put_back(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- experiment=tiny\n- seed=3\n")
    (folder / ".hydra" / "config.yaml").write_text("seed: 3\n")
    (folder / "config.yaml").write_text("seed: 3\n")
    (folder / "run_info.json").write_text("{}")
    (folder / "reproduce.log").write_text("the earlier run's log\n")
    before = _tree(folder)
    _refuse(folder, tmp_path, monkeypatch, capsys)
    after = _tree(folder)
    assert {k: v for k, v in after.items() if k != "reproduce.log"} == {
        k: v for k, v in before.items() if k != "reproduce.log"
    }
    assert after["reproduce.log"] == before["reproduce.log"]


def test_lines_a_refused_command_appended_to_an_earlier_job_log_are_cut(tmp_path):
    """A command refused after it logged (an INFO line of the data stage, say) left that line in the earlier
    run's job log (a newcomer trial); the log is cut back to its earlier length and modification time."""
    import os

    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    folder.mkdir()
    log = folder / "reproduce.log"
    log.write_text("the earlier run's log\n")
    os.utime(log, ns=(10**18, 10**18))
    snapshot(folder)
    with open(log, "a") as f:
        f.write("[INFO] the refused command's line\n")
    assert restore_if_refused(folder, {"reproduce.log"})
    assert log.read_text() == "the earlier run's log\n" and log.stat().st_mtime_ns == 10**18


def test_a_new_folder_of_a_refused_command_is_still_removed(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "outputs" / "new"
    _refuse(folder, tmp_path, monkeypatch, capsys)
    assert not folder.exists()


def test_a_command_that_produced_something_keeps_its_log_and_record(tmp_path):
    """A long run stopped or failing midway in an existing folder (``mkdir -p $RUN`` for a scheduler's
    log) keeps its job log, ``.hydra/`` and outputs: only a command that produced nothing is undone (a
    reviewer found the first version deleting the log and ``.hydra/`` of such a run)."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    folder.mkdir()
    snapshot(folder)
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("- distill.outer_steps=3000\n")
    (folder / "distill.log").write_text("hours of work\n")
    (folder / "soft" / "checkpoints").mkdir(parents=True)
    (folder / "soft" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    before = _tree(folder)
    assert restore_if_refused(folder, {"distill.log"}) is True
    assert _tree(folder) == before


def test_a_refusal_after_the_run_record_puts_the_record_back_and_drops_its_history_copy(tmp_path):
    """The experiment-name and resume-data checks run after a command wrote its run record (and
    ``reproduce`` copied the earlier one to ``history/<n>``): with nothing else produced, the earlier
    record comes back and the copy goes; a ``..`` in the folder's path names the same folder."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "results.csv").write_text("a,b\n")
    (folder / "config.yaml").write_text("seed: 0\n")
    (folder / "run_info.json").write_text('{"stage": "reproduce"}')
    before = _tree(folder)
    snapshot(tmp_path / "x" / ".." / "run")
    (folder / "history" / "1").mkdir(parents=True)
    (folder / "history" / "1" / "config.yaml").write_text("seed: 0\n")
    (folder / "config.yaml").write_text("experiment_name: site_P123\n")
    (folder / "run_info.json").write_text('{"stage": "reproduce", "new": 1}')
    (folder / "reproduce.log").write_text("refused\n")
    assert restore_if_refused(folder, {"reproduce.log"}) is True
    assert _tree(folder) == before


def test_a_logger_folder_holding_only_hyperparameters_is_undone_with_the_rest(tmp_path):
    """An audit stopped by Ctrl-C in an earlier run's folder (hydra.run.dir) as its logger started left
    ``logs/csv/audit-3/hparams.yaml`` and, because of it, ``.hydra/`` describing the stopped command beside
    the earlier run's config.yaml (a breaker's finding); such a folder counts as bookkeeping now. An
    earlier run's logger folders, and a new one holding metrics, are kept."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    (folder / "logs" / "csv" / "audit-2").mkdir(parents=True)
    (folder / "logs" / "csv" / "audit-2" / "hparams.yaml").write_text("n_networks: 1\n")
    (folder / "logs" / "csv" / "audit-2" / "metrics.csv").write_text("step,auc\n0,0.5\n")
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "overrides.yaml").write_text("- audit.membership.n_networks=1\n")
    (folder / "config.yaml").write_text("n_networks: 1\n")
    before = _tree(folder)
    snapshot(folder)
    (folder / ".hydra" / "overrides.yaml").write_text("- audit.membership.n_networks=60\n")
    (folder / "logs" / "csv" / "audit-3").mkdir()
    (folder / "logs" / "csv" / "audit-3" / "hparams.yaml").write_text("n_networks: 60\n")
    (folder / "audit.log").write_text("interrupted\n")
    assert restore_if_refused(folder, {"audit.log"}) is True
    assert _tree(folder) == before
    snapshot(folder)
    (folder / "logs" / "csv" / "audit-3").mkdir()
    (folder / "logs" / "csv" / "audit-3" / "hparams.yaml").write_text("n_networks: 60\n")
    (folder / "logs" / "csv" / "audit-3" / "metrics.csv").write_text("step,auc\n0,0.6\n")
    assert restore_if_refused(folder, {"audit.log"}) is True
    assert (folder / "logs" / "csv" / "audit-3" / "hparams.yaml").is_file()  # it produced metrics: kept


def test_a_sweep_refused_in_an_earlier_sweeps_folder_puts_its_job_records_back(tmp_path, monkeypatch, capsys):
    """A second sweep into the same ``hydra.sweep.dir``, refused job by job, rewrote each job folder's
    ``.hydra/`` with its own overrides (a newcomer's ``lr_init: 0.05`` beside the set's 0.01)."""
    sweep = tmp_path / "mysweep"
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
        (sweep / job / ".hydra" / "config.yaml").write_text(f"seed: {job}\n")
        (sweep / job / "config.yaml").write_text(f"seed: {job}\n")
        (sweep / job / "reproduce.log").write_text("the earlier job's log\n")
    before = _tree(sweep)
    argv = [
        "gastrodistill-reproduce",
        "-m",
        *REFUSED[1:],
        f"paths.root_dir={tmp_path}",
        f"hydra.sweep.dir={sweep}",
        "seed=5,6",
    ]
    code, text = run_main(main, argv, monkeypatch, capsys)
    assert code == 1 and "needs distilled sets" in text, text
    after = _tree(sweep)
    assert {k: v for k, v in after.items() if k != "multirun.yaml"} == before  # multirun.yaml: Hydra's own


def test_a_sweeps_job_is_told_to_drop_the_sweep_folder_it_was_given(tmp_path, multirun_job):
    """A second sweep into the same ``hydra.sweep.dir`` was told to "drop hydra.run.dir", which it had not
    set (its job folders are ``<hydra.sweep.dir>/<N>``)."""
    import pytest

    from gastrodistill.distillation.distilled_set import META_FILE
    from gastrodistill.distillation.run import check_no_finished_set

    (tmp_path / "soft").mkdir()
    (tmp_path / "soft" / META_FILE).write_text("{}")
    with pytest.raises(Exception, match=r"Start a new run folder \(drop hydra.sweep.dir, or give another\)"):
        check_no_finished_set(tmp_path / "soft", "soft")


def test_a_single_run_is_told_to_drop_its_run_folder(tmp_path):
    import pytest

    from gastrodistill.distillation.distilled_set import META_FILE
    from gastrodistill.distillation.run import check_no_finished_set

    (tmp_path / "soft").mkdir()
    (tmp_path / "soft" / META_FILE).write_text("{}")
    with pytest.raises(Exception, match=r"Start a new run folder \(drop hydra.run.dir or paths.output_dir\)"):
        check_no_finished_set(tmp_path / "soft", "soft")


def test_a_file_the_command_rewrote_is_its_output_whether_its_size_or_its_time_changed(tmp_path):
    """Kills mutants comparing files by size only (a result rewritten to the same length) or by time only
    (a file grown with its time set back): either way the command produced it, so its record stays."""
    import os

    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    overrides, results = folder / ".hydra" / "overrides.yaml", folder / "results.csv"
    overrides.write_text("- seed=1\n")
    results.write_text("a,b\n1,2\n")
    os.utime(results, ns=(10**18, 10**18))
    snapshot(folder)
    results.write_text("a,b\n3,4\n")  # the same length, written now
    overrides.write_text("- seed=2\n")
    assert restore_if_refused(folder, set()) is True
    assert overrides.read_text() == "- seed=2\n"
    os.utime(results, ns=(10**18, 10**18))
    snapshot(folder)
    results.write_text("a,b\n3,4\n5,6\n")
    os.utime(results, ns=(10**18, 10**18))  # longer, with the earlier time
    overrides.write_text("- seed=3\n")
    assert restore_if_refused(folder, set()) is True
    assert overrides.read_text() == "- seed=3\n"


def test_an_earlier_history_is_kept_when_a_refusal_drops_its_own_copy(tmp_path):
    """Kills mutants counting every ``history/`` entry as the command's (the earlier copy was removed, or
    the refusal was taken for output) or removing an earlier, empty ``history/``."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    (folder / "history" / "1").mkdir(parents=True)
    (folder / "history" / "1" / "config.yaml").write_text("seed: 0\n")
    (folder / "config.yaml").write_text("seed: 1\n")
    before = _tree(folder)
    snapshot(folder)
    (folder / "history" / "2").mkdir()
    (folder / "history" / "2" / "config.yaml").write_text("seed: 1\n")
    (folder / "config.yaml").write_text("seed: 2\n")
    assert restore_if_refused(folder, set()) is True
    assert _tree(folder) == before

    other = tmp_path / "other"
    (other / "history").mkdir(parents=True)
    snapshot(other)
    (other / "history" / "1").mkdir()
    (other / "history" / "1" / "config.yaml").write_text("seed: 0\n")
    assert restore_if_refused(other, set()) is True
    assert _tree(other) == {"history": None}


def test_a_run_record_the_refused_command_wrote_where_there_was_none_is_removed(tmp_path):
    """Kills the mutant that put back only the record files that existed (a new ``run_info.json`` stayed
    beside the earlier run's ``config.yaml``)."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "config.yaml").write_text("seed: 0\n")
    snapshot(folder)
    (folder / "config.yaml").write_text("seed: 1\n")
    (folder / "run_info.json").write_text("{}")
    assert restore_if_refused(folder, set()) is True
    assert _tree(folder) == {"config.yaml": b"seed: 0\n"}


def test_a_file_system_error_while_restoring_leaves_the_rest_and_raises_nothing(tmp_path, monkeypatch):
    """Kills the mutant re-raising the cleanup's OSError, which would hide the command's own error."""
    import os

    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (folder / "reproduce.log").write_text("earlier\n")
    snapshot(folder)
    (folder / "reproduce.log").write_text("earlier\nrefused\n")
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=2\n")

    def read_only(path, length):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(os, "truncate", read_only)
    assert restore_if_refused(folder, {"reproduce.log"}) is True
    assert (folder / "reproduce.log").read_text() == "earlier\nrefused\n"
    assert (folder / ".hydra" / "overrides.yaml").read_text() == "- seed=2\n"


def test_a_link_the_command_left_is_removed_and_what_it_points_to_is_kept(tmp_path):
    """Kills the mutant removing a bookkeeping link to a folder as a folder (rmtree refuses a link: it
    stayed)."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("kept")
    folder = tmp_path / "run"
    folder.mkdir()
    snapshot(folder)
    (folder / "data").symlink_to(elsewhere, target_is_directory=True)
    assert restore_if_refused(folder, {"data"}) is True
    assert _tree(folder) == {} and (elsewhere / "keep.txt").read_text() == "kept"


def test_a_new_folder_records_the_three_missing_folders_nearest_it_that_making_it_creates(tmp_path):
    """Kills mutants of ``MADE_PARENTS`` and of the walk up (a fourth folder, the user's, would be removed
    with the refused command's, or fewer of those it made)."""
    from gastrodistill.cli.run_folder import snapshot

    a = tmp_path / "a"
    state = snapshot(a / "b" / "c" / "d" / "run")
    assert state.existed is False
    assert state.made_parents == (str(a / "b" / "c" / "d"), str(a / "b" / "c"), str(a / "b"))
    (a / "b").mkdir(parents=True)
    assert snapshot(a / "b" / "c" / "run").made_parents == (str(a / "b" / "c"),)


def test_only_global_rank_zero_records_the_run_folder_and_a_sweep_only_its_real_job_folders(
    tmp_path, monkeypatch
):
    """Kills the mutants snapshotting on every rank (rank 1 would record rank 0's folder as existing), not
    checking that a sweep folder exists, and following a link among a sweep's job folders."""
    from omegaconf import OmegaConf

    from gastrodistill.cli.run_folder import RunFolderSnapshot, state_before

    callback = RunFolderSnapshot()
    run = tmp_path / "run"
    monkeypatch.setenv("RANK", "1")
    callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(run)}}}))
    assert state_before(run) is None
    monkeypatch.setenv("RANK", "0")
    callback.on_run_start(OmegaConf.create({"hydra": {"run": {"dir": str(run)}}}))
    assert state_before(run) is not None and not state_before(run).existed

    sweep = tmp_path / "sweep"
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))  # a new sweep
    (sweep / "0").mkdir(parents=True)
    (sweep / "1").symlink_to(tmp_path, target_is_directory=True)
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}}))
    assert state_before(sweep / "0").existed and state_before(sweep / "1") is None


def test_a_link_to_a_file_elsewhere_is_compared_as_the_link_not_what_it_points_to(tmp_path):
    """Kills the mutant following links (``stat``): a shared file behind a link changing meanwhile was taken
    for the command's output, and the refused command's ``.hydra/`` stayed."""
    from gastrodistill.cli.run_folder import restore_if_refused, snapshot

    shared = tmp_path / "shared.csv"
    shared.write_text("a\n")
    folder = tmp_path / "run"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    (folder / "data.csv").symlink_to(shared)
    snapshot(folder)
    shared.write_text("a\nb\n")  # another process's write, behind the link
    (folder / ".hydra" / "overrides.yaml").write_text("- seed=2\n")
    assert restore_if_refused(folder, set()) is True
    assert (folder / ".hydra" / "overrides.yaml").read_text() == "- seed=1\n"
