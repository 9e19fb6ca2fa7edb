"""Real batches for the outer loss, drawn as a pure function of (seed, outer step, rank).

SsnL semantics on many GPUs: every rank sees its own real batch. Drawing the indices from
``derive_seed(seed, "real", step, rank)`` instead of iterating a shuffled loader makes a resumed run
see exactly the batches an uninterrupted run would, with no loader state in the checkpoint.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from gastrodistill.utils.seeding import torch_generator


class RealBatchSource:
    """Batches of ``batch_size`` training samples (``balanced``: classes equally often, with replacement)."""

    def __init__(
        self,
        dataset: Dataset,
        labels: np.ndarray,
        batch_size: int,
        seed: int,
        num_classes: int,
        balanced: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"the real batch size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.labels = np.asarray(labels, dtype=np.int64)
        if len(self.labels) == 0:
            raise ValueError("the training split is empty: there are no real samples to distil from")
        self.batch_size = int(batch_size)
        self.seed = seed
        self.balanced = balanced
        counts = np.bincount(self.labels, minlength=num_classes).astype(np.float64)
        with np.errstate(divide="ignore"):
            self._weights = torch.as_tensor(np.where(counts[self.labels] > 0, 1.0 / counts[self.labels], 0.0))

    @classmethod
    def from_datamodule(cls, datamodule: Any, batch_size: int, seed: int) -> RealBatchSource:
        """The data module's un-augmented train split; its ``balanced_sampler`` flag picks balanced draws."""
        return cls(
            datamodule.dataset("train", augment=False),
            datamodule.labels("train"),
            batch_size,
            seed,
            datamodule.num_classes,
            balanced=bool(getattr(datamodule, "balanced_sampler", False)),
        )

    def indices(self, step: int, rank: int) -> Tensor:
        """Dataset indices of the real batch of outer step ``step`` on rank ``rank``."""
        gen = torch_generator(self.seed, "real", step, rank)
        n = len(self.labels)
        if self.balanced:
            return torch.multinomial(self._weights, self.batch_size, replacement=True, generator=gen)
        return torch.randperm(n, generator=gen)[: min(self.batch_size, n)]

    def get(self, step: int, rank: int) -> tuple[Tensor, Tensor]:
        """(images ``[B, C, H, W]``, labels ``[B]``) of outer step ``step`` on rank ``rank``."""
        idx = self.indices(step, rank).tolist()
        xs = [self.dataset[i][0] for i in idx]
        return torch.stack([torch.as_tensor(x) for x in xs]), torch.as_tensor(self.labels[idx])


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
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        return None
