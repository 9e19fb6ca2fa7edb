"""GastricPatchDataModule composed from conf/: batches, normalisation, augmentation, patients, hash."""

from __future__ import annotations

import pickle
from collections import Counter

import numpy as np
import pytest
import torch
from gastric_testdata import write_png
from hydra.utils import instantiate

from gastrodistill.data.errors import StoreError
from gastrodistill.data.gastric import GastricPatchDataModule


@pytest.fixture
def make_dm(compose_cfg, data_root):
    def _make(*overrides: str) -> GastricPatchDataModule:
        cfg = compose_cfg(
            [
                f"paths.data_root={data_root}",
                "data.patch_size=32",
                "data.overlap=8",
                "data.storage_size=16",
                "data.batch_size=16",
                "data.eval_batch_size=64",
                "data.progress=false",
                *overrides,
            ]
        )
        return instantiate(cfg.data)

    return _make


@pytest.fixture
def dm(make_dm) -> GastricPatchDataModule:
    d = make_dm()
    d.prepare_data()
    d.setup()
    return d


def test_contract_attributes_and_batches(dm):
    assert dm.class_names == ["irrelevant", "non-gastritis", "gastritis"] and dm.num_classes == 3
    assert dm.in_channels == 1 and dm.image_size == (16, 16) and dm.image_shape == (1, 16, 16)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 1, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    n = {s: len(dm.labels(s)) for s in ("train", "val", "test")}
    assert sum(n.values()) == 256 and n["test"] == 2 * 2 * 16
    for split, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
        ys = torch.cat([b[1] for b in loader])
        np.testing.assert_array_equal(ys.numpy(), dm.labels(split))
        np.testing.assert_array_equal(dm.labels(split), dm.store.split_index(split)["label"].to_numpy())


def test_normalisation_from_train_pixels(dm):
    raw = np.asarray(dm.store.patches[dm.store.split_slice("train")], dtype=np.float64) / 255
    assert dm.mean[0] == pytest.approx(raw.mean(), abs=1e-9) and dm.std[0] == pytest.approx(
        raw.std(), abs=1e-9
    )
    x, _ = dm.load_split("train")
    assert abs(x.mean().item()) < 1e-4 and x.std().item() == pytest.approx(1.0, abs=1e-3)
    # val items are exactly (pixel / 255 - mean) / std of the stored patch: no augmentation
    val = dm.store.split_slice("val")
    xv, _ = dm.load_split("val", [0, 5])
    expected = (dm.store.patches[val.start + 5] / 255.0 - dm.mean[0]) / dm.std[0]
    np.testing.assert_allclose(xv[1, 0].numpy(), expected, atol=1e-5)


def test_augmentation_only_on_train(dm, make_dm):
    assert dm.train_dataloader().dataset.augment is dm.augment and dm.augment is not None
    assert dm.val_dataloader().dataset.augment is None and dm.test_dataloader().dataset.augment is None
    plain, aug = dm.dataset("train"), dm.dataset("train", augment=True)
    changed = sum(not torch.equal(plain[i][0], aug[i][0]) for i in range(40))
    assert changed >= 20  # each of three transforms fires with p=0.5
    assert all(plain[i][1] == aug[i][1] for i in range(40))
    # seeded: a second module with the same seed augments identically
    other = make_dm()
    other.prepare_data()
    other.setup()
    a = torch.stack([other.dataset("train", augment=True)[i][0] for i in range(10)])
    fresh = make_dm()
    fresh.setup()
    b = torch.stack([fresh.dataset("train", augment=True)[i][0] for i in range(10)])
    assert torch.equal(a, b)


def test_patients(dm, data_root):
    import csv

    with open(data_root / "manifest.csv") as f:
        rows = list(csv.DictReader(f))
    diag = {r["patient_id"]: int(r["diagnosis"] == "gastritis") for r in rows}
    seen = set()
    for split in ("train", "val", "test"):
        pids = dm.patient_ids(split)
        assert len(pids) == len(dm.labels(split))
        labels = dm.patient_labels(split)
        assert labels == {p: diag[p] for p in set(pids)}
        full = dm.dataset(split)
        for pid, ds in dm.iter_patients(split):
            assert len(ds) == 2 * 16 and pid not in seen  # 2 images of 16 patches each
            seen.add(pid)
            rows_of_pid = np.flatnonzero(pids == pid)
            first = rows_of_pid[0]
            assert torch.equal(ds[3][0], full[first + 3][0]) and ds[3][1] == full[first + 3][1]
    assert seen == set(diag)
    assert set(dm.patient_labels("test")) == {"C1", "D1"}


def test_source_hash_is_a_content_hash(dm, make_dm, data_root):
    h = dm.source_hash()
    assert len(h) == 64 and int(h, 16) >= 0 and str(data_root) not in h
    same = make_dm()
    same.setup()  # finds the store built by `dm`
    assert same.source_hash() == h
    write_png(data_root / "images" / "A3_0.png", np.full((100, 90), 1234, np.uint16))
    changed = make_dm()
    with pytest.raises(StoreError, match="call prepare_data"):
        changed.setup()
    changed.prepare_data()
    changed.setup()
    assert changed.source_hash() != h


def test_balanced_sampler(make_dm):
    d = make_dm("data.balanced_sampler=true", "data.batch_size=512")
    d.prepare_data()
    d.setup()
    assert (
        Counter(d.labels("train").tolist())[0] > 2 * Counter(d.labels("train").tolist())[1]
    )  # imbalanced data
    _, y = next(iter(d.train_dataloader()))
    share = np.bincount(y.numpy(), minlength=3) / len(y)
    assert (share > 0.22).all() and (share < 0.45).all(), share


def test_dataset_pickles_without_pixels_and_works_in_workers(dm):
    ds = dm.dataset("train")
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000 < ds.images.nbytes  # the file name travels, not the patches
    clone = pickle.loads(blob)
    assert (
        isinstance(clone.images, np.memmap) and torch.equal(clone[7][0], ds[7][0]) and clone[7][1] == ds[7][1]
    )
    assert len(pickle.dumps(dm.dataset("train", augment=True))) < 20_000
    loader = torch.utils.data.DataLoader(dm.dataset("val"), batch_size=8, num_workers=2)
    ys = torch.cat([y for _, y in loader])
    np.testing.assert_array_equal(ys.numpy(), dm.labels("val"))


def test_bytes_per_pixel_comes_from_the_store_and_the_arrays(data_root, tmp_path):
    import numpy as np

    from gastrodistill.data.base import TensorImageDataModule
    from gastrodistill.data.gastric import GastricPatchDataModule

    dm = GastricPatchDataModule(data_root, tmp_path / "s", patch_size=32, overlap=8, progress=False)
    dm.prepare_data()
    dm.setup()
    assert dm.bytes_per_pixel == np.dtype(dm.store.meta["dtype"]).itemsize == dm.store.patches.itemsize
    y = np.array([0, 1])
    for dtype, n in ((np.uint8, 1), (np.uint16, 2), (np.float32, 4)):
        x = np.zeros((2, 1, 4, 4), dtype)
        tdm = TensorImageDataModule({s: (x, y) for s in ("train", "val", "test")})
        assert tdm.array_bytes_per_pixel() == n
        assert tdm.bytes_per_pixel is None  # in-memory arrays: unknown origin, the config's value is used


def test_collections_report_the_bytes_of_their_files(tmp_path):
    import numpy as np

    from gastrodistill.data.collections import NpzDataModule

    y = np.arange(6) % 2
    for dtype, n in ((np.uint8, 1), (np.uint16, 2)):
        path = tmp_path / f"{n}.npz"
        np.savez(
            path,
            **{f"{s}_images": np.zeros((6, 4, 4), dtype) for s in ("train", "val", "test")},
            **{f"{s}_labels": y for s in ("train", "val", "test")},
        )
        dm = NpzDataModule(path=str(path))
        dm.setup()
        assert dm.bytes_per_pixel == n


def test_size_keys_written_as_text_are_read_as_numbers(make_dm, monkeypatch):
    """``${oc.env:...}`` and quoted YAML give strings; digits are the number they spell."""
    monkeypatch.setenv("GD_TEST_STORAGE", "24")
    dm = make_dm("data.storage_size=${oc.env:GD_TEST_STORAGE}", 'data.patch_size="40"', "data.overlap='10'")
    assert dm.storage_size == 24 and dm.spec.storage_size == 24 and dm.image_size == (24, 24)
    assert dm.spec.geometry.patch_size == 40 and dm.spec.geometry.overlap == 10


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        (
            "storage_size",
            True,
            "data.storage_size must be a positive whole number of pixels, got True (a boolean",
        ),
        (
            "storage_size",
            "abc",
            "data.storage_size must be a positive whole number of pixels, got 'abc' (text",
        ),
        ("patch_size", True, "data.patch_size must be a positive whole number of pixels, got True"),
        ("overlap", True, "data.overlap must be a whole number of pixels >= 0, got True"),
        ("overlap", 1.5, "data.overlap must be a whole number of pixels >= 0, got 1.5"),
    ],
)
def test_size_keys_refuse_booleans_text_and_fractions(data_root, tmp_path, key, value, expect):
    """``true`` was silently 1 px (a 1 px store, or an overlap of 1); the line names the key instead."""
    from gastrodistill.data.errors import DataInputError

    kwargs = {"patch_size": 32, "overlap": 8, "storage_size": 16, key: value}
    with pytest.raises(DataInputError) as info:
        GastricPatchDataModule(data_root, tmp_path / "stores", progress=False, **kwargs)
    assert str(info.value).startswith(expect) and f"e.g. data.{key}=" in str(info.value)


def test_the_split_follows_test_fraction_val_fraction_and_split_seed_not_seed(make_root, tmp_path):
    """Without a manifest split column, the patients are split by data.test_fraction, data.val_fraction
    and data.split_seed (mutants: the two fractions swapped; the split seeded by data.seed)."""
    from gastrodistill.data.manifest import load_manifest
    from gastrodistill.data.splits import assign_splits

    root = make_root("nosplit", with_split=False)
    patients = load_manifest(root).patients()  # 4 gastritis, 4 non-gastritis patients

    def split_of(**kwargs):
        dm = GastricPatchDataModule(
            root, tmp_path / "stores", patch_size=32, overlap=8, storage_size=16, progress=False, **kwargs
        )
        dm.prepare_data()
        dm.setup()
        return {p: s for s in ("train", "val", "test") for p in dm.patient_labels(s)}

    got = split_of(test_fraction=0.5, val_fraction=0.2, split_seed=3, seed=0)
    # by hand: half of each diagnosis's 4 patients in test, then one of its 2 others (at least one) in val
    assert Counter(got.values()) == {"test": 4, "val": 2, "train": 2}
    assert got == assign_splits(patients, None, test_fraction=0.5, val_fraction=0.2, seed=3)
    assert got != assign_splits(patients, None, test_fraction=0.5, val_fraction=0.2, seed=0)  # seeds differ
    assert split_of(test_fraction=0.5, val_fraction=0.2, split_seed=3, seed=5) == got


def test_the_mask_threshold_decides_which_patches_are_irrelevant(make_dm, data_root):
    """data.mask_threshold reaches the labelling (a mutant kept 0.5): the irrelevant patches of every split
    are those whose mask holds less than 0.9 stomach, counted here from the mask files."""
    import csv

    from PIL import Image

    from gastrodistill.data.tiling import tile_positions

    with open(data_root / "manifest.csv") as f:
        masks = [np.asarray(Image.open(data_root / row["mask"])) != 0 for row in csv.DictReader(f)]
    fractions = np.array(
        [[m[r : r + 32, c : c + 32].mean() for r, c in tile_positions(100, 90, 32, 8)] for m in masks]
    )
    assert (fractions < 0.9).sum() != (fractions < 0.5).sum()  # the threshold matters on these masks
    dm = make_dm("data.mask_threshold=0.9")
    dm.prepare_data()
    dm.setup()
    assert sum(int((dm.labels(s) == 0).sum()) for s in ("train", "val", "test")) == (fractions < 0.9).sum()


def test_a_whitening_filter_larger_than_the_stored_patches_is_refused_when_the_module_is_built(
    data_root, tmp_path
):
    """data.zca.kernel_size above data.storage_size stops the study when the data module is built, before
    any store is (a mutant dropped the check)."""
    from gastrodistill.data.zca import LocalZCA, ZCAError

    with pytest.raises(ZCAError) as info:
        GastricPatchDataModule(
            data_root,
            tmp_path / "s",
            patch_size=32,
            overlap=8,
            storage_size=16,
            zca=LocalZCA(17),
            progress=False,
        )
    assert str(info.value) == (
        "data.zca.kernel_size = 17 px is larger than the 16x16 px images (data.storage_size): use at most 15"
    )
    assert not (tmp_path / "s").exists()


def test_evaluation_batches_labels_and_the_patients_a_plain_call_walks(dm, monkeypatch):
    """The validation and test loaders take data.eval_batch_size (64) patches a batch, training
    data.batch_size (16); labels are int64; iter_patients() walks the test patients (mutants: the batch
    size, the dtype, the default split); patches of one patient in two runs are refused."""
    assert len(next(iter(dm.train_dataloader()))[1]) == 16
    assert len(next(iter(dm.val_dataloader()))[1]) == 64 == len(next(iter(dm.test_dataloader()))[1])
    assert all(dm.labels(s).dtype == np.int64 for s in ("train", "val", "test"))
    assert [pid for pid, _ in dm.iter_patients()] == ["C1", "D1"]
    monkeypatch.setattr(dm, "patient_ids", lambda split: np.array(["a", "a", "b", "a"]))
    with pytest.raises(StoreError, match="a patient's patches are not contiguous; rebuild the store"):
        dm.patient_slices("test")


def test_a_split_without_patients_has_no_patient_slices(make_dm):
    """data.val_fraction=0 leaves the validation split empty: no patient, no slice (a mutant indexed the
    first patient id of the empty split)."""
    d = make_dm("data.val_fraction=0")
    d.prepare_data()
    d.setup()
    assert len(d.labels("val")) == 0
    assert d.patient_slices("val") == {} and list(d.iter_patients("val")) == []


class _SeedEcho:
    """An augmentation that fills the image with the next draw of its seeded generator."""

    def __init__(self):
        self.rng = np.random.default_rng(0)

    def set_random_seed(self, seed):
        self.rng = np.random.default_rng(seed)

    def __call__(self, image):
        return {"image": np.full_like(image, self.rng.random())}


def test_each_dataloader_worker_reseeds_the_augmentation_from_its_own_seed(dm):
    """Two workers draw different augmentations (mutants: no reseeding in a worker, or one seed for every
    worker, gave both the same draws)."""
    from gastrodistill.data.gastric import StoreArrayDataset

    sl = dm.store.split_slice("train")
    ds = StoreArrayDataset(dm.store_path, sl.start, sl.stop, dm.labels("train"), [0.0], [1.0], _SeedEcho())
    loader = torch.utils.data.DataLoader(ds, batch_size=1, num_workers=2)
    draws = []
    for x, _ in loader:  # batch 0 from worker 0, batch 1 from worker 1
        draws.append(x.flatten().unique().tolist())
        if len(draws) == 2:
            break
    assert all(len(d) == 1 for d in draws) and draws[0] != draws[1]
