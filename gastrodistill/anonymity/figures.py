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

from gastrodistill.anonymity.membership import MembershipResult  # noqa: E402
from gastrodistill.anonymity.nearest import NearestReport  # noqa: E402
from gastrodistill.utils.atomic import atomic_path  # noqa: E402

SPACE_TITLES = {
    "ncc": "pixel NCC",
    "ssim": "pixel SSIM",
    "feature": "feature cosine",
    "text": "text-corner NCC",
}


def _save(fig, path: str | os.PathLike) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return Path(path)


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
        for q, style in ((95, ":"), (99, "--")):
            ax.axvline(
                np.percentile(ref, q), color="black", linestyle=style, linewidth=1, label=f"reference p{q}"
            )
        ax.set_title(f"nearest real patch: {SPACE_TITLES.get(space, space)}", fontsize=9)
        ax.set_xlabel("similarity")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


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
        flag = " !" if reference_p99 is not None and similarities[i] > reference_p99 else ""
        axes[0][i].set_title(f"{captions[i]}\nsim {similarities[i]:.3f}{flag}", fontsize=7)
    note = f"; '!' = above the real-patient p99 {reference_p99:.3f}" if reference_p99 is not None else ""
    fig.suptitle(f"top: distilled image, bottom: its nearest real training patch{note}", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_membership_roc(
    results: Mapping[str, list[MembershipResult]], path: str | os.PathLike, attack: str = "loss"
) -> Path:
    """ROC of the loss-threshold attack, one curve per network; the diagonal is chance."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, runs) in enumerate(results.items()):
        for j, r in enumerate(runs):
            fpr, tpr = r.roc[attack]
            mean_auc = np.mean([x.auc[attack] for x in runs])
            ax.plot(
                fpr,
                tpr,
                color=colors[i % len(colors)],
                alpha=0.7,
                linewidth=1.2,
                label=f"{label} (AUC {mean_auc:.3f})" if j == 0 else None,
            )
    ax.plot([0, 1], [0, 1], color="black", linestyle=":", linewidth=1)
    ax.set_xlabel("false positive rate (test patches called members)")
    ax.set_ylabel("true positive rate (training patches)")
    ax.set_title(f"membership inference ({attack} threshold)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _save(fig, path)
