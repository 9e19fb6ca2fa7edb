"""``utils.hashing``: the digests that decide whether cached outputs are still valid and fingerprint the
sources, each checked against ``hashlib`` on bytes written out here."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from gastrodistill.utils.hashing import file_fingerprint, sha256_bytes, sha256_file, sha256_json


def test_a_files_digest_covers_every_chunk_of_it(tmp_path):
    """Kills a digest of the first chunk only: a file over the default 1 MiB chunk, and a small chunk size
    that does not divide the file's length."""
    data = np.random.default_rng(0).integers(0, 256, (1 << 20) + 12345, dtype=np.uint8).tobytes()
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(str(path), chunk=4097) == expected
    assert sha256_file(path, chunk=len(data)) == expected


def test_the_json_digest_is_sha256_of_the_sorted_json_text():
    """The text is Python's default JSON (``", "`` and ``": "``, non-ASCII escaped) with sorted keys and
    other types as ``str``: written out by hand here, so a change of separators, key order, escaping or
    the fallback (``repr`` of a path) changes a cache key and fails."""
    obj = {"b": [1, 2.5, None, True], "a": "é", "p": Path("x/y"), "c": {"z": 0, "y": "t"}}
    text = '{"a": "\\u00e9", "b": [1, 2.5, null, true], "c": {"y": "t", "z": 0}, "p": "x/y"}'
    assert sha256_json(obj) == hashlib.sha256(text.encode("ascii")).hexdigest()
    assert sha256_json({"a": 1, "b": 2}) == sha256_json({"b": 2, "a": 1})


def test_the_bytes_digest_and_a_files_fingerprint_are_sha256_and_its_size(tmp_path):
    data = b"gastrodistill \x00\xff" * 100
    assert sha256_bytes(data) == hashlib.sha256(data).hexdigest()
    assert len(sha256_bytes(b"")) == 64 and sha256_bytes(b"") == hashlib.sha256(b"").hexdigest()
    (tmp_path / "f.bin").write_bytes(data)
    assert file_fingerprint(tmp_path / "f.bin") == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": 1600}
