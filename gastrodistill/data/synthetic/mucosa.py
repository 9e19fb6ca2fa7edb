"""The mucosal relief inside the stomach (areae gastricae), the only thing that encodes the diagnosis.

Barium settles in the grooves between the small polygonal *areae gastricae*, drawing a network of
bright lines. Normal mucosa: small, regular polygons with thin, even grooves. Atrophic / H. pylori
gastritis: coarse, enlarged, irregular areae with uneven grooves and nodules. Both patterns are
Worley (cellular) noise; a per-pixel *severity* in [0, 1] blends them, so a mildly affected
gastritis patient and a normal patient can look alike, and gastritis can be patchy.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gastrodistill.data.synthetic.fields import smooth_noise, warp


@dataclass(frozen=True)
class MucosaParams:
    """One patient's mucosa: severity and the two cell sizes (pixels)."""

    severity: float
    fine_cell: int
    coarse_cell: int


def sample_mucosa(
    rng: np.random.Generator,
    severity_range: tuple[float, float],
    fine_cell_px: tuple[float, float],
    coarse_cell_px: tuple[float, float],
) -> MucosaParams:
    """One patient's random mucosa: severity and fine and coarse cell sizes (px), uniform in the ranges."""
    severity = rng.uniform(*severity_range)
    return MucosaParams(
        severity=float(severity),
        fine_cell=round(rng.uniform(*fine_cell_px)),
        coarse_cell=round(rng.uniform(*coarse_cell_px)),
    )


def worley(
    rng: np.random.Generator, shape: tuple[int, int], cell: int, jitter: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cellular noise on a jittered grid: distance to the nearest and second-nearest feature point
    (in pixels) and a uniform random value per cell.

    Computed block-wise (one ``cell x cell`` block per grid cell, 3 x 3 neighbour blocks), so it is
    pure broadcasting with no per-pixel gathers.
    """
    h, w = shape
    c = max(int(cell), 2)
    gh, gw = -(-h // c), -(-w // c)
    pts = 0.5 + jitter * (rng.random((gh + 2, gw + 2, 2), dtype=np.float32) - 0.5)
    vals = rng.random((gh + 2, gw + 2), dtype=np.float32)
    local = (np.arange(c, dtype=np.float32) + 0.5) / c
    ly = local[None, None, :, None]
    lx = local[None, None, None, :]
    f1 = np.full((gh, gw, c, c), np.inf, np.float32)
    f2 = np.full((gh, gw, c, c), np.inf, np.float32)
    v1 = np.zeros((gh, gw, c, c), np.float32)
    d = np.empty_like(f1)
    tmp = np.empty_like(f1)
    closer = np.empty(f1.shape, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            sl = (slice(1 + dy, 1 + dy + gh), slice(1 + dx, 1 + dx + gw))
            py = (dy + pts[sl][..., 0])[:, :, None, None]
            px = (dx + pts[sl][..., 1])[:, :, None, None]
            np.subtract(py, ly, out=d)
            np.square(d, out=d)
            np.subtract(px, lx, out=tmp)
            np.square(tmp, out=tmp)
            d += tmp
            # Running two smallest: f2 <- min(f2, max(f1, d)); f1 <- min(f1, d).
            np.maximum(f1, d, out=tmp)
            np.minimum(f2, tmp, out=f2)
            np.less(d, f1, out=closer)
            np.minimum(f1, d, out=f1)
            np.copyto(v1, np.broadcast_to(vals[sl][:, :, None, None], v1.shape), where=closer)

    def image(a: np.ndarray) -> np.ndarray:
        return a.transpose(0, 2, 1, 3).reshape(gh * c, gw * c)[:h, :w]

    return image(np.sqrt(f1)) * c, image(np.sqrt(f2)) * c, image(v1)


def _relief(
    rng: np.random.Generator,
    shape: tuple[int, int],
    cell: int,
    jitter: float,
    groove_px: float,
    groove_var: float,
    nodularity: float,
    warp_frac: float,
    scale: int = 1,
) -> np.ndarray:
    """Barium thickness of one cellular pattern: bright grooves, darker (raised) areae, optional nodules.

    ``scale`` > 1 draws it at 1/scale resolution and upsamples bicubically (for coarse patterns,
    whose grooves stay wider than a pixel), which cuts the cost by scale**2.
    """
    if scale > 1:
        h, w = shape
        small_shape = (-(-h // scale), -(-w // scale))
        small = _relief(
            rng,
            small_shape,
            round(cell / scale),
            jitter,
            groove_px / scale,
            groove_var,
            nodularity,
            warp_frac,
        )
        big = cv2.resize(
            small, (small_shape[1] * scale, small_shape[0] * scale), interpolation=cv2.INTER_CUBIC
        )
        big = big[:h, :w]
        return ((big - big.mean()) / (big.std() + 1e-6)).astype(np.float32)
    f1, f2, val = worley(rng, shape, cell, jitter)
    edge = 0.5 * (f2 - f1)
    groove = groove_px * (1.0 + groove_var * (val - 0.5))
    depth = 1.0 + groove_var * (val - 0.5)
    lines = depth * np.exp(-((edge / groove) ** 2))
    dome = np.clip(1.0 - (f1 / (0.6 * cell)) ** 2, 0.0, 1.0)
    relief = lines - nodularity * dome * (0.3 + val)
    if warp_frac > 0:
        amp = warp_frac * cell
        relief = warp(
            relief, amp * smooth_noise(rng, shape, 2.0 * cell), amp * smooth_noise(rng, shape, 2.0 * cell)
        )
    relief = relief - relief.mean()
    return (relief / (relief.std() + 1e-6)).astype(np.float32)


def severity_map(
    rng: np.random.Generator, shape: tuple[int, int], severity: float, patchiness: float
) -> np.ndarray:
    """Local severity: the patient's level plus smooth patches (gastritis is rarely uniform)."""
    field = severity + patchiness * smooth_noise(rng, shape, 0.25 * max(shape))
    return np.clip(field, 0.0, 1.0).astype(np.float32)


def mucosal_texture(
    rng: np.random.Generator, shape: tuple[int, int], params: MucosaParams, patchiness: float
) -> np.ndarray:
    """Unit-scale barium relief (float32, about zero mean): fine/regular blended into coarse/irregular."""
    fine = _relief(
        rng,
        shape,
        params.fine_cell,
        jitter=0.7,
        groove_px=1.0,
        groove_var=0.2,
        nodularity=0.1,
        warp_frac=0.15,
    )
    coarse = _relief(
        rng,
        shape,
        params.coarse_cell,
        jitter=1.0,
        groove_px=2.6,
        groove_var=1.2,
        nodularity=0.6,
        warp_frac=0.35,
        scale=2 if params.coarse_cell >= 16 else 1,
    )
    m = severity_map(rng, shape, params.severity, patchiness)
    return (1.0 - m) * fine + m * coarse
