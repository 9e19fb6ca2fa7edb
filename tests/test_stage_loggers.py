"""A stage run again in one run folder keeps the earlier attempt's CSV log (``stage_loggers``)."""

from __future__ import annotations

import csv

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
