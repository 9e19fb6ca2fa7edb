"""Smooth random fields shared by the anatomy, mucosa and acquisition models (vectorised, seeded)."""

from __future__ import annotations

import math

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], scale_px: float) -> np.ndarray:
    """Zero-mean, unit-std Gaussian random field with correlation length ``scale_px`` (float32).

    Drawn on a coarse grid and upsampled bicubically, so the cost does not grow with the scale.
    """
    h, w = shape
    step = max(scale_px / 2.0, 1.0)
    gh, gw = math.ceil(h / step) + 4, math.ceil(w / step) + 4
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    coarse = cv2.GaussianBlur(coarse, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    full = cv2.resize(coarse, (round(gw * step), round(gh * step)), interpolation=cv2.INTER_CUBIC)
    off = round(2 * step)
    out = full[off : off + h, off : off + w]
    out = out - out.mean()
    return (out / (out.std() + 1e-8)).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur in float32 with reflected borders (identity for sigma <= 0)."""
    if sigma <= 0:
        return image.astype(np.float32, copy=False)
    return cv2.GaussianBlur(
        image.astype(np.float32, copy=False), (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT
    )


def warp(image: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Resample ``image`` at (x + dx, y + dy): a smooth domain warp that makes regular patterns irregular."""
    h, w = image.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return cv2.remap(
        image.astype(np.float32, copy=False),
        xs + dx,
        ys + dy,
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )


def normalised_grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (u, v) in [0, 1] across the width and height (float32, broadcastable)."""
    h, w = shape
    u = ((np.arange(w, dtype=np.float32) + 0.5) / w)[None, :]
    v = ((np.arange(h, dtype=np.float32) + 0.5) / h)[:, None]
    return u, v
