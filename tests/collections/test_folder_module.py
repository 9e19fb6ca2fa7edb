"""FolderDataModule: class-folder trees of mixed formats, depths and modes; splits; each bad input refused."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image

from gastrodistill.data.collections import CollectionError, FolderDataModule


def _setup(root, **kwargs) -> FolderDataModule:
    dm = FolderDataModule(root=str(root), batch_size=8, **kwargs)
    dm.prepare_data()
    dm.setup()
    return dm


def test_flat_tree_grayscale_two_classes_stratified_split(make_folder):
    root = make_folder(classes=("benign", "malignant"), n=10, channels=1)
    (root / ".DS_Store").write_bytes(b"\x00junk")  # hidden files are ignored
    (root / "benign" / ".hidden.txt").write_text("x")
    (root / "README.txt").write_text("files directly in the root are ignored")
    dm = _setup(root)
    assert dm.class_names == ["benign", "malignant"] and dm.num_classes == 2
    assert dm.image_shape == (1, 12, 12)
    counts = {s: np.bincount(dm.labels(s), minlength=2).tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [7, 7], "val": [1, 1], "test": [2, 2]}
    # the split is a partition of the files, fixed by split_seed and not by the run seed
    all_x = np.concatenate([dm._splits[s][0] for s in ("train", "val", "test")])
    assert len({a.tobytes() for a in all_x}) == 20
    again = _setup(root, seed=123)
    np.testing.assert_array_equal(again._splits["test"][0], dm._splits["test"][0])
    other = _setup(root, split_seed=7)
    assert not np.array_equal(other._splits["test"][0], dm._splits["test"][0])


def test_rgb_several_classes_and_class_order(make_folder):
    root = make_folder(classes=("a", "b", "c", "d"), n=6, channels=3, size=9)
    dm = _setup(root)
    assert dm.class_names == ["a", "b", "c", "d"] and dm.image_shape == (3, 9, 9)
    picked = _setup(root, classes=["d", "b"])
    assert picked.class_names == ["d", "b"] and picked.num_classes == 2
    # label 0 is now class "d": its images are the brightest (class_images adds 40 per class index)
    x, y = picked._splits["train"]
    assert x[y == 0].mean() > x[y == 1].mean() + 40


def test_mixed_formats_depths_and_modes(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mixed"
    for c in ("ct", "mr"):
        (root / c).mkdir(parents=True)
    g8 = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    g16 = rng.integers(0, 65536, (8, 8), dtype=np.uint16)
    rgb16 = rng.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    rgb8 = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(g8).save(root / "ct" / "g8.png")
    Image.fromarray(g16).save(root / "ct" / "g16.png")
    tifffile.imwrite(root / "ct" / "g16.tif", g16[::-1].copy())
    tifffile.imwrite(root / "mr" / "rgb16.tiff", rgb16)  # Pillow would truncate this to 8 bits
    cv2.imwrite(str(root / "mr" / "rgb16.png"), rgb16[:, :, ::-1][::-1].copy())  # 16-bit colour PNG
    Image.fromarray(rgb8).convert("RGBA").save(root / "mr" / "rgba.png")
    Image.fromarray(g8).convert("P").save(root / "mr" / "palette.png")
    Image.fromarray(g8).save(root / "mr" / "gray.jpg", quality=95)
    for i in range(4):  # enough per class for a three-way split
        Image.fromarray(g8 // (i + 2)).save(root / "ct" / f"extra{i}.bmp")
    dm = _setup(root, val_fraction=0.2, test_fraction=0.2)
    assert dm.in_channels == 3  # one colour image makes the whole set RGB
    x_all = np.concatenate([dm._splits[s][0] for s in ("train", "val", "test")])
    assert x_all.dtype == np.uint16 and len(x_all) == 12
    expect = {
        "g8.png + palette.png": np.repeat(g8[None].astype(np.uint16) * 257, 3, axis=0),
        "g16.png": np.repeat(g16[None], 3, axis=0),
        "g16.tif": np.repeat(g16[None][:, ::-1], 3, axis=0),
        "rgb16.tiff": rgb16.transpose(2, 0, 1),
        "rgb16.png": rgb16[::-1].transpose(2, 0, 1),
        "rgba.png": rgb8.transpose(2, 0, 1).astype(np.uint16) * 257,
    }
    for name, img in expect.items():
        assert sum(np.array_equal(a, img) for a in x_all) == name.count(".png") + name.count(".tif"), name


def _grey_png_folder(root: Path, rng: np.random.Generator) -> Path:
    """Two class folders (normal, abnormal) of four random 8x8 grayscale PNGs each; returns ``root``."""
    for c in ("normal", "abnormal"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_a_palette_of_greys_keeps_the_set_grayscale(tmp_path):
    """A grey palette PNG or GIF is grayscale: one of them no longer makes the whole set RGB."""
    rng = np.random.default_rng(5)
    root = _grey_png_folder(tmp_path / "xr", rng)
    g = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    Image.fromarray(g).convert("P").save(root / "normal" / "palette.png")
    Image.fromarray(g).quantize(16).save(root / "abnormal" / "quantised.gif")
    dm = _setup(root)
    assert dm.in_channels == 1
    x_all = np.concatenate([dm._splits[s][0] for s in ("train", "val", "test")])
    assert sum(np.array_equal(a[0], g) for a in x_all) == 1  # the palette PNG, exactly
    colour = np.stack([g, g // 2, 255 - g], axis=-1)
    Image.fromarray(colour).quantize(16).save(root / "normal" / "colour_palette.png")
    assert _setup(root).in_channels == 3  # a palette of colours is still colour


def test_a_link_to_a_missing_image_is_refused_by_name(tmp_path):
    from gastrodistill.data.collections import CollectionError

    rng = np.random.default_rng(6)
    root = _grey_png_folder(tmp_path / "xr", rng)
    (root / "normal" / "gone.png").symlink_to(tmp_path / "elsewhere" / "gone.png")
    with pytest.raises(CollectionError, match=r"'normal/gone.png': symbolic link\(s\) to a missing file"):
        _setup(root)
    (root / "normal" / "gone.png").unlink()
    (root / "ghost").symlink_to(tmp_path / "unmounted" / "ghost")  # a whole class folder
    with pytest.raises(CollectionError, match=r"'ghost': symbolic link\(s\) to a missing file or folder"):
        _setup(root)
    (root / "ghost").unlink()
    (root / "normal" / "kept.png").symlink_to(root / "abnormal" / "0.png")  # a working link is an image
    assert sum(len(_setup(root).labels(s)) for s in ("train", "val", "test")) == 9


def test_sixteen_bit_grayscale_stays_one_channel_and_lossless(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "xr"
    imgs = {}
    for c in ("normal", "abnormal"):
        (root / c).mkdir(parents=True)
        for i in range(3):
            imgs[f"{c}{i}"] = rng.integers(0, 65536, (6, 7), dtype=np.uint16)
            tifffile.imwrite(root / c / f"{i}.tif", imgs[f"{c}{i}"])
    dm = _setup(root)
    assert dm.class_names == ["abnormal", "normal"] and dm.image_shape == (1, 6, 7)
    all_x = np.concatenate([dm._splits[s][0] for s in ("train", "val", "test")])
    for img in imgs.values():
        assert sum(np.array_equal(a, img[None]) for a in all_x) == 1


def test_split_folders_with_and_without_val(make_folder, tmp_path):
    root = make_folder("split3", classes=("x", "y"), n=4, splits=("train", "val", "test"))
    dm = _setup(root)
    assert {s: len(dm.labels(s)) for s in ("train", "val", "test")} == {"train": 8, "val": 8, "test": 8}
    root2 = make_folder("split2", classes=("x", "y"), n=10, splits=("train", "test"))
    dm2 = _setup(root2, val_fraction=0.2)
    counts = {s: np.bincount(dm2.labels(s)).tolist() for s in ("train", "val", "test")}
    assert counts == {"train": [8, 8], "val": [2, 2], "test": [10, 10]}
    root3 = make_folder("alias", classes=("x", "y"), n=3, splits=("train", "valid", "test"))
    assert len(_setup(root3).labels("val")) == 6


def test_resize_makes_mixed_sizes_usable(tmp_path):
    root = tmp_path / "sizes"
    for c, shape in (("a", (20, 20)), ("b", (10, 14))):
        (root / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full(shape, 50 * i, np.uint8)).save(root / c / f"{i}.png")
    dm = _setup(root, image_size=16)
    assert dm.image_size == (16, 16)
    assert dm.load_split("train")[0].shape[1:] == (1, 16, 16)


# ---- bad input ------------------------------------------------------------------------------------
def _err(root, **kwargs) -> str:
    with pytest.raises(CollectionError) as info:
        _setup(root, **kwargs)
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    assert str(root.parent) not in msg  # files are named relative to the data root, never by full path
    return msg


def test_mixed_sizes_without_resize(make_folder):
    root = make_folder(n=4)
    Image.fromarray(np.zeros((30, 20), np.uint8)).save(root / "malignant" / "big.png")
    msg = _err(root)
    assert (
        "malignant/big.png" in msg
        and "30x20" in msg
        and "set data.image_size (e.g. data.image_size=64)" in msg
    )


def test_empty_class(make_folder):
    root = make_folder(n=4)
    (root / "unknown").mkdir()
    msg = _err(root)
    assert "'unknown'" in msg and "no images" in msg


def test_a_gastric_collection_is_refused_with_the_data_module_that_reads_it(make_folder):
    """A manifest.csv collection (images/<patient>/, masks/<patient>/) read as class folders trained
    "images against masks" without a word; other files directly in the root are still ignored."""
    root = make_folder(n=4)
    (root / "README.txt").write_text("two classes\n")
    assert _setup(root).num_classes == 2
    (root / "manifest.csv").write_text("patient_id,image,mask,diagnosis\n")
    msg = _err(root)
    assert "the data root holds manifest.csv" in msg and "data=gastric" in msg


def test_non_image_file(make_folder):
    root = make_folder(n=4)
    (root / "benign" / "notes.csv").write_text("a,b\n1,2\n")
    msg = _err(root)
    assert "benign/notes.csv" in msg and "not a readable image" in msg


def test_truncated_image(make_folder):
    root = make_folder(n=4)
    data = (root / "benign" / "benign_000.png").read_bytes()
    (root / "benign" / "broken.png").write_bytes(data[:40])
    assert "benign/broken.png" in _err(root)


def test_every_bad_file_and_empty_class_is_reported_in_one_pass(make_folder):
    """The folder layout stopped at its first bad file, so a user fixed them one run at a time."""
    root = make_folder(n=4)
    (root / "benign" / "notes.csv").write_text("a,b\n1,2\n")
    data = (root / "malignant" / "malignant_000.png").read_bytes()
    (root / "malignant" / "broken.png").write_bytes(data[:40])
    (root / "unknown").mkdir()
    with pytest.raises(CollectionError) as info:
        _setup(root)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert [p for p in problems if "benign/notes.csv" in p and "not a readable image" in p]
    assert [p for p in problems if "malignant/broken.png" in p]
    assert [p for p in problems if "'unknown'" in p and "no images" in p]
    assert str(info.value).startswith("3 problems in the image folders; fix them and run again:")


def test_a_split_with_other_classes_is_reported_with_the_bad_files_of_the_others(make_folder):
    root = make_folder(classes=("x", "y"), n=3, splits=("train", "test"))
    (root / "test" / "y").rename(root / "test" / "z")
    (root / "train" / "x" / "notes.csv").write_text("a,b\n")
    with pytest.raises(CollectionError) as info:
        _setup(root)
    problems = info.value.problems
    assert len(problems) == 2, problems
    assert [p for p in problems if "train/x/notes.csv" in p and "not a readable image" in p]
    assert [p for p in problems if "'test' has classes ['x', 'z']" in p and "same class folders" in p]


def test_nan_in_float_tiff(make_folder):
    root = make_folder(n=4)
    bad = np.full((12, 12), 0.5, np.float32)
    bad[0, 0] = np.nan
    tifffile.imwrite(root / "benign" / "nan.tif", bad)
    msg = _err(root)
    assert "benign/nan.tif" in msg and "NaN" in msg


def test_multipage_tiff(make_folder):
    root = make_folder(n=4)
    tifffile.imwrite(root / "benign" / "stack.tif", np.zeros((3, 12, 12), np.uint8), photometric="minisblack")
    assert "benign/stack.tif" in _err(root)


def test_too_few_images_to_split(make_folder):
    msg = _err(make_folder(n=2))
    assert "'benign'" in msg and "2 images" in msg


def test_split_folders_disagree_on_classes(make_folder):
    root = make_folder(classes=("x", "y"), n=3, splits=("train", "test"))
    (root / "test" / "y").rename(root / "test" / "z")
    assert "same class folders" in _err(root)


def test_split_and_class_folders_mixed(make_folder):
    root = make_folder(classes=("train", "cats"), n=3)
    assert "either one folder per class" in _err(root)


def test_missing_root_and_unknown_class(make_folder, tmp_path):
    assert "not a directory" in _err(tmp_path / "nowhere")
    assert "'nope'" in _err(make_folder(n=4), classes=["benign", "nope"])


def test_bad_fractions(make_folder):
    root = make_folder(n=4)
    with pytest.raises(CollectionError, match="val_fraction"):
        FolderDataModule(root=str(root), val_fraction=0.0)
    with pytest.raises(CollectionError, match="below 1"):
        FolderDataModule(root=str(root), val_fraction=0.5, test_fraction=0.5)


def test_image_size_written_as_text_is_read_as_that_number(make_folder):
    """``data.image_size="32"`` (quoted YAML) gave 3x2 images."""
    dm = _setup(make_folder(n=5, size=12), image_size="32")
    assert dm.image_size == (32, 32)
    assert dm.load_split("train")[0].shape[1:] == (1, 32, 32)


@pytest.mark.parametrize("size", [True, "32px", ["32", "wide"]])
def test_image_size_boolean_or_other_text_is_refused(make_folder, size):
    with pytest.raises(
        CollectionError, match=r"^data\.image_size must be a positive int .* e\.g\. data\.image_size=64"
    ):
        FolderDataModule(root=str(make_folder(n=5)), image_size=size)


def test_the_source_hash_covers_the_split(make_folder):
    """A resume and a saved evaluation are matched to their data by ``source_hash``: for a folder
    collection it must change with the validation patients carved out of the training images
    (``data.val_fraction``, ``data.split_seed``), not only with the pixels (a fourteenth-session note
    suspected it did not), and stay for the same settings."""
    root = make_folder(n=20)
    base = _setup(root, val_fraction=0.2).source_hash()
    assert _setup(root, val_fraction=0.2).source_hash() == base
    assert _setup(root, val_fraction=0.3).source_hash() != base
    assert _setup(root, val_fraction=0.2, split_seed=1).source_hash() != base


def test_split_counts_are_each_fraction_of_a_class_rounded_to_the_nearest_image():
    """Per class: max(1, round(n x fraction)) for val, then test, the rest train. 10 images at 0.15 / 0.25
    give 2 / 2 / 6 (1.5 and 2.5 round to 2); 7 images give 1 / 2 / 4 (1.05 and 1.75)."""
    from gastrodistill.data.collections import stratified_split

    labels = np.array([0] * 10 + [1] * 7)
    parts = stratified_split(labels, {"val": 0.15, "test": 0.25}, 0, ["a", "b"])
    counts = {s: np.bincount(labels[idx], minlength=2).tolist() for s, idx in parts.items()}
    assert counts == {"train": [6, 4], "val": [2, 1], "test": [2, 2]}
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(17))  # a partition


def test_the_source_hash_covers_the_class_names(make_folder):
    """The same pixels under other class names are another collection (an artifact's source_hash)."""
    a = _setup(make_folder("a", classes=("benign", "malignant"), n=5))
    b = _setup(make_folder("b", classes=("cyst", "tumour"), n=5))
    np.testing.assert_array_equal(a._splits["train"][0], b._splits["train"][0])
    assert a.source_hash() != b.source_hash()
    assert _setup(make_folder("c", classes=("benign", "malignant"), n=5)).source_hash() == a.source_hash()


def test_two_validation_folders_are_refused(make_folder):
    root = make_folder(classes=("x", "y"), n=3, splits=("train", "val", "test"))
    (root / "val").rename(root / "valid")
    make_folder(str(root.relative_to(root.parent)), classes=("x", "y"), n=3, splits=("val",))
    assert sorted(p.name for p in root.iterdir()) == ["test", "train", "val", "valid"]
    assert "either one folder per class, or train/ and test/ (and optionally val/)" in _err(root)


def test_a_hidden_folder_inside_a_class_folder_is_ignored(make_folder):
    """A tool's cache folder (``benign/.thumbs/``) holds no images of the class: its files are not read."""
    root = make_folder(classes=("benign", "malignant"), n=5)
    (root / "benign" / ".thumbs").mkdir()
    (root / "benign" / ".thumbs" / "index.db").write_bytes(b"not an image")
    dm = _setup(root)
    assert sum(len(dm.labels(s)) for s in ("train", "val", "test")) == 10
