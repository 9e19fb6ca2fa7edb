"""Forging a received artifact as a tester would: edit its card (and tensors), recompute the digests the
card lists and seal it again. The seal is a checksum, so only the loader's checks stand in the way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gastrodistill.sharing.artifact import tensors_metadata
from gastrodistill.sharing.card import seal

#: ``retensor``'s default: the tensors file's metadata as the artifact writer puts it.
WRITERS = object()


def reseal(folder: Path, edit) -> None:
    """Apply ``edit(card)`` to the artifact folder's card and seal it again."""
    card = json.loads((folder / "card.json").read_text())
    edit(card)
    (folder / "card.json").write_text(json.dumps(seal({k: v for k, v in card.items() if k != "card_sha256"})))


def retensor(folder: Path, edit_tensors, edit_card=lambda card, tensors: None, metadata=WRITERS) -> None:
    """Rewrite the artifact's tensors with ``edit_tensors`` and its card with ``edit_card``, with the file
    digests and sizes the card lists recomputed and the card resealed: a consistent forgery. The tensors
    file's header carries ``metadata``: by default the one the writer puts there (:data:`WRITERS`)."""
    from safetensors.torch import load_file, save_file

    if metadata is WRITERS:
        metadata = tensors_metadata(json.loads((folder / "card.json").read_text())["schema_version"])
    tensors = edit_tensors(load_file(str(folder / "distilled.safetensors")))
    save_file(tensors, str(folder / "distilled.safetensors"), metadata=metadata)
    data = (folder / "distilled.safetensors").read_bytes()

    def edit(card):
        card["files"]["distilled.safetensors"] = {
            "sha256": hashlib.sha256(data).hexdigest(),
            "bytes": len(data),
        }
        edit_card(card, tensors)

    reseal(folder, edit)
