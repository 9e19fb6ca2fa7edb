"""Bit depth (PNG sBIT, TIFF tags, data.bit_depth) and EXIF/TIFF orientation, for every data layout."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import tifffile
from gastric_testdata import OVERLAP, PATCH, write_dicom, write_manifest
from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from gastrodistill.data.errors import ImageReadError
from gastrodistill.data.gastric import GastricPatchDataModule
from gastrodistill.data.readers import decode, orient, probe_image, read_image, read_mask


def _values_600_3600(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(600, 3601, (h, w)).astype(np.uint16)


def _png16(path, arr: np.ndarray, sbit: int | None = None):
    info = PngInfo()
    if sbit is not None:
        info.add(b"sBIT", bytes([sbit]))
    Image.fromarray(arr).save(path, pnginfo=info)
    return path


# ---- bit depth ---------------------------------------------------------------------------------------------
def test_png_sbit_12_equals_dicom_bitsstored_12(tmp_path):
    """The issue's example: the same 12-bit values in a 16-bit PNG with sBIT 12 and in a DICOM."""
    raw = _values_600_3600()
    png = read_image(_png16(tmp_path / "a.png", raw, sbit=12))
    dcm = read_image(write_dicom(tmp_path / "a.dcm", raw))  # BitsStored 12, no window
    np.testing.assert_array_equal(png, dcm)
    np.testing.assert_allclose(png, raw / 4095.0, atol=1e-7)


def test_png_sbit_with_values_shifted_per_the_png_spec(tmp_path):
    raw = _values_600_3600(seed=1)
    shifted = (raw << 4) | (raw >> 8)  # PNG spec 12.5: left-shift with bit replication
    got = read_image(_png16(tmp_path / "s.png", shifted.astype(np.uint16), sbit=12))
    np.testing.assert_allclose(got, raw / 4095.0, atol=1e-7)


def test_png_without_sbit_keeps_the_container_depth_unless_bit_depth_is_given(tmp_path):
    raw = _values_600_3600(seed=2)
    path = _png16(tmp_path / "n.png", raw)
    np.testing.assert_allclose(read_image(path), raw / 65535.0, atol=1e-7)
    np.testing.assert_allclose(read_image(path, bit_depth=12), raw / 4095.0, atol=1e-7)
    with pytest.raises(ImageReadError, match=r"n\.png: pixel value 3600 is above 1023.*bit_depth=10"):
        read_image(path, bit_depth=10)


def test_tiff_max_sample_value_and_bits_per_sample(tmp_path):
    raw = _values_600_3600(seed=3)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, raw, extratags=[(281, "H", 1, 4095, True)])  # MaxSampleValue
    np.testing.assert_allclose(read_image(path), raw / 4095.0, atol=1e-7)
    per_image_max = tmp_path / "m2.tif"  # a writer that stores the image's own maximum: still 12 bits
    tifffile.imwrite(per_image_max, raw, extratags=[(281, "H", 1, int(raw.max()), True)])
    np.testing.assert_allclose(read_image(per_image_max), raw / 4095.0, atol=1e-7)
    plain = tmp_path / "p.tif"
    tifffile.imwrite(plain, raw)
    np.testing.assert_allclose(read_image(plain), raw / 65535.0, atol=1e-7)


def test_decoded_to_container_keeps_levels_distinct():
    from gastrodistill.data.readers import Decoded

    v = np.arange(4096, dtype=np.uint16).reshape(64, 64)
    out = Decoded(v, 4095.0, 12).to_container()
    assert out.dtype == np.uint16 and out.max() == 65535 and len(np.unique(out)) == 4096
    np.testing.assert_allclose(out / 65535.0, v / 4095.0, atol=1 / 65535)


def _gastric_root(tmp_path, name, writer):
    root = tmp_path / name
    rows = []
    for i, (pid, diag, split) in enumerate(
        [
            ("A", "gastritis", "train"),
            ("B", "non-gastritis", "train"),
            ("C", "gastritis", "test"),
            ("D", "non-gastritis", "test"),
        ]
    ):
        img = root / "images" / f"{pid}.png"
        img.parent.mkdir(parents=True, exist_ok=True)
        writer(img, _values_600_3600(48, 48, seed=i))
        mask = root / "masks" / f"{pid}.png"
        mask.parent.mkdir(parents=True, exist_ok=True)
        stomach = np.zeros((48, 48), np.uint8)
        stomach[:24] = 255  # the top row of patches is stomach, the bottom row irrelevant: every class
        Image.fromarray(stomach).save(mask)
        rows.append(
            {
                "image": f"images/{pid}.png",
                "patient_id": pid,
                "diagnosis": diag,
                "split": split,
                "mask": f"masks/{pid}.png",
            }
        )
    write_manifest(root, rows)
    return root


def _unresized_module(root, stores, bit_depth=None) -> GastricPatchDataModule:
    """The gastric data module at the patches' own size (no storage resize), all patients in train."""
    return GastricPatchDataModule(
        root,
        stores,
        patch_size=PATCH,
        overlap=OVERLAP,
        storage_size=None,
        val_fraction=0.0,
        progress=False,
        bit_depth=bit_depth,
    )


def _levels(dm) -> dict[str, int]:
    return {s: int(np.count_nonzero(h)) for s, h in dm.store.meta["pixel_histograms"].items() if sum(h)}


def test_every_image_above_data_bit_depth_is_named_by_its_line_and_nothing_is_left(tmp_path):
    """Pixel values above ``data.bit_depth`` are found as the build reads the pixels: the first such image
    stopped the build, named by its path alone, the others found one rebuild at a time, and an empty
    store folder was left behind (a newcomer's finding). Now every such image is named by its manifest
    line, once all are read, and the store folder made for the build is gone."""
    from gastrodistill.data.errors import ManifestError

    def writer(path, arr):  # patients A and C (the first and third rows) reach 4095 + 600 = 4695
        return _png16(path, arr + (4095 if path.stem in "AC" else 0))

    root = _gastric_root(tmp_path, "mixed", writer)
    stores = tmp_path / "made" / "stores"
    with pytest.raises(ManifestError) as info:
        _unresized_module(root, stores, bit_depth=12).prepare_data()
    text = str(info.value)
    assert text.startswith("2 of 4 images hold pixel values above 4095, the largest of data.bit_depth=12")
    tops = {pid: int(_values_600_3600(48, 48, seed=i).max()) + 4095 for i, pid in ((0, "A"), (2, "C"))}
    assert "manifest.csv line 2 (image 'images/A.png'): pixel value " + str(tops["A"]) in text
    assert "manifest.csv line 4 (image 'images/C.png'): pixel value " + str(tops["C"]) in text
    assert "B.png" not in text and "D.png" not in text
    assert not (tmp_path / "made").exists()  # the folders made for the store, removed again
    _unresized_module(root, stores, bit_depth=13).prepare_data()  # 13 bits hold them: the store is built
    assert (tmp_path / "made" / "stores").is_dir()


@pytest.mark.parametrize("how", ["no-sbit", "sbit", "bit_depth"])
def test_store_grey_levels_reported_and_warned(tmp_path, caplog, how):
    writer = (lambda p, a: _png16(p, a, sbit=12)) if how == "sbit" else _png16
    root = _gastric_root(tmp_path, how, writer)
    dm = _unresized_module(root, tmp_path / "stores", bit_depth=12 if how == "bit_depth" else None)
    with caplog.at_level(logging.DEBUG, logger="gastrodistill.data.patch_store"):
        dm.prepare_data()
    dm.setup()
    levels = _levels(dm)
    text = caplog.text
    assert "grey levels used (of 256): train" in text
    if how == "no-sbit":  # 600..3600 / 65535 -> about 12 uint8 levels: the silent loss
        assert levels["train"] <= 16
        assert "uses only" in text and "data.bit_depth" in text
    else:  # 600..3600 / 4095 -> 37..224: every level in between
        assert levels["train"] >= 180
        assert "uses only" not in text


def test_an_image_with_few_grey_levels_is_named_by_its_line_when_its_split_fills_the_range(tmp_path, caplog):
    """Patient A's 12-bit values in a 16-bit PNG without sBIT (about 12 levels) beside B's values that fill
    the range: the split's count is high, so only a count per image names A (a DICOM breaker's finding)."""

    def writer(path, arr):
        return _png16(path, arr if path.name == "A.png" else (arr * 16).astype(np.uint16))

    root = _gastric_root(tmp_path, "mixed", writer)
    dm = _unresized_module(root, tmp_path / "stores")
    with caplog.at_level(logging.WARNING, logger="gastrodistill.data.patch_store"):
        dm.prepare_data()
    dm.setup()
    assert _levels(dm)["train"] >= 180 and "uses only" not in caplog.text  # the split's warning is silent
    assert "manifest.csv line(s) 2: each image uses fewer than 64 of 256 grey levels" in caplog.text
    assert "data.bit_depth" in caplog.text and "A.png" not in caplog.text


def test_bit_depth_is_part_of_the_store_key(tmp_path):
    root = _gastric_root(tmp_path, "k", _png16)
    a = GastricPatchDataModule(root, tmp_path / "s", patch_size=PATCH, overlap=OVERLAP, progress=False)
    b = GastricPatchDataModule(
        root, tmp_path / "s", patch_size=PATCH, overlap=OVERLAP, progress=False, bit_depth=12
    )
    a.prepare_data()
    b.prepare_data()
    assert a._store_path != b._store_path


# ---- orientation ---------------------------------------------------------------------------------------
def _asym(h: int = 6, w: int = 10) -> np.ndarray:
    return (np.arange(h * w, dtype=np.uint8).reshape(h, w) * 3 + 7).astype(np.uint8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow_exif_transpose(tmp_path, orientation):
    img = Image.fromarray(_asym())
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    got = decode(path).pixels
    np.testing.assert_array_equal(got, expected)
    assert probe_image(path) == expected.shape
    # the same orientation as a TIFF tag gives the same pixels (TIFF 6.0 tag 274)
    tif = tmp_path / f"o{orientation}.tif"
    tifffile.imwrite(tif, _asym(), extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(decode(tif).pixels, expected)
    assert probe_image(tif) == expected.shape


def test_phone_jpeg_stored_sideways_is_read_upright(tmp_path):
    upright = np.zeros((40, 24), np.uint8)
    upright[:8] = 255  # a bright band at the top
    stored = np.rot90(upright, k=1)  # the camera's sensor layout: turned 90 degrees counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif, quality=95)
    got = read_image(path)
    assert got.shape == (40, 24)
    assert got[:8].mean() > 0.9 and got[10:].mean() < 0.1


def test_masks_are_turned_like_their_images(tmp_path):
    m = np.zeros((6, 10), np.uint8)
    m[0, :3] = 255
    exif = Image.Exif()
    exif[0x0112] = 8
    path = tmp_path / "m.png"
    Image.fromarray(m).save(path, exif=exif)
    np.testing.assert_array_equal(read_mask(path), orient(m, 8) != 0)


def test_orient_is_the_eight_cases():
    a = _asym(2, 3)
    results = {k: orient(a, k) for k in range(1, 9)}
    assert len({r.tobytes() + bytes(r.shape) for r in results.values()}) == 8
    np.testing.assert_array_equal(orient(orient(a, 6), 8), a)
    np.testing.assert_array_equal(orient(a, 5), a.T)


def test_mask_turned_by_90_degrees_is_named_as_such(make_root):
    from gastric_testdata import stomach_mask, write_png

    from gastrodistill.data.errors import ManifestError
    from gastrodistill.data.manifest import load_manifest, validate_files
    from gastrodistill.data.tiling import Geometry

    root = make_root("turned")
    write_png(root / "masks" / "A1_0.png", stomach_mask(90, 100, 0))  # the image is 100x90
    with pytest.raises(ManifestError) as info:
        validate_files(load_manifest(root), Geometry(PATCH, OVERLAP), progress=False)
    msg = str(info.value)
    assert "masks/A1_0.png' is 90x100 px but the image is 100x90 px" in msg
    assert "differ only by a transpose" in msg
