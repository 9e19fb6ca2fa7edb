"""The W&B run file written by ``private_wandb_logger`` holds neither the host's nor the user's name."""

from __future__ import annotations

import getpass
import socket

HOST = "hostmarker7f3a9c"
USER = "usermarker5b1e"


def test_offline_run_file_has_no_host_or_user_name(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    # W&B takes its defaults from these two calls; unique markers make a leak findable in the binary file
    monkeypatch.setattr(socket, "gethostname", lambda: HOST)
    monkeypatch.setattr(getpass, "getuser", lambda: USER)
    from gastrodistill.utils.loggers import private_wandb_logger

    logger = private_wandb_logger(save_dir=tmp_path / "logs", name="privacy")
    logger.log_metrics({"loss": 1.0})
    logger.experiment.finish()
    run_files = list((tmp_path / "logs").rglob("*.wandb"))
    assert len(run_files) == 1, run_files
    # W&B's core process reads the host name itself (the patched call above does not reach it): the run
    # record's host is left blank only by the logger's setting
    from _wandb_run_file import finished_records

    (run,) = [r.run for r in finished_records(run_files[0]) if r.WhichOneof("record_type") == "run"]
    assert run.host == ""
    for f in (tmp_path / "logs").rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert HOST.encode() not in data and USER.encode() not in data, f


def test_logged_results_table_names_no_home_folder(tmp_path, monkeypatch):
    """The results table reaches the run without the local staging path of a W&B Table's artifact
    (``$HOME/.local/share/wandb/artifacts/staging/...``), which names the user; its values do reach it."""
    import pandas as pd

    home = tmp_path / f"home_{USER}"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    from gastrodistill.evaluation.results import log_results
    from gastrodistill.utils.loggers import private_wandb_logger

    logger = private_wandb_logger(save_dir=tmp_path / "logs", name="privacy-table")
    df = pd.DataFrame(
        {"method": ["soft"], "schedule": ["replay"], "architecture": ["convnet"], "patient_hm": [0.7453125]}
    )
    log_results([logger], df)
    logger.experiment.finish()
    run_dir = next((tmp_path / "logs").rglob("offline-run-*"))
    for f in run_dir.rglob("*"):
        if f.is_file() and f.parent.name != "logs":  # W&B's client debug logs are not part of the run
            assert USER.encode() not in f.read_bytes(), f
    (html,) = run_dir.rglob("media/html/results/table*.html")
    assert "0.7453" in html.read_text() and "soft" in html.read_text()


def test_wandb_mode_disabled_writes_nothing(tmp_path, monkeypatch):
    """W&B's own switch WANDB_MODE=disabled was read as offline: a full offline run was written anyway."""
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    from gastrodistill.utils.loggers import private_wandb_logger

    logger = private_wandb_logger(save_dir=tmp_path / "logs", name="off")
    logger.log_metrics({"loss": 1.0})
    logger.experiment.finish()
    assert [p for p in (tmp_path / "logs").rglob("*") if p.is_file()] == []


def test_an_online_run_without_an_api_key_is_an_error_line(tmp_path, monkeypatch):
    """WANDB_MODE=online with logger.wandb.offline=false and no key ended in W&B's UsageError traceback; the
    commands now print one line with the ways on, offline included."""
    import pytest

    from gastrodistill.cli.errors import known_error_text
    from gastrodistill.utils.loggers import private_wandb_logger

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    import wandb

    wandb.teardown()  # W&B's process-wide state keeps an earlier test's settings; a command starts afresh
    logger = private_wandb_logger(save_dir=tmp_path / "logs", name="online", offline=False)
    try:
        with pytest.raises(Exception) as info:
            logger.experiment  # noqa: B018 - starts the run
    finally:
        wandb.teardown()  # and after: the online settings would stay for the later tests' offline runs
    text = known_error_text(info.value)
    assert text.startswith("error: W&B could not start an online run (No API key configured")
    assert "wandb login" in text and "wandb sync" in text


def test_a_wandb_error_outside_the_start_of_a_run_keeps_its_traceback():
    """Only W&B's errors while ``wandb.init`` starts a run get the online-run line: a misuse elsewhere
    (a reviewer's example: logging after the run finished) was told to check the network and the key."""
    import wandb

    from gastrodistill.cli.errors import known_error_text

    try:
        raise wandb.errors.UsageError("You must call wandb.init() before wandb.log()")
    except wandb.errors.UsageError as exc:
        assert known_error_text(exc) is None
