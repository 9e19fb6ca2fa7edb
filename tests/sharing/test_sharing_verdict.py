"""The anonymity verdict on the card: a pass only when the audit's positive controls were flagged."""

from __future__ import annotations

import json

import pytest

from gastrodistill.anonymity.verdict import NOT_AUDITED, anonymity_verdict, verdict_code
from gastrodistill.sharing.artifact import load_artifact, save_artifact
from gastrodistill.sharing.card import check_caller_fields

CLEAN = {
    "artifact_leaks": 0.0,
    "frac_flagged": 0.0,
    "n_images": 30.0,
    "membership_flagged": 0.0,
    "controls_certified": 1.0,
    "mia_control_detected": 1.0,
}


@pytest.mark.parametrize(
    ("change", "code", "words"),
    [
        ({}, "pass", "positive controls were flagged"),
        ({"controls_certified": 0.0}, "not certified", "cannot certify anonymity on these data"),
        ({"mia_control_detected": 0.0}, "not certified", "did not detect a network overfitted"),
        ({"frac_flagged": 0.1}, "flagged", "3 of 30 distilled images"),
        ({"frac_flagged": 0.1, "controls_certified": 0.0}, "flagged", "3 of 30"),  # a flag is never hidden
        ({"artifact_leaks": 2.0}, "flagged", "2 private string(s)"),
        ({"membership_flagged": 1.0}, "flagged", "membership attack separates"),
        # too few patients: chance alone needs an AUC above 1 to flag, so the attack certifies nothing
        ({"mia_auc_null_sd": 0.1825}, "not certified", "sets its flag at AUC >= 1.047"),
        ({"mia_auc_null_sd": 0.033}, "pass", "positive controls were flagged"),
    ],
)
def test_verdicts(change, code, words):
    text = anonymity_verdict({**CLEAN, **change})
    assert verdict_code({**CLEAN, **change}) == code and words in text
    check_caller_fields({"anonymity_verdict": text})  # card-safe: no path, no file name


def test_missing_numbers_never_pass():
    assert verdict_code({}) == "not certified"
    assert verdict_code({"frac_flagged": 0.0, "artifact_leaks": 0.0}) == "not certified"


def test_card_carries_the_verdict_instead_of_a_pass(tmp_path, compose_cfg, dm, soft_set):
    from gastrodistill.sharing.publish import card_fields_from_config, publish_artifact

    cfg = compose_cfg([])
    fields = card_fields_from_config(cfg, dm, "soft", anonymity={**CLEAN, "controls_certified": 0.0})
    assert fields["anonymity_verdict"].startswith("not certified: the audit cannot certify")
    assert card_fields_from_config(cfg, dm, "soft")["anonymity_verdict"] == NOT_AUDITED
    path = save_artifact(tmp_path / "soft", soft_set, fields)
    _, card = load_artifact(path)
    assert card["anonymity_verdict"] == fields["anonymity_verdict"]
    assert card["anonymity"]["controls_certified"] == 0.0
    # publish_artifact (collects the private strings itself) carries it too.
    published = publish_artifact(cfg, dm, "soft", soft_set, tmp_path / "pub", anonymity=CLEAN, archive=False)
    assert json.loads((published / "card.json").read_text())["anonymity_verdict"].startswith("pass")
