"""Real-world inputs in the folder and npz layouts: the one reader stack's fixes hold here too."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gastrodistill.data.collections import CollectionError, FolderDataModule, NpzDataModule


def _setup(dm):
    dm.prepare_data()
    dm.setup()
    return dm


# ---- class names stored as bytes -----------------------------------------------------------------------
def test_npz_bytes_class_names_are_text(make_npz):
    path = make_npz(k=2, class_names=np.array([b"normal", b"pneumonia"]))
    dm = _setup(NpzDataModule(path=str(path)))
    assert dm.class_names == ["normal", "pneumonia"]
    assert all(type(n) is str for n in dm.class_names)


def test_npz_utf8_bytes_class_names_decode(make_npz):
    names = np.array(["Ödem".encode(), b"normal"])
    dm = _setup(NpzDataModule(path=str(make_npz(k=2, class_names=names))))
    assert dm.class_names == ["Ödem", "normal"]


def test_npz_non_utf8_class_names_say_so(make_npz):
    path = make_npz(k=2, class_names=np.array([b"\xff\xfe", b"ok"]))
    with pytest.raises(CollectionError, match=r"class_names.*not UTF-8"):
        _setup(NpzDataModule(path=str(path)))


def test_in_memory_module_decodes_bytes_names_too():
    from gastrodistill.data.base import TensorImageDataModule

    x = np.zeros((4, 1, 4, 4), np.uint8)
    y = np.array([0, 1, 0, 1])
    dm = TensorImageDataModule(
        {s: (x, y) for s in ("train", "val", "test")}, class_names=[b"a", np.bytes_(b"b")]
    )
    assert dm.class_names == ["a", "b"]


# ---- orientation and transposed sizes ----------------------------------------------------------------
def _folder_with_sideways(tmp_path, exif: bool):
    root = tmp_path / ("exif" if exif else "raw")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            img = rng.integers(0, 255, (16, 10)).astype(np.uint8)
            if c == "b" and i == 0:  # one phone photo stored sideways
                info = Image.Exif()
                if exif:
                    info[0x0112] = 6
                Image.fromarray(np.ascontiguousarray(np.rot90(img, 1))).save(root / c / f"{i}.jpg", exif=info)
            else:
                Image.fromarray(img).save(root / c / f"{i}.png")
    return root


def test_folder_applies_exif_orientation(tmp_path):
    dm = _setup(
        FolderDataModule(
            root=str(_folder_with_sideways(tmp_path, exif=True)), val_fraction=0.2, test_fraction=0.2
        )
    )
    assert dm.image_size == (16, 10)


def test_folder_transposed_sizes_say_so_instead_of_resize(tmp_path):
    root = _folder_with_sideways(tmp_path, exif=False)
    with pytest.raises(CollectionError) as info:
        _setup(FolderDataModule(root=str(root), val_fraction=0.2, test_fraction=0.2))
    msg = str(info.value)
    assert "differ only by a transpose" in msg and "sideways" in msg
    assert "set data.image_size" not in msg


def test_npz_transposed_splits_say_so(make_npz):
    rng = np.random.default_rng(0)
    path = make_npz(size=12, test_images=rng.integers(0, 255, (30, 12, 12)).astype(np.uint8))
    # make the test split 12x9 and the others 9x12
    with np.load(path) as z:
        arrays = dict(z)
    for s in ("train", "val"):
        arrays[f"{s}_images"] = arrays[f"{s}_images"][:, :9, :]
    arrays["test_images"] = arrays["test_images"][:, :, :9]
    np.savez(path, **arrays)
    with pytest.raises(CollectionError, match="differ only by a transpose"):
        _setup(NpzDataModule(path=str(path)))


# ---- bit depth -------------------------------------------------------------------------------------------
def test_folder_png_sbit_12_is_rescaled_to_the_uint16_range(tmp_path):
    root = tmp_path / "f"
    rng = np.random.default_rng(1)
    raws = {}
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            raw = rng.integers(600, 3601, (8, 8)).astype(np.uint16)
            info = PngInfo()
            info.add(b"sBIT", bytes([12]))
            Image.fromarray(raw).save(root / c / f"{i}.png", pnginfo=info)
            raws[(c, i)] = raw
    dm = _setup(FolderDataModule(root=str(root), val_fraction=0.2, test_fraction=0.2))
    x = np.concatenate([dm._splits[s][0] for s in ("train", "val", "test")])
    assert x.dtype == np.uint16 and x.max() > 50000  # 3600/4095 of full scale, not 3600/65535
    unit = x.astype(np.float64) / 65535.0
    expected = sorted(np.round(r / 4095.0 * 65535.0).sum() for r in raws.values())
    assert sorted(x.reshape(len(x), -1).sum(axis=1).tolist()) == expected
    assert unit.max() <= 1.0


def test_npz_bit_depth_rescales_and_checks(make_npz):
    rng = np.random.default_rng(2)
    arrays = {
        f"{s}_images": rng.integers(0, 4096, (n, 8, 8)).astype(np.uint16)
        for s, n in (("train", 12), ("val", 6), ("test", 6))
    }
    path = make_npz(k=2, size=8, counts=(12, 6, 6), **arrays)
    dm = _setup(NpzDataModule(path=str(path), bit_depth=12))
    x, _ = dm._splits["train"]
    np.testing.assert_array_equal(x[:, 0], np.rint(arrays["train_images"] * (65535 / 4095)).astype(np.uint16))
    with pytest.raises(CollectionError, match=r"train_images.*above 1023.*bit_depth=10"):
        _setup(NpzDataModule(path=str(path), bit_depth=10))


# ---- DICOM in class folders --------------------------------------------------------------------------------
def test_folder_of_dicom_files(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
    from gastric_testdata import write_dicom

    root = tmp_path / "dcm"
    rng = np.random.default_rng(3)
    raws: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    for c in raws:
        (root / c).mkdir(parents=True)
        for i in range(5):
            raws[c].append(rng.integers(0, 4096, (8, 8)).astype(np.uint16))
            write_dicom(root / c / f"{i}.dcm", raws[c][-1])  # BitsStored 12, no window
    dm = _setup(FolderDataModule(root=str(root), val_fraction=0.2, test_fraction=0.2))
    x, _ = dm._splits["train"]
    assert x.dtype == np.float32 and x.shape[1:] == (1, 8, 8)
    # every image of each class, whichever split it fell in: its stored values over the 12-bit range
    for k, c in enumerate(dm.class_names):
        got = [
            img.astype(np.float64)
            for s in ("train", "val", "test")
            for img, y in zip(*dm._splits[s], strict=True)
            if y == k
        ]
        assert len(got) == len(raws[c])
        np.testing.assert_allclose(
            sorted(g.sum() for g in got), sorted((r / 4095.0).sum() for r in raws[c]), atol=1e-4, err_msg=c
        )


# ---- storage_size from an experiment preset ---------------------------------------------------------------
def test_storage_size_caps_the_longer_side_and_keeps_small_images(make_npz):
    big = _setup(NpzDataModule(path=str(make_npz(name="big.npz", size=40)), storage_size=16))
    assert big.image_size == (16, 16)
    small = _setup(NpzDataModule(path=str(make_npz(name="small.npz", size=12)), storage_size=16))
    assert small.image_size == (12, 12)
    x_small, _ = small._splits["train"]
    with np.load(make_npz(name="small.npz", size=12)) as z:
        np.testing.assert_array_equal(x_small[:, 0], z["train_images"])  # untouched: no upscaling


def test_an_explicit_image_size_is_exact_under_a_preset_storage_size(make_npz):
    """docs/your_own_data.md: data.image_size, applied first, still sets an exact size (a preset's
    storage_size cap does not shrink it again)."""
    path = str(make_npz(name="mid.npz", size=24))
    assert _setup(NpzDataModule(path=path, image_size=20, storage_size=16)).image_size == (20, 20)
    assert _setup(NpzDataModule(path=path, image_size=[16, 20], storage_size=16)).image_size == (16, 20)
    assert _setup(NpzDataModule(path=path, storage_size=16)).image_size == (16, 16)  # no image_size: capped


def test_storage_size_keeps_the_aspect_ratio(tmp_path):
    from gastrodistill.data.base import capped_size

    assert capped_size((300, 200), 64) == (64, 43)
    assert capped_size((20, 30), 64) == (20, 30)
    assert capped_size((1000, 1), 64) == (64, 1)


@pytest.mark.parametrize("channels_first", [False, True])
def test_npz_with_four_channels_is_refused_not_cut_to_three(make_npz, channels_first):
    """Four channels in an array are data (four MRI sequences), not colour + alpha: the 4th was dropped
    without a word and the set distilled from the first three (a breaker's finding)."""
    path = make_npz(k=2, channels=4)
    if channels_first:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        for split in ("train", "val", "test"):
            arrays[f"{split}_images"] = arrays[f"{split}_images"].transpose(0, 3, 1, 2)
        np.savez(path, **arrays)
    with pytest.raises(CollectionError, match=r"have 4 channels; the networks read 1 \(grey\) or 3"):
        _setup(NpzDataModule(path=str(path)))


def test_an_npz_array_too_large_for_memory_is_named(make_npz, monkeypatch):
    """A member whose header declares (2,000,000, 1024, 1024) uint8 ended in numpy's _ArrayMemoryError
    traceback ("Unable to allocate 1.91 TiB"); it is an error naming the file and key now. (numpy's
    allocation failure is stood in for: whether the system refuses 1.9 TiB depends on its overcommit.)"""
    path = make_npz(k=2)
    read = np.lib.npyio.NpzFile.__getitem__

    def getitem(self, key):
        if key == "train_images":
            raise MemoryError("Unable to allocate 1.91 TiB for an array with shape (2000000, 1024, 1024)")
        return read(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", getitem)
    with pytest.raises(CollectionError, match=r"key 'train_images': the array does not fit in memory"):
        _setup(NpzDataModule(path=str(path)))


def test_shrinking_and_grey_to_colour_are_said(make_npz, tmp_path, caplog):
    """A 128 px collection was distilled and shipped at the preset's 64 px, and grayscale images beside
    colour ones became RGB, without a word (a breaker's finding)."""
    import logging

    path = make_npz(k=2, size=32)
    with caplog.at_level(logging.WARNING):
        _setup(NpzDataModule(path=str(path), storage_size=16))
    assert "images of 32x32 px are shrunk to 16x16 px (data.storage_size=16" in caplog.text
    root = tmp_path / "mixed"
    for c, mode in (("a", "L"), ("b", "RGB")):
        (root / c).mkdir(parents=True)
        for i in range(6):
            Image.new(mode, (8, 8), color=(i * 20) if mode == "L" else (i * 20, 0, 0)).save(
                root / c / f"{i}.png"
            )
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dm = _setup(FolderDataModule(root=str(root), val_fraction=0.2, test_fraction=0.2))
    assert dm.in_channels == 3
    assert "6 of 12 images are grayscale and the others colour" in caplog.text


@pytest.mark.parametrize(
    ("change", "advice"),
    [
        ("one-based", "the labels run 1..2: count from 0 (labels - 1)"),
        (
            "one-based-named",
            "label 2 out of range for 2 classes ['a', 'b']; the labels run 1..2: count from 0",
        ),
        ("0-255", "the labels take the two values [0, 255]: write them as 0 and 1"),
        ("three-names", "class_names gives 3 names but the labels use 2 classes [0, 1]"),
        ("test-one-class", "have no test images; balanced accuracy, sensitivity and AUC need every class"),
    ],
)
def test_labels_that_do_not_count_from_zero_say_how(make_npz, change, advice):
    """Labels 1..K, labels 0/255 and a class_names longer than the classes were all answered "classes
    [...] have no training images; relabel to consecutive indices" (for 0/255 a list of 254 classes);
    labels 1..K with K class_names got "out of range ... fix the labels or class_names". Labels 0 / 1 with
    a test split of one class were told to write them as 0 and 1 (a newcomer's finding)."""
    path = make_npz(k=2)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    for split in ("train", "val", "test"):
        lab = arrays[f"{split}_labels"].astype(np.int64)
        if change.startswith("one-based"):
            arrays[f"{split}_labels"] = lab + 1
        elif change == "0-255":
            arrays[f"{split}_labels"] = (lab * 255).astype(np.uint8)
    if change == "test-one-class":  # labels 0 and 1 already: was told to write them as 0 and 1
        arrays["test_labels"] = np.zeros_like(arrays["test_labels"])
    if change == "three-names":
        arrays["class_names"] = np.array(["a", "b", "c"])
    if change == "one-based-named":  # with class_names the labels' range is checked first (no hint there)
        arrays["class_names"] = np.array(["a", "b"])
    np.savez(path, **arrays)
    with pytest.raises(CollectionError) as info:
        _setup(NpzDataModule(path=str(path)))
    assert advice in str(info.value) and len(str(info.value)) < 400


def test_twelve_bit_values_in_sixteen_bit_arrays_get_a_hint(make_npz, caplog):
    """12-bit data stored as uint16 loaded at a sixteenth of the grey range without a word."""
    import logging

    path = make_npz(k=2)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = arrays[f"{split}_images"].astype(np.uint16) * 16  # at most 4080
    np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING):
        _setup(NpzDataModule(path=str(path)))
    assert "data.path, key 'train_images': 16-bit values reach at most" in caplog.text
    assert "set data.bit_depth=12" in caplog.text and "data.npz" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _setup(NpzDataModule(path=str(path), bit_depth=12))
    assert "16-bit values" not in caplog.text


def test_class_names_that_reorder_the_files_own_are_refused(make_npz):
    """A receiving site reordered ``data.class_names`` to match an artifact's order: it only renamed the
    stored labels, and the report was computed on swapped classes without a word (a newcomer's finding).
    A rename to other names, and the file's own order, are kept."""
    path = make_npz(k=2, class_names=np.array(["normal", "tumour"]))
    with pytest.raises(CollectionError, match=r"\['tumour', 'normal'\] are the file's own class_names"):
        _setup(NpzDataModule(path=str(path), class_names=["tumour", "normal"]))
    assert _setup(NpzDataModule(path=str(path), class_names=["normal", "tumour"])).class_names == [
        "normal",
        "tumour",
    ]
    assert _setup(NpzDataModule(path=str(path), class_names=["healthy", "cancer"])).class_names == [
        "healthy",
        "cancer",
    ]


def test_class_names_that_move_a_class_a_case_or_a_space_apart_are_refused(make_npz):
    """A breaker's: a reorder a case or a space apart, or one name moved among new ones, was accepted (the
    check compared the sorted lists exactly); a change of case at the same label is a rename, and kept."""
    path = make_npz(k=2, class_names=np.array(["normal", "tumour"]))
    assert _setup(NpzDataModule(path=str(path), class_names=["Normal", "Tumour"])).class_names[0] == "Normal"
    for given in (["Tumour", "Normal"], ["tumour ", "normal"], ["tumour", "ulcer"]):
        with pytest.raises(CollectionError, match="in another order"):
            _setup(NpzDataModule(path=str(path), class_names=given))


def test_shrinking_averages_pixel_areas_and_enlarging_is_bilinear():
    """A random 21 x 21 image shrunk to 7 x 7 gives its 3 x 3 block means (area interpolation, within
    rounding; bilinear would take each block's centre pixel alone), and an enlargement is OpenCV's bilinear
    resize: no texture is aliased on the way down."""
    import cv2

    from gastrodistill.data.collections import harmonise

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (21, 21), dtype=np.uint8)
    small = harmonise([image[None, :, :, None]], ["a.png"], (7, 7))[0, 0]
    blocks = image.reshape(7, 3, 7, 3).astype(np.float64).mean(axis=(1, 3))
    assert np.abs(small.astype(np.float64) - blocks).max() <= 1.0
    large = harmonise([image[None, :, :, None]], ["a.png"], (30, 30))[0, 0]
    np.testing.assert_array_equal(large, cv2.resize(image, (30, 30), interpolation=cv2.INTER_LINEAR))


def test_boolean_images_become_black_and_white_and_alpha_is_dropped():
    """A boolean mask-like image is 0 / 255 (not 0 / 1, nearly black); grey + alpha keeps the grey,
    RGBA the colour."""
    from gastrodistill.data.collections import _normalise_pixels

    mask = np.array([[True, False], [False, True]])
    out = _normalise_pixels(mask, "m.npz")
    assert out.dtype == np.uint8 and out[..., 0].tolist() == [[255, 0], [0, 255]]
    grey_alpha = np.stack([np.full((2, 2), 7, np.uint8), np.full((2, 2), 200, np.uint8)], -1)
    assert _normalise_pixels(grey_alpha, "g.png")[..., 0].tolist() == [[7, 7], [7, 7]]
    rgba = np.concatenate(
        [np.arange(12, dtype=np.uint8).reshape(2, 2, 3), np.full((2, 2, 1), 99, np.uint8)], -1
    )
    np.testing.assert_array_equal(_normalise_pixels(rgba, "c.png"), rgba[..., :3])


def test_sixteen_bit_data_may_say_so_and_13_bit_values_get_no_hint(make_npz, caplog):
    """data.bit_depth=16 (the container's own) is accepted and changes nothing; values reaching 4096 need
    13 bits, so the 12-bit hint stays silent there (4095 gets it)."""
    import logging

    path = make_npz(k=2)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = arrays[f"{split}_images"].astype(np.uint16) * 16  # at most 4080
    arrays["train_images"][0, 0, 0] = 4096
    np.savez(path, **arrays)
    with caplog.at_level(logging.WARNING):
        dm = _setup(NpzDataModule(path=str(path), bit_depth=16))
    np.testing.assert_array_equal(dm._splits["train"][0][:, 0], arrays["train_images"])
    with caplog.at_level(logging.WARNING):
        _setup(NpzDataModule(path=str(path)))
    assert "key 'train_images'" not in caplog.text and "key 'val_images': 16-bit values" in caplog.text
    arrays["train_images"][0, 0, 0] = 4095
    np.savez(path, **arrays)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        _setup(NpzDataModule(path=str(path)))
    assert "key 'train_images': 16-bit values reach at most 4095, within 12 bits" in caplog.text


def test_float_images_just_above_one_are_refused(make_npz):
    """1.0005 is outside [0, 1] too, and the message says so (it printed the maximum to 4 figures, "1")."""
    x = np.full((4, 12, 12), 0.5, np.float32)
    x[1, 2, 3] = 1.0005
    with pytest.raises(
        CollectionError,
        match=r"key 'test_images': float image values lie in \[0\.5, 1\.0005\], outside \[0, 1\]",
    ):
        _setup(NpzDataModule(path=str(make_npz(test_images=x, test_labels=np.array([0, 1, 2, 0])))))
