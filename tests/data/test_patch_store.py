"""Patch store: contents checked against independent recomputation, caching, atomicity, privacy."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest
from _atomic_state import dead_pid
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
    # the store folder was made for this build and holds nothing else: removed with the partial store
    assert not (tmp_path / "s").exists()
    monkeypatch.undo()
    path = build_store(spec, progress=False)
    assert PatchStore(path).patches.shape[0] == 256


def test_leftover_of_a_killed_build_is_removed_and_never_opened(data_root, tmp_path):
    spec = spec_for(data_root, tmp_path / "s")
    name = build_store(spec, progress=False).name
    import shutil

    shutil.rmtree(tmp_path / "s" / name)
    dead_writer = dead_pid()
    # atomic_dir's temporary name: .<target>.<host>-<pid>.<random>.tmp (utils.atomic)
    stale = tmp_path / "s" / f".{name}.{atomic._host()}-{dead_writer}.abc123.tmp"
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
    assert (
        "split 'val' has no patch of class 'non-gastritis': no val patient has diagnosis 'non-gastritis' "
        "(validation takes data.val_fraction of the training patients of each diagnosis" in caplog.text
    )


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


# ---- mutation review of data/patch_store.py -------------------------------------------------------------
def test_store_settings_at_their_limits_are_accepted_and_beyond_them_refused(tmp_path):
    """The ends of each range are allowed (bit depth 1 and 16, threshold 0 and 1, fraction 0) and the
    next value out is refused naming the key; test_fraction is checked like val_fraction."""
    for ok in ({"bit_depth": 1}, {"bit_depth": 16}, {"mask_threshold": 0.0}, {"mask_threshold": 1.0}):
        spec_for(tmp_path, tmp_path, **ok)
    assert spec_for(tmp_path, tmp_path, bit_depth="12").bit_depth == 12  # a quoted number: its integer
    assert spec_for(tmp_path, tmp_path, bit_depth=12.0).bit_depth == 12  # a whole float, as before
    for bad, said in [
        ({"bit_depth": 0}, "data.bit_depth=0 must be between 1 and 16"),
        ({"bit_depth": 17}, "data.bit_depth=17 must be between 1 and 16"),
        ({"bit_depth": "twelve"}, "data.bit_depth=twelve must be between 1 and 16"),  # was int()'s words
        ({"bit_depth": 12.5}, "data.bit_depth=12.5 must be between 1 and 16"),  # was taken as 12
        ({"bit_depth": True}, "data.bit_depth=True must be between 1 and 16"),
        ({"bit_depth": "²"}, "data.bit_depth=² must be between 1 and 16"),  # a digit, not a decimal
        ({"mask_threshold": -0.1}, r"data.mask_threshold=-0.1 must be in \[0, 1\]"),
        ({"test_fraction": 1.0}, r"data.test_fraction=1.0 must be in \[0, 1\)"),
        ({"test_fraction": -0.1}, r"data.test_fraction=-0.1 must be in \[0, 1\)"),
    ]:
        with pytest.raises(StoreError, match=said):
            spec_for(tmp_path, tmp_path, **bad)


def test_the_hash_cache_holds_each_sources_sha256_and_spares_rereading_them(data_root, tmp_path, monkeypatch):
    """The cache under data.store_root maps each image and mask (resolved path) to [size, mtime, sha256,
    ctime] of the file (hashlib's digest); the next run reads none of them, an entry of an earlier
    version's three items is hashed again, and a run on a missing store root leaves nothing behind."""
    import hashlib

    assert find_store(spec_for(data_root, tmp_path / "none")) is None
    assert not (tmp_path / "none").exists()  # no cache written into a folder that does not exist
    spec = spec_for(data_root, tmp_path / "s")
    path = build_store(spec, progress=False)
    cache = json.loads((tmp_path / "s" / ps.HASH_CACHE_FILE).read_text())
    files = sorted((data_root / "images").glob("*.png")) + sorted((data_root / "masks").glob("*.png"))
    assert sorted(cache) == sorted(str(f.resolve()) for f in files)
    for f in files:
        st = f.stat()
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        assert cache[str(f.resolve())] == [st.st_size, st.st_mtime_ns, digest, st.st_ctime_ns]
    read = []
    real = ps.sha256_file
    monkeypatch.setattr(ps, "sha256_file", lambda p, *a: read.append(str(p)) or real(p, *a))
    assert find_store(spec) == path
    assert read == [str(data_root / "manifest.csv")]  # the manifest itself, no image or mask
    old = {k: v[:3] for k, v in cache.items()}  # as an earlier version wrote it, without the change time
    (tmp_path / "s" / ps.HASH_CACHE_FILE).write_text(json.dumps(old))
    read.clear()
    assert find_store(spec) == path
    assert len(read) == 1 + len(files)


def test_a_changed_patch_labels_csv_makes_another_store(data_root, tmp_path):
    """patch_labels.csv is not in the manifest's hash: its own sha256 is in the key, so a label changed by
    hand is not served from the store built with the earlier one."""
    import hashlib

    spec = spec_for(data_root, tmp_path / "s")
    auto = PatchStore(build_store(spec, progress=False)).index
    row = auto[(auto.image == "images/A1_0.png") & (auto.label != 0)].iloc[0]
    labels = data_root / "patch_labels.csv"
    labels.write_text(f"image,row,col,label\nimages/A1_0.png,{row.row},{row.col},irrelevant\n")
    first = build_store(spec, progress=False)
    assert PatchStore(first).index.label[row.patch_id] == 0
    assert (
        PatchStore(first).meta["sources"]["patch_labels"] == hashlib.sha256(labels.read_bytes()).hexdigest()
    )
    labels.write_text(f"image,row,col,label\nimages/A1_0.png,{row.row},{row.col},{row.label}\n")
    assert find_store(spec) is None
    second = PatchStore(build_store(spec, progress=False))
    assert second.path != first and second.index.label[row.patch_id] == row.label


def test_one_person_in_two_splits_is_warned_about_up_to_five_manifest_patients(tmp_path, caplog):
    """MAX_MANIFEST_PATIENTS_PER_PERSON = 5: one DICOM PatientID under five manifest patients of train and
    test is still taken for a person (warned about); under six it is taken for a placeholder (silent)."""
    from gastrodistill.data.manifest import load_manifest

    patients = ["A1", "A2", "A3", "B1", "B2", "B3", "C1", "D1"]
    ids = {p: {"PatientID": f"MRN-{k:05d}"} for k, p in enumerate(patients)}
    for shared, warned in [
        (["A1", "A2", "A3", "B1", "C1"], True),
        (["A1", "A2", "A3", "B1", "C1", "D1"], False),
    ]:
        root = _dicom_data(tmp_path / str(len(shared)), {**ids, **{p: ids["A1"] for p in shared}})
        manifest = load_manifest(root)
        split_of = ps.patient_splits(spec_for(root, tmp_path / "s", val_fraction=0.0), manifest)
        caplog.clear()
        with caplog.at_level("WARNING", logger=ps.__name__):
            ps.check_dicom_patients(manifest, split_of)
        said = [r.getMessage() for r in caplog.records]
        if warned:
            lines = ", ".join(str(r.line) for r in manifest.records if r.patient_id in shared)
            assert said == [
                f"manifest.csv lines {lines}: these images' DICOM headers name one patient (the same "
                "PatientID, issuer, name and birth date) listed under 5 patient ids in splits ['train', "
                "'test']; if they are one person, give all of that person's rows one patient_id, or a model "
                "is evaluated on a patient it was trained on"
            ]
        else:
            assert said == []


def test_a_new_reader_version_makes_another_store(data_root, tmp_path, monkeypatch):
    """READER_VERSION is bumped when the same files read as other pixels: the store built by the earlier
    reader must not be reused."""
    spec = spec_for(data_root, tmp_path / "s")
    first = build_store(spec, progress=False)
    monkeypatch.setattr(ps, "READER_VERSION", ps.READER_VERSION + 1)
    assert find_store(spec) is None
    assert build_store(spec, progress=False) != first


def test_the_store_folder_is_named_by_geometry_storage_size_and_the_keys_first_16_characters(
    data_root, tmp_path
):
    path = build_store(spec_for(data_root, tmp_path / "s", storage_size=16), progress=False)
    key = json.loads((path / "meta.json").read_text())["key"]
    assert re.fullmatch(r"[0-9a-f]{64}", key) and path.name == f"p32-o8-s16-{key[:16]}"


def test_a_store_whose_files_disagree_with_its_meta_is_not_complete_and_is_rebuilt(data_root, tmp_path):
    """Each of: another schema version, another key, another recorded shape, no index.csv, a meta.json
    that is JSON but no object, an index.csv one row short or with patch ids out of order; such a store
    is refused when opened and built again by build_store."""
    import shutil

    spec = spec_for(data_root, tmp_path / "s")
    path = build_store(spec, progress=False)
    meta = json.loads((path / "meta.json").read_text())
    good = tmp_path / "good"
    shutil.copytree(path, good)
    index = (good / "index.csv").read_text().splitlines(keepends=True)
    first, second = index[1].split(",", 1), index[2].split(",", 1)
    spoil = {
        "schema": lambda p: (p / "meta.json").write_text(json.dumps({**meta, "schema_version": 0})),
        "key": lambda p: (p / "meta.json").write_text(json.dumps({**meta, "key": "0" * 64})),
        "shape": lambda p: (p / "meta.json").write_text(json.dumps({**meta, "shape": [255, 32, 32]})),
        "no index": lambda p: (p / "index.csv").unlink(),
        "list": lambda p: (p / "meta.json").write_text(json.dumps([meta])),
        "short index": lambda p: (p / "index.csv").write_text("".join(index[:-1])),
        "ids swapped": lambda p: (p / "index.csv").write_text(
            "".join([index[0], f"{second[0]},{first[1]}", f"{first[0]},{second[1]}", *index[3:]])
        ),
    }
    for what, how in spoil.items():
        shutil.rmtree(path)
        shutil.copytree(good, path)
        how(path)
        if what in ("short index", "ids swapped"):
            with pytest.raises(StoreError, match=r"index.csv does not match patches.npy; delete the store"):
                PatchStore(path)
            continue
        if what != "key":  # the key is checked against the one the data and settings give
            with pytest.raises(StoreError, match="not a complete patch store"):
                PatchStore(path)
        assert find_store(spec) is None, what
        assert build_store(spec, progress=False) == path
        assert PatchStore(path).meta == {**meta, "build_seconds": PatchStore(path).meta["build_seconds"]}, (
            what
        )


def test_hist_stats_of_an_empty_or_constant_histogram_are_finite_with_a_tiny_positive_std():
    """No pixels give mean 0 (not a division by zero); one grey level gives numpy's mean and a std that is
    numpy's 0 floored at 1e-6 (sqrt of 1e-12), small enough to change no real statistics."""
    assert hist_stats([0] * 256) == (0.0, pytest.approx(1e-6))
    hist = np.zeros(256, np.int64)
    hist[200] = 1000
    mean, std = hist_stats(hist)
    assert mean == pytest.approx(200 / 255, abs=1e-12) and std == pytest.approx(1e-6) and std > 0


@pytest.mark.parametrize("ids", [("007", "010", "020", "030"), ("NA", "N1", "C1", "D1")])
def test_patient_ids_that_look_like_numbers_or_missing_values_are_read_back_as_written(tmp_path, ids):
    """index.csv is read with every text column as str and no NA parsing: patients '007' and '010' stay so
    (not 7 and 10, as they would when every id looks like a number) and patient 'NA' stays 'NA' (not NaN)."""
    diagnoses = ("gastritis", "non-gastritis")
    patients = {p: (diagnoses[k % 2], "train" if k < 2 else "test") for k, p in enumerate(ids)}
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1)
    store = PatchStore(build_store(spec_for(root, tmp_path / "s", val_fraction=0.0), progress=False))
    assert store.split_index("train")["patient"].unique().tolist() == sorted(ids[:2])
    assert store.split_index("test")["patient"].unique().tolist() == sorted(ids[2:])
    assert store.split_index("train")["image"].unique().tolist() == [
        f"images/{p}_0.png" for p in sorted(ids[:2])
    ]


def test_an_unknown_split_name_is_a_value_error_naming_the_splits(data_root, tmp_path):
    store = PatchStore(build_store(spec_for(data_root, tmp_path / "s"), progress=False))
    with pytest.raises(
        ValueError, match=r"unknown split 'validation'; use one of \('train', 'val', 'test'\)"
    ):
        store.split_slice("validation")


def test_store_room_without_upsampling_says_nothing_and_unknown_memory_is_not_checked(
    tmp_path, monkeypatch, caplog
):
    """Storing at the patch size is no upsampling (no warning); a system that does not say how much memory
    is available (None) lets the build go on."""
    monkeypatch.setattr(ps, "available_memory", lambda: None)
    with caplog.at_level("WARNING", logger=ps.__name__):
        ps.check_store_room(tmp_path / "new", 10, 4, 32, 32)
    assert caplog.text == ""


def test_short_positioned_writes_are_continued_at_the_right_offset(data_root, tmp_path, monkeypatch):
    """os.pwrite may write fewer bytes than asked: the rest goes on after what was written. With writes of
    at most 1000 bytes the store holds the same patches as with whole writes."""
    whole = PatchStore(build_store(spec_for(data_root, tmp_path / "a"), progress=False))
    real = os.pwrite
    monkeypatch.setattr(ps.os, "pwrite", lambda fd, data, offset: real(fd, data[:1000], offset))
    short = PatchStore(build_store(spec_for(data_root, tmp_path / "b"), progress=False))
    np.testing.assert_array_equal(np.asarray(short.patches), np.asarray(whole.patches))


def test_a_seeded_split_without_test_patients_is_refused(tmp_path):
    """Without a split column, data.test_fraction=0 puts every patient in train (a manifest's own split
    column without test rows is refused by the manifest check before)."""
    from gastrodistill.data.manifest import load_manifest

    patients = {"A1": ("gastritis", None), "B1": ("non-gastritis", None)}
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=1, with_split=False)
    spec = spec_for(root, tmp_path / "s", test_fraction=0.0)
    with pytest.raises(ManifestError, match=r"no patient in split 'test'; add patients or change the split"):
        ps.patient_splits(spec, load_manifest(root))


def test_an_empty_validation_split_is_not_warned_about(data_root, tmp_path, caplog):
    """data.val_fraction=0 leaves val empty: that is no missing class (the evaluation refuses an empty split
    where it needs one); its range is the empty one between train and test."""
    with caplog.at_level("WARNING", logger=ps.__name__):
        store = PatchStore(build_store(spec_for(data_root, tmp_path / "s", val_fraction=0.0), progress=False))
    assert "has no patch" not in caplog.text
    n_train = int((store.index["split"] == "train").sum())
    assert store.meta["split_ranges"] == {
        "train": [0, n_train],
        "val": [n_train, n_train],
        "test": [n_train, 256],
    }


def test_masks_that_empty_a_class_name_patch_labels_csv_when_there_is_one(tmp_path):
    root = make_data(tmp_path / "d", images_per_patient=1)
    for mask in (root / "masks").glob("*.png"):
        write_png(mask, np.zeros((100, 90), np.uint8))
    (root / "patch_labels.csv").write_text("image,row,col,label\nimages/A1_0.png,0,0,irrelevant\n")
    text = _empty_class_message(root, tmp_path / "stores")
    assert (
        "(an all-zero mask marks every patch irrelevant) or patch_labels.csv or lower data.mask_threshold"
        in text
    )


def test_force_rebuilds_an_up_to_date_store(data_root, tmp_path, monkeypatch):
    spec = spec_for(data_root, tmp_path / "s")
    path = build_store(spec, progress=False)
    read = []
    real = ps.read_image
    monkeypatch.setattr(ps, "read_image", lambda p, **k: read.append(p) or real(p, **k))
    assert build_store(spec, progress=False) == path and read == []
    assert build_store(spec, progress=False, force=True) == path and len(read) == 16


def test_patients_are_contiguous_and_in_manifest_line_order_whatever_the_manifest_order(data_root, tmp_path):
    """Rows of two patients interleaved, one patient's images listed last first: the store still holds each
    patient as one slice (patients by id), each patient's images in the order of their manifest lines."""
    import csv

    with open(data_root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    a1 = [r for r in rows if r["patient_id"] == "A1"]
    a2 = [r for r in rows if r["patient_id"] == "A2"]
    rest = [r for r in rows if r["patient_id"] not in ("A1", "A2")]
    rows = [a2[1], a1[1], a2[0], a1[0], *rest]  # lines 2-5: A2_1, A1_1, A2_0, A1_0
    write_manifest(data_root, rows)
    idx = PatchStore(build_store(spec_for(data_root, tmp_path / "s", val_fraction=0.0), progress=False)).index
    images = idx["image"].drop_duplicates().tolist()
    assert images[:4] == ["images/A1_1.png", "images/A1_0.png", "images/A2_1.png", "images/A2_0.png"]


def test_meta_records_the_builds_settings_and_sizes_from_their_sources(tmp_path):
    """meta.json against what it describes: the manifest's sha256 (hashlib), the image count (manifest
    rows), patients per split and the shape and bytes of patches.npy, the settings of a seeded split
    without a split column, no resampling at the patch size."""
    import hashlib

    patients = {f"G{i}": ("gastritis", None) for i in range(5)} | {
        f"N{i}": ("non-gastritis", None) for i in range(5)
    }
    root = make_data(tmp_path / "d", patients=patients, images_per_patient=2, with_split=False)
    spec = spec_for(
        root, tmp_path / "s", test_fraction=0.4, val_fraction=0.34, split_seed=7, mask_threshold=0.25
    )
    store = PatchStore(build_store(spec, progress=False))
    meta, idx = store.meta, store.index
    assert meta["sources"]["manifest"] == hashlib.sha256((root / "manifest.csv").read_bytes()).hexdigest()
    assert meta["n_images"] == 20 == idx["image"].nunique()
    assert meta["n_patients"] == {
        s: idx[idx.split == s]["patient"].nunique() for s in ("train", "val", "test")
    }
    assert meta["n_patients"] == {"train": 4, "val": 2, "test": 4}
    assert meta["shape"] == list(store.patches.shape) == [20 * 16, 32, 32]
    assert (
        meta["bytes"]
        == store.patches.nbytes
        == os.path.getsize(store.path / "patches.npy") - store.patches.offset
    )
    assert meta["resampling"] == "none" and meta["dtype"] == "uint8" and meta["storage_size"] == 32
    assert (
        meta["geometry"] == {"patch_size": 32, "overlap": 8, "stride": 24} and meta["mask_threshold"] == 0.25
    )
    assert meta["split_params"] == {
        "from_manifest": False,
        "test_fraction": 0.4,
        "val_fraction": 0.34,
        "seed": 7,
    }


def test_a_file_that_changes_size_during_the_build_is_refused(data_root, tmp_path, monkeypatch):
    real = ps.read_image
    monkeypatch.setattr(ps, "read_image", lambda p, **k: real(p, **k)[:-1])
    with pytest.raises(
        ManifestError, match=r"line 2.*the file changed while the store was being built; run again"
    ):
        build_store(spec_for(data_root, tmp_path / "s"), progress=False)


def test_grey_level_report_counts_used_levels_of_non_empty_splits_and_warns_below_64():
    """64 levels is enough (FEW_GREY_LEVELS = 64), 63 is warned about; an empty split is left out."""
    hists = {"train": np.zeros(256, int), "val": np.zeros(256, int), "test": np.zeros(256, int)}
    hists["train"][::4] = 5  # 64 levels
    hists["test"][:63] = 1
    line, warnings = ps.grey_level_report({"pixel_histograms": {s: h.tolist() for s, h in hists.items()}})
    assert line == "grey levels used (of 256): train 64, test 63"
    assert len(warnings) == 1 and warnings[0].startswith("split 'test' uses only 63 of 256 grey levels")


def test_the_few_levels_warning_lists_ten_lines_then_the_count():
    ten = ps.few_levels_warning(list(range(2, 12)))
    assert ten.startswith(
        "manifest.csv line(s) 2, 3, 4, 5, 6, 7, 8, 9, 10, 11: each image uses fewer than 64"
    )
    eleven = ps.few_levels_warning(list(range(2, 13)))
    assert eleven.startswith(
        "manifest.csv line(s) 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, ... (11 images): each image"
    )


@pytest.mark.parametrize("levels", [63, 64])
def test_an_image_is_warned_about_below_64_grey_levels_not_at_64(data_root, tmp_path, caplog, levels):
    """A 16-bit image of the values k * 257 (k < levels) reads as k / 255 and is stored as the uint8 levels
    0 .. levels - 1: 63 of them earn the per-image warning naming its manifest line, 64 do not."""
    k = np.arange(100 * 90) % levels
    write_png(data_root / "images" / "A1_0.png", (k * 257).astype(np.uint16).reshape(100, 90))
    with caplog.at_level("WARNING", logger=ps.__name__):
        store = PatchStore(build_store(spec_for(data_root, tmp_path / "s"), progress=False))
    first = store.index.index[store.index.image == "images/A1_0.png"]
    assert np.unique(store.patches[first]).tolist() == list(range(levels))
    assert ("manifest.csv line(s) 2: each image uses fewer than 64" in caplog.text) == (levels == 63)


def test_a_reused_store_saves_the_hashes_it_had_to_read_again(data_root, tmp_path):
    """A touched file (change time moved, content kept) is hashed again at the next build; when the store
    is reused, the cache is still written with the new change time, so the run after reads nothing."""
    spec = spec_for(data_root, tmp_path / "s")
    path = build_store(spec, progress=False)
    img = data_root / "images" / "B2_1.png"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))  # same times: only the change time moves
    assert img.stat().st_ctime_ns != st.st_ctime_ns
    assert build_store(spec, progress=False) == path
    cache = json.loads((tmp_path / "s" / ps.HASH_CACHE_FILE).read_text())
    assert cache[str(img.resolve())][3] == img.stat().st_ctime_ns
