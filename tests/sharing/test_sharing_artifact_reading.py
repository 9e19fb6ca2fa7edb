"""Reading a received artifact: bounded memory, no file outside it, and a message for every malformed card.

Each case was a finding of a review that built crafted artifacts: a small zip that inflated to gigabytes
before any check, a folder whose ``grid.png`` was a symbolic link to a file outside it (loaded), duplicate
zip members (the last copy loaded), and resealed cards whose fields had the wrong type (tracebacks) or
range (``std: [0]``: a site divided by zero; ``steps: 2.7``: silently 2)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from _resealing import reseal, retensor

import gastrodistill.sharing.artifact as artifact_mod
from gastrodistill.sharing.artifact import ArtifactError, load_artifact, save_artifact


@pytest.fixture
def artifact(tmp_path, soft_set, card_fields) -> Path:
    return save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)


def _zip(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return path


def _members(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_symbolic_link_or_a_special_entry_in_a_folder_is_refused(tmp_path, artifact):
    outside = tmp_path / "outside.png"
    outside.write_bytes((artifact / "grid.png").read_bytes())  # the same bytes: hashes alone cannot tell
    (artifact / "grid.png").unlink()
    (artifact / "grid.png").symlink_to(outside)
    with pytest.raises(ArtifactError, match="grid.png is a symbolic link"):
        load_artifact(artifact)
    (artifact / "grid.png").unlink()
    (artifact / "grid.png").mkdir()  # was a bare KeyError
    with pytest.raises(ArtifactError, match="grid.png is not a regular file"):
        load_artifact(artifact)


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the bad zip is written on purpose
def test_duplicate_zip_members_are_refused(tmp_path, artifact):
    files = _members(artifact)
    path = _zip(tmp_path / "dup.zip", [("card.json", b"{}"), *files.items()])
    with pytest.raises(ArtifactError, match=r"holds \['card.json'\] more than once"):
        load_artifact(path)


def test_a_member_is_not_inflated_beyond_the_size_its_card_gives_it(tmp_path, artifact, monkeypatch):
    files = _members(artifact)
    big = b"\0" * (8 << 20)  # 8 MB of zeros: a few kB deflated
    path = _zip(tmp_path / "bomb.zip", [(n, big if n == "grid.png" else d) for n, d in files.items()])
    read = []
    real_read = zipfile.ZipFile.read
    monkeypatch.setattr(
        zipfile.ZipFile,
        "read",
        lambda self, name, *a: read.append(getattr(name, "filename", name)) or real_read(self, name, *a),
    )
    with pytest.raises(ArtifactError, match="member 'grid.png' holds 8388608 bytes, the card says"):
        load_artifact(path)
    assert "grid.png" not in read  # refused from the zip's directory, before inflating it


def test_size_caps_hold_for_the_card_and_for_all_files(tmp_path, artifact, monkeypatch):
    monkeypatch.setattr(artifact_mod, "MAX_CARD_BYTES", 100)
    with pytest.raises(ArtifactError, match=r"card.json claims \d+ bytes \(at most 100\)"):
        load_artifact(artifact)
    monkeypatch.setattr(artifact_mod, "MAX_CARD_BYTES", 16 << 20)
    monkeypatch.setattr(artifact_mod, "MAX_MEMBER_BYTES", 1000)
    for path in (artifact, artifact.with_suffix(".zip")):
        with pytest.raises(ArtifactError, match=r"its files claim \d+ bytes in all \(at most 1000\)"):
            load_artifact(path)


def test_a_card_that_json_cannot_hold_is_a_message(artifact):
    for text in ("[" * 100000 + "]" * 100000, '{"n": ' + "9" * 5000 + "}"):  # RecursionError, ValueError
        (artifact / "card.json").write_text(text)
        with pytest.raises(ArtifactError, match="not valid UTF-8 JSON"):
            load_artifact(artifact)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.update(files=[]), "files must be a mapping"),
        (lambda c: c["files"]["grid.png"].update(bytes="abc"), "files.grid.png must be"),
        (lambda c: c["distilled"].pop("n_images"), "distilled.n_images must be an integer >= 1"),
        (lambda c: c.update(distilled="x"), "distilled must be a mapping"),
        (lambda c: c["distilled"].update(image_shape=5), r"distilled.image_shape must be three integers"),
        (lambda c: c["distilled"].update(steps="two"), "distilled.steps must be an integer >= 1"),
        (lambda c: c["distilled"].update(steps=2.7), r"distilled.steps must be an integer >= 1 \(got 2.7\)"),
        (lambda c: c["distilled"].update(inner_momentum="x"), r"distilled.inner_momentum must be a number"),
        (lambda c: c.update(tensors=[]), "tensors must be a mapping"),
        (lambda c: c["normalization"].pop("mean"), "normalization.mean must be a list of 1 numbers"),
        (lambda c: c.update(normalization=None), "normalization must be a mapping"),
        (lambda c: c["normalization"].update(std=[0.0]), "normalization.std must be positive"),
        # positive, but 0.0 in float32: a site's adapter divided by zero and every network's logits were NaN
        (
            lambda c: c["normalization"].update(std=[1e-300]),
            r"normalization.std\[0\] must be at least 1e-07 of the \[0, 1\] pixel range \(got 1e-300",
        ),
        (
            lambda c: c["normalization"].update(std=[1e300]),
            r"normalization.std\[0\] must be a number float32 can hold",
        ),
        (
            lambda c: c["normalization"].update(mean=[-1e39]),
            r"normalization.mean\[0\] must be a number float32 can hold",
        ),
        # published figures a site compares with: "abc" was a ValueError traceback after training
        (
            lambda c: c["evaluation"].update(patch_accuracy_mean="abc"),
            r"evaluation.patch_accuracy_mean must be a finite number \(got 'abc'\)",
        ),
        (
            lambda c: c["evaluation"].update(patch_accuracy_std=float("nan")),
            r"evaluation.patch_accuracy_std must be a finite number \(got nan\)",
        ),
        (lambda c: c.update(evaluation=[0.5]), "evaluation must be a mapping of metric names to numbers"),
        # figures a site compares are fractions: -3 was printed as published, a std of 1e6 made every
        # comparison "within noise" (a breaker's finding)
        (
            lambda c: c["evaluation"].update(patch_accuracy_mean=-3),
            r"evaluation.patch_accuracy_mean must be a fraction in \[0, 1\]",
        ),
        (
            lambda c: c["evaluation"].update(patient_hm_std=1e6),
            r"evaluation.patient_hm_std must be in \[0, 0.5\], the range of a population std",
        ),
        (  # a class's recall is compared too (receive.md's per-class rows)
            lambda c: c["evaluation"].update(recall_gastritis_std=3.0),
            r"evaluation.recall_gastritis_std must be in \[0, 0.5\], the range of a population std",
        ),
        # what the writer never writes: a field outside its allow-list, a patient's name, a path
        (
            lambda c: c.update(hospital="x"),
            r"card.json has field\(s\) \['hospital'\] that gastrodistill never writes",
        ),
        (
            lambda c: c.update(description="patient Tanaka^Taro"),
            r"card.json: card.description: the value .*the writer refuses such values",
        ),
        (lambda c: c.update(name="../../evil"), r"card.json: card.name: the value .*path"),
        # a site prints the name atop its report: line breaks forged a "verified" line and a table row there,
        # escapes reached the terminal (a receiving site's breaker)
        (
            lambda c: c.update(name="soft\n\n**Verified by site A**\n| patient_hm | 0.990 |"),
            r"card.json: card.name: the value contains a control character",
        ),
        (lambda c: c.update(name="soft\x1b[2J"), r"card.name: the value contains a control character"),
        (lambda c: c.update(name="Taro Tanaka"), r"name must be a set name .* \(got 11 characters\); the"),
        (lambda c: c.update(name="s" * 256), r"name must be a set name .*at most 255 characters"),
        (lambda c: c.update(name=7), r"name must be a set name .*\(got int\)"),
        # structure a site reads with .get(): AttributeError tracebacks before
        (lambda c: c.update(training_recipe=None), r"training_recipe must be a mapping \(got NoneType\)"),
        (lambda c: c.update(training_recipe=[]), r"training_recipe must be a mapping \(got list\)"),
        (
            lambda c: c["training_recipe"].update(standard="fast"),
            r"training_recipe.standard must be a mapping \(got str\)",
        ),
        (lambda c: c["tensors"].update(images=[]), "tensors.images must be a mapping with a shape"),
        (lambda c: c["tensors"]["lrs"].update(shape="4"), "tensors.lrs must be a mapping with a shape"),
        # True == 1 == 1.0 in Python: these passed the version check and a later message blamed the tensors
        (lambda c: c.update(schema_version=True), r"card.json has schema_version True, which this"),
        (lambda c: c.update(schema_version=1.0), r"card.json has schema_version 1.0, which this"),
        (lambda c: c.update(class_names=3), "class_names must be a list of 3 strings"),
        # a site's classes are matched by name: repeated names made the match ambiguous without a word
        (
            lambda c: c.update(class_names=[c["class_names"][0], *c["class_names"][:2]]),
            "class_names must be distinct, non-empty names",
        ),
        (lambda c: c.update(positive_class="tumour"), r"positive_class must be one of class_names \["),
    ],
)
def test_a_resealed_card_with_a_malformed_field_is_a_message(artifact, edit, field):
    reseal(artifact, edit)
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


def test_a_tensor_message_names_what_disagrees_with_what(artifact):
    """A float16 artifact whose card says float16, and a card whose epochs contradict its tensors: the
    messages used to read "dtype torch.float16; the card says float16" and "shape [2]; the card says [2]
    (expected [...])", each refuting itself."""

    import torch

    pristine = {p.name: p.read_bytes() for p in artifact.iterdir() if p.is_file()}

    def half(tensors):
        return {k: v.to(torch.float16) for k, v in tensors.items()}

    def card_half(card, tensors):
        for name in tensors:
            card["tensors"][name]["dtype"] = "float16"

    retensor(artifact, half, card_half)
    with pytest.raises(ArtifactError, match="has dtype float16; artifacts hold float32 tensors only"):
        load_artifact(artifact)
    for name, data in pristine.items():
        (artifact / name).write_bytes(data)
    load_artifact(artifact)  # the pristine artifact loads

    def more_epochs(card):
        card["distilled"]["epochs"] = card["distilled"]["epochs"] * 1000

    reseal(artifact, more_epochs)
    with pytest.raises(ArtifactError) as info:
        load_artifact(artifact)
    text = str(info.value)
    assert "but the card's distilled section" in text and "the card contradicts itself" in text
    assert "the card says" not in text


def test_a_card_whose_counts_do_not_multiply_out_is_refused(artifact):
    reseal(artifact, lambda card: card["distilled"].update(ipc=card["distilled"]["ipc"] + 1))
    with pytest.raises(ArtifactError, match=r"n_images \d+ != steps x classes x ipc"):
        load_artifact(artifact)


def test_altered_rates_or_targets_are_refused(artifact):
    """Tensors rewritten consistently with the card (digests resealed): the rates must be softplus of their
    raw values, each target row a probability distribution (a row summing to 1 with a negative entry)."""
    import torch.nn.functional as F

    pristine = {p.name: p.read_bytes() for p in artifact.iterdir() if p.is_file()}
    retensor(artifact, lambda t: {**t, "lrs": (F.softplus(t["raw_lrs"]) + 0.01).contiguous()})
    with pytest.raises(ArtifactError, match=r"'lrs' disagrees with softplus\(raw_lrs\)"):
        load_artifact(artifact)
    for name, data in pristine.items():
        (artifact / name).write_bytes(data)

    def negative_entry(t):
        targets = t["targets"].clone()
        targets[0] = 0.0
        targets[0, 0], targets[0, 1] = 1.5, -0.5
        return {**t, "targets": targets}

    retensor(artifact, negative_entry)
    with pytest.raises(ArtifactError, match="'targets' rows are not probability distributions"):
        load_artifact(artifact)


def test_the_image_range_is_taken_after_the_cards_mean_is_added_back(artifact):
    """Pixel units are x * std + mean: with a card mean of 0.5, images reaching 101 - 0.25 load and 101 + 0.25
    are refused (the margin is 100 pixel ranges beyond [0, 1])."""
    pristine = {p.name: p.read_bytes() for p in artifact.iterdir() if p.is_file()}
    (std,) = json.loads(pristine["card.json"])["normalization"]["std"]

    def up_to(high):
        def edit(tensors):
            x = tensors["images"]
            x = (x - x.min()) / (x.max() - x.min()) * high
            return {**tensors, "images": ((x - 0.5) / std).contiguous()}

        return edit

    def mean_half(card, tensors):
        card["normalization"]["mean"] = [0.5]

    retensor(artifact, up_to(101 - 0.25), mean_half)
    load_artifact(artifact)
    for name, data in pristine.items():
        (artifact / name).write_bytes(data)
    retensor(artifact, up_to(101 + 0.25), mean_half)
    with pytest.raises(ArtifactError, match="beyond"):
        load_artifact(artifact)


def test_images_beyond_what_the_cards_normalisation_can_give_are_refused(artifact):
    """Images x1e30 (finite) loaded and ended in a ``FloatingPointError`` traceback at the replay's first
    step. A received image must lie within IMAGE_RANGE_MARGIN pixel ranges of [0, 1] once the card's
    normalisation is undone; distilled images leaving the range by a few ranges still load."""
    import torch

    pristine = (artifact / "distilled.safetensors").read_bytes(), (artifact / "card.json").read_bytes()
    card = json.loads(pristine[1])
    (mean,), (std,) = card["normalization"]["mean"], card["normalization"]["std"]

    def to_unit_span(low, high):  # images spanning [low, high] in pixel units (x * std + mean)
        def edit(tensors):
            x = tensors["images"]
            x = (x - x.min()) / (x.max() - x.min()) * (high - low) + low
            return {**tensors, "images": ((x - mean) / std).contiguous()}

        return edit

    retensor(artifact, to_unit_span(-20.0, 21.0))  # twenty ranges out: far, but within the margin
    distilled, _ = load_artifact(artifact)
    assert float(distilled.images.detach().min() * std + mean) == pytest.approx(-20.0, rel=1e-4)
    for name, data in zip(("distilled.safetensors", "card.json"), pristine, strict=True):
        (artifact / name).write_bytes(data)
    retensor(artifact, lambda t: {**t, "images": t["images"] * torch.tensor(1e30)})
    with pytest.raises(
        ArtifactError, match=r"tensor 'images' spans \[.*e\+29.*beyond \[0, 1\] by more than 100"
    ):
        load_artifact(artifact)
    for name, data in zip(("distilled.safetensors", "card.json"), pristine, strict=True):
        (artifact / name).write_bytes(data)
    retensor(artifact, to_unit_span(0.0, 102.0))  # just past the margin
    with pytest.raises(ArtifactError, match="beyond"):
        load_artifact(artifact)


@pytest.mark.parametrize("where", ["grid.png", "distilled.safetensors"])
def test_a_private_string_in_the_grids_text_or_the_tensors_header_stops_the_write(
    tmp_path, soft_set, card_fields, monkeypatch, where
):
    """The leak search at save time reads every file's text, not the card's alone: a PNG text chunk and the
    safetensors header metadata each carrying an id stop the write, naming that file, with nothing left."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    secret = "QX-778899"
    if where == "grid.png":
        real_save_grid = artifact_mod.save_grid

        def grid_with_a_comment(path, *args, **kwargs):
            out = real_save_grid(path, *args, **kwargs)
            info = PngInfo()
            info.add_text("Comment", f"site {secret}")
            with Image.open(path) as img:
                img.load()
                img.save(path, pnginfo=info)
            return out

        monkeypatch.setattr(artifact_mod, "save_grid", grid_with_a_comment)
    else:
        real_st_save = artifact_mod.st_save
        monkeypatch.setattr(
            artifact_mod,
            "st_save",
            lambda tensors, metadata=None: real_st_save(
                tensors, metadata={**(metadata or {}), "site": secret}
            ),
        )
    out = tmp_path / "art"
    with pytest.raises(ArtifactError, match=rf"found in \['{re.escape(where)}'\]; nothing was written"):
        save_artifact(out, soft_set, card_fields, forbidden_strings=[secret], archive=True)
    assert not out.exists() and not (tmp_path / "art.zip").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (
            lambda c: c["evaluation"].update(patient_hm_std=0.6),  # just past the largest std of fractions
            r"evaluation.patient_hm_std must be in \[0, 0.5\]",
        ),
        (
            lambda c: c["distilled"].update(inner_momentum=1.0),  # momentum 1 never decays
            r"distilled.inner_momentum must be a number in \[0, 1\)",
        ),
        (lambda c: c.update(format="other-format"), r"card.json format is 'other-format', expected"),
    ],
)
def test_a_resealed_card_just_past_a_bound_is_a_message(artifact, edit, field):
    reseal(artifact, edit)
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


def test_the_size_cap_counts_all_files_together(tmp_path, artifact, monkeypatch):
    """Each file under the cap, their sum over it: refused, in a folder and in a zip."""
    sizes = {p.name: p.stat().st_size for p in artifact.iterdir()}
    monkeypatch.setattr(artifact_mod, "MAX_MEMBER_BYTES", sum(sizes.values()) - 1)
    assert max(sizes.values()) < sum(sizes.values()) - 1
    for path in (artifact, artifact.with_suffix(".zip")):
        with pytest.raises(ArtifactError, match=rf"its files claim {sum(sizes.values())} bytes in all"):
            load_artifact(path)
    monkeypatch.setattr(artifact_mod, "MAX_MEMBER_BYTES", sum(sizes.values()))
    load_artifact(artifact)


def test_targets_that_are_not_the_soft_labels_of_the_logits_are_refused(artifact):
    """Targets rewritten as other probability distributions (rows swapped), digests resealed: they disagree
    with softmax(label_logits / temperature), which is what a site trains from."""

    def swapped(t):
        return {**t, "targets": t["targets"].flip(0).contiguous()}

    retensor(artifact, swapped)
    with pytest.raises(ArtifactError, match="'targets' disagrees with the soft labels of label_logits"):
        load_artifact(artifact)


def _zip_with_method(path: Path, artifact: Path, method: int, flag_bits: int = 0) -> Path:
    """The artifact's three files zipped, each member's header then saying compression ``method`` and
    general-purpose flags ``flag_bits`` (bit 0: encrypted), as another zip tool writes them."""
    _zip(path, list(_members(artifact).items()))
    data = bytearray(path.read_bytes())
    for signature, flags_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        start = 0
        while (at := data.find(signature, start)) >= 0:
            data[at + flags_at : at + flags_at + 2] = (
                int.from_bytes(data[at + flags_at : at + flags_at + 2], "little") | flag_bits
            ).to_bytes(2, "little")
            data[at + method_at : at + method_at + 2] = method.to_bytes(2, "little")
            start = at + 4
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_zip_or_an_unknown_compression_is_a_message(tmp_path, artifact):
    """A password-protected zip (often made to send by e-mail) ended in zipfile's RuntimeError traceback,
    7-Zip's AES (method 99) in a NotImplementedError one."""
    encrypted = _zip_with_method(tmp_path / "enc.zip", artifact, zipfile.ZIP_DEFLATED, flag_bits=0x1)
    with pytest.raises(RuntimeError, match="encrypted"), zipfile.ZipFile(encrypted) as zf:
        zf.read("card.json")  # what the loader met before
    with pytest.raises(
        ArtifactError, match=r"enc.zip: member '.*' is encrypted \(a password-protected zip\); unzip"
    ):
        load_artifact(encrypted)
    aes = _zip_with_method(tmp_path / "aes.zip", artifact, 99)
    with pytest.raises(ArtifactError, match=r"aes.zip: member '.*' uses zip compression method 99, which"):
        load_artifact(aes)


def test_a_zip_of_many_members_is_refused_at_once_with_a_short_message(tmp_path, artifact):
    """30,000 members took seconds to check (a count per name) and the message listed every one."""
    path = _zip(tmp_path / "many.zip", [(f"m{i:05d}", b"") for i in range(5000)])
    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    assert str(info.value).startswith("many.zip holds 5000 entries (the first: ['m00000', 'm00001'")
    assert len(str(info.value)) < 300


def test_a_device_or_pipe_is_refused_before_anything_reads_it(tmp_path):
    """/dev/zero was read without end (killed for memory)."""
    import os

    fifo = tmp_path / "soft.zip"
    os.mkfifo(fifo)
    for path in (Path("/dev/zero"), fifo):
        with pytest.raises(ArtifactError, match=r"is neither a folder nor a regular file \(a device, pipe"):
            load_artifact(path)


def test_a_renamed_zip_and_the_folder_above_the_artifacts_get_their_advice(tmp_path, artifact):
    renamed = tmp_path / "soft.bin"
    renamed.write_bytes((tmp_path / "art.zip").read_bytes())  # a mail gateway's renaming
    with pytest.raises(ArtifactError, match=r"Pickles can run code.* name it soft.zip and pass it again"):
        load_artifact(renamed)
    other = tmp_path / "model.bin"
    other.write_bytes(b"\x80\x04")
    with pytest.raises(ArtifactError, match=r"model.bin is a pickle-capable file.*refusing\.$"):
        load_artifact(other)
    # <run>/artifacts, the folder above the artifacts: "a renamed file?" before
    with pytest.raises(
        ArtifactError, match=rf"{tmp_path} holds artifacts \(art, art.zip\), not the files of one"
    ):
        load_artifact(tmp_path)


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_damaged_compressed_member_is_a_damaged_zip(tmp_path, artifact, method):
    """Bytes flipped inside card.json's compressed stream (a damaged download): deflate's zlib.error and
    lzma's LZMAError came out as tracebacks (bzip2's OSError was caught)."""
    path = tmp_path / "damaged.zip"
    with zipfile.ZipFile(path, "w", method) as zf:
        for name, data in _members(artifact).items():
            zf.writestr(name, data)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("card.json")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # the member's data
    for i in range(start + 4, start + 20):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(
        ArtifactError, match=r"damaged.zip is a damaged zip archive \(.*\); download it again"
    ):
        load_artifact(path)


def test_images_that_are_not_finite_or_far_below_the_range_are_refused(artifact):
    """NaN passed the range check (every comparison with NaN is false), so the finiteness check is what
    stops it; images reaching -1e30 on the low side alone are refused by the range's lower end."""
    import torch

    pristine = {p.name: p.read_bytes() for p in artifact.iterdir()}

    def nan_pixel(tensors):
        images = tensors["images"].clone()
        images[0, 0, 0, 0] = float("nan")
        return {**tensors, "images": images}

    retensor(artifact, nan_pixel)
    with pytest.raises(ArtifactError, match="tensor 'images' has non-finite values"):
        load_artifact(artifact)
    for name, data in pristine.items():
        (artifact / name).write_bytes(data)
    retensor(artifact, lambda t: {**t, "images": t["images"] - t["images"].abs().max() * torch.tensor(1e30)})
    with pytest.raises(ArtifactError, match=r"tensor 'images' spans \[-.*e\+\d+, .*\] in pixel units"):
        load_artifact(artifact)


def test_a_grid_that_is_not_the_one_the_card_lists_is_refused(artifact):
    """People open grid.png in an image viewer: a swapped or edited one is refused like the tensors."""
    grid = bytearray((artifact / "grid.png").read_bytes())
    grid[-20] ^= 0xFF  # same size, other bytes
    (artifact / "grid.png").write_bytes(bytes(grid))
    with pytest.raises(ArtifactError, match="grid.png was modified: its sha256 does not match the card"):
        load_artifact(artifact)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c: c.update(description="C:\\data\\x"), r"card.description: the value contains a path sep"),
        (lambda c: c.update(description="~smith/x"), "card.description: the value"),
        (lambda c: c.update(description="~x"), "card.description: the value looks like a file path"),
        (
            lambda c: c.update(description="1.2.840.113619.2.55.3"),
            "card.description: the value looks like a DICOM UID",
        ),
        (
            lambda c: c.update(description="x\x9b2J"),
            "card.description: the value contains a control character",
        ),
        (lambda c: c.update(description="x\x7f"), "card.description: the value contains a control character"),
        (lambda c: c.update(anonymity={"patient_id": 1}), r"card.anonymity.patient_id: keys naming paths"),
        (
            lambda c: c["distilled"].update(mode="evil"),
            r"distilled.mode must be 'soft' or 'hard' \(got str\)",
        ),
    ],
)
def test_what_the_writer_refuses_is_refused_on_a_resealed_card(artifact, edit, field):
    """Each kind of string and key the writer keeps off a card (paths in Windows and home form, DICOM UIDs,
    8-bit and DEL control characters, private keys in a record), and a label mode DistilledSet would refuse
    with its own error type."""
    reseal(artifact, edit)
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


def test_a_renamed_torch_archive_gets_no_rename_advice(tmp_path):
    import torch

    path = tmp_path / "model.bin"
    torch.save({"w": torch.zeros(2)}, path)  # a zip holding data.pkl
    with pytest.raises(ArtifactError) as info:
        load_artifact(path)
    assert "pickle-capable" in str(info.value) and "name it" not in str(info.value)


@pytest.mark.parametrize(
    ("edit", "field"),
    [  # just past each bound of the published figures a site compares with
        (lambda e: e.update(patch_accuracy_mean=1.005), r"evaluation.patch_accuracy_mean must be a fraction"),
        (
            lambda e: e.update(patch_accuracy_mean=-0.005),
            r"evaluation.patch_accuracy_mean must be a fraction",
        ),
        (lambda e: e.update(patient_hm_std=0.505), r"evaluation.patient_hm_std must be in \[0, 0.5\]"),
        (lambda e: e.update(patient_hm_std=-0.005), r"evaluation.patient_hm_std must be in \[0, 0.5\]"),
    ],
)
def test_published_figures_just_past_their_bounds_are_refused(artifact, edit, field):
    reseal(artifact, lambda c: edit(c["evaluation"]))
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


def test_a_path_in_the_package_record_is_refused(artifact):
    """The writer checks its own records (distilled, package, tensors) as it checks the caller's fields."""
    reseal(artifact, lambda c: c["package"].update(torch="/home/alice/patient_1234.dcm"))
    with pytest.raises(ArtifactError, match=r"card.package.torch: the value"):
        load_artifact(artifact)
