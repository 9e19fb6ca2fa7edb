"""A stage run again in one run folder keeps the earlier attempt's CSV log (``stage_loggers``)."""

from __future__ import annotations

import csv

import pytest
from omegaconf import OmegaConf

from gastrodistill.utils.loggers import finish_loggers, free_csv_version, stage_loggers


def _cfg(log_dir):
    return OmegaConf.create(
        {
            "experiment_name": "t",
            "logger": {
                "csv": {
                    "_target_": "pytorch_lightning.loggers.CSVLogger",
                    "save_dir": str(log_dir),
                    "name": "csv",
                }
            },
        }
    )


def _log_once(cfg, stage: str, value: float):
    (logger,) = stage_loggers(cfg, stage)
    logger.log_metrics({"loss": value}, step=0)
    finish_loggers([logger])
    return logger.log_dir


def _losses(folder) -> list[float]:
    with open(folder / "metrics.csv", newline="") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_second_attempt_gets_its_own_folder_and_the_first_log_stays(tmp_path):
    cfg = _cfg(tmp_path)
    first = _log_once(cfg, "evaluation", 1.5)
    second = _log_once(cfg, "evaluation", 2.5)
    third = _log_once(cfg, "evaluation", 3.5)
    root = tmp_path / "csv"
    assert [first, second, third] == [str(root / v) for v in ("evaluation", "evaluation-2", "evaluation-3")]
    assert _losses(root / "evaluation") == [1.5]  # Lightning alone deletes this file on the second attempt
    assert _losses(root / "evaluation-2") == [2.5]
    assert _losses(root / "evaluation-3") == [3.5]


def test_a_folder_without_metrics_is_used_and_other_stages_are_independent(tmp_path):
    (tmp_path / "csv" / "audit").mkdir(parents=True)
    (tmp_path / "csv" / "distill-soft").mkdir()
    (tmp_path / "csv" / "distill-soft" / "metrics.csv").write_text("loss,step\n1,0\n")
    (tmp_path / "csv" / "audit" / "hparams.yaml").write_text("seed: 0\n")  # an attempt that logged nothing
    assert free_csv_version(tmp_path, "csv", "audit") == "audit"
    assert free_csv_version(tmp_path, "csv", "distill-soft") == "distill-soft-2"
    assert free_csv_version(tmp_path, "csv", "distill-hard") == "distill-hard"
    assert free_csv_version(tmp_path, None, "audit") == "audit"  # CSVLogger(name=None): no name folder


@pytest.mark.parametrize("failed", [False, True])
def test_a_failed_stage_ends_its_wandb_run_with_exit_code_1(tmp_path, monkeypatch, failed):
    """A sweep's broken or interrupted jobs were recorded in W&B as finished (exit code 0)."""
    from _wandb_run_file import exit_codes, run_names

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    from gastrodistill.utils.loggers import private_wandb_logger

    logger = private_wandb_logger(save_dir=tmp_path / "logs", name="exit-code")
    logger.log_metrics({"loss": 1.0})
    finish_loggers([logger], failed=failed)
    (run_file,) = (tmp_path / "logs").rglob("*.wandb")
    assert exit_codes(run_file) == [1 if failed else 0]
    assert run_names(run_file) == ["exit-code"]


def test_wandb_runs_of_a_sweep_are_named_by_job_and_carry_the_git_revision(
    tmp_path, monkeypatch, multirun_job
):
    """Every job of a sweep had one W&B name (`tiny-distill-soft`), and `logger.wandb.name` was dropped."""
    import subprocess

    import yaml
    from _wandb_run_file import run_names

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    from gastrodistill.utils.loggers import log_public_hyperparams, sweep_job_suffix

    assert sweep_job_suffix() == "-job3"
    for name, expected in ((None, "t-distill-soft-job3"), ("lr_0.03", "lr_0.03-distill-soft-job3")):
        cfg = _cfg(tmp_path / str(name))
        cfg.logger.wandb = {
            "_target_": "gastrodistill.utils.loggers.private_wandb_logger",
            "save_dir": str(tmp_path / str(name)),
            "name": name,
        }
        loggers = stage_loggers(cfg, "distill-soft")
        log_public_hyperparams(loggers, cfg)
        finish_loggers(loggers)
        (run_file,) = (tmp_path / str(name)).rglob("*.wandb")
        assert run_names(run_file) == [expected]
        (hparams,) = (tmp_path / str(name)).rglob("hparams.yaml")
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
        assert yaml.safe_load(hparams.read_text())["git_revision"].split("-")[0] == head.stdout.strip()


def test_outside_a_sweep_the_run_name_has_no_job_number():
    from gastrodistill.utils.loggers import sweep_job_suffix

    assert sweep_job_suffix() == ""


@pytest.mark.parametrize(
    ("env_mode", "offline", "expected_offline"),
    [(None, False, True), ("offline", False, True), ("online", True, True), ("online", False, False)],
)
def test_wandb_goes_online_only_when_both_the_environment_and_the_config_say_so(
    tmp_path, monkeypatch, env_mode, offline, expected_offline
):
    """Online needs WANDB_MODE=online and ``logger.wandb.offline=false``; an unset WANDB_MODE is offline
    (kills either switch alone making a run online, and an online default). No run is started here."""
    from gastrodistill.utils.loggers import private_wandb_logger

    if env_mode is None:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    else:
        monkeypatch.setenv("WANDB_MODE", env_mode)
    logger = private_wandb_logger(save_dir=tmp_path / "logs", offline=offline)
    assert logger._offline is expected_offline
    assert "mode" not in logger._wandb_init


def test_with_wandb_disabled_the_run_is_neither_online_nor_offline(tmp_path, monkeypatch):
    """WANDB_MODE=disabled reaches wandb.init as its mode, and Lightning is not told offline (which would
    set WANDB_MODE=dryrun over it)."""
    from gastrodistill.utils.loggers import private_wandb_logger

    monkeypatch.setenv("WANDB_MODE", "disabled")
    logger = private_wandb_logger(save_dir=tmp_path / "logs")
    assert logger._wandb_init["mode"] == "disabled" and logger._offline is False


@pytest.mark.parametrize(
    "target", ["gastrodistill.utils.loggers.private_wandb_logger", "pytorch_lightning.loggers.WandbLogger"]
)
def test_a_stages_wandb_logger_gets_its_name_job_type_group_and_tags(tmp_path, target):
    """Lightning's own ``WandbLogger`` class (no lower-case ``wandb`` in its name) is a W&B logger too; the
    stage is the run's job type, and the group and tags of the config reach ``wandb.init`` (no run started;
    Lightning's ``anonymous`` key is left out)."""
    cfg = _cfg(tmp_path)
    cfg.logger.wandb = {
        "_target_": target,
        "save_dir": str(tmp_path / "w"),
        "offline": True,
        "group": "sweep-a",
        "tags": ["cpu", "soft"],
    }
    csv_logger, wandb_logger = stage_loggers(cfg, "evaluation")
    assert csv_logger.version == "evaluation"
    init = wandb_logger._wandb_init
    assert (init["name"], init["job_type"], init["group"]) == ("t-evaluation", "evaluation", "sweep-a")
    assert list(init["tags"]) == ["cpu", "soft"]
    if target.startswith("gastrodistill"):
        assert "anonymous" not in init


def test_other_loggers_are_built_as_configured_and_nodes_without_a_target_are_skipped(tmp_path):
    """A logger that is neither CSV nor W&B is built as it is; a node without ``_target_`` (or not a
    mapping) is no logger, for a stage and for ``instantiate_loggers`` alike."""
    from pytorch_lightning.loggers import CSVLogger
    from pytorch_lightning.loggers.logger import DummyLogger

    from gastrodistill.utils.loggers import instantiate_loggers

    cfg = _cfg(tmp_path)
    cfg.logger.dummy = {"_target_": "pytorch_lightning.loggers.logger.DummyLogger"}
    cfg.logger.note = {"save_dir": str(tmp_path)}
    cfg.logger.off = None
    assert [type(lg) for lg in stage_loggers(cfg, "audit")] == [CSVLogger, DummyLogger]
    assert [type(lg) for lg in instantiate_loggers(cfg.logger)] == [CSVLogger, DummyLogger]
    assert instantiate_loggers(None) == [] and instantiate_loggers({}) == []


def test_a_csv_logger_without_a_name_keeps_the_earlier_attempts_log_too(tmp_path):
    """Without ``name`` Lightning's CSVLogger writes under ``lightning_logs``; the free version is looked up
    there (kills a lookup in the save folder itself, which overwrote the first attempt's metrics)."""
    cfg = _cfg(tmp_path)
    del cfg.logger.csv["name"]
    first = _log_once(cfg, "audit", 1.5)
    second = _log_once(cfg, "audit", 2.5)
    root = tmp_path / "lightning_logs"
    assert [first, second] == [str(root / "audit"), str(root / "audit-2")]
    assert _losses(root / "audit") == [1.5] and _losses(root / "audit-2") == [2.5]


def test_the_logged_hyperparameters_hold_no_path_patient_or_folder(tmp_path, monkeypatch):
    """What ``log_public_hyperparams`` hands the loggers (here the CSV log's ``hparams.yaml`` and an offline
    W&B run's files) holds none of the config's paths, patient ids or folders, and its public values do reach
    them (kills the config logged as it is)."""
    import yaml

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    from gastrodistill.utils.loggers import log_public_hyperparams

    cfg = _cfg(tmp_path / "csv_logs")
    cfg.logger.wandb = {
        "_target_": "gastrodistill.utils.loggers.private_wandb_logger",
        "save_dir": str(tmp_path / "wandb_logs"),
    }
    private = ["StMaryRoot", "manifest_KOWALSKI.csv", "PAT98765", "run_stmary_old", "Zyxw_site"]
    cfg.merge_with(
        {
            "seed": 1234567,
            "paths": {"data_root": "/data/StMaryRoot"},
            "data": {"manifest": "manifest_KOWALSKI.csv", "patient_ids": ["PAT98765"], "patch_size": 48},
            "distill": {"resume": "run_stmary_old", "lr_images": 0.0123},
            "note": "Zyxw_site/cases",
        }
    )
    loggers = stage_loggers(cfg, "distill-soft")
    log_public_hyperparams(loggers, cfg)
    finish_loggers(loggers)
    (hparams,) = (tmp_path / "csv_logs").rglob("hparams.yaml")
    logged = yaml.safe_load(hparams.read_text())
    assert (logged["seed"], logged["data"]["patch_size"], logged["distill"]["lr_images"]) == (
        1234567,
        48,
        0.0123,
    )
    assert logged["note"] == "<redacted>" and "git_revision" in logged
    files = [hparams, *(f for f in (tmp_path / "wandb_logs").rglob("*") if f.is_file())]
    assert any(f.suffix == ".wandb" for f in files)
    for f in files:
        data = f.read_bytes()
        assert not [s for s in private if s.encode() in data], f
