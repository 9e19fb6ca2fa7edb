"""Gastric X-ray patches served from a patch store: the data module of the paper's experiments.

``prepare_data`` builds the store (or finds it up to date); ``setup`` memory-maps it. Every split and
every patient is a contiguous slice of the array, so datasets are views of the memmap and nothing is
loaded into memory until a batch asks for it. Mean and std come from the train split's pixel
histogram recorded at build time (exact, no pass over the patches).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from gastrodistill.data.base import ArrayDataset, ImageDataModule
from gastrodistill.data.errors import StoreError
from gastrodistill.data.labelling import CLASS_NAMES
from gastrodistill.data.patch_store import (
    PATCHES_FILE,
    PatchStore,
    ReopensMemmap,
    StoreSpec,
    build_store,
    find_store,
    hist_stats,
)
from gastrodistill.data.tiling import Geometry
from gastrodistill.data.zca import LocalZCA, check_filter_fits
from gastrodistill.utils.seeding import derive_seed


class StoreArrayDataset(ReopensMemmap, ArrayDataset):
    """An :class:`ArrayDataset` over rows ``[start, stop)`` of a store's memmap, as ``[n, 1, S, S]``.

    Pickling (DataLoader workers under ``spawn``) carries the file name, not the pixels; in a worker
    the augmentation is reseeded from the worker's seed so workers do not repeat each other.
    """

    def __init__(
        self,
        store_path: Path,
        start: int,
        stop: int,
        labels: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        augment: object | None = None,
    ) -> None:
        self._file = Path(store_path) / PATCHES_FILE
        self._start, self._stop = int(start), int(stop)
        self._worker_seed: int | None = None
        super().__init__(self._open(), labels, mean, std, augment)

    MEMMAP_ATTR = "images"

    def _open(self) -> np.ndarray:
        return np.load(self._file, mmap_mode="r")[self._start : self._stop][:, None]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if self.augment is not None and hasattr(self.augment, "set_random_seed"):
            info = torch.utils.data.get_worker_info()
            if info is not None and self._worker_seed != info.seed:
                self._worker_seed = info.seed
                self.augment.set_random_seed(derive_seed(info.seed, "augment-worker") % 2**32)
        return super().__getitem__(i)


class GastricPatchDataModule(ImageDataModule):
    """Patches of whole gastric X-rays (SPEC §1.2): classes irrelevant / non-gastritis / gastritis."""

    def __init__(
        self,
        root: str | os.PathLike,
        store_root: str | os.PathLike,
        patch_size: int = 299,
        overlap: int = 50,
        storage_size: int | None = 64,
        mask_threshold: float = 0.5,
        test_fraction: float = 0.3,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        balanced_sampler: bool = False,
        augment: object | None = None,
        seed: int = 0,
        progress: bool = True,
        bit_depth: int | None = None,
        zca: LocalZCA | None = None,
    ) -> None:
        super().__init__(
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            balanced_sampler=balanced_sampler,
            augment=augment,
            seed=seed,
            storage_size=storage_size,
            progress=progress,
            zca=zca,
        )
        self.spec = StoreSpec(
            data_root=Path(root),
            store_root=Path(store_root),
            geometry=Geometry(patch_size, overlap),
            storage_size=self.storage_size,
            mask_threshold=float(mask_threshold),
            test_fraction=float(test_fraction),
            val_fraction=float(val_fraction),
            split_seed=int(split_seed),
            bit_depth=bit_depth,  # checked by StoreSpec (readers.bit_depth_setting)
        )
        self.progress = progress
        self.class_names = list(CLASS_NAMES)
        self.num_classes = len(CLASS_NAMES)
        self.in_channels = 1
        self.image_size = (self.spec.size, self.spec.size)
        if zca is not None:  # the stored side is known now: a filter larger than a patch stops the study here
            check_filter_fits(zca.kernel_size, self.image_size, "data.storage_size")
        if augment is not None and hasattr(augment, "set_random_seed"):
            augment.set_random_seed(derive_seed(seed, "augment") % 2**32)
        self._store_path: Path | None = None
        self.store: PatchStore | None = None

    # ---- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Build the patch store, or reuse it when data and settings are unchanged."""
        self._store_path = build_store(self.spec, progress=self.progress)

    def setup(self, stage: str | None = None) -> None:
        """Open the up-to-date patch store and take the train split's mean and std from its histograms.

        Raises :class:`StoreError` when no store matches (``prepare_data`` not run)."""
        if self.store is not None:
            return
        path = self._store_path or find_store(self.spec)
        if path is None:
            raise StoreError(
                f"no up-to-date patch store for this data and settings under {self.spec.store_root}; "
                "call prepare_data() first (or run gastrodistill-patches with the same data.* settings)"
            )
        self.store = PatchStore(path)
        mean, std = hist_stats(self.store.meta["pixel_histograms"]["train"])
        self.mean, self.std = [mean], [std]

    # ---- contract ------------------------------------------------------------------------------
    def _store(self) -> PatchStore:
        if self.store is None:
            raise StoreError("GastricPatchDataModule used before setup(); call prepare_data() and setup()")
        return self.store

    @property
    def bytes_per_pixel(self) -> int:
        """Bytes of one stored patch pixel, from the store's metadata (``dtype``)."""
        return int(np.dtype(self._store().meta.get("dtype", "uint8")).itemsize)

    @property
    def store_path(self) -> Path:
        """The folder of the opened patch store; raises :class:`StoreError` before :meth:`setup`."""
        return self._store().path

    def labels(self, split: str) -> np.ndarray:
        """Integer labels ``[N]`` of ``split`` from the store's index (no pixels read)."""
        return self._store().split_index(split)["label"].to_numpy(dtype=np.int64)

    def dataset(self, split: str, augment: bool = False) -> Dataset:
        """``split``'s patches read from the store's memmap (normalised; augmented with ``augment``)."""
        sl = self._store().split_slice(split)
        return StoreArrayDataset(
            self.store_path,
            sl.start,
            sl.stop,
            self.labels(split),
            self.mean,
            self.std,
            self.augment if augment else None,
        )

    def patient_ids(self, split: str) -> np.ndarray:
        """Patient id ``[N]`` (str) of each patch of ``split``, in dataset order."""
        return self._store().split_index(split)["patient"].to_numpy(dtype=str)

    def patient_labels(self, split: str) -> dict[str, int]:
        """Patient id -> 1 (gastritis) / 0 for the patients of ``split``."""
        idx = self._store().split_index(split)
        pairs = idx[["patient", "diagnosis"]].drop_duplicates()
        return {
            str(p): int(d == "gastritis") for p, d in zip(pairs["patient"], pairs["diagnosis"], strict=True)
        }

    def patient_slices(self, split: str) -> dict[str, slice]:
        """Patient id -> the contiguous rows of the split's dataset that hold that patient's patches."""
        pids = self.patient_ids(split)
        out: dict[str, slice] = {}
        if len(pids) == 0:
            return out
        starts = np.flatnonzero(np.r_[True, pids[1:] != pids[:-1]])
        stops = np.r_[starts[1:], len(pids)]
        for a, b in zip(starts, stops, strict=True):
            if str(pids[a]) in out:
                raise StoreError(
                    f"{self.store_path}: a patient's patches are not contiguous; rebuild the store"
                )
            out[str(pids[a])] = slice(int(a), int(b))
        return out

    def iter_patients(self, split: str = "test") -> Iterator[tuple[str, Dataset]]:
        """One (patient id, dataset of all that patient's patches, no augmentation) at a time."""
        base = self._store().split_slice(split).start
        labels = self.labels(split)
        for pid, sl in self.patient_slices(split).items():
            yield (
                pid,
                StoreArrayDataset(
                    self.store_path, base + sl.start, base + sl.stop, labels[sl], self.mean, self.std, None
                ),
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """Patches per split and class (from the store's metadata)."""
        return self._store().meta["counts"]

    def source_hash(self) -> str:
        """The store's content hash (pixels, labels, splits, geometry): never a path."""
        return self._store().content_hash
