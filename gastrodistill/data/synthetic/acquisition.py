"""From attenuation to a 16-bit detector image: exposure, focal blur, quantum noise, detector blur.

Counts follow Beer-Lambert (``N = dose * heel * exp(-A)``) with Poisson noise, so dense regions are
noisier, as on a real detector. The displayed value is ``log(dose / N)`` (MONOCHROME2: bone and
barium bright, gas dark), scaled by a per-image window and quantised to 16 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gastrodistill.data.synthetic.fields import gaussian_blur, normalised_grid

MAX_16 = 65535


@dataclass(frozen=True)
class Exposure:
    """One image's acquisition settings."""

    dose: float
    heel: float
    heel_angle: float
    focal_blur: float
    detector_blur: float
    gain: float
    offset: float


def sample_exposure(
    rng: np.random.Generator, dose: tuple[float, float], blur_px: tuple[float, float]
) -> Exposure:
    """One image's random exposure: dose log-uniform in ``dose``, focal blur uniform in ``blur_px`` (px),
    heel effect, detector blur, gain and offset uniform in fixed ranges."""
    lo, hi = dose
    return Exposure(
        dose=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
        heel=rng.uniform(0.0, 0.25),
        heel_angle=rng.uniform(-np.pi, np.pi),
        focal_blur=rng.uniform(*blur_px),
        detector_blur=rng.uniform(0.4, 0.8),
        gain=rng.uniform(9000.0, 12500.0),
        offset=rng.uniform(300.0, 3000.0),
    )


def acquire(attenuation: np.ndarray, exposure: Exposure, rng: np.random.Generator) -> np.ndarray:
    """Simulate the exposure of ``attenuation`` and return the uint16 image."""
    att = gaussian_blur(attenuation, exposure.focal_blur)
    u, v = normalised_grid(att.shape)
    heel = 1.0 - exposure.heel * (
        np.cos(exposure.heel_angle) * (u - 0.5) + np.sin(exposure.heel_angle) * (v - 0.5)
    )
    expected = exposure.dose * heel * np.exp(-att)
    counts = rng.poisson(expected).astype(np.float32)
    counts = gaussian_blur(counts, exposure.detector_blur)
    display = np.log(exposure.dose / np.maximum(counts, 0.5))
    value = exposure.offset + exposure.gain * display
    return np.clip(np.rint(value), 0, MAX_16).astype(np.uint16)
