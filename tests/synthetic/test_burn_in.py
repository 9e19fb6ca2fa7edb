"""Burned-in patient text really is in the pixels, in a corner, and only there."""

from __future__ import annotations

import re

import numpy as np
import pytest
from synthetic_testparams import IDENTITY  # noqa: E402

from gastrodistill.data.synthetic.burn_in import CORNERS, burn_in_text
from gastrodistill.data.synthetic.config import SyntheticConfig
from gastrodistill.data.synthetic.generator import plan_patients, render_image
from gastrodistill.data.synthetic.identities import INSTITUTIONS, make_identities


def test_burned_in_text_changes_only_its_corner():
    cfg = SyntheticConfig(
        train_gastritis=1, train_non_gastritis=0, test_gastritis=0, test_non_gastritis=0, image_size=512
    )
    patient = plan_patients(cfg, seed=2)[0]
    with_text = render_image(cfg, 2, patient, 0, burn_in=True)
    without = render_image(cfg, 2, patient, 0, burn_in=False)
    np.testing.assert_array_equal(with_text.mask, without.mask)
    y0, x0, y1, x1 = with_text.text_box
    changed = with_text.image != without.image
    assert changed.sum() > 200
    inside = np.zeros_like(changed)
    inside[y0:y1, x0:x1] = True
    assert not changed[~inside].any()
    # A corner: the box lies in one quadrant of the image.
    h, w = changed.shape
    assert (y1 <= h / 2 or y0 >= h / 2) and (x1 <= w / 2 or x0 >= w / 2)
    # The strokes are (nearly) white: brighter than anything the X-ray had there.
    assert with_text.image[y0:y1, x0:x1].max() >= 0.9 * np.iinfo(np.uint16).max
    assert with_text.image[y0:y1, x0:x1].max() > without.image[y0:y1, x0:x1].max()
    assert patient.identity.patient_id in " ".join(patient.identity.burn_in_lines())


def test_burn_in_text_false_stamps_no_text():
    """``synthetic.burn_in_text=false`` renders the same X-ray without the patient's text (no box)."""
    counts = dict(train_gastritis=1, train_non_gastritis=0, test_gastritis=0, test_non_gastritis=0)
    plain = SyntheticConfig(**counts, image_size=256, burn_in_text=False)
    stamped = SyntheticConfig(**counts, image_size=256, burn_in_text=True)
    patient = plan_patients(plain, seed=2)[0]
    out = render_image(plain, 2, patient, 0)
    assert out.text_box is None
    np.testing.assert_array_equal(out.image, render_image(stamped, 2, patient, 0, burn_in=False).image)
    assert render_image(stamped, 2, patient, 0).text_box is not None


@pytest.mark.parametrize("corner", CORNERS)
def test_text_lands_in_the_corner_asked_for(corner):
    h, w = 800, 1000
    margin = round(0.015 * w)  # 15 px
    image = np.zeros((h, w), np.uint16)
    y0, x0, y1, x1 = burn_in_text(image, ["SATOYAMA AKIRA", "ID P1234567  M"], corner)
    assert image.any() and not image[:y0].any() and not image[y1:].any()
    assert not image[:, :x0].any() and not image[:, x1:].any()
    top, left = corner.startswith("top"), corner.endswith("left")
    assert (y1 <= h / 4) if top else (y0 >= 3 * h / 4)
    assert (x1 <= w / 2) if left else (x0 >= w / 2)
    # the block sits against its two edges, a margin away (a glyph's side bearing or descent aside)
    assert margin <= (x0 if left else w - x1) <= margin + 3
    assert margin <= (y0 if top else h - y1) <= margin + 15


def test_unknown_corner_is_refused():
    with pytest.raises(ValueError, match="burn-in corner must be one of .* got 'centre'"):
        burn_in_text(np.zeros((100, 100), np.uint16), ["A"], "centre")


def test_float_images_get_text_of_value_one():
    """Anti-aliased strokes blend towards 1.0 on a float image (the dtype's "white"), never past it."""
    image = np.zeros((300, 300), np.float32)
    burn_in_text(image, ["AB 12"], "top-left")
    assert 0.9 < image.max() <= 1.0


def test_text_grows_with_the_image():
    """The font scale is max(h, w) / 1600: twice the image, about twice the text height."""
    small = burn_in_text(np.zeros((400, 1600), np.uint16), ["ABC", "DEF"], "top-left")
    large = burn_in_text(np.zeros((400, 3200), np.uint16), ["ABC", "DEF"], "top-left")
    assert (large[2] - large[0]) / (small[2] - small[0]) == pytest.approx(2.0, abs=0.15)


def test_blank_text_changes_nothing_and_returns_an_empty_box_at_the_margin():
    image = np.zeros((600, 400), np.uint16)
    margin = round(0.015 * 600)  # 9 px
    assert burn_in_text(image, [" "], "top-left") == (margin, margin, margin, margin)
    assert not image.any()


def test_burned_in_lines_carry_name_id_sex_birth_date_study_date_and_institution():
    """Everything the anonymity audit must not find again is in the stamped text."""
    assert IDENTITY.burn_in_lines() == [
        "KITAHARA NORIKO",
        "ID P7654321  F",
        "DOB 1948-07-30",
        "2017-02-14",
        "HOKUYO HEALTH SCREENING CENTER",
    ]
    assert IDENTITY.dicom_name == "KITAHARA^NORIKO"


def test_made_up_identities_have_distinct_seven_digit_ids():
    identities = make_identities(np.random.default_rng(0), 3000)
    ids = [i.patient_id for i in identities]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"P[1-9]\d{6}", pid) for pid in ids)
    assert {i.institution for i in identities} == set(INSTITUTIONS)
    assert all(i.birth_date < i.study_date for i in identities)
