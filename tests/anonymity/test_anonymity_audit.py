"""The audit stage end to end on a small patient data set: report, figures, numbers, no identifiers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from _anon_data import PID_PREFIX, all_bytes, make_dm, noise_set

from gastrodistill.anonymity.audit import AuditConfigError, run_audit
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.record_settings import set_digest

#: A training patch of a relevant class (the audit searches informative patches only).
COPIED = 41

FAST = [
    "model=lenet",
    "eval.baselines.real.epochs=1",
    "audit.membership.n_networks=2",
    "audit.nearest.reference_size=64",
    "audit.membership.max_per_side=120",
    "audit.closest_pairs=4",
    "audit.membership.shadows=2",
    "audit.membership.overfit_control.epochs=15",
]


#: What a finished audit writes into its folder, and nothing else.
AUDIT_FILES = (
    "audit.md",
    "audit.json",
    "audit_per_image.csv",
    "closest_pairs.png",
    "similarity_histograms.png",
    "membership_roc.png",
    "config.yaml",
    "run_info.json",
)


def test_run_audit_writes_report_and_flags_a_planted_copy(tmp_path, compose_cfg):
    cfg = compose_cfg(FAST)
    dm = make_dm(patients=(16, 4, 16), per_patient=8)
    soft = noise_set(dm, steps=2, ipc=1, seed=1)
    with torch.no_grad():
        soft.images[2] = dm.load_split("train", [COPIED])[0][0]  # a copy of a real (relevant-class) patch
    hard = noise_set(dm, steps=1, ipc=2, seed=2)
    out = tmp_path / "out" / "audit"
    results = run_audit(cfg, dm, {"soft": soft, "hard": hard}, out)

    assert set(results) == {"soft", "hard", "real", "control_copy", "control_noisy", "control_overfit"}
    assert results["soft"]["ncc_frac_flagged"] == pytest.approx(1 / 6)
    assert results["soft"]["frac_flagged"] == pytest.approx(1 / 6)
    assert results["soft"]["ssim_nearest_max"] == pytest.approx(1.0, abs=1e-4)
    assert results["hard"]["ncc_frac_flagged"] == 0.0 and results["hard"]["feature_frac_above_p99"] == 0.0
    # The positive controls are flagged, so the audit can certify; the copy makes `soft` flagged.
    assert results["control_copy"]["frac_flagged"] == 1.0
    assert results["control_noisy"]["frac_flagged"] >= 0.9
    assert results["hard"]["controls_certified"] == 1.0
    # Irrelevant-class patches (a third of this data) are excluded from search and reference.
    n_irr = int((dm.labels("train") == 0).sum())
    assert results["hard"]["n_excluded_class"] == n_irr and results["hard"]["n_informative"] > 0
    for row in ("soft", "hard", "real", "control_overfit"):
        assert results[row]["mia_patient_n_members"] > 0 and results[row]["mia_patient_n_nonmembers"] > 0
    assert results["soft"]["artifact_leaks"] == 0.0 and results["hard"]["artifact_leaks"] == 0.0
    assert "real_best_epoch" in results["real"]
    # Chance for the membership flag: the larger of the independent-patch and the patient-permutation null.
    for name in ("soft", "hard"):
        r = results[name]
        n_in, n_out = r["mia_patch_n_members"], r["mia_patch_n_nonmembers"]
        independent = np.sqrt((n_in + n_out + 1) / (12.0 * n_in * n_out))
        assert r["mia_auc_null_sd_patches"] == pytest.approx(independent)
        assert r["mia_auc_null_sd"] == pytest.approx(max(independent, r["mia_patch_best_null_sd"]))
        flagged = r["mia_patch_best_auc"] >= 0.6 and r["mia_patch_best_auc"] - 0.5 > 3 * r["mia_auc_null_sd"]
        assert r["membership_flagged"] == float(flagged)

    for name in AUDIT_FILES:
        assert (out / name).is_file(), name
    report = (out / "audit.md").read_text()
    assert "| soft | 6 | pixel NCC |" in report and "## Membership inference" in report and "17%" in report
    assert "have no patient ids" not in report
    assert "- **soft**: flagged: 1 of 6 distilled images" in report
    assert "## Sample sizes" in report and f"excluded: {n_irr} by class" in report
    # no patch positions here: the text check did not run, and the report says which corners it would search
    assert "the configured text corners, top-left, bottom-left, overlap none or all" in report
    verdicts = json.loads((out / "audit.json").read_text())["verdicts"]
    assert verdicts["soft"].startswith("flagged") and not verdicts["hard"].startswith("flagged")
    payload = json.loads((out / "audit.json").read_text())
    assert payload["results"]["soft"]["ncc_nearest_max"] > 0.999
    # what the numbers are of, by content: the sets, the patch store and the real-data network it trained
    assert payload["set_sha256"] == {"soft": set_digest(soft), "hard": set_digest(hard)}
    assert payload["data_source_hash"] == dm.source_hash()
    assert re.fullmatch("[0-9a-f]{64}", payload["reference_sha256"])  # a SHA-256 of the network it trained
    # Audit numbers reach the CSV logger ...
    metrics = list((tmp_path / "out" / "logs").rglob("metrics.csv"))
    assert metrics and "audit/soft/mia_loss_auc" in metrics[0].read_text()
    # ... and no patient id reaches any file the run wrote (report, JSON, CSV, logs, config).
    assert PID_PREFIX.lower().encode() not in all_bytes(tmp_path / "out").lower()


def test_the_report_names_every_text_corner_searched(compose_cfg):
    """audit.md names each corner of ``audit.text.corner`` (a list, or one name) that was searched."""
    from gastrodistill.anonymity.report import text_region_lines
    from gastrodistill.anonymity.text_check import TextRegionReport

    rng = np.random.default_rng(0)
    report = TextRegionReport(
        sets={"soft": rng.uniform(0, 0.5, 6)},
        ordinary=rng.uniform(0, 0.6, 50),
        text=rng.uniform(0.7, 1, 20),
        n_text_patches=37,
    )
    results = {"soft": report.summary("soft")}
    for override, named in (
        ([], "top-left, bottom-left"),
        (["audit.text.corner=bottom-right"], "bottom-right"),
        (["audit.text.corner=[top-right,bottom-left]"], "top-right, bottom-left"),
    ):
        tcfg = compose_cfg(override).audit.text
        lines = text_region_lines(tcfg, report, results, ["soft"])
        assert lines[0].startswith(
            f"Text corners searched: {named} (box [0.12, 0.6] of the image at each): 37 "
        ), lines[0]
        assert lines[-1].startswith("| soft |")
        assert (
            f"configured text corners, {named}, overlap"
            in text_region_lines(tcfg, None, results, ["soft"])[0]
        )


def test_run_audit_needs_a_set(tmp_path, compose_cfg, dm):
    with pytest.raises(AuditConfigError, match="at least one distilled set"):
        run_audit(compose_cfg(FAST), dm, {}, tmp_path / "a")


@pytest.mark.parametrize("name", ["real", "control_copy", "control_noisy", "control_overfit"])
def test_a_set_named_like_one_of_the_audits_rows_is_refused_before_anything_is_written(
    tmp_path, compose_cfg, dm, name
):
    """``{**queries, **controls}`` replaced a set named ``control_copy`` by the control's images, and a set
    named ``real`` lost its nearest-patch numbers and ended in a KeyError after audit.json was written."""
    with pytest.raises(EvaluationConfigError, match="the anonymity audit's own rows"):
        run_audit(compose_cfg(FAST), dm, {name: noise_set(dm, steps=1, ipc=1, seed=1)}, tmp_path / "a")
    assert not (tmp_path / "a").exists()


def test_missed_controls_make_the_audit_say_it_cannot_certify(tmp_path, compose_cfg):
    """Noise so strong that the noisy copies look like nobody: the audit must refuse to pass anything."""
    cfg = compose_cfg([*FAST, "audit.controls.noise_std=2.0", "audit.artifact.write=false"])
    dm = make_dm(patients=(16, 4, 16), per_patient=8)
    out = tmp_path / "out" / "audit"
    results = run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, out)
    assert results["control_copy"]["frac_flagged"] == 1.0
    assert results["control_noisy"]["frac_flagged"] < 0.9
    assert results["hard"]["controls_certified"] == 0.0 and results["hard"]["frac_flagged"] == 0.0
    report = (out / "audit.md").read_text()
    assert "**This audit cannot certify anonymity on these data**" in report
    assert "- **hard**: not certified: the audit cannot certify anonymity" in report
    # The overfitted control (by default on half the pool's training patients, all their pool patches) is
    # reported with its counts at both levels.
    ctl, pool = results["control_overfit"], results["real"]
    half = round(pool["mia_patient_n_members"] / 2)
    assert half >= 2 and ctl["mia_patient_n_members"] == half
    assert 0 < ctl["mia_patch_n_members"] < pool["mia_patch_n_members"]
    assert ctl["mia_patch_n_nonmembers"] == pool["mia_patch_n_nonmembers"]
    assert (
        f"on the pool patches of {half} of its {int(pool['mia_patient_n_members'])} training patients "
        f"({int(ctl['mia_patch_n_members'])} patches)" in report
    )


def test_a_misspelt_excluded_class_is_refused_before_any_network_trains(
    tmp_path, compose_cfg, dm, monkeypatch
):
    """`exclude_classes=[irrelevent]` silently kept the irrelevant class in the nearest search; a name far
    from every class (the default's `irrelevant` on data without it) still excludes nothing."""
    from gastrodistill.anonymity import audit
    from gastrodistill.anonymity.audit import AuditConfigError, excluded_classes

    def no_training(*args, **kwargs):
        raise AssertionError("a network trained before the refusal")

    monkeypatch.setattr(audit, "train_reference_network", no_training)
    cfg = compose_cfg([*FAST, "audit.nearest.informative.exclude_classes=[irrelevent]"])
    with pytest.raises(
        AuditConfigError, match="names 'irrelevent', not a class of the data .*did you mean 'irrelevant'"
    ):
        run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, tmp_path / "a")
    assert not (tmp_path / "a" / "audit.json").exists()
    far = compose_cfg([*FAST, "audit.nearest.informative.exclude_classes=[nosuchclass,irrelevant]"])
    assert excluded_classes(far, dm) == ["irrelevant"]


def test_other_false_positive_rates_add_columns_beside_the_reports_own(tmp_path, compose_cfg):
    """`audit.membership.fprs=[]` (or rates without 0.1 % and 1 %) ended in a KeyError in the report after
    the whole audit; the rates the report and the overfitted control read are always measured."""
    dm = make_dm(patients=(16, 4, 16), per_patient=8)
    for fprs, extra in (("[]", None), ("[0.05]", "tpr_at_5pct")):
        cfg = compose_cfg([*FAST, f"audit.membership.fprs={fprs}", "audit.artifact.write=false"])
        out = tmp_path / f"audit{len(fprs)}"
        results = run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, out)
        keys = set(results["hard"])
        assert {"mia_patch_loss_tpr_at_0p1pct", "mia_patch_loss_tpr_at_1pct"} <= keys
        assert extra is None or f"mia_patch_loss_{extra}" in keys
        assert (out / "audit.md").is_file() and (out / "audit.json").is_file()


def test_null_permutations_is_checked_before_any_network_trains(tmp_path, compose_cfg, dm):
    from gastrodistill.anonymity.audit import AuditConfigError

    for bad in ("1", "-3", "null", "abc", "2.5"):
        cfg = compose_cfg([*FAST, f"audit.membership.null_permutations={bad}"])
        with pytest.raises(AuditConfigError, match="audit.membership.null_permutations must be 0"):
            run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, tmp_path / bad)
        assert not (tmp_path / bad / "audit.json").exists()


def test_the_attacked_networks_replay_as_the_evaluation_does(compose_cfg):
    """With ``eval.replay_augment`` set, the audit's target networks are the evaluation's replays: the
    same augmented trajectory for the same generator (and not the exact replay)."""
    from gastrodistill.anonymity.audit import distilled_networks
    from gastrodistill.evaluation.fresh_training import train_on_distilled
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.utils.seeding import torch_generator

    aug = "{_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 2}"
    cfg = compose_cfg([*FAST, f"eval.replay_augment={aug}"])
    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    ds = noise_set(dm, steps=2, ipc=1, seed=4)
    (net,) = distilled_networks(cfg, dm, ds, "soft", 1, "replay")
    spec = net_spec(cfg, "same", dm)
    gen = lambda: torch_generator(int(cfg.seed), "audit", "mia", "soft", "replay", 0)  # noqa: E731
    augmented = train_on_distilled(ds, spec, "replay", gen(), None, cfg.eval.replay_augment)
    exact = train_on_distilled(ds, spec, "replay", gen())
    x = torch.as_tensor(dm.load_split("test", list(range(4)))[0])
    with torch.no_grad():
        assert torch.equal(net(x), augmented.eval()(x))
        assert not torch.allclose(net(x), exact.eval()(x))


def test_a_report_on_data_without_patients_says_what_its_patients_are(tmp_path, compose_cfg):
    """Class-folder or npz data have no patient ids; the report spoke of patients and training patches
    all the same (a newcomer found it confusing), so it says first that each image is its own patient."""
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    dm.patient_ids = lambda split: None  # as the collections' data modules answer
    out = tmp_path / "audit"
    run_audit(compose_cfg(FAST), dm, {"soft": noise_set(dm, steps=1, ipc=1, seed=1)}, out)
    report = (out / "audit.md").read_text()
    assert report.splitlines()[2].startswith("These data have no patient ids: below, each image counts as")
    assert "a different sample (the data have no patients)" in report


def test_the_attacked_networks_have_the_architecture_the_set_records(compose_cfg):
    """A set distilled on another network than ``model.*`` is attacked on its own architecture, as the
    evaluation's ``same`` row trains it; a set that records none falls back to ``model.*``."""
    from gastrodistill.anonymity.audit import distilled_networks
    from gastrodistill.models import ConvNet, LeNet

    cfg = compose_cfg(FAST)  # model=lenet
    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    ds = noise_set(dm, steps=2, ipc=1, seed=4)
    (plain,) = distilled_networks(cfg, dm, ds, "soft", 1, "replay")
    assert isinstance(plain, LeNet)
    ds.model_config = {"_target_": "gastrodistill.models.ConvNet", "width": 6, "depth": 1, "norm": "none"}
    (net,) = distilled_networks(cfg, dm, ds, "soft", 1, "replay")
    assert isinstance(net, ConvNet)
    assert next(net.parameters()).shape[0] == 6


def test_a_set_whose_recorded_model_cannot_be_built_is_refused_before_any_network_trains(
    tmp_path, compose_cfg, monkeypatch
):
    """The audit builds each set's own architecture; one its data cannot build (a keyword this version's
    network does not take) is refused by name before the reference network or anything else trains."""
    import gastrodistill.anonymity.audit as audit

    cfg = compose_cfg(FAST)
    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    ds = noise_set(dm, steps=2, ipc=1, seed=4)
    ds.model_config = {"_target_": "gastrodistill.models.ConvNet", "width": 6, "old_kwarg": 1}

    def no_training(*args, **kwargs):
        raise AssertionError("a network trained before the set was checked")

    monkeypatch.setattr(audit, "train_reference_network", no_training)
    with pytest.raises(AuditConfigError, match="audited set 'soft': the model it records .*old_kwarg"):
        run_audit(cfg, dm, {"soft": ds}, tmp_path / "audit")
    assert not (tmp_path / "audit" / "audit.json").exists()


def test_a_set_of_another_architecture_than_model_is_named_in_the_report(tmp_path, compose_cfg, caplog):
    """The shadows and the overfitted control are ``model.*`` networks: a set distilled on another
    architecture is attacked on its own, and the report says that its calibration is another
    architecture's (a set of ``model.*``'s own, filter aside, gets no such line; audit.json is unchanged)."""
    from omegaconf import OmegaConf

    from gastrodistill.anonymity.audit import architecture_notes

    cfg = compose_cfg(FAST)  # model=lenet
    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    same = noise_set(dm, steps=2, ipc=1, seed=4)
    same.model_config = {**OmegaConf.to_container(cfg.model), "zca_kernel": [[[1.0]]]}
    other = noise_set(dm, steps=2, ipc=1, seed=5)
    other.model_config = {"_target_": "gastrodistill.models.ConvNet", "width": 6, "depth": 1}
    assert architecture_notes(cfg, {"soft": same}) == []
    (note,) = architecture_notes(cfg, {"soft": same, "hard": other})
    assert note.startswith("set 'hard' was distilled on convnet (width 6, depth 1), not on model.* (lenet)")
    out = tmp_path / "audit"
    with caplog.at_level("WARNING", logger="gastrodistill.anonymity.audit"):
        run_audit(cfg, dm, {"hard": other}, out)
    assert f"- Architecture: {note}." in (out / "audit.md").read_text()
    assert "distilled on convnet" in caplog.text
    assert "distilled on" not in (out / "audit.json").read_text()


def _stop_at_closest_pairs(monkeypatch):
    """Ctrl-C in the audit's third figure, after the similarity histograms and the ROC figure are written."""
    from gastrodistill.anonymity import figures

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(figures, "plot_closest_pairs", stop)


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_an_audit_stopped_after_writing_some_files_leaves_no_audit_folder(tmp_path, compose_cfg, monkeypatch):
    """Ctrl-C (or SIGTERM, which the commands turn into it) as the audit wrote its figures left
    ``audit/similarity_histograms.png`` and ``membership_roc.png`` without ``audit.md`` or ``audit.json`` (a
    newcomer's finding): the audit's files now appear together, in a staging folder renamed into place."""
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    out = tmp_path / "out" / "audit"
    _stop_at_closest_pairs(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_audit(compose_cfg(FAST), dm, {"soft": noise_set(dm, steps=1, ipc=1, seed=1)}, out)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir() if p.name != "logs"] == []  # no staging folder either


def test_an_audit_stopped_midway_leaves_the_earlier_finished_audit_as_it_was(
    tmp_path, compose_cfg, monkeypatch
):
    """A re-run of the audit into a folder holding a finished audit, stopped as it wrote its figures, had
    replaced two of the earlier audit's figures beside its report and audit.json (which later stages join):
    the earlier audit now stays byte for byte, and a finished re-run replaces it with its own files only."""
    import json

    cfg = compose_cfg(FAST)
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    out = tmp_path / "out" / "audit"
    run_audit(cfg, dm, {"soft": noise_set(dm, steps=1, ipc=1, seed=1)}, out)
    before, beside = _tree(out), sorted(p.name for p in out.parent.iterdir())
    assert set(before) == set(AUDIT_FILES)
    hard = noise_set(dm, steps=1, ipc=2, seed=2)
    with monkeypatch.context() as m:
        _stop_at_closest_pairs(m)
        with pytest.raises(KeyboardInterrupt):
            run_audit(cfg, dm, {"hard": hard}, out)
    assert _tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == beside
    run_audit(cfg, dm, {"hard": hard}, out)
    after = _tree(out)
    assert set(after) == set(before) and after["audit.json"] != before["audit.json"]
    assert json.loads(after["audit.json"])["set_sha256"] == {"hard": set_digest(hard)}
    assert sorted(p.name for p in out.parent.iterdir()) == beside


def test_a_failing_audit_ends_its_wandb_run_with_exit_code_1(tmp_path, compose_cfg, dm, monkeypatch):
    """A sweep's broken audit was recorded in W&B as finished (exit code 0)."""
    from _wandb_run_file import exit_codes

    from gastrodistill.anonymity import audit

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))

    def broken(*args, **kwargs):
        raise RuntimeError("the membership attack broke")

    monkeypatch.setattr(audit, "_membership", broken)
    cfg = compose_cfg([*FAST, "logger=default"])
    with pytest.raises(RuntimeError, match="the membership attack broke"):
        run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, tmp_path / "out" / "audit")
    (run_file,) = (tmp_path / "out" / "logs").rglob("*.wandb")
    assert exit_codes(run_file) == [1]
