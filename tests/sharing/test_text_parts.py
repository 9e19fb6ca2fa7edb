"""The private-string search reads the text of an artifact's files, not their pixel or tensor payload,
where a short id turns up by chance."""

from __future__ import annotations

import io
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from safetensors.torch import save

from gastrodistill.sharing.card import find_strings
from gastrodistill.sharing.text_parts import text_parts

TOKEN_DIGITS = re.compile(rb"(?<![0-9A-Za-z])(?<![0-9]\.)([0-9]{4})(?![0-9A-Za-z])(?!\.[0-9])")


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


def test_an_id_that_compressed_pixels_hold_by_chance_is_no_leak():
    png = _noisy_png()
    chance = sorted({m.group(1).decode() for m in TOKEN_DIGITS.finditer(png)})  # 4-digit tokens in the bytes
    assert chance, "the noisy PNG holds no 4-digit token: draw another"
    assert find_strings({"raw": png}, chance) == []  # read as a PNG: its chunks, not its pixels
    assert len(find_strings({"raw": png + b"x"}, chance)) == len(chance)  # not a PNG that parses: whole


def test_text_chunks_are_searched_compressed_or_not():
    png = _noisy_png(text={"Comment": "patient QX-778899"}, ztxt={"Author": "Dr Plonkit Vrrm"})
    assert b"Plonkit" not in png  # deflated in its zTXt chunk
    assert {i for _, i in find_strings({"grid.png": png}, ["QX-778899", "Plonkit", "1234"])} == {0, 1}
    itxt = PngImagePlugin.PngInfo()
    itxt.add_itxt("Description", "Zyxwvut Qwerty", lang="en", tkey="Beschreibung", zip=True)
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG", pnginfo=itxt)
    assert find_strings({"g.png": buf.getvalue()}, ["Zyxwvut"]) == [("g.png", 0)]


def test_safetensors_header_and_metadata_are_searched_and_the_payload_is_not():
    payload = torch.tensor(list(b" 1002 | 1003 "), dtype=torch.uint8)  # ids as bytes of the tensor data
    blob = save({"images": payload}, metadata={"format": "site QX-778899"})
    assert b" 1002 " in blob
    assert text_parts(blob) == blob[: 8 + int.from_bytes(blob[:8], "little")]
    assert find_strings({"distilled.safetensors": blob}, ["1002", "1003", "QX-778899", "images"]) == [
        ("distilled.safetensors", 2),
        ("distilled.safetensors", 3),
    ]
    truncated = blob[:-1]  # offsets no longer end where the file ends: searched whole
    assert text_parts(truncated) == truncated


def test_a_zip_is_read_for_its_names_and_comments():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("Zyxwvut_scan.png", b"payload QX-778899 " * 50)
        zf.comment = b"from site 4455"
    data = buf.getvalue()
    hits = {i for _, i in find_strings({"a.zip": data}, ["Zyxwvut", "4455", "QX-778899"])}
    assert hits == {0, 1}  # the member's content is searched as its own blob, decompressed


@pytest.mark.parametrize("data", [b"", b"{}", b'{"a": 1}' * 3, b"\x89PNG\r\n\x1a\n\x00\x00"])
def test_anything_else_is_searched_whole(data):
    assert text_parts(data) == data


def test_a_compressed_text_chunk_is_inflated_up_to_a_limit(monkeypatch):
    """A received file's zTXt chunk could inflate to gigabytes; text past the limit is not read."""
    from gastrodistill.sharing import text_parts as tp

    monkeypatch.setattr(tp, "MAX_INFLATED_BYTES", 1000)
    png = _noisy_png(ztxt={"Comment": "a" * 5000 + " QX-778899"})
    parts = text_parts(png)
    assert b"a" * 1000 in parts and b"a" * 1001 not in parts
    assert find_strings({"g.png": png}, ["QX-778899"]) == []


def _zip(members: dict[str, bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_a_zip_is_searched_but_its_members_data(tmp_path):
    """A breaker's cases: a name stored as UTF-8 without the UTF-8 flag (macOS), text appended after the
    archive, a zip inside the zip. All were found by the whole-file search, and are found again."""
    from gastrodistill.anonymity.text_check import PrivateStrings, scan_for_strings

    unflagged = _zip({"grid.png": b"x"}).replace(b"grid.png", "Mülr.pn".encode())  # same length, no flag
    assert find_strings({"a.zip": unflagged}, ["Mülr"]) == [("a.zip", 0)]
    appended = _zip({"a.txt": b"hello"}) + b"\nsource: /data/StMary/Kowalski_1002\n"
    assert find_strings({"a.zip": appended}, ["Kowalski_1002"]) == [("a.zip", 0)]
    inner = _zip({"note.txt": b"patient Kowalski\n"})
    (tmp_path / "outer.zip").write_bytes(_zip({"inner.zip": inner}, stored=False))
    (tmp_path / "flag.zip").write_bytes(unflagged)
    strings = PrivateStrings()
    strings.add("Kowalski", "patient_name", 1)
    strings.add("Mülr", "path", 1)
    found = {
        (r["file"], r["kind"])
        for r in scan_for_strings([tmp_path / "outer.zip", tmp_path / "flag.zip"], strings)
    }
    assert ("outer.zip!inner.zip!note.txt", "patient_name") in found
    assert {f for f, k in found if k == "path"} == {
        "flag.zip",
        f"flag.zip!{'Mülr.pn'.encode().decode('cp437')}:name",
    }


def test_compressed_text_chunks_share_one_inflate_budget(monkeypatch):
    """Many zTXt chunks each under the limit inflated to 545 MB from a 249 KB file; the limit is per file."""
    from gastrodistill.sharing import text_parts as tp

    monkeypatch.setattr(tp, "MAX_INFLATED_BYTES", 3000)
    png = _noisy_png(ztxt={f"k{i}": "b" * 2000 for i in range(8)})
    assert text_parts(png).count(b"b" * 100) <= 3000 // 100


@pytest.mark.parametrize(
    "header",
    [b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, Infinity]}}', b'{"a": ' + b"[" * 100_000],
)
def test_a_crafted_safetensors_header_is_searched_whole(header):
    data = len(header).to_bytes(8, "little") + header + b"1234"
    assert text_parts(data) == data
