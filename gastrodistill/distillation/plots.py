"""Pictures people look at: the distilled images with their soft labels, the learned lr schedule, and
(with ``data.zca``) the whitening filter with images before and after it.

Drawn with matplotlib's object API on an Agg canvas (no pyplot global state, no display needed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

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


def zca_filter(distilled: DistilledSet) -> torch.Tensor | None:
    """The local ZCA filter ``[C, k, k]`` the set was distilled behind (``model.zca_kernel`` of its
    recorded model config, ``data.zca``), or ``None`` when it has none."""
    from gastrodistill.models.zca import ZCA_KEY

    kernel = (distilled.model_config or {}).get(ZCA_KEY)
    return None if kernel is None else torch.as_tensor(kernel, dtype=torch.float32)


def whitened_examples(distilled: DistilledSet) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first image distilled for each class (its class by ``hard_labels``; a soft image's learned
    label may differ) ``[K, C, H, W]`` (normalised pixels) and the same images as the networks see them,
    through the set's ZCA filter (:class:`~gastrodistill.models.zca.ZCAWhitening`); ``None`` when the set
    has no filter."""
    from gastrodistill.models.zca import ZCAWhitening

    kernel = zca_filter(distilled)
    if kernel is None:
        return None
    labels = distilled.hard_labels()
    first = [int(torch.nonzero(labels == c)[0]) for c in range(distilled.num_classes)]
    with torch.no_grad():
        images = distilled.images.detach().float().cpu()[first]
        return images, ZCAWhitening(kernel)(images)


def zca_image(distilled: DistilledSet) -> np.ndarray | None:
    """The set's ZCA filter (one panel per channel, a diverging scale centred on 0) beside the first image
    distilled for each class before and after whitening (after: each image on its own symmetric scale, 0
    at mid-grey, since whitened pixels have no intensity to show). RGB ``uint8`` ``[H, W, 3]``; ``None``
    when the set has no filter."""
    from gastrodistill.utils.images import denormalise

    kernel, examples = zca_filter(distilled), whitened_examples(distilled)
    if kernel is None or examples is None:
        return None
    images, white = examples
    channels, k = kernel.shape[0], distilled.num_classes
    cols = max(channels, k)
    fig = Figure(figsize=(1.7 * cols + 0.6, 5.4), dpi=90)
    for c in range(channels):
        ax = fig.add_subplot(3, cols, c + 1)
        bound = float(kernel[c].abs().max())
        shown = ax.imshow(kernel[c].numpy(), cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(f"filter, channel {c} ({kernel.shape[-1]} px)", fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    plain = denormalise(images, distilled.mean, distilled.std, clamp=True)
    for i in range(k):
        for row, pic in ((1, plain[i]), (2, white[i])):
            if pic.shape[0] not in (1, 3):  # neither grey nor RGB: the channels' mean
                pic = pic.mean(0, keepdim=True)
            ax = fig.add_subplot(3, cols, row * cols + i + 1)
            if row == 1:
                ax.imshow(pic.permute(1, 2, 0).numpy().squeeze(), cmap="gray", vmin=0, vmax=1)
                ax.set_title(f"{distilled.class_names[i]}", fontsize=7)
            else:  # one symmetric scale over the image's channels, 0 at mid-grey
                bound = float(pic.abs().max()) or 1.0
                centred = ((pic / bound + 1) / 2).permute(1, 2, 0).numpy().squeeze()
                ax.imshow(centred, cmap="gray", vmin=0, vmax=1)
                ax.set_title("as the networks see it", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        "local ZCA whitening (data.zca): the filter, and one image per class before / after", fontsize=8
    )
    fig.tight_layout()
    return _figure_to_array(fig)


def curves_image(
    outer: dict[str, list[float]], start: list[float] | None = None, start_name: str = "image start"
) -> np.ndarray:
    """The distillation's curves: the image start's loss per step (``start``: the texture or distribution
    matching before the outer loop, when it ran here), and each outer step's loss and accuracy on its real
    batch (``outer``, :meth:`~gastrodistill.distillation.curves.OuterCurves.curves`). Returns an RGB
    ``uint8`` array ``[H, W, 3]``."""
    panels = [p for p in ("start", "loss", "accuracy") if p != "start" or start]
    fig = Figure(figsize=(3.4 * len(panels), 2.9), dpi=100)
    for i, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        if panel == "start":
            ax.plot(np.arange(1, len(start or []) + 1), start, lw=1)
            ax.set_xlabel(f"{start_name} step")
            ax.set_ylabel("loss")
            ax.set_title(start_name, fontsize=9)
            continue
        ax.plot(outer["step"], outer[panel], marker="o", ms=2, lw=1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("outer step")
        ax.set_ylabel(panel)
        ax.set_title(f"outer {panel} on the real batch", fontsize=9)
        if not outer["step"]:
            ax.text(0.5, 0.5, "no outer step ran here", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return _figure_to_array(fig)
