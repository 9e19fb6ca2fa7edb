"""The parts of an artifact's files that hold text, for the private-string search.

An artifact's PNG and safetensors files are mostly payload: deflate-compressed pixels (``IDAT``) and raw
tensor bytes. Those bytes are not text, and over megabytes of them a short id turns up by chance: a
27 MB PNG of noisy pixels held 6 of 2,000 four-digit ids as bytes with no letter or digit beside them,
which refused the artifact though no id was in it. Text reaches these files only through their
structure: a PNG's other chunks (``tEXt``, ``zTXt``, ``iTXt``, ...), the safetensors JSON header and its
``__metadata__``, a zip's headers, names and comments. :func:`text_parts` keeps those; any other file is
searched whole. (Text drawn into the pixels is the audit's burned-in-text check's, not a byte search's.)
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class UnsearchableError(ValueError):
    """A file holds more text than the search reads (compressed text chunks past
    :data:`MAX_INFLATED_BYTES`): what was not read cannot be declared free of private strings."""


#: PNG chunks whose data is compressed text after a keyword (PNG 1.2, sections 4.2.3.2 and 4.2.3.3).
COMPRESSED_TEXT_CHUNKS = (b"zTXt", b"iTXt")
#: Largest safetensors header read as one (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: Most bytes the compressed text chunks of one PNG are inflated to, together: a received file's chunks
#: could inflate to gigabytes (a decompression bomb); a file holding more is :class:`UnsearchableError`.
MAX_INFLATED_BYTES = 16_000_000


def text_parts(data: bytes) -> bytes:
    """The bytes of ``data`` that can hold text: for a PNG every chunk but ``IDAT`` (type and data), with
    the decompressed text of ``zTXt``/``iTXt`` chunks added; for a safetensors file its length prefix and
    JSON header; for a zip archive every byte but its members' data (names, comments, anything appended;
    the members are searched on their own, decompressed); else ``data`` itself. A file that does not
    parse as what its first bytes say is returned whole. Raises :class:`UnsearchableError` for a PNG whose
    compressed text chunks inflate past :data:`MAX_INFLATED_BYTES` together."""
    if data.startswith(PNG_SIGNATURE):
        parts = _png_text(data)
    elif data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        parts = _zip_text(data)
    else:
        parts = safetensors_header(data)
    return data if parts is None else parts


def _png_text(data: bytes) -> bytes | None:
    out, pos = [data[: len(PNG_SIGNATURE)]], len(PNG_SIGNATURE)
    budget = [MAX_INFLATED_BYTES]  # left to inflate, shared by the file's chunks
    while pos < len(data):
        if pos + 8 > len(data):
            return None
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return None
        if kind != b"IDAT":
            body = data[pos + 8 : pos + 8 + length]
            out.append(data[pos:end])
            if kind in COMPRESSED_TEXT_CHUNKS:
                out.append(_inflated_text(kind, body, budget))
        pos = end
    return b"\n".join(out)


def _inflated_text(kind: bytes, body: bytes, budget: list[int]) -> bytes:
    """The text of a ``zTXt`` (keyword, 0, method, deflate) or compressed ``iTXt`` chunk (keyword, 0,
    flag, method, language, 0, translated keyword, 0, text); the chunk as it is when it does not inflate."""
    try:
        keyword_end = body.index(b"\0")
        if kind == b"zTXt":
            return _inflate(body[keyword_end + 2 :], budget)
        flag = body[keyword_end + 1]
        rest = body[keyword_end + 3 :]
        language_end = rest.index(b"\0")
        translated_end = rest.index(b"\0", language_end + 1)
        text = rest[translated_end + 1 :]
        return _inflate(text, budget) if flag else text
    except UnsearchableError:
        raise
    except (ValueError, IndexError, zlib.error):
        return body


def _inflate(data: bytes, budget: list[int]) -> bytes:
    """``data`` inflated (zlib); the budget ``budget[0]`` is reduced by its size. Raises
    :class:`UnsearchableError` when it inflates to more than the budget left."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, budget[0] + 1)
    budget[0] -= len(text)
    if budget[0] < 0:
        raise UnsearchableError(
            f"its compressed text chunks inflate to more than {MAX_INFLATED_BYTES} bytes, which are not "
            "searched"
        )
    return text


def _zip_text(data: bytes) -> bytes | None:
    """Every byte of a zip archive but its members' (compressed) data: local headers and the central
    directory with each name's stored bytes, extra fields and comments, and anything before, between or
    after the members (text appended to an archive, a first archive of two joined). None (search it
    whole) when it does not parse or its members overlap."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError):
        return None
    payloads = []
    for info in infos:
        head = info.header_offset
        if data[head : head + 4] != b"PK\x03\x04" or head + 30 > len(data):
            return None
        name_len, extra_len = struct.unpack("<HH", data[head + 26 : head + 30])
        start = head + 30 + name_len + extra_len
        payloads.append((start, start + info.compress_size))
    kept, pos = [], 0
    for start, end in sorted(payloads):
        if start < pos or end > len(data):
            return None
        kept.append(data[pos:start])
        pos = end
    kept.append(data[pos:])
    return b"".join(kept)


def safetensors_header(data: bytes) -> bytes | None:
    """The 8-byte length and JSON header of a safetensors file, when ``data`` is one (the header parses as
    a JSON object and its tensors' offsets end where the file ends); else None."""
    if len(data) < 10:
        return None
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or 8 + n > len(data) or data[8:9] != b"{":
        return None
    try:
        header = json.loads(data[8 : 8 + n])
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, RecursionError):
        return None
    if max(ends, default=0) != len(data) - 8 - n:
        return None
    return data[: 8 + n]
