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


def test_compressed_text_up_to_the_limit_exactly_is_read_and_one_byte_more_is_not(monkeypatch):
    """The limit is the most bytes inflated, itself included (kills ``<=`` for ``<`` and a budget counted
    in compressed bytes): two zTXt chunks of 1,500 bytes each inflate to 3,000."""
    png = _noisy_png(ztxt={"a": "b" * 1500, "c": "d" * 1500})
    monkeypatch.setattr(tp, "MAX_INFLATED_BYTES", 3000)
    parts = text_parts(png)
    assert parts.count(b"b" * 1500) == 1 and parts.count(b"d" * 1500) == 1
    monkeypatch.setattr(tp, "MAX_INFLATED_BYTES", 2999)
    with pytest.raises(tp.UnsearchableError, match="more than 2999 bytes"):
        text_parts(png)


def test_a_zip_members_local_extra_field_is_kept_and_only_its_data_left_out():
    """Kills a member's data taken to start after its name (before its local extra field): the parts are
    the archive less exactly each member's compressed bytes, and the extra field's text is in them twice
    (its local header's and the central directory's copy)."""
    info = zipfile.ZipInfo("a.txt")
    marker = b"Kowalski_EXTRA"
    info.extra = b"\xca\xfe" + len(marker).to_bytes(2, "little") + marker
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(info, b"PAYLOAD-" * 8)
    data = buf.getvalue()
    parts = text_parts(data)
    assert parts.count(marker) == 2
    assert b"PAYLOAD-" not in parts and len(parts) == len(data) - 64


def test_a_safetensors_file_with_bytes_past_its_tensors_is_searched_whole():
    """Text appended after the last tensor's bytes is not a safetensors file's payload: the file does not
    parse as one and is searched whole (kills the offsets' end compared with ``>`` only)."""
    blob = save({"images": torch.zeros(4, dtype=torch.uint8)})
    assert text_parts(blob) == blob[: 8 + int.from_bytes(blob[:8], "little")]  # small: under 100 bytes
    appended = blob + b"patient Kowalski_1002"
    assert text_parts(appended) == appended


def test_a_header_that_does_not_open_with_a_brace_or_a_zip_that_does_not_parse_is_searched_whole():
    """The safetensors format's header starts with ``{``; a leading space is another file. A file that
    starts like a zip and is none is searched whole, not an error."""
    header = b' {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}}'
    data = len(header).to_bytes(8, "little") + header + b"ab"
    assert text_parts(data) == data
    fake_zip = b"PK\x03\x04 not a zip, patient Kowalski_1002"
    assert text_parts(fake_zip) == fake_zip


def _central_entries(data: bytes) -> tuple[int, list[bytes]]:
    """Where a zip's central directory starts and its entries' bytes (zip format: a 46-byte header, then
    name, extra field and comment, their lengths at offsets 28, 30 and 32)."""
    import struct

    start = struct.unpack("<I", data[data.rindex(b"PK\x05\x06") + 16 :][:4])[0]
    entries, pos = [], start
    while data[pos : pos + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack("<HHH", data[pos + 28 : pos + 34])
        entries.append(data[pos : pos + 46 + n + m + k])
        pos += 46 + n + m + k
    return start, entries


def test_only_each_members_compressed_bytes_are_left_out_in_any_order_of_the_directory():
    """A deflated member's compressed size, not its size, is what is left out (kills the member's size,
    which swallowed the next member's header); a central directory that lists the members in another order
    than the archive holds them leaves out the same bytes (kills the members taken in the directory's
    order)."""
    members = {"notes_Kowalski.txt": b"patient " * 600, "b_Nowak.txt": bytes(range(256)) * 4}
    data = _zip(members)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        compressed = sum(i.compress_size for i in zf.infolist())
    assert compressed < sum(len(v) for v in members.values())
    parts = text_parts(data)
    assert len(parts) == len(data) - compressed
    assert parts.count(b"notes_Kowalski.txt") == 2 and parts.count(b"b_Nowak.txt") == 2
    start, entries = _central_entries(data)
    reordered = data[:start] + b"".join(reversed(entries)) + data[start + sum(map(len, entries)) :]
    assert [i.filename for i in zipfile.ZipFile(io.BytesIO(reordered)).infolist()] == [
        "b_Nowak.txt",
        "notes_Kowalski.txt",
    ]
    assert len(text_parts(reordered)) == len(reordered) - compressed


def test_a_zip_whose_directory_points_at_no_local_header_or_twice_at_one_is_searched_whole():
    """A received archive can be crafted: a member whose local header lacks its signature, or two entries of
    the directory at one local header (overlapping members), is searched whole (kills either check)."""
    data = _zip({"a.txt": b"A" * 40, "b.txt": b"patient Kowalski_1002 " * 2}, stored=True)
    second = data.index(b"PK\x03\x04", 4)
    unsigned = data[:second] + b"XX" + data[second + 2 :]
    assert text_parts(unsigned) == unsigned
    start, entries = _central_entries(data)
    at_first = entries[1][:42] + (0).to_bytes(4, "little") + entries[1][46:]  # b's header offset -> a's
    overlapping = data[:start] + entries[0] + at_first + data[start + sum(map(len, entries)) :]
    assert [i.header_offset for i in zipfile.ZipFile(io.BytesIO(overlapping)).infolist()] == [0, 0]
    assert text_parts(overlapping) == overlapping
