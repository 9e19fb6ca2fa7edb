"""A PNG grid of distilled images with their soft labels: what a recipient looks at first."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from gastrodistill.utils.images import render_grid, save_png


def save_grid(
    path: str | os.PathLike,
    images: torch.Tensor,
    targets: torch.Tensor,
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    per_row: int,
    max_images: int = 120,
    title: str | None = None,
) -> Path:
    """Images in rows of ``per_row`` (one inner step's batch per row), captioned with their top soft label
    (the package's one renderer, :func:`gastrodistill.utils.images.render_grid`)."""
    n = min(len(images), max_images)
    return save_png(
        path, render_grid(images[:n], targets[:n], class_names, mean, std, per_row, title, top_k=1)
    )
