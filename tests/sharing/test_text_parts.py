"""The private-string search reads the text of an artifact's files, not their pixel or tensor payload,
where a short id turns up by chance; and nothing it did not read passes as clean."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save

from gastrodistill.anonymity.text_check import MAX_ZIP_DEPTH, PrivateStrings, scan_for_strings
from gastrodistill.sharing import text_parts as tp
from gastrodistill.sharing.card import find_strings
from gastrodistill.sharing.text_parts import text_parts

TOKEN_DIGITS = re.compile(rb"(?<![0-9A-Za-z])(?<![0-9]\.)([0-9]{4})(?![0-9A-Za-z])(?!\.[0-9])")


def _search(data: bytes, strings: list[str]) -> set[int]:
    """Indices of ``strings`` found in the text of one file, as the artifact writer searches it."""
    return {i for _, i in find_strings({"f": text_parts(data)}, strings)}


def _private(**kinds: str) -> PrivateStrings:
    strings = PrivateStrings()
    for kind, value in kinds.items():
        strings.add(value, kind, 1)
    return strings


def _noisy_png(text: dict[str, str] | None = None, ztxt: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    for k, v in (ztxt or {}).items():
        info.add_text(k, v, zip=True)
    pixels = (np.random.default_rng(0).random((1200, 1200, 3)) * 255).astype(np.uint8)  # 4.3 MB
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _zip(members: dict[str, bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_an_id_that_compressed_pixels_hold_by_chance_is_no_leak():
    png = _noisy_png()
    chance = sorted({m.group(1).decode() for m in TOKEN_DIGITS.finditer(png)})  # 4-digit tokens in the bytes
    assert chance, "the noisy PNG holds no 4-digit token: draw another"
    assert _search(png, chance) == set()  # read as a PNG: its chunks, not its pixels
    assert len(_search(png + b"x", chance)) == len(chance)  # not a PNG that parses: searched whole


def test_text_chunks_are_searched_compressed_or_not():
    png = _noisy_png(text={"Comment": "patient QX-778899"}, ztxt={"Author": "Dr Plonkit Vrrm"})
    assert b"Plonkit" not in png  # deflated in its zTXt chunk: the whole-file search missed it
    assert _search(png, ["QX-778899", "Plonkit", "1234"]) == {0, 1}
    itxt = PngImagePlugin.PngInfo()
    itxt.add_itxt("Description", "Zyxwvut Qwerty", lang="en", tkey="Beschreibung", zip=True)
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG", pnginfo=itxt)
    assert _search(buf.getvalue(), ["Zyxwvut"]) == {0}


def test_safetensors_header_and_metadata_are_searched_and_the_payload_is_not():
    payload = torch.tensor(list(b" 1002 | 1003 "), dtype=torch.uint8)  # ids as bytes of the tensor data
    blob = save({"images": payload}, metadata={"format": "site QX-778899"})
    assert b" 1002 " in blob
    assert text_parts(blob) == blob[: 8 + int.from_bytes(blob[:8], "little")]
    assert _search(blob, ["1002", "1003", "QX-778899", "images"]) == {2, 3}
    truncated = blob[:-1]  # offsets no longer end where the file ends: searched whole
    assert text_parts(truncated) == truncated


@pytest.mark.parametrize(
    "header",
    [b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, Infinity]}}', b'{"a": ' + b"[" * 100_000],
)
def test_a_crafted_safetensors_header_is_searched_whole(header):
    data = len(header).to_bytes(8, "little") + header + b"1234"
    assert text_parts(data) == data


@pytest.mark.parametrize("data", [b"", b"{}", b'{"a": 1}' * 3, b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_anything_else_is_searched_whole(data):
    assert text_parts(data) == data


def test_a_zip_is_searched_but_its_members_data(tmp_path):
    """Names (as stored: UTF-8 without the zip's UTF-8 flag, as macOS writes them), comments and text
    appended to the archive are searched; a member's data is searched as its own file, decompressed, a zip
    inside a zip too. A breaker found the first version searched neither the stored names nor appended
    text."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Zyxwvut_scan.png", b"payload QX-778899 " * 50)
        zf.comment = b"from site 4455"
    assert _search(buf.getvalue(), ["Zyxwvut", "4455", "QX-778899"]) == {0, 1}
    unflagged = _zip({"grid.png": b"x"}).replace(b"grid.png", "Mülr.pn".encode())  # same length, no flag
    assert _search(unflagged, ["Mülr"]) == {0}
    appended = _zip({"a.txt": b"hello"}) + b"\nsource: /data/StMary/Kowalski_1002\n"
    assert _search(appended, ["Kowalski_1002"]) == {0}

    (tmp_path / "outer.zip").write_bytes(_zip({"inner.zip": _zip({"note.txt": b"patient Kowalski\n"})}))
    (tmp_path / "flag.zip").write_bytes(unflagged)
    rows = scan_for_strings(
        [tmp_path / "outer.zip", tmp_path / "flag.zip"], _private(name="Kowalski", path="Mülr")
    )
    assert {(r["file"], r["kind"]) for r in rows} == {
        ("outer.zip!inner.zip!note.txt", "name"),
        ("flag.zip", "path"),
    }


def test_a_zip_past_the_depth_limit_or_unreadable_is_searched_whole(tmp_path):
    """A reviewer's case: at the depth limit the last zip was kept as one blob whose members' data the
    search then left out, so a stored id four zips deep went unsearched."""
    data = _zip({"id.txt": b"patient PAT98765\n"}, stored=True)
    for _ in range(MAX_ZIP_DEPTH):
        data = _zip({"inner.zip": data}, stored=True)
    (tmp_path / "deep.zip").write_bytes(data)
    rows = scan_for_strings([tmp_path / "deep.zip"], _private(patient_id="PAT98765"))
    assert rows == [{"file": "deep.zip" + "!inner.zip" * MAX_ZIP_DEPTH, "kind": "patient_id"}]
    stored = bytearray(_zip({"a.txt": b"x" * 50, "id.txt": b"patient PAT98765\n"}, stored=True))
    stored[40:44] = b"\xff\xff\xff\xff"  # a.txt's data damaged: its CRC fails, so no member is read
    (tmp_path / "damaged.zip").write_bytes(bytes(stored))
    rows = scan_for_strings([tmp_path / "damaged.zip"], _private(patient_id="PAT98765"))
    assert rows == [{"file": "damaged.zip", "kind": "patient_id"}]  # searched whole, the id found


def test_text_past_the_inflate_limit_is_not_declared_clean(monkeypatch, tmp_path):
    """A received file's zTXt chunks could inflate to gigabytes (545 MB from 249 KB in 16 chunks each under
    a per-chunk limit); the limit is per file, and a file past it is reported unsearchable, not clean (the
    first version passed an id behind the limit)."""
    monkeypatch.setattr(tp, "MAX_INFLATED_BYTES", 3000)
    fits = _noisy_png(ztxt={"a": "b" * 1000, "c": "d" * 1000})
    assert text_parts(fits).count(b"b" * 1000) == 1 and text_parts(fits).count(b"d" * 1000) == 1
    for over in (
        _noisy_png(ztxt={"Comment": "a" * 5000 + " QX-778899"}),  # one chunk past the limit
        _noisy_png(ztxt={f"k{i}": "b" * 1000 for i in range(4)}),  # four under it, past it together
    ):
        with pytest.raises(tp.UnsearchableError, match="inflate to more than 3000 bytes"):
            text_parts(over)
        (tmp_path / "grid.png").write_bytes(over)
        rows = scan_for_strings([tmp_path / "grid.png"], _private(patient_id="QX-778899"))
        assert [r["file"] for r in rows] == ["grid.png"] and rows[0]["kind"].startswith("unsearchable: ")


def test_a_zip_whose_members_add_up_to_the_limit_exactly_is_read_member_by_member(monkeypatch, tmp_path):
    """``MAX_MEMBER_BYTES`` is the most a zip's members may declare and still be read one by one: at the
    limit a deflated member's id is found in its decompressed text (the zip's own bytes do not hold it)."""
    from gastrodistill.sharing import artifact

    note = b"patient Kowalski_1002\n" * 40
    data = _zip({"note.txt": note})
    assert b"Kowalski_1002" not in data  # deflated: only the member's own text holds the id
    monkeypatch.setattr(artifact, "MAX_MEMBER_BYTES", len(note))
    (tmp_path / "a.zip").write_bytes(data)
    rows = scan_for_strings([tmp_path / "a.zip"], _private(patient_id="Kowalski_1002"))
    assert rows == [{"file": "a.zip!note.txt", "kind": "patient_id"}]
