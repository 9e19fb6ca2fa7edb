"""Image readers: 8/16-bit PNG and TIFF, DICOM display pipeline, masks, and every bad file."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from gastric_testdata import write_dicom
from PIL import Image

from gastrodistill.data.errors import ImageReadError
from gastrodistill.data.readers import probe_image, read_image, read_mask


@pytest.fixture
def raw12() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 4096, size=(40, 30)).astype(np.uint16)


@pytest.mark.parametrize("dtype,scale", [(np.uint8, 255.0), (np.uint16, 65535.0)])
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_png_and_tiff_scaled_by_bit_depth(tmp_path, dtype, scale, suffix):
    arr = np.random.default_rng(0).integers(0, int(scale) + 1, size=(37, 41)).astype(dtype)
    path = tmp_path / f"img{suffix}"
    if suffix == ".png":
        Image.fromarray(arr).save(path)
    else:
        tifffile.imwrite(path, arr)
    out = read_image(path)
    assert out.dtype == np.float32 and out.shape == (37, 41)
    np.testing.assert_allclose(out, arr.astype(np.float64) / scale, atol=1e-6)
    assert probe_image(path) == (37, 41)


def test_dicom_rescale_and_window(tmp_path, raw12):
    slope, intercept, centre, width = 2.0, -100.0, 3000.0, 4001.0
    path = write_dicom(
        tmp_path / "a.dcm",
        raw12,
        RescaleSlope=str(slope),
        RescaleIntercept=str(intercept),
        WindowCenter=str(centre),
        WindowWidth=str(width),
    )
    out = read_image(path)
    value = raw12 * slope + intercept
    lower = centre - 0.5 - (width - 1) / 2  # DICOM PS3.3 C.11.2.1.2.1: linear ramp over width - 1
    expected = np.clip((value - lower) / (width - 1), 0, 1)
    np.testing.assert_allclose(out, expected, atol=1e-6)
    # the rescale matters: windowing the stored values directly would give something else
    assert not np.allclose(out, np.clip((raw12 - lower) / (width - 1), 0, 1), atol=1e-3)
    assert probe_image(path) == raw12.shape


def test_dicom_monochrome1_inverted_and_padding_ignored(tmp_path, raw12):
    raw = np.clip(raw12, 100, 4095)
    raw[:5] = 0  # padding rows, outside the image content
    path = write_dicom(
        tmp_path / "m1.dcm",
        raw,
        PhotometricInterpretation="MONOCHROME1",
        PixelPaddingValue=0,
        RescaleSlope="1.5",
        RescaleIntercept="10",
    )
    out = read_image(path)
    # no window: the 12-bit stored range, rescaled (1.5 * [0, 4095] + 10), then inverted
    value = raw * 1.5 + 10
    expected = 1.0 - (value - 10) / (1.5 * 4095)
    np.testing.assert_allclose(out[5:], expected[5:], atol=1e-6)
    assert (out[:5] == 0).all()  # padding is 0, not inverted to white
    assert expected[:5].min() == 1.0


def test_dicom_without_window_matches_png_of_same_values(tmp_path):
    raw = np.random.default_rng(2).integers(0, 65536, size=(30, 20)).astype(np.uint16)
    dcm = write_dicom(tmp_path / "a.dcm", raw, BitsStored=16, HighBit=15)
    Image.fromarray(raw).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(dcm), read_image(tmp_path / "a.png"), atol=1e-6)


def test_pydicom_sample_ct_reads_through_its_rescale_over_the_signed_stored_range():
    """pydicom's own CT sample (signed 16-bit, Rescale Intercept -1024, no window): the stored range
    [-32768, 32767] after the modality transform maps onto [0, 1] (the module's rule without a VOI step),
    computed here by hand from the file's fields."""
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    path = get_testdata_file("CT_small.dcm")
    ds = dcmread(path)
    assert ds.PixelRepresentation == 1 and ds.BitsStored == 16 and "WindowCenter" not in ds
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    value = ds.pixel_array.astype(np.float64) * slope + intercept
    lower, upper = -(2.0**15) * slope + intercept, (2.0**15 - 1) * slope + intercept
    out = read_image(path)
    assert out.shape == (128, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, (value - lower) / (upper - lower), atol=1e-6)


def test_truncated_dicom_is_reported(tmp_path, raw12):
    path = write_dicom(tmp_path / "t.dcm", raw12)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 500])
    with pytest.raises(ImageReadError, match=r"t\.dcm"):
        read_image(path)


def test_rgb_png_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "colour.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(path)
    for fn in (read_image, probe_image):
        with pytest.raises(ImageReadError, match=r"colour\.png.*not 2-D grayscale"):
            fn(path)


def test_float_and_multipage_tiff_are_rejected(tmp_path):
    f = tmp_path / "float.tif"
    tifffile.imwrite(f, np.zeros((20, 20), dtype=np.float32))
    with pytest.raises(ImageReadError, match=r"float\.tif.*8- or 16-bit"):
        read_image(f)
    with pytest.raises(ImageReadError, match="8- or 16-bit"):
        probe_image(f)
    m = tmp_path / "pages.tif"
    tifffile.imwrite(m, np.zeros((3, 20, 20), dtype=np.uint16), photometric="minisblack")
    with pytest.raises(ImageReadError, match=r"pages\.tif"):
        read_image(m)


def test_truncated_png_is_reported_by_probe_and_reader(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 65535, (64, 64)).astype(np.uint16)).save(path)
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(ImageReadError, match=r"cut\.png.*truncated"):
        probe_image(path)
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_image(path)


def test_truncated_tiff_is_reported_by_probe(tmp_path):
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, np.ones((64, 64), dtype=np.uint16))
    path.write_bytes(path.read_bytes()[:4000])
    with pytest.raises(ImageReadError, match=r"cut\.tif"):
        probe_image(path)


def test_garbage_and_unknown_types(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image")
    with pytest.raises(ImageReadError, match=r"junk\.png.*not a readable image"):
        read_image(junk)
    other = tmp_path / "scan.jpg"
    other.write_bytes(b"\xff\xd8\xff")
    with pytest.raises(
        ImageReadError, match=r"scan\.jpg.*not a readable image"
    ):  # JPEG is read, this is broken
        read_image(other)


def test_masks_nonzero_is_stomach(tmp_path):
    m = np.zeros((10, 12), dtype=np.uint8)
    m[2:5, 3:7] = 1
    Image.fromarray(m).save(tmp_path / "m.png")
    Image.fromarray(m.astype(bool)).save(tmp_path / "b.png")  # 1-bit PNG
    for name in ("m.png", "b.png"):
        out = read_mask(tmp_path / name)
        assert out.dtype == bool and out.sum() == 12 and out[2:5, 3:7].all()
    assert probe_image(tmp_path / "b.png", mask=True) == (10, 12)


def test_a_grey_palette_png_reads_as_grayscale_and_a_colour_palette_is_refused(tmp_path):
    """Gastric images must be grayscale: a palette image whose entries are all greys is (same values as its
    'L' conversion); a palette of colours is still refused, at the probe as at the read."""
    g = np.random.default_rng(7).integers(0, 256, (12, 10), dtype=np.uint8)
    grey = tmp_path / "grey_palette.png"
    Image.fromarray(g).convert("P").save(grey)
    expected = np.asarray(Image.open(grey).convert("L"), dtype=np.float64) / 255.0
    assert probe_image(grey) == (12, 10)
    np.testing.assert_allclose(read_image(grey), expected, atol=1e-6)
    colour = tmp_path / "colour_palette.png"
    Image.fromarray(np.stack([g, g // 2, 255 - g], axis=-1)).quantize(16).save(colour)
    for call in (probe_image, read_image):
        with pytest.raises(ImageReadError, match="colour image \\(mode P"):
            call(colour)


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # pydicom's, for writing NaN and inf
@pytest.mark.parametrize(
    ("fields", "expect"),
    [
        ({"RescaleSlope": "0", "RescaleIntercept": "0"}, "DICOM RescaleSlope is 0"),
        ({"RescaleSlope": "NaN", "RescaleIntercept": "0"}, "DICOM RescaleSlope is nan"),
        ({"RescaleSlope": "1", "RescaleIntercept": "inf"}, "DICOM RescaleIntercept is inf"),
        ({"WindowCenter": "NaN", "WindowWidth": "400"}, "DICOM WindowCenter is nan"),
        ({"WindowCenter": "2000", "WindowWidth": "0"}, "DICOM WindowWidth is 0; a window must be at least 1"),
    ],
    ids=["slope-0", "slope-nan", "intercept-inf", "centre-nan", "width-0"],
)
def test_dicom_display_values_that_blank_the_image_are_refused_naming_file_and_field(
    tmp_path, raw12, fields, expect
):
    """These gave an all-0.0 image silently (a zero or NaN slope: ``hi > lo`` fails, zeros_like)."""
    path = write_dicom(tmp_path / "blank.dcm", raw12, **fields)
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            read(path)
        assert str(info.value).startswith(f"{path}: {expect}") and "re-export" in str(info.value)


def test_a_window_that_turns_every_pixel_white_is_refused_naming_file_and_window(tmp_path, raw12):
    """WindowCenter 100, WindowWidth 50 on values 0..4095: every pixel above the window, all 1.0."""
    raw = np.clip(raw12, 200, 4095)
    path = write_dicom(tmp_path / "white.dcm", raw, WindowCenter="100", WindowWidth="50")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: the DICOM display settings (WindowCenter 100, WindowWidth 50)")
    assert (
        f"stored values {raw.min()}..{raw.max()} into one grey level (255 of 255)" in msg
        and "check the window" in msg
    )


def test_a_dicom_with_one_stored_value_is_refused_as_blank(tmp_path):
    path = write_dicom(tmp_path / "flat.dcm", np.full((40, 30), 1234, np.uint16))
    with pytest.raises(ImageReadError, match=r"every stored pixel value is 1234, a blank image"):
        read_image(path)


def test_a_blank_dicom_in_the_manifest_is_reported_with_its_row(data_root, tmp_path):
    from gastric_testdata import image_pixels

    from gastrodistill.data.errors import ManifestError
    from gastrodistill.data.manifest import load_manifest, validate_files
    from gastrodistill.data.tiling import Geometry

    write_dicom(
        data_root / "images" / "A2_1.dcm",
        image_pixels(100, 90, 5) // 16,
        RescaleSlope="0",
        RescaleIntercept="0",
    )
    text = (data_root / "manifest.csv").read_text().replace("images/A2_1.png", "images/A2_1.dcm")
    (data_root / "manifest.csv").write_text(text)
    with pytest.raises(
        ManifestError, match=r"manifest\.csv line 5 \(image 'images/A2_1\.dcm'\): .*RescaleSlope is 0"
    ):
        validate_files(load_manifest(data_root), Geometry(32, 8), progress=False)


# ---- a DICOM breaker's findings (twentieth session) --------------------------------------------------
def _linear_window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR, to [0, 1]: what a viewer shows, written out independently of pydicom."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


def test_a_negative_rescale_slope_with_a_window_is_windowed_not_refused(tmp_path, raw12):
    """Slope -1, intercept 4095 and a window inside the rescaled values: refused as "one grey level" before
    (the window's output range ran downwards and was taken for an empty one)."""
    path = write_dicom(
        tmp_path / "neg.dcm",
        raw12,
        RescaleSlope=-1,
        RescaleIntercept=4095,
        WindowCenter=2048,
        WindowWidth=1000,
    )
    expected = _linear_window(4095.0 - raw12, 2048, 1000)  # below the window dark, above it bright
    np.testing.assert_allclose(read_image(path), expected, atol=1e-5)


def _write_32bit(path, raw: np.ndarray):
    import pydicom

    write_dicom(path, np.zeros_like(raw))
    ds = pydicom.dcmread(path)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
    ds.PixelData = raw.astype("<u4").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    "how",
    [
        "32-bit",
        "narrow-16-bit",
        "narrow-16-bit-identity-rescale",
        "narrow-16-bit-center-only",
        "narrow-12-bit",
    ],
)
def test_stored_values_that_show_as_one_store_grey_level_are_refused(tmp_path, raw12, how):
    """12-bit values in a 32-bit BitsStored, or values 30000..30102 in 16 bits, vary but all become one of
    the patch store's 256 levels (0 and 117): stored as flat patches before, with no warning. A
    WindowCenter without a WindowWidth is no window (pydicom applies none): the stored range is the cause,
    not a window (it was blamed). Values 2000..2007 in 12 bits: re-exporting with a smaller BitsStored
    is no advice there (it was given)."""
    fields: dict = {"BitsStored": 16, "HighBit": 15}
    if how == "32-bit":
        raw, path = raw12, _write_32bit(tmp_path / "b32.dcm", raw12)
    else:
        raw = 30000 + raw12 // 40
        if how.endswith("rescale"):
            fields.update(RescaleSlope=1, RescaleIntercept=0)
        if how.endswith("center-only"):
            fields.update(WindowCenter=30051)
        if how == "narrow-12-bit":
            raw, fields = 2000 + raw12 // 600, {}
        path = write_dicom(tmp_path / "b16.dcm", raw, **fields)
    assert np.ptp(raw) > 0  # the stored values vary
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: stored values {raw.min()}..{raw.max()} fill so little of the")
    assert "one grey level" in msg and "WindowCenter/WindowWidth" in msg
    assert ("real BitsStored" in msg) == (how != "narrow-12-bit")


def test_a_window_that_spreads_narrow_values_keeps_them(tmp_path, raw12):
    """The same narrow 16-bit values with a window over them are a good image."""
    raw = 30000 + raw12 // 40
    path = write_dicom(
        tmp_path / "w16.dcm", raw, BitsStored=16, HighBit=15, WindowCenter=30051, WindowWidth=103
    )
    np.testing.assert_allclose(read_image(path), _linear_window(raw.astype(float), 30051, 103), atol=1e-5)


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # the lower-case shape: written as found
@pytest.mark.parametrize("shape", ["IDENTITY", "identity"])  # pydicom applies a lower-case shape too
def test_monochrome1_with_presentation_lut_shape_identity_is_refused(tmp_path, raw12, shape):
    path = write_dicom(
        tmp_path / "m1id.dcm", raw12, PhotometricInterpretation="MONOCHROME1", PresentationLUTShape=shape
    )
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: DICOM PhotometricInterpretation MONOCHROME1")
    assert "PresentationLUTShape IDENTITY" in msg and "re-export" in msg


def _functional_group(**fields) -> object:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    group = Dataset()
    sequences = {"Window": "FrameVOILUTSequence", "Rescale": "PixelValueTransformationSequence"}
    for prefix, sequence in sequences.items():
        values = {k: v for k, v in fields.items() if k.startswith(prefix)}
        if values:
            item = Dataset()
            for k, v in values.items():
                setattr(item, k, v)
            setattr(group, sequence, Sequence([item]))
    return group


@pytest.mark.parametrize("where", ["shared", "per-frame", "both", "top-level"])
def test_an_enhanced_images_window_and_rescale_in_functional_groups_are_applied(tmp_path, raw12, where):
    """Enhanced XA/XRF images keep rescale and window in functional groups, where the top-level reader
    never looked: the full 12-bit range was shown instead of the window. The first frame's group wins
    over the shared one; top-level attributes are kept."""
    from pydicom.sequence import Sequence

    shared = _functional_group(WindowCenter=1000, WindowWidth=600, RescaleSlope=2, RescaleIntercept=-100)
    frame = _functional_group(WindowCenter=1500, WindowWidth=800)
    fields: dict = {"NumberOfFrames": 1}
    if where in ("shared", "both", "top-level"):
        fields["SharedFunctionalGroupsSequence"] = Sequence([shared])
    if where in ("per-frame", "both"):
        fields["PerFrameFunctionalGroupsSequence"] = Sequence([frame])
    if where == "top-level":
        fields.update(WindowCenter=2000, WindowWidth=3000)
    path = write_dicom(tmp_path / f"{where}.dcm", raw12, **fields)
    values = raw12 * 2.0 - 100.0 if where != "per-frame" else raw12.astype(float)
    center, width = {"shared": (1000, 600), "per-frame": (1500, 800), "both": (1500, 800)}.get(
        where, (2000, 3000)
    )
    np.testing.assert_allclose(read_image(path), _linear_window(values, center, width), atol=1e-5)


def test_an_empty_file_a_dicomdir_and_float_pixels_say_what_they_are(tmp_path, raw12):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.dcm: empty file \(0 bytes\)"):
        read_image(empty)

    for told_by in ("class", "records"):  # either says it: the SOP class, or the directory records alone
        (tmp_path / told_by).mkdir()
        dicomdir = write_dicom(tmp_path / told_by / "DICOMDIR", raw12)
        ds = pydicom.dcmread(dicomdir)
        if told_by == "class":  # save_as(enforce_file_format) writes the file meta's class from SOPClassUID
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
        else:
            ds.DirectoryRecordSequence = Sequence([Dataset()])
        ds.save_as(dicomdir, enforce_file_format=True)
        with pytest.raises(ImageReadError, match=r"a DICOMDIR .*list the image files it refers to"):
            read_image(dicomdir)

    floats = write_dicom(tmp_path / "float.dcm", raw12)
    ds = pydicom.dcmread(floats)
    del ds.PixelData
    ds.BitsAllocated = 32
    ds.FloatPixelData = raw12.astype("<f4").tobytes()
    ds.save_as(floats, enforce_file_format=True)
    with pytest.raises(ImageReadError, match=r"float pixel data .* is not supported"):
        read_image(floats)

    headed = write_dicom(tmp_path / "nophoto.dcm", raw12)
    ds = pydicom.dcmread(headed)
    del ds.PhotometricInterpretation
    ds.save_as(headed, enforce_file_format=True)
    with pytest.raises(ImageReadError) as info:
        read_image(headed)
    assert "no PhotometricInterpretation" in str(info.value) and "'DICM' header" not in str(info.value)


# ---- gaps a mutation review found: each test fails on one plausible slip in data/dicom.py -------------
def test_a_pixel_padding_range_is_padding_whichever_end_is_given_first(tmp_path, raw12):
    """PixelPaddingValue with PixelPaddingRangeLimit pads every stored value between the two (PS3.3
    C.7.5.1.1.2), in either order; the other pixels keep their display values (12-bit range, no window)."""
    raw = np.clip(raw12, 300, 4095)
    raw[:4], raw[4:8] = 0, 150  # a padding border of two values
    pad = raw <= 200
    for value, limit in ((0, 200), (200, 0)):
        path = write_dicom(tmp_path / "pad.dcm", raw, PixelPaddingValue=value, PixelPaddingRangeLimit=limit)
        out = read_image(path)
        assert (out[pad] == 0).all(), (value, limit)
        np.testing.assert_allclose(out[~pad], raw[~pad] / 4095.0, atol=1e-6)


def test_a_dicom_whose_pixels_outside_the_padding_are_one_value_is_refused_as_blank(tmp_path):
    """Padding varies from the image (0 around 1234): the image itself is still one grey value."""
    raw = np.full((40, 30), 1234, np.uint16)
    raw[:5] = 0
    path = write_dicom(tmp_path / "flat.dcm", raw, PixelPaddingValue=0)
    with pytest.raises(ImageReadError, match=r"every stored pixel value is 1234, a blank image"):
        read_image(path)


def test_dicom_patient_names_the_patient_by_id_issuer_name_and_birth_date(tmp_path, raw12):
    """``dicom_patient``: the four header values, stripped, in that order; None without a PatientID (a
    name alone identifies no one reliably)."""
    from gastrodistill.data.dicom import dicom_patient

    path = write_dicom(
        tmp_path / "p.dcm",
        raw12,
        IssuerOfPatientID="HOSP-A",
        PatientID=" MRN-00042 ",
        PatientName="Doe^Jane ",
        PatientBirthDate="19600101",
    )
    assert dicom_patient(path) == ("HOSP-A", "MRN-00042", "Doe^Jane", "19600101")
    assert dicom_patient(write_dicom(tmp_path / "noname.dcm", raw12, PatientName="")) == (
        "",
        "PID-0042",
        "",
        "",
    )
    assert dicom_patient(write_dicom(tmp_path / "noid.dcm", raw12, PatientID="")) is None


def test_a_multi_frame_or_multi_sample_dicom_is_refused_naming_why(tmp_path, raw12):
    """Two frames, or three samples per pixel under a MONOCHROME2 label: each refused for what it is
    (not as a pixel array of the wrong shape)."""
    frames = write_dicom(tmp_path / "two.dcm", np.concatenate([raw12, raw12]), Rows=40, NumberOfFrames=2)
    with pytest.raises(ImageReadError, match=r"two\.dcm: multi-frame DICOM; store one 2-D image per file"):
        read_image(frames)
    samples = write_dicom(
        tmp_path / "rgb.dcm",
        np.repeat(raw12, 3, axis=1),
        Columns=30,
        SamplesPerPixel=3,
        PlanarConfiguration=0,
    )
    with pytest.raises(
        ImageReadError, match=r"rgb\.dcm: DICOM with PhotometricInterpretation MONOCHROME2 is"
    ):
        read_image(samples)


# ---- gaps a mutation review of data/readers.py found: each test fails on one plausible slip there ---------
def _png_with_chunk(data: bytes, kind: bytes, payload: bytes, before: bytes) -> bytes:
    """``data`` (a PNG file) with a chunk ``kind`` inserted before its first ``before`` chunk, CRC and all."""
    import struct
    import zlib

    pos = 8
    while data[pos + 4 : pos + 8] != before:
        pos += 12 + struct.unpack(">I", data[pos : pos + 4])[0]
    chunk = struct.pack(">I", len(payload)) + kind + payload
    return data[:pos] + chunk + struct.pack(">I", zlib.crc32(kind + payload)) + data[pos:]


def _values_12bit(h: int = 9, w: int = 11, seed: int = 0) -> np.ndarray:
    """12-bit values with both ends (0 and 4095) present."""
    raw = np.random.default_rng(seed).integers(0, 4096, (h, w)).astype(np.uint16)
    raw[0, 0], raw[-1, -1] = 0, 4095
    return raw


def test_a_dicom_without_preamble_named_dicom_is_read_as_dicom(tmp_path, raw12):
    """A ``.dicom`` name says DICOM even without the DICM prefix (otherwise Pillow is asked and fails)."""
    import pydicom

    from gastrodistill.data.readers import is_dicom

    ds = pydicom.dcmread(write_dicom(tmp_path / "a.dcm", raw12))
    del ds.file_meta
    ds.preamble = None
    path = tmp_path / "bare.dicom"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    assert path.read_bytes()[128:132] != b"DICM" and is_dicom(path)
    np.testing.assert_allclose(read_image(path), raw12 / 4095.0, atol=1e-6)


def test_upper_case_suffixes_keep_the_png_sbit_and_the_tiff_max_sample_value(tmp_path):
    """``.PNG`` and ``.TIF`` are the PNG and TIFF readers' (a case-sensitive suffix read them with Pillow
    alone, without the file's bit depth: 12-bit values divided by 65535)."""
    from PIL.PngImagePlugin import PngInfo

    raw = _values_12bit()
    info = PngInfo()
    info.add(b"sBIT", bytes([12]))
    Image.fromarray(raw).save(tmp_path / "UP.PNG", pnginfo=info)
    tifffile.imwrite(tmp_path / "UP.TIF", raw, extratags=[(281, "H", 1, 4095, True)])
    for name in ("UP.PNG", "UP.TIF"):
        np.testing.assert_allclose(read_image(tmp_path / name), raw / 4095.0, atol=1e-7, err_msg=name)


def test_a_missing_file_of_another_format_is_named_with_why_it_cannot_be_opened(tmp_path):
    path = tmp_path / "gone.jpg"
    for call in (read_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            call(path)
        assert str(info.value) == f"{path}: cannot open (No such file or directory)"


def test_a_colour_png_sbit_gives_the_largest_channel_depth(tmp_path):
    """sBIT of an RGB PNG holds one depth per channel (PNG spec 11.3.3.4): 10, 12, 11 -> 12 bits, not the
    first channel's 10 (which would take the 12-bit values for shifted ones)."""
    import cv2

    from gastrodistill.data.readers import decode

    rgb = np.stack([_values_12bit(seed=s) for s in range(3)], axis=-1)
    assert cv2.imwrite(str(tmp_path / "plain.png"), rgb[:, :, ::-1])  # OpenCV writes BGR
    path = tmp_path / "rgb12.png"
    path.write_bytes(
        _png_with_chunk((tmp_path / "plain.png").read_bytes(), b"sBIT", bytes([10, 12, 11]), b"IDAT")
    )
    out = decode(path, colour=True)
    assert out.bits == 12
    np.testing.assert_allclose(out.to_unit(), rgb / 4095.0, atol=1e-7)


def test_an_sbit_chunk_after_the_image_data_is_not_the_bit_depth(tmp_path):
    """sBIT must precede IDAT (PNG spec 5.6); one written after it is ignored: the container's 16 bits."""
    raw = _values_12bit()
    Image.fromarray(raw).save(tmp_path / "plain.png")
    path = tmp_path / "late.png"
    path.write_bytes(_png_with_chunk((tmp_path / "plain.png").read_bytes(), b"sBIT", bytes([12]), b"IEND"))
    np.testing.assert_allclose(read_image(path), raw / 65535.0, atol=1e-7)


def test_a_bit_depth_outside_one_to_the_container_is_refused_naming_the_range(tmp_path):
    path = tmp_path / "d.png"
    raw = _values_12bit()
    Image.fromarray(raw).save(path)
    for bits in (0, 17):
        with pytest.raises(ImageReadError) as info:
            read_image(path, bit_depth=bits)
        assert str(info.value) == (
            f"{path}: data.bit_depth={bits} does not fit its 16-bit pixels; use a value from 1 to 16 "
            "(or null to use the file's own bit depth)"
        )
    np.testing.assert_allclose(read_image(path, bit_depth=16), raw / 65535.0, atol=1e-7)
    np.testing.assert_allclose(read_image(path, bit_depth=12), raw / 4095.0, atol=1e-7)  # 4095 is allowed


def test_png_sbit_12_values_that_reach_4095_are_not_taken_for_shifted_ones(tmp_path):
    """4095 is the largest 12-bit value, not a sign of values shifted to the top of 16 bits."""
    from PIL.PngImagePlugin import PngInfo

    raw = _values_12bit()
    info = PngInfo()
    info.add(b"sBIT", bytes([12]))
    Image.fromarray(raw).save(tmp_path / "s.png", pnginfo=info)
    np.testing.assert_allclose(read_image(tmp_path / "s.png"), raw / 4095.0, atol=1e-7)


def test_tiff_bit_depth_tags_the_data_contradict_give_the_container_depth(tmp_path):
    """MaxSampleValue 1000 under values up to 3600, or 4095 in an 8-bit TIFF: no bit depth after all, so
    the container's (65535 or 255 is white); the values are never shifted (that is for PNG only)."""
    raw = np.random.default_rng(4).integers(600, 3601, (9, 11)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "m16.tif", raw, extratags=[(281, "H", 1, 1000, True)])
    np.testing.assert_allclose(read_image(tmp_path / "m16.tif"), raw / 65535.0, atol=1e-7)
    small = (raw // 16).astype(np.uint8)
    tifffile.imwrite(tmp_path / "m8.tif", small, extratags=[(281, "H", 1, 4095, True)])
    np.testing.assert_allclose(read_image(tmp_path / "m8.tif"), small / 255.0, atol=1e-7)


def test_a_mask_keeps_its_nonzero_pixels_whatever_its_sbit_says(tmp_path):
    """A mask's values are stomach or not, never a bit depth: values 0/100 under sBIT 1 would be shifted
    to 0 (an empty mask) if the sBIT were applied."""
    from PIL.PngImagePlugin import PngInfo

    m = np.zeros((10, 12), np.uint8)
    m[2:6, 3:9] = 100
    info = PngInfo()
    info.add(b"sBIT", bytes([1]))
    Image.fromarray(m).save(tmp_path / "m.png", pnginfo=info)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), m != 0)


def test_palette_masks_of_colours_and_grey_alpha_masks_are_read_and_probed(tmp_path):
    """A mask may be a palette of colours (red stomach on black) or grey + alpha: nonzero is stomach."""
    idx = np.zeros((10, 12), np.uint8)
    idx[3:7, 2:8] = 1
    pal = Image.fromarray(idx, mode="P")
    pal.putpalette([0, 0, 0, 255, 0, 0])
    pal.save(tmp_path / "pal.png")
    la = np.stack([idx * 200, np.full_like(idx, 255)], axis=-1)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    for name in ("pal.png", "la.png"):
        np.testing.assert_array_equal(read_mask(tmp_path / name), idx != 0, err_msg=name)
        assert probe_image(tmp_path / name, mask=True) == (10, 12), name


def test_a_palette_whose_red_equals_green_but_not_blue_is_colour(tmp_path):
    """Every entry used must have R = G = B to be a grey: (10, 10, 200) is a blue."""
    img = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), mode="P")
    img.putpalette([10, 10, 200, 60, 60, 60])
    img.save(tmp_path / "bluish.png")
    for call in (probe_image, read_image):
        with pytest.raises(ImageReadError, match=r"bluish\.png: colour image \(mode P, 1 channel\(s\)\)"):
            call(tmp_path / "bluish.png")


def test_a_truncated_jpeg_or_a_png_with_a_bad_crc_is_refused_by_the_probe(tmp_path):
    """The probe decodes formats without checksums (a JPEG cut short) and checks PNG chunk CRCs."""
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.jpg", quality=95)
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    Image.fromarray(noise).save(tmp_path / "crc.png")
    data = bytearray((tmp_path / "crc.png").read_bytes())
    end = data.index(b"IEND") - 4  # the IDAT's CRC ends where IEND's length field begins
    data[end - 1] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(data))
    for name in ("cut.jpg", "crc.png"):
        with pytest.raises(ImageReadError, match=rf"{name.replace('.', '[.]')}: truncated or corrupt image"):
            probe_image(tmp_path / name)


def test_a_boolean_tiff_is_a_mask_and_a_black_and_white_colour_image(tmp_path):
    """A 1-bit TIFF: a mask as is, a collection image 0/255 (its white is 1, not 255)."""
    from gastrodistill.data.readers import decode

    m = np.zeros((10, 12), bool)
    m[2:5, 3:9] = True
    tifffile.imwrite(tmp_path / "m.tif", m)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.tif"), m)
    assert probe_image(tmp_path / "m.tif", mask=True) == (10, 12)
    out = decode(tmp_path / "m.tif", colour=True)
    assert out.bits == 1
    np.testing.assert_array_equal(out.to_container(), m.astype(np.uint8) * 255)
    np.testing.assert_array_equal(out.to_unit(), m.astype(np.float32))


def test_a_tiff_one_byte_short_is_refused_by_the_probe(tmp_path):
    path = tmp_path / "short.tif"
    tifffile.imwrite(path, np.ones((64, 64), dtype=np.uint16))
    assert probe_image(path) == (64, 64)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ImageReadError) as info:
        probe_image(path)
    assert str(info.value) == f"{path}: truncated TIFF (pixel data runs past the end of the file)"


def test_a_dicom_mask_is_refused_by_the_reader_and_the_probe(tmp_path, raw12):
    path = write_dicom(tmp_path / "mask.dcm", raw12)
    for call in (read_mask, lambda p: probe_image(p, mask=True)):
        with pytest.raises(ImageReadError) as info:
            call(path)
        assert str(info.value) == f"{path}: masks must be PNG or TIFF (nonzero = stomach), not DICOM"


def test_colour_tiffs_planar_with_alpha_or_grey_with_alpha_are_read_as_their_colours(tmp_path):
    """Planar RGB (channels first in the file) becomes channels last; an alpha sample is dropped, the
    colour or grey before it kept."""
    from gastrodistill.data.readers import decode

    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (5, 6, 4), dtype=np.uint8)
    tifffile.imwrite(
        tmp_path / "planar.tif", rgba[..., :3].transpose(2, 0, 1), photometric="rgb", planarconfig="separate"
    )
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=[2])
    tifffile.imwrite(tmp_path / "ga.tif", rgba[..., :2], photometric="minisblack", extrasamples=[2])
    for name, expected in (
        ("planar.tif", rgba[..., :3]),
        ("rgba.tif", rgba[..., :3]),
        ("ga.tif", rgba[..., 0]),
    ):
        np.testing.assert_array_equal(decode(tmp_path / name, colour=True).pixels, expected, err_msg=name)


def test_a_colour_tiff_tifffile_cannot_decode_is_read_by_pillow_and_a_grey_one_is_refused(
    tmp_path, monkeypatch
):
    """E.g. LZW without imagecodecs: colour reading falls back on Pillow; grayscale reading names the
    TIFF reader's error."""
    import gastrodistill.data.readers as readers

    def cannot(path, where, colour, mask):
        raise ImageReadError(f"{where}: truncated or corrupt TIFF (no codec); re-export the file")

    monkeypatch.setattr(readers, "_read_tiff", cannot)
    rgb = np.random.default_rng(6).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    path = tmp_path / "lzw.tif"
    Image.fromarray(rgb).save(path, compression="tiff_lzw")
    np.testing.assert_array_equal(readers.decode(path, colour=True).pixels, rgb)
    with pytest.raises(ImageReadError, match=r"lzw\.tif: truncated or corrupt TIFF \(no codec\)"):
        readers.decode(path)
    # Pillow's 32-bit integer mode: values 0..65535 become uint16, others are refused
    ints = tmp_path / "int32.tif"
    Image.fromarray(np.array([[0, 65535], [3, 4]], np.int32)).save(ints)
    out = readers.decode(ints, colour=True)
    assert out.pixels.dtype == np.uint16 and out.pixels.tolist() == [[0, 65535], [3, 4]] and out.bits == 16
    for bad in (-5, 70000):
        Image.fromarray(np.array([[0, bad], [3, 4]], np.int32)).save(ints)
        with pytest.raises(ImageReadError, match=r"int32\.tif: 32-bit integer pixels outside 0\.\.65535"):
            readers.decode(ints, colour=True)


def test_colour_reading_checks_float_and_integer_types_itself(tmp_path):
    """decode(colour=True) hands on floats in [0, 1] (both ends included) and 8/16-bit integers only."""
    from gastrodistill.data.readers import decode

    good = np.array([[0.0, 0.25], [0.5, 1.0]], np.float32)
    tifffile.imwrite(tmp_path / "f.tif", good)
    out = decode(tmp_path / "f.tif", colour=True)
    assert out.full_scale == 1.0 and out.bits is None
    np.testing.assert_array_equal(out.pixels, good)
    cases = {
        "nan.tif": (np.array([[0.0, np.nan]], np.float32), "float image contains NaN or infinite values"),
        "over.tif": (np.array([[0.0, 1.5]], np.float32), r"float image values lie in \[0, 1\.5\], outside"),
        "i32.tif": (np.array([[0, 7]], np.int32), r"pixel type int32 is not supported"),
    }
    for name, (arr, msg) in cases.items():
        tifffile.imwrite(tmp_path / name, arr)
        with pytest.raises(ImageReadError, match=rf"{name.replace('.', '[.]')}: {msg}"):
            decode(tmp_path / name, colour=True)
