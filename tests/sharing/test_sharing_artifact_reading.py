"""Reading a received artifact: bounded memory, no file outside it, and a message for every malformed card.

Each case was a finding of a review that built crafted artifacts: a small zip that inflated to gigabytes
before any check, a folder whose ``grid.png`` was a symbolic link to a file outside it (loaded), duplicate
zip members (the last copy loaded), and resealed cards whose fields had the wrong type (tracebacks) or
range (``std: [0]``: a site divided by zero; ``steps: 2.7``: silently 2)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

import gastrodistill.sharing.artifact as artifact_mod
from gastrodistill.sharing.artifact import ArtifactError, load_artifact, save_artifact
from gastrodistill.sharing.card import seal


@pytest.fixture
def artifact(tmp_path, soft_set, card_fields) -> Path:
    return save_artifact(tmp_path / "art", soft_set, card_fields, archive=True)


def _reseal(folder: Path, edit) -> None:
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(seal({k: v for k, v in card.items() if k != "card_sha256"})))


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
        (lambda c: c.update(class_names=3), "class_names must be a list of 3 strings"),
    ],
)
def test_a_resealed_card_with_a_malformed_field_is_a_message(artifact, edit, field):
    _reseal(artifact, edit)
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


def _retensor(folder: Path, edit_tensors, edit_card) -> None:
    """Rewrite the artifact's tensors with ``edit_tensors`` and its card with ``edit_card``, with the file
    digests and sizes the card lists recomputed and the card resealed: a consistent forgery."""
    import hashlib

    from safetensors.torch import load_file, save_file

    tensors = edit_tensors(load_file(str(folder / "distilled.safetensors")))
    save_file(tensors, str(folder / "distilled.safetensors"))
    data = (folder / "distilled.safetensors").read_bytes()

    def edit(card):
        card["files"]["distilled.safetensors"] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        edit_card(card, tensors)

    _reseal(folder, edit)


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

    _retensor(artifact, half, card_half)
    with pytest.raises(ArtifactError, match="has dtype float16; artifacts hold float32 tensors only"):
        load_artifact(artifact)
    for name, data in pristine.items():
        (artifact / name).write_bytes(data)
    load_artifact(artifact)  # the pristine artifact loads

    def more_epochs(card):
        card["distilled"]["epochs"] = card["distilled"]["epochs"] * 1000

    _reseal(artifact, more_epochs)
    with pytest.raises(ArtifactError) as info:
        load_artifact(artifact)
    text = str(info.value)
    assert "but the card's distilled section" in text and "the card contradicts itself" in text
    assert "the card says" not in text
