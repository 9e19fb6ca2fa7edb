"""The imaging physics of the generator against hand computations: Beer-Lambert exposure with Poisson noise,
the heel effect and the blurs, the smooth fields, and the stomach's silhouette, gas, wall and barium pool."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage, stats

from gastrodistill.data.synthetic.acquisition import MAX_16, Exposure, acquire, sample_exposure
from gastrodistill.data.synthetic.anatomy import (
    View,
    _catmull_rom,
    sample_anatomy,
    sample_view,
    stomach_layers,
    stomach_mask,
)
from gastrodistill.data.synthetic.fields import gaussian_blur, normalised_grid, smooth_noise, warp

GAIN, OFFSET = 10000.0, 1000.0


def _exposure(**changes) -> Exposure:
    """No heel, no blur and so many photons that the quantum noise is far below one grey level."""
    base = dict(dose=1e12, heel=0.0, heel_angle=0.0, focal_blur=0.0, detector_blur=0.0)
    return Exposure(**{**base, "gain": GAIN, "offset": OFFSET, **changes})


def test_displayed_value_is_offset_plus_gain_times_the_focally_blurred_attenuation():
    """Beer-Lambert then ``log(dose / N)``: the value is ``offset + gain * A`` with ``A`` blurred by the focal
    spot (kills an inverted log and a skipped focal blur)."""
    att = np.zeros((48, 64), np.float32)
    att[:, 32:] = 2.0
    image = acquire(att, _exposure(focal_blur=2.0), np.random.default_rng(0))
    blurred = ndimage.gaussian_filter(att.astype(np.float64), 2.0, mode="reflect", truncate=4.0)
    assert image.dtype == np.uint16
    np.testing.assert_allclose(image, OFFSET + GAIN * blurred, atol=1.0)


def test_values_saturate_at_the_16_bit_range_instead_of_wrapping():
    att = np.zeros((16, 64), np.float32)
    att[:, :32], att[:, 32:] = -1.0, 7.0  # 1000 - 10000 < 0 and 1000 + 70000 > 65535
    image = acquire(att, _exposure(), np.random.default_rng(0))
    assert (image[:, :32] == 0).all() and (image[:, 32:] == MAX_16).all()


@pytest.mark.parametrize(("angle", "axis"), [(0.0, 1), (np.pi / 2, 0)])
def test_heel_effect_dims_the_image_along_its_angle(angle, axis):
    """``N = dose * (1 - heel * (cos a (u - 1/2) + sin a (v - 1/2))) * exp(-A)``: the value gains
    ``-gain * log(heel factor)``, across the width for angle 0 and down the height for angle pi/2."""
    att = np.full((40, 40), 1.0, np.float32)
    image = acquire(att, _exposure(heel=0.2, heel_angle=angle), np.random.default_rng(0)).astype(np.float64)
    x = (np.arange(40) + 0.5) / 40
    expected = OFFSET + GAIN * (1.0 - np.log(1.0 - 0.2 * (x - 0.5)))
    np.testing.assert_allclose(image.mean(axis=1 - axis), expected, atol=1.0)
    assert np.ptp(image.mean(axis=axis)) <= 1.0  # nothing changes the other way


def test_quantum_noise_is_poisson_and_the_detector_blur_smooths_it():
    """``N ~ Poisson(dose e^-A)`` gives ``std(log N) = 1 / sqrt(dose e^-A)`` (delta method); a detector blur
    of sigma 1 px (OpenCV's 9-tap kernel) scales white noise by the sum of its squared 1-D weights."""
    att = np.full((256, 256), 1.0, np.float32)
    dose = 1e4
    sharp = acquire(att, _exposure(dose=dose), np.random.default_rng(1)).astype(np.float64)
    assert sharp.std() == pytest.approx(GAIN / np.sqrt(dose * np.exp(-1.0)), rel=0.03)
    blurred = acquire(att, _exposure(dose=dose, detector_blur=1.0), np.random.default_rng(1))
    blurred = blurred.astype(np.float64)
    taps = np.exp(-(np.arange(-4, 5) ** 2) / 2.0)
    taps /= taps.sum()
    assert blurred[8:-8, 8:-8].std() == pytest.approx(sharp.std() * (taps**2).sum(), rel=0.03)


def test_exposure_draws_the_dose_log_uniformly_and_the_focal_blur_from_its_range():
    rng = np.random.default_rng(0)
    exposures = [sample_exposure(rng, (10.0, 1e6), (2.5, 2.5)) for _ in range(2000)]
    log_dose = np.log10([e.dose for e in exposures])
    assert stats.kstest(log_dose, "uniform", args=(1.0, 5.0)).pvalue > 0.01
    assert {e.focal_blur for e in exposures} == {2.5}


def test_normalised_grid_gives_pixel_centres():
    u, v = normalised_grid((2, 4))
    np.testing.assert_array_equal(u, [[0.125, 0.375, 0.625, 0.875]])
    np.testing.assert_array_equal(v, [[0.25], [0.75]])


def test_gaussian_blur_of_sigma_zero_is_the_identity():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    out = gaussian_blur(image, 0.0)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image)


def test_warp_samples_at_x_plus_dx_and_y_plus_dy():
    h, w = 6, 8
    image = (np.arange(w)[None, :] + 10 * np.arange(h)[:, None]).astype(np.float32)  # x + 10 y
    ones, zeros = np.ones((h, w), np.float32), np.zeros((h, w), np.float32)
    np.testing.assert_allclose(warp(image, ones, zeros)[:, :-1], image[:, :-1] + 1)
    np.testing.assert_allclose(warp(image, zeros, ones)[:-1], image[:-1] + 10)


def test_smooth_noise_has_zero_mean_and_unit_std():
    field = smooth_noise(np.random.default_rng(3), (90, 70), 12.0)
    assert field.shape == (90, 70) and field.dtype == np.float32
    assert abs(field.mean()) < 1e-5 and field.std() == pytest.approx(1.0, abs=1e-4)


def test_catmull_rom_runs_through_the_points_and_is_linear_on_a_straight_even_line():
    """The spline interpolates its points (every 48th sample, and the last one); on evenly spaced collinear
    points with mirrored ends it is the straight line itself, sampled evenly."""
    points = np.array([[0.2, 0.5], [0.35, 0.5], [0.5, 0.5], [0.65, 0.5], [0.8, 0.5]])
    curve = _catmull_rom(points)
    assert len(curve) == 4 * 48 + 1
    np.testing.assert_allclose(curve[::48], points, atol=1e-12)
    np.testing.assert_allclose(curve[:, 0], np.linspace(0.2, 0.8, 4 * 48 + 1), atol=1e-12)


def test_stomach_scale_scales_the_patients_stomach_about_its_centre():
    """The same stream with scale 0.5 and 1: half the widths, half the spread of the centreline."""
    half = sample_anatomy(np.random.default_rng(7), (0.5, 0.5))
    full = sample_anatomy(np.random.default_rng(7), (1.0, 1.0))
    np.testing.assert_allclose(half.stomach_widths, 0.5 * full.stomach_widths)
    centred = [a.stomach_points - a.stomach_points.mean(axis=0) for a in (half, full)]
    np.testing.assert_allclose(centred[0], 0.5 * centred[1])
    np.testing.assert_allclose(half.stomach_points.mean(axis=0), full.stomach_points.mean(axis=0))


def _tube(pool_fraction: float = 0.0, gas_mu: float = 0.6) -> tuple[View, object]:
    """A straight horizontal stomach from u = 0.2 to 0.8 at v = 0.5, half-width 0.1, without lumps."""
    anatomy = sample_anatomy(np.random.default_rng(0), (1.0, 1.0))
    view = View(
        stomach_points=np.array([[0.2, 0.5], [0.35, 0.5], [0.5, 0.5], [0.65, 0.5], [0.8, 0.5]]),
        stomach_widths=np.full(6, 0.1),
        lump_amp=0.0,
        pool_fraction=pool_fraction,
        pool_direction=0.0,  # gravity along +u: the pool fills the right end
        gas_mu=gas_mu,
        bowel_gas=np.zeros((0, 5)),
    )
    return view, anatomy


def test_stomach_mask_is_the_disk_swept_along_the_centreline():
    """At 256 px a half-width of 0.1 is 25.6 px around row 128 (51 rows), the ends lie 0.1 beyond the
    first and last points (columns 25.6 and 230.4), within a pixel of OpenCV's rasterisation each side."""
    view, anatomy = _tube()
    mask = stomach_mask(view, anatomy, 256)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
    assert abs(int(mask[:, 128].sum()) - 51) <= 2
    rows = np.flatnonzero(mask[:, 128])
    assert rows.min() == pytest.approx(102.4, abs=1.5) and rows.max() == pytest.approx(153.6, abs=1.5)
    cols = np.flatnonzero(mask[128])
    assert cols.min() == pytest.approx(25.6, abs=2.0) and cols.max() == pytest.approx(230.4, abs=2.0)


def test_stomach_gas_is_dark_and_the_pool_fills_its_share_at_the_low_end_hiding_the_mucosa():
    """Deep inside the gas-filled stomach the attenuation is ``-gas_mu`` (gas shows dark); the barium pool
    covers ``pool_fraction`` of the stomach along gravity, and no mucosa shows through it."""
    view, anatomy = _tube(pool_fraction=0.0, gas_mu=0.6)
    mask = stomach_mask(view, anatomy, 256)
    layers = stomach_layers(mask, view, np.random.default_rng(1))
    assert not layers.pool.any()
    deep = np.unravel_index(np.argmax(ndimage.distance_transform_edt(mask)), mask.shape)
    assert layers.attenuation[deep] == pytest.approx(-0.6, abs=1e-3)
    assert layers.mucosa_weight[deep] == pytest.approx(1.0, abs=1e-3)

    view, anatomy = _tube(pool_fraction=0.3)
    layers = stomach_layers(mask, view, np.random.default_rng(1))
    inside = mask > 0
    pooled = layers.pool > 0.5
    assert pooled[inside].mean() == pytest.approx(0.3, abs=0.03)
    cols = np.nonzero(inside)[1]
    assert np.nonzero(pooled & inside)[1].mean() > np.quantile(cols, 0.6)  # at the +u end
    assert layers.mucosa_weight[layers.pool > 0.99].max() < 0.01


def test_view_draws_its_pool_fraction_from_the_range():
    anatomy = sample_anatomy(np.random.default_rng(0), (1.0, 1.0))
    assert sample_view(np.random.default_rng(1), anatomy, (0.45, 0.45)).pool_fraction == 0.45
