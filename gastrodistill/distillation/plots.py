"""Pictures people look at: the distilled images with their soft labels, and the learned lr schedule.

Drawn with matplotlib's object API on an Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gastrodistill.utils.atomic import atomic_path


def _to_display(img: torch.Tensor, mean: list[float] | None, std: list[float] | None) -> np.ndarray:
    """``[C, H, W]`` normalised -> ``[H, W]`` or ``[H, W, 3]`` in [0, 1] (min-max if no statistics)."""
    x = img.detach().float().cpu()
    if mean is not None and std is not None:
        x = x * torch.tensor(std).view(-1, 1, 1) + torch.tensor(mean).view(-1, 1, 1)
    else:
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-8)
    x = x.clamp(0, 1).numpy()
    return x[0] if x.shape[0] != 3 else x.transpose(1, 2, 0)


def _figure_to_array(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def grid_image(distilled, max_per_class: int = 10, title: str | None = None) -> np.ndarray:
    """Up to ``max_per_class`` images of every class, each captioned with its top soft labels.

    Classes are rows (or columns, when there are more classes than images shown per class). Returns an
    RGB ``uint8`` array ``[H, W, 3]`` (what W&B expects).
    """
    k, per_class = distilled.num_classes, distilled.ipc * distilled.steps
    n = min(max_per_class, per_class)
    by_row = n >= k  # keep the long side horizontal
    rows, cols = (k, n) if by_row else (n, k)
    targets = distilled.soft_targets().detach().cpu()
    names = distilled.class_names
    fig = Figure(figsize=(max(1.3 * cols, 3.0), 1.5 * rows + (0.4 if title else 0)), dpi=80)
    for c in range(k):
        for j in range(n):
            step, i = divmod(j, distilled.ipc)
            idx = step * distilled.per_step + c * distilled.ipc + i
            r, q = (c, j) if by_row else (j, c)
            ax = fig.add_subplot(rows, cols, r * cols + q + 1)
            ax.imshow(
                _to_display(distilled.images[idx], distilled.mean, distilled.std), cmap="gray", vmin=0, vmax=1
            )
            p = targets[idx]
            top = torch.topk(p, min(2, k)).indices.tolist()
            ax.set_title("\n".join(f"{names[t][:10]} {p[t]:.2f}" for t in top), fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
            if by_row and j == 0:
                ax.set_ylabel(names[c][:14], fontsize=7)
            if not by_row and j == n - 1:
                ax.set_xlabel(names[c][:14], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    return _figure_to_array(fig)


def lr_schedule_image(distilled) -> np.ndarray:
    """The learned learning rate of each of the T inner steps (epoch boundaries marked)."""
    lrs = distilled.lrs().detach().cpu().numpy()
    fig = Figure(figsize=(5, 3), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(np.arange(len(lrs)), lrs, marker="o", ms=3)
    for e in range(1, distilled.epochs):
        ax.axvline(e * distilled.steps - 0.5, color="0.8", lw=0.8)
    ax.set_xlabel("inner step t")
    ax.set_ylabel("learning rate")
    ax.set_title(f"learned lr schedule ({distilled.steps} steps x {distilled.epochs} epochs)", fontsize=9)
    fig.tight_layout()
    return _figure_to_array(fig)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an RGB uint8 array as PNG, atomically."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)
