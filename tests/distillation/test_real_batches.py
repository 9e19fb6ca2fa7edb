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
    assert not torch.equal(a, RealBatchSource.from_datamodule(dm, 16, seed=4).indices(5, 0))
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


def uint8_dm(balanced: bool, n: int = 60) -> TensorImageDataModule:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(n, 2, 5, 4), dtype=np.uint8)  # two channels, non-square
    y = np.arange(n) % 3
    return TensorImageDataModule(
        splits={s: (x, y) for s in ("train", "val", "test")}, balanced_sampler=balanced
    )


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize(
    ("make_dm", "mode"), [(uint8_dm, "resident"), (uint8_dm, "loader"), (skewed_dm, "resident")]
)
def test_fast_paths_give_the_batches_of_the_item_path(make_dm, mode, balanced):
    """Resident (device gather + normalise) and loader (whole batches in workers) = the per-item path."""
    dm = make_dm(balanced)
    dm.setup()
    ref = RealBatchSource.from_datamodule(dm, 16, seed=5, mode="items")
    fast = RealBatchSource.from_datamodule(
        dm, 16, seed=5, mode=mode, num_workers=1 if mode == "loader" else 0
    )
    assert fast.mode == mode
    # In order, then a jump back (a resume) and another rank: the loader restarts at the asked step.
    for step, rank in [(0, 0), (1, 0), (2, 0), (7, 0), (8, 0), (3, 1), (4, 1)]:
        xr, yr = ref.get(step, rank)
        xf, yf = fast.get(step, rank, device="cpu")
        assert xf.dtype == torch.float32 and xf.shape == xr.shape
        assert torch.equal(yf, yr), (step, rank)
        torch.testing.assert_close(xf, xr, rtol=0, atol=1e-6)
    assert fast.wait_seconds > 0


def test_auto_picks_resident_below_the_threshold_and_loader_above():
    dm = uint8_dm(False)
    dm.setup()
    nbytes = 60 * 2 * 5 * 4
    assert (
        RealBatchSource.from_datamodule(dm, 8, 0, mode="auto", resident_max_bytes=nbytes).mode == "resident"
    )
    assert (
        RealBatchSource.from_datamodule(dm, 8, 0, mode="auto", resident_max_bytes=nbytes - 1).mode == "loader"
    )
    with pytest.raises(ValueError, match="real_data"):
        RealBatchSource.from_datamodule(dm, 8, 0, mode="fast")
    # An augmenting dataset is not array-backed as it is: auto falls back to items, explicit modes refuse.
    dm.augment = lambda image: {"image": image}
    src = RealBatchSource(dm.dataset("train", augment=True), dm.labels("train"), 8, 0, 3, mode="auto")
    assert src.mode == "items"
    with pytest.raises(ValueError, match="array-backed"):
        RealBatchSource(dm.dataset("train", augment=True), dm.labels("train"), 8, 0, 3, mode="resident")


def test_the_resident_copy_keeps_the_stored_dtype():
    dm = uint8_dm(False)
    dm.setup()
    src = RealBatchSource.from_datamodule(dm, 8, 0, mode="resident")
    src.get(0, 0, device="cpu")
    assert src._resident.images.dtype == torch.uint8 and src._resident.nbytes == 60 * 2 * 5 * 4


def test_unbalanced_draws_are_without_replacement_and_a_batch_of_all_is_a_permutation():
    dm = skewed_dm(False)
    for size, expect in ((16, 16), (100, 100), (150, 100)):
        src = RealBatchSource.from_datamodule(dm, size, seed=1)
        for step in range(5):
            idx = src.indices(step, 0).tolist()
            assert len(idx) == expect and len(set(idx)) == expect, (size, step)
    assert sorted(RealBatchSource.from_datamodule(dm, 100, seed=1).indices(0, 0).tolist()) == list(range(100))


def test_a_class_of_one_sample_is_drawn_as_often_as_the_others_when_balanced():
    """Balanced draws give every class 1/K of the batch, whatever its size and wherever its samples sit
    (here class 0 is the first sample alone)."""
    y = np.array([0] + [1] * 30 + [2] * 69)
    x = np.zeros((100, 1, 2, 2), np.float32)
    dm = TensorImageDataModule(splits={s: (x, y) for s in ("train", "val", "test")}, balanced_sampler=True)
    src = RealBatchSource.from_datamodule(dm, 64, seed=2)
    counts = sum(np.bincount(y[src.indices(step, 0).numpy()], minlength=3) for step in range(30))
    assert np.all(np.abs(counts / counts.sum() - 1 / 3) < 0.05), counts


def test_the_loader_follows_a_change_of_rank_at_the_next_step_and_keeps_running_in_order():
    dm = uint8_dm(False)
    dm.setup()
    ref = RealBatchSource.from_datamodule(dm, 8, seed=6, mode="items")
    fast = RealBatchSource.from_datamodule(dm, 8, seed=6, mode="loader", num_workers=0)
    fast.get(0, 0, device="cpu")
    running = fast._iter
    fast.get(1, 0, device="cpu")
    assert fast._iter is running  # the next step in order: the same loader, no restart
    for step, rank in [(2, 1), (3, 0)]:  # the next step, on another rank: that rank's batch
        xf, yf = fast.get(step, rank, device="cpu")
        xr, yr = ref.get(step, rank)
        assert torch.equal(yf, yr), (step, rank)
        torch.testing.assert_close(xf, xr, rtol=0, atol=1e-6)


def test_uint16_images_are_scaled_by_65535_on_every_path():
    """16-bit pixels: the resident and loader paths give the per-item path's batches (pixel / 65535, then
    the split's normalisation), and a full-scale pixel is 1 before normalisation."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 65536, size=(30, 1, 3, 3), dtype=np.uint16)
    x[:, 0, 0, 0] = 65535
    y = np.arange(30) % 3
    dm = TensorImageDataModule(splits={s: (x, y) for s in ("train", "val", "test")})
    dm.setup()
    ds = dm.dataset("train", augment=False)
    ref = RealBatchSource.from_datamodule(dm, 8, seed=0, mode="items")
    for mode in ("resident", "loader"):
        src = RealBatchSource.from_datamodule(dm, 8, seed=0, mode=mode)
        for step in range(3):
            xf, yf = src.get(step, 0, device="cpu")
            xr, yr = ref.get(step, 0)
            assert torch.equal(yf, yr)
            torch.testing.assert_close(xf, xr, rtol=0, atol=1e-6)
            idx = src.indices(step, 0).numpy()
            expect = (x[idx].astype(np.float64) / 65535 - ds.mean.reshape(1, -1, 1, 1)) / ds.std.reshape(
                1, -1, 1, 1
            )
            np.testing.assert_allclose(xf.numpy(), expect, rtol=0, atol=1e-5)
