"""Per-image texture targets for heterogeneous classes: k-means clusters of a class's training patches.

Texture matching (:mod:`.texture_matching`) gives every image of a class its class's mean statistics
(exaggerated on a ladder). A class that gathers unlike patches, such as the gastric data's *irrelevant*
class (background, body outside the stomach, stomach edges: whatever the stomach mask barely covers), has
no single texture: its ten images all show one average of several. ``distill.texture_matching.
cluster_classes`` names such classes. Their training patches are clustered by k-means (Lloyd's algorithm
with k-means++ seeding, Arthur & Vassilvitskii 2007; ``scipy.cluster.vq.kmeans2``) on their texture
statistics, scaled per statistic as the texture loss weighs them, into as many clusters as the class has
images, and image ``i`` gets its cluster's deviation from the class mean on top of its ladder target:

    t_i = m_c + alpha_i (m_c - mean_k m_k) + (k_{j(i)} - m_c)

The clusters are ranked by size (the largest first) and given to the images in index order, so the
class's mildest rung shows its commonest kind of patch. The diagnoses, each one texture, keep their
targets: the twelfth round clustered every class and lost patient AUC (docs/cpu_study.md, "Twelfth
round"); clustering the irrelevant class alone, the twenty-ninth round ("Twenty-ninth round"), lifted
the irrelevant patches' recall and lowered the diagnoses': not the CPU preset.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import hydra
import numpy as np
import torch
from scipy.cluster.vq import kmeans2
from torch import Tensor, nn

from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.texture_matching import MATCHING_OFF, check_texture_config, texture_statistics
from gastrodistill.utils.seeding import torch_generator

log = logging.getLogger(__name__)


def cluster_class_indices(names: Sequence[str], class_names: Sequence[str]) -> list[int]:
    """The class indices of ``names`` (``distill.texture_matching.cluster_classes``) among the data's
    ``class_names``. Raises ``DistillConfigError`` naming a class the data do not have and the ones it has."""
    out = []
    for name in names:
        if name not in class_names:
            raise DistillConfigError(
                f"distill.texture_matching.cluster_classes names {name!r}, which is not a class of this data "
                f"(its classes: {', '.join(map(str, class_names))}); name one of them, or set "
                "distill.texture_matching.cluster_classes=[]"
            )
        out.append(list(class_names).index(name))
    return out


def check_cluster_classes(cfg: Any) -> None:
    """``distill.texture_matching.cluster_classes`` against the class names ``cfg.data`` fixes before any
    data is read (the gastric patches: irrelevant, non-gastritis, gastritis; the data module's constructor
    reads no files), so that ``gastrodistill-reproduce`` and ``gastrodistill-distill`` refuse a misspelt
    class before generating data or training the teacher. Data whose class names are in its files (npz,
    class folders) is checked once it is set up, before the teacher trains. Raises ``DistillConfigError``."""
    names = check_texture_config(cfg.distill.get("texture_matching"))["cluster_classes"]
    if not names:
        return
    class_names = getattr(hydra.utils.instantiate(cfg.data), "class_names", None)
    if class_names:
        cluster_class_indices(names, class_names)


def patch_picks(
    labels: np.ndarray,
    classes: Sequence[int],
    max_patches: int,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> dict[int, Tensor]:
    """For each class of ``classes`` with more than ``max_patches`` training patches (``labels``: the
    training split's ``[n]`` classes in dataset order): a bool mask ``[n_c]`` over its patches in dataset
    order that keeps ``max_patches`` of them, drawn by ``torch_generator(seed, "texture-clusters", c)``
    (logged, naming the class from ``class_names``). Classes with fewer are absent (all their patches are
    clustered)."""
    out: dict[int, Tensor] = {}
    for c in classes:
        n = int((np.asarray(labels) == c).sum())
        if n > max_patches:
            drawn = torch.randperm(n, generator=torch_generator(seed, "texture-clusters", c))[:max_patches]
            out[c] = torch.zeros(n, dtype=torch.bool).index_fill_(0, drawn, True)
            log.info(
                "texture matching: %d of class %s's %d training patches are clustered (a seeded draw: "
                "distill.texture_matching.cluster_max_patches)",
                max_patches,
                class_names[c] if class_names is not None else c,
                n,
            )
    return out


def clustered_statistics(
    nets: Sequence[nn.Module],
    batches: Iterable[tuple[Tensor, Tensor]],
    classes: Sequence[int],
    picks: Mapping[int, Tensor] | None = None,
) -> dict[int, list[list[Tensor]]]:
    """For each class of ``classes``: per network, per statistic of :func:`texture_statistics`, the
    statistics of the training patches of that class, ``[n_c, D_l]`` in float64 (dataset order): all of
    them, or those ``picks[c]`` keeps (:func:`patch_picks`). ``batches`` yields ``(images [B, C, H, W],
    labels [B])`` once over the training patches, in dataset order."""
    device = next(nets[0].parameters()).device
    rows: dict[int, list[list[list[Tensor]]]] = {c: [[] for _ in nets] for c in classes}
    seen = dict.fromkeys(classes, 0)
    with torch.no_grad():
        for x, y in batches:
            y = y.long()
            for c in classes:
                keep = y == c
                count = int(keep.sum())
                if picks is not None and c in picks:  # of this batch's patches of class c, the drawn ones
                    keep[keep.clone()] = picks[c][seen[c] : seen[c] + count]
                seen[c] += count
                if not bool(keep.any()):
                    continue
                for net_rows, net in zip(rows[c], nets, strict=True):
                    net_rows.append([s.double().cpu() for s in texture_statistics(net, x[keep].to(device))])
    out: dict[int, list[list[Tensor]]] = {}
    for c in classes:
        if not rows[c][0]:
            out[c] = []
            continue
        out[c] = [[torch.cat(level) for level in zip(*net_rows, strict=True)] for net_rows in rows[c]]
    return out


def cluster_deviations(
    stats: dict[int, list[list[Tensor]]],
    targets: Sequence[Sequence[Tensor]],
    labels: Tensor,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> list[list[Tensor]]:
    """Per network, per statistic: each image's deviation ``[N, D_l]`` (float32) from its class's target,
    ``k_{j(i)} - m_c`` for the images of a clustered class, 0 for every other image.

    ``stats``: :func:`clustered_statistics`; ``targets``: :func:`~.texture_matching.class_texture_targets`
    (the per-statistic scale ``sqrt(mean_c ||t_{c,l}||^2)`` of the texture loss divides each statistic
    before the clustering); ``labels``: ``[N]`` the images' classes. A class with ``m`` images gets ``m``
    clusters by ``scipy.cluster.vq.kmeans2(minit="++")`` with one ``numpy`` generator from ``seed`` for
    the classes in order; the clusters, largest first, go to its images in index order. A cluster left
    empty gives its image the class target (a warning says so). Raises ``DistillConfigError`` when a
    clustered class has fewer training patches than images.
    """
    names = list(class_names) if class_names is not None else None
    labels = labels.long().cpu()
    shapes = [[(len(labels), t.shape[1]) for t in net_targets] for net_targets in targets]
    out = [[torch.zeros(shape, dtype=torch.float32) for shape in net_shapes] for net_shapes in shapes]
    rng = np.random.default_rng(seed)
    scales = [[t.pow(2).sum(1).mean().clamp_min(1e-12).sqrt().double().cpu() for t in nt] for nt in targets]
    for c, per_net in stats.items():
        name = names[c] if names is not None else str(c)
        idx = torch.nonzero(labels == c).flatten().tolist()
        n = per_net[0][0].shape[0] if per_net else 0
        if not idx:
            continue
        if n < len(idx):
            raise DistillConfigError(
                f"distill.texture_matching.cluster_classes: class {name!r} has {n} training patch(es) for "
                f"{len(idx)} images (one cluster each); drop it from cluster_classes, or turn the matching "
                f"off ({MATCHING_OFF})"
            )
        k = len(idx)
        feats = torch.cat(
            [
                s / sc
                for net_stats, net_scales in zip(per_net, scales, strict=True)
                for s, sc in zip(net_stats, net_scales, strict=True)
            ],
            1,
        ).numpy()
        with warnings.catch_warnings():  # an empty cluster: said below, in the project's words
            warnings.filterwarnings("ignore", message="One of the clusters is empty", category=UserWarning)
            _centroids, assign = kmeans2(feats, k, minit="++", seed=rng)
        means = [[s.mean(0) for s in net_stats] for net_stats in per_net]
        sizes = np.bincount(assign, minlength=k)
        order = np.argsort(-sizes, kind="stable")
        log.info(
            "texture matching: class %s's %d images match %d k-means clusters of %d of its training patches "
            "(sizes %s)",
            name,
            k,
            k,
            n,
            ", ".join(str(int(sizes[j])) for j in order),
        )
        for rank, i in enumerate(idx):
            j = int(order[rank])
            members = torch.from_numpy(assign == j)
            if not bool(members.any()):
                log.warning(
                    "texture matching: a k-means cluster of class %s is empty; its image keeps the "
                    "class target",
                    name,
                )
                continue
            for net_out, net_stats, net_means in zip(out, per_net, means, strict=True):
                for dev, s, mean in zip(net_out, net_stats, net_means, strict=True):
                    dev[i] = (s[members].mean(0) - mean).float()
    return out
