"""``data.digits``: scikit-learn's 8x8 digits split by a seed into disjoint train/val/test, scaled to [0, 1],
a subset of classes relabelled 0..k-1 (checked against sklearn's own arrays)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from gastrodistill.data.digits import DigitsDataModule


def _rows(x, y):
    """Each (image, label) as one sortable row, images back on sklearn's 0..16 scale."""
    rows = np.concatenate([np.rint(x.reshape(len(x), -1) * 16), y[:, None]], axis=1)
    return rows[np.lexsort(rows.T[::-1])]


@pytest.mark.parametrize("classes", [None, [5, 3]])
def test_the_splits_part_the_kept_digits_and_relabel_them_in_the_given_order(classes):
    """Every kept digit in exactly one split (a quarter of them at most in test, and in val); label i is
    the i-th kept class; images are sklearn's divided by 16, float32 [N, 1, 8, 8]."""
    dm = DigitsDataModule(classes=classes)
    splits, names = dm.load_arrays()
    keep = classes if classes is not None else list(range(10))
    assert names == [str(c) for c in keep]
    d = load_digits()
    n = int(np.isin(d.target, keep).sum())
    sizes = {s: len(y) for s, (_, y) in splits.items()}
    n_test, n_val = min(500, n // 4), min(300, n // 4)
    assert sizes == {"test": n_test, "val": n_val, "train": n - n_test - n_val}
    x = np.concatenate([splits[s][0] for s in ("train", "val", "test")])
    y = np.concatenate([splits[s][1] for s in ("train", "val", "test")])
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8) and y.dtype == np.int64
    assert x.max() == 1.0 and x.min() == 0.0
    kept = np.isin(d.target, keep)
    relabelled = np.array([keep.index(t) for t in d.target[kept]])
    assert np.array_equal(_rows(x, y), _rows(d.images[kept][:, None] / 16.0, relabelled))


def test_the_split_follows_split_seed():
    def test_images(seed):
        (x, _) = DigitsDataModule(split_seed=seed).load_arrays()[0]["test"]
        return x

    assert np.array_equal(test_images(0), test_images(0))
    assert not np.array_equal(test_images(0), test_images(1))


def test_the_data_module_has_the_kept_classes_and_the_digits_shape():
    dm = DigitsDataModule(classes=[0, 1], n_val=10, n_test=20)
    dm.setup()
    assert (dm.num_classes, dm.class_names, dm.in_channels, dm.image_size) == (2, ["0", "1"], 1, (8, 8))
    assert [len(dm.load_split(s)[1]) for s in ("val", "test")] == [10, 20]
