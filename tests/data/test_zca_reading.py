"""How a data module reads the images its ZCA filter is estimated from (``data.zca``): batches of at most
``ZCA_READ_BYTES``, at most ``ZCA_READ_WORKERS`` workers each reading one batch ahead, so memory holds a few
batches and not the images; an empty training split is refused in one line."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import gastrodistill.data.base as base
from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.data.zca import LocalZCA, ZCAError, zca_kernel
from gastrodistill.utils.seeding import torch_generator


class LoggedReads(Dataset):
    """A dataset that appends each index it reads to ``log`` (a file: workers are other processes)."""

    def __init__(self, ds: Dataset, log) -> None:
        self.ds, self.log = ds, log

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        with open(self.log, "a") as f:
            f.write(f"{i}\n")
        return self.ds[i]


def splits(n: int = 120, side: int = 12):
    rng = np.random.default_rng(0)
    return {
        s: (rng.normal(size=(n, 1, side, side)).astype(np.float32), rng.integers(0, 3, n))
        for s in ("train", "val", "test")
    }


@pytest.mark.parametrize("workers", [0, 2])
def test_the_filters_images_are_read_a_few_small_batches_ahead_at_most(tmp_path, monkeypatch, workers):
    log = tmp_path / "reads.log"
    log.touch()

    class DM(TensorImageDataModule):
        def dataset(self, split, augment=False):
            return LoggedReads(super().dataset(split, augment), log)

    per_batch = 8
    monkeypatch.setattr(base, "ZCA_READ_BYTES", per_batch * 4 * 12 * 12)  # 8 grey 12 px float32 images
    zca = LocalZCA(kernel_size=3, max_images=96, max_windows=2000)
    dm = DM(splits(), num_workers=workers, eval_batch_size=512, zca=zca)
    dm.setup()
    ahead: list[int] = []  # images read but not yet handed over, each time a batch is handed over
    sizes: list[int] = []
    split_batches = dm.split_batches

    def slow(*args, **kwargs):
        handed = 0
        for x, y in split_batches(*args, **kwargs):
            time.sleep(0.1)  # a slow consumer: workers that could read further ahead would
            handed += len(x)
            sizes.append(len(x))
            ahead.append(len(log.read_text().split()) - handed)
            yield x, y

    monkeypatch.setattr(dm, "split_batches", slow)
    kernel = dm.zca_kernel()
    assert max(sizes) == per_batch and sum(sizes) == 96
    assert max(ahead) <= workers * per_batch  # each worker one batch ahead at most (PyTorch's default: two)
    # the filter of all the drawn images (normalised, as the data module gives them) at once
    g = torch_generator(dm.seed, "zca")
    picks = torch.randperm(120, generator=g)[:96].sort().values.tolist()
    monkeypatch.setattr(dm, "split_batches", split_batches)
    assert torch.equal(kernel, zca_kernel(dm.load_split("train", picks)[0], 3, zca.eps, g, 2000))


def test_an_empty_training_split_is_refused_in_one_line():
    data = splits()
    data["train"] = (data["train"][0][:0], data["train"][1][:0])
    dm = TensorImageDataModule(data, zca=LocalZCA(kernel_size=3))
    dm.setup()
    with pytest.raises(ZCAError, match="the training split has none"):
        dm.zca_kernel()


def test_the_filter_is_read_by_at_most_two_workers_and_computed_once(monkeypatch):
    """data.num_workers 8 reads the filter's images with ZCA_READ_WORKERS (2) workers; a second call
    reads nothing and gives the same filter (a mutation review's gaps)."""
    dm = TensorImageDataModule(splits(), num_workers=8, zca=LocalZCA(kernel_size=3, max_images=16))
    dm.setup()
    asked: list[int | None] = []
    split_batches = dm.split_batches

    def spy(split, indices=None, batch_size=None, num_workers=None, prefetch_factor=None):
        asked.append(num_workers)
        return split_batches(split, indices, batch_size, 0)  # no worker processes in the test

    monkeypatch.setattr(dm, "split_batches", spy)
    kernel = dm.zca_kernel()
    assert asked and set(asked) == {base.ZCA_READ_WORKERS} == {2}
    calls = len(asked)
    assert dm.zca_kernel() is kernel and len(asked) == calls
