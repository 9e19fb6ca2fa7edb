"""Helpers shared by the distillation tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import numpy as np


def make_tiny_splits(n: int = 40, k: int = 3, size: int = 6, seed: int = 0) -> dict:
    """Class c is a bright square at a class-specific place plus noise: learnable in a few SGD steps."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "val", "test"):
        y = np.arange(n) % k
        x = 0.2 * rng.random((n, 1, size, size), dtype=np.float32)
        for j, c in enumerate(y):
            r = (2 * c) % (size - 1)
            x[j, 0, r : r + 2, r : r + 2] += 0.8
        splits[split] = (np.clip(x, 0, 1), y.astype(np.int64))
    return splits


#: Overrides that make a distillation run take a few seconds on a CPU.
TINY = [
    "model=convnet",
    "model.width=4",
    "model.depth=1",
    "distill.steps=2",
    "distill.epochs=1",
    "distill.ipc=1",
    "distill.batch_real=16",
    "distill.outer_steps=3",
    "distill.grid_every=2",
    "distill.ckpt_every=0",
    "distill.lr_init=0.1",
    "trainer.enable_progress_bar=false",
    "distill.log_every=1",
    "distill.check_every=1",
]
