"""Real batches for the outer loss, drawn as a pure function of (seed, outer step, rank).

SsnL semantics on many GPUs: every rank sees its own real batch. Drawing the indices from
``derive_seed(seed, "real", step, rank)`` instead of iterating a shuffled loader makes a resumed run
see exactly the batches an uninterrupted run would, with no loader state in the checkpoint.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from gastrodistill.data.base import ArrayDataset, to_unit
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.utils.seeding import torch_generator

REAL_DATA_MODES = ("auto", "resident", "loader", "items")


def raw_images(dataset: Dataset) -> np.ndarray | None:
    """The raw pixel array ``[N, C, H, W]`` behind an un-augmented :class:`ArrayDataset`, else None."""
    if isinstance(dataset, ArrayDataset) and dataset.augment is None:
        images = dataset.images
        if images is not None and getattr(images, "ndim", 0) == 4:
            return images
    return None


def unit_scale(dtype: np.dtype | torch.dtype) -> float | None:
    """The divisor :func:`gastrodistill.data.base.to_unit` applies to integer pixels (None for floats)."""
    name = str(dtype).replace("torch.", "")
    return {"uint8": 255.0, "uint16": 65535.0}.get(name)


class ResidentImages:
    """A train split held on one device in its stored dtype; gathers and normalises whole batches there.

    uint16 (no torch kernels for it everywhere) is held as int32; uint8 stays uint8 (1 byte per pixel).
    """

    def __init__(self, images: np.ndarray, mean: np.ndarray, std: np.ndarray, device: torch.device) -> None:
        arr = np.asarray(images)
        self.scale = unit_scale(arr.dtype)
        if arr.dtype == np.uint16:
            arr = arr.astype(np.int32)
        elif arr.dtype != np.uint8:
            arr = arr.astype(np.float32, copy=False)
        self.device = torch.device(device)
        self.images = torch.from_numpy(np.array(arr, order="C")).to(self.device)  # a writable copy
        self.mean = torch.as_tensor(np.asarray(mean, np.float32).reshape(-1, 1, 1), device=self.device)
        self.std = torch.as_tensor(np.asarray(std, np.float32).reshape(-1, 1, 1), device=self.device)

    @property
    def nbytes(self) -> int:
        """Device memory held by the images, in bytes."""
        return self.images.numel() * self.images.element_size()

    def gather(self, idx: Tensor) -> Tensor:
        """Normalised float32 images ``[len(idx), C, H, W]`` on the device."""
        x = self.images.index_select(0, idx.to(self.device)).to(torch.float32)
        if self.scale is not None:  # in place: one float32 buffer per batch (same operations, same order)
            x.div_(self.scale)
        return x.sub_(self.mean).div_(self.std)


class _BatchDataset(Dataset):
    """Item ``k`` of a DataLoader over steps: the whole real batch of (step, rank), one vectorised gather.

    Pickles as the underlying :class:`ArrayDataset` (a store-backed one carries its file name only).
    """

    def __init__(self, source: RealBatchSource) -> None:
        self.dataset = source.dataset
        self.labels = source.labels
        self.source = source.indices_only()

    def __len__(self) -> int:  # an iterable over an unbounded range of steps; never used by the sampler
        return 2**62

    def __getitem__(self, key: tuple[int, int]) -> tuple[Tensor, Tensor]:
        step, rank = key
        idx = self.source.indices(step, rank).numpy()
        ds = self.dataset
        x = to_unit(np.asarray(ds.images[idx]))  # ArrayDataset's normalisation, in place on the batch
        x -= ds.mean
        x /= ds.std
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.as_tensor(self.labels[idx])


class _StepKeys(Sampler):
    """(step, rank) keys from ``start`` on: the loader's order is the outer steps' order."""

    def __init__(self, start: int, rank: int) -> None:
        self.start, self.rank = int(start), int(rank)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((s, self.rank) for s in itertools.count(self.start))


class RealBatchSource:
    """Batches of ``batch_size`` training samples (``balanced``: classes equally often, with replacement).

    The indices are a pure function of (seed, outer step, rank) (:meth:`indices`); how the pixels arrive
    is chosen by ``mode`` (``distill.real_data``):

    * ``resident``: the whole train split copied once to the module's device in its stored dtype (uint8
      at 1 byte per pixel), gathered and normalised there: no host work per step.
    * ``loader``: a ``DataLoader`` (the data module's ``num_workers``, pinned memory, ``prefetch``
      batches per worker) whose items are whole batches keyed by (step, rank), each one vectorised
      gather from the (memory-mapped) array; the loader restarts at any step asked out of order
      (resume), so batches stay exact.
    * ``items``: one ``dataset[i]`` per sample (any Dataset; the slow reference path).
    * ``auto``: ``resident`` when the array takes at most ``resident_max_bytes``, else ``loader``;
      ``items`` when the dataset is not array-backed.
    """

    def __init__(
        self,
        dataset: Dataset,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        num_classes: int,
        balanced: bool = False,
        *,
        mode: str = "items",
        resident_max_bytes: float = 0,
        num_workers: int = 0,
        prefetch: int = 2,
        pin_memory: bool | None = None,
    ) -> None:
        if batch_size < 1:
            raise DistillConfigError(f"the real batch size must be >= 1, got {batch_size}")
        if mode not in REAL_DATA_MODES:
            raise DistillConfigError(f"distill.real_data must be one of {REAL_DATA_MODES}, got {mode!r}")
        self.dataset = dataset
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) == 0:
            raise DistillConfigError("the training split is empty: there are no real samples to distil from")
        self.batch_size = int(batch_size)
        self.seed = seed
        self.num_classes = num_classes
        self.balanced = balanced
        counts = np.bincount(self.labels, minlength=num_classes).astype(np.float64)
        with np.errstate(divide="ignore"):
            self._weights = torch.as_tensor(np.where(counts[self.labels] > 0, 1.0 / counts[self.labels], 0.0))
        self.requested_mode = mode
        self.resident_max_bytes = float(resident_max_bytes or 0)
        self.num_workers = int(num_workers or 0)
        self.prefetch = max(int(prefetch or 1), 1)
        self.pin_memory = pin_memory
        self.mode = self._choose_mode()
        self._resident: ResidentImages | None = None
        self._iter: Iterator | None = None
        self._next_step: int | None = None
        self._loader_rank: int | None = None
        #: Seconds this process spent blocked on real batches (host gather, copy, or waiting on the loader).
        self.wait_seconds = 0.0

    def _choose_mode(self) -> str:
        raw = raw_images(self.dataset) if self.dataset is not None else None
        if self.requested_mode in ("resident", "loader") and raw is None:
            raise DistillConfigError(
                f"distill.real_data={self.requested_mode} needs an array-backed, un-augmented train split "
                f"(ArrayDataset); this data module gives {type(self.dataset).__name__}: use auto or items"
            )
        if self.requested_mode != "auto":
            return self.requested_mode
        if raw is None:
            return "items"
        return "resident" if raw.nbytes <= self.resident_max_bytes else "loader"

    def indices_only(self) -> RealBatchSource:
        """A copy that only draws indices (no dataset, no loader): cheap to pickle into workers."""
        other = object.__new__(RealBatchSource)
        other.__dict__.update(
            {k: v for k, v in self.__dict__.items() if k not in ("dataset", "_resident", "_iter")}
        )
        other.dataset, other._resident, other._iter = None, None, None
        return other

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_resident"], state["_iter"], state["_next_step"] = None, None, None
        return state

    @classmethod
    def from_datamodule(
        cls, datamodule: Any, batch_size: int, seed: int, balanced: bool | None = None, **kwargs: Any
    ) -> RealBatchSource:
        """The data module's un-augmented train split; ``balanced`` (default: the data module's
        ``balanced_sampler`` flag) picks class-balanced draws.

        ``kwargs`` (``mode``, ``resident_max_bytes``, ``prefetch``, ...) go to the constructor; the loader
        uses the data module's ``num_workers`` unless given.
        """
        kwargs.setdefault("num_workers", int(getattr(datamodule, "num_workers", 0) or 0))
        return cls(
            datamodule.dataset("train", augment=False),
            datamodule.labels("train"),
            batch_size,
            seed,
            datamodule.num_classes,
            balanced=bool(getattr(datamodule, "balanced_sampler", False)) if balanced is None else balanced,
            **kwargs,
        )

    def indices(self, step: int, rank: int) -> Tensor:
        """Dataset indices of the real batch of outer step ``step`` on rank ``rank``."""
        gen = torch_generator(self.seed, "real", step, rank)
        n = len(self.labels)
        if self.balanced:
            return torch.multinomial(self._weights, self.batch_size, replacement=True, generator=gen)
        return torch.randperm(n, generator=gen)[: min(self.batch_size, n)]

    def get(self, step: int, rank: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
        """(images ``[B, C, H, W]`` float32 normalised, labels ``[B]``) of outer step ``step`` on ``rank``.

        ``device``: where the module wants them (the resident copy lives there; other paths return host
        tensors, pinned in ``loader`` mode when a GPU is the target).
        """
        t0 = time.perf_counter()
        try:
            if self.mode == "resident":
                return self._get_resident(step, rank, device)
            if self.mode == "loader":
                return self._get_loader(step, rank, device)
            return self._get_items(step, rank)
        finally:
            self.wait_seconds += time.perf_counter() - t0

    def _get_items(self, step: int, rank: int) -> tuple[Tensor, Tensor]:
        idx = self.indices(step, rank).tolist()
        xs = [self.dataset[i][0] for i in idx]
        return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(self.labels[idx])

    def _get_resident(self, step: int, rank: int, device: Any) -> tuple[Tensor, Tensor]:
        device = torch.device(device if device is not None else "cpu")
        if self._resident is None or self._resident.device != device:
            ds = self.dataset
            self._resident = ResidentImages(raw_images(ds), ds.mean, ds.std, device)
            self._labels_dev = torch.from_numpy(self.labels.copy()).to(device)
        idx = self.indices(step, rank).to(device)
        return self._resident.gather(idx), self._labels_dev.index_select(0, idx)

    def _get_loader(self, step: int, rank: int, device: Any) -> tuple[Tensor, Tensor]:
        if self._iter is None or self._next_step != step or self._loader_rank != rank:
            pin = self.pin_memory
            if pin is None:
                pin = device is not None and torch.device(device).type == "cuda"
            loader = DataLoader(
                _BatchDataset(self),
                batch_size=None,
                sampler=_StepKeys(step, rank),
                num_workers=self.num_workers,
                pin_memory=bool(pin),
                prefetch_factor=self.prefetch if self.num_workers > 0 else None,
                persistent_workers=False,
            )
            self._iter, self._loader_rank = iter(loader), rank
        x, y = next(self._iter)
        self._next_step = step + 1
        return x, y


class OuterSteps:
    """The Trainer's "data loader": it only paces the outer steps (the module fetches real batches by step).

    It carries no state, so it is resumable as it is; ``state_dict``/``load_state_dict`` tell Lightning so.
    """

    def __init__(self, total: int) -> None:
        self.total = int(total)

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[Tensor]:
        return (torch.tensor(i) for i in itertools.islice(itertools.count(), self.total))

    def state_dict(self) -> dict[str, int]:
        """Lightning's loader state: only the step count (nothing to restore)."""
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Lightning's loader restore: nothing to do (the steps carry no state)."""
        return None
