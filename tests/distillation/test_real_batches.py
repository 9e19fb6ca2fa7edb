"""Real batches are a pure function of (seed, step, rank); balanced draws equalise the classes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.real_batches import OuterSteps, RealBatchSource


def skewed_dm(balanced: bool) -> TensorImageDataModule:
    y = np.array([0] * 90 + [1] * 9 + [2] * 1)
    x = (np.arange(100, dtype=np.float32)[:, None, None, None] / 100) * np.ones((1, 1, 2, 2), np.float32)
    return TensorImageDataModule(
        splits={s: (x, y) for s in ("train", "val", "test")}, balanced_sampler=balanced
    )


def test_batches_are_seeded_by_step_and_rank_and_match_the_dataset():
    dm = skewed_dm(False)
    src = RealBatchSource.from_datamodule(dm, 16, seed=3)
    a, b = src.indices(5, 0), src.indices(5, 0)
    assert torch.equal(a, b)
    assert not torch.equal(src.indices(5, 0), src.indices(5, 1))
    assert not torch.equal(src.indices(5, 0), src.indices(6, 0))
    assert len(set(a.tolist())) == 16  # without replacement
    x, y = src.get(5, 0)
    ds = dm.dataset("train")
    for j, i in enumerate(a.tolist()):
        assert torch.equal(x[j], ds[i][0]) and int(y[j]) == ds[i][1]


def test_balanced_draws_follow_the_data_modules_flag():
    counts = np.zeros(3)
    plain = np.zeros(3)
    src_b = RealBatchSource.from_datamodule(skewed_dm(True), 64, seed=0)
    src_p = RealBatchSource.from_datamodule(skewed_dm(False), 64, seed=0)
    assert src_b.balanced and not src_p.balanced
    for step in range(30):
        counts += np.bincount(src_b.get(step, 0)[1].numpy(), minlength=3)
        plain += np.bincount(src_p.get(step, 0)[1].numpy(), minlength=3)
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05)
    assert plain[0] / plain.sum() > 0.8


def test_outer_steps_loader_and_bad_sizes():
    loader = OuterSteps(4)
    assert len(loader) == 4 and [int(i) for i in loader] == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="real batch size"):
        RealBatchSource(None, np.zeros(3, dtype=np.int64), 0, 0, 2)
    with pytest.raises(ValueError, match="training split is empty"):
        RealBatchSource(None, np.zeros(0, dtype=np.int64), 4, 0, 2)
