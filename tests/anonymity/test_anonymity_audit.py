"""The audit stage end to end on a small patient data set: report, figures, numbers, no identifiers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from _anon_data import FAST_AUDIT, PID_PREFIX, all_bytes, make_dm, noise_set

from gastrodistill.anonymity.audit import AuditConfigError, run_audit
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.record_settings import set_digest

#: A training patch of a relevant class (the audit searches informative patches only).
COPIED = 41

FAST = FAST_AUDIT


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


# ---- mutation review: the audit's own rules and plumbing, each against what its docs say --------------
def test_realfit_is_the_recipes_loop_with_its_overrides_written_out(compose_cfg):
    """``RealFit(epochs, lr, optimizer, batch_size)``: SGD with the recipe's momentum, the given lr and batch
    size, ``epochs`` shuffled passes by the generator, gradients cleared each step, the network returned in
    eval mode. Kills: an override ignored, one epoch short, no ``zero_grad``, a network left in train mode."""
    import torch.nn.functional as F

    from gastrodistill.anonymity.audit import RealFit
    from gastrodistill.evaluation.networks import net_spec

    cfg = compose_cfg(["model=lenet", "eval.baselines.real.precision=32-true"])  # recipe: adam, lr 1e-3, 128
    dm = make_dm(patients=(4, 1, 1), per_patient=6)
    x, y = dm.load_split("train")
    net = RealFit(cfg, dm, epochs=2, lr=0.05, optimizer="sgd", batch_size=8)(
        x, y, torch.Generator().manual_seed(0)
    )
    assert not net.training

    g = torch.Generator().manual_seed(0)
    ref = net_spec(cfg, "same", dm).build(g)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=float(cfg.eval.baselines.real.momentum))
    for _ in range(2):
        order = torch.randperm(len(x), generator=g)
        for start in range(0, len(x), 8):
            idx = order[start : start + 8]
            opt.zero_grad()
            F.cross_entropy(ref(x[idx]), y[idx]).backward()
            opt.step()
    for (name, got), want in zip(net.state_dict().items(), ref.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=name)


def test_the_reference_network_trains_for_audit_real_epochs(compose_cfg, monkeypatch):
    """``audit.real_epochs`` overrides the recipe's epochs; null keeps them; ``audit.progress`` reaches
    the training's bar. Kills: the override dropped."""
    import gastrodistill.evaluation.run as run
    from gastrodistill.anonymity.audit import train_reference_network

    seen = []
    monkeypatch.setattr(
        run,
        "train_full_network",
        lambda cfg, dm, parts, epochs=None, progress=False: seen.append((parts, epochs, progress)),
    )
    train_reference_network(compose_cfg(["audit.real_epochs=3"]), None)
    train_reference_network(compose_cfg(["audit.progress=false"]), None)
    assert seen == [(("audit", "real-network"), 3, True), (("audit", "real-network"), None, False)]


def test_a_sets_attacked_networks_are_seeded_by_their_index_and_in_eval_mode(compose_cfg):
    """Network i of ``distilled_networks`` is the replay with the generator ``(seed, 'audit', 'mia', name,
    schedule, i)``, in eval mode. Kills: every network seeded as network 0, one network only, train mode."""
    from gastrodistill.anonymity.audit import distilled_networks
    from gastrodistill.evaluation.fresh_training import train_on_distilled
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.utils.seeding import torch_generator

    cfg = compose_cfg(FAST)
    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    ds = noise_set(dm, steps=2, ipc=1, seed=4)
    nets = distilled_networks(cfg, dm, ds, "soft", 2, "replay")
    assert len(nets) == 2 and not any(n.training for n in nets)
    x = torch.as_tensor(dm.load_split("test", list(range(4)))[0])
    spec = net_spec(cfg, "same", dm)
    with torch.no_grad():
        for i, net in enumerate(nets):
            gen = torch_generator(int(cfg.seed), "audit", "mia", "soft", "replay", i)
            assert torch.equal(net(x), train_on_distilled(ds, spec, "replay", gen).eval()(x))
        assert not torch.equal(nets[0](x), nets[1](x))


def test_control_images_are_distinct_patches_and_noise_of_the_given_intensity_std():
    """``noise_std`` is in [0, 1] intensity units: the noisy copy minus the copy, times the data's std,
    has that standard deviation; the copies are distinct searched patches, at most as many as searched.
    Kills: noise in normalised units, patches drawn with replacement."""
    from gastrodistill.anonymity.audit import control_images

    dm = make_dm(patients=(6, 2, 2), per_patient=4)
    searched = np.arange(3, 23)
    images, idx = control_images(dm, searched, size=20, noise_std=0.05, seed=0)
    np.testing.assert_array_equal(idx, searched)  # all 20 of them, each once
    assert torch.equal(images["control_copy"], dm.load_split("train", idx.tolist())[0])
    intensity = (images["control_noisy"] - images["control_copy"]) * float(np.asarray(dm.std).ravel()[0])
    assert float(intensity.std()) == pytest.approx(0.05, rel=0.05)  # 5120 pixels: relative SE 1 %
    _, fewer = control_images(dm, searched[:5], size=20, noise_std=0.05, seed=0)
    np.testing.assert_array_equal(fewer, searched[:5])


def test_the_informative_test_patches_follow_the_same_rule_as_the_training_ones(compose_cfg):
    """``informative_selection(split='test')`` selects among the test patches. Kills: the split ignored."""
    from gastrodistill.anonymity.audit import informative_selection
    from gastrodistill.anonymity.nearest import select_informative

    cfg = compose_cfg(FAST)
    dm = make_dm(patients=(6, 2, 5), per_patient=4)
    got = informative_selection(cfg, dm, split="test")
    want = select_informative(
        dm, ["non-gastritis", "gastritis"], float(cfg.audit.nearest.informative.min_texture), split="test"
    )
    np.testing.assert_array_equal(got.indices, want.indices)
    assert set(dm.labels("test")[got.indices]) == {1, 2}


def _identity_file(tmp_path, **changes):
    from gastrodistill.anonymity.audit import audit_identity  # noqa: F401 (the keys written below)

    payload = {
        "results": {"soft": {"mia_loss_auc": 0.5}, "real": {"mia_loss_auc": 0.6}},
        "set_sha256": {"soft": "a" * 64},
        "data_source_hash": "d" * 16,
        "reference_sha256": "r" * 64,
        **changes,
    }
    path = tmp_path / "audit.json"
    path.write_text(json.dumps(payload))
    return path


def test_saved_audit_results_join_only_an_audit_of_these_sets_and_data(tmp_path, dm):
    """``saved_audit_results``: every row for the same sets, patch store and network; no ``real`` row for
    another network or none; None for other data, a damaged file, rows that are not mappings. Kills: the
    data hash not compared, the real row kept without a network, the row check or ValueError dropped."""
    from gastrodistill.anonymity.audit import audit_identity, saved_audit_results

    identity = {"set_sha256": {"soft": "a" * 64}, "data_source_hash": "d" * 16, "reference_sha256": "r" * 64}
    assert set(saved_audit_results(_identity_file(tmp_path), identity)) == {"soft", "real"}
    assert set(saved_audit_results(_identity_file(tmp_path), {**identity, "reference_sha256": "x" * 64})) == {
        "soft"
    }
    assert set(
        saved_audit_results(
            _identity_file(tmp_path, reference_sha256=None), {**identity, "reference_sha256": None}
        )
    ) == {"soft"}
    assert saved_audit_results(_identity_file(tmp_path, data_source_hash="e" * 16), identity) is None
    assert saved_audit_results(_identity_file(tmp_path, results={"soft": [0.5]}), identity) is None
    (tmp_path / "damaged.json").write_text('{"results": ')
    assert saved_audit_results(tmp_path / "damaged.json", identity) is None
    ident = audit_identity(dm, {}, None)
    assert ident == {"set_sha256": {}, "data_source_hash": dm.source_hash(), "reference_sha256": None}


def _edit_membership(monkeypatch, edits):
    """``run_audit``'s membership figures as measured, then ``edits`` ``{row: {key: value}}`` laid over them:
    the audit's rules read at their boundaries."""
    from gastrodistill.anonymity import audit

    measured = audit._membership

    def edited(*args, **kwargs):
        mia, summary = measured(*args, **kwargs)
        for row, values in edits.items():
            summary[row].update(values)
        return mia, summary

    monkeypatch.setattr(audit, "_membership", edited)


#: A small audit whose controls are all flagged (noise 1e-6: the noisy copy is all but the copy).
SMALL = [
    *FAST,
    "audit.controls.noise_std=1e-6",
    "audit.controls.required_noisy=1.0",
    "audit.artifact.write=false",
]


@pytest.mark.parametrize(
    ("control", "detected"),
    [
        ({"auc": 0.8, "tpr_at_1pct": float("nan")}, True),  # the AUC at its bar
        ({"auc": 0.79, "tpr_at_1pct": 0.1, "tpr_at_0p1pct": 0.0}, True),  # the TPR at 1 % FPR at its bar
        ({"auc": 0.79, "tpr_at_1pct": 0.099, "tpr_at_0p1pct": 0.5}, False),  # both below (0.1 % not read)
    ],
)
def test_the_overfitted_control_is_detected_at_either_bar(
    tmp_path, compose_cfg, monkeypatch, control, detected
):
    """docs/anonymity.md: detected when the primary attack's patch AUC >= ``detect_auc`` (0.8) *or* its TPR
    at 1 % FPR >= ``detect_tpr_at_1pct`` (10 %; n/a does not count); every row records it, and a missed
    control makes every set *not certified*. Kills: > for >=, and for or, the TPR at 0.1 % read."""
    _edit_membership(monkeypatch, {"control_overfit": {f"mia_patch_best_{k}": v for k, v in control.items()}})
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    out = tmp_path / "audit"
    results = run_audit(compose_cfg(SMALL), dm, {"hard": noise_set(dm, steps=1, ipc=1, seed=2)}, out)
    for row in ("hard", "real", "control_copy", "control_noisy", "control_overfit"):
        assert results[row]["mia_control_detected"] == float(detected), row
        assert results[row]["controls_certified"] == 1.0, row
    verdict = json.loads((out / "audit.json").read_text())["verdicts"]["hard"]
    assert ("did not detect a network overfitted" in verdict) is not detected


def test_a_set_is_flagged_by_membership_at_flag_auc_and_three_chance_sds(tmp_path, compose_cfg, monkeypatch):
    """docs/anonymity.md: a set is flagged when its primary (``best``) patch AUC reaches ``flag_auc`` (0.6)
    *and* exceeds 0.5 by 3 null sd, the larger of the patches' Mann-Whitney sd and the patient-permutation
    one. Four sets at the rule's edges (1000 vs 1000 patches: independent sd 0.0129); the verdicts follow.
    Kills: > for >=, 2 sd for 3, or for and, the patient null ignored, LiRA read in place of ``best``."""
    many = {"mia_patch_n_members": 1000.0, "mia_patch_n_nonmembers": 1000.0, "mia_patch_lira_auc": 0.5}
    cases = {  # name: (best AUC, patient-permutation sd, flagged)
        "at_bar": (0.6, 0.01, True),
        "within_3sd": (0.7, 0.08, False),  # 0.2 is 2.5 sd
        "below_bar": (0.59, 0.01, False),
        "clear": (0.7, 0.01, True),
    }
    _edit_membership(
        monkeypatch,
        {
            n: {**many, "mia_patch_best_auc": auc, "mia_patch_best_null_sd": sd}
            for n, (auc, sd, _) in cases.items()
        },
    )
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    sets = {name: noise_set(dm, steps=1, ipc=1, seed=i) for i, name in enumerate(cases)}
    out = tmp_path / "audit"
    results = run_audit(compose_cfg([*SMALL, "audit.membership.n_networks=1"]), dm, sets, out)
    independent = np.sqrt(2001 / (12.0 * 1000 * 1000))
    verdicts = json.loads((out / "audit.json").read_text())["verdicts"]
    for name, (_, sd, flagged) in cases.items():
        r = results[name]
        assert r["mia_auc_null_sd_patches"] == pytest.approx(independent)
        assert r["mia_auc_null_sd"] == pytest.approx(max(sd, independent))
        assert r["membership_flagged"] == float(flagged), name
        assert verdicts[name].startswith("flagged: the calibrated membership attack") is flagged, name


def test_the_audits_membership_rows_record_what_was_attacked(tmp_path, compose_cfg, monkeypatch):
    """Rows and settings as configured: the pool holds informative patches of both splits; the shadows train
    for ``shadow_epochs`` and the control by its own recipe on at most ``max_patches`` patches; one network
    for ``real`` and the control, ``n_networks`` per set; the pool's patients; the legacy keys are the patch
    level's; the ``real`` row has its patient-permutation null; the controls are as large as the largest
    set; ``max_real`` patches searched; an artifact given is scanned, one leak per private string found.
    Kills: pool of all patches, test side unrestricted, shadow epochs from the reference first, the control's
    epochs/batch size/patch cap ignored, network and patient counts mixed up, legacy keys of the patient
    level, no null for ``real``, controls of the smallest set, ``max_real`` or the artifact ignored, leaks
    counted as one, the control attacked on a set network's scores."""
    from _anon_data import PID_PREFIX, make_background_dm

    from gastrodistill.anonymity import audit
    from gastrodistill.anonymity.audit import distilled_network, informative_selection
    from gastrodistill.anonymity.membership import example_scores
    from gastrodistill.utils.seeding import torch_generator

    fits, pools, attacked = [], [], []

    class RecordingFit(audit.RealFit):
        def __init__(self, cfg, dm, epochs, **kwargs):
            fits.append((int(epochs), kwargs))
            super().__init__(cfg, dm, epochs, **kwargs)

    def recording_pool(*args, **kwargs):
        pools.append(audit_build_pool(*args, **kwargs))
        return pools[-1]

    def recording_attack(model, pool, shadows, is_member, **kwargs):
        attacked.append((np.asarray(is_member).copy(), kwargs.get("keep"), kwargs.get("example")))
        return audit_attack_target(model, pool, shadows, is_member, **kwargs)

    audit_build_pool, audit_attack_target, real_fit = audit.build_pool, audit.attack_target, audit.RealFit
    monkeypatch.setattr(audit, "attack_target", recording_attack)
    monkeypatch.setattr(audit, "RealFit", RecordingFit)
    monkeypatch.setattr(audit, "build_pool", recording_pool)
    base = make_background_dm(patients=(10, 3, 10), per_patient=6)
    (x_te, y_te) = base._splits["test"]
    y_te = np.where(y_te == 0, 1, y_te)  # uniform test patches of a relevant class: left out by texture only
    dm = type(base)({**base._splits, "test": (x_te, y_te)}, base._pids, batch_size=32, eval_batch_size=64)
    small, large = noise_set(dm, steps=1, ipc=1, seed=1), noise_set(dm, steps=2, ipc=2, seed=2)
    leaky = tmp_path / "given"
    leaky.mkdir()
    (leaky / "card.json").write_text(json.dumps({"note": f"{PID_PREFIX}-train-0001 {PID_PREFIX}-train-0002"}))
    cfg = compose_cfg(
        [
            *SMALL,
            "audit.membership.shadow_epochs=2",
            "audit.membership.overfit_control.epochs=3",
            "audit.membership.overfit_control.batch_size=5",
            "audit.membership.overfit_control.optimizer=sgd",
            "audit.membership.overfit_control.lr=0.05",
            "audit.membership.overfit_control.max_patches=4",
            "audit.nearest.max_real=20",
        ]
    )
    out = tmp_path / "audit"
    results = run_audit(cfg, dm, {"small": small, "large": large}, out, artifacts={"large": leaky})

    (pool,) = pools
    train_ok = set(informative_selection(cfg, dm).indices)
    test_ok = set(informative_selection(cfg, dm, split="test").indices)
    assert len(test_ok) < int((y_te != 0).sum())  # the texture rule leaves some test patches out
    x_tr_all, _ = dm.load_split("train")
    x_te_all, _ = dm.load_split("test")
    for side, x_all, ok in ((pool.is_train, x_tr_all, train_ok), (~pool.is_train, x_te_all, test_ok)):
        flat = x_all.reshape(len(x_all), -1)
        for patch in pool.x[side].reshape(int(side.sum()), -1):
            assert set(np.flatnonzero((flat == patch).all(1).numpy())) <= ok
    control_fit = (3, {"lr": 0.05, "optimizer": "sgd", "batch_size": 5})
    assert sorted(fits, key=str) == sorted([control_fit, (2, {})], key=str)

    real, ctl = results["real"], results["control_overfit"]
    assert ctl["mia_patch_n_members"] == 4
    assert (real["mia_n_networks"], ctl["mia_n_networks"], results["small"]["mia_n_networks"]) == (1, 1, 2)
    assert real["mia_pool_patients"] == real["mia_patient_n_members"] + real["mia_patient_n_nonmembers"]
    assert real["mia_pool_patients"] == pool.n_patients
    for row in ("real", "control_overfit", "small", "large"):
        for key in ("auc", "auc_std", "advantage"):
            assert results[row][f"mia_loss_{key}"] == results[row][f"mia_patch_loss_{key}"], (row, key)
    assert np.isfinite(real["mia_patch_best_null_sd"])
    assert (
        results["control_copy"]["n_images"] == results["control_noisy"]["n_images"] == len(large.images) == 12
    )
    assert json.loads((out / "audit.json").read_text())["n_real_searched"] == 20
    assert results["large"]["artifact_leaks"] == 2.0 and results["small"]["artifact_leaks"] == 0.0
    # the control is attacked on the scores of a network trained by its recipe on its members, each set's
    # networks on their own (real, control, then small 0, small 1, large 0, large 1)
    assert [keep is not None for _, keep, _ in attacked] == [False, True, False, False, False, False]
    members, _, control_scores = attacked[1]
    seed = int(cfg.seed)
    control = real_fit(cfg, dm, 3, lr=0.05, optimizer="sgd", batch_size=5)(
        pool.x[members], pool.y[members], torch_generator(seed, "audit", "overfit-control")
    )
    small_0 = distilled_network(cfg, dm, small, "small", "replay", 0)
    for (_, _, got), net in ((attacked[1], control), (attacked[2], small_0)):
        for got_part, want_part in zip(got, example_scores(net, pool.x, pool.y), strict=True):
            np.testing.assert_allclose(got_part, want_part, rtol=1e-5, atol=1e-6)


def test_an_image_flagged_in_any_flag_space_is_flagged():
    """docs/anonymity.md: an image is flagged when it reaches the reference quantile in *any* of
    ``nearest.flag_spaces``. Kills: flagged only when every space flags it."""
    from types import SimpleNamespace

    from gastrodistill.anonymity.audit import flagged_any

    by_space = {"ncc": np.array([True, False, False]), "ssim": np.array([False, True, False])}
    nearest = SimpleNamespace(flagged=lambda name, space: by_space[space])
    np.testing.assert_array_equal(flagged_any(nearest, "soft", ["ncc", "ssim"]), [True, True, False])
    np.testing.assert_array_equal(flagged_any(nearest, "soft", ["ssim"]), [False, True, False])


def test_the_reference_network_trains_under_a_bar_only_with_progress(dm, compose_cfg, capsys):
    """``train_full_network(progress=True)`` (the standalone audit's reference network, a minute or more
    on the CPU preset) trains under Lightning's bar; ``progress=False`` prints none, and trains the same
    network."""
    from torch.nn.utils import parameters_to_vector

    from gastrodistill.evaluation.run import train_full_network

    real = ["eval.baselines.real.batch_size=16", "eval.baselines.real.epochs=1"]
    cfg = compose_cfg(["model.width=8", "model.depth=2", *real])
    shown, _ = train_full_network(cfg, dm, ("bar",), progress=True)
    seen = capsys.readouterr()
    assert "Epoch 0" in seen.out + seen.err
    quiet, _ = train_full_network(cfg, dm, ("bar",), progress=False)
    seen = capsys.readouterr()
    assert "Epoch 0" not in seen.out + seen.err
    assert torch.equal(parameters_to_vector(shown.parameters()), parameters_to_vector(quiet.parameters()))
