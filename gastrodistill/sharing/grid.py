"""A PNG grid of distilled images with their soft labels: what a recipient looks at first."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gastrodistill.utils.atomic import atomic_path  # noqa: E402


def display_images(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised ``[N, C, H, W]`` images back to [0, 1] intensities, ``[N, H, W, C]`` for imshow."""
    m = torch.as_tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
    return (images.detach().float().cpu() * s + m).clamp(0, 1).permute(0, 2, 3, 1)


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
    """Images in rows of ``per_row`` (one inner step's batch per row), captioned with their top soft label."""
    n = min(len(images), max_images)
    pics = display_images(images[:n], mean, std).numpy()
    probs = targets[:n].detach().float().cpu()
    cols = max(1, min(per_row, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, figsize=(1.6 * cols, 1.8 * rows + (0.4 if title else 0)), squeeze=False
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        ax = axes.flat[i]
        img = pics[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        c = int(probs[i].argmax())
        ax.set_title(f"{class_names[c]} {probs[i, c]:.2f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return Path(path)
