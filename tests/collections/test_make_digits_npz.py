"""``benchmarks/make_digits_npz.py``: the digits npz of the README's npz command, written into a folder that
does not exist yet (it ended in a FileNotFoundError traceback), with the arrays ``data=npz`` reads."""

from __future__ import annotations

import numpy as np

from tests._benchmarks import load_benchmark


def test_the_digits_npz_is_written_into_a_new_folder_and_read_by_the_npz_module(tmp_path):
    from sklearn.datasets import load_digits

    from gastrodistill.data.collections import NpzDataModule

    out = tmp_path / "new" / "folder" / "digits.npz"
    assert load_benchmark("make_digits_npz").main([str(out), "--seed", "3"]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits.npz"]  # no temporary file left
    with np.load(out, allow_pickle=False) as z:
        d = load_digits()
        idx = np.random.default_rng(3).permutation(len(d.images))
        np.testing.assert_array_equal(z["val_images"], np.clip(d.images[idx[1000:1300]] * 16, 0, 255))
        np.testing.assert_array_equal(z["test_labels"], d.target[idx[1300:]])
        assert z["train_images"].dtype == np.uint8 and z["train_images"].shape == (1000, 8, 8)
    dm = NpzDataModule(out, storage_size=None)
    dm.setup()
    assert dm.class_names == [str(c) for c in range(10)] and dm.image_shape == (1, 8, 8)
