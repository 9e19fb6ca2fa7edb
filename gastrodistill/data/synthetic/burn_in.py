"""Burned-in patient text, as modalities stamp it into the pixels (the anonymity audit looks for it)."""

from __future__ import annotations

import cv2
import numpy as np

CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


def burn_in_text(
    image: np.ndarray, lines: list[str], corner: str = "top-left", value: int | None = None
) -> tuple[int, int, int, int]:
    """Draw ``lines`` into ``image`` (2-D, in place) in a corner; return the box (y0, x0, y1, x1) written.

    Text is rendered anti-aliased into an 8-bit stencil (OpenCV draws text only on 8-bit images)
    and composited at ``value`` (default: the dtype's maximum, i.e. white).
    """
    if corner not in CORNERS:
        raise ValueError(f"burn-in corner must be one of {CORNERS}, got {corner!r}")
    h, w = image.shape
    if value is None:
        value = int(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0
    font = cv2.FONT_HERSHEY_SIMPLEX
    scale = max(max(h, w) / 1600.0, 0.35)  # legible down to small test images
    thickness = max(1, round(scale * 2))
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_h = max(s[0][1] + s[1] for s in sizes) + max(2, round(6 * scale))
    block_w = max(s[0][0] for s in sizes)
    block_h = line_h * len(lines)
    margin = max(4, round(0.015 * max(h, w)))
    x0 = margin if corner.endswith("left") else max(w - margin - block_w, 0)
    y0 = margin if corner.startswith("top") else max(h - margin - block_h, 0)
    stencil = np.zeros((h, w), np.uint8)
    for i, (line, ((_, th), _)) in enumerate(zip(lines, sizes, strict=True)):
        cv2.putText(stencil, line, (x0, y0 + i * line_h + th), font, scale, 255, thickness, cv2.LINE_AA)
    alpha = stencil.astype(np.float32) / 255.0
    mixed = image.astype(np.float32) * (1.0 - alpha) + float(value) * alpha
    if np.issubdtype(image.dtype, np.integer):
        mixed = np.rint(mixed)
    image[...] = mixed.astype(image.dtype)
    ys, xs = np.nonzero(stencil)
    if len(ys) == 0:
        return (y0, x0, y0, x0)
    return (int(ys.min()), int(xs.min()), int(ys.max()) + 1, int(xs.max()) + 1)
