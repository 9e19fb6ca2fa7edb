"""The shared data-module base (data/base.py) through its in-memory module: loader settings, the balanced
sampler, seeded order, splits read back, class checks, size caps, channel statistics, the dataset and the
source hash, each against a computation of its own (a mutation review's gaps)."""

from __future__ import annotations

import hashlib
import itertools
import logging

import numpy as np
import pytest
import torch

from gastrodistill.data.base import (
    ArrayDataset,
    TensorImageDataModule,
    cap_size,
    channel_stats,
    class_name_list,
)
from gastrodistill.utils.seeding import torch_generator


def _splits(n=(20, 6, 8), k: int = 2, side: int = 4, channels: int = 1, dtype=np.uint8, seed: int = 0):
    """``n`` images per split (train, val, test) of ``k`` classes in turn, values from a seeded generator."""
    rng = np.random.default_rng(seed)
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    out = {}
    for split, count in zip(("train", "val", "test"), n, strict=True):
        x = rng.uniform(0, top, (count, channels, side, side))
        out[split] = (x.astype(dtype), np.arange(count) % k)
    return out


def _train_batches(dm):
    return [(x.clone(), y.clone()) for x, y in dm.train_dataloader()]


@pytest.mark.parametrize(
    ("key", "value", "low"), [("batch_size", 0, 1), ("eval_batch_size", 0, 1), ("num_workers", -1, 0)]
)
def test_loader_settings_below_their_lowest_value_are_refused_naming_the_key(key, value, low):
    with pytest.raises(ValueError) as info:
        TensorImageDataModule(_splits(), **{key: value})
    assert str(info.value) == f"data.{key} must be an integer >= {low}, got {value}"
    TensorImageDataModule(_splits(), **{key: low})  # the lowest value itself is taken


def test_the_balanced_sampler_draws_one_epoch_of_the_split_seeded_by_data_seed():
    """An epoch is as many draws as the split holds; the same seed draws the same batches, another seed
    others (the sampler's generator comes from data.seed, not the global one)."""
    splits = _splits(n=(30, 4, 4), k=3)
    splits["train"] = (splits["train"][0], np.array([0] * 24 + [1] * 4 + [2] * 2))

    global_seeds = itertools.count(100)

    def draws(seed):
        dm = TensorImageDataModule(splits, batch_size=7, balanced_sampler=True, seed=seed)
        torch.manual_seed(next(global_seeds))  # the global generator differs every time
        return torch.cat([y for _, y in _train_batches(dm)])

    first = draws(0)
    assert len(first) == 30
    assert torch.equal(first, draws(0)) and not torch.equal(first, draws(1))


def test_the_shuffled_train_order_is_seeded_by_data_seed_and_val_test_keep_their_order():
    splits = _splits(n=(40, 9, 11))

    global_seeds = itertools.count(100)

    def order(seed, split="train"):
        dm = TensorImageDataModule(splits, batch_size=8, eval_batch_size=4, seed=seed)
        torch.manual_seed(next(global_seeds))
        loader = {"train": dm.train_dataloader, "val": dm.val_dataloader, "test": dm.test_dataloader}[split]()
        return torch.cat([x for x, _ in loader])

    first = order(0)
    assert torch.equal(first, order(0)) and not torch.equal(first, order(1))
    dm = TensorImageDataModule(splits)
    for split in ("val", "test"):
        x, y = splits[split]
        expected = (x / 255.0 - np.float32(dm.mean[0])) / np.float32(dm.std[0])
        np.testing.assert_allclose(order(0, split).numpy(), expected, atol=1e-5, err_msg=split)


def test_load_split_reads_the_samples_asked_in_their_order_and_none_as_an_empty_batch():
    splits = _splits(n=(12, 4, 4), channels=2, side=3)
    dm = TensorImageDataModule(splits)
    ds = dm.dataset("train")
    x, y = dm.load_split("train", [5, 1, 3])
    assert torch.equal(x, torch.stack([ds[i][0] for i in (5, 1, 3)])) and y.tolist() == [1, 1, 1]
    assert y.dtype == torch.long
    x, y = dm.load_split("train", [])
    assert x.shape == (0, 2, 3, 3) and y.shape == (0,) and y.dtype == torch.long


def test_split_batches_takes_its_own_batch_size_and_worker_count():
    dm = TensorImageDataModule(_splits(n=(12, 4, 8)), eval_batch_size=5, num_workers=2)
    loader = dm.split_batches("test", batch_size=3, num_workers=0)
    assert loader.num_workers == 0 and [len(y) for _, y in loader] == [3, 3, 2]
    assert dm.split_batches("test").num_workers == 2 and dm.split_batches("test").batch_size == 5


def test_classes_short_of_names_a_class_without_images_and_takes_exactly_enough():
    splits = _splits(n=(9, 3, 3), k=2)
    splits["train"] = (splits["train"][0], np.array([0, 0, 0, 0, 0, 1, 1, 1, 1]))
    dm = TensorImageDataModule(splits, class_names=["a", "b", "c"])
    assert dm.classes_short_of(4) == ["'c' (0)"]
    assert dm.classes_short_of(5) == ["'b' (4)", "'c' (0)"]


def test_sample_per_class_takes_a_seeded_draw_of_each_class_and_refuses_too_few():
    """Class by class, the first ``n`` of a permutation of its indices drawn from the one generator; a class
    with exactly ``n`` images is enough."""
    dm = TensorImageDataModule(_splits(n=(12, 3, 3), k=2, side=2), class_names=["a", "b"])
    ds, labels = dm.dataset("train"), dm.labels("train")
    gen = torch_generator(0)
    expected = [
        int(i)
        for c in (0, 1)
        for i in np.flatnonzero(labels == c)[torch.randperm(6, generator=gen)[:4].numpy()]
    ]
    x, y = dm.sample_per_class(4, torch_generator(0))
    assert y.tolist() == labels[expected].tolist() == [0] * 4 + [1] * 4
    assert torch.equal(x, torch.stack([ds[i][0] for i in expected]))
    assert len(dm.sample_per_class(6, torch_generator(0))[1]) == 12
    with pytest.raises(ValueError) as info:
        dm.sample_per_class(7, torch_generator(0))
    assert str(info.value) == "class 0 ('a') has 6 samples in split 'train', fewer than the 7 requested"


def test_cap_size_averages_pixel_areas_and_keeps_the_dtype():
    """A third of 12 x 6 px, 4 x 2 px: each pixel the mean of its 3 x 3 block (area resampling; a bilinear
    resize would take the centre pixel), uint16 kept; a split already small enough is the same array."""
    rng = np.random.default_rng(3)
    x = rng.integers(0, 60000, (3, 2, 12, 6)).astype(np.uint16)
    small = rng.integers(0, 60000, (2, 2, 4, 3)).astype(np.uint16)
    out = cap_size({"train": (x, np.arange(3)), "test": (small, np.arange(2))}, 4)
    blocks = x.reshape(3, 2, 4, 3, 2, 3).astype(np.float64).mean(axis=(3, 5))
    assert out["train"][0].dtype == np.uint16 and out["train"][0].shape == (3, 2, 4, 2)
    np.testing.assert_allclose(out["train"][0], blocks, atol=1.0)  # cv2 rounds to the nearest integer
    assert out["test"][0] is small


def test_class_names_that_are_blank_or_repeated_are_refused_naming_them():
    with pytest.raises(ValueError) as info:
        class_name_list(["a", " ", ""], "data.class_names")
    assert (
        str(info.value)
        == "data.class_names: class names at positions [1, 2] are empty; give every class a name"
    )
    with pytest.raises(ValueError, match=r"class names \['a'\] are given more than once"):
        class_name_list(["a", b"a"])


def test_channel_stats_match_numpy_over_more_images_than_one_chunk():
    """1,500 images (two chunks of 1,024): each channel's mean and population std as numpy computes them."""
    rng = np.random.default_rng(4)
    x = rng.integers(0, 256, (1500, 2, 3, 3)).astype(np.uint8)
    x[1024:, 1] = 255  # the second chunk differs: a chunk read short would shift both statistics
    mean, std = channel_stats(x)
    unit = x.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, unit.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, unit.std(axis=(0, 2, 3)), rtol=1e-6)
    _, flat = channel_stats(np.full((4, 1, 2, 2), 0.5, np.float32))
    assert flat == [1e-6]  # a constant channel: the smallest std, not 0 (images are divided by it)


def test_array_dataset_refuses_more_labels_than_images_and_keeps_a_grey_augmentations_channel():
    x = np.random.default_rng(5).integers(0, 256, (3, 1, 4, 5)).astype(np.uint8)
    with pytest.raises(ValueError) as info:
        ArrayDataset(x, np.zeros(4), [0.0], [1.0])
    assert str(info.value) == "3 images but 4 labels"

    def flip_2d(image):  # an augmentation that returns grey images without their channel axis
        return {"image": image[:, ::-1, 0]}

    img, label = ArrayDataset(x, np.array([0, 1, 2]), [0.5], [0.25], flip_2d)[1]
    expected = (x[1, :, :, ::-1] / 255.0 - 0.5) / 0.25
    assert img.shape == (1, 4, 5) and label == 1
    np.testing.assert_allclose(img.numpy(), expected, atol=1e-6)


def test_the_module_counts_classes_over_every_split_and_takes_its_statistics_from_train():
    splits = _splits(n=(8, 4, 4), k=2)
    splits["test"] = (splits["test"][0], np.array([0, 1, 2, 1]))  # class 2 only in test
    dm = TensorImageDataModule(splits)
    assert dm.num_classes == 3 and dm.class_names == ["0", "1", "2"]
    unit = splits["train"][0] / 255.0
    np.testing.assert_allclose(dm.mean, [unit.mean()], rtol=1e-6)
    np.testing.assert_allclose(dm.std, [unit.std()], rtol=1e-6)
    del splits["val"]
    with pytest.raises(ValueError) as info:
        TensorImageDataModule(splits)
    assert str(info.value) == "split 'val' missing (have ['test', 'train'])"


def test_bytes_per_pixel_and_the_shrink_warning_are_the_train_splits(caplog):
    """The train split's dtype and size, whatever the others hold (here: float32 test images, 4 px)."""
    splits = _splits(n=(4, 2, 2), side=8, dtype=np.uint16)
    splits["test"] = _splits(n=(2, 2, 2), side=4, dtype=np.float32)["test"]

    class FromFiles(TensorImageDataModule):
        def load_arrays(self):
            return splits, None

    dm = FromFiles(storage_size=4)
    assert dm.array_bytes_per_pixel() is None
    with caplog.at_level(logging.WARNING, logger="gastrodistill.data.base"):
        dm.setup()
    assert dm.array_bytes_per_pixel() == 2 and dm.image_size == (4, 4)
    assert "images of 8x8 px are shrunk to 4x4 px (data.storage_size=4" in caplog.text


def test_the_source_hash_is_the_sha256_of_the_source_id_and_every_splits_pixels_and_labels():
    splits = _splits(n=(4, 2, 2))
    h = hashlib.sha256(b"mine")
    for split in ("train", "val", "test"):
        h.update(np.ascontiguousarray(splits[split][0]).tobytes())
        h.update(np.ascontiguousarray(splits[split][1]).tobytes())
    assert TensorImageDataModule(splits, source_id="mine").source_hash() == h.hexdigest()
    relabelled = dict(splits, test=(splits["test"][0], splits["test"][1][::-1].copy()))
    assert TensorImageDataModule(relabelled, source_id="mine").source_hash() != h.hexdigest()
