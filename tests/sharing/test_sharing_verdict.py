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


def test_one_leaked_string_flags_the_set():
    """Kills: a leak counted only from two strings on."""
    text = anonymity_verdict({**CLEAN, "artifact_leaks": 1.0})
    assert text == "flagged: 1 private string(s) found in the artifact bytes"


def test_the_flagged_count_is_the_share_of_images_rounded_to_the_nearest_image():
    """29 of 100 flagged images: 0.29 * 100 is 28.999999999999996 in floats, which int() truncates to 28."""
    assert "flagged: 29 of 100 distilled images are at least as close" in anonymity_verdict(
        {**CLEAN, "frac_flagged": 29 / 100, "n_images": 100.0}
    )


@pytest.mark.parametrize("n_images", [None, "many"])
def test_a_share_flagged_without_an_image_count_is_given_as_a_percentage(n_images):
    """No (or no numeric) ``n_images``: the share in percent, never a count of 0 of 0. Kills: a missing or
    unreadable number read as 0."""
    metrics = {**CLEAN, "frac_flagged": 0.25}
    del metrics["n_images"]
    expected = "flagged: 25% of the distilled images are at least as close to a real training patch"
    assert anonymity_verdict(metrics).startswith(expected)
    if n_images is not None:
        assert anonymity_verdict({**metrics, "n_images": n_images}).startswith(expected)


@pytest.mark.parametrize("key", ["controls_certified", "mia_control_detected"])
def test_a_control_that_was_not_recorded_never_passes(key):
    """Each control must be recorded as passed (1.0); missing, NaN or unreadable is not a pass. Kills: only
    an explicit 0 taken as a failed control."""
    for value in (None, float("nan"), "yes"):
        metrics = {**CLEAN, key: value}
        assert verdict_code(metrics) == "not certified", (key, value)
    del metrics[key]
    assert verdict_code(metrics) == "not certified", key


def test_a_chance_term_of_exactly_one_certifies_nothing():
    """0.5 + 3 × 1/6 is 1.0: no AUC can exceed it, so the set is not certified. Kills: >= read as >."""
    text = anonymity_verdict({**CLEAN, "mia_auc_null_sd": 1 / 6})
    assert verdict_code({**CLEAN, "mia_auc_null_sd": 1 / 6}) == "not certified"
    assert "sets its flag at AUC >= 1.000, above the largest possible AUC of 1" in text


def test_every_reason_not_to_certify_is_given_in_order():
    """Both controls missed and chance out of reach: the three reasons, in the documented order, joined by
    'and'. Kills: reasons joined by 'or', reordered, or dropped when there are three."""
    text = anonymity_verdict(
        {**CLEAN, "controls_certified": 0.0, "mia_control_detected": 0.0, "mia_auc_null_sd": 0.2}
    )
    assert text == (
        "not certified: the audit cannot certify anonymity on these data, because its positive controls "
        "(real training patches, and the same with small noise) were not flagged on these data and its "
        "membership attack did not detect a network overfitted on real patches and its membership attack "
        "could not have flagged this set (chance on so few patients sets its flag at AUC >= 1.100, above "
        "the largest possible AUC of 1)"
    )


def test_leaks_come_first_then_flagged_images_then_the_membership_attack():
    """docs: leaks and flagged images before the membership attack. Kills: either check moved later."""
    everything = {**CLEAN, "artifact_leaks": 2.0, "frac_flagged": 0.1, "membership_flagged": 1.0}
    assert anonymity_verdict(everything).startswith("flagged: 2 private string(s)")
    del everything["artifact_leaks"]
    assert anonymity_verdict(everything).startswith("flagged: 3 of 30 distilled images")
