"""The one de-normalise helper and the one image-grid renderer of the package.

Images travel normalised by the training split's per-channel mean and std (``data/base.py``);
:func:`denormalise` takes them back to intensities in [0, 1] (SSIM, NCC and pictures are defined
there). :func:`render_grid` draws any set of images with captions on an Agg canvas (matplotlib's
object API: no pyplot state, no display) and returns an RGB ``uint8`` array; :func:`save_png` writes
it atomically. The distillation's progress grid, the evaluation's figure and the artifact's
``grid.png`` are all this renderer with different orderings. :func:`save_figure` is the one writer of
pyplot figures (the evaluation's and the audit's charts).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gastrodistill.utils.atomic import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def denormalise(
    images: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None, clamp: bool = False
) -> torch.Tensor:
    """Normalised images ``[N, C, H, W]`` (or ``[C, H, W]``) to intensities ``x * std + mean`` (same shape,
    dtype and device); ``clamp`` clips to [0, 1]. Without statistics each image is min-max scaled."""
    x = images.detach()
    if mean is None or std is None:
        dims = tuple(range(x.ndim - 3, x.ndim))
        lo = x.amin(dim=dims, keepdim=True)
        hi = x.amax(dim=dims, keepdim=True)
        return (x - lo) / (hi - lo).clamp_min(1e-8)
    shape = (-1, 1, 1)
    m = torch.as_tensor(list(mean), dtype=x.dtype, device=x.device).view(shape)
    s = torch.as_tensor(list(std), dtype=x.dtype, device=x.device).view(shape)
    out = x * s + m
    return out.clamp(0, 1) if clamp else out


def render_grid(
    images: torch.Tensor,
    targets: torch.Tensor,
    class_names: Sequence[str],
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
    per_row: int,
    title: str | None = None,
    top_k: int = 1,
    row_labels: Sequence[str] | None = None,
    cell: tuple[float, float] = (1.6, 1.8),
    dpi: int = 100,
) -> np.ndarray:
    """Images ``[N, C, H, W]`` in rows of ``per_row``, each captioned with its ``top_k`` soft labels
    (``targets`` ``[N, K]`` probabilities); ``row_labels`` name the rows. Returns RGB ``uint8``
    ``[H, W, 3]``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(images)
    pics = denormalise(images.float().cpu(), mean, std, clamp=True).permute(0, 2, 3, 1).numpy()
    probs = targets.detach().float().cpu()
    cols = max(1, min(per_row, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(cell[0] * cols, cell[1] * rows + (0.4 if title else 0)), dpi=dpi)
    for i in range(rows * cols):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= n:
            ax.axis("off")
            continue
        img = pics[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
        p = probs[i]
        top = torch.topk(p, min(top_k, len(p))).indices.tolist()
        ax.set_title("\n".join(f"{class_names[t][:10]} {p[t]:.2f}" for t in top), fontsize=6)
        if row_labels is not None and i % cols == 0 and i // cols < len(row_labels):
            ax.set_ylabel(str(row_labels[i // cols])[:14], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an RGB ``uint8`` array as PNG (no metadata), atomically."""
    from PIL import Image

    with atomic_path(path, suffix=".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)


def save_figure(fig: Figure, path: str | os.PathLike, **savefig_options: Any) -> Path:
    """Write a pyplot figure as PNG, atomically, and close it, also when writing fails (no figure is
    left open in pyplot's registry). ``savefig_options`` go to ``Figure.savefig`` as they are (``dpi``,
    ``bbox_inches``, ``metadata``), so the file holds the bytes ``savefig`` writes with them. The one
    figure writer of the evaluation's and the audit's figures; raises what ``savefig`` or the rename raise."""
    import matplotlib.pyplot as plt

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", **savefig_options)
    finally:
        plt.close(fig)
    return Path(path)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] (float, any shape) as the patch store keeps them: ``rint(x * 255)``, uint8
    of the same shape (values outside [0, 1] clipped)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
