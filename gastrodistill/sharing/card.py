"""The artifact's JSON card: what goes in (an allow-list), and the checks that keep identifiers and paths out.

The card travels to other hospitals, so it is built only from keys this module knows, every string
is checked not to look like a file path, a DICOM person name or a DICOM UID, and the caller may pass
the site's private strings (patient ids, header values) that must not appear anywhere.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
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
    """Why a card may not carry the string ``value`` (a control character, a path, a file name, a DICOM
    person name or UID), as words after "the value", or None."""
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        return "contains a control character (a line break, tab or terminal escape)"
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
    """Whether ``card_sha256`` is the SHA-256 of the rest of the card (the card was not edited)."""
    body = {k: v for k, v in card.items() if k != "card_sha256"}
    return card.get("card_sha256") == sha256_json(body)


#: Text encodings a private string is searched in (any case): the artifact's JSON and PNG text are UTF-8,
#: and a tool may write UTF-16 (either byte order); a value outside ASCII also in Latin-1.
SEARCH_ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be")


def needs_token(value: str) -> bool:
    """Whether ``value`` is found only as a token of its own (:func:`_guarded`): all digits (a patient
    number or a date, which floats, counts and hashes hold by chance), all letters and shorter than 12 (a
    name part: ``chan`` in ``channels``), or shorter than 6 characters. Longer mixed strings (``P6934814``,
    paths, UIDs) are found anywhere: a chance match is negligible, and ``caseP6934814`` is a leak."""
    v = value.strip()
    return v.isdigit() or (v.isalpha() and len(v) < 12) or len(v) < 6


#: How the words of a multi-word value may be joined where people type names: ``Kitamachi General Hospital``
#: is also searched as ``kitamachi_general_hospital``, ``-``, ``.`` and ``kitamachigeneralhospital``.
WORD_JOINS = (" ", "_", "-", ".", "")


def word_joins(value: str) -> set[str]:
    """``value`` and, when it holds a space between two or more words (and a letter), those words (split at
    spaces, ``_`` and ``-``) joined by each of :data:`WORD_JOINS`. A value without a space has one form: a
    path (``images/P1_01.png``, searched anywhere already), a UID, a date, an id."""
    words = [w for w in re.split(r"[\s_\-]+", value.strip()) if w]
    if len(words) < 2 or not re.search(r"\S\s+\S", value) or not any(c.isalpha() for c in value):
        return {value}
    return {value} | {join.join(words) for join in WORD_JOINS}


def spellings(value: str) -> list[str]:
    """The forms of ``value`` searched for: each of :func:`word_joins` as given, lower, upper and title case,
    each composed (NFC) and decomposed (NFD); for a value outside ASCII also each as JSON escapes it
    (``M\\u00fcller``: the card is written by ``json.dumps``), and so for a value holding a backslash (a
    manifest path written on Windows). The bytes searched are lower-cased by
    ``bytes.lower``, which knows ASCII only, so ``MÜLLER`` and ``müller`` are different bytes: each case is
    searched."""
    forms = {f(v) for v in word_joins(value) for f in (str, str.lower, str.upper, str.title)}
    forms |= {unicodedata.normalize(f, v) for v in list(forms) for f in ("NFC", "NFD")}
    if not value.isascii() or "\\" in value:  # json.dumps escapes both: M\u00fcller, images\\a.png
        forms |= {json.dumps(v)[1:-1] for v in list(forms)}
    return sorted(forms)


def _chars(units: list[str], encoding: str, side: str) -> bytes:
    """A bytes-regex fragment for a run of characters in ``encoding``: each unit a literal character or an
    ASCII class in brackets (``"[0-9]"``). ``side`` is where the run lies from a match: in UTF-16 the byte
    next to the match (``before``: big-endian's low byte of the character before; ``after``:
    little-endian's low byte of the character after) is the only one looked at for the nearest unit, so a
    match one byte off (the text in the other byte order) is judged by the character it touches."""
    out = []
    for unit in units:
        one = unit.encode() if unit.startswith("[") else re.escape(unit.encode())
        out.append({"utf-16-le": [one, b"\\x00"], "utf-16-be": [b"\\x00", one]}.get(encoding, [one]))
    if encoding == "utf-16-be" and side == "before":
        out[0] = out[0][1:]
    if encoding == "utf-16-le" and side == "after":
        out[-1] = out[-1][:1]
    return b"".join(b"".join(u) for u in out)


def _guarded(needle: bytes, form: str, encoding: str) -> re.Pattern[bytes]:
    """``needle`` (``form`` in ``encoding``, lower-cased) as a token of its own: an end that is an ASCII
    letter or digit may not touch another letter or digit (``1002`` is not in the hash ``e1002a``, ``anna``
    not in ``joanna``; ``STANDARD`` is in ``"standard"``); a digit end may not touch a decimal point and a
    digit either (``1002`` is not in ``0.1002`` or ``1002.5``), but for ``.0`` alone (an id a table read as
    a float: ``1002.0``). Punctuation is a boundary: ``kowalski_01.png``, ``site-1002``. Without this a
    4-digit id matched about one card in twenty by chance (a card's floats and hashes hold hundreds of
    distinct 4-digit runs)."""
    alnum = "[0-9a-z]"
    before = after = b""
    first, last = form[0], form[-1]
    if first.isascii() and first.isalnum():
        before = b"(?<!" + _chars([alnum], encoding, "before") + b")"
        if first.isdigit():
            before += b"(?<!" + _chars(["[0-9]", "."], encoding, "before") + b")"
    if last.isascii() and last.isalnum():
        after = b"(?!" + _chars([alnum], encoding, "after") + b")"
        if last.isdigit():
            after += b"(?!" + _chars([".", "[1-9]"], encoding, "after") + b")"
            after += b"(?!" + _chars([".", "0", "[0-9]"], encoding, "after") + b")"
    return re.compile(before + re.escape(needle) + after)


def _needles(value: str) -> list[tuple[bytes, re.Pattern[bytes] | None]]:
    """The byte strings searched for ``value`` (:func:`spellings` in each encoding, lower-cased as the data
    is) and, where :func:`needs_token`, the pattern a candidate must match there."""
    out: dict[bytes, re.Pattern[bytes] | None] = {}
    encodings = SEARCH_ENCODINGS if value.isascii() else (*SEARCH_ENCODINGS, "latin-1")
    for form in spellings(value):
        for encoding in encodings:
            try:
                needle = form.encode(encoding).lower()
            except UnicodeEncodeError:
                continue
            if needle not in out:
                out[needle] = _guarded(needle, form, encoding) if needs_token(value) else None
    return list(out.items())


def find_strings(blobs: Mapping[str, bytes], forbidden: Iterable[str]) -> list[tuple[str, int]]:
    """(blob name, index into ``forbidden``) per forbidden string found in a blob: in any of its
    :func:`spellings`, in each of :data:`SEARCH_ENCODINGS`, as a token of its own where
    :func:`needs_token` (:func:`_guarded`). The blobs are searched as given: a file's text, not its pixel
    or tensor payload, is what callers pass (:func:`~gastrodistill.sharing.text_parts.text_parts`)."""
    hits: list[tuple[str, int]] = []
    variants = [(i, _needles(s)) for i, s in enumerate(forbidden) if s.strip()]
    for name, data in blobs.items():
        low = data.lower()
        for i, searches in variants:
            if any(_token_at(low, needle, pattern) for needle, pattern in searches):
                hits.append((name, i))
    return hits


def _token_at(data: bytes, needle: bytes, pattern: re.Pattern[bytes] | None) -> bool:
    """Whether ``needle`` occurs in ``data``, where ``pattern`` (:func:`_guarded`, looking at most three
    characters around it) matches when one is given. Candidates come from ``bytes.find``: a regex search
    over a whole safetensors blob was about 50 times slower."""
    start = data.find(needle)
    if pattern is None or start == -1:
        return start != -1
    while start != -1:
        if pattern.match(data, start, start + len(needle) + 16):
            return True
        start = data.find(needle, start + 1)
    return False
