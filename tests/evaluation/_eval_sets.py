"""A small distilled set shaped for a test data module (real-image init), shared by the evaluation tests."""

from __future__ import annotations

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.utils.seeding import torch_generator


def small_distilled(dm, mode: str = "soft", seed: int = 0) -> DistilledSet:
    """3 classes x 2 images per step x 2 steps, T = 4, lr 0.05, initialised from ``dm``'s real samples."""
    ds = DistilledSet(
        3,
        ipc=2,
        steps=2,
        epochs=2,
        image_shape=dm.image_shape,
        mode=mode,
        lr_init=0.05,
        class_names=dm.class_names,
        mean=dm.mean,
        std=dm.std,
    )
    return ds.init_real(dm, torch_generator(seed, "init"))
