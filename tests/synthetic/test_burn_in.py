"""Burned-in patient text really is in the pixels, in a corner, and only there."""

from __future__ import annotations

import numpy as np

from gastrodistill.data.synthetic.config import SyntheticConfig
from gastrodistill.data.synthetic.generator import plan_patients, render_image


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
