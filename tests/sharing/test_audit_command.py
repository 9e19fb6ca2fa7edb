"""The audit command's own code (gastrodistill.cli.audit): which entries are artifacts, what it hands the
audit and the publisher, when it checks the recipe, and what it prints, with the
audit and the publisher replaced by stand-ins (fast)."""

from __future__ import annotations

import numpy as np
import pytest
from _anon_data import CLASSES, make_dm

from gastrodistill.sharing.artifact import save_artifact

RECIPE = ["distill.ipc=2", "distill.steps=2", "distill.epochs=1"]  # the soft_set fixture's


def _site(tmp_path, soft_set):
    """An npz site whose normalisation the set declares; returns the data overrides."""
    src = make_dm(patients=(10, 3, 10), per_patient=5)
    arrays = {
        f"{s}_{k}": v
        for s in ("train", "val", "test")
        for k, v in zip(("images", "labels"), src._splits[s], strict=True)
    }
    np.savez(tmp_path / "patches.npz", class_names=np.array(CLASSES), **arrays)
    soft_set.mean, soft_set.std = list(src.mean), list(src.std)
    return ["data=npz", f"data.path={tmp_path / 'patches.npz'}"]


def _stubs(monkeypatch):
    import gastrodistill.anonymity.audit as anonymity_audit
    import gastrodistill.sharing.publish as publish

    calls = {"audit": [], "publish": []}
    results = {
        "soft": {"artifact_leaks": 0.0, "other": 9.0, "ncc_nearest_max": 0.12345, "mia_patch_lira_auc": 0.5},
        "hard": {"frac_flagged": 1 / 3},
        "real": {"mia_patient_n_members": 12.0},
    }

    def audit(cfg, dm, sets, out, artifacts=None):
        calls["audit"].append({"sets": sorted(sets), "out": out, "artifacts": dict(artifacts)})
        return results

    def publish_artifact(cfg, dm, name, ds, folder, anonymity=None, recipe=None):
        calls["publish"].append({"name": name, "folder": folder, "anonymity": anonymity, "recipe": recipe})
        return folder.with_suffix(".zip")

    monkeypatch.setattr(anonymity_audit, "run_audit", audit)
    monkeypatch.setattr(publish, "publish_artifact", publish_artifact)
    return calls, results


def test_load_sets_refuses_an_empty_mapping_and_a_blank_path_and_tells_artifacts_apart(
    tmp_path, soft_set, card_fields
):
    """An empty ``audit.sets`` and a path of blanks are named; a set folder loads as a set, an artifact
    folder and its .zip as artifacts, recorded with their paths (mutants let {} through as no sets, took
    blanks for a path, read a .zip as a set folder, or recorded no artifact)."""
    from gastrodistill.cli.audit import AuditInputError, load_sets

    with pytest.raises(AuditInputError, match=r"^audit.sets is empty; pass the distilled sets"):
        load_sets({})
    with pytest.raises(AuditInputError, match=r"^eval.distilled_dirs.soft has no path"):
        load_sets({"soft": "   "}, key="eval.distilled_dirs")
    folder = soft_set.save(tmp_path / "set")
    art = save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)
    zipped = art.with_suffix(".zip")
    sets, artifacts = load_sets({"a": str(folder), "b": str(art), "c": str(zipped)})
    assert sorted(sets) == ["a", "b", "c"] and artifacts == {"b": art, "c": zipped}
    for name in sets:
        assert torch_equal(sets[name].images, soft_set.images), name


def torch_equal(a, b):
    import torch

    return bool(torch.equal(a.detach().cpu(), b.detach().cpu()))


def test_the_audit_command_publishes_each_set_with_its_own_recipe_and_prints_a_summary(
    tmp_path, compose_cfg, soft_set, card_fields, monkeypatch, capsys
):
    """The audit gets the sets and which are artifacts; each set is published to artifacts/<name> with
    its own row of the audit and the recipe its folder records (an artifact: none); the summary lists the
    chosen metrics in their order with three decimals. Kills mutants that passed no artifacts, read or
    dropped the recipe, printed no artifact path, two decimals, or left artifact_leaks out."""
    from gastrodistill.cli.audit import run
    from gastrodistill.sharing.publish import set_recipe

    data = _site(tmp_path, soft_set)
    folder = soft_set.save(tmp_path / "run" / "distill" / "soft")
    (folder / "config.yaml").write_text("seed: 0\ndistill:\n  ipc: 2\n  steps: 2\n  epochs: 1\n")
    art = save_artifact(tmp_path / "shared" / "hard", soft_set, card_fields)
    calls, results = _stubs(monkeypatch)
    cfg = compose_cfg([*data, *RECIPE, f"audit.sets={{soft: {folder}, hard: {art}}}"])
    capsys.readouterr()
    assert run(cfg) is results
    out = tmp_path / "out"
    assert calls["audit"] == [{"sets": ["hard", "soft"], "out": out / "audit", "artifacts": {"hard": art}}]
    assert set_recipe(folder)["seed"] == 0
    assert calls["publish"] == [
        {"name": "soft", "folder": out / "artifacts" / "soft", "anonymity": results["soft"],
         "recipe": set_recipe(folder)},
        {"name": "hard", "folder": out / "artifacts" / "hard", "anonymity": results["hard"], "recipe": None},
    ]  # fmt: skip
    assert capsys.readouterr().out.splitlines() == [
        f"artifact soft: {out / 'artifacts' / 'soft.zip'}",
        f"artifact hard: {out / 'artifacts' / 'hard.zip'}",
        "soft ncc_nearest_max=0.123 mia_patch_lira_auc=0.500 artifact_leaks=0.000",
        "hard frac_flagged=0.333",
        "real mia_patient_n_members=12.000",
        f"report: {out / 'audit' / 'audit.md'}",
    ]


def test_an_audit_without_artifacts_does_not_check_the_sets_recipe(
    tmp_path, compose_cfg, soft_set, monkeypatch
):
    """With audit.artifact.write=false no card is written: a set of another recipe than this config's is
    audited (a mutant checked the recipe always); with artifacts it is refused before the audit."""
    from gastrodistill.cli.audit import AuditInputError, run

    data = _site(tmp_path, soft_set)
    folder = soft_set.save(tmp_path / "set")
    calls, _ = _stubs(monkeypatch)
    sets = f"audit.sets={{soft: {folder}}}"
    run(compose_cfg([*data, sets, "audit.artifact.write=false"]))  # distill.* of this config: another recipe
    assert len(calls["audit"]) == 1 and calls["publish"] == []
    with pytest.raises(AuditInputError, match="audit.sets.soft was distilled with"):
        run(compose_cfg([*data, sets]))
    assert len(calls["audit"]) == 1


def test_the_audit_command_checks_its_values_before_it_reads_a_set(tmp_path, compose_cfg, monkeypatch):
    """A bad audit.* value is refused before the sets are looked for (mutants skipped the job's
    check_values, or its audit-config check, and said 'nothing at' of the missing set instead)."""
    from gastrodistill.anonymity.audit import AuditConfigError
    from gastrodistill.cli.audit import run

    _stubs(monkeypatch)
    nowhere = f"audit.sets={{soft: {tmp_path / 'nowhere'}}}"
    cfg = compose_cfg([nowhere, "audit.membership.null_permutations=1"])
    with pytest.raises(AuditConfigError, match="audit.membership.null_permutations must be 0"):
        run(cfg)
