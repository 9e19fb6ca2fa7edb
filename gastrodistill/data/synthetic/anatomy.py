"""Anatomy of an upper-GI double-contrast view: body, lungs, spine, ribs, bowel gas and the stomach.

Everything is an *attenuation* map (line integral, dimensionless): bone and barium add, gas and lung
subtract. Geometry is in normalised image coordinates (u across, v down, both in [0, 1]) so one
patient keeps the same anatomy at any image size. The stomach sits on the image right (patient's
left), overlapping the spine with its antrum, as in a standard supine double-contrast view.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gastrodistill.data.synthetic.fields import gaussian_blur, normalised_grid, smooth_noise

# Mean stomach centreline, fundus -> body -> angle -> antrum -> pylorus, and half-widths there.
_STOMACH_POINTS = np.array(
    [[0.70, 0.13], [0.69, 0.33], [0.63, 0.56], [0.50, 0.73], [0.35, 0.68], [0.24, 0.53]], dtype=np.float64
)
_STOMACH_WIDTHS = np.array([0.19, 0.215, 0.20, 0.17, 0.13, 0.065], dtype=np.float64)

#: Resolution at which the smooth background (body, bones, gas) is drawn before upsampling.
_WORK_SIZE = 512


@dataclass(frozen=True)
class PatientAnatomy:
    """What stays fixed across one patient's images."""

    body_center: float
    body_halfwidth: float
    tissue_mu: float
    spine_x: float
    vertebra_height: float
    vertebra_phase: float
    rib_start: float
    rib_spacing: float
    rib_drop: float
    diaphragm: float
    stomach_points: np.ndarray
    stomach_widths: np.ndarray
    lump_phase: np.ndarray


@dataclass(frozen=True)
class View:
    """What changes from one image of a patient to the next (position, projection, barium, gas)."""

    stomach_points: np.ndarray
    stomach_widths: np.ndarray
    lump_amp: float
    pool_fraction: float
    pool_direction: float
    gas_mu: float
    bowel_gas: np.ndarray  # rows: u, v, radius_u, radius_v, strength


def sample_anatomy(rng: np.random.Generator, stomach_scale: tuple[float, float]) -> PatientAnatomy:
    """Draw one patient's body habitus and stomach shape."""
    scale = rng.uniform(*stomach_scale)
    pts = _STOMACH_POINTS + rng.normal(0.0, 0.025, _STOMACH_POINTS.shape)
    center = pts.mean(axis=0)
    pts = center + (pts - center) * scale
    widths = _STOMACH_WIDTHS * scale * rng.uniform(0.85, 1.15, _STOMACH_WIDTHS.shape)
    return PatientAnatomy(
        body_center=rng.uniform(0.45, 0.55),
        body_halfwidth=rng.uniform(0.52, 0.8),
        tissue_mu=rng.uniform(1.9, 2.5),
        spine_x=rng.uniform(0.40, 0.50),
        vertebra_height=rng.uniform(0.10, 0.13),
        vertebra_phase=rng.uniform(0.0, 1.0),
        rib_start=rng.uniform(-0.12, -0.02),
        rib_spacing=rng.uniform(0.085, 0.105),
        rib_drop=rng.uniform(0.7, 1.2),
        diaphragm=rng.uniform(0.02, 0.12),
        stomach_points=pts,
        stomach_widths=widths,
        lump_phase=rng.uniform(0.0, 2 * np.pi, 4),
    )


def sample_view(
    rng: np.random.Generator, anatomy: PatientAnatomy, pool_fraction: tuple[float, float]
) -> View:
    """Draw one image's projection of the patient: the stomach shifts, turns and changes fill."""
    pts = anatomy.stomach_points
    center = pts.mean(axis=0)
    angle = np.deg2rad(rng.uniform(-12.0, 12.0))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    zoom = rng.uniform(0.93, 1.07)
    shift = rng.uniform(-0.05, 0.05, 2)
    new_pts = center + shift + (pts - center) @ rot.T * zoom
    new_pts = new_pts + rng.normal(0.0, 0.01, pts.shape)
    widths = anatomy.stomach_widths * zoom * rng.uniform(0.93, 1.07, anatomy.stomach_widths.shape)
    n_gas = int(rng.integers(2, 6))
    gas = np.column_stack(
        [
            rng.uniform(0.05, 0.95, n_gas),
            rng.uniform(0.72, 1.0, n_gas),
            rng.uniform(0.03, 0.09, n_gas),
            rng.uniform(0.02, 0.05, n_gas),
            rng.uniform(0.2, 0.6, n_gas),
        ]
    )
    return View(
        stomach_points=new_pts,
        stomach_widths=widths,
        lump_amp=rng.uniform(0.03, 0.09),
        pool_fraction=rng.uniform(*pool_fraction),
        pool_direction=rng.uniform(-np.pi, np.pi),
        gas_mu=rng.uniform(0.45, 0.75),
        bowel_gas=gas,
    )


def _catmull_rom(points: np.ndarray, samples_per_segment: int = 48) -> np.ndarray:
    """A smooth curve through ``points`` (uniform Catmull-Rom with mirrored end points)."""
    p = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False)[:, None]
    segs = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        segs.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3
            )
        )
    segs.append(points[-1][None, :])
    return np.vstack(segs)


def stomach_mask(view: View, anatomy: PatientAnatomy, size: int) -> np.ndarray:
    """Binary stomach silhouette (uint8 0/1): a disk swept along the curved centreline, edges rounded."""
    curve = _catmull_rom(view.stomach_points)
    n = len(curve)
    knots = np.linspace(0.0, 1.0, len(view.stomach_widths))
    t = np.linspace(0.0, 1.0, n)
    radius = np.interp(t, knots, view.stomach_widths)
    lumps = sum(
        np.sin(2 * np.pi * (k + 2) * t + anatomy.lump_phase[k]) / (k + 1)
        for k in range(len(anatomy.lump_phase))
    )
    radius = radius * (1.0 + view.lump_amp * lumps)
    canvas = np.zeros((size, size), np.uint8)
    shift = 4
    for (cu, cv), r in zip(curve, radius, strict=True):
        center = (round(cu * size * (1 << shift)), round(cv * size * (1 << shift)))
        cv2.circle(canvas, center, max(round(r * size * (1 << shift)), 1), 1, -1, cv2.LINE_8, shift)
    smooth = gaussian_blur(canvas.astype(np.float32), 0.01 * size)
    return (smooth > 0.5).astype(np.uint8)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _background_small(anatomy: PatientAnatomy, view: View, rng: np.random.Generator, n: int) -> np.ndarray:
    u, v = normalised_grid((n, n))
    a = anatomy
    # Soft tissue: an elliptic body cross-section (air outside it).
    thick = np.sqrt(np.clip(1.0 - ((u - a.body_center) / a.body_halfwidth) ** 2, 0.0, 1.0))
    thick = thick * (0.92 + 0.08 * v)
    att = a.tissue_mu * thick
    # Liver on the image left: a little denser.
    att = att + 0.18 * _smoothstep((0.42 - u) / 0.2) * _smoothstep((0.7 - v) / 0.15) * thick
    # Lung bases above two hemidiaphragm domes.
    dome = np.minimum(
        a.diaphragm + 0.9 * (u - (a.spine_x - 0.22)) ** 2,
        a.diaphragm + 0.04 + 0.9 * (u - (a.spine_x + 0.25)) ** 2,
    )
    att = att - 0.9 * _smoothstep((dome - v) / 0.05) * thick
    # Spine: vertebral bodies with end plates and pedicles, and the intervertebral gaps.
    du = u - a.spine_x
    phase = (v / a.vertebra_height + a.vertebra_phase) % 1.0
    dv = (phase - 0.5) * a.vertebra_height
    half_h = 0.42 * a.vertebra_height
    body = np.clip(1.0 - (np.abs(du) / 0.055) ** 4 - (np.abs(dv) / half_h) ** 4, 0.0, 1.0) ** 0.35
    plates = np.exp(-(((np.abs(dv) - half_h * 0.95) / (0.004)) ** 2)) * _smoothstep(
        (0.055 - np.abs(du)) / 0.01
    )
    ped = np.zeros_like(body)
    for side in (-1.0, 1.0):
        r = np.sqrt(((du - side * 0.036) / 0.014) ** 2 + ((dv + 0.15 * a.vertebra_height) / 0.02) ** 2)
        ped = ped + np.exp(-(((r - 1.0) / 0.35) ** 2))
    column = np.exp(-((du / 0.075) ** 2)) * 0.15
    att = att + 0.55 * body + 0.2 * plates + 0.25 * ped + column
    # Ribs: arcs leaving the spine, rising a little then falling laterally, fading towards the abdomen.
    for side in (-1.0, 1.0):
        lateral = np.clip(side * (u - a.spine_x) - 0.05, 0.0, None)
        on_side = _smoothstep(lateral / 0.03) * _smoothstep((0.5 - lateral) / 0.1)
        for k in range(6):
            v0 = a.rib_start + k * a.rib_spacing
            centre = v0 - 0.06 * lateral + a.rib_drop * lateral**2
            width = 0.010 + 0.003 * (k % 2)
            d = np.abs(v - centre) / width
            rib = np.clip(1.0 - d**2, 0.0, 1.0) ** 0.5 * 0.5 + np.exp(-(((d - 0.9) / 0.25) ** 2)) * 0.5
            fade = _smoothstep((0.75 - centre) / 0.3)
            att = att + 0.28 * rib * on_side * fade
    # Bowel gas below the stomach.
    for gu, gv, ru, rv, s in view.bowel_gas:
        r2 = ((u - gu) / ru) ** 2 + ((v - gv) / rv) ** 2
        att = att - s * np.exp(-(r2**2)) * thick
    att = att + 0.05 * smooth_noise(rng, (n, n), n / 8)
    return att.astype(np.float32)


def background_attenuation(
    anatomy: PatientAnatomy, view: View, rng: np.random.Generator, size: int
) -> np.ndarray:
    """The attenuation of everything but the stomach, at ``size`` x ``size`` (float32)."""
    n = min(size, _WORK_SIZE)
    small = _background_small(anatomy, view, rng, n)
    if n == size:
        return small
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


@dataclass(frozen=True)
class StomachLayers:
    """The stomach's contribution: attenuation without mucosa, where mucosa shows, and the pool."""

    attenuation: np.ndarray
    mucosa_weight: np.ndarray
    pool: np.ndarray


def stomach_layers(mask: np.ndarray, view: View, rng: np.random.Generator) -> StomachLayers:
    """Gas distension, the barium-coated wall seen edge-on (a bright rim) and the dependent barium pool."""
    size = mask.shape[0]
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 5).astype(np.float32)
    depth = np.sqrt(dist / max(float(dist.max()), 1.0))
    soft = gaussian_blur(mask.astype(np.float32), 0.002 * size)
    rim_px = 0.004 * size
    rim = np.exp(-dist / rim_px) * mask
    # Pool: the stomach pixels furthest along a "gravity" direction, with a wavy meniscus.
    u, v = normalised_grid(mask.shape)
    proj = np.cos(view.pool_direction) * u + np.sin(view.pool_direction) * v
    proj = proj + 0.03 * smooth_noise(rng, mask.shape, 0.15 * size)
    pool = np.zeros_like(soft)
    if view.pool_fraction > 0 and mask.any():
        level = np.quantile(proj[mask > 0], 1.0 - view.pool_fraction)
        pool = _smoothstep((proj - level) / 0.01) * soft
    att = -view.gas_mu * depth * soft + 0.35 * rim + pool * (1.3 + 0.6 * depth)
    weight = soft * (1.0 - pool)
    return StomachLayers(
        attenuation=att.astype(np.float32), mucosa_weight=weight.astype(np.float32), pool=pool
    )
