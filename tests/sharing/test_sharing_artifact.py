"""The artifact: exact round trip, a card with only allowed keys, refusal of anything unsafe or damaged."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import struct
import zipfile

import pytest
import torch
from _anon_data import noise_set
from PIL import Image

from gastrodistill.sharing.artifact import ArtifactError, load_artifact, save_artifact
from gastrodistill.sharing.card import CALLER_FIELDS, COMPUTED_FIELDS
from gastrodistill.sharing.publish import publish_artifact
from gastrodistill.utils.hashing import sha256_file


def _same(a, b) -> None:
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(a, name).detach(), getattr(b, name).detach()), name
    assert torch.equal(a.soft_targets().detach(), b.soft_targets().detach())
    assert (a.mode, a.steps, a.epochs, a.ipc, a.num_classes, a.temperature, a.inner_momentum) == (
        b.mode,
        b.steps,
        b.epochs,
        b.ipc,
        b.num_classes,
        b.temperature,
        b.inner_momentum,
    )


def test_round_trip_folder_and_zip(tmp_path, dm, soft_set, card_fields):
    out = save_artifact(tmp_path / "soft", soft_set, card_fields, archive=True)
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "distilled.safetensors", "grid.png"]
    for path in (out, tmp_path / "soft.zip"):
        loaded, card = load_artifact(path)
        _same(soft_set, loaded)
        assert loaded.class_names == dm.class_names and loaded.mean == pytest.approx(dm.mean)
    hard = noise_set(dm, steps=1, ipc=3)
    hard.mode = "hard"
    hard.inner_momentum = 0.9  # replay at a receiving site needs the momentum the set was distilled with
    loaded, card = load_artifact(save_artifact(tmp_path / "hard", hard, card_fields))
    _same(hard, loaded)
    assert card["distilled"]["mode"] == "hard" and card["distilled"]["inner_momentum"] == 0.9


def test_card_contents_and_hashes(tmp_path, dm, soft_set, card_fields):
    out = save_artifact(tmp_path / "soft", soft_set, card_fields)
    card = json.loads((out / "card.json").read_text())
    assert set(card) <= set(CALLER_FIELDS) | set(COMPUTED_FIELDS)
    assert card["schema_version"] == 1 and card["source_hash"] == dm.source_hash()
    assert card["class_names"] == dm.class_names and card["distilled"]["n_images"] == 2 * 3 * 2
    assert card["tensors"]["images"] == {"dtype": "float32", "shape": [12, 1, 16, 16]}
    assert card["normalization"]["mean"] == pytest.approx(dm.mean)
    assert card["package"]["name"] == "gastrodistill" and card["package"]["version"]
    for name in ("distilled.safetensors", "grid.png"):
        assert card["files"][name]["sha256"] == sha256_file(out / name)
    with Image.open(out / "grid.png") as img:
        assert img.format == "PNG" and min(img.size) > 100


def test_zip_is_byte_reproducible(tmp_path, soft_set, card_fields):
    save_artifact(tmp_path / "a", soft_set, card_fields, archive=True)
    save_artifact(tmp_path / "b", soft_set, card_fields, archive=True)
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


@pytest.fixture
def artifact(tmp_path, soft_set, card_fields):
    return save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)


def _edit_card(path, **changes) -> None:
    card = json.loads((path / "card.json").read_text())
    card.update(changes)
    (path / "card.json").write_text(json.dumps(card))


def test_pickles_are_refused(tmp_path, artifact):
    buf = io.BytesIO()
    torch.save({"images": torch.zeros(2)}, buf)
    for payload, message in (
        (buf.getvalue(), "torch.save pickle"),
        (pickle.dumps({"a": 1}, protocol=4), "pickle data"),
    ):
        bad = shutil.copytree(artifact, tmp_path / f"bad{len(payload)}")
        (bad / "distilled.safetensors").write_bytes(payload)
        with pytest.raises(ArtifactError, match=message):
            load_artifact(bad)
    extra = shutil.copytree(artifact, tmp_path / "extra")
    (extra / "weights.pkl").write_bytes(b"not even read")
    with pytest.raises(ArtifactError, match="pickle-capable"):
        load_artifact(extra)
    (tmp_path / "model.pt").write_bytes(buf.getvalue())
    with pytest.raises(ArtifactError, match="pickle-capable"):
        load_artifact(tmp_path / "model.pt")


def test_a_numpy_file_is_refused_as_not_an_artifact_not_as_a_pickle(tmp_path, artifact):
    """``--artifact digits.npz`` said "a pickle-capable file", though the project reads npz without pickle."""
    import numpy as np

    np.savez(tmp_path / "digits.npz", train_images=np.zeros((2, 8, 8), np.uint8))
    np.save(tmp_path / "images.npy", np.zeros((2, 8, 8), np.uint8))
    shutil.copy(tmp_path / "digits.npz", tmp_path / "digits.zip")  # an .npz is a zip of .npy files
    inside = shutil.copytree(artifact, tmp_path / "with_npy")
    (inside / "extra.npy").write_bytes((tmp_path / "images.npy").read_bytes())
    for path, named in (
        (tmp_path / "digits.npz", "digits.npz is a numpy array file, not an artifact"),
        (tmp_path / "images.npy", "images.npy is a numpy array file, not an artifact"),
        (tmp_path / "digits.zip", "digits.zip contains 'train_images.npy', a numpy array file"),
        (inside, "with_npy contains 'extra.npy', a numpy array file"),
    ):
        with pytest.raises(ArtifactError) as info:
            load_artifact(path)
        msg = str(info.value)
        assert msg.startswith(named) and "pickle" not in msg and "\n" not in msg, msg
        assert (
            "the folder, or its .zip, that gastrodistill-audit writes for each set it audits, or the " in msg
        )
        assert (
            "artifact stage of gastrodistill-reproduce (stages=[...,artifact]), into <output>/artifacts/"
            in msg
        )
        assert "distilled.safetensors, card.json, grid.png" in msg


def test_a_truncated_zip_names_both_commands_that_write_artifacts(tmp_path, artifact):
    """The message named only gastrodistill-reproduce's artifact stage; gastrodistill-audit writes them too
    (``audit.artifact.write``, on by default)."""
    data = artifact.with_suffix(".zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError) as info:
        load_artifact(tmp_path / "cut.zip")
    assert str(info.value) == (
        f"{tmp_path / 'cut.zip'} is neither an artifact folder nor a zip archive (a truncated download?); an "
        "artifact is the folder, or its .zip, that gastrodistill-audit writes for each set it audits, or the "
        "artifact stage of gastrodistill-reproduce (stages=[...,artifact]), into <output>/artifacts/<name>, "
        "holding only distilled.safetensors, card.json, grid.png: pass that folder or .zip"
    )


def test_a_distilled_set_folder_is_named_as_such_with_the_commands_that_write_its_artifact(
    tmp_path, soft_set
):
    """``--artifact run/distill/soft`` (the distill stage's output) said "contains unexpected file(s) [...];
    ... lacks ['card.json'] (a renamed file? ...)". It is a distilled set: the message says so and how its
    artifact is written; the same for that folder zipped."""
    folder = soft_set.save(tmp_path / "run" / "distill" / "soft")
    for name in ("config.yaml", "run_info.json", "summary.json"):  # what the distill stage writes beside it
        (folder / name).write_text("{}")
    advice = (
        "is a distilled set (the distill stage's output, with distilled.json), not an artifact; write its "
        "artifact with gastrodistill-audit experiment=<its experiment> +audit.sets.soft="
    )
    tail = (
        " (into <output>/artifacts/soft, and its .zip), or with 'stages=[...,artifact]' in the "
        "gastrodistill-reproduce run that distilled it, and pass that artifact"
    )
    with pytest.raises(ArtifactError) as info:
        load_artifact(folder)
    assert str(info.value) == f"{folder} {advice}{folder}{tail}"
    with zipfile.ZipFile(tmp_path / "soft.zip", "w") as zf:  # zip -r soft.zip soft/
        for p in sorted(folder.iterdir()):
            zf.write(p, f"soft/{p.name}")
    with pytest.raises(ArtifactError) as info:
        load_artifact(tmp_path / "soft.zip")
    assert str(info.value) == f"soft.zip {advice}<its folder, unzipped>{tail}"


def test_truncated_files_are_refused(tmp_path, artifact):
    data = (artifact / "distilled.safetensors").read_bytes()
    (artifact / "distilled.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated"):
        load_artifact(artifact)
    zipped = (tmp_path / "art.zip").read_bytes()
    (tmp_path / "cut.zip").write_bytes(zipped[: len(zipped) - 200])
    with pytest.raises(ArtifactError, match="zip"):
        load_artifact(tmp_path / "cut.zip")


def test_a_modified_tensor_is_refused(artifact):
    path = artifact / "distilled.safetensors"
    data = bytearray(path.read_bytes())
    header = struct.unpack("<Q", data[:8])[0]
    data[8 + header + 16] ^= 0x01  # one bit of one float of the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="distilled.safetensors was modified"):
        load_artifact(artifact)


def test_card_problems_are_refused(artifact):
    good = (artifact / "card.json").read_text()
    _edit_card(artifact, schema_version=99)
    with pytest.raises(ArtifactError, match="schema_version 99"):
        load_artifact(artifact)
    (artifact / "card.json").write_text(good)
    _edit_card(artifact, class_names=["a", "b", "c"])
    with pytest.raises(ArtifactError, match="edited after it was written"):
        load_artifact(artifact)
    (artifact / "card.json").write_text(good[:-40])
    with pytest.raises(ArtifactError, match="not valid UTF-8 JSON"):
        load_artifact(artifact)
    (artifact / "card.json").write_text(good)
    (artifact / "notes.txt").write_text("hello")
    with pytest.raises(ArtifactError, match="unexpected file") as info:
        load_artifact(artifact)
    assert "lacks" not in str(info.value)  # nothing is missing: no renamed file to suggest
    (artifact / "notes.txt").unlink()
    (artifact / "distilled.safetensors").rename(artifact / "soft.safetensors")
    with pytest.raises(ArtifactError) as info:  # a renamed file: the message says what is missing
        load_artifact(artifact)
    assert "unexpected file(s) ['soft.safetensors']" in str(info.value)
    assert "it lacks ['distilled.safetensors'] (a renamed file? give it its name back)" in str(info.value)
    (artifact / "soft.safetensors").rename(artifact / "distilled.safetensors")
    with pytest.raises(ArtifactError, match="no artifact at"):
        load_artifact(artifact / "missing")


def test_zip_members_with_paths_are_refused(tmp_path, artifact):
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        for name in ("card.json", "distilled.safetensors", "grid.png"):
            zf.write(artifact / name, name)
        zf.writestr("../escape.txt", "x")
    with pytest.raises(ArtifactError, match="unexpected file"):
        load_artifact(tmp_path / "evil.zip")


def test_the_usual_packing_mistakes_are_refused_with_their_fix(tmp_path, artifact):
    """``zip -r soft.zip soft/`` puts the files in a folder inside the zip, and Finder leaves .DS_Store
    in a folder: both are still refused (an artifact holds exactly three files), with what to do."""
    with zipfile.ZipFile(tmp_path / "soft.zip", "w") as zf:
        zf.writestr("soft/", "")
        for name in ("card.json", "distilled.safetensors", "grid.png"):
            zf.write(artifact / name, f"soft/{name}")
    with pytest.raises(ArtifactError) as info:
        load_artifact(tmp_path / "soft.zip")
    assert "they sit in a folder 'soft' inside the zip" in str(info.value)
    assert "(cd soft && zip ../soft.zip card.json distilled.safetensors grid.png)" in str(info.value)
    (artifact / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    with pytest.raises(ArtifactError, match=r"\['.DS_Store'\] are written by the file manager"):
        load_artifact(artifact)
    (artifact / "notes.txt").write_text("mine")  # not only the file manager's: no advice, as before
    with pytest.raises(ArtifactError) as info:
        load_artifact(artifact)
    assert "file manager" not in str(info.value) and "unexpected file(s) ['.DS_Store', 'notes.txt']" in str(
        info.value
    )


def test_the_shared_files_get_the_usual_permissions(tmp_path, soft_set, card_fields):
    """Written through temporary files (mkstemp/mkdtemp: owner-only), the artifact folder, its zip and
    grid.png were 0700/0600 while card.json was 0644: the group a zip is meant for could not read it."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        art = save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)
    finally:
        os.umask(old)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode) for p in [art, art.with_suffix(".zip"), *sorted(art.iterdir())]
    }
    assert modes == {
        "art": 0o755,
        "art.zip": 0o644,
        "card.json": 0o644,
        "distilled.safetensors": 0o644,
        "grid.png": 0o644,
    }


def test_an_experiment_name_no_card_may_carry_is_refused_before_any_stage(compose_cfg, tmp_path):
    """experiment_name goes into every card's description: a DICOM person name or a path is refused when
    reproduce checks its config (it used to stop the study at the audit, after the distillation and the
    evaluation) and by the audit command before it reads a set; a study without cards is not concerned."""
    from gastrodistill.cli.audit import run as audit_run
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.sharing.card import CardError, check_public
    from gastrodistill.sharing.publish import card_description, check_experiment_name

    bad = compose_cfg(["experiment=tiny", "experiment_name='DOE^JOHN'"])
    with pytest.raises(CardError) as info:
        check_experiment_name(bad)
    assert str(info.value).startswith("experiment_name='DOE^JOHN' looks like a DICOM person name")
    with pytest.raises(CardError):  # the card's own check says the same of the description
        check_public(card_description("soft", "GastricPatchDataModule", "DOE^JOHN"))
    with pytest.raises(CardError, match=r"experiment_name='a/b' contains a path separator"):
        check_experiment_name(compose_cfg(["experiment=tiny", "experiment_name=a/b"]))
    check_experiment_name(compose_cfg(["experiment=tiny", "experiment_name=site_a"]))
    with pytest.raises(CardError, match="DOE"):
        Pipeline(bad).check_reproduce_section(["distill", "evaluate", "audit"])
    Pipeline(bad).check_reproduce_section(["distill", "evaluate"])  # no card is written
    missing = tmp_path / "no_such_set"  # the name is refused first: no set is read
    with pytest.raises(CardError, match="DOE"):
        audit_run(
            compose_cfg(["experiment=tiny", "experiment_name='DOE^JOHN'", f"+audit.sets.soft={missing}"])
        )


def test_a_set_keeps_its_digest_without_the_data_it_records_it_was_distilled_from(
    soft_set, card_fields, dm, tmp_path
):
    """``data_source_hash`` in ``distilled.json`` is provenance, not what a replay reads, and the set's
    artifact does not carry it: the set read from its folder and from its artifact keeps one digest (the
    evaluation's records and the audit's identity compare digests)."""
    from gastrodistill.evaluation.record_settings import set_digest

    soft_set.model_config = dict(card_fields["architecture"])  # as a distilled set records it
    digest = set_digest(soft_set)
    soft_set.data_source_hash = dm.source_hash()
    assert set_digest(soft_set) == digest
    received, _ = load_artifact(save_artifact(tmp_path / "a", soft_set, card_fields))
    assert received.data_source_hash is None and set_digest(received) == digest


def test_a_set_distilled_at_another_temperature_loads_with_its_own_soft_labels(
    tmp_path, soft_set, card_fields
):
    """The soft labels are softmax(label_logits / temperature): a set of temperature 2 comes back at 2, its
    targets those it was saved with (at the default 1 they are other labels, and the load refuses them)."""
    soft_set.temperature = 2.0
    loaded, card = load_artifact(save_artifact(tmp_path / "t2", soft_set, card_fields))
    assert card["distilled"]["temperature"] == 2.0
    _same(soft_set, loaded)
    want = torch.softmax(soft_set.label_logits.detach().double() / 2.0, dim=1)
    torch.testing.assert_close(loaded.soft_targets().detach().double(), want, rtol=1e-5, atol=1e-6)


def test_normalisation_of_another_channel_count_is_refused_before_writing(tmp_path, soft_set, card_fields):
    """card_fields with three std values for a one-channel set: refused, nothing written."""
    from gastrodistill.sharing.card import CardError

    with pytest.raises(CardError, match=r"card.std has 3 values for 1 channels"):
        save_artifact(tmp_path / "bad", soft_set, {**card_fields, "std": [0.2, 0.2, 0.2]})
    assert not (tmp_path / "bad").exists()


def test_pickle_protocol_five_is_refused_too(tmp_path, artifact):
    bad = shutil.copytree(artifact, tmp_path / "p5")
    (bad / "distilled.safetensors").write_bytes(pickle.dumps({"a": 1}, protocol=5))
    with pytest.raises(ArtifactError, match=r"holds pickle data \(magic bytes 0x80 0x05\)"):
        load_artifact(bad)


def test_a_file_one_byte_short_is_called_truncated(artifact):
    data = (artifact / "distilled.safetensors").read_bytes()
    (artifact / "distilled.safetensors").write_bytes(data[:-1])
    with pytest.raises(ArtifactError) as info:
        load_artifact(artifact)
    assert str(info.value) == (
        f"distilled.safetensors is truncated: {len(data) - 1} bytes, the card says {len(data)}; "
        "download it again"
    )


def test_the_zips_members_are_readable_by_everyone(tmp_path, soft_set, card_fields):
    """The zip's members carry mode 0644 (not group- or world-writable) whatever the umask."""
    save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)
    with zipfile.ZipFile(tmp_path / "art.zip") as zf:
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in zf.infolist()}
    assert modes == {"distilled.safetensors": 0o644, "card.json": 0o644, "grid.png": 0o644}


def test_a_stop_before_the_zip_leaves_no_earlier_sets_zip_beside_the_new_folder(
    soft_set, card_fields, tmp_path, monkeypatch
):
    """The folder and ``<folder>.zip`` are each written whole, one after the other: a stop between the two
    left a new folder beside the zip of the set written there before, which a site would then share. The
    earlier zip is now removed with the folder's swap; a re-run writes the new one."""
    import torch

    import gastrodistill.sharing.artifact as artifact

    out = tmp_path / "soft"
    save_artifact(out, soft_set, card_fields, archive=True)
    earlier = (tmp_path / "soft.zip").read_bytes()
    with torch.no_grad():
        soft_set.images.add_(0.01)  # another set under the same name

    def stopped(folder, target):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifact, "write_zip", stopped)
    with pytest.raises(KeyboardInterrupt):
        save_artifact(out, soft_set, card_fields, archive=True)
    assert not (tmp_path / "soft.zip").exists()  # not the earlier set's zip
    folder_set, _ = load_artifact(out)
    assert torch.equal(folder_set.images, soft_set.images.detach().float())
    monkeypatch.undo()
    save_artifact(out, soft_set, card_fields, archive=True)
    zipped, _ = load_artifact(tmp_path / "soft.zip")
    assert torch.equal(zipped.images, folder_set.images) and (tmp_path / "soft.zip").read_bytes() != earlier


@pytest.mark.parametrize("protocol", [2, 3])
def test_older_pickle_protocols_are_refused_by_their_magic_bytes(tmp_path, artifact, protocol):
    """Protocols 4 and 5 were tested; 2 and 3 (what older code writes) start with 0x80 0x02 / 0x80 0x03."""
    bad = shutil.copytree(artifact, tmp_path / f"p{protocol}")
    (bad / "distilled.safetensors").write_bytes(pickle.dumps({"a": 1}, protocol=protocol))
    with pytest.raises(ArtifactError, match=rf"holds pickle data \(magic bytes 0x80 0x0{protocol}\)"):
        load_artifact(bad)


def _with_metadata(artifact, folder, metadata):
    """A copy of ``artifact`` whose tensors file carries ``metadata``, its card resealed (a consistent
    forgery, as a sender with another writer would make it)."""
    from _resealing import retensor

    out = shutil.copytree(artifact, folder)
    retensor(out, lambda tensors: tensors, metadata=metadata)
    return out


def test_tensors_metadata_other_than_the_writers_format_is_refused(tmp_path, artifact):
    """Nothing reads a safetensors file's ``__metadata__``, so a breaker's code string and a pickle's bytes
    as hex there loaded unsaid; the header must hold the one key the writer puts there."""
    card = json.loads((artifact / "card.json").read_text())
    fmt = f"gastrodistill-distilled-set/{card['schema_version']}"
    load_artifact(_with_metadata(artifact, tmp_path / "same", {"format": fmt}))  # resealed as written: loads
    for i, (metadata, said) in enumerate(
        [
            ({"format": fmt, "payload": pickle.dumps(1).hex()}, "metadata keys ['format', 'payload']"),
            ({"format": "pt"}, f"the format 'pt', not '{fmt}'"),
            (None, "metadata keys none"),
        ]
    ):
        bad = _with_metadata(artifact, tmp_path / f"bad{i}", metadata)
        with pytest.raises(ArtifactError) as info:
            load_artifact(bad)
        assert str(info.value) == (
            f"distilled.safetensors's header holds {said}"
            + (", where gastrodistill writes one, 'format'" if "keys" in said else "")
            + ": the file was written by another program or edited"
        )


# ---- gaps a mutation review found: each test fails on one plausible slip in sharing/publish.py --------
def test_the_card_carries_the_replay_augmentation_of_the_config(compose_cfg, dm):
    """A receiving site replays with the card's augmentation (``eval.replay_augment``): it is on the card
    as configured (path-free), and null when the replay is the exact unroll."""
    from gastrodistill.sharing.publish import card_fields_from_config

    dsa = "{_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 8}"
    cfg = compose_cfg(["model=lenet", f"eval.replay_augment={dsa}"])
    recipe = card_fields_from_config(cfg, dm, "soft")["training_recipe"]
    assert recipe["replay_augment"] == {
        "_target_": "gastrodistill.distillation.augment.DSA",
        "flip": True,
        "shift_px": 8,
    }
    plain = card_fields_from_config(compose_cfg(["model=lenet"]), dm, "soft")["training_recipe"]
    assert plain["replay_augment"] is None


def test_recipe_mismatch_names_each_recorded_setting_that_differs(compose_cfg, soft_set):
    """A set audited under another config: each of ipc, steps, epochs and inner momentum that differs is
    named with (the set's, the config's) value; a config that sets no inner momentum distils with 0."""
    from omegaconf import OmegaConf

    from gastrodistill.sharing.publish import recipe_mismatch

    same = [
        f"distill.ipc={soft_set.ipc}",
        f"distill.steps={soft_set.steps}",
        f"distill.epochs={soft_set.epochs}",
    ]
    cfg = compose_cfg([*same, "distill.inner_momentum=0.0"])
    assert float(soft_set.inner_momentum or 0.0) == 0.0 and recipe_mismatch(cfg, soft_set) == {}
    other = compose_cfg(
        [*same[:1], f"distill.steps={soft_set.steps + 1}", same[2], "distill.inner_momentum=0.5"]
    )
    assert recipe_mismatch(other, soft_set) == {
        "steps": (soft_set.steps, soft_set.steps + 1),
        "inner_momentum": (soft_set.inner_momentum, 0.5),
    }
    soft_set.inner_momentum = 0.9
    OmegaConf.set_struct(cfg, False)
    del cfg.distill["inner_momentum"]
    assert recipe_mismatch(cfg, soft_set) == {"inner_momentum": (0.9, 0.0)}
    del cfg["distill"]
    assert recipe_mismatch(cfg, soft_set) == {}


def test_set_recipe_reads_the_saved_distillation_settings_and_seed_without_paths(tmp_path):
    """The recipe a card gives is the one in the set's own ``config.yaml``, with paths redacted; a record
    without a seed (or none at all) gives None, and the card falls back to the current config."""
    from omegaconf import OmegaConf

    from gastrodistill.sharing.publish import set_recipe
    from gastrodistill.utils.privacy import REDACTED
    from gastrodistill.utils.run_info import CONFIG_FILE

    folder = tmp_path / "soft"
    folder.mkdir()
    assert set_recipe(folder) is None
    distill = {"ipc": 2, "steps": 4, "init": "/data/StMary/init_patches"}
    OmegaConf.save(OmegaConf.create({"distill": distill, "seed": 7}), folder / CONFIG_FILE)
    assert set_recipe(folder) == {"distill": {"ipc": 2, "steps": 4, "init": REDACTED}, "seed": 7}
    OmegaConf.save(OmegaConf.create({"distill": distill}), folder / CONFIG_FILE)
    assert set_recipe(folder) is None


def test_only_finite_scalar_metrics_go_on_the_card(compose_cfg, dm):
    """Evaluation and anonymity numbers: finite scalars only (no NaN of a metric that could not be
    computed, no per-patient arrays), as floats."""
    import numpy as np

    from gastrodistill.sharing.publish import card_fields_from_config

    metrics = {
        "acc": 0.5,
        "auc": float("nan"),
        "gap": float("inf"),
        "n": 3,
        "per_patient": [0.1],
        "x": np.ones(2),
    }
    fields = card_fields_from_config(compose_cfg(["model=lenet"]), dm, "soft", evaluation=metrics)
    assert fields["evaluation"] == {"acc": 0.5, "n": 3.0}
    assert "anonymity" not in fields


def test_the_card_gives_the_sets_own_recipe_mode_and_seed_and_names_only_a_real_positive_class(
    compose_cfg, dm, soft_set
):
    """The card describes the set: its normalisation and architecture, with its recorded recipe the
    settings and seed it was made with (not the config's) and its label mode; an unaudited set says so;
    ``eval.patient.positive_class`` goes on the card only when it is one of the data's classes."""
    from gastrodistill.anonymity.verdict import NOT_AUDITED
    from gastrodistill.sharing.publish import card_fields_from_config

    cfg = compose_cfg(["model=lenet", "seed=3"])
    recipe = {"distill": {"ipc": 2, "steps": 2, "epochs": 1}, "seed": 11}
    soft_set.mean, soft_set.std = [dm.mean[0] + 0.1], [dm.std[0] * 2]  # the set's own normalisation
    soft_set.model_config = {"_target_": "gastrodistill.models.ConvNet", "_partial_": True, "width": 8}
    fields = card_fields_from_config(cfg, dm, "soft", distilled=soft_set, recipe=recipe)
    assert fields["mean"] == soft_set.mean and fields["std"] == soft_set.std
    assert fields["architecture"] == soft_set.model_config  # not the config's LeNet
    assert fields["training_recipe"]["distill"] == {**recipe["distill"], "mode": str(soft_set.mode)}
    assert fields["training_recipe"]["seed"] == 11 and "mode" not in recipe["distill"]  # not changed
    assert fields["anonymity_verdict"] == NOT_AUDITED
    assert fields["positive_class"] == cfg.eval.patient.positive_class == "gastritis"
    other = compose_cfg(["model=lenet", "eval.patient.positive_class=pneumonia"])
    assert "positive_class" not in card_fields_from_config(other, dm, "soft")


def test_publish_refuses_a_card_holding_any_patient_id_of_the_data_and_archives_as_asked(
    compose_cfg, dm, tmp_path
):
    """``publish_artifact`` searches the card for every patient id of every split (here in its
    description, through experiment_name): refused, nothing written. ``archive`` overrides
    ``audit.artifact.archive``."""
    pids = [str(dm.patient_ids(split)[0]) for split in ("train", "val", "test")]
    for pid in pids:
        cfg = compose_cfg(["model=lenet", f"experiment_name={pid}"])
        with pytest.raises(ArtifactError, match=r"private string\(s\) \(patient_id\)"):
            publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / "a", archive=False)
        assert not (tmp_path / "a").exists()
    cfg = compose_cfg(["model=lenet", "audit.artifact.archive=true"])
    out = publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / "plain", archive=False)
    assert (out / "card.json").is_file() and not (tmp_path / "plain.zip").exists()


def test_publish_checks_the_set_against_the_data_and_draws_at_most_grid_max_images(compose_cfg, dm, tmp_path):
    """A set of another normalisation than the data's is refused before anything is written; the grid
    shows at most ``audit.artifact.grid_max`` images (fewer rows than all six here)."""
    from gastrodistill.evaluation.checks import DistilledSetMismatch

    other = noise_set(dm)
    other.mean = [dm.mean[0] + 0.2]
    with pytest.raises(DistilledSetMismatch):
        publish_artifact(compose_cfg(["model=lenet"]), dm, "soft", other, tmp_path / "x", archive=False)
    assert not (tmp_path / "x").exists()
    heights = {}
    for grid_max in (2, 120):
        cfg = compose_cfg(["model=lenet", f"audit.artifact.grid_max={grid_max}"])
        out = publish_artifact(cfg, dm, "soft", noise_set(dm), tmp_path / f"g{grid_max}", archive=False)
        heights[grid_max] = Image.open(out / "grid.png").size[1]
    assert len(noise_set(dm).images) == 6 and heights[2] < heights[120]
