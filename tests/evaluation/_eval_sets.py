"""Shared by the evaluation tests: a small distilled set shaped for a test data module (real-image init), and
the in-memory data module with patients (defined here, not in ``conftest.py``, so that worker processes can
unpickle it by a module name no other test folder uses)."""

from __future__ import annotations

import numpy as np

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.utils.seeding import torch_generator

CLASSES = ["irrelevant", "non-gastritis", "gastritis"]
#: A small network and every architecture, schedule and baseline of the job list (two networks each).
EVAL_GRID = [
    "model.width=8",
    "model.depth=2",
    "eval.n_networks=2",
    "eval.architectures=[same,lenet]",
    "eval.schedules=[replay,standard]",
    "eval.baselines.methods=[full,random,mean,random_soft]",
]


class PatientTensorDataModule(TensorImageDataModule):
    """In-memory splits plus per-patch patient ids and per-patient diagnoses."""

    def __init__(self, splits, pids, plabels, **kw) -> None:
        super().__init__(splits=splits, class_names=CLASSES, **kw)
        self._pids, self._plabels = pids, plabels

    def patient_ids(self, split):
        return self._pids[split]

    def patient_labels(self, split):
        return self._plabels[split]


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


def small_npz(path, side: int = 16) -> dict:
    """Write a two-class npz of random ``side`` x ``side`` uint8 images (24 / 8 / 8 in train / val / test,
    labels alternating) at ``path``; returns its arrays."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 200, (n, side, side)).astype(np.uint8)
        arrays[f"{split}_labels"] = np.arange(n) % 2
    np.savez(path, **arrays)
    return arrays
