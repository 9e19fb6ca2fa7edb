"""``gastrodistill-distill``: distil the configured data set (Hydra main over the root config).

gastrodistill-distill distill=soft model=convnet distill.ipc=10 data.storage_size=32
gastrodistill-distill -m distill=soft,hard distill.ipc=1,10 trainer=ddp_sim
"""

from __future__ import annotations

from collections.abc import Sequence

import hydra
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.data.synthetic.generator import check_synthetic_collection


def check_values(cfg: DictConfig, overrides: Sequence[str] = (), here: bool = True) -> None:
    """The values a distillation reads, checked before any data: ``distill.*`` for ``distill.mode``
    (:func:`~gastrodistill.distillation.config_check.check_distill_config`) and the network ``model``
    builds for the shape ``data`` fixes, when it fixes one (:mod:`gastrodistill.models.preflight`). Run
    first by the job, and for each job of a sweep before the first starts
    (:mod:`gastrodistill.cli.sweep_check`). Raises ``DistillConfigError`` or ``ModelConfigError`` naming
    the key; ``LaunchError`` when ``here`` and this machine lacks the GPU the trainer asks for or the
    processes this command runs in do not match the trainer
    (:func:`~gastrodistill.utils.distributed.check_accelerator_here`, ``check_launch``);
    ``SyntheticCollectionMismatch`` when ``here`` and the synthetic collection on disk is not the one the
    config describes (a sweep over ``seed`` without ``synthetic.seed``: every job but the first was
    refused after the earlier ones had run)."""
    from gastrodistill.distillation.config_check import check_distill_config
    from gastrodistill.distillation.texture_clusters import check_cluster_classes
    from gastrodistill.models.preflight import check_configured_model
    from gastrodistill.utils.distributed import check_accelerator_here, check_launch

    check_distill_config(cfg.distill, cfg.distill.get("mode"))
    check_cluster_classes(cfg)
    check_configured_model(cfg)
    if here:
        check_accelerator_here(cfg.trainer)
        check_launch(cfg.trainer)
        check_synthetic_collection(cfg)  # the collection on disk is the one this config describes


@check_override_keys(CONF_DIR, check_values=check_values)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-distill``: distil ``cfg.data`` into ``<output>/<mode>``."""
    from gastrodistill.distillation.run import run_distillation
    from gastrodistill.sharing.publish import check_logged_names_in_data

    check_values(cfg)
    # a name the run is logged under holding a patient id, header value or path of the data's files:
    # refused before the patch store is built (the check with the data module follows in the distillation)
    check_logged_names_in_data(cfg, None, warn=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    distilled = run_distillation(cfg, datamodule, cfg.paths.output_dir)
    print(
        f"distilled {distilled.mode} set: {tuple(distilled.images.shape)} images, lrs "
        f"{distilled.lrs().min():.4f}..{distilled.lrs().max():.4f} -> {cfg.paths.output_dir}/{distilled.mode}"
    )


if __name__ == "__main__":
    main()
