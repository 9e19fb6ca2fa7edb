"""benchmarks/study_config.py: the studies' composed config (loggers off, the overrides applied) and their
prepared data, against the config and data module the CLI's own composition gives."""

from __future__ import annotations

import pytest
import torch
from _benchmarks import load_benchmark
from omegaconf import OmegaConf


def test_composed_is_the_root_config_with_the_loggers_off(compose_cfg, tmp_path) -> None:
    study_config = load_benchmark("study_config")
    overrides = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/out", "data=digits", "seed=7"]
    cfg = study_config.composed(overrides)
    assert OmegaConf.to_container(cfg.logger) == {}  # logger=none, not the default's W&B
    assert int(cfg.seed) == 7 and cfg.data._target_.endswith("DigitsDataModule")
    expected = compose_cfg([*overrides, "logger=none"])  # the CLI's composition of the same overrides
    assert OmegaConf.to_container(cfg, resolve=False) == OmegaConf.to_container(expected, resolve=False)


def test_composed_refuses_an_override_it_cannot_apply() -> None:
    from hydra.errors import HydraException

    with pytest.raises(HydraException, match="no_such_key"):
        load_benchmark("study_config").composed(["data.no_such_key_here=1"])


def test_prepared_data_is_set_up_as_the_pipeline_sets_it_up(compose_cfg, tmp_path) -> None:
    from hydra.utils import instantiate

    study_config = load_benchmark("study_config")
    overrides = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/out", "data=digits"]
    dm = study_config.prepared_data(study_config.composed(overrides))
    ref = instantiate(compose_cfg(overrides).data)
    ref.prepare_data()
    ref.setup()
    for split in ("train", "val"):
        (x, y), (xr, yr) = dm.load_split(split), ref.load_split(split)
        assert x.shape[0] > 0
        torch.testing.assert_close(x, xr)
        torch.testing.assert_close(y, yr)
