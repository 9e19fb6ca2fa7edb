"""The splits the evaluation predicts (test, validation and the threshold's fitting split), read once per run.

A split is held as it is stored (``uint8`` pixels for patch stores and image folders) and normalised
batch by batch with the data module's mean and std, exactly as its ``Dataset`` would (to ``[0, 1]``,
then ``(x - mean) / std`` in float32), on the evaluation device when it fits ``eval.max_device_mb``.
A split over ``eval.max_in_memory_mb`` (at its stored depth) is streamed from the data module instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from gastrodistill.data.base import ArrayDataset
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.patient import FIT_SPLITS, threshold_policy

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule


class SplitCache:
    """One split's images for prediction: cached raw (uint8 or float in [0, 1]; other depths as normalised
    float32) or, over ``max_bytes``, streamed.

    ``labels`` ``[N]`` int64; ``patient_ids`` ``[N]`` and ``patient_labels`` (id -> 0/1) when the data
    have patients (private: never written). :meth:`batches` yields normalised float32 ``[B, C, H, W]``
    on ``device``.
    """

    def __init__(
        self,
        dm: ImageDataModule,
        split: str,
        max_bytes: int,
        batch_size: int,
        device: str | torch.device = "cpu",
        max_device_bytes: int | None = None,
    ) -> None:
        self.dm, self.split, self.batch_size = dm, split, int(batch_size)
        self.device = torch.device(device)
        self.labels = np.asarray(dm.labels(split), dtype=np.int64)
        self.patient_ids = dm.patient_ids(split)
        self.patient_labels = dm.patient_labels(split)
        self.raw: torch.Tensor | None = None
        self.mean = self.std = None
        ds = dm.dataset(split, augment=False)
        images = getattr(ds, "images", None) if isinstance(ds, ArrayDataset) else None
        if images is not None and np.dtype(images.dtype) in (np.uint8, np.float32):
            nbytes = int(np.prod(images.shape)) * np.dtype(images.dtype).itemsize
            if nbytes <= max_bytes:
                raw = torch.from_numpy(np.array(images, copy=True))  # read once (a memmap is read-only)
                fits = max_device_bytes is None or nbytes <= max_device_bytes
                self.raw = raw.to(self.device) if fits else raw
                self.mean = torch.as_tensor(ds.mean, dtype=torch.float32).to(self.raw.device)
                self.std = torch.as_tensor(ds.std, dtype=torch.float32).to(self.raw.device)
        if self.raw is None and len(self.labels) * int(np.prod(dm.image_shape)) * 4 <= max_bytes:
            # another storage depth (e.g. uint16) or another dataset type: cache it normalised, as float32
            x, _ = dm.load_split(split)
            self.raw = x.to(self.device) if max_device_bytes is None or x.nbytes <= max_device_bytes else x
            self.mean = torch.zeros(1, 1, 1, device=self.raw.device)
            self.std = torch.ones(1, 1, 1, device=self.raw.device)
        self._dataset = ds

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def cached(self) -> bool:
        """Whether the split's images are held in memory (else they are read batch by batch)."""
        return self.raw is not None

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        unit = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return ((unit - self.mean) / self.std).to(self.device, non_blocking=True)  # (x - 0) / 1 is exact

    def batches(self) -> Iterator[torch.Tensor]:
        """Normalised float32 batches ``[B, C, H, W]`` on the device, in split order."""
        if self.raw is not None:
            for start in range(0, len(self.raw), self.batch_size):
                yield self._normalise(self.raw[start : start + self.batch_size])
            return
        loader = DataLoader(
            self._dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=getattr(self.dm, "num_workers", 0),
        )
        for x, _ in loader:
            yield x.to(self.device, non_blocking=True)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split normalised, ``([N, C, H, W]`` float32 on the device, ``[N]`` int64)."""
        xs = list(self.batches())
        x = torch.cat(xs) if xs else torch.empty(0, *self.dm.image_shape, device=self.device)
        return x, torch.tensor(self.labels, device=self.device)  # a copy: the labels may be read-only

    @property
    def has_patients(self) -> bool:
        """Whether the split has patient ids and patient labels (patient-level metrics possible)."""
        return self.patient_ids is not None and self.patient_labels is not None


@dataclass
class Context:
    """What scoring needs: the data module, the three cached splits and the patient classes."""

    cfg: DictConfig
    dm: Any
    fit: SplitCache
    val: SplitCache
    test: SplitCache
    positive_class: int | None
    irrelevant_class: int | None
    # issue 13: threshold refusal / cross-validation (gastrodistill.evaluation.patient.ThresholdPolicy)
    policy: Any = None
    other_fit: str | None = None  # the other fitting split, pooled with `fit` when cross-validating
    other_data: SplitCache | None = None  # its cache, read on first need

    def other_split(self) -> SplitCache:
        """The other fitting split (``train`` or ``val``), cached on first use."""
        if self.other_data is None:
            ev = self.cfg.eval
            dev_mb = ev.get("max_device_mb")
            self.other_data = SplitCache(
                self.dm,
                str(self.other_fit),
                int(ev.max_in_memory_mb) * 2**20,
                int(ev.batch_size),
                self.test.device,
                None if dev_mb is None else int(dev_mb) * 2**20,
            )
        return self.other_data

    @property
    def patients(self) -> bool:
        """Patient-level metrics apply: the data have patients and a positive class."""
        return self.positive_class is not None and self.fit.has_patients and self.test.has_patients


def class_index(names: list[str], wanted: str | None, key: str, required: bool) -> int | None:
    """The index of class ``wanted``; an unknown name is an error when ``required`` (else ``None``)."""
    if wanted is None:
        return None
    if str(wanted) in names:
        return names.index(str(wanted))
    if required:
        raise EvaluationConfigError(
            f"eval.patient.{key} = {wanted!r} is not a class of the data {names}; patient metrics need it "
            f"(set eval.patient.{key} to one of them)"
        )
    close = difflib.get_close_matches(str(wanted), names, n=1, cutoff=0.8)
    if close:  # a misspelt name would silently count every patch (the default may name no class of the data)
        raise EvaluationConfigError(
            f"eval.patient.{key} = {wanted!r} is not a class of the data {names}; did you mean {close[0]!r}? "
            f"(eval.patient.{key}=null: no class)"
        )
    return None


def check_evaluation_data(cfg: DictConfig, dm: ImageDataModule) -> tuple[int | None, int | None]:
    """Refuse data the evaluation cannot score, from labels and patient ids alone (no pixel is read).

    ``gastrodistill-reproduce`` calls it once the data can be read, before the distillation, so a
    wrong ``eval.*`` value for the data stops the study then and not an hour later; :func:`build_context`
    calls it again.

    Returns:
        ``(positive_class, irrelevant_class)``: class indices of ``dm.class_names``, ``None`` when not
        set (or, for the positive class, when the data have no patients).

    Raises:
        EvaluationConfigError: ``eval.threshold_source`` outside ``train``/``val``; an empty validation
            or test split; a ``positive_class`` (or a set ``irrelevant_class``) that is not a class of
            data that have patients.
    """
    ev = cfg.eval
    source = str(ev.threshold_source)
    if source not in FIT_SPLITS:
        raise EvaluationConfigError(
            f"eval.threshold_source = {source!r}; use one of {FIT_SPLITS} (never 'test')"
        )
    for split in ("val", "test"):
        if len(dm.labels(split)) == 0:  # e.g. data.val_fraction=0: it failed as "argmax of an empty sequence"
            raise EvaluationConfigError(
                f"the {split} split is empty; the evaluation chooses learning rates and the patient "
                "threshold on validation patients and tests on test patients (set data.val_fraction > 0, "
                "e.g. 0.2, or give the data more patients)"
            )
    names = list(dm.class_names)
    has_patients = all(
        dm.patient_ids(s) is not None and dm.patient_labels(s) is not None for s in (source, "test")
    )
    pos = class_index(names, ev.patient.positive_class, "positive_class", required=has_patients)
    irr = class_index(names, ev.patient.irrelevant_class, "irrelevant_class", required=False)
    return pos, irr


def check_random_subset_size(dm: ImageDataModule, n_per_class: int) -> None:
    """Refuse random-subset baselines (``random``, ``random_soft``) that draw more training images of a
    class than it has: the draw failed with a traceback after the distillation and the full-data network
    (a newcomer's 5-image class at the cpu preset's 10 images per class).

    Raises:
        EvaluationConfigError: naming every class short of ``n_per_class``, with their counts, and the keys.
    """
    short = dm.classes_short_of(n_per_class, "train")
    if short:
        raise EvaluationConfigError(
            f"the random-subset baselines draw {n_per_class} training images of each class (the distilled "
            f"set's images per class, or eval.baselines.n_per_class), more than these classes have: "
            f"{', '.join(short)}; set eval.baselines.n_per_class to at most the smallest count, lower "
            "distill.ipc or distill.steps (the set's size), or leave random and random_soft out of "
            "eval.baselines.methods"
        )


def build_context(cfg: DictConfig, dm: ImageDataModule) -> Context:
    """Cache the test, validation and fitting splits and resolve the patient classes.

    Raises :class:`EvaluationConfigError` as :func:`check_evaluation_data` does.
    """
    pos, irr = check_evaluation_data(cfg, dm)
    from gastrodistill.evaluation.networks import eval_device

    ev = cfg.eval
    source = str(ev.threshold_source)
    dev = eval_device(cfg)
    max_bytes = int(ev.max_in_memory_mb) * 2**20
    dev_mb = ev.get("max_device_mb")
    dev_bytes = None if dev_mb is None else int(dev_mb) * 2**20
    bs = int(ev.batch_size)
    val = SplitCache(dm, "val", max_bytes, bs, dev, dev_bytes)
    fit = val if source == "val" else SplitCache(dm, "train", max_bytes, bs, dev, dev_bytes)
    test = SplitCache(dm, "test", max_bytes, bs, dev, dev_bytes)
    policy = threshold_policy(ev.patient, int(cfg.seed))
    other = ("train" if source == "val" else "val") if policy.fallback == "cv" else None
    return Context(cfg, dm, fit, val, test, pos, irr, policy, other)
