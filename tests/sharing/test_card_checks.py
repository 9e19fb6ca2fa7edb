"""The card's own checks, value by value (``sharing.card``): which strings, keys and values a card may not
carry and why, what a caller may put on it, and the seal. Expected verdicts are read off the rules in the
module's docstrings, one case per rule and its boundary (mutation review of sharing/card.py)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import numpy as np
import pytest

from gastrodistill.sharing.card import (
    CALLER_FIELDS,
    CardError,
    check_caller_fields,
    check_public,
    private_key,
    seal,
    seal_ok,
    string_problem,
)

CONTROL = "contains a control character (a line break, tab or terminal escape)"
SEPARATOR = "contains a path separator"
PATH = "looks like a file path"
FILE = "looks like a file name"
PERSON = "looks like a DICOM person name (contains '^')"
UID = "looks like a DICOM UID"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("soft set", None),
        ("a\tb", CONTROL),  # below 32
        ("a\x1fb", CONTROL),  # 31, the last C0 control
        ("a\x7fb", CONTROL),  # DEL, 127
        ("a\x9b2J", CONTROL),  # the 8-bit CSI, 155 (C1: 127..159)
        ("a\xa0b", None),  # 160, a no-break space, is text
        ("images\\P1.png", SEPARATOR),
        ("~stmary", PATH),
        ("c:xrays", PATH),  # a lower-case drive letter
        ("D:", PATH),
        ("scan.DCM", FILE),  # any case
        ("x.tif", FILE),
        ("notes.yaml ", FILE),  # a trailing space does not hide the extension
        ("x.dcm.bak", None),
        ("DOE^JOHN", PERSON),
        ("1.2.840.10008.1", UID),  # five numbers
        (" 1.2.840.10008.1 ", UID),  # spaces around do not hide it
        ("1.2.840.10008", None),  # four: a version, not a UID
        ("0.5", None),
    ],
)
def test_string_problem_gives_each_rules_reason_at_its_boundary(value, problem):
    assert string_problem(value) == problem


@pytest.mark.parametrize(
    ("key", "private"),
    [
        ("patient_hm", False),  # a metric: "patient" alone is allowed
        ("patients", False),
        ("PatientID", True),  # any case
        ("patient_sex", True),
        ("patient_age", True),
        ("Institution-Name", True),
        ("data.root", True),
        ("birthDate", True),
        ("architecture", False),
    ],
)
def test_private_key_names_paths_header_fields_and_patient_details_only(key, private):
    assert private_key(key) is private


def test_check_public_refuses_each_unsafe_value_naming_where_it_is():
    cases = [
        ({1: "a"}, "card: key 1 is not a string; card keys must be strings"),
        ({"x": ("ok", "a/b")}, "card.x[1]: the value contains a path separator"),  # a tuple is searched too
        ({"x": [{"ok": 1}, {"y": float("inf")}]}, "card.x[1].y: inf is not a finite number"),
        ({"x": float("-inf")}, "card.x: -inf is not a finite number"),
        ({"x": b"bytes"}, "card.x: a bytes is not a JSON value"),
        ({"x": {1, 2}}, "card.x: a set is not a JSON value"),
    ]
    for node, message in cases:
        with pytest.raises(CardError) as info:
            check_public(node)
        assert str(info.value).startswith(message), (node, str(info.value))
    check_public({"x": [None, True, 0, 1.5, "soft", {"y": None}]})  # JSON's values pass


def test_the_caller_may_set_only_allowed_fields_and_gets_them_as_json():
    fields = {
        "class_names": ("normal", "gastritis"),
        "mean": np.array([0.25], dtype=np.float64),
        "description": {"tags": {"soft"}},
        "license": "CC-BY-4.0",  # every allow-listed key is taken
        "source_hash": "0" * 63 + "a",
    }
    assert check_caller_fields(fields) == {
        "class_names": ["normal", "gastritis"],
        "mean": [0.25],
        "description": {"tags": ["soft"]},
        "license": "CC-BY-4.0",
        "source_hash": "0" * 63 + "a",
    }
    assert set(CALLER_FIELDS) >= set(fields)
    with pytest.raises(CardError, match=r"card field\(s\) \['manifest', 'zz'\] are not allowed"):
        check_caller_fields({"name": "soft", "zz": 1, "manifest": "m.csv"})
    with pytest.raises(CardError, match=r"^card.description.site: the value looks like a file name"):
        check_caller_fields({"description": {"site": "images.csv"}})


@pytest.mark.parametrize("digest", ["A" * 64, "a" * 65, "a" * 63, "g" * 64])
def test_a_source_hash_other_than_64_lower_case_hex_digits_is_refused(digest):
    with pytest.raises(CardError, match="card.source_hash must be a 64-character lowercase sha256"):
        check_caller_fields({"source_hash": digest})


def _sha256_of(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def test_the_seal_is_the_hash_of_the_rest_of_the_card_and_resealing_replaces_it():
    card = {"name": "soft", "distilled": {"n_images": 12}}
    sealed = seal(card)
    assert sealed == {**card, "card_sha256": _sha256_of(card)}
    assert seal(sealed) == sealed  # an earlier seal is not part of what is hashed
    assert seal({**sealed, "card_sha256": "0" * 64}) == sealed
    assert seal_ok(sealed)
    assert not seal_ok({**sealed, "name": "hard"})
    assert not seal_ok(card)  # no seal at all


def test_a_resealed_card_without_a_required_field_or_of_another_version_is_refused(
    tmp_path, soft_set, card_fields
):
    """The reader names each field a card must have (listed here by hand from the card's documentation:
    mutants dropping tensors or architecture from the list survived), and reads schema version 1 only."""
    from _resealing import reseal

    from gastrodistill.sharing.artifact import ArtifactError, load_artifact, save_artifact

    art = save_artifact(tmp_path / "art", soft_set, card_fields)
    required = [
        "distilled",
        "class_names",
        "normalization",
        "architecture",
        "training_recipe",
        "package",
        "source_hash",
        "tensors",
        "files",
    ]
    for field in required:
        copy = shutil.copytree(art, tmp_path / field)
        reseal(copy, lambda card, field=field: card.pop(field))
        with pytest.raises(ArtifactError, match=re.escape(f"card.json lacks required field(s) ['{field}']")):
            load_artifact(copy)
    for version in (0, 2):
        copy = shutil.copytree(art, tmp_path / f"v{version}")
        reseal(copy, lambda card, version=version: card.update(schema_version=version))
        with pytest.raises(ArtifactError, match=f"card.json has schema_version {version}, which this"):
            load_artifact(copy)
