"""Figures of a study: distilled images with soft labels, learned lrs, ROC curves, confusion matrices.

Every figure is written atomically as PNG with the non-interactive Agg backend; no patient-level data
appear on any of them.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gastrodistill.utils.images import render_grid, save_figure, save_png  # noqa: E402

if TYPE_CHECKING:
    from gastrodistill.cli.compare_runs import Comparison


#: How the evaluation's charts are written (:func:`gastrodistill.utils.images.save_figure`).
_PNG_OPTIONS = {"dpi": 110, "bbox_inches": "tight"}


def plot_distilled_grid(
    images: torch.Tensor,
    soft_targets: torch.Tensor,
    class_names: Sequence[str],
    mean: Sequence[float],
    std: Sequence[float],
    path: str | Path,
    title: str = "",
    max_images: int = 60,
) -> Path:
    """Distilled images, one per cell, each titled with its top-3 soft labels (class: probability);
    drawn by the package's one renderer (:func:`gastrodistill.utils.images.render_grid`)."""
    n = min(len(images), max_images)
    cols = min(n, max(len(class_names), 6))
    grid = render_grid(
        images[:n], soft_targets[:n], class_names, mean, std, cols, title or None, top_k=3, cell=(1.9, 2.2)
    )
    return save_png(path, grid)


def plot_lr_schedules(
    schedules: Mapping[str, np.ndarray], path: str | Path, steps: Mapping[str, int] | None = None
) -> Path:
    """The learned per-step learning rates of each distilled set (epoch boundaries dotted)."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, lrs in schedules.items():
        lrs = np.asarray(lrs)
        ax.plot(np.arange(1, len(lrs) + 1), lrs, marker="o", ms=3, label=name)
        if steps and steps.get(name):
            for b in range(steps[name], len(lrs), steps[name]):
                ax.axvline(b + 0.5, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("inner step")
    ax.set_ylabel("learned learning rate")
    ax.set_title("Learned learning-rate schedules")
    ax.legend(fontsize=7)
    return save_figure(fig, path, **_PNG_OPTIONS)


def plot_roc_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]], path: str | Path
) -> Path:
    """All methods' patient-level ROC curves on one chart: label -> (fpr, mean tpr, std tpr, mean AUC)."""
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for label, (fpr, tpr, sd, auc) in curves.items():
        (line,) = ax.plot(fpr, tpr, lw=1.4, label=f"{label} (AUC {auc:.3f})")
        ax.fill_between(
            fpr, np.clip(tpr - sd, 0, 1), np.clip(tpr + sd, 0, 1), color=line.get_color(), alpha=0.12
        )
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("1 - specificity (test patients)")
    ax.set_ylabel("sensitivity")
    ax.set_title("Patient-level ROC (mean over fresh networks)")
    ax.legend(fontsize=6, loc="lower right")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    return save_figure(fig, path, **_PNG_OPTIONS)


#: Up to this many classes each cell of a confusion matrix carries its number; beyond, colour alone (a
#: breaker's 40 classes x 12 panels took 38 s and 1.3 GB for a 10368 x 7734 px figure).
MAX_ANNOTATED_CLASSES = 20


def tick_label(name: str, width: int = 12) -> str:
    """A class name as an axis label: wrapped onto lines of at most ``width`` characters, never cut (names
    cut to 9 characters, "Cancer fr" and "Ulcer (be", could not be told apart)."""
    return "\n".join(textwrap.wrap(str(name), width, break_long_words=True)) or str(name)


def plot_confusion_matrices(
    matrices: Mapping[str, np.ndarray], class_names: Sequence[str], path: str | Path, unit: str = "patches"
) -> Path:
    """Row-normalised confusion matrices of the test ``unit`` (patches, or images of data without
    patients), summed over fresh networks, one panel per method; panels grow with the number of classes."""
    n = len(matrices)
    cols = min(n, 4)
    rows = math.ceil(n / cols) if n else 1
    side = min(max(3.3, 0.55 * len(class_names) + 1.6), 12.0)  # room for K cells and names, capped
    fig, axes = plt.subplots(
        rows, cols, figsize=(side * cols, (side - 0.2) * rows), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    for ax, (label, cm) in zip(axes.flat, matrices.items(), strict=False):
        cm = np.asarray(cm, dtype=np.float64)
        norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
        ax.axis("on")
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        for i in range(norm.shape[0] if len(class_names) <= MAX_ANNOTATED_CLASSES else 0):  # else colour
            for j in range(norm.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{norm[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if norm[i, j] > 0.6 else "black",
                )
        ticks = range(len(class_names))
        ax.set_xticks(ticks, [tick_label(c) for c in class_names], fontsize=6, rotation=30)
        ax.set_yticks(ticks, [tick_label(c) for c in class_names], fontsize=6)
        ax.set_xlabel("predicted", fontsize=7)
        ax.set_ylabel("true", fontsize=7)
        ax.set_title(label, fontsize=7)
    fig.suptitle(f"Test {unit}, row-normalised", fontsize=9)
    return save_figure(fig, path, **_PNG_OPTIONS)


def plot_runs_compared(comparison: Comparison, path: str | Path) -> Path:
    """Runs side by side (``gastrodistill.cli.compare_runs``): one line per run, labelled by its differing
    settings (wrapped, never cut), with each results row's mean and its bootstrap interval as a point and a
    bar (a run without that row: "no <row> row" at the axis' left edge); the legend under the axis."""
    c = comparison
    labels = [
        "\n".join(
            textwrap.wrap(
                ", ".join([cells[0], *(f"{k}={v}" for k, v in zip(c.keys, cells[1:], strict=False))]), 48
            )
        )
        for cells in c.lines
    ]
    n, k = len(labels), max(len(c.rows), 1)
    height = 1.6 + sum(max(0.3 * k, 0.22 * (t.count("\n") + 1)) for t in labels)
    fig, ax = plt.subplots(figsize=(8, height), layout="constrained")
    step = 0.7 / k
    for j, name in enumerate(c.names):
        y = np.arange(n) + (j - (k - 1) / 2) * step
        mean = np.array([v.get(f"{name} mean", np.nan) for v in c.values], dtype=float)
        low = np.array([v.get(f"{name} low", np.nan) for v in c.values], dtype=float)
        high = np.array([v.get(f"{name} high", np.nan) for v in c.values], dtype=float)
        err = np.vstack([mean - low, high - mean])
        err = np.where(np.isfinite(err), err, 0.0)
        drawn = ax.errorbar(mean, y, xerr=err, fmt="o", ms=4, capsize=2, lw=1, label=name)
        for row_y in y[~np.isfinite(mean)]:  # a run without this row: said at the axis' left edge
            ax.annotate(
                f"no {name} row", (0.005, row_y), xycoords=("axes fraction", "data"), va="center",
                fontsize=6, color=drawn.lines[0].get_color(), fontstyle="italic",
            )  # fmt: skip
    ax.set_yticks(np.arange(n), labels, fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlabel(f"{c.metric} (test; mean over networks, bootstrap interval)")
    ax.set_title("Runs compared", fontsize=9)
    ax.grid(axis="x", lw=0.4, alpha=0.5)
    fig.legend(fontsize=7, loc="outside lower center", ncol=min(k, 4))
    return save_figure(fig, path, **_PNG_OPTIONS)
