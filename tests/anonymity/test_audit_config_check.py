"""The audit pre-flight: every shipped preset passes, each bad value is refused naming its key, and
``gastrodistill-reproduce`` refuses it before generating any data (not after the distillation and the
evaluation, where the audit used to read it)."""

from __future__ import annotations

import pytest
from _cli_runner import reproduce_refusal

from gastrodistill.anonymity.config_check import AuditConfigError, check_audit_config


@pytest.mark.parametrize(
    "overrides",
    [[], ["experiment=cpu"], ["experiment=tiny"], ["experiment=full"], ["data=npz", "data.path=x.npz"]],
)
def test_shipped_presets_pass(compose_cfg, overrides) -> None:
    check_audit_config(compose_cfg(overrides).audit)


@pytest.mark.parametrize(
    "override, message",
    [
        ("audit.closest_pairs=-1", "audit.closest_pairs must be an integer >= 0, got -1"),
        (
            "audit.membership.fprs=[0.0]",
            r"audit.membership.fprs entries must be false-positive rates in \(0, 1\)",
        ),
        (
            "audit.membership.fprs=[1.0]",
            r"audit.membership.fprs entries must be false-positive rates in \(0, 1\)",
        ),
        # Hydra keeps 'no' a string, which was true: the shareable artifacts were written anyway
        ("audit.artifact.write=no", "audit.artifact.write must be true or false, got 'no'"),
        ("audit.artifact.archive=maybe", "audit.artifact.archive must be true or false, got 'maybe'"),
        ("audit.artifact.grid_max=0", "audit.artifact.grid_max must be an integer >= 1, got 0"),
        ("audit.progress=no", "audit.progress must be true or false, got 'no'"),
        (
            "audit.receive.max_training_steps=0",
            "audit.receive.max_training_steps must be an integer >= 1 or null, got 0",
        ),
        (
            "audit.receive.max_network_parameters=1e9",
            "audit.receive.max_network_parameters must be an integer >= 1 or null, got 1000000000.0",
        ),
        ("audit.real_epochs=0", "audit.real_epochs must be an integer >= 1 or null, got 0"),
        ("audit.nearest.reference_size=abc", "audit.nearest.reference_size must be an integer >= 1"),
        ("audit.nearest.top_k=2.5", "audit.nearest.top_k must be an integer >= 1, got 2.5"),
        ("audit.nearest.max_real=0", "audit.nearest.max_real must be an integer >= 1 or null"),
        ("audit.nearest.feature_space=yes", "audit.nearest.feature_space must be true or false"),
        ("audit.nearest.flag_quantile=1.0", r"audit.nearest.flag_quantile must be a number in \(0, 1\)"),
        ("audit.nearest.flag_quantile=99", r"audit.nearest.flag_quantile must be a number in \(0, 1\)"),
        ("audit.nearest.duplicate_ncc=0", r"audit.nearest.duplicate_ncc must be a number in \(0, 1\]"),
        ("audit.nearest.flag_spaces=[ncc,pixel]", "audit.nearest.flag_spaces = .*; list some of ncc, ssim"),
        ("audit.nearest.flag_spaces=[]", "audit.nearest.flag_spaces = \\[\\]; list some of"),
        ("audit.nearest.informative.min_texture=-0.1", "audit.nearest.informative.min_texture must be"),
        ("audit.controls.size=0", "audit.controls.size must be an integer >= 1 or null"),
        ("audit.controls.noise_std=0", "audit.controls.noise_std must be a finite number > 0, got 0"),
        ("audit.controls.required_copy=1.5", r"audit.controls.required_copy must be a number in \[0, 1\]"),
        ("audit.membership.n_networks=0", "audit.membership.n_networks must be an integer >= 1"),
        ("audit.membership.schedule=replayed", "audit.membership.schedule = 'replayed'; use one of replay"),
        ("audit.membership.max_per_side=1", "audit.membership.max_per_side must be an integer >= 2"),
        ("audit.membership.shadows=3", "audit.membership.shadows must be an even integer >= 2"),
        (
            "audit.membership.shadow_epochs=-2",
            "audit.membership.shadow_epochs must be an integer >= 1 or null",
        ),
        ("audit.membership.primary=likelihood", "audit.membership.primary = 'likelihood'; use one of best"),
        ("audit.membership.fprs=[0.01,1.5]", r"audit.membership.fprs entries must be .* \(0, 1\), got 1.5"),
        ("audit.membership.flag_auc=0.4", r"audit.membership.flag_auc must be a number in \(0.5, 1\]"),
        ("audit.membership.null_permutations=1", "audit.membership.null_permutations must be 0"),
        ("audit.membership.overfit_control.epochs=0", "audit.membership.overfit_control.epochs must be"),
        *(
            (
                f"audit.membership.overfit_control.patients={bad}",
                r"audit.membership.overfit_control.patients must be an integer >= 1 \(patients\) or a "
                rf"fraction in \(0, 1\) of the pool's training patients, got {shown}",
            )
            for bad, shown in (
                ("0", "0"),
                ("1.0", "1.0"),
                ("1.5", "1.5"),
                ("-0.5", "-0.5"),
                ("half", "'half'"),
            )
        ),
        (
            "audit.membership.overfit_control.max_patches=0",
            "overfit_control.max_patches must be an integer >= 1",
        ),
        (
            "audit.membership.overfit_control.lr=-1",
            "audit.membership.overfit_control.lr must be a finite number > 0 or null",
        ),
        ("audit.membership.overfit_control.optimizer=rmsprop", "overfit_control.optimizer = 'rmsprop'"),
        ("audit.text.region_check=1", "audit.text.region_check must be true or false, got 1"),
        ("audit.text.corner=top", "audit.text.corner = 'top'; use one of top-left"),
        ("audit.text.corner=[]", r"audit.text.corner = \[\]; name at least one corner: use one of top-left"),
        (
            "audit.text.corner=[top-left,middle]",
            r"audit.text.corner = \['top-left', 'middle'\]; 'middle' is not a corner, use one of top-left, "
            r"top-right, bottom-left, bottom-right, or a list of them",
        ),
        ("audit.text.corner=3", "audit.text.corner = 3; use one of top-left, top-right"),
        ("audit.text.corner=null", "audit.text.corner = None; use one of top-left"),
        ("audit.text.corner=[top-left,1]", r"audit.text.corner = \['top-left', 1\]; 1 is not a corner"),
        ("audit.text.box=[0.1]", r"audit.text.box must be two fractions in \(0, 1\]"),
        ("audit.text.box=[0.1,2]", r"audit.text.box must be two fractions in \(0, 1\]"),
        ("audit.text.min_length=0", "audit.text.min_length must be an integer >= 1"),
        # each bound at its edge, and keys no other case reaches (mutation review of config_check.py)
        ("audit.nearest.top_k=0", "audit.nearest.top_k must be an integer >= 1, got 0"),
        ("audit.nearest.informative.min_texture=nan", "audit.nearest.informative.min_texture must be"),
        ("audit.membership.n_networks=null", "audit.membership.n_networks must be an integer >= 1, got None"),
        (
            "audit.membership.informative_only=maybe",
            "audit.membership.informative_only must be true or false",
        ),
        ("audit.membership.shadows=0", "audit.membership.shadows must be an even integer >= 2 .*, got 0"),
        (
            "audit.membership.shadow_epochs=0",
            "audit.membership.shadow_epochs must be an integer >= 1 or null",
        ),
        ("audit.membership.processes=0", "audit.membership.processes must be an integer >= 1 or null, got 0"),
        ("audit.membership.fprs=1.5", r"audit.membership.fprs entries must be .* \(0, 1\), got 1.5"),
        (
            "audit.membership.flag_auc=0.5",
            r"audit.membership.flag_auc must be a number in \(0.5, 1\], got 0.5",
        ),
        (
            "audit.membership.overfit_control.batch_size=0",
            "audit.membership.overfit_control.batch_size must be an integer >= 1, got 0",
        ),
        (
            "audit.membership.overfit_control.detect_auc=0.5",
            r"audit.membership.overfit_control.detect_auc must be a number in \(0.5, 1\], got 0.5",
        ),
        (
            "audit.membership.overfit_control.detect_tpr_at_1pct=0",
            r"audit.membership.overfit_control.detect_tpr_at_1pct must be a number in \(0, 1\], got 0",
        ),
        ("audit.controls.required_noisy=-0.1", r"audit.controls.required_noisy must be a number in \[0, 1\]"),
        ("audit.text.box=[0,0.5]", r"audit.text.box must be two fractions in \(0, 1\] .*, got \[0, 0.5\]"),
        ("audit.text.box=[0.1,0.2,0.3]", r"audit.text.box must be two fractions .*, got \[0.1, 0.2, 0.3\]"),
        ("audit.text.reference_size=0", "audit.text.reference_size must be an integer >= 1, got 0"),
        ("audit.text.max_dicom_files=0", "audit.text.max_dicom_files must be an integer >= 1 or null, got 0"),
        ("audit.receive.n_networks=0", "audit.receive.n_networks must be an integer >= 1, got 0"),
        ("audit.receive.schedule=fast", "audit.receive.schedule = 'fast'; use one of replay, standard"),
        (
            "audit.receive.standard_precision=16",
            r"audit.receive.standard_precision must be one of .*, got 16; or null for the card's$",
        ),
    ],
)
def test_bad_values_are_refused_with_their_key(compose_cfg, override, message) -> None:
    with pytest.raises(AuditConfigError, match=message):
        check_audit_config(compose_cfg(["experiment=tiny", override]).audit)


@pytest.mark.parametrize(
    "overrides",
    [
        ["audit.nearest.max_real=100", "audit.nearest.flag_spaces=[ncc]", "audit.controls.size=null"],
        ["audit.nearest.flag_spaces=[ncc,ssim,feature]", "audit.membership.primary=lira_offline"],
        ["audit.membership.null_permutations=0", "audit.membership.schedule=standard", "audit.real_epochs=3"],
        ["audit.membership.overfit_control.optimizer=sgd", "audit.membership.overfit_control.lr=0.01"],
        ["audit.membership.overfit_control.patients=3", "audit.membership.overfit_control.max_patches=128"],
        [
            "audit.membership.overfit_control.patients=0.25",
            "audit.membership.overfit_control.max_patches=null",
        ],
        ["audit.text.corner=bottom-right", "audit.text.box=[1,1]", "audit.controls.required_noisy=0"],
        ["audit.text.corner=[top-right]", "audit.text.box=[0.5,0.5]"],
        ["audit.text.corner=[top-left,bottom-left,bottom-right,top-right]"],
        ["audit.controls.noise_std=2.0", "audit.nearest.informative.min_texture=null"],
        ["audit.receive.max_network_parameters=null", "audit.receive.max_training_steps=5"],
        # the bounds' edges that are allowed, and the primary attack without calibration
        ["audit.closest_pairs=0", "audit.nearest.duplicate_ncc=1.0", "audit.membership.flag_auc=1.0"],
        [
            "audit.nearest.informative.min_texture=0",
            "audit.membership.max_per_side=2",
            "audit.membership.primary=loss",
        ],
        # one flag space or one rate alone: a list of one (the audit reads them so too)
        ["audit.nearest.flag_spaces=ssim", "audit.membership.fprs=0.05"],
    ],
)
def test_unusual_valid_values_pass(compose_cfg, overrides) -> None:
    check_audit_config(compose_cfg(["experiment=tiny", *overrides]).audit)


def test_feature_flags_need_the_feature_space(compose_cfg) -> None:
    cfg = compose_cfg(
        ["experiment=tiny", "audit.nearest.flag_spaces=[feature]", "audit.nearest.feature_space=false"]
    )
    with pytest.raises(AuditConfigError, match="set audit.nearest.feature_space=true or drop 'feature'"):
        check_audit_config(cfg.audit)


@pytest.mark.parametrize("override", ["audit.membership.primary=likelihood", "audit.text.corner=top"])
def test_reproduce_refuses_before_generating_anything(compose_cfg, tmp_path, override) -> None:
    error = reproduce_refusal(compose_cfg(["experiment=tiny", override]), tmp_path)
    assert any(isinstance(e, AuditConfigError) for e in (error, error.__cause__)), error


def test_text_corner_refusals_are_one_line_naming_key_value_and_corners(compose_cfg) -> None:
    """An empty list, an unknown name in a list and a non-string: each refused in one line that names
    ``audit.text.corner``, the value given and every allowed corner (the CLI prints it, no traceback)."""
    for override, value in (
        ("audit.text.corner=[]", "[]"),
        ("audit.text.corner=[top-left,middle]", "['top-left', 'middle']"),
        ("audit.text.corner=42", "42"),
    ):
        with pytest.raises(AuditConfigError) as info:
            check_audit_config(compose_cfg(["experiment=tiny", override]).audit)
        text = str(info.value)
        assert isinstance(info.value, ValueError) and "\n" not in text, override
        assert text.startswith(f"audit.text.corner = {value};"), text
        assert all(c in text for c in ("top-left", "top-right", "bottom-left", "bottom-right")), text
    # the shipped default lists both corners the synthetic generator stamps in, and passes
    cfg = compose_cfg([])
    assert list(cfg.audit.text.corner) == ["top-left", "bottom-left"]
    check_audit_config(cfg.audit)


@pytest.mark.parametrize(
    ("patients", "available", "expected"),
    [
        (0.5, 44, 22),
        (0.5, 45, 22),
        (0.5, 47, 24),
        (0.25, 10, 2),
        (0.01, 10, 1),
        (3, 44, 3),
        (3, 2, 2),
        (44, 44, 44),
    ],
)
def test_the_overfitted_controls_patients(patients, available, expected) -> None:
    """A fraction of the pool's training patients, rounded half to even and at least one, or a count
    capped at what the pool holds."""
    from gastrodistill.anonymity.audit import control_patients

    assert control_patients(patients, available) == expected


def test_a_single_flag_space_and_a_single_rate_run_in_the_audit_as_the_check_reads_them(
    compose_cfg, tmp_path
):
    """``audit.nearest.flag_spaces=ncc`` and ``audit.membership.fprs=0.05`` pass the check, which reads a
    name or a rate alone as a list of one; the audit read the name letter by letter ("['n', 'c', 'c'] were
    not measured") and failed on the rate ("'float' object is not iterable"), after the reference network
    had trained."""
    from _anon_data import make_dm, noise_set

    from gastrodistill.anonymity.audit import run_audit

    fast = [
        "model=lenet",
        "eval.baselines.real.epochs=1",
        "audit.membership.n_networks=1",
        "audit.nearest.reference_size=64",
        "audit.membership.shadows=2",
        "audit.membership.overfit_control.epochs=2",
        "audit.artifact.write=false",
    ]
    cfg = compose_cfg([*fast, "audit.nearest.flag_spaces=ncc", "audit.membership.fprs=0.05"])
    check_audit_config(cfg.audit)
    dm = make_dm(patients=(16, 4, 16), per_patient=2)
    results = run_audit(cfg, dm, {"hard": noise_set(dm, steps=1, ipc=2, seed=2)}, tmp_path / "audit")
    assert "mia_patch_loss_tpr_at_5pct" in results["hard"]
    assert "reference's 99% quantile in ncc: then" in (tmp_path / "audit" / "audit.md").read_text()
