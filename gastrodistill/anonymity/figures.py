"""The audit's pictures: similarity histograms against the real-patient reference, closest pairs, attack ROC.

The histogram and ROC figures hold only numbers and may go to W&B; the closest-pairs picture shows
real patches and stays in the private run folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from gastrodistill.anonymity.nearest import NearestReport  # noqa: E402
from gastrodistill.utils.images import save_figure  # noqa: E402

SPACE_TITLES = {
    "ncc": "pixel NCC",
    "ssim": "pixel SSIM",
    "feature": "feature cosine",
    "text": "text-corner NCC",
}


#: How the audit's charts are written (:func:`gastrodistill.utils.images.save_figure`); no software
#: line in the PNG.
_PNG_OPTIONS = {"dpi": 110, "metadata": {"Software": None}}


def plot_similarity_histograms(report: NearestReport, path: str | os.PathLike) -> Path:
    """Per space: the real-vs-other-patient reference distribution, its 95th/99th percentile, and each set."""
    spaces = report.spaces
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.2 * len(spaces), 3.2), squeeze=False)
    for ax, space in zip(axes[0], spaces, strict=True):
        ref = report.ref(space)
        lo = min(float(ref.min()), *(float(s[space].min()) for s in report.sets.values()))
        hi = max(float(ref.max()), *(float(s[space].max()) for s in report.sets.values()))
        bins = np.linspace(lo, hi + 1e-6, 30)
        ax.hist(
            ref,
            bins=bins,
            density=True,
            alpha=0.45,
            color="grey",
            label="real vs other patients" if report.by_patient else "real vs other samples",
        )
        for name, sets in report.sets.items():
            ax.hist(
                sets[space],
                bins=bins,
                density=True,
                histtype="step",
                linewidth=1.8,
                label=f"distilled {name}",
            )
        ax.axvline(
            report.threshold(space),
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"flag: reference q{report.flag_quantile * 100:g}",
        )
        ax.set_title(f"nearest real patch: {SPACE_TITLES.get(space, space)}", fontsize=9)
        ax.set_xlabel("similarity")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path, **_PNG_OPTIONS)


def plot_closest_pairs(
    distilled_unit: torch.Tensor,
    real_unit: torch.Tensor,
    similarities: Sequence[float],
    captions: Sequence[str],
    path: str | os.PathLike,
    reference_p99: float | None = None,
) -> Path:
    """Distilled image (top) above its nearest real patch (bottom), most similar first. Private."""
    n = len(distilled_unit)
    fig, axes = plt.subplots(2, max(n, 1), figsize=(1.7 * max(n, 1), 3.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        for row, img in ((0, distilled_unit[i]), (1, real_unit[i])):
            pic = img.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
            axes[row][i].imshow(pic[..., 0] if pic.shape[-1] == 1 else pic, cmap="gray", vmin=0, vmax=1)
        flag = " !" if reference_p99 is not None and similarities[i] >= reference_p99 else ""
        axes[0][i].set_title(f"{captions[i]}\nsim {similarities[i]:.3f}{flag}", fontsize=7)
    note = f"; '!' = at or above the flag threshold {reference_p99:.3f}" if reference_p99 is not None else ""
    fig.suptitle(f"top: distilled image, bottom: its nearest real training patch{note}", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path, **_PNG_OPTIONS)


def plot_membership_roc(
    results: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray, float]]],
    path: str | os.PathLike,
    attack: str = "lira",
) -> Path:
    """Patch-level ROC of one attack, one curve per attacked network (log axes show the low-FPR regime).

    ``results[row]`` lists ``(fpr, tpr, auc)`` per network.
    """
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, log in zip(axes, (False, True), strict=True):
        for i, (label, runs) in enumerate(results.items()):
            mean_auc = np.mean([auc for _, _, auc in runs])
            for j, (fpr, tpr, _) in enumerate(runs):
                ax.plot(
                    np.clip(fpr, 1e-4, 1) if log else fpr,
                    np.clip(tpr, 1e-4, 1) if log else tpr,
                    color=colors[i % len(colors)],
                    alpha=0.7,
                    linewidth=1.2,
                    label=f"{label} (AUC {mean_auc:.3f})" if j == 0 else None,
                )
        grid = np.linspace(1e-4, 1, 200)
        ax.plot(grid, grid, color="black", linestyle=":", linewidth=1)
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(1e-3, 1)
            ax.set_ylim(1e-3, 1)
        ax.set_xlabel("false positive rate (test patches called members)")
        ax.set_ylabel("true positive rate (training patches)")
        ax.set_title(f"membership inference ({attack}){', log axes' if log else ''}", fontsize=9)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path, **_PNG_OPTIONS)
