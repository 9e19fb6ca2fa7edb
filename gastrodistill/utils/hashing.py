"""Content hashes used to decide whether cached outputs are still valid and to fingerprint sources."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (64 hex characters), read ``chunk`` bytes at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj: Any) -> str:
    """SHA-256 (64 hex characters) of ``obj`` as JSON with sorted keys (``str`` for other types)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def sha256_bytes(data: bytes) -> str:
    """SHA-256 of ``data`` (64 hex characters)."""
    return hashlib.sha256(data).hexdigest()


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"sha256": hex digest, "bytes": size in bytes}`` of a file."""
    p = Path(path)
    return {"sha256": sha256_file(p), "bytes": p.stat().st_size}
