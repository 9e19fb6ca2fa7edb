"""The artifact's JSON card: what goes in (an allow-list), and the checks that keep identifiers and paths out.

The card travels to other hospitals, so it is built only from keys this module knows, every string
is checked not to look like a file path, a DICOM person name or a DICOM UID, and the caller may pass
the site's private strings (patient ids, header values) that must not appear anywhere.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from gastrodistill.utils.hashing import sha256_json

#: Card schema versions this code reads; the one it writes is the last.
SUPPORTED_SCHEMA_VERSIONS = (1,)
SCHEMA_VERSION = SUPPORTED_SCHEMA_VERSIONS[-1]
FORMAT = "gastrodistill-distilled-set"

#: Keys a caller may put on the card (``card_fields``); anything else is refused by name.
CALLER_FIELDS = (
    "name",
    "description",
    "dataset",
    "class_names",
    "positive_class",
    "mean",
    "std",
    "architecture",
    "training_recipe",
    "evaluation",
    "anonymity",
    "anonymity_verdict",
    "source_hash",
    "license",
)
#: The records the writer computes that are checked for public values (:func:`check_public`) like the
#: caller's fields: by the writer before it seals a card and by the reader of a received one.
PUBLIC_RECORDS = ("distilled", "package", "tensors")
#: Keys the artifact writer fills in itself.
COMPUTED_FIELDS = (
    "schema_version",
    "format",
    "distilled",
    "normalization",
    "package",
    "tensors",
    "files",
    "card_sha256",
)
REQUIRED_FIELDS = (
    "schema_version",
    "format",
    "distilled",
    "class_names",
    "normalization",
    "architecture",
    "training_recipe",
    "package",
    "source_hash",
    "tensors",
    "files",
    "card_sha256",
)

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")
_DICOM_UID = re.compile(r"^\d+(\.\d+){4,}$")
_FILE_EXT = re.compile(
    r"\.(dcm|dicom|png|tiff?|jpe?g|csv|npz|npy|json|ya?ml|pt|pth|pkl|ckpt|safetensors)$", re.I
)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: Words that make a key private (paths, header fields); ``patient`` only together with id/name/birth,
#: so that metric names such as ``patient_hm`` stay allowed.
_PRIVATE_WORDS = {
    "path",
    "paths",
    "root",
    "dir",
    "dirs",
    "directory",
    "file",
    "files",
    "filename",
    "manifest",
    "dicom",
    "header",
    "birth",
    "birthdate",
    "accession",
    "institution",
    "physician",
    "patientid",
    "patientname",
}
_PATIENT_WORDS = {"id", "ids", "name", "names", "birth", "sex", "age"}


def private_key(key: str) -> bool:
    """Whether a card key names a path, a file or a patient/header field."""
    words = set(re.split(r"[^a-z0-9]+", key.lower()))
    return bool(words & _PRIVATE_WORDS) or ("patient" in words and bool(words & _PATIENT_WORDS))


class CardError(ValueError):
    """A card field that may not be shared or that is malformed; the message names the key and the fix."""


def string_problem(value: str) -> str | None:
    """Why a card may not carry the string ``value`` (a path, a file name, a DICOM person name or UID), as
    words after "the value", or None."""
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if value.startswith("~") or _WINDOWS_DRIVE.match(value):
        return "looks like a file path"
    if _FILE_EXT.search(value.strip()):
        return "looks like a file name"
    if "^" in value:
        return "looks like a DICOM person name (contains '^')"
    if _DICOM_UID.match(value.strip()):
        return "looks like a DICOM UID"
    return None


def check_public(node: Any, where: str = "card") -> None:
    """Refuse path-like strings, private-looking keys and non-JSON values anywhere below ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                raise CardError(f"{where}: key {key!r} is not a string; card keys must be strings")
            if private_key(key):
                raise CardError(
                    f"{where}.{key}: keys naming paths, folders, files or patients may not be shared; "
                    "remove the key (use gastrodistill.utils.privacy.public_config for configs)"
                )
            check_public(value, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            check_public(value, f"{where}[{i}]")
    elif isinstance(node, str):
        problem = string_problem(node)
        if problem:
            raise CardError(f"{where}: the value {problem}; cards may not carry paths or header fields")
    elif isinstance(node, float):
        if not math.isfinite(node):
            raise CardError(
                f"{where}: {node} is not a finite number (JSON cannot carry it); drop or replace it"
            )
    elif node is not None and not isinstance(node, bool | int):
        raise CardError(
            f"{where}: a {type(node).__name__} is not a JSON value; convert it to str/int/float/list/dict"
        )


def check_caller_fields(card_fields: Mapping[str, Any]) -> dict[str, Any]:
    """Validate what a caller wants on the card: only allow-listed keys, only public values."""
    unknown = sorted(set(card_fields) - set(CALLER_FIELDS))
    if unknown:
        raise CardError(
            f"card field(s) {unknown} are not allowed on a shared card; allowed: {list(CALLER_FIELDS)}"
        )
    fields = json.loads(json.dumps(dict(card_fields), default=_jsonable))
    check_public(fields, "card")
    if "source_hash" in fields and not _HEX64.match(str(fields["source_hash"])):
        raise CardError(
            "card.source_hash must be a 64-character lowercase sha256 hex digest (datamodule.source_hash())"
        )
    return fields


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set):
        return list(value)
    raise CardError(f"card value of type {type(value).__name__} is not JSON-serialisable; convert it first")


def seal(card: dict[str, Any]) -> dict[str, Any]:
    """Add ``card_sha256``: a hash of the card without it, so an edited card is noticed."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return {**body, "card_sha256": sha256_json(body)}


def seal_ok(card: Mapping[str, Any]) -> bool:
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return card.get("card_sha256") == sha256_json(body)


def find_strings(blobs: Mapping[str, bytes], forbidden: Iterable[str]) -> list[tuple[str, int]]:
    """(blob name, index into ``forbidden``) per forbidden string found (any case, UTF-8/UTF-16)."""
    hits: list[tuple[str, int]] = []
    needles = [(i, s) for i, s in enumerate(forbidden) if s]
    for name, data in blobs.items():
        low = data.lower()
        for i, s in needles:
            variants = {
                s.lower().encode("utf-8"),
                s.lower().encode("utf-16-le"),
                s.lower().encode("utf-16-be"),
            }
            if any(v in low for v in variants):
                hits.append((name, i))
    return hits
