"""Reading an offline W&B run file (``run-<id>.wandb``) in tests: W&B 0.31 ships no reader of its own.

The file is W&B's LevelDB-style record log: a 7-byte header (``:W&B``, a 2-byte magic, a version byte),
then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32, length, type: 1 full, 2 first, 3 middle,
4 last; a block's tail shorter than a header is padding), each record a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7


def run_records(path: str | Path) -> Iterator[object]:
    """Every record of the run file at ``path``, parsed by W&B's own protobuf classes."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, pending = Path(path).read_bytes(), HEADER, b""
    assert data[:4] == b":W&B", path
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # padding at a block's end
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if pos + HEADER + length > len(data):  # a chunk still being written
            return
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending + chunk)
            pending = b""
            yield record
        elif kind in (2, 3):
            pending += chunk


def finished_records(path: str | Path, wait_s: float = 20.0) -> list:
    """The run file's records once it holds its exit record, waiting up to ``wait_s`` seconds for it: W&B's
    service process may write the file's records after ``wandb.finish`` returns (seen on a loaded machine);
    after the wait, whatever it holds."""
    deadline = time.monotonic() + wait_s
    while True:
        records = list(run_records(path))
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def exit_codes(path: str | Path) -> list[int]:
    """The exit codes the run file records (one for a run that was finished)."""
    return [r.exit.exit_code for r in finished_records(path) if r.WhichOneof("record_type") == "exit"]


def run_names(path: str | Path) -> list[str]:
    """The display names the run file records."""
    return [r.run.display_name for r in finished_records(path) if r.WhichOneof("record_type") == "run"]
