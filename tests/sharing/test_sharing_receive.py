"""A receiving site trains from the artifact alone: same metrics as from the original set; CLIs end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _anon_data import CLASSES, make_dm, site_npz

from gastrodistill.evaluation.fresh_training import train_on_distilled
from gastrodistill.evaluation.run import build_context, evaluate_network, net_spec
from gastrodistill.sharing.artifact import ArtifactError, save_artifact
from gastrodistill.sharing.train_from_artifact import (
    NOISE_RULE,
    REPORTED,
    SiteAdapter,
    model_factory,
    train_from_artifact,
)
from gastrodistill.utils.seeding import torch_generator

FAST = [
    "model=lenet",
    "audit.receive.n_networks=2",
    "eval.patient.threshold_fallback=cv",
]  # 2 + 2 val patients


#: receive.md's note on a card without ``evaluation``.
NO_EVALUATION = (
    "The card publishes no evaluation: the set was published without its evaluation (an artifact written by "
    "gastrodistill-audit, or by a gastrodistill-reproduce run without the evaluate stage), so there is "
    "nothing to compare this site's figures with (the published column reads n/a)."
)


def test_round_trip_gives_the_same_metrics(tmp_path, compose_cfg, dm, soft_set, card_fields):
    cfg = compose_cfg(FAST)
    # The source site: fresh networks trained directly on the in-memory distilled set.
    spec, ctx = net_spec(cfg, "same", dm), build_context(cfg, dm)
    direct = []
    for i in range(2):
        net = train_on_distilled(
            soft_set, spec, "replay", torch_generator(int(cfg.seed), "receive", "replay", i)
        )
        direct.append(evaluate_network(net, ctx))
    compared = ("patch_accuracy", "patch_auc", "patient_hm", *(f"recall_{c}" for c in soft_set.class_names))
    published = {f"{m}_mean": float(np.mean([r[m] for r in direct])) for m in compared}
    published.update({f"{m}_std": float(np.std([r[m] for r in direct])) for m in compared})
    art = save_artifact(tmp_path / "soft", soft_set, {**card_fields, "evaluation": published}, archive=True)

    # The receiving site: only the archive.
    result = train_from_artifact(f"{art}.zip", cfg, dm, tmp_path / "site")
    for i, rec in enumerate(result["networks"]):
        for m in REPORTED:
            assert rec[m] == pytest.approx(float(direct[i][m]), abs=1e-12), (i, m)
    for m in compared:  # AUC: the figure npz and folder data lead with; per-class recall (imbalanced data)
        assert result["published"][m]["difference"] == pytest.approx(0.0, abs=1e-12)
        assert result["published"][m]["within_noise"]
    for c in soft_set.class_names:  # each class's recall, with the card's, in receive.md
        site = result["metrics"][f"recall_{c}_mean"]
        assert site == pytest.approx(np.mean([r[f"recall_{c}"] for r in direct]), abs=1e-12)
        assert f"| recall of {c} | {site:.3f} ± " in (tmp_path / "site" / "receive.md").read_text()
    saved = json.loads((tmp_path / "site" / "receive.json").read_text())
    assert saved["metrics"]["patch_accuracy_mean"] == pytest.approx(published["patch_accuracy_mean"])
    assert (tmp_path / "site" / "run_info.json").is_file() and "| patch_accuracy |" in (
        tmp_path / "site" / "receive.md"
    ).read_text()
    assert NOISE_RULE in (tmp_path / "site" / "receive.md").read_text()  # the column's rule, said
    assert NO_EVALUATION not in (tmp_path / "site" / "receive.md").read_text()
    assert saved["card_publishes_evaluation"] is True
    assert saved["site_image_size"] == saved["artifact_image_size"] == [16, 16]
    assert "resized" not in (tmp_path / "site" / "receive.md").read_text()

    # The card publishes the replay's figures: the standard schedule is not compared with them (it was).
    std = train_from_artifact(f"{art}.zip", cfg, dm, tmp_path / "site_std", n_networks=1, schedule="standard")
    assert std["published"] == {} and std["schedule"] == "standard"
    assert (
        "publishes the `replay` schedule's figures only" in (tmp_path / "site_std" / "receive.md").read_text()
    )


def test_a_card_without_evaluation_says_once_that_there_is_nothing_to_compare(
    tmp_path, compose_cfg, dm, soft_set, card_fields
):
    """An artifact written by a stand-alone gastrodistill-audit has no ``evaluation``: every row read
    ``| patch_accuracy | 0.267 ± 0.069 | n/a | |  |`` with no word why. The report (printed and
    receive.md) now says once that the card publishes none, and why."""
    from gastrodistill.sharing.train_from_artifact import render

    fields = {k: v for k, v in card_fields.items() if k != "evaluation"}
    art = save_artifact(tmp_path / "soft", soft_set, fields)
    result = train_from_artifact(art, compose_cfg(FAST), dm, tmp_path / "site", n_networks=1)
    text = (tmp_path / "site" / "receive.md").read_text()
    assert text == render(result)  # what the command prints
    assert text.count(NO_EVALUATION) == 1
    assert "| patch_accuracy | " in text and "| n/a | |  |" in text
    saved = json.loads((tmp_path / "site" / "receive.json").read_text())
    assert saved["card_publishes_evaluation"] is False and saved["published"] == {}
    standard = render({**result, "schedule": "standard"})  # said for either schedule, in place of the
    assert standard.count(NO_EVALUATION) == 1  # note that the card publishes the replay's only
    assert "schedule's figures only" not in standard


def test_site_patches_of_another_size_are_resized_and_the_report_says_so(
    tmp_path, compose_cfg, soft_set, card_fields
):
    art = save_artifact(tmp_path / "soft", soft_set, card_fields, archive=True)
    site = make_dm(seed=1, patients=(12, 4, 12), per_patient=6, size=24)  # 24 px patches, the artifact's 16
    result = train_from_artifact(f"{art}.zip", compose_cfg(FAST), site, tmp_path / "site", n_networks=1)
    assert result["site_image_size"] == [24, 24] and result["artifact_image_size"] == [16, 16]
    text = (tmp_path / "site" / "receive.md").read_text()
    assert "this site's patches are 24x24 px and the artifact's images 16x16 px" in text
    assert "resized to the artifact's size" in text and "data.storage_size=16" in text


@pytest.mark.parametrize(
    ("site", "says", "not_said"),
    [
        ([24, 24], ". Store the site's patches at 16 px (e.g. data.storage_size=16)", "aspect"),
        ([16, 24], "which changed their aspect ratio", "storage_size"),  # stretched, not only scaled
        ([4, 4], "enlarging them 4x: they hold less detail", "storage_size"),  # can't be stored larger
    ],
)
def test_the_resize_note_gives_advice_that_fits_the_sizes(site, says, not_said):
    """The note advised data.storage_size=16 for 16x24 px and 4x4 px site images too, where it cannot
    help (a breaker's finding): a stretch and an enlargement are now named as such."""
    from gastrodistill.sharing.train_from_artifact import _resize_note

    note = "".join(_resize_note({"site_image_size": site, "artifact_image_size": [16, 16]}))
    assert says in note and not_said not in note
    assert _resize_note({"site_image_size": [16, 16], "artifact_image_size": [16, 16]}) == []


def test_site_with_other_classes_or_untrusted_architecture_is_refused(
    tmp_path, compose_cfg, soft_set, card_fields
):
    art = save_artifact(tmp_path / "soft", soft_set, card_fields)
    other = make_dm(patients=(4, 2, 4), per_patient=3)
    other._class_names = other.class_names = list(reversed(CLASSES))
    with pytest.raises(ArtifactError, match="same classes in the same order") as info:
        train_from_artifact(art, compose_cfg(FAST), other)
    assert "other names" not in str(info.value)  # the same names in another order: no renaming advice
    assert "npz data: write the labels in the artifact's order" in str(info.value)  # class_names only renames
    listed = ",".join(f'"{c}"' for c in CLASSES)  # folder data: data.classes orders the folders (a breaker)
    assert f"folder data: 'data.classes=[{listed}]' reads the class folders in that order" in str(info.value)
    other._class_names = other.class_names = [c.upper() for c in reversed(CLASSES)]  # a case apart: a reorder
    with pytest.raises(ArtifactError, match="the same classes in another order"):
        train_from_artifact(art, compose_cfg(FAST), other)
    other._class_names = other.class_names = [str(i) for i in range(len(CLASSES))]  # an npz without names
    with pytest.raises(ArtifactError) as info:
        train_from_artifact(art, compose_cfg(FAST), other)
    listed = ",".join(f'"{c}"' for c in CLASSES)
    assert f"npz data: 'data.class_names=[{listed}]'" in str(info.value)  # quoted: names with spaces parse
    wide = make_dm(patients=(4, 2, 4), per_patient=3)
    wide.in_channels = 3
    with pytest.raises(ArtifactError) as info:
        train_from_artifact(art, compose_cfg(FAST), wide)
    assert "its networks take grayscale images, so convert the site's images to grayscale first" in str(
        info.value
    )
    with pytest.raises(
        ArtifactError, match="architecture._target_ 'os.system' is not one of the project's networks"
    ):
        model_factory({"architecture": {"_target_": "os.system", "command": "echo hi"}})


def test_site_adapter_maps_site_normalisation_to_the_artifact():
    seen = []
    probe = torch.nn.Module()
    probe.forward = lambda x: seen.append(x) or x.flatten(1)
    unit = torch.rand(3, 1, 8, 8)
    adapter = SiteAdapter(probe, [0.2], [0.5], [0.6], [0.1], (4, 4))
    adapter((unit - 0.2) / 0.5)
    expected = torch.nn.functional.interpolate(
        (unit - 0.6) / 0.1, size=(4, 4), mode="bilinear", antialias=True
    )
    torch.testing.assert_close(seen[0], expected, atol=1e-4, rtol=1e-5)


def test_audit_and_receive_command_lines(tmp_path, compose_cfg, soft_set):
    """gastrodistill-audit on a saved set writes the report and the artifact; the site trains from the zip."""
    from gastrodistill.cli.audit import run as audit_run
    from gastrodistill.cli.train_from_artifact import run as receive_main

    src = site_npz(tmp_path / "patches.npz")
    # the set is declared distilled from this data (audit/publish refuse a set of other normalisation)
    soft_set.mean, soft_set.std = list(src.mean), list(src.std)
    soft_set.save(tmp_path / "distilled" / "soft")
    data = ["data=npz", f"data.path={tmp_path / 'patches.npz'}"]
    cfg_overrides = [
        *FAST,
        *data,
        f"audit.sets={{soft: {tmp_path / 'distilled' / 'soft'}}}",
        "eval.baselines.real.epochs=1",
        "audit.membership.n_networks=1",
        "audit.nearest.reference_size=32",
        "audit.membership.max_per_side=60",
    ]
    cfg = compose_cfg(cfg_overrides)
    # The set was distilled with another recipe than this config's: its card would describe the wrong one
    # (the receiving site replays with the card's augmentation and standard schedule). Refused first.
    from gastrodistill.cli.audit import AuditInputError

    with pytest.raises(
        AuditInputError, match=r"audit.sets.soft was distilled with ipc=2, steps=2, epochs=1 but"
    ):
        audit_run(cfg)
    assert not (tmp_path / "out" / "audit").exists()
    cfg = compose_cfg([*cfg_overrides, "distill.ipc=2", "distill.steps=2", "distill.epochs=1"])
    results = audit_run(cfg)
    out = tmp_path / "out"
    assert results["soft"]["artifact_leaks"] == 0.0 and "mia_loss_auc" in results["real"]
    assert (out / "audit" / "audit.md").is_file() and (out / "artifacts" / "soft.zip").is_file()
    card = json.loads((out / "artifacts" / "soft" / "card.json").read_text())
    assert card["anonymity"]["mia_loss_auc"] == pytest.approx(results["soft"]["mia_loss_auc"])
    assert card["architecture"]["_target_"] == "gastrodistill.models.LeNet"

    site = receive_main(
        [
            "--artifact",
            str(out / "artifacts" / "soft.zip"),
            "--networks",
            "2",
            "--output",
            str(tmp_path / "site"),
            f"paths.root_dir={tmp_path}",
            *data,
        ]
    )
    accuracies = [r["patch_accuracy"] for r in site["networks"]]
    assert site["n_networks"] == len(accuracies) == 2
    assert site["metrics"]["patch_accuracy_mean"] == pytest.approx(np.mean(accuracies))
    assert site["metrics"]["patch_accuracy_std"] == pytest.approx(np.std(accuracies))  # population sd
    assert (tmp_path / "site" / "receive.json").is_file()

    # A report written into the artifact folder would make it unloadable: refused, the artifact intact.
    from gastrodistill.cli.errors import CommandError
    from gastrodistill.sharing.artifact import load_artifact

    folder = out / "artifacts" / "soft"
    for output in (folder, folder / "report"):
        with pytest.raises(CommandError, match="is inside the artifact"):
            receive_main(
                ["--artifact", str(folder), "--output", str(output), f"paths.root_dir={tmp_path}", *data]
            )
    load_artifact(folder)


def test_card_recipe_from_a_newer_version_or_with_a_bad_value_is_an_artifact_error():
    """The card's standard recipe becomes the schedule (its chosen lr and precision); unknown keys or a
    refused value are an ArtifactError naming them, not a TypeError from deep inside."""
    from gastrodistill.sharing.train_from_artifact import card_schedule

    card = {"training_recipe": {"standard": {"epochs": 7, "lr": 0.05, "precision": "bf16-mixed"}}}
    sched = card_schedule(card)
    assert (sched.epochs, sched.lr, sched.precision) == (7, 0.05, "bf16-mixed")
    from dataclasses import replace

    from gastrodistill.evaluation.fresh_training import StandardSchedule

    assert sched == replace(StandardSchedule(), epochs=7, lr=0.05, precision="bf16-mixed")  # the rest default
    assert card_schedule({}) == StandardSchedule()  # a card without a recipe: the defaults
    with pytest.raises(ArtifactError, match=r"\['warmup'\].*update gastrodistill"):
        card_schedule({"training_recipe": {"standard": {"lr": 0.05, "warmup": 3}}})
    with pytest.raises(ArtifactError, match="precision"):
        card_schedule({"training_recipe": {"standard": {"precision": "fp8"}}})


def test_a_card_augmentation_other_than_the_projects_dsa_is_refused():
    """An augmentation node on a received card is code to run: only gastrodistill's DSA is built, for the
    standard recipe and for the replay."""
    from gastrodistill.sharing.train_from_artifact import card_replay_augment, card_schedule

    dsa = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": False, "shift_px": 8}
    assert card_schedule({"training_recipe": {"standard": {"augment": dsa}}}).augment == dsa
    assert card_replay_augment({"training_recipe": {"replay_augment": dsa}}) == dsa
    assert card_replay_augment({}) is None
    evil = {"_target_": "os.system", "command": "echo hi"}
    with pytest.raises(ArtifactError, match="training_recipe.standard.augment .* refusing"):
        card_schedule({"training_recipe": {"standard": {"augment": evil}}})
    with pytest.raises(ArtifactError, match="training_recipe.replay_augment .* refusing"):
        card_replay_augment({"training_recipe": {"replay_augment": evil}})


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--networks", "-2"], "--networks: must be an integer >= 1, got -2"),
        (["--networks", "0"], "--networks: must be an integer >= 1, got 0"),
        (["--networks", "two"], "--networks: must be an integer >= 1, got 'two'"),
    ],
)
def test_receive_refuses_a_network_count_below_one(capsys, argv, needle):
    """Zero used to fall back silently to the default count and -2 wrote an empty report."""
    from gastrodistill.cli.train_from_artifact import main

    with pytest.raises(SystemExit) as info:
        main(["--artifact", "soft.zip", *argv])
    assert info.value.code == 2 and needle in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["experiment=tinyy"], "experiment=tinyy: the config group 'experiment' has no option 'tinyy'"),
        (["experiment=tiny", "eval.n_netwrks=2"], "no key 'eval.n_netwrks'; did you mean eval.n_networks"),
    ],
)
def test_receive_reports_overrides_that_do_not_compose_without_a_traceback(
    tmp_path, capsys, overrides, needle
):
    from gastrodistill.cli.train_from_artifact import main

    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(tmp_path / "soft.zip"), f"paths.root_dir={tmp_path}", *overrides])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.startswith("error: ") and needle in err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        # a count of 0 from the config wrote an empty report ("0 fresh networks") and exited 0
        (["audit.receive.n_networks=0"], "audit.receive.n_networks must be an integer >= 1, got 0"),
        # these were tracebacks
        (["audit.receive.schedule=replai"], "audit.receive.schedule = 'replai'; use one of replay, standard"),
        (["seed=abc"], "seed must be an integer, got 'abc'"),
        (
            ["audit.receive.standard_precision=fp8"],
            "audit.receive.standard_precision must be one of ['32-true', 'bf16-mixed'] (or 32, bf16), got "
            "'fp8'; or null for the card's",
        ),
        # and this one failed only after the networks had trained
        (["eval.threshold_source=test"], "eval.threshold_source = 'test'; use one of"),
    ],
)
def test_receive_checks_its_config_before_training(tmp_path, capsys, artifact_zip, overrides, needle):
    from gastrodistill.cli.train_from_artifact import main

    site = tmp_path / "site"
    with pytest.raises(SystemExit) as info:
        main(
            ["--artifact", str(artifact_zip), "--output", str(site), f"paths.root_dir={tmp_path}", *overrides]
        )
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.startswith("error: ") and needle in err
    assert not site.exists()


def test_receive_names_a_value_the_data_module_cannot_take(tmp_path, capsys, artifact_zip):
    """An argparse command gets the same one-line message for a bad constructor value as the Hydra ones."""
    from gastrodistill.cli.train_from_artifact import main

    argv = ["--artifact", str(artifact_zip), "--output", str(tmp_path / "site"), f"paths.root_dir={tmp_path}"]
    with pytest.raises(SystemExit) as info:
        # (data.storage_size=abc is now refused by the data's own size check, naming the key)
        main([*argv, "experiment=tiny", "data.mask_threshold=abc"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.startswith("error: cannot build data") and "check the values under data" in err


def test_receive_advises_a_wrong_data_root_as_a_receiving_site(tmp_path, capsys, artifact_zip):
    """A wrong data.root was answered with the data stage's advice, which offers gastrodistill-generate (the
    synthetic collection: the pipeline's own commands' data); a receiving site tests on its own data."""
    from gastrodistill.cli.train_from_artifact import main

    site, missing = tmp_path / "site", tmp_path / "xrays_typo"
    argv = ["--artifact", str(artifact_zip), "--output", str(site), f"paths.root_dir={tmp_path}"]
    with pytest.raises(SystemExit) as info:
        main([*argv, f"data.root={missing}"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.strip() == (
        f"error: data.root {missing} is not a folder; point data.root at this site's own data folder, the "
        "data the artifact's networks are tested on (gastrodistill-train-from-artifact --artifact soft.zip "
        "-- data.root=/site/xrays)"
    )
    assert "gastrodistill-generate" not in err and not site.exists()


def test_receive_refuses_an_output_that_is_a_file(tmp_path, capsys):
    from gastrodistill.cli.train_from_artifact import main

    (tmp_path / "afile").write_text("kept")
    with pytest.raises(SystemExit) as info:
        main(["--artifact", "soft.zip", "--output", str(tmp_path / "afile")])
    assert info.value.code == 1
    assert f"--output {tmp_path / 'afile'} is a file" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "kept"


def test_an_empty_validation_split_is_named(compose_cfg):
    """data.val_fraction=0 reached the evaluation (and a receiving site) as an empty argmax, not a message."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    with pytest.raises(EvaluationConfigError, match=r"the val split is empty; .*data.val_fraction > 0"):
        build_context(compose_cfg(FAST), make_dm(patients=(6, 0, 6), per_patient=3))


def test_receive_refuses_an_npz_saying_what_an_artifact_is(tmp_path, capsys):
    from gastrodistill.cli.train_from_artifact import main

    work = tmp_path / "work"
    np.savez(tmp_path / "digits.npz", train_images=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(tmp_path / "digits.npz"), f"paths.root_dir={work}"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(
        "error: digits.npz is a numpy array file, not an artifact; an artifact is the folder"
    )
    assert "pickle" not in err
    assert not work.exists()


def test_receive_refuses_a_distilled_set_saying_which_command_writes_its_artifact(tmp_path, capsys, soft_set):
    from gastrodistill.cli.train_from_artifact import main

    work, folder = tmp_path / "work", soft_set.save(tmp_path / "run" / "distill" / "soft")
    (folder / "config.yaml").write_text("seed: 0\n")
    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(folder), f"paths.root_dir={work}"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith(
        f"error: {folder} is a distilled set (the distill stage's output, with distilled.json)"
    )
    assert f"gastrodistill-audit experiment=<its experiment> +audit.sets.soft={folder} " in err
    assert "'stages=[...,artifact]' in the gastrodistill-reproduce run that distilled it" in err
    assert "unexpected file" not in err and not work.exists()


def test_two_sites_artifacts_of_one_name_keep_their_own_reports(tmp_path, soft_set, card_fields, monkeypatch):
    """Without --output the report went to receive/<artifact name>: a second hospital's `soft` replaced the
    first's. The default folder now carries the card's hash; the same artifact again reuses its folder."""
    from gastrodistill.cli.train_from_artifact import default_folder_name
    from gastrodistill.cli.train_from_artifact import run as receive_main

    site_npz(tmp_path / "patches.npz")
    first = save_artifact(tmp_path / "hospital_a" / "soft", soft_set, card_fields, archive=True)
    with torch.no_grad():
        soft_set.images.add_(0.01)
    second = save_artifact(tmp_path / "hospital_b" / "soft", soft_set, card_fields, archive=True)
    cards = [json.loads((a / "card.json").read_text())["card_sha256"] for a in (first, second)]
    assert cards[0] != cards[1]
    names = [default_folder_name(str(a.with_suffix(".zip"))) for a in (first, second)]
    assert names == [f"soft-{c[:12]}" for c in cards]
    assert default_folder_name(str(first)) == names[0]  # the folder and its zip: one artifact, one name
    monkeypatch.chdir(first)
    assert default_folder_name(".") == names[0]  # `--artifact .` in the folder: not "-<hash>"
    (tmp_path / "latest").symlink_to(first)
    assert default_folder_name(str(tmp_path / "latest")).startswith("latest-")  # a link keeps its name

    monkeypatch.chdir(tmp_path)
    common = [*FAST, "data=npz", f"data.path={tmp_path / 'patches.npz'}", f"paths.root_dir={tmp_path}"]
    for art in (first, second, first):
        receive_main(["--artifact", str(art.with_suffix(".zip")), "--networks", "1", *common])
    reports = sorted(tmp_path.glob("outputs/*/receive/*/receive.json"))
    assert [p.parent.name for p in reports] == sorted(names)
    for p in reports:
        assert json.loads(p.read_text())["artifact"]["card_sha256"][:12] == p.parent.name.split("-")[-1]
    # one artifact received on a second site's data writes beside the first report (before: replaced it)
    import shutil

    shutil.copy(tmp_path / "patches.npz", tmp_path / "other_site.npz")
    first_report = next(p.parent / "receive.md" for p in reports if p.parent.name == names[0])
    kept = first_report.read_bytes()
    other = [*FAST, "data=npz", f"data.path={tmp_path / 'other_site.npz'}", f"paths.root_dir={tmp_path}"]
    receive_main(["--artifact", str(first.with_suffix(".zip")), "--networks", "1", *other])
    folders = sorted(p.parent.name for p in tmp_path.glob("outputs/*/receive/*/receive.json"))
    assert folders == sorted([*names, f"{names[0]}-2"])
    assert first_report.read_bytes() == kept
    receive_main(["--artifact", str(first.with_suffix(".zip")), "--networks", "1", *other])  # same data again
    assert len(list(tmp_path.glob("outputs/*/receive/*/receive.json"))) == 3
    zca = "data.zca={_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 3}"  # not used on receiving
    receive_main(["--artifact", str(first.with_suffix(".zip")), "--networks", "1", *other, zca])
    assert len(list(tmp_path.glob("outputs/*/receive/*/receive.json"))) == 3


def _run_info(folder, stage):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("kept: 1\n")
    (folder / "run_info.json").write_text(json.dumps({"stage": stage}))
    return folder


@pytest.mark.parametrize(
    "case", ["empty", "another artifact", "evaluate run", "hydra run", "unreadable", "own config"]
)
def test_receive_refuses_an_output_it_would_damage(
    tmp_path, artifact_zip, soft_set, card_fields, capsys, case
):
    """--output "" wrote the report into the current folder; --output at another artifact's folder made it
    unloadable (only the received artifact was checked); --output at another command's run folder replaced
    its config.yaml and run_info.json, and at a project's own folder its config.yaml. Each is one line,
    exit 1, before anything is read or written."""
    from gastrodistill.cli.train_from_artifact import main

    work = tmp_path / "work"
    work.mkdir()
    if case == "empty":
        output = ""
    elif case == "another artifact":
        output = str(save_artifact(tmp_path / "other" / "soft", soft_set, card_fields) / "report")
    elif case == "evaluate run":
        output = str(_run_info(tmp_path / "run" / "eval", "evaluate"))
    elif case == "own config":
        output = str(tmp_path / "myproject")
        (tmp_path / "myproject").mkdir()
        (tmp_path / "myproject" / "config.yaml").write_text("notes: my own experiment settings\n")
    elif case == "hydra run":
        output = str(tmp_path / "run" / "eval")
        (tmp_path / "run" / "eval" / ".hydra").mkdir(parents=True)
    else:
        output = str(_run_info(tmp_path / "run" / "eval", "evaluate"))
        (tmp_path / "run" / "eval" / "run_info.json").write_text("{trunc")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    folders = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_dir()}
    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(artifact_zip), "--output", output, f"paths.root_dir={work}"])
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    expected = {
        "empty": "--output is empty; give a folder of its own",
        "another artifact": f"is inside the artifact {tmp_path / 'other' / 'soft'} (it holds card.json)",
        "evaluate run": "holds the run record of an earlier evaluate run (run_info.json, config.yaml)",
        "hydra run": "holds another command's run (.hydra/)",
        "unreadable": "holds the run record of another run",
        "own config": "holds config.yaml that no receive report wrote (no run_info.json of one beside it)",
    }[case]
    assert expected in err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == before
    # nothing made and removed there either (the write check ran first and touched the artifact's folder)
    assert {p: p.stat().st_mtime_ns for p in folders} == folders


def test_an_earlier_receive_reports_folder_may_be_written_again(tmp_path):
    from gastrodistill.cli.train_from_artifact import output_owner_problem

    assert output_owner_problem(_run_info(tmp_path / "site", "train-from-artifact")) is None
    assert output_owner_problem(tmp_path / "new") is None


def test_a_receive_report_never_writes_into_the_sites_data_folder(tmp_path):
    """A newcomer's --output at the site's data folder added config.yaml and run_info.json beside the
    data (and replaced the receive.md an earlier receive left there): the data folder, a folder inside it,
    and for a data file (an npz) the folder holding it are refused; a folder beside them is not."""
    from gastrodistill.cli.train_from_artifact import output_owner_problem

    data = tmp_path / "site data"
    (data / "images").mkdir(parents=True)
    npz = tmp_path / "npz" / "site.npz"
    npz.parent.mkdir()
    npz.write_bytes(b"x")
    for output, source in (
        (data, data),
        (data / "images", data),
        (data / "new" / "report", data),
        (npz.parent, npz),
    ):
        problem = output_owner_problem(output, str(source))
        assert problem is not None and "a receive report never writes beside the data" in problem, output
    assert output_owner_problem(tmp_path / "reports", str(data)) is None
    assert output_owner_problem(npz.parent / "sub", str(npz)) is None
    assert output_owner_problem(data, None) is None  # no data configured: nothing to compare


def test_networks_whose_learning_rates_make_their_outputs_nan_are_refused_not_reported(
    tmp_path, compose_cfg, dm, soft_set, card_fields
):
    """Learning rates of 1e6 (a resealed forgery) trained "finitely" into weights of ~1e11 whose test
    logits were NaN; receive.md showed them as ordinary figures (accuracy = the first class's share,
    sensitivity 1, specificity 0) and the command exited 0. Every network diverged: an ArtifactError (the
    command's one-line error), and no report."""
    from _resealing import retensor

    art = save_artifact(tmp_path / "soft", soft_set, card_fields)

    def huge_lrs(tensors):
        raw = torch.full_like(tensors["raw_lrs"], 1e6)
        return {**tensors, "raw_lrs": raw, "lrs": torch.nn.functional.softplus(raw)}

    retensor(art, huge_lrs)
    with pytest.raises(
        ArtifactError, match=r"all 2 networks trained from the artifact soft diverged"
    ) as info:
        train_from_artifact(art, compose_cfg(FAST), dm, tmp_path / "site")
    assert "test split are not finite" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "site").exists()


@pytest.mark.parametrize("how", ["loss", "outputs"])
def test_a_diverged_network_is_flagged_and_scored_as_the_evaluate_stage_scores_it(
    tmp_path, compose_cfg, dm, soft_set, card_fields, monkeypatch, how
):
    """One of two networks diverges, by a non-finite training loss or by finite weights whose test outputs
    are not finite: it is marked diverged in receive.json, named in receive.md, and scored as a network
    that learned nothing (uniform predictions: patch AUC 0.5), as the evaluate stage scores one."""
    import gastrodistill.evaluation.fresh_training as fresh

    real = fresh.train_replay
    calls = []

    def second_diverges(net, *args, **kwargs):
        calls.append(1)
        net = real(net, *args, **kwargs)
        if len(calls) == 2:
            if how == "loss":
                raise FloatingPointError("replay step 0: loss is nan; the distilled set is unusable")
            with torch.no_grad():
                for p in net.parameters():
                    p.mul_(1e30)  # finite weights, overflowing outputs
        return net

    monkeypatch.setattr(fresh, "train_replay", second_diverges)
    art = save_artifact(tmp_path / "soft", soft_set, card_fields)
    result = train_from_artifact(art, compose_cfg(FAST), dm, tmp_path / "site")
    first, second = result["networks"]
    assert result["n_diverged"] == 1 and second["diverged"] is True and "diverged" not in first
    assert second["patch_auc"] == 0.5 and np.isfinite(list(first.values())).all()
    assert result["metrics"]["patch_auc_mean"] == pytest.approx((first["patch_auc"] + 0.5) / 2)
    text = (tmp_path / "site" / "receive.md").read_text()
    assert (
        "**Diverged: 1 of 2 networks** (number 1: training loss, weights or test outputs not finite)" in text
    )
    assert json.loads((tmp_path / "site" / "receive.json").read_text())["n_diverged"] == 1


def test_a_card_asking_for_an_enormous_network_or_endless_training_is_refused_before_building(
    tmp_path, compose_cfg, dm, soft_set, card_fields, monkeypatch
):
    """A resealed card with a ConvNet ``width`` of 10^6 (about 10^13 parameters) or a standard recipe of
    10^12 epochs made a site run out of memory or train for ever; now the command refuses it before any
    network is built, naming the count, the card field and the override; a limit of null lifts it."""
    import math

    from _resealing import reseal

    import gastrodistill.sharing.train_from_artifact as receive
    from gastrodistill.sharing.artifact import load_artifact

    def refuse_to_build(*args, **kwargs):
        raise AssertionError("a network was built for a card that should have been refused")

    art = save_artifact(tmp_path / "soft", soft_set, card_fields)
    _, card = load_artifact(art)
    # the count on the meta device is the built network's (an independent count on the CPU)
    factory, _, _ = receive.model_factory(card)
    c, h, w = card["distilled"]["image_shape"]
    built = factory(in_channels=c, num_classes=card["distilled"]["num_classes"], image_size=(h, w))
    assert receive.card_network_parameters(card) == sum(p.numel() for p in built.parameters())
    info = card["distilled"]
    assert receive.card_training_steps(card, "replay")[0] == info["steps"] * info["epochs"]
    standard = {**card, "training_recipe": {"standard": {"epochs": 7, "batch_size": 4}}}
    assert receive.card_training_steps(standard, "standard")[0] == 7 * math.ceil(info["n_images"] / 4)

    reseal(
        art, lambda card: card["architecture"].update(_target_="gastrodistill.models.ConvNet", width=10**6)
    )
    monkeypatch.setattr(receive, "train_networks", refuse_to_build)
    with pytest.raises(ArtifactError) as info_big:
        train_from_artifact(art, compose_cfg(FAST), dm, tmp_path / "site")
    message = str(info_big.value)
    assert "parameters" in message and "audit.receive.max_network_parameters=1,000,000,000" in message
    assert "\n" not in message and not (tmp_path / "site").exists()

    art2 = save_artifact(tmp_path / "soft2", soft_set, card_fields)
    reseal(art2, lambda card: card["training_recipe"].update(standard={"epochs": 10**12}))
    with pytest.raises(ArtifactError) as info_long:
        train_from_artifact(art2, compose_cfg(FAST), dm, tmp_path / "site", schedule="standard")
    message = str(info_long.value)
    steps = 10**12 * 1  # full batch: one step per epoch
    assert f"{steps:,} optimiser steps" in message and "card training_recipe.standard" in message
    assert "audit.receive.max_training_steps=1,000,000" in message and not (tmp_path / "site").exists()
    # the replay of that card asks for its learned schedule only, and null lifts a limit
    receive.check_card_workload(load_artifact(art2)[1], "replay", 10**9, 10**6)
    receive.check_card_workload(load_artifact(art2)[1], "standard", 10**9, None)
    receive.check_card_workload(load_artifact(art)[1], "replay", None, 10**6)


def test_a_mean_of_one_network_cannot_be_judged_within_noise():
    """With one network on either side both stds were 0 and the tolerance shrank to 0.01: every metric read
    "NO" on the site's own data. A std now counts only from a side of two networks or more; with one on
    each side the comparison says it cannot tell."""
    from gastrodistill.sharing.train_from_artifact import compare_published

    site = {"patient_hm_mean": 0.70, "patient_hm_std": 0.015}
    card = {"patient_hm_mean": 0.75, "patient_hm_std": 0.04, "n_networks": 6.0}

    def within(site_, card_, n):
        return compare_published(site_, card_, site_networks=n)["patient_hm"]["within_noise"]

    assert within(site, {**card, "n_networks": 1.0}, 1) is None  # one network each
    assert within(site, card, 1) is True  # the card's spread: 0.05 <= 2 x 0.04 + 0.01
    assert within(site, {**card, "n_networks": 1.0}, 3) is False  # the site's: 0.05 > 2 x 0.015 + 0.01
    assert within(site, {**card, "n_networks": 1.0, "patient_hm_mean": 0.73}, 3) is True  # 0.03 <= 0.04
    assert within(site, card, 2) is True  # the larger of the two
    assert within(site, {**card, "patient_hm_mean": 0.80}, 2) is False  # 0.10 > 0.09
    assert within({"patient_hm_mean": 0.70}, {"patient_hm_mean": 0.70}, 3) is True  # a card without a count


def test_receive_md_escapes_a_class_name_that_holds_a_table_bar():
    """A class named ``a|b`` gave its recall row one cell too many in receive.md (a breaker's finding)."""
    from gastrodistill.sharing.train_from_artifact import render

    result = {
        "artifact": {"name": "soft"},
        "schedule": "replay",
        "precision": "32-true",
        "n_networks": 2,
        "metrics": {
            "patch_accuracy_mean": 0.5,
            "patch_accuracy_std": 0.1,
            "recall_a|b_mean": 0.25,
            "recall_a|b_std": 0.05,
        },
        "published": {},
    }
    row = next(line for line in render(result).splitlines() if line.startswith("| recall of"))
    assert row == "| recall of a\\|b | 0.250 ± 0.050 | n/a | |  |"
    assert len(row.replace("\\|", "").split("|")) == 7  # five cells between six bars, as the header


def test_rows_the_card_has_no_figure_for_are_named_under_the_table():
    """A card whose evaluation holds some of the rows' figures (a site class the sender's data lack, or a
    metric its evaluation did not report) showed n/a in those rows with no word why; the rows are now named
    in one note under the table, and a card with every figure gets no such note."""
    from gastrodistill.sharing.train_from_artifact import PARTLY_PUBLISHED_NOTE, render

    def result(published):
        return {
            "artifact": {"name": "soft"},
            "schedule": "replay",
            "n_networks": 2,
            "metrics": {
                "patch_accuracy_mean": 0.5,
                "patch_accuracy_std": 0.1,
                "recall_polyp_mean": 0.25,
                "recall_polyp_std": 0.05,
            },
            "published": published,
        }

    accuracy = {"site": 0.5, "published": 0.45, "difference": 0.05, "within_noise": True}
    text = render(result({"patch_accuracy": accuracy}))
    assert f"{PARTLY_PUBLISHED_NOTE} (`recall_polyp`)." in text.splitlines()
    assert "| recall of polyp | 0.250 ± 0.050 | n/a | |  |" in text
    both = render(result({"patch_accuracy": accuracy, "recall_polyp": accuracy}))
    assert PARTLY_PUBLISHED_NOTE not in both and "n/a" not in both
    assert PARTLY_PUBLISHED_NOTE not in render(
        result({})
    )  # nothing compared: the notes above the table say why


def test_an_output_path_is_taken_as_it_is_not_as_hydra_text(tmp_path, artifact_zip, monkeypatch):
    """--output was pasted into a Hydra override: '/tmp/site B (2)' and non-ASCII paths were refused as
    overrides that "do not compose", a comma asked for --multirun, and ${oc.env:HOME} was resolved. So was a
    GASTRODISTILL_ROOT holding such characters, without --output (a receiving site's breaker)."""
    import yaml

    from gastrodistill.cli.train_from_artifact import run as receive_main

    site_npz(tmp_path / "patches.npz")
    data = [*FAST, "data=npz", f"data.path={tmp_path / 'patches.npz'}", "audit.receive.n_networks=1"]
    for name in ("site B (2), it's résumé", "x${oc.env:HOME}"):
        output = tmp_path / name
        receive_main(
            ["--artifact", str(artifact_zip), "--output", str(output), f"paths.root_dir={tmp_path}", *data]
        )
        assert sorted(p.name for p in output.iterdir()) == sorted(
            ["config.yaml", "run_info.json", "receive.json", "receive.md"]
        ), name
        config = yaml.safe_load((output / "config.yaml").read_text())
        assert config["paths"]["output_dir"] == str(output), name  # no ${...} resolved either
    root = tmp_path / "root (1) é"
    monkeypatch.setenv("GASTRODISTILL_ROOT", str(root))
    receive_main(["--artifact", str(artifact_zip), *data])
    assert len(list(root.glob("outputs/*/receive/soft-*/receive.json"))) == 1


def test_a_report_that_cannot_be_written_whole_leaves_the_earlier_one_whole(
    tmp_path, artifact_zip, capsys, monkeypatch
):
    """A full disk while writing receive.md left the new config.yaml and run_info.json beside the earlier
    run's receive.json and receive.md: one folder, two runs' files. The advice named hydra.run.dir, which
    this command does not take."""
    import errno
    from pathlib import Path

    from gastrodistill.cli.train_from_artifact import main

    site_npz(tmp_path / "patches.npz")
    output = tmp_path / "site"
    argv = ["--artifact", str(artifact_zip), "--output", str(output), f"paths.root_dir={tmp_path}"]
    data = [*FAST, "data=npz", f"data.path={tmp_path / 'patches.npz'}", "audit.receive.n_networks=1"]
    main([*argv, *data])
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    capsys.readouterr()
    real_write_text = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.startswith(".receive.md."):  # the report's last file, after the others are written
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(SystemExit) as info:
        main([*argv, *data, "seed=5"])  # another config.yaml
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    # the networks' progress bar, closed, then the error on a line of its own
    assert ("\n" + err).count("\nerror: ") == 1 and "fresh networks (replay)" in err.split("error: ")[0]
    assert err[err.index("error: ") :].startswith(
        "error: no space left on the device: free space there, or choose an output folder "
        "(--output ..., or paths.root_dir=... for the default one)"
    )
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before  # no temporary file left either


def test_the_default_folder_inside_the_artifact_is_named_as_the_default_and_nothing_is_made_there(
    tmp_path, artifact_zip, capsys
):
    """`cd artifact && gastrodistill-train-from-artifact --artifact .` blamed an --output never given, and
    the write check had made and removed folders inside the artifact before the refusal."""
    from gastrodistill.cli.train_from_artifact import main

    folder = artifact_zip.with_suffix("")
    before = {p.name: p.stat().st_mtime_ns for p in [folder, *folder.iterdir()]}
    with pytest.raises(SystemExit) as info:
        main(["--artifact", str(folder), f"paths.root_dir={folder}"])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert err.startswith(f"error: the default output folder (no --output given) {folder / 'outputs'}")
    assert f"is inside the artifact {folder} (it holds card.json)" in err
    assert {p.name: p.stat().st_mtime_ns for p in [folder, *folder.iterdir()]} == before


def test_one_data_folder_written_with_or_without_its_last_slash_is_the_same_data(tmp_path, artifact_zip):
    from gastrodistill.cli.train_from_artifact import default_folder, default_folder_name

    base = tmp_path / "receive"
    first = base / default_folder_name(str(artifact_zip))
    first.mkdir(parents=True)
    (first / "config.yaml").write_text("data:\n  root: /site/xrays\n  seed: 0\n")
    assert default_folder(base, str(artifact_zip), {"root": "/site/xrays/", "seed": 0}) == first
    assert default_folder(base, str(artifact_zip), {"root": "/site/xrays//", "seed": 0}) == first
    assert (
        default_folder(base, str(artifact_zip), {"root": "/site/other", "seed": 0}).name == f"{first.name}-2"
    )
    assert (
        default_folder(base, str(artifact_zip), {"root": "/site/xrays", "seed": 3}).name == f"{first.name}-2"
    )


def test_a_report_folder_whose_config_cannot_be_read_is_kept(tmp_path, monkeypatch):
    """default_folder counts an unreadable config.yaml as other data: that report is kept, the new one
    goes beside it."""
    import gastrodistill.cli.train_from_artifact as cli

    monkeypatch.setattr(cli, "default_folder_name", lambda artifact: "soft-abc")
    (tmp_path / "soft-abc").mkdir()
    (tmp_path / "soft-abc" / "config.yaml").write_text("data: [unclosed\n")
    assert cli.default_folder(tmp_path, "soft", {"root": "/x"}) == tmp_path / "soft-abc-2"


@pytest.mark.parametrize("schedule", ["replay", "standard"])
def test_receive_shows_a_bar_of_its_fresh_networks_unless_progress_is_off(
    tmp_path, compose_cfg, dm, soft_set, card_fields, capsys, schedule
):
    """The receiving site's networks train under one bar (``audit.progress``: a step per network, named by
    the schedule); ``audit.progress=false`` trains the same networks with no bar."""
    art = save_artifact(tmp_path / "soft", soft_set, card_fields, archive=False)
    shown = train_from_artifact(art, compose_cfg(FAST), dm, tmp_path / "a", n_networks=2, schedule=schedule)
    err = capsys.readouterr().err
    assert f"fresh networks ({schedule})" in err and "2/2" in err and "3/2" not in err
    quiet = train_from_artifact(
        art, compose_cfg([*FAST, "audit.progress=false"]), dm, tmp_path / "b", n_networks=2, schedule=schedule
    )
    assert "fresh networks" not in capsys.readouterr().err
    accuracies = [[r["patch_accuracy"] for r in run["networks"]] for run in (shown, quiet)]
    assert accuracies[0] == accuracies[1]
