"""``gastrodistill-evaluate``: fresh networks on saved distilled sets and on the real-data baselines.

    gastrodistill-evaluate 'eval.distilled_dirs={soft: outputs/<exp>/runs/<run>/distill/soft, hard: ...}'
    gastrodistill-evaluate eval.n_networks=20 'eval.architectures=[same,lenet,alexnet]'
    gastrodistill-evaluate eval.baselines.n_per_class=10       # baselines only (no distilled set)

Each entry of ``eval.distilled_dirs`` is a folder written by ``DistilledSet.save`` or an artifact
(folder or ``.zip`` with ``card.json``). Writes ``results.{csv,md}``, ``networks.csv`` and
``plots/`` into the Hydra run folder and prints the Markdown table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.data.synthetic.generator import check_synthetic_collection

if TYPE_CHECKING:
    import pandas as pd


def load_distilled(dirs: Mapping[str, str | Path] | None) -> dict:
    """Name -> DistilledSet from ``DistilledSet.save`` folders or shareable artifacts."""
    if not dirs:
        return {}
    from gastrodistill.cli.audit import load_sets

    sets, _ = load_sets(dirs, key="eval.distilled_dirs")
    return sets


def run(cfg: DictConfig) -> pd.DataFrame:
    """Evaluate the sets of ``eval.distilled_dirs`` and the baselines on ``cfg.data``; print the table.

    Returns the results table (one row per method and schedule), also written as ``results.{csv,md}``."""
    from gastrodistill.evaluation.run import run_evaluation

    check_values(cfg)
    sets = load_distilled(cfg.eval.get("distilled_dirs"))
    record_absolute_set_folders(cfg)
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    from gastrodistill.sharing.publish import check_logged_names_in_data

    check_logged_names_in_data(cfg, dm)  # before the loggers name their runs after it
    out = Path(cfg.paths.output_dir)
    df = run_evaluation(cfg, dm, sets, out)
    print((out / "results.md").read_text())
    print(f"results: {out / 'results.csv'}\nplots:   {out / 'plots'}")
    return df


def record_absolute_set_folders(cfg: DictConfig) -> None:
    """Write each relative entry of ``eval.distilled_dirs`` as the absolute path it was read from (the
    current folder), so the evaluation's ``config.yaml`` names its sets wherever it is read from later
    (``paired_over_runs``, ``check_experiment`` and ``compare_runs`` read each set's recipe there). The
    key is private: W&B and cards never see it (:func:`~gastrodistill.utils.privacy.public_config`)."""
    from omegaconf import open_dict

    dirs = cfg.eval.get("distilled_dirs")
    if not dirs:
        return
    with open_dict(cfg):
        for name, where in dirs.items():
            if where is not None and str(where).strip() and not Path(str(where)).is_absolute():
                cfg.eval.distilled_dirs[name] = str(Path(str(where)).absolute())


def check_values(cfg: DictConfig, overrides: Sequence[str] = (), here: bool = True) -> None:
    """The values an evaluation reads, checked before any data: ``eval.*``
    (:func:`~gastrodistill.evaluation.jobs.validate`) and the network ``model`` builds for the shape
    ``data`` fixes, when it fixes one (:mod:`gastrodistill.models.preflight`). Run first by the job, and
    for each job of a sweep before the first starts (:mod:`gastrodistill.cli.sweep_check`). Raises
    ``EvaluationConfigError`` or ``ModelConfigError`` naming the key; ``SyntheticCollectionMismatch`` when
    ``here`` and the synthetic collection on disk is not the one the config describes."""
    from gastrodistill.evaluation.jobs import validate
    from gastrodistill.models.preflight import check_configured_model

    validate(cfg.eval, here)
    check_configured_model(cfg)
    if here:  # the collection on disk is the one this config describes (a seed sweep: before its first job)
        check_synthetic_collection(cfg)


@check_override_keys(CONF_DIR, check_values=check_values)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-evaluate``: :func:`run` on the composed config."""
    run(cfg)


if __name__ == "__main__":
    main()
