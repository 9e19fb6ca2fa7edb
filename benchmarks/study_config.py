"""The composed config and the prepared data of a study's Hydra overrides, shared by the benchmarks.

The studies (``small_set_curve.py``, ``threshold_study.py``, ``teacher_epoch_labels.py``,
``meta_gradient_snr.py``) compose the project's root config from the overrides given after ``--``,
with the loggers off (a study writes its own rows, not a W&B run), and open its data the way the
pipeline does. A bad override raises Hydra's own error here, so the study stops before any work.
"""

from __future__ import annotations

from typing import Any


def composed(overrides: list[str]) -> Any:
    """The root config (``conf/config.yaml``) with ``overrides`` applied after ``logger=none``.
    Raises what ``hydra.compose`` raises on an override it cannot apply."""
    from hydra import compose, initialize_config_dir

    from gastrodistill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=["logger=none", *overrides])


def prepared_data(cfg: Any) -> Any:
    """The data module of ``cfg.data``, instantiated, prepared (its patch store built if missing) and set
    up. Raises what the data module raises (a missing collection names the command that builds it)."""
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    return dm
