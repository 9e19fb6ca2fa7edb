"""Pictures people look at: the distilled images with their soft labels, and the learned lr schedule.

Drawn with matplotlib's object API on an Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from gastrodistill.utils.images import render_grid, save_png  # noqa: F401 - save_png re-exported

if TYPE_CHECKING:
    from gastrodistill.distillation.distilled_set import DistilledSet


def _figure_to_array(fig: Figure) -> np.ndarray:
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def grid_image(distilled: DistilledSet, max_per_class: int = 10, title: str | None = None) -> np.ndarray:
    """Up to ``max_per_class`` images of every class, each captioned with its top soft labels.

    Classes are rows (or columns, when there are more classes than images shown per class). Returns an
    RGB ``uint8`` array ``[H, W, 3]`` (what W&B expects); drawn by the package's one renderer
    (:func:`gastrodistill.utils.images.render_grid`).
    """
    k, per_class = distilled.num_classes, distilled.ipc * distilled.steps
    n = min(max_per_class, per_class)
    by_row = n >= k  # keep the long side horizontal

    def index(c: int, j: int) -> int:
        step, i = divmod(j, distilled.ipc)
        return step * distilled.per_step + c * distilled.ipc + i

    if by_row:
        order = [index(c, j) for c in range(k) for j in range(n)]
        per_row, labels = n, list(distilled.class_names)
    else:
        order = [index(c, j) for j in range(n) for c in range(k)]
        per_row, labels = k, None
    with torch.no_grad():
        images = distilled.images.detach()[order]
        targets = distilled.soft_targets().detach()[order]
    return render_grid(
        images,
        targets,
        distilled.class_names,
        distilled.mean,
        distilled.std,
        per_row,
        title,
        top_k=min(2, k),
        row_labels=labels,
        cell=(1.3, 1.5),
        dpi=80,
    )


def lr_schedule_image(distilled: DistilledSet) -> np.ndarray:
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
