"""Patch store: contents checked against independent recomputation, caching, atomicity, privacy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from gastric_testdata import make_data, stomach_mask, write_dicom, write_manifest, write_png

import gastrodistill.data.patch_store as ps
from gastrodistill.data.errors import ManifestError, StoreError
from gastrodistill.data.patch_store import PatchStore, StoreSpec, build_store, find_store, hist_stats
from gastrodistill.data.readers import read_image, read_mask
from gastrodistill.data.tiling import Geometry, tile_positions
from gastrodistill.utils import atomic


def spec_for(root, store_root, **kw) -> StoreSpec:
    return StoreSpec(root, store_root, kw.pop("geometry", Geometry(32, 8)), **kw)


def test_store_contents_match_an_independent_recomputation(data_root, tmp_path):
    path = build_store(spec_for(data_root, tmp_path / "stores"), progress=False)
    store = PatchStore(path)
    assert store.patches.shape == (16 * 16, 32, 32) and store.patches.dtype == np.uint8
    assert isinstance(store.patches, np.memmap)
    idx = store.index
    assert list(idx.columns) == ps.INDEX_COLUMNS
    for (image, patient), group in idx.groupby(["image", "patient"], sort=False):
        pixels = read_image(data_root / image)
        mask = read_mask(data_root / image.replace("images/", "masks/"))
        diagnosis = group["diagnosis"].iloc[0]
        assert patient == image.split("/")[1].split("_")[0]
        assert [(r, c) for r, c in zip(group["row"], group["col"], strict=True)] == tile_positions(
            100, 90, 32, 8
        )
        for pid, r, c, label in zip(
            group["patch_id"], group["row"], group["col"], group["label"], strict=True
        ):
            np.testing.assert_array_equal(store.patches[pid], np.rint(pixels[r : r + 32, c : c + 32] * 255))
            frac = mask[r : r + 32, c : c + 32].sum() / 32**2
            assert label == (0 if frac < 0.5 else (2 if diagnosis == "gastritis" else 1))
    # splits and patients are contiguous, in train | val | test order
    order = {"train": 0, "val": 1, "test": 2}
    assert (np.diff(idx["split"].map(order).to_numpy()) >= 0).all()
    for split in ("train", "val", "test"):
        part = store.split_index(split)
        assert (part["split"] == split).all() and len(part) == (idx["split"] == split).sum() > 0
        starts = (part["patient"] != part["patient"].shift()).sum()
        assert starts == part["patient"].nunique()
    assert set(store.split_index("test")["patient"]) == {"C1", "D1"}
    assert set(store.split_index("val")["patient"]) <= {"A1", "A2", "A3", "B1", "B2", "B3"}
    # metadata counts agree with the index
    for split in ("train", "val", "test"):
        counts = store.split_index(split)["label"].value_counts()
        assert store.meta["counts"][split] == {
            name: int(counts.get(k, 0)) for k, name in enumerate(["irrelevant", "non-gastritis", "gastritis"])
        }
    assert {k for k, v in store.meta["counts"]["train"].items() if v > 0} == {
        "irrelevant",
        "non-gastritis",
        "gastritis",
    }
    train = np.asarray(store.patches[store.split_slice("train")], dtype=np.float64) / 255
    mean, std = hist_stats(store.meta["pixel_histograms"]["train"])
    assert mean == pytest.approx(train.mean(), abs=1e-12) and std == pytest.approx(train.std(), abs=1e-9)


def test_storage_size_uses_area_resampling(data_root, tmp_path):
    store = PatchStore(build_store(spec_for(data_root, tmp_path / "s", storage_size=16), progress=False))
    assert store.patches.shape == (256, 16, 16) and store.meta["resampling"] == "cv2.INTER_AREA"
    row = store.index.iloc[37]
    crop = read_image(data_root / row["image"])[row["row"] : row["row"] + 32, row["col"] : row["col"] + 32]
    block_mean = crop.reshape(16, 2, 16, 2).mean(axis=(1, 3))  # area resampling by 2 = 2x2 block mean
    assert np.abs(store.patches[37].astype(int) - np.rint(block_mean * 255)).max() <= 1


def test_meta_and_log_hold_no_path_or_patient_id(data_root, tmp_path, caplog):
    with caplog.at_level("DEBUG", logger=ps.__name__):
        path = build_store(spec_for(data_root, tmp_path / "s"), progress=False)
        assert build_store(spec_for(data_root, tmp_path / "s"), progress=False) == path  # up to date
    text = (path / "meta.json").read_text()
    for secret in ("images/", "masks/", str(data_root), '"A1"', '"C1"', "A1_0"):
        assert secret not in text
    # the job log names the store by its folder under data.store_root, never by a local path
    assert f"patch store built: {path.name} under data.store_root" in caplog.text
    assert f"patch store up to date: {path.name} under data.store_root" in caplog.text
    assert str(tmp_path) not in caplog.text and "A1_0" not in caplog.text


def test_rebuild_skipped_when_unchanged_and_done_when_inputs_change(data_root, tmp_path, monkeypatch):
    spec = spec_for(data_root, tmp_path / "s")
    first = build_store(spec, progress=False)
    stamp = (first / "meta.json").stat().st_mtime_ns

    def no_read(*_a, **_k):
        raise AssertionError("an up-to-date store must not be rebuilt")

    monkeypatch.setattr(ps, "read_image", no_read)
    assert build_store(spec, progress=False) == first
    assert (first / "meta.json").stat().st_mtime_ns == stamp
    assert find_store(spec) == first
    monkeypatch.undo()

    # other geometry / threshold / storage size -> another store
    assert build_store(spec_for(data_root, tmp_path / "s", geometry=Geometry(32, 4)), progress=False) != first
    assert build_store(spec_for(data_root, tmp_path / "s", mask_threshold=0.2), progress=False) != first
    # a changed image (same size, same mtime granularity aside) -> another store with another content hash
    img = data_root / "images" / "B2_1.png"
    write_png(img, np.zeros((100, 90), np.uint16))
    assert find_store(spec) is None
    second = build_store(spec, progress=False)
    assert second != first
    assert PatchStore(second).content_hash != PatchStore(first).content_hash
    # a changed mask changes labels -> another store, with another content hash
    write_png(data_root / "masks" / "B2_1.png", stomach_mask(100, 90, 999))
    third = build_store(spec, progress=False)
    assert third not in (first, second)
    assert PatchStore(third).content_hash != PatchStore(second).content_hash
    # other fractions -> other splits -> another store (the manifest has a split column: test_fraction
    # is not read, and changes nothing)
    other_val = build_store(spec_for(data_root, tmp_path / "s", val_fraction=0.5), progress=False)
    assert other_val != third and PatchStore(other_val).content_hash != PatchStore(third).content_hash
    assert build_store(spec_for(data_root, tmp_path / "s", test_fraction=0.5), progress=False) == third


def test_another_test_fraction_without_a_split_column_is_another_store(tmp_path):
    patients = {f"G{i}": ("gastritis", None) for i in range(5)} | {
        f"N{i}": ("non-gastritis", None) for i in range(5)
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1, with_split=False)
    a = build_store(spec_for(root, tmp_path / "s", test_fraction=0.2, split_seed=7), progress=False)
    b = build_store(spec_for(root, tmp_path / "s", test_fraction=0.4, split_seed=7), progress=False)
    tests = [PatchStore(p).split_index("test")["patient"].nunique() for p in (a, b)]
    assert a != b and tests == [2, 4]  # round(0.2 x 5) and round(0.4 x 5) patients of each diagnosis
    assert PatchStore(a).content_hash != PatchStore(b).content_hash


def test_patch_labels_csv_reaches_the_store_and_its_counts(data_root, tmp_path):
    """Labels by hand win over the mask rule in the built store: one stomach patch made irrelevant, one
    background patch given the diagnosis; every other patch keeps the mask's label."""
    auto = PatchStore(build_store(spec_for(data_root, tmp_path / "a"), progress=False)).index
    a1 = auto[auto.image == "images/A1_0.png"]
    inside = a1[a1.label != 0].iloc[0]
    outside = a1[a1.label == 0].iloc[0]
    diagnosis_label = 2 if inside.diagnosis == "gastritis" else 1
    (data_root / "patch_labels.csv").write_text(
        "image,row,col,label\n"
        f"images/A1_0.png,{inside.row},{inside.col},irrelevant\n"
        f"images/A1_0.png,{outside.row},{outside.col},{diagnosis_label}\n"
    )
    path = build_store(spec_for(data_root, tmp_path / "m"), progress=False)
    store = PatchStore(path)
    manual = store.index
    assert manual.drop(columns="label").equals(auto.drop(columns="label"))
    changed = manual.label != auto.label
    assert sorted(manual.patch_id[changed]) == sorted([inside.patch_id, outside.patch_id])
    assert manual.label[inside.patch_id] == 0 and manual.label[outside.patch_id] == diagnosis_label
    meta = json.loads((path / "meta.json").read_text())
    for split in ("train", "val", "test"):
        counts = np.bincount(manual[manual.split == split].label, minlength=3).tolist()
        assert list(meta["counts"][split].values()) == counts, split  # by class, in class order


def test_interrupted_build_leaves_no_store_that_looks_complete(data_root, tmp_path, monkeypatch):
    spec = spec_for(data_root, tmp_path / "s")
    calls = {"n": 0}

    def failing_reader(path, bit_depth=None):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed midway")
        return read_image(path, bit_depth=bit_depth)

    monkeypatch.setattr(ps, "read_image", failing_reader)
    with pytest.raises(RuntimeError, match="killed midway"):
        build_store(spec, progress=False)
    assert calls["n"] == 3
    assert find_store(spec) is None
    leftovers = [p.name for p in (tmp_path / "s").iterdir() if p.is_dir()]
    assert leftovers == [], leftovers
    monkeypatch.undo()
    path = build_store(spec, progress=False)
    assert PatchStore(path).patches.shape[0] == 256


def test_leftover_of_a_killed_build_is_removed_and_never_opened(data_root, tmp_path):
    spec = spec_for(data_root, tmp_path / "s")
    name = build_store(spec, progress=False).name
    import shutil

    shutil.rmtree(tmp_path / "s" / name)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # atomic_dir's temporary name: .<target>.<host>-<pid>.<random>.tmp (utils.atomic)
    stale = tmp_path / "s" / f".{name}.{atomic._host()}-{dead.pid}.abc123.tmp"
    stale.mkdir()
    np.lib.format.open_memmap(stale / ps.PATCHES_FILE, mode="w+", dtype=np.uint8, shape=(256, 32, 32))
    with pytest.raises(StoreError, match="not a complete patch store"):
        PatchStore(stale)
    assert find_store(spec) is None
    build_store(spec, progress=False)
    assert not stale.exists()


def test_seeded_split_when_manifest_has_none(tmp_path):
    patients = {f"G{i}": ("gastritis", None) for i in range(5)} | {
        f"N{i}": ("non-gastritis", None) for i in range(5)
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1, with_split=False)
    spec = spec_for(root, tmp_path / "s", test_fraction=0.4, val_fraction=0.34, split_seed=7)
    idx = PatchStore(build_store(spec, progress=False)).index
    per_patient = idx.groupby("patient")["split"].nunique()
    assert (per_patient == 1).all()
    split_of = idx.groupby("patient")["split"].first()
    diag_of = idx.groupby("patient")["diagnosis"].first()
    table = pd.crosstab(diag_of, split_of)
    assert table.loc["gastritis"].to_dict() == {"test": 2, "train": 2, "val": 1}
    assert table.loc["non-gastritis"].to_dict() == {"test": 2, "train": 2, "val": 1}
    other = PatchStore(
        build_store(
            spec_for(root, tmp_path / "s", test_fraction=0.4, val_fraction=0.34, split_seed=8), progress=False
        )
    ).index
    assert not other.groupby("patient")["split"].first().equals(split_of)


def test_dicom_headers_never_reach_the_store(tmp_path):
    root = make_data(tmp_path / "d", images_per_patient=1)
    manifest = (root / "manifest.csv").read_text()
    rng = np.random.default_rng(0)
    for png in sorted((root / "images").glob("*.png")):
        write_dicom(
            png.with_suffix(".dcm"),
            rng.integers(0, 4096, (100, 90)).astype(np.uint16),
            PatientName="Secretname^Patient",
            PatientID="HOSP-998877",
            InstitutionName="Clinic Zeta",
        )
        png.unlink()
    (root / "manifest.csv").write_text(re.sub(r"^(images/[^,]+)\.png,", r"\1.dcm,", manifest, flags=re.M))
    path = build_store(spec_for(root, tmp_path / "s"), progress=False)
    assert PatchStore(path).patches.shape[0] == 8 * 16
    for f in path.iterdir():
        blob = f.read_bytes()
        for secret in (b"Secretname", b"HOSP-998877", b"Clinic Zeta"):
            assert secret not in blob, (f.name, secret)


def test_bad_store_settings_are_clear_errors(data_root, tmp_path):
    with pytest.raises(ValueError, match="mask_threshold"):
        spec_for(data_root, tmp_path, mask_threshold=1.5)
    with pytest.raises(ValueError, match="storage_size"):
        spec_for(data_root, tmp_path, storage_size=0)
    with pytest.raises(ValueError, match="val_fraction"):
        spec_for(data_root, tmp_path, val_fraction=1.0)
    os.makedirs(tmp_path / "empty", exist_ok=True)
    with pytest.raises(StoreError, match="not a complete patch store"):
        PatchStore(tmp_path / "empty")
    (tmp_path / "empty" / "meta.json").write_text(json.dumps({"schema_version": 0}))
    with pytest.raises(StoreError):
        PatchStore(tmp_path / "empty")


def test_histograms_in_chunks_equal_one_bincount_per_split(data_root, tmp_path, monkeypatch):
    """The build counts pixels in chunks (np.bincount's int64 copy of one image's patches at a large
    storage size would not fit); an odd chunk size that splits patches gives the whole-split counts."""
    monkeypatch.setattr(ps, "_HIST_CHUNK", 997)
    store = PatchStore(build_store(spec_for(data_root, tmp_path / "s"), progress=False))
    for split in ("train", "val", "test"):
        expected = np.bincount(np.asarray(store.patches[store.split_slice(split)]).ravel(), minlength=256)
        assert store.meta["pixel_histograms"][split] == expected.tolist()


def test_a_store_the_disk_or_memory_cannot_hold_is_refused_before_anything_is_written(
    data_root, tmp_path, monkeypatch, caplog
):
    """256 patches stored at 64 px (upsampled 2x from 32 px) take 256 x 64 x 64 bytes = 1 MiB on disk and
    one image's 16 patches 64 KiB in memory: one byte less of either is refused, naming data.storage_size
    and the upsampling, with no store folder made; with room, the build goes on with a warning."""
    import collections

    need_disk, need_memory = 256 * 64 * 64, 16 * 64 * 64
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(ps.shutil, "disk_usage", lambda path: usage(10 * need_disk, 0, need_disk - 1))
    stores = tmp_path / "stores"
    with pytest.raises(StoreError) as info:
        build_store(spec_for(data_root, stores, storage_size=64), progress=False)
    text = str(info.value)
    assert (
        text.startswith("data.storage_size=64: 256 patches of 64x64 px need 1.0 MiB of disk")
        and "\n" not in text
    )
    assert f"free under {tmp_path}" in text and "upsampling of data.patch_size=32 px by 2x" in text
    assert not stores.exists()
    monkeypatch.setattr(ps.shutil, "disk_usage", lambda path: usage(10 * need_disk, 0, need_disk))
    monkeypatch.setattr(ps, "available_memory", lambda: need_memory - 1)
    with pytest.raises(StoreError, match=r"the 16 patches of one image at 64x64 px need 64\.0 KiB of memory"):
        build_store(spec_for(data_root, stores, storage_size=64), progress=False)
    assert not stores.exists()
    monkeypatch.setattr(ps, "available_memory", lambda: need_memory)
    with caplog.at_level("WARNING", logger=ps.__name__):
        path = build_store(spec_for(data_root, stores, storage_size=64), progress=False)
    assert PatchStore(path).patches.shape == (256, 64, 64)
    assert "every patch is upsampled 2x, which adds no detail, and the store takes 1.0 MiB" in caplog.text


def test_a_pickled_store_reopens_its_patches_by_path_instead_of_copying_them(data_root, tmp_path):
    """Worker processes receive the data module pickled: the store travels without its pixels."""
    import pickle

    store = PatchStore(build_store(spec_for(data_root, tmp_path / "s", storage_size=16), progress=False))
    blob = pickle.dumps(store)
    assert len(blob) < store.patches.nbytes / 4
    again = pickle.loads(blob)
    assert isinstance(again.patches, np.memmap)
    np.testing.assert_array_equal(np.asarray(again.patches), np.asarray(store.patches))
    assert again.content_hash == store.content_hash


def _empty_class_message(root, stores) -> str:
    with pytest.raises(ManifestError) as info:
        build_store(spec_for(root, stores), progress=False)
    assert not stores.exists()  # refused before the store folder is made
    return str(info.value)


def test_a_train_split_without_a_diagnosis_is_refused_naming_split_class_and_column(tmp_path):
    """Every training patient non-gastritis: a store (and a distilled set) with a class that has no
    training patch would be built silently; it is refused, naming the split, the class and the column."""
    patients = {f"N{i}": ("non-gastritis", "train") for i in range(4)} | {
        "C1": ("gastritis", "test"),
        "D1": ("non-gastritis", "test"),
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1)
    text = _empty_class_message(root, tmp_path / "stores")
    assert "split 'train' has no patch of class 'gastritis'" in text
    assert "no train patient has diagnosis 'gastritis'" in text and "diagnosis column" in text
    assert "split 'test'" not in text and str(root / "manifest.csv") in text


def test_all_zero_masks_are_refused_naming_the_masks(tmp_path):
    """Masks that are zero everywhere mark every patch irrelevant: no diagnosis class has a patch."""
    root = make_data(tmp_path / "d", images_per_patient=1)
    for mask in (root / "masks").glob("*.png"):
        write_png(mask, np.zeros((100, 90), np.uint8))
    text = _empty_class_message(root, tmp_path / "stores")
    for split in ("train", "test"):
        for name in ("non-gastritis", "gastritis"):
            assert f"split {split!r} has no patch of class {name!r}" in text
    assert "check those masks (an all-zero mask marks every patch irrelevant)" in text
    assert "class 'irrelevant'" not in text


def test_masks_covering_every_patch_leave_no_irrelevant_class_and_are_refused(tmp_path):
    root = make_data(tmp_path / "d", images_per_patient=1)
    for mask in (root / "masks").glob("*.png"):
        write_png(mask, np.full((100, 90), 255, np.uint8))
    text = _empty_class_message(root, tmp_path / "stores")
    assert "split 'train' has no patch of class 'irrelevant'" in text and "check the masks" in text


def test_a_validation_split_without_a_class_only_warns(tmp_path, caplog):
    """Validation is carved from few training patients: one without a diagnosis is built, with a warning."""
    patients = {
        "A1": ("gastritis", "train"),
        "A2": ("gastritis", "train"),
        "B1": ("non-gastritis", "train"),
        "C1": ("gastritis", "test"),
        "D1": ("non-gastritis", "test"),
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1)
    with caplog.at_level("WARNING", logger=ps.__name__):
        store = PatchStore(build_store(spec_for(root, tmp_path / "s", val_fraction=0.5), progress=False))
    assert store.meta["counts"]["val"]["non-gastritis"] == 0 and store.meta["counts"]["val"]["gastritis"] > 0
    assert "split 'val' has no patch of class 'non-gastritis'" in caplog.text


def test_a_store_with_an_empty_class_built_earlier_is_not_reused(tmp_path, monkeypatch):
    patients = {f"N{i}": ("non-gastritis", "train") for i in range(2)} | {
        "C1": ("gastritis", "test"),
        "D1": ("non-gastritis", "test"),
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1)
    with monkeypatch.context() as m:  # as a version without the check built it
        m.setattr(ps, "check_classes", lambda *a: None)
        build_store(spec_for(root, tmp_path / "s"), progress=False)
    with pytest.raises(ManifestError, match="split 'train' has no patch of class 'gastritis'"):
        build_store(spec_for(root, tmp_path / "s"), progress=False)


@pytest.mark.parametrize("how", ["copy", "symlink"])
def test_the_same_image_in_train_and_test_is_refused_naming_both_rows(tmp_path, how):
    """A test patient's image that is a copy of (or a link to) a training image: different paths and
    patients, so the manifest's path check passes; the content hashes give it away."""
    root = make_data(tmp_path / "d", images_per_patient=1)
    copy = root / "images" / "C1_0.png"  # test patient C1 (line 8); A1's image is line 2
    copy.unlink()
    if how == "copy":
        copy.write_bytes((root / "images" / "A1_0.png").read_bytes())
    else:
        copy.symlink_to(root / "images" / "A1_0.png")
    stores = tmp_path / "stores"
    with pytest.raises(ManifestError) as info:
        build_store(spec_for(root, stores), progress=False)
    text = str(info.value)
    assert "line 2 'images/A1_0.png' (train, patient 'A1')" in text
    assert "line 8 'images/C1_0.png' (test, patient 'C1')" in text
    assert "is in splits ['train', 'test']" in text and "keep one of these rows" in text
    assert not stores.exists()


def test_the_same_image_under_two_patients_of_one_split_is_refused(tmp_path):
    root = make_data(tmp_path / "d", images_per_patient=1)
    (root / "images" / "B1_0.png").write_bytes((root / "images" / "A1_0.png").read_bytes())  # both train
    with pytest.raises(ManifestError, match=r"is listed under two patients") as info:
        build_store(spec_for(root, tmp_path / "stores", val_fraction=0.0), progress=False)
    assert "line 2 'images/A1_0.png'" in str(info.value) and "line 5 'images/B1_0.png'" in str(info.value)


@pytest.mark.parametrize(
    ("copies", "said"),
    [
        (1, "lines 2 and 3: the same image content is listed twice for one patient; it counts twice"),
        (2, "lines 2, 3 and 4: the same image content is listed 3 times for one patient; it counts 3 times"),
    ],
)
def test_the_same_image_twice_for_one_patient_only_warns_by_line_numbers(tmp_path, caplog, copies, said):
    """The warning reaches the job's log file, so it names the manifest's lines, not the image's path or the
    patient's id (a helper found both in ``build_patches.log`` and ``reproduce.log``). Three rows said
    "lines 2 and 3 and 4 ... listed twice"."""
    root = make_data(tmp_path / "d", images_per_patient=3)
    for k in range(1, copies + 1):
        (root / "images" / f"A1_{k}.png").write_bytes((root / "images" / "A1_0.png").read_bytes())
    with caplog.at_level("WARNING", logger=ps.__name__):
        build_store(spec_for(root, tmp_path / "stores"), progress=False)
    assert f"manifest.csv {said}" in caplog.text
    assert "A1" not in caplog.text and "images/" not in caplog.text


def test_new_content_with_the_old_size_and_mtime_is_not_taken_for_the_old(data_root, tmp_path):
    """``cp -p`` or ``rsync -t`` put an old modification time on new content: a breaker inverted an image
    in place, kept its size and set its mtime back, and the stale store was reused ("patch store up to
    date"); the hash cache now keys on the change time too, which no tool sets back."""
    import os

    spec = spec_for(data_root, tmp_path / "s")
    first = build_store(spec, progress=False)
    img = data_root / "images" / "B2_1.png"
    st = img.stat()
    data = bytearray(img.read_bytes())
    data[-20] ^= 0xFF  # a byte inside the last chunk's data: the size stays, the content (CRC aside) not
    img.write_bytes(bytes(data))
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert img.stat().st_size == st.st_size and img.stat().st_mtime_ns == st.st_mtime_ns
    assert find_store(spec) != first


def _dicom_data(root, header_ids: dict[str, dict[str, str]]):
    """make_data's eight patients (one image each: A1-A3, B1-B3 train; C1, D1 test) as DICOM files whose
    headers carry ``header_ids[patient]`` (PatientID, IssuerOfPatientID)."""
    from gastric_testdata import HEIGHT, WIDTH, image_pixels, write_manifest

    make_data(root, images_per_patient=1)
    rows = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False).to_dict("records")
    for i, row in enumerate(rows):
        (root / row["image"]).unlink()
        row["image"] = row["image"].replace(".png", ".dcm")
        raw = image_pixels(HEIGHT, WIDTH, i) >> 4  # 12 bits stored
        write_dicom(root / row["image"], raw, **header_ids[row["patient_id"]])
    write_manifest(root, rows, list(rows[0]))
    return root


def test_one_person_under_two_patient_ids_in_train_and_test_is_warned_about(tmp_path, caplog):
    """A patient registered again (or given one pseudonym per exam) under another manifest id in the test
    split: every file check passes (different files, different ids), but the DICOM headers name one person
    (PatientID, issuer, name, birth date). Said by manifest lines in the job's log, never an id or a header
    value; not refused, since an id shared by different people looks the same. Within one split, with
    another issuer or another name, or for a placeholder most patients share, nothing is said."""
    patients = ["A1", "A2", "A3", "B1", "B2", "B3", "C1", "D1"]
    ids = {p: {"PatientID": f"MRN-{k:05d}"} for k, p in enumerate(patients)}  # all named Doe^Jane
    root = _dicom_data(tmp_path / "d", {**ids, "C1": ids["A1"]})
    with caplog.at_level("WARNING", logger=ps.__name__):
        build_store(spec_for(root, tmp_path / "stores", val_fraction=0.0), progress=False)
    (said,) = [r.getMessage() for r in caplog.records if "DICOM headers name one patient" in r.getMessage()]
    assert said.startswith("manifest.csv lines 2, 8: these images' DICOM headers name one patient")
    assert "listed under 2 patient ids in splits ['train', 'test']" in said
    assert "give all of that person's rows one patient_id" in said
    assert "MRN" not in said and "A1" not in said and "Doe" not in said

    for name, header_ids in [
        ("one split", {**ids, "B1": ids["A1"]}),  # A1 and B1: both train
        ("another issuer", {**ids, "C1": {**ids["A1"], "IssuerOfPatientID": "OTHER"}}),
        ("another person", {**ids, "C1": {**ids["A1"], "PatientName": "Roe^Richard"}}),  # a site-local number
        ("placeholder", {p: {"PatientID": "ANONYMOUS"} for p in ids}),  # 8 patients: > 5, not a person
    ]:
        caplog.clear()
        root = _dicom_data(tmp_path / name, header_ids)
        with caplog.at_level("WARNING", logger=ps.__name__):
            build_store(spec_for(root, tmp_path / f"stores-{name}", val_fraction=0.0), progress=False)
        assert not [r for r in caplog.records if "DICOM headers name one patient" in r.getMessage()], name


def test_a_manifest_with_backslashes_builds_the_store_of_its_slashed_twin(data_root, tmp_path):
    """A manifest exported on Windows (``images\\A1_0.png``) was refused file by file ("not found"); it now
    builds the same store as with ``/``: the same index (paths written with ``/``) and content. Only the
    manifest file's own hash, and so the store's key, differ."""
    import csv

    slashed = PatchStore(build_store(spec_for(data_root, tmp_path / "a"), progress=False))
    with open(data_root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["image"], r["mask"] = r["image"].replace("/", "\\"), r["mask"].replace("/", "\\")
    write_manifest(data_root, rows)
    assert "images\\A1_0.png" in (data_root / "manifest.csv").read_text()
    backslashed = PatchStore(build_store(spec_for(data_root, tmp_path / "b"), progress=False))
    pd.testing.assert_frame_equal(backslashed.index, slashed.index)
    assert backslashed.index["image"].iloc[0] == "images/A1_0.png"
    assert backslashed.content_hash == slashed.content_hash
    np.testing.assert_array_equal(np.asarray(backslashed.patches), np.asarray(slashed.patches))
    mine, theirs = backslashed.meta["sources"], slashed.meta["sources"]
    assert {k: v for k, v in mine.items() if k != "manifest"} == {
        k: v for k, v in theirs.items() if k != "manifest"
    }
