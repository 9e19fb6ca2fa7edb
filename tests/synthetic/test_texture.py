"""Gastritis mucosa is coarser than normal mucosa on average, measured independently from the files,
yet the two overlap (per-patient severity, patchiness, exposure, noise): the task is not trivial."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from gastrodistill.data.synthetic.mucosa import (
    MucosaParams,
    _relief,
    mucosal_texture,
    sample_mucosa,
    severity_map,
    worley,
)

WINDOW = 96


def coarseness(window: np.ndarray) -> float:
    """log of band energy at the scale of coarse areae (DoG 4/10 px) over the fine scale (DoG 1/2.5 px)."""

    def band(lo: float, hi: float) -> float:
        dog = cv2.GaussianBlur(window, (0, 0), lo) - cv2.GaussianBlur(window, (0, 0), hi)
        return float((dog[12:-12, 12:-12] ** 2).mean())

    return float(np.log(band(4.0, 10.0) + 1e-12) - np.log(band(1.0, 2.5) + 1e-12))


def windows_inside_stomach(image: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    inner = cv2.erode(mask, np.ones((25, 25), np.uint8))
    out = []
    for r in range(0, image.shape[0] - WINDOW + 1, WINDOW // 2):
        for c in range(0, image.shape[1] - WINDOW + 1, WINDOW // 2):
            if inner[r : r + WINDOW, c : c + WINDOW].all():
                w = image[r : r + WINDOW, c : c + WINDOW]
                if w.std() > 0:
                    out.append((w - w.mean()) / w.std())
    return out


def test_gastritis_is_coarser_on_average_but_classes_overlap(tiny_root):
    with open(tiny_root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    stats, labels, per_image = [], [], {"gastritis": [], "non-gastritis": []}
    for row in rows:
        image = np.asarray(Image.open(tiny_root / row["image"])).astype(np.float32)
        mask = (np.asarray(Image.open(tiny_root / row["mask"])) > 0).astype(np.uint8)
        values = [coarseness(w) for w in windows_inside_stomach(image, mask)]
        assert len(values) >= 3, "the stomach should hold several texture windows"
        stats += values
        labels += [int(row["diagnosis"] == "gastritis")] * len(values)
        per_image[row["diagnosis"]].append(np.median(values))
    auc = roc_auc_score(labels, stats)
    g, n = np.array(per_image["gastritis"]), np.array(per_image["non-gastritis"])
    # Expected direction, clearly, on average...
    assert g.mean() - n.mean() > 0.3
    assert auc > 0.6
    # ...but the classes overlap: image by image and window by window.
    assert g.min() < n.max()
    assert auc < 0.99


def test_each_patients_mucosa_is_drawn_within_its_ranges():
    rng = np.random.default_rng(0)
    draws = [sample_mucosa(rng, (0.2, 0.3), (5.0, 6.0), (30.0, 40.0)) for _ in range(300)]
    severities = [d.severity for d in draws]
    assert 0.2 <= min(severities) < 0.21 and 0.29 < max(severities) <= 0.3
    assert {d.fine_cell for d in draws} == {5, 6}
    assert {d.coarse_cell for d in draws} == set(range(30, 41))


def test_severity_map_is_the_patients_level_plus_patches_of_std_patchiness_clipped_to_0_1():
    flat = severity_map(np.random.default_rng(0), (128, 128), 0.4, 0.0)
    np.testing.assert_array_equal(flat, np.float32(0.4))
    patchy = severity_map(np.random.default_rng(0), (128, 128), 0.5, 0.1)  # 5 std from either bound
    assert patchy.mean() == pytest.approx(0.5, abs=1e-4) and patchy.std() == pytest.approx(0.1, rel=1e-3)
    clipped = severity_map(np.random.default_rng(0), (128, 128), 0.9, 0.5)
    assert clipped.min() >= 0.0 and clipped.max() == 1.0 and (clipped == 1.0).mean() > 0.2


def test_severity_blends_fine_regular_mucosa_into_coarse_irregular_mucosa():
    """Without patchiness the texture is ``(1 - s) fine + s coarse`` (one stream, so the same two patterns
    for every s), and the pattern of severity 1 measures far coarser than that of severity 0."""

    def texture(severity: float) -> np.ndarray:
        params = MucosaParams(severity=severity, fine_cell=10, coarse_cell=30)
        return mucosal_texture(np.random.default_rng(5), (192, 192), params, 0.0)

    fine, half, coarse = texture(0.0), texture(0.5), texture(1.0)
    np.testing.assert_allclose(half, 0.5 * fine + 0.5 * coarse, atol=1e-5)
    assert coarseness(coarse) - coarseness(fine) > 1.0


def test_render_adds_contrast_times_texture_where_the_mucosa_shows(monkeypatch):
    """What ``render_image`` hands the detector: mucosa_contrast c adds ``c * texture * mucosa weight`` over
    the bounding box of where the mucosa shows (the texture is that box's size), nothing elsewhere; the
    texture gets the patient's mucosa and ``patchiness``; the pool covers ``pool_fraction`` of the stomach."""
    from gastrodistill.data.synthetic import generator as gen
    from gastrodistill.data.synthetic.config import SyntheticConfig

    seen: dict[str, list] = {}
    for name in ("acquire", "stomach_layers", "mucosal_texture"):

        def spy(*args, _real=getattr(gen, name), _name=name):
            seen.setdefault(_name, []).append((args, _real(*args)))
            return seen[_name][-1][1]

        monkeypatch.setattr(gen, name, spy)
    counts = dict(train_gastritis=1, train_non_gastritis=0, test_gastritis=0, test_non_gastritis=0)
    settings = dict(image_size=192, pool_fraction=(0.3, 0.3), patchiness=0.35, burn_in_text=False)
    low, high = (SyntheticConfig(**counts, **settings, mucosa_contrast=(c, c)) for c in (0.1, 0.2))
    patient = gen.plan_patients(low, 3)[0]
    out = gen.render_image(low, 3, patient, 0)
    gen.render_image(high, 3, patient, 0)
    (att_low, _, _), _ = seen["acquire"][0]
    (att_high, _, _), _ = seen["acquire"][1]
    (mask, _, _), layers = seen["stomach_layers"][0]
    (_, _, mucosa, patchiness), texture = seen["mucosal_texture"][0]
    weight = layers.mucosa_weight
    ys, xs = np.nonzero(weight > 1e-3)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    assert texture.shape == weight[box].shape
    expected = np.zeros_like(weight)
    expected[box] = 0.1 * texture * weight[box]
    np.testing.assert_allclose(att_high - att_low, expected, atol=1e-5)
    assert patchiness == 0.35 and mucosa.severity == out.severity
    assert (layers.pool > 0.5)[mask > 0].mean() == pytest.approx(0.3, abs=0.03)


def test_grooves_run_along_the_borders_between_areae():
    """With jitter 0 the areae are the grid's squares, their feature points at the centres: ``worley``'s f1
    is the distance to the square's centre, and a relief of grooves alone (no nodules, warp or variation) is
    bright on the squares' borders and dark at their centres."""
    c = 16
    f1, _, _ = worley(np.random.default_rng(0), (64, 64), c, jitter=0.0)
    iy, ix = np.mgrid[0:64, 0:64]
    np.testing.assert_allclose(f1, np.hypot(iy % c + 0.5 - c / 2, ix % c + 0.5 - c / 2), atol=1e-3)
    relief = _relief(np.random.default_rng(0), (64, 64), c, 0.0, 1.0, 0.0, 0.0, 0.0)
    border = np.isin(iy % c, (0, c - 1)) | np.isin(ix % c, (0, c - 1))
    centre = np.isin(iy % c, (c // 2 - 1, c // 2)) & np.isin(ix % c, (c // 2 - 1, c // 2))
    assert relief[border].mean() > relief[centre].mean() + 1.0


def test_coarse_mucosa_is_drawn_more_irregular_with_wider_uneven_grooves_and_nodules(monkeypatch):
    """The module's description of the two patterns, parameter by parameter: gastritis areae are larger,
    more irregular (jitter, warp), with wider and uneven grooves and nodules than normal ones."""
    import inspect

    from gastrodistill.data.synthetic import mucosa as mucosa_mod

    real, calls = mucosa_mod._relief, []

    def spy(*args, **kwargs):
        calls.append(inspect.signature(real).bind(*args, **kwargs).arguments)
        return real(*args, **kwargs)

    monkeypatch.setattr(mucosa_mod, "_relief", spy)
    mucosal_texture(np.random.default_rng(0), (64, 64), MucosaParams(0.5, fine_cell=10, coarse_cell=30), 0.2)
    fine, coarse = calls[0], calls[1]  # (a coarse pattern is drawn at half resolution: a third, inner call)
    assert (fine["cell"], coarse["cell"]) == (10, 30)
    for key in ("jitter", "groove_px", "groove_var", "nodularity", "warp_frac"):
        assert coarse[key] > fine[key], key
