"""DICOM files as archives hold them: every common transfer syntax, no preamble, LUT-only display.

Each compressed file is made here with pydicom's encoders (``Dataset.compress``: RLE natively,
JPEG-LS through pyjpegls, JPEG 2000 through pylibjpeg-openjpeg) or, where pydicom has no encoder,
with a small lossless-JPEG encoder below (ITU-T T.81 Annex H, predictor 1) or Pillow (baseline
JPEG). Decoding uses the project's declared decoder (python-gdcm), checked explicitly as well.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from gastric_testdata import write_dicom
from PIL import Image
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

from gastrodistill.data.errors import ImageReadError
from gastrodistill.data.readers import read_image


def _image12(h: int = 24, w: int = 20, seed: int = 0) -> np.ndarray:
    """A 12-bit test image with a gradient, noise and both extremes (0 and 4095)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    img = (600 + 3000 * (yy * w + xx) / (h * w - 1) + rng.integers(-40, 40, (h, w))).clip(0, 4095)
    img = img.astype(np.uint16)
    img[0, 0], img[-1, -1] = 0, 4095
    return img


def _dataset(raw: np.ndarray, bits_stored: int = 12, ts=uid.ExplicitVRLittleEndian) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = uid.generate_uid()
    meta.TransferSyntaxUID = ts
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    allocated = 8 if raw.dtype == np.uint8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = raw.tobytes()
    return ds


# ---- a lossless JPEG (process 14, selection value 1) encoder, for the syntax pydicom cannot encode -----
def _huffman_table() -> tuple[bytes, dict[int, tuple[int, int]]]:
    """All 17 difference categories with 5-bit canonical codes (T.81 Annex C): (DHT payload, codes)."""
    counts = [0] * 16
    counts[4] = 17  # 17 codes of length 5
    codes = {cat: (cat, 5) for cat in range(17)}  # canonical: consecutive values from 0
    return bytes(counts) + bytes(range(17)), codes


def jpeg_lossless_sv1(img: np.ndarray, precision: int) -> bytes:
    """Encode ``[H, W]`` unsigned samples as a JPEG Lossless SV1 codestream (T.81 H.1, predictor Ra)."""
    h, w = img.shape
    x = img.astype(np.int64)
    pred = np.empty_like(x)
    pred[0, 0] = 1 << (precision - 1)
    pred[0, 1:] = x[0, :-1]  # first line: left neighbour
    pred[1:, 0] = x[:-1, 0]  # first column: the sample above
    pred[1:, 1:] = x[1:, :-1]  # predictor 1: left neighbour
    diff = (x - pred) % 65536
    diff = np.where(diff > 32768, diff - 65536, diff)
    dht, codes = _huffman_table()
    bits: list[str] = []
    for d in diff.ravel():
        d = int(d)
        cat = 0 if d == 0 else abs(d).bit_length()
        code, length = codes[cat]
        bits.append(format(code, f"0{length}b"))
        if 0 < cat < 16:
            extra = d if d > 0 else d - 1
            bits.append(format(extra & ((1 << cat) - 1), f"0{cat}b"))
    stream = "".join(bits)
    stream += "1" * (-len(stream) % 8)
    data = bytearray()
    for i in range(0, len(stream), 8):
        byte = int(stream[i : i + 8], 2)
        data.append(byte)
        if byte == 0xFF:
            data.append(0x00)  # byte stuffing
    out = bytearray(b"\xff\xd8")
    out += b"\xff\xc3" + (11).to_bytes(2, "big") + bytes([precision]) + h.to_bytes(2, "big")
    out += w.to_bytes(2, "big") + bytes([1, 1, 0x11, 0])
    out += b"\xff\xc4" + (2 + 1 + len(dht)).to_bytes(2, "big") + bytes([0x00]) + dht
    out += b"\xff\xda" + (8).to_bytes(2, "big") + bytes([1, 1, 0x00, 1, 0, 0])
    out += data + b"\xff\xd9"
    return bytes(out)


def _encapsulated(raw: np.ndarray, frame: bytes, ts, bits_stored: int) -> Dataset:
    ds = _dataset(raw, bits_stored, ts)
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.set_original_encoding(False, True)
    return ds


def _save(ds: Dataset, path) -> str:
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _by_gdcm(path) -> np.ndarray:
    """Decode with the declared decoder package only (python-gdcm), not any other installed plugin."""
    return pydicom.pixels.pixel_array(str(path), decoding_plugin="gdcm")


# ---- the issue's example: 12-bit MONOCHROME2, JPEG Lossless SV1 ------------------------------------------
def test_jpeg_lossless_sv1_12bit_reads_exactly(tmp_path):
    raw = _image12()
    ds = _encapsulated(raw, jpeg_lossless_sv1(raw, 12), uid.JPEGLosslessSV1, 12)
    path = _save(ds, tmp_path / "cr.dcm")
    assert np.array_equal(_by_gdcm(path), raw)
    got = read_image(path)
    np.testing.assert_allclose(got, raw / 4095.0, atol=1e-6)


def test_jpeg_lossless_16bit_precision_and_odd_size(tmp_path):
    rng = np.random.default_rng(3)
    raw = rng.integers(0, 65536, (7, 13)).astype(np.uint16)
    ds = _encapsulated(raw, jpeg_lossless_sv1(raw, 16), uid.JPEGLosslessSV1, 16)
    path = _save(ds, tmp_path / "x16.dcm")
    np.testing.assert_allclose(read_image(path), raw / 65535.0, atol=1e-6)


@pytest.mark.parametrize(
    "syntax",
    [uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless],
    ids=["rle", "jpeg-ls", "jpeg2000"],
)
def test_lossless_syntaxes_encoded_by_pydicom(tmp_path, syntax):
    raw = _image12(64, 48, seed=1)  # OpenJPEG's default 6 resolutions need at least 32 px a side
    ds = _dataset(raw)
    ds.compress(syntax, raw, encoding_plugin="pydicom" if syntax == uid.RLELossless else "")
    assert ds.file_meta.TransferSyntaxUID == syntax
    path = _save(ds, tmp_path / f"{syntax.keyword}.dcm")
    if syntax != uid.RLELossless:  # RLE is decoded by pydicom itself
        assert np.array_equal(_by_gdcm(path), raw)
    np.testing.assert_allclose(read_image(path), raw / 4095.0, atol=1e-6)


def test_jpeg_ls_near_lossless_stays_within_its_error_bound(tmp_path):
    raw = _image12(seed=2)
    ds = _dataset(raw)
    ds.compress(uid.JPEGLSNearLossless, raw, jls_error=3)
    path = _save(ds, tmp_path / "jls_near.dcm")
    got = read_image(path) * 4095.0
    assert np.abs(got - raw).max() <= 3 + 1e-3


@pytest.mark.parametrize("syntax", [uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit])
def test_jpeg_baseline_8bit_matches_pillow(tmp_path, syntax):
    """8-bit baseline JPEG, under its own syntax or JPEG Extended's (whose 8-bit samples any JPEG decoder
    reads: only its 12-bit ones need pylibjpeg-libjpeg)."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:32, :40]
    raw = ((yy * 5 + xx * 3) % 256 + rng.integers(0, 8, (32, 40))).clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(raw).save(buf, format="JPEG", quality=90)
    ds = _encapsulated(raw, buf.getvalue(), syntax, 8)
    path = _save(ds, tmp_path / "baseline.dcm")
    reference = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64)
    got = read_image(path) * 255.0
    assert np.abs(got - reference).max() <= 1.0 + 1e-4  # two IDCT implementations may differ by 1
    assert np.abs(got - raw).mean() < 3.0


def test_jpeg_extended_12bit_reads_or_names_its_only_decoder():
    """12-bit JPEG Extended: only pylibjpeg-libjpeg (GPL-3.0, not declared) decodes it through pydicom."""
    import importlib.util

    path = pydicom.data.get_testdata_file("JPEG-lossy.dcm")
    ds = pydicom.dcmread(path)
    assert ds.file_meta.TransferSyntaxUID == uid.JPEGExtended12Bit and ds.BitsStored == 12
    if importlib.util.find_spec("libjpeg") is not None:
        got = read_image(path)
        assert got.shape == (ds.Rows, ds.Columns) and 0.0 <= got.min() < got.max() <= 1.0
    else:
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        msg = str(info.value)
        assert "pip install pylibjpeg pylibjpeg-libjpeg" in msg and "GPL-3.0" in msg and "fine" in msg


@pytest.mark.parametrize(
    ("implicit", "little"), [(True, True), (False, True)], ids=["implicit-le", "explicit-le"]
)
def test_uncompressed_little_endian(tmp_path, implicit, little):
    raw = _image12(seed=5)
    ds = _dataset(raw, ts=uid.ImplicitVRLittleEndian if implicit else uid.ExplicitVRLittleEndian)
    path = tmp_path / "u.dcm"
    ds.save_as(path, implicit_vr=implicit, little_endian=little, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID
    np.testing.assert_allclose(read_image(path), raw / 4095.0, atol=1e-6)


def test_explicit_big_endian_equals_little_endian_copy():
    big = pydicom.data.get_testdata_file("MR_small_bigendian.dcm")
    little = pydicom.data.get_testdata_file("MR_small.dcm")
    assert pydicom.dcmread(big).file_meta.TransferSyntaxUID == uid.ExplicitVRBigEndian
    np.testing.assert_array_equal(read_image(big), read_image(little))


def test_pydicom_shipped_compressed_copies_equal_the_uncompressed_one():
    little = read_image(pydicom.data.get_testdata_file("MR_small.dcm"))
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"):
        np.testing.assert_array_equal(read_image(pydicom.data.get_testdata_file(name)), little, err_msg=name)


# ---- a missing decoder is named up front, and the file is not blamed ---------------------------------
def test_missing_decoder_names_the_package(tmp_path, monkeypatch):
    raw = _image12()
    path = _save(_encapsulated(raw, jpeg_lossless_sv1(raw, 12), uid.JPEGLosslessSV1, 12), tmp_path / "a.dcm")

    class _Unavailable:
        is_available = False

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda ts: _Unavailable())
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert "pip install python-gdcm" in msg and "JPEG Lossless" in msg and "a.dcm" in msg
    assert "re-export" not in msg and "file itself is fine" in msg


def test_every_compressed_syntax_of_the_issue_has_a_decoder_installed():
    from pydicom.pixels import get_decoder

    for ts in (
        uid.JPEGBaseline8Bit,
        uid.JPEGExtended12Bit,
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        uid.JPEGLSLossless,
        uid.JPEGLSNearLossless,
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.RLELossless,
    ):
        decoder = get_decoder(ts)
        assert decoder.is_available, ts.name
        if ts != uid.RLELossless:
            assert "gdcm" in decoder.available_plugins, ts.name


def test_unknown_transfer_syntax_is_refused_up_front(tmp_path):
    raw = _image12()
    ds = _dataset(raw, ts=uid.UID("1.2.3.4.5.6.7"))
    path = tmp_path / "odd.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True)
    with pytest.raises(
        ImageReadError, match=r"odd\.dcm: DICOM transfer syntax .*1\.2\.3\.4\.5\.6\.7.*not supported"
    ):
        read_image(path)


# ---- no preamble, no file meta ---------------------------------------------------------------------------
def test_no_preamble_no_file_meta_implicit_vr(tmp_path):
    raw = _image12(seed=6)
    ds = _dataset(raw)
    del ds.file_meta
    path = tmp_path / "bare.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    head = path.read_bytes()[:132]
    assert head[128:132] != b"DICM"
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(path)  # what users saw: "... Use force=True"
    np.testing.assert_allclose(read_image(path), raw / 4095.0, atol=1e-6)


def test_no_preamble_explicit_vr_is_detected(tmp_path):
    raw = _image12(seed=7)
    ds = _dataset(raw)
    del ds.file_meta
    path = tmp_path / "bare_explicit.dcm"
    ds.save_as(path, implicit_vr=False, little_endian=True, enforce_file_format=False)
    np.testing.assert_allclose(read_image(path), raw / 4095.0, atol=1e-6)


def test_forced_read_without_image_attributes_says_what_is_missing(tmp_path):
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.Rows = 4
    path = tmp_path / "notimage.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    msg = str(info.value)
    assert "not a DICOM image" in msg and "PixelData" in msg and "Columns" in msg
    assert "Doe" not in msg


@pytest.mark.parametrize(
    ("fmt", "name", "suffix"),
    [("PNG", "PNG", ".png"), ("JPEG", "JPEG", ".jpg"), ("TIFF", "TIFF", ".tif"), ("GIF", "GIF", ".gif")],
)
def test_another_image_format_named_dcm_is_named_by_its_first_bytes(tmp_path, fmt, name, suffix):
    """A PNG saved with a .dcm name was "not a DICOM image (no Rows, Columns, ...)": read as raw DICOM
    elements, it has none. Its magic number says what it is, and the message says so."""
    from gastrodistill.data.readers import probe_image

    path = tmp_path / "STM-0001_exam1.dcm"
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(path, format=fmt)
    expected = (
        f"{path}: this file is a {name} image named .dcm, not a DICOM file; give it its own extension "
        f"({suffix})"
    )
    for read in (read_image, probe_image):
        with pytest.raises(ImageReadError) as info:
            read(path)
        assert str(info.value) == expected


def test_garbage_named_dcm_is_not_a_dicom(tmp_path):
    path = tmp_path / "junk.dcm"
    path.write_bytes(b"\x00\x01 definitely not dicom" * 3)
    with pytest.raises(ImageReadError, match=r"junk\.dcm"):
        read_image(path)


# ---- the display pipeline: pydicom's modality, VOI and presentation steps ----------------------------
def _lut_item(descriptor: list[int], data: np.ndarray) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = descriptor
    item.LUTData = [int(v) for v in data]
    item["LUTData"].VR = "US"
    item["LUTDescriptor"].VR = "US"
    return item


@pytest.mark.parametrize("voi_bits", [8, 12])
def test_lut_only_12bit_file_uses_the_luts_not_the_stored_range(tmp_path, voi_bits):
    raw = _image12(seed=8)
    # Modality LUT: 4096 entries, first mapped 0, 16-bit output (a curved response, e.g. log exposure)
    modality = np.round(65535 * np.sqrt(np.arange(4096) / 4095.0)).astype(np.int64)
    # VOI LUT: a window over modality values 20000..50000 -> 8- or 12-bit output; first mapped 20000
    first, n_entries, top = 20000, 30001, 2**voi_bits - 1
    voi = np.round(np.linspace(0, top, n_entries)).astype(np.int64)
    ds = _dataset(raw)
    ds.ModalityLUTSequence = Sequence([_lut_item([4096, 0, 16], modality)])
    ds.ModalityLUTSequence[0].ModalityLUTType = "US"
    ds.VOILUTSequence = Sequence([_lut_item([n_entries, first, voi_bits], voi)])
    path = _save(ds, tmp_path / "lut.dcm")
    # independent computation: PS3.3 C.11.1 / C.11.2 table look-ups with clamping
    m = modality[np.clip(raw.astype(np.int64), 0, 4095)]
    v = voi[np.clip(m - first, 0, n_entries - 1)]
    expected = v / top
    got = read_image(path)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    stored_range = raw / 4095.0  # what the hand-written pipeline produced
    assert np.abs(got - stored_range).max() > 0.2
    assert (got == 0).any() and (got == 1).any()  # the LUT's window clips at both ends


def test_rescale_and_window_through_pydicom(tmp_path):
    raw = _image12(seed=9)
    ds = _dataset(raw)
    ds.RescaleSlope, ds.RescaleIntercept = 2, -1000
    ds.WindowCenter, ds.WindowWidth = 2000, 3000
    path = _save(ds, tmp_path / "win.dcm")
    values = raw * 2.0 - 1000.0
    # PS3.3 C.11.2.1.2.1 LINEAR to [0, 1]
    expected = np.clip((values - (2000 - 0.5)) / (3000 - 1) + 0.5, 0.0, 1.0)
    np.testing.assert_allclose(read_image(path), expected, atol=1e-5)


def test_monochrome1_and_presentation_lut_shape_invert_once(tmp_path):
    raw = _image12(seed=10)
    plain = read_image(write_dicom(tmp_path / "m2.dcm", raw))
    m1 = read_image(write_dicom(tmp_path / "m1.dcm", raw, PhotometricInterpretation="MONOCHROME1"))
    m1_inverse = read_image(
        write_dicom(
            tmp_path / "m1i.dcm", raw, PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE"
        )
    )
    m2_identity = read_image(write_dicom(tmp_path / "m2id.dcm", raw, PresentationLUTShape="IDENTITY"))
    np.testing.assert_allclose(m1, 1.0 - plain, atol=1e-6)
    np.testing.assert_allclose(m1_inverse, m1, atol=1e-6)  # INVERSE is how DX spells MONOCHROME1
    np.testing.assert_allclose(m2_identity, plain, atol=1e-6)
    # the inversion is over the nominal range, not the image's own min..max
    dark = read_image(write_dicom(tmp_path / "dark.dcm", (raw // 4), PhotometricInterpretation="MONOCHROME1"))
    np.testing.assert_allclose(dark, 1.0 - (raw // 4) / 4095.0, atol=1e-6)


def _window(values: np.ndarray, center: float, width: float, exact: bool = False) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR (or C.11.2.1.3.2 LINEAR_EXACT) to [0, 1], written out from the standard."""
    if exact:
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    lower, upper = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    if width == 1:
        return (values > lower).astype(np.float64)
    return np.where(values <= lower, 0.0, np.where(values > upper, 1.0, (values - lower) / (upper - lower)))


def test_monochrome1_is_inverted_after_the_window_not_before(tmp_path):
    """The VOI window selects values of the modality output; MONOCHROME1 (or INVERSE) only says the
    window's low end shows white (PS3.3 C.7.6.3.1.2, C.11): inverting first would window other values."""
    raw = _image12(seed=12)
    center, width = 1200, 700  # off the middle of the 12-bit range: inverting first changes the result
    expected = 1.0 - _window(raw.astype(np.float64), center, width)
    for fields in ({}, {"PresentationLUTShape": "INVERSE"}):
        path = write_dicom(
            tmp_path / "m1w.dcm",
            raw,
            PhotometricInterpretation="MONOCHROME1",
            WindowCenter=center,
            WindowWidth=width,
            **fields,
        )
        np.testing.assert_allclose(read_image(path), expected, atol=1e-6, err_msg=str(fields))


def test_presentation_lut_shape_inverse_inverts_over_the_nominal_range(tmp_path):
    """INVERSE on an image that fills a quarter of its 12-bit range: dark stays bright-on-the-other-side
    over the whole range (1 - v / 4095), not stretched to the image's own min..max."""
    dark = _image12(seed=13) // 4
    path = write_dicom(
        tmp_path / "dark.dcm", dark, PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE"
    )
    np.testing.assert_allclose(read_image(path), 1.0 - dark / 4095.0, atol=1e-6)


def test_a_presentation_lut_sequence_maps_each_value_through_its_nearest_entry(tmp_path):
    """A Presentation LUT (P-values of 8 bits) maps the window's output, [0, 1] spread over its 256 entries
    (the maximum onto the last, PS3.3 C.11.6), each value to its nearest entry; its output range (0..255)
    is scaled to [0, 1]."""
    raw = _image12(seed=11)  # holds 0 and 4095: its display values before the LUT span [0, 1]
    ds = _dataset(raw)
    lut = np.round(255 * np.sqrt(np.linspace(0, 1, 256))).astype(np.int64)
    ds.PresentationLUTSequence = Sequence([_lut_item([256, 0, 8], lut)])
    path = _save(ds, tmp_path / "plut.dcm")
    expected = lut[np.rint(raw / 4095.0 * 255).astype(int)] / 255.0
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_an_identity_presentation_lut_keeps_white_white(tmp_path):
    """pydicom 3.0.2's ``apply_presentation_lut`` scales to the LUT's entries in float32 and truncates: 1.0
    * 255 = 254.99998 went to entry 254 of 0..255, so white read 254/255 (a mutation review's finding;
    PS3.3 C.11.6: the maximum maps to the last entry). Each stored value goes to its nearest entry."""
    raw = _image12(seed=20)  # holds 0 and 4095
    ds = _dataset(raw)
    ds.PresentationLUTSequence = Sequence([_lut_item([256, 0, 8], np.arange(256))])
    out = read_image(_save(ds, tmp_path / "identity_plut.dcm"))
    assert out[raw == 0].max() == 0.0 and out[raw == 4095].min() == 1.0
    np.testing.assert_allclose(out, np.rint(raw / 4095.0 * 255) / 255, atol=1e-6)  # every stored value


def test_a_negative_rescale_slope_without_a_window_keeps_the_rescaled_values_order(tmp_path):
    """Slope -1, intercept 4095, no window: the modality values 4095 - raw over their own range [0, 4095]
    (a high stored value shows dark), not the stored values."""
    raw = _image12(seed=14)
    path = write_dicom(tmp_path / "neg.dcm", raw, RescaleSlope=-1, RescaleIntercept=4095)
    np.testing.assert_allclose(read_image(path), (4095.0 - raw) / 4095.0, atol=1e-6)


def test_signed_stored_values_fill_their_signed_range(tmp_path):
    """PixelRepresentation 1: 12-bit values -2048..2047, shown over that range (-2048 black, 2047 white)."""
    raw = _image12(seed=15).astype(np.int16) - 2048
    path = write_dicom(tmp_path / "signed.dcm", raw, PixelRepresentation=1)
    np.testing.assert_allclose(read_image(path), (raw + 2048.0) / 4095.0, atol=1e-6)


def test_the_narrowest_windows_the_standard_allows_are_applied(tmp_path):
    """WindowWidth 1 is a LINEAR window (a threshold at center - 0.5); LINEAR_EXACT may be narrower than 1
    (PS3.3 C.11.2.1.2, C.11.2.1.3.2). Neither is refused."""
    raw = _image12(seed=16)
    one = write_dicom(tmp_path / "w1.dcm", raw, WindowCenter=2000, WindowWidth=1)
    np.testing.assert_allclose(read_image(one), _window(raw.astype(np.float64), 2000, 1), atol=1e-6)
    exact = write_dicom(
        tmp_path / "exact.dcm", raw, WindowCenter=2000, WindowWidth=0.5, VOILUTFunction="LINEAR_EXACT"
    )
    np.testing.assert_allclose(
        read_image(exact), _window(raw.astype(np.float64), 2000, 0.5, exact=True), atol=1e-6
    )


def test_a_modality_lut_without_a_voi_step_is_scaled_by_its_output_range(tmp_path):
    """A Modality LUT of 16-bit output and no window: its values over 0..65535 (PS3.3 C.11.1)."""
    raw = _image12(seed=19)
    modality = np.round(65535 * np.sqrt(np.arange(4096) / 4095.0)).astype(np.int64)
    ds = _dataset(raw)
    ds.ModalityLUTSequence = Sequence([_lut_item([4096, 0, 16], modality)])
    ds.ModalityLUTSequence[0].ModalityLUTType = "US"
    path = _save(ds, tmp_path / "modality.dcm")
    np.testing.assert_allclose(read_image(path), modality[raw] / 65535.0, atol=1e-7)


def test_a_voi_lut_is_applied_rather_than_a_window_beside_it(tmp_path):
    """A file with both a VOI LUT and WindowCenter/WindowWidth: the LUT is the VOI step (as pydicom's
    ``apply_voi_lut(prefer_lut=True)`` and the module's docstring say); the window is not applied."""
    raw = _image12(seed=18)
    first, n_entries = 500, 3001  # a 16-bit VOI LUT over stored values 500..3500
    voi = np.round(np.linspace(0, 65535, n_entries) ** 2 / 65535).astype(np.int64)  # a curve, not a window
    ds = _dataset(raw)
    ds.VOILUTSequence = Sequence([_lut_item([n_entries, first, 16], voi)])
    ds.WindowCenter, ds.WindowWidth = 2000, 400
    path = _save(ds, tmp_path / "lut_and_window.dcm")
    expected = voi[np.clip(raw.astype(np.int64) - first, 0, n_entries - 1)] / 65535.0
    np.testing.assert_allclose(read_image(path), expected, atol=1e-6)


def test_only_the_window_applied_the_first_is_checked(tmp_path):
    """A file with two windows (a viewer's presets) shows the first; a second the reader does not apply
    may be one no viewer could use, and is no reason to refuse the image."""
    raw = _image12(seed=17)
    path = write_dicom(tmp_path / "two.dcm", raw, WindowCenter=[2000, 1000], WindowWidth=[3000, 0])
    np.testing.assert_allclose(read_image(path), _window(raw.astype(np.float64), 2000, 3000), atol=1e-6)


# ---- a corrupt codestream: an error naming the file, never an abort of the process ---------------------
def _corrupt_pair(tmp_path, kind: str) -> tuple[str, str]:
    """(valid file, the same with 40 bytes of its codestream flipped) for ``kind`` 'j2k' or 'jpeg'."""
    from pydicom.encaps import generate_frames

    if kind == "j2k":
        raw, bits = _image12(64, 48, seed=1), 12
        ds = _dataset(raw)
        ds.compress(uid.JPEG2000Lossless, raw)
        frame, syntax = next(generate_frames(ds.PixelData, number_of_frames=1)), uid.JPEG2000Lossless
    else:
        raw, bits = (_image12(64, 48, seed=1) >> 4).astype(np.uint8), 8
        buf = io.BytesIO()
        Image.fromarray(raw).save(buf, format="JPEG", quality=90)
        frame, syntax = buf.getvalue(), uid.JPEGBaseline8Bit
    flipped = frame[:20] + bytes(b ^ 0x5A for b in frame[20:60]) + frame[60:]
    good = _save(_encapsulated(raw, frame + b"\0" * (len(frame) % 2), syntax, bits), tmp_path / f"{kind}.dcm")
    bad = _encapsulated(raw, flipped + b"\0" * (len(flipped) % 2), syntax, bits)
    return good, _save(bad, tmp_path / f"{kind}_flipped.dcm")


@pytest.mark.parametrize("kind", ["j2k", "jpeg"])
def test_a_flipped_codestream_is_an_error_naming_the_file_not_an_abort(tmp_path, kind):
    """python-gdcm aborts the process on these files (exit status 134, nothing named); the reader tries
    the decoders that raise first and gdcm only in a child process."""
    import subprocess
    import sys

    good, bad = _corrupt_pair(tmp_path, kind)
    script = (
        "import sys\n"
        "from gastrodistill.data.errors import ImageReadError\n"
        "from gastrodistill.data.readers import read_image\n"
        "assert read_image(sys.argv[1]).shape == (64, 48)\n"
        "try:\n"
        "    read_image(sys.argv[2])\n"
        "except ImageReadError as e:\n"
        "    print(e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, good, bad], capture_output=True, text=True)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.startswith(f"{bad}: truncated or corrupt DICOM pixel data (")
    assert "re-export the file" in proc.stdout and " at 0x" not in proc.stdout  # no object addresses


def test_the_gdcm_fallback_decodes_in_a_child_process_exactly(tmp_path):
    from pathlib import Path

    from gastrodistill.data.dicom import _gdcm_in_child

    good, _ = _corrupt_pair(tmp_path, "j2k")
    pixels, why = _gdcm_in_child(Path(good))
    assert why == "" and np.array_equal(pixels, _image12(64, 48, seed=1))


def test_failing_decoders_log_no_tracebacks(tmp_path, caplog):
    """pydicom logs each failing plugin's traceback at ERROR; the reader's one error names the reasons."""
    good, _ = _corrupt_pair(tmp_path, "j2k")
    ds = pydicom.dcmread(good)
    frame = ds.PixelData
    ds.PixelData = frame[: len(frame) // 2 // 2 * 2]  # truncated codestream (gdcm raises on this one)
    truncated = _save(ds, tmp_path / "truncated.dcm")
    with caplog.at_level("DEBUG"), pytest.raises(ImageReadError, match="truncated or corrupt"):
        read_image(truncated)
    assert not [r for r in caplog.records if r.name.startswith("pydicom") and r.levelname == "ERROR"]
