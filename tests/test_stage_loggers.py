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
