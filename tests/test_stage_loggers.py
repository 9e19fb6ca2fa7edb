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
