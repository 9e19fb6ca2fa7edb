"""The one face every data set shows to distillation, evaluation and the audit.

Gastric patch stores, class folders and ``.npz`` files all become an :class:`ImageDataModule`:
splits ``train`` / ``val`` / ``test`` of (image, label) pairs, with images as float tensors
``[C, H, W]`` already normalised by the training split's per-channel mean and std. Distilled images
live in the same normalised space, so the mean and std travel with them in the artifact card.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset, WeightedRandomSampler

from gastrodistill.data.errors import DataInputError
from gastrodistill.data.sizes import pixel_size
from gastrodistill.data.zca import LocalZCA, check_filter_fits, checked_zca
from gastrodistill.utils.seeding import torch_generator
from gastrodistill.utils.values import check_switch, is_count

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


#: Bytes of float32 images per batch the ZCA filter's images are read in (:meth:`ImageDataModule.zca_kernel`).
ZCA_READ_BYTES = 64 * 2**20
#: Most workers reading the ZCA filter's images (each holds one batch ahead).
ZCA_READ_WORKERS = 2


class ImageDataModule(pl.LightningDataModule):
    """Common base; subclasses implement :meth:`dataset` and :meth:`labels` and set the attributes."""

    num_classes: int
    class_names: list[str]
    in_channels: int
    image_size: tuple[int, int]
    mean: list[float]
    std: list[float]

    def __init__(
        self,
        batch_size: int = 256,
        eval_batch_size: int = 512,
        num_workers: int = 0,
        balanced_sampler: bool = False,
        augment: object | None = None,
        seed: int = 0,
        storage_size: int | None = None,
        progress: bool = True,
        val_fraction: float | None = None,
        zca: LocalZCA | None = None,
    ) -> None:
        """Loader settings shared by every data set.

        ``val_fraction`` is consumed by the layouts that carve validation patients or images out of the
        training data (gastric patches, class folders without a ``val/`` tree); collections that bring
        their own validation split (npz, digits) accept and ignore it, so that a preset may set it.

        ``storage_size`` and ``progress`` exist for every data group so that an experiment preset
        (``conf/experiment/*``) can set them whatever the data: for gastric patches ``storage_size``
        is the stored patch side; for any other collection it caps the longer image side (larger
        images are shrunk with area resampling, keeping their aspect ratio; smaller ones are kept),
        so a CPU preset keeps its compute budget on any data. ``progress`` shows progress bars.

        ``zca`` (``data.zca``: ``null`` or a :class:`~gastrodistill.data.zca.LocalZCA`) whitens every
        network of a study with a local ZCA filter of the training split (:meth:`zca_kernel`).
        """
        super().__init__()
        for key, value in (("balanced_sampler", balanced_sampler), ("progress", progress)):
            check_switch(value, f"data.{key}")
        for key, value, low in (("batch_size", batch_size, 1), ("eval_batch_size", eval_batch_size, 1)) + (
            ("num_workers", num_workers, 0),
        ):
            if not is_count(value, low):
                raise ValueError(f"data.{key} must be an integer >= {low}, got {value!r}")
        self.storage_size = pixel_size(storage_size, "data.storage_size", null="keep the data's own size")
        self.progress = bool(progress)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_workers = num_workers
        self.balanced_sampler = balanced_sampler
        self.augment = augment
        self.seed = seed
        self.zca = checked_zca(zca)
        self._zca_kernel: torch.Tensor | None = None

    # ---- what subclasses provide -------------------------------------------------------------
    @abstractmethod
    def dataset(self, split: str, augment: bool = False) -> Dataset:
        """(image ``[C,H,W]`` float normalised, label ``int``) pairs of one split."""

    @abstractmethod
    def labels(self, split: str) -> np.ndarray:
        """Integer labels of a split, in dataset order (cheap: no pixels are read)."""

    def patient_ids(self, split: str) -> np.ndarray | None:
        """Per-sample patient id (for patient-level evaluation); ``None`` when the data have no patients."""
        return None

    def patient_labels(self, split: str) -> dict[str, int] | None:
        """Patient id -> 1 (positive diagnosis, e.g. gastritis) / 0; ``None`` when there are no patients."""
        return None

    def source_hash(self) -> str:
        """A hash of the source data (goes into the artifact card; never a path)."""
        raise NotImplementedError

    @property
    def bytes_per_pixel(self) -> int | None:
        """Bytes of one stored real pixel (for the compression ratio); ``None`` when unknown."""
        return None

    # ---- shared behaviour --------------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image (channels, then height and width in px)."""
        return (self.in_channels, *self.image_size)

    def _sampler(self, split: str, epoch_seed: int = 0) -> WeightedRandomSampler | None:
        if not self.balanced_sampler:
            return None
        y = self.labels(split)
        counts = np.bincount(y, minlength=self.num_classes).astype(np.float64)
        weights = 1.0 / counts[y]
        return WeightedRandomSampler(
            torch.as_tensor(weights),
            num_samples=len(y),
            replacement=True,
            generator=torch_generator(self.seed, "sampler", split, epoch_seed),
        )

    def _loader(self, split: str, train: bool) -> DataLoader:
        ds = self.dataset(split, augment=train)
        sampler = self._sampler(split) if train else None
        return DataLoader(
            ds,
            batch_size=self.batch_size if train else self.eval_batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            num_workers=self.num_workers,
            generator=torch_generator(self.seed, "loader", split) if train and sampler is None else None,
            drop_last=False,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled (or class-balanced, ``balanced_sampler``) batches of ``train``, augmented."""
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Batches of ``val`` in order (``eval_batch_size``), without augmentation."""
        return self._loader("val", train=False)

    def test_dataloader(self) -> DataLoader:
        """Batches of ``test`` in order (``eval_batch_size``), without augmentation."""
        return self._loader("test", train=False)

    def load_split(
        self, split: str, indices: Sequence[int] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A split (or some of its samples) as two in-memory tensors, without augmentation."""
        xs, ys = [], []
        for x, y in self.split_batches(split, indices):
            xs.append(x)
            ys.append(torch.as_tensor(y))
        if not xs:
            return torch.empty(0, *self.image_shape), torch.empty(0, dtype=torch.long)
        return torch.cat(xs), torch.cat(ys).long()

    def split_batches(
        self,
        split: str,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
        num_workers: int | None = None,
        prefetch_factor: int | None = None,
    ) -> DataLoader:
        """A split (or the samples ``indices``, in that order) in batches of ``batch_size`` images
        ``[n, C, H, W]`` (default ``data.eval_batch_size``) with their labels, without augmentation, read by
        ``num_workers`` workers (default ``data.num_workers``), each ``prefetch_factor`` batches ahead
        (default PyTorch's 2)."""
        ds = self.dataset(split, augment=False)
        if indices is not None:
            ds = Subset(ds, list(indices))
        workers = self.num_workers if num_workers is None else num_workers
        ahead = {"prefetch_factor": prefetch_factor} if prefetch_factor and workers else {}
        return DataLoader(
            ds, batch_size=batch_size or self.eval_batch_size, shuffle=False, num_workers=workers, **ahead
        )

    def classes_short_of(self, n_per_class: int, split: str = "train") -> list[str]:
        """``"'name' (count)"`` for each class with fewer than ``n_per_class`` images in ``split``, in class
        order (empty when every class has enough): what :meth:`sample_per_class` would refuse."""
        counts = np.bincount(np.asarray(self.labels(split), dtype=np.int64), minlength=self.num_classes)
        return [f"{self.class_names[c]!r} ({int(n)})" for c, n in enumerate(counts) if n < n_per_class]

    def zca_kernel(self) -> torch.Tensor | None:
        """The local ZCA filter ``[C, k, k]`` of the training split (``data.zca``; ``None`` when it is off),
        from a draw of its images seeded by ``(data.seed, 'zca')``: the same filter in every process of a
        study. Computed once per data module. Raises :class:`~gastrodistill.data.zca.ZCAError`."""
        if self.zca is None:
            return None
        if self._zca_kernel is None:
            check_filter_fits(
                self.zca.kernel_size,
                tuple(self.image_size),
                "the data's image size: data.image_size or data.storage_size",
            )
            count = len(self.labels("train"))
            # batches of at most ZCA_READ_BYTES (float32), at most ZCA_READ_WORKERS workers reading one batch
            # ahead each: memory holds (workers + 1) such batches, not the images
            per_image = 4 * int(np.prod(self.image_shape))
            batch = max(1, min(int(self.eval_batch_size), ZCA_READ_BYTES // per_image))
            workers = min(int(self.num_workers or 0), ZCA_READ_WORKERS)
            self._zca_kernel = self.zca.kernel(
                count,
                lambda picks: (x for x, _ in self.split_batches("train", picks, batch, workers, 1)),
                torch_generator(self.seed, "zca"),
                tuple(self.image_shape),
            )
        return self._zca_kernel

    def sample_per_class(
        self, n_per_class: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_per_class`` random samples of each class (real-image init, the random-subset baseline);
        ``ValueError`` when a class has fewer (the stages check :meth:`classes_short_of` before)."""
        y = torch.from_numpy(np.array(self.labels(split), dtype=np.int64))  # copy: may be read-only
        picks: list[int] = []
        for c in range(self.num_classes):
            idx = torch.nonzero(y == c).flatten()
            if len(idx) < n_per_class:
                raise ValueError(
                    f"class {c} ({self.class_names[c]!r}) has {len(idx)} samples in split {split!r}, "
                    f"fewer than the {n_per_class} requested"
                )
            picks.extend(idx[torch.randperm(len(idx), generator=generator)[:n_per_class]].tolist())
        return self.load_split(split, picks)


def capped_size(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``(H, W)`` shrunk so the longer side is at most ``max_side`` (aspect kept, sides >= 1)."""
    h, w = int(size[0]), int(size[1])
    if not max_side or max(h, w) <= max_side:
        return (h, w)
    scale = max_side / max(h, w)
    return (max(1, round(h * scale)), max(1, round(w * scale)))


def cap_size(
    splits: dict[str, tuple[np.ndarray, np.ndarray]], max_side: int | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Shrink ``[N, C, H, W]`` images whose longer side exceeds ``max_side`` (cv2.INTER_AREA), dtype kept."""
    out = {}
    for split, (x, y) in splits.items():
        target = capped_size(tuple(x.shape[2:4]), max_side)
        if target == tuple(x.shape[2:4]):
            out[split] = (x, y)
            continue
        import cv2

        dtype = x.dtype
        small = np.empty((len(x), x.shape[1], *target), dtype=dtype)
        for i in range(len(x)):
            hwc = np.ascontiguousarray(np.asarray(x[i]).transpose(1, 2, 0))
            r = cv2.resize(hwc, (target[1], target[0]), interpolation=cv2.INTER_AREA)
            small[i] = r.reshape(target[0], target[1], x.shape[1]).transpose(2, 0, 1)
        out[split] = (small, y)
    return out


def class_name(value: object, where: str = "class_names") -> str:
    """One class name as text; byte strings (``np.bytes_``, ``bytes``, e.g. from an ``.npz``) as UTF-8.

    Raises ValueError naming ``where`` when bytes are not UTF-8.
    """
    if isinstance(value, bytes | bytearray | np.bytes_):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{where}: class name {bytes(value)!r} is not UTF-8 text; store class names as UTF-8 strings"
            ) from exc
    if isinstance(value, np.generic):
        value = value.item()
    return str(value)


def class_name_list(values: Sequence[object], where: str = "class_names") -> list[str]:
    """:func:`class_name` for each entry (names from array files, configs or callers).

    Raises DataInputError (a ValueError) naming ``where`` when a name is empty or blank, or when two
    entries give the same name: results, plots and the artifact's card name classes by these strings.
    """
    names = [class_name(v, where) for v in values]
    blank = [i for i, n in enumerate(names) if not n.strip()]
    if blank:
        raise DataInputError(f"{where}: class names at positions {blank} are empty; give every class a name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataInputError(
            f"{where}: class names {repeated} are given more than once; each class needs its own name"
        )
    return names


def to_unit(img: np.ndarray) -> np.ndarray:
    """Integer pixels to float32 in [0, 1] by their bit depth; floats pass through."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / 255.0
    if img.dtype == np.uint16:
        return img.astype(np.float32) / 65535.0
    return img.astype(np.float32)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of ``[N, C, H, W]`` images (uint8/uint16/float in [0, 1]), chunked."""
    n, c = images.shape[:2]
    s = np.zeros(c)
    ss = np.zeros(c)
    count = 0
    for start in range(0, n, 1024):
        chunk = to_unit(np.asarray(images[start : start + 1024])).astype(np.float64)
        s += chunk.sum(axis=(0, 2, 3))
        ss += (chunk**2).sum(axis=(0, 2, 3))
        count += chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
    mean = s / max(count, 1)
    std = np.sqrt(np.maximum(ss / max(count, 1) - mean**2, 1e-12))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


class ArrayDataset(Dataset):
    """Images ``[N, C, H, W]`` (uint8, uint16 or float in [0, 1]; may be a memmap) with labels.

    Augmentation (an albumentations transform, HWC float in [0, 1]) runs before normalisation,
    as albumentations' colour transforms expect [0, 1] inputs.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        augment: object | None = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = to_unit(np.asarray(self.images[i]))  # [C, H, W]
        if self.augment is not None:
            hwc = np.ascontiguousarray(img.transpose(1, 2, 0))
            hwc = self.augment(image=hwc)["image"]
            if hwc.ndim == 2:
                hwc = hwc[:, :, None]
            img = hwc.transpose(2, 0, 1)
        img = (img - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)), int(self.labels[i])


def _train_size(splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[int, ...] | None:
    """``(H, W)`` in px of the ``train`` images ``[N, C, H, W]`` (``None`` without a train split)."""
    return tuple(int(s) for s in splits["train"][0].shape[2:4]) if "train" in splits else None


class TensorImageDataModule(ImageDataModule):
    """In-memory splits (arrays ``[N, C, H, W]``); the base for ``.npz``/folder data and for tests."""

    #: ``data.image_size`` as (height, width) px when the user set one (npz, folder): then the images keep
    #: exactly that size and ``storage_size`` (a preset's cap on the longer side) is not applied after it.
    resize_to: tuple[int, int] | None = None

    def __init__(
        self,
        splits: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
        class_names: Sequence[str] | None = None,
        source_id: str = "in-memory",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._splits = splits
        self._class_names = class_name_list(class_names) if class_names is not None else None
        self._source_id = source_id
        if splits is not None:
            self._configure()

    def load_arrays(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str] | None]:
        """Subclasses that read files override this; the default uses the arrays given to ``__init__``."""
        if self._splits is None:
            raise ValueError("no arrays given and load_arrays() not overridden")
        return self._splits, self._class_names

    def setup(self, stage: str | None = None) -> None:
        """Load the arrays (:meth:`load_arrays`), cap their size, set classes, shape and stats; once."""
        if getattr(self, "_configured", False):
            return
        self._splits, names = self.load_arrays()
        if names is not None:
            self._class_names = class_name_list(names)
        if self.resize_to is None:  # an explicit data.image_size is exact (docs/your_own_data.md)
            before = _train_size(self._splits)
            self._splits = cap_size(self._splits, self.storage_size)
            after = _train_size(self._splits)
            if before != after:  # a 128 px collection was distilled and shipped at 64 px without a word
                log.warning(
                    "images of %dx%d px are shrunk to %dx%d px (data.storage_size=%s caps the longer side; "
                    "data.image_size=HxW or data.storage_size=null keeps another size)",
                    *before,
                    *after,
                    self.storage_size,
                )
        self._configure()

    def _configure(self) -> None:
        for split in SPLITS:
            if split not in self._splits:
                raise ValueError(f"split {split!r} missing (have {sorted(self._splits)})")
        x, y = self._splits["train"]
        k = int(max(int(np.max(lab)) if len(lab) else -1 for _, lab in self._splits.values())) + 1
        self.num_classes = len(self._class_names) if self._class_names else k
        self.class_names = self._class_names or [str(i) for i in range(self.num_classes)]
        self.in_channels = int(x.shape[1])
        self.image_size = (int(x.shape[2]), int(x.shape[3]))
        self.mean, self.std = channel_stats(x)
        self._pixel_hash: str | None = None  # source_hash()'s memo, of these very arrays
        self._configured = True

    def labels(self, split: str) -> np.ndarray:
        """Integer labels ``[N]`` of ``split``, in dataset order."""
        return np.asarray(self._splits[split][1], dtype=np.int64).reshape(-1)

    def array_bytes_per_pixel(self) -> int | None:
        """Bytes per pixel of the arrays as held (uint8 1, uint16 2, float32 4); ``None`` before setup.

        Only data modules whose arrays are the stored data (``.npz``, class folders) report this as
        their :attr:`bytes_per_pixel`; in-memory arrays of other origin may be a float copy.
        """
        if self._splits is None:
            return None
        return int(np.dtype(self._splits["train"][0].dtype).itemsize)

    def dataset(self, split: str, augment: bool = False) -> Dataset:
        """``split``'s arrays as an :class:`ArrayDataset` (normalised; augmented with ``augment``)."""
        x, _ = self._splits[split]
        return ArrayDataset(x, self.labels(split), self.mean, self.std, self.augment if augment else None)

    def source_hash(self) -> str:
        """SHA-256 of the source id and every split's pixels and labels (64 hex characters).

        Hashing reads every pixel (about 1 s per GB), so the digest is kept once computed: one
        command asks for it several times (checkpoints, evaluation records, the audit's identity,
        the card). The memo belongs to the arrays of the last :meth:`setup`; arrays are not
        changed in place after it (no stage does).
        """
        if getattr(self, "_pixel_hash", None) is None:
            import hashlib

            h = hashlib.sha256(self._source_id.encode())
            for split in SPLITS:
                x, y = self._splits[split]
                h.update(np.ascontiguousarray(x).tobytes())
                h.update(np.ascontiguousarray(y).tobytes())
            self._pixel_hash = h.hexdigest()
        return self._pixel_hash
