"""scikit-learn's bundled handwritten digits (1,797 real 8x8 images; no download) as an ImageDataModule.

Real data with no download and no patients: the quickest sanity check that distillation works
(``gastrodistill-distill data=digits model=lenet distill=soft_cpu``) and the data of its tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.utils.seeding import numpy_rng


class DigitsDataModule(TensorImageDataModule):
    """Seeded train/val/test split of the digits (``classes`` keeps a subset, relabelled 0..k-1)."""

    def __init__(
        self,
        n_val: int = 300,
        n_test: int = 500,
        classes: Sequence[int] | None = None,
        split_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.n_val, self.n_test, self.split_seed = n_val, n_test, split_seed
        self.keep = list(classes) if classes is not None else list(range(10))
        super().__init__(
            splits=None, class_names=[str(c) for c in self.keep], source_id="sklearn-digits", **kwargs
        )

    def load_arrays(self) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
        """sklearn's 8x8 digits (kept classes, in [0, 1]) split by ``split_seed``: ``[N, 1, 8, 8]`` images."""
        from sklearn.datasets import load_digits

        d = load_digits()
        mask = np.isin(d.target, self.keep)
        x = (d.images[mask] / 16.0).astype(np.float32)[:, None]
        label = {c: i for i, c in enumerate(self.keep)}  # in the order given (searchsorted needs it sorted)
        y = np.asarray([label[int(t)] for t in d.target[mask]], dtype=np.int64)
        perm = numpy_rng(self.split_seed, "digits-split").permutation(len(y))
        n_test = min(self.n_test, len(y) // 4)
        n_val = min(self.n_val, len(y) // 4)
        test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
        splits = {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}
        return splits, [str(c) for c in self.keep]
