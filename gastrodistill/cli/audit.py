"""``gastrodistill-audit``: the anonymity audit of saved distilled sets, then their shareable artifacts.

    gastrodistill-audit experiment=cpu 'audit.sets={soft: RUN/distill/soft, hard: RUN/distill/hard}'
    gastrodistill-audit experiment=cpu +audit.sets.soft=/path/to/artifact.zip audit.artifact.write=false

Each entry of ``audit.sets`` is a folder written by ``DistilledSet.save`` or an artifact (folder or
``.zip`` with ``card.json``). Writes ``<output>/audit/audit.md`` (+ figures, JSON, per-image CSV) and,
unless ``audit.artifact.write=false``, ``<output>/artifacts/<set>`` (+ ``.zip``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.data.synthetic.generator import check_synthetic_collection


class AuditInputError(ValueError):
    """``audit.sets`` is empty or names something that is not a distilled set or an artifact."""


def load_sets(sets: Any, key: str = "audit.sets") -> tuple[dict, dict]:
    """Name -> DistilledSet, plus name -> artifact path for the entries that are artifacts.

    ``sets`` is the mapping of the config key ``key`` (named in the messages). Raises
    :class:`AuditInputError` when it is empty or not a mapping of names to paths, or names nothing, and
    ``EvaluationConfigError`` for names that cannot name files (``evaluation.jobs.check_set_names``).
    """
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.jobs import check_set_names
    from gastrodistill.sharing.artifact import CARD_FILE, load_artifact

    example = f"'{key}={{soft: outputs/<exp>/runs/<run>/distill/soft}}'"
    if not sets:
        raise AuditInputError(
            f"{key} is empty; pass the distilled sets, e.g. {example} "
            "(folders of DistilledSet.save or artifacts)"
        )
    if not isinstance(sets, Mapping | DictConfig):
        raise AuditInputError(
            f"{key} must map a name to each set's folder or artifact, e.g. {example}; got {sets!r}"
        )
    loaded, artifacts = {}, {}
    for name, where in zip(check_set_names(sets.keys(), key), sets.values(), strict=True):
        if where is None or not str(where).strip():
            raise AuditInputError(f"{key}.{name} has no path; give a DistilledSet folder or an artifact")
        p = Path(str(where))
        if not p.exists():
            raise AuditInputError(f"{key}.{name}: nothing at {p}; give a DistilledSet folder or an artifact")
        if p.is_file() or (p / CARD_FILE).is_file():
            loaded[name], _ = load_artifact(p)
            artifacts[name] = p
        else:
            loaded[name] = DistilledSet.load(p)
    return loaded, artifacts


def check_recipes(cfg: DictConfig, sets: Mapping[str, Any]) -> None:
    """Refuse to write artifacts for sets distilled with another recipe than ``cfg.distill`` (their cards
    would describe this config's). Raises :class:`AuditInputError` naming the set and the fields."""
    from gastrodistill.sharing.publish import recipe_mismatch

    for name, ds in sets.items():
        diff = recipe_mismatch(cfg, ds)
        if diff:
            mine = ", ".join(f"{k}={a}" for k, (a, _) in diff.items())
            theirs = ", ".join(f"distill.{k}={b}" for k, (_, b) in diff.items())
            raise AuditInputError(
                f"audit.sets.{name} was distilled with {mine} but this config has {theirs}: its artifact's "
                "card would describe another recipe, and its replay augmentation and standard schedule would "
                "come from this config. Run with the set's own experiment (e.g. experiment=cpu; its run's "
                "config.yaml lists it) or with audit.artifact.write=false"
            )


def run(cfg: DictConfig) -> dict:
    """Audit the sets of ``audit.sets`` and, with ``audit.artifact.write``, publish their artifacts.

    Returns the audit's ``{row name: {metric: value}}``; raises :class:`AuditInputError` for bad sets."""
    from gastrodistill.anonymity.audit import run_audit
    from gastrodistill.sharing.publish import (
        check_experiment_name,
        check_logged_names_in_data,
        publish_artifact,
        set_recipe,
    )

    check_values(cfg)
    if cfg.audit.artifact.write:  # its name goes into every card: refused before the audit, not after
        check_experiment_name(cfg)
    sets, artifacts = load_sets(cfg.audit.sets)
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    check_logged_names_in_data(cfg, dm)  # it names the logged runs and the cards: before the audit
    from gastrodistill.evaluation.checks import check_distilled_sets

    check_distilled_sets(sets, dm)
    if cfg.audit.artifact.write:  # before the audit: its card would describe this config's recipe
        check_recipes(cfg, sets)
    out = Path(cfg.paths.output_dir)
    results = run_audit(cfg, dm, sets, out / "audit", artifacts=artifacts)
    if cfg.audit.artifact.write:
        for name, ds in sets.items():
            folder = Path(str(cfg.audit.sets[name]))  # a set folder records its recipe; an artifact none
            recipe = set_recipe(folder) if name not in artifacts else None
            path = publish_artifact(
                cfg, dm, name, ds, out / "artifacts" / name, anonymity=results[name], recipe=recipe
            )
            print(f"artifact {name}: {path}")
    for row, metrics in results.items():
        keys = (
            "ncc_nearest_max",
            "ncc_ref_q",
            "frac_flagged",
            "feature_frac_flagged",
            "mia_patch_lira_auc",
            "mia_patch_lira_tpr_at_1pct",
            "mia_patient_lira_auc",
            "mia_patient_n_members",
            "mia_patient_n_nonmembers",
            "artifact_leaks",
        )
        print(row, " ".join(f"{k}={metrics[k]:.3f}" for k in keys if k in metrics))
    print(f"report: {out / 'audit' / 'audit.md'}")
    return results


def check_values(cfg: DictConfig, overrides: Sequence[str] = (), here: bool = True) -> None:
    """The values an audit reads, checked before any data: ``audit.*``
    (:func:`~gastrodistill.anonymity.config_check.check_audit_config`). Run first by the job, and for each
    job of a sweep before the first starts (:mod:`gastrodistill.cli.sweep_check`). Raises
    ``AuditConfigError`` naming the key; ``SyntheticCollectionMismatch`` when ``here`` and the synthetic
    collection on disk is not the one the config describes."""
    from gastrodistill.anonymity.config_check import check_audit_config

    check_audit_config(cfg.audit)
    if here:  # the collection on disk is the one this config describes (a seed sweep: before its first job)
        check_synthetic_collection(cfg)


@check_override_keys(CONF_DIR, check_values=check_values)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-audit``: :func:`run` on the composed config."""
    run(cfg)


if __name__ == "__main__":
    main()
