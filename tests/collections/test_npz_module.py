"""NpzDataModule: MedMNIST-layout files read into the common data contract, and each bad input refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gastrodistill.data.collections import CollectionError, NpzDataModule


def _setup(path, **kwargs) -> NpzDataModule:
    dm = NpzDataModule(path=str(path), batch_size=16, eval_batch_size=32, **kwargs)
    dm.prepare_data()
    dm.setup()
    return dm


def test_grayscale_three_classes_column_labels(make_npz):
    path = make_npz(k=3, channels=1, size=12, counts=(60, 15, 30), label_shape="column")
    dm = _setup(path)
    assert dm.num_classes == 3
    assert dm.class_names == ["0", "1", "2"]
    assert dm.in_channels == 1 and dm.image_size == (12, 12) and dm.image_shape == (1, 12, 12)
    raw = np.load(path)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(dm.labels(split), raw[f"{split}_labels"].reshape(-1))
    x, y = dm.load_split("train")
    assert x.shape == (60, 1, 12, 12) and x.dtype == torch.float32
    # normalised by the train split's own statistics
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1.0) < 1e-2
    expected = (raw["train_images"][5].astype(np.float32) / 255.0 - dm.mean[0]) / dm.std[0]
    np.testing.assert_allclose(x[5, 0].numpy(), expected, atol=1e-5)
    assert dm.patient_ids("test") is None and dm.patient_labels("test") is None


def test_rgb_two_classes_flat_labels_and_names_from_file(make_npz):
    names = np.array(["normal", "pneumonia"])
    path = make_npz(k=2, channels=3, size=10, label_shape="flat", class_names=names)
    dm = _setup(path)
    assert dm.num_classes == 2 and dm.class_names == ["normal", "pneumonia"]
    assert dm.image_shape == (3, 10, 10)
    x, _ = dm.load_split("val", indices=[0, 1])
    assert x.shape == (2, 3, 10, 10)


def test_channels_last_is_transposed_not_reshaped(make_npz):
    rng = np.random.default_rng(1)
    img = np.zeros((8, 6, 5, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 0
    img[:, :, :, 2] = rng.integers(0, 3, (8, 6, 5))  # channel 2 nearly black
    path = make_npz(
        train_images=img,
        train_labels=np.array([0, 1] * 4),
        val_images=img[:2],
        val_labels=np.array([0, 1]),
        test_images=img[:2],
        test_labels=np.array([0, 1]),
    )
    dm = _setup(path)
    assert dm.image_size == (6, 5) and dm.in_channels == 3
    np.testing.assert_allclose(dm.mean[:2], [200 / 255, 100 / 255], atol=1e-6)
    assert dm.mean[2] < 3 / 255


def test_class_names_argument_wins_and_hash_is_content_based(make_npz, tmp_path):
    a = make_npz("a.npz", k=2)
    b = make_npz("b.npz", k=2)  # same content, other file name
    c = make_npz("c.npz", k=2, seed=1)
    dm_a = _setup(a, class_names=["benign", "malignant"])
    assert dm_a.class_names == ["benign", "malignant"]
    assert dm_a.source_hash() == _setup(b, class_names=["benign", "malignant"]).source_hash()
    assert dm_a.source_hash() != _setup(c, class_names=["benign", "malignant"]).source_hash()
    assert dm_a.source_hash() != _setup(a).source_hash()  # class names are part of the data's identity
    assert str(tmp_path) not in dm_a.source_hash()


def test_pixel_hash_is_computed_once_and_equals_an_independent_digest(make_npz, monkeypatch):
    import hashlib

    from gastrodistill.utils.hashing import sha256_json

    dm = _setup(make_npz(k=2))
    calls = []
    real_sha256 = hashlib.sha256

    def counting_sha256(*args):
        calls.append(args)
        return real_sha256(*args)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)
    first = dm.source_hash()
    assert len(calls) == 2  # the pixels, then the json of their digest and the class names
    assert dm.source_hash() == first
    assert len(calls) == 3  # only the json again: the pixels are not read a second time

    h = real_sha256(b"npz")
    for split in ("train", "val", "test"):
        x, y = dm._splits[split]
        h.update(np.ascontiguousarray(x).tobytes())
        h.update(np.ascontiguousarray(y).tobytes())
    assert first == sha256_json({"pixels": h.hexdigest(), "classes": dm.class_names})


def test_mixed_depths_become_float_in_unit_range(make_npz):
    rng = np.random.default_rng(2)
    tr = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    va = rng.integers(0, 65536, (2, 4, 4), dtype=np.uint16)
    te = rng.random((2, 4, 4)).astype(np.float32)
    path = make_npz(
        train_images=tr,
        train_labels=np.array([0, 1] * 3),
        val_images=va,
        val_labels=np.array([0, 1]),
        test_images=te,
        test_labels=np.array([1, 0]),
    )
    dm = _setup(path)
    xs = {s: dm._splits[s][0] for s in ("train", "val", "test")}
    assert all(x.dtype == np.float32 for x in xs.values())
    np.testing.assert_allclose(xs["train"][:, 0], tr / 255.0, atol=1e-6)
    np.testing.assert_allclose(xs["val"][:, 0], va / 65535.0, atol=1e-6)
    np.testing.assert_allclose(xs["test"][:, 0], te, atol=1e-7)


def test_image_size_resizes(make_npz):
    dm = _setup(make_npz(k=2, size=16), image_size=[8, 6])
    assert dm.image_size == (8, 6)
    assert dm.load_split("test")[0].shape[-2:] == (8, 6)


def test_balanced_sampler_evens_out_an_imbalanced_train_split(make_npz):
    y = np.array([0] * 90 + [1] * 10)
    imgs = np.zeros((100, 4, 4), np.uint8)
    path = make_npz(
        train_images=imgs,
        train_labels=y,
        val_images=imgs[:4],
        val_labels=np.array([0, 1, 0, 1]),
        test_images=imgs[:4],
        test_labels=np.array([0, 1, 0, 1]),
    )
    plain = NpzDataModule(path=str(path), batch_size=100)
    plain.setup()
    balanced = NpzDataModule(path=str(path), batch_size=100, balanced_sampler=True)
    balanced.setup()
    share = {}
    for name, dm in (("plain", plain), ("balanced", balanced)):
        ys = torch.cat([torch.as_tensor(b[1]) for _ in range(5) for b in dm.train_dataloader()])
        share[name] = float((ys == 1).float().mean())
    assert share["plain"] == pytest.approx(0.1)
    assert 0.4 < share["balanced"] < 0.6


# ---- bad input ------------------------------------------------------------------------------------
def _err(path, **kwargs) -> str:
    with pytest.raises(CollectionError) as info:
        _setup(path, **kwargs)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_mismatched_counts(make_npz):
    msg = _err(make_npz(val_labels=np.zeros(3, np.int64)))
    assert "data.npz" in msg and "'val_images' has 15 images" in msg and "'val_labels' has 3 labels" in msg


def test_label_out_of_range_for_given_names(make_npz):
    msg = _err(make_npz(k=3), class_names=["a", "b"])
    assert "out of range" in msg and "train_labels" in msg


def test_negative_label(make_npz):
    msg = _err(make_npz(test_labels=np.array([0, -1] * 15)))
    assert "test_labels" in msg and "negative" in msg


def test_missing_key(make_npz, tmp_path):
    arrays = dict(np.load(make_npz()))
    del arrays["val_images"]
    np.savez(tmp_path / "nokey.npz", **arrays)
    msg = _err(tmp_path / "nokey.npz")
    assert "nokey.npz" in msg and "val_images" in msg


def test_nan_in_float_images(make_npz):
    x = np.full((4, 12, 12), 0.5, np.float32)
    x[2, 1, 1] = np.nan
    msg = _err(make_npz(test_images=x, test_labels=np.array([0, 1, 2, 0])))
    assert "test_images" in msg and "NaN" in msg


def test_float_outside_unit_range(make_npz):
    x = np.full((4, 12, 12), 3.0, np.float32)
    msg = _err(make_npz(test_images=x, test_labels=np.array([0, 1, 2, 0])))
    assert "test_images" in msg and "[0, 1]" in msg


def test_pickle_bearing_npz_is_refused(make_npz):
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = {"a": 1}, [1, 2]
    msg = _err(make_npz(class_names=obj))
    assert "class_names" in msg and "pickle" in msg


def test_not_an_npz_and_missing_file(tmp_path):
    (tmp_path / "fake.npz").write_text("not a zip")
    assert "fake.npz" in _err(tmp_path / "fake.npz")
    assert "absent.npz" in _err(tmp_path / "absent.npz")


def test_empty_class_in_train(make_npz):
    msg = _err(make_npz(k=3, train_labels=np.array([0, 2] * 30)))
    assert "train_labels" in msg and "[1]" in msg


def test_multilabel_and_float_labels(make_npz):
    assert "multi-label" in _err(make_npz(test_labels=np.zeros((30, 3), np.int64)))
    assert "integer" in _err(make_npz(test_labels=np.zeros(30, np.float32)))


def test_unsupported_pixel_type(make_npz):
    msg = _err(make_npz(val_images=np.zeros((15, 12, 12), np.int32)))
    assert "val_images" in msg and "int32" in msg


def _truncated(path, keep: float):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_truncated_npz_names_the_file_and_says_it_is_damaged(make_npz):
    msg = _err(_truncated(make_npz(name="cut.npz"), 0.5))  # the zip's directory at the end is gone
    assert "cut.npz" in msg and "damaged" in msg and "numpy.savez" in msg


def test_corrupt_member_names_the_file_and_the_key(make_npz):
    path = make_npz(name="flip.npz")
    data = bytearray(path.read_bytes())
    with np.load(path) as npz:  # flip one pixel byte of train_images: the zip's CRC check fails on read
        assert npz["train_images"].size > 0
    start = bytes(data).index(b"train_images.npy") + len("train_images.npy") + 200
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))
    msg = _err(path)
    assert "flip.npz" in msg and "'train_images'" in msg and "damaged" in msg


def test_npy_and_text_files_are_refused_without_numpy_pickle_advice(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros((4, 8, 8), np.uint8))
    msg = _err(tmp_path / "one.npy")
    assert "one.npy" in msg and "single .npy array" in msg and "numpy.savez" in msg
    (tmp_path / "notes.npz").write_text("train_images,train_labels\n1,2\n")
    msg = _err(tmp_path / "notes.npz")
    assert "notes.npz" in msg and "not an .npz archive" in msg and "allow_pickle" not in msg


@pytest.mark.parametrize(
    ("key", "value", "expect"),
    [
        ("test_labels", np.zeros(30, np.float32), "labels have dtype float32"),
        ("test_labels", np.array([0, -1] * 15), "negative label -1"),
        ("test_labels", np.zeros((30, 3), np.int64), "multi-label"),
        ("val_images", np.zeros((15, 144), np.uint8), "images of shape (15, 144)"),
    ],
)
def test_label_and_shape_errors_name_the_file_and_key(make_npz, key, value, expect):
    msg = _err(make_npz(name="named.npz", **{key: value}))
    assert f"npz file 'named.npz', key '{key}'" in msg and expect in msg


def test_duplicate_or_empty_class_names_are_refused(make_npz):
    msg = _err(make_npz(name="dup.npz", k=3, class_names=np.array(["a", "b", "a"])))
    assert "dup.npz" in msg and "['a']" in msg and "more than once" in msg
    msg = _err(make_npz(name="blank.npz", k=3, class_names=np.array(["a", " ", "c"])))
    assert "blank.npz" in msg and "[1]" in msg and "empty" in msg
    with pytest.raises(ValueError, match="more than once"):
        NpzDataModule(path="unused.npz", class_names=["x", "x"])


def test_one_class_is_refused_naming_the_file(make_npz):
    msg = _err(make_npz(name="single.npz", k=1))
    assert "single.npz" in msg and "one class" in msg


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_class_absent_from_val_or_test_is_refused(make_npz, split):
    labels = np.array([0, 1] * 15) if split == "test" else np.array([0, 1] * 7 + [0])
    msg = _err(make_npz(name="gap.npz", k=3, **{f"{split}_labels": labels}))
    assert f"'{split}_labels'" in msg and "classes [2]" in msg and "gap.npz" in msg


@pytest.mark.parametrize("size", [0, -3, [64], [32, 0], "big"])
def test_image_size_that_is_not_positive_is_refused(size):
    with pytest.raises(CollectionError, match="data.image_size must be a positive int"):
        NpzDataModule(path="unused.npz", image_size=size)


@pytest.mark.parametrize(
    ("size", "expected"),
    [("16", (16, 16)), (" 16 ", (16, 16)), (["16", "12"], (16, 12)), (("9", 7), (9, 7)), (16.0, (16, 16))],
)
def test_image_size_written_as_text_is_read_as_that_number(make_npz, size, expected):
    """``${oc.env:IMG}`` and quoted YAML give strings: "16" was read one character per side, as (1, 6)."""
    dm = _setup(make_npz(size=12), image_size=size)
    assert dm.image_size == expected
    assert dm.load_split("val")[0].shape[2:] == expected


@pytest.mark.parametrize(
    ("size", "why"),
    [
        (True, "a boolean"),
        (False, "a boolean"),
        ([True, 8], "a boolean"),
        ("16px", "not a whole number"),
        ("1.5", "not a whole number"),
        (["16", "big"], "not a whole number"),
        (1.5, ""),
    ],
)
def test_image_size_boolean_or_other_text_is_refused_naming_the_key(size, why):
    """``data.image_size=true`` was silently 1 px; other text was read character by character."""
    with pytest.raises(CollectionError) as info:
        NpzDataModule(path="unused.npz", image_size=size)
    msg = str(info.value)
    assert msg.startswith("data.image_size must be a positive int") and "\n" not in msg
    assert why in msg and "e.g. data.image_size=64" in msg


def test_image_size_from_an_environment_interpolation(compose_cfg, make_npz, monkeypatch):
    from hydra.utils import instantiate

    monkeypatch.setenv("GD_TEST_IMG", "16")
    path = make_npz(size=12)
    cfg = compose_cfg(["data=npz", f"data.path={path}", "data.image_size=${oc.env:GD_TEST_IMG}"])
    dm = instantiate(cfg.data)
    dm.setup()
    assert dm.image_size == (16, 16)


@pytest.mark.parametrize("image_size", [None, 8])
def test_images_with_a_zero_sized_side_are_refused_naming_file_and_key(make_npz, image_size):
    """Without image_size this was 'image sizes differ between splits'; with it, a cv2 assertion."""
    empty = np.zeros((30, 0, 8), np.uint8)
    msg = _err(
        make_npz(name="flat.npz", k=2, train_images=empty, train_labels=np.arange(30) % 2),
        image_size=image_size,
    )
    assert "flat.npz" in msg and "'train_images'" in msg and "zero-sized side" in msg
    assert "differ between splits" not in msg


def test_a_folder_as_data_path_is_named_a_folder(tmp_path):
    folder = tmp_path / "dcm"
    folder.mkdir()
    msg = _err(folder)
    assert "'dcm'" in msg and "is a folder" in msg and "not found" not in msg
    assert ".npz file" in msg and "data=folder" in msg


def test_an_image_size_too_big_for_memory_is_refused_before_allocating(make_npz, monkeypatch):
    """``data.image_size=100000`` was numpy's 'Unable to allocate 16.3 TiB' traceback."""
    import gastrodistill.data.collections as collections
    import gastrodistill.data.sizes as sizes

    path = make_npz(size=12, counts=(60, 15, 30))
    monkeypatch.setattr(sizes, "available_memory", lambda: 1 << 20)  # 1 MiB left
    resized: list[int] = []
    monkeypatch.setattr(collections, "_resize", lambda img, size: resized.append(1) or img)
    msg = _err(path, image_size=64)  # 105 images x 64 x 64 x 4 bytes = 1.6 MiB
    assert msg.startswith("data.image_size=64x64: 105 images of 1 channel(s)") and "1.6 MiB" in msg
    assert "1.0 MiB available" in msg and "at most about 49 px per side fits" in msg
    assert not resized  # refused before anything was resized
    monkeypatch.undo()  # the machine's own memory: 64 px fits
    assert _setup(path, image_size=64).image_size == (64, 64)


def test_images_too_big_for_memory_at_their_own_size_are_refused_naming_image_size(make_npz, monkeypatch):
    """Without data.image_size the images' own size was not checked: 2048 px X-rays ran out of memory."""
    import gastrodistill.data.sizes as sizes

    path = make_npz(size=12, counts=(60, 15, 30))
    monkeypatch.setattr(sizes, "available_memory", lambda: 1 << 14)  # 16 KiB left
    msg = _err(path)  # 105 images x 12 x 12 x 4 bytes = 59.1 KiB
    assert msg.startswith(
        "12x12 px (the images' own size; data.image_size unset): 105 images of 1 channel(s)"
    )
    assert "59.1 KiB" in msg and "16.0 KiB available" in msg
    assert "choose a smaller data.image_size (at most about 6 px per side fits)" in msg  # (16384/420) ** 0.5
    monkeypatch.setattr(sizes, "available_memory", lambda: 105 * 144 * 4)  # exactly enough
    assert _setup(path).image_size == (12, 12)


def test_memory_running_out_while_resizing_is_a_data_error(make_npz, monkeypatch):
    import gastrodistill.data.collections as collections

    def out_of_memory(img, size):
        raise MemoryError("Unable to allocate 16.3 TiB")

    monkeypatch.setattr(collections, "_resize", out_of_memory)
    msg = _err(make_npz(size=12), image_size=20)
    assert msg.startswith("data.image_size:") and "do not fit in memory" in msg and "16.3 TiB" in msg


def test_a_class_absent_from_val_is_named_when_the_file_names_it(make_npz):
    """The refusal named the class by its index only ("classes [4]"), not by the name the user gave it (a
    newcomer's 5-class study)."""
    labels = np.array([0, 1] * 7 + [0])
    msg = _err(
        make_npz(name="gap.npz", k=3, val_labels=labels, class_names=np.array(["a", "b", "Cancer früh"]))
    )
    assert "classes [2 ('Cancer früh')] have no validation images" in msg
