"""Small real-data baselines of the same size as a distilled set, and the byte counts used for compression."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gastrodistill.utils.values import is_finite_number

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet


def random_subset(
    datamodule: ImageDataModule, n_per_class: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_per_class`` random real training patches of each class (a fresh draw per generator)."""
    return datamodule.sample_per_class(n_per_class, generator, split="train")


def class_means(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    num_classes: int,
    class_names: list[str] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-class mean image of the training patches (one image per class), streamed batch by batch."""
    sums: torch.Tensor | None = None
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for x, y in batches:
        y = torch.as_tensor(y).long()
        if sums is None:
            sums = torch.zeros(num_classes, *x.shape[1:], dtype=torch.float64)
        sums.index_add_(0, y, x.double())
        counts += torch.bincount(y, minlength=num_classes).double()
    if sums is None or (counts == 0).any():
        empty = [
            (class_names or list(range(num_classes)))[i]
            for i in torch.nonzero(counts == 0).flatten().tolist()
        ]
        raise ValueError(f"no training patches for class(es) {empty}; per-class mean images need every class")
    means = sums / counts.view(-1, *([1] * (sums.ndim - 1)))
    return means.float(), torch.arange(num_classes)


def real_set_bytes(n_images: int, image_shape: tuple[int, ...], bytes_per_pixel: int = 1) -> int:
    """Bytes of ``n_images`` stored real patches (pixels at the store's depth plus one label byte each)."""
    return int(n_images) * (int(np.prod(image_shape)) * int(bytes_per_pixel) + 1)


def tensor_bytes(*tensors: torch.Tensor) -> int:
    """Bytes of tensors as stored (e.g. a distilled set: images, label logits, learning rates)."""
    return int(sum(t.numel() * t.element_size() for t in tensors))


def distilled_bytes(distilled: DistilledSet) -> int:
    """Bytes of a distilled set as shared: images, label logits and per-step learning rates (float32)."""
    return tensor_bytes(
        distilled.images.detach(), distilled.label_logits.detach(), distilled.raw_lrs.detach()
    )


def check_temperature(temperature: Any) -> float:
    """``eval.baselines.teacher_temperature`` as a float; raises ``ValueError`` naming the key unless it is a
    finite number > 0 (the validation of :func:`~gastrodistill.evaluation.jobs.validate` calls it too)."""
    if not (is_finite_number(temperature) and temperature > 0):
        raise ValueError(
            f"eval.baselines.teacher_temperature must be a finite number > 0, got {temperature!r}; "
            "use e.g. 1.0 (the teacher's own probabilities)"
        )
    return float(temperature)


@torch.no_grad()
def teacher_labels(teacher: torch.nn.Module, images: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Soft labels ``[N, K]`` of ``images`` ``[N, C, H, W]``: ``softmax(teacher(x) / temperature)``.

    The "random real images with learned soft labels" control (DD-Ranking, Li et al. 2025): a random
    real subset of the distilled set's size, labelled by a network trained on all real training data.
    """
    temperature = check_temperature(temperature)
    teacher.eval()
    dev = next(teacher.parameters()).device
    return torch.softmax(teacher(images.to(dev)).float() / temperature, dim=1).cpu()
