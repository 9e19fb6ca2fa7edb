"""The one image-reading stack of the project: every data layout (gastric manifest, class folders) reads here.

A file becomes a :class:`Decoded`: its pixels as stored, turned upright, and the value that means
white. Nothing else from the file travels further, so no header field (patient name, IDs, dates) can
reach a patch store.

- **Orientation.** EXIF ``Orientation`` (JPEG, PNG ``eXIf``, WebP; tag 0x0112) and the TIFF
  ``Orientation`` tag (274) are applied on load, so a phone photo stored sideways is read upright
  (the eight cases of the EXIF 2.3 / TIFF 6.0 specification, section 8, tag 274).
- **Bit depth** (the value that means white, ``full_scale``), first match wins:
  ``bit_depth`` given by the caller (``data.bit_depth``, for a whole collection) -> PNG ``sBIT`` ->
  TIFF ``MaxSampleValue`` (its bit length: 3600 and 4095 both mean 12 bits) -> TIFF
  ``BitsPerSample`` -> the container (255 for 8 bit, 65535 for 16 bit). A 16-bit PNG whose ``sBIT``
  says 12 may hold the 12-bit values as they are (many medical exporters) or shifted to the top of
  16 bits (the PNG specification, section 12.5): when a value exceeds 4095 the second is assumed
  and the values are shifted back, so both give the same pixels.
- **DICOM** (pydicom) goes through the display pipeline of a viewer, with pydicom's own functions:
  ``apply_modality_lut`` (Rescale Slope/Intercept or a Modality LUT Sequence) ->
  ``apply_voi_lut`` (a VOI LUT Sequence or Window Center/Width) -> MONOCHROME1 inversion or
  ``apply_presentation_lut`` (Presentation LUT Shape / Sequence), scaled to [0, 1] by the output
  range of the last step (PS3.3 C.11; PS3.4 N.2.1.1). Without a VOI transform the range is that of
  the stored bits (``BitsStored``) after the modality transform, so a DICOM with BitsStored 12 and a
  PNG of the same values with ``sBIT`` 12 give equal pixels. Pixel-padding values are set to 0
  whatever the inversion. The transfer syntax is checked before any pixel is decoded, and a
  compressed syntax without an installed decoder names the package to install. Files without the
  128-byte preamble and ``DICM`` prefix (or without file meta) are read with ``force=True``; without a
  transfer syntax, the encoding pydicom detects is used (implicit VR little endian by default).
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gastrodistill.data.errors import ImageReadError

if TYPE_CHECKING:
    from collections.abc import Callable

    import tifffile
    from PIL import Image
    from pydicom.dataset import Dataset

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
_FIX = "save it as a single-channel 8- or 16-bit grayscale PNG/TIFF or a MONOCHROME DICOM"
_COLOUR_FIX = "save it as an 8- or 16-bit grayscale or RGB image"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_TIFF_ORIENTATION = "Orientation"
#: Python packages that decode a compressed DICOM transfer syntax (pydicom decoder plugins).
DICOM_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.201": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K
}
DEFAULT_DECODER_PACKAGE = "python-gdcm"


@dataclass(frozen=True)
class Decoded:
    """Pixels of one file, upright.

    ``pixels``: ``[H, W]`` (grayscale) or ``[H, W, 3]`` (colour; only when colour was allowed),
    uint8/uint16 as stored, or float32 in [0, 1] (DICOM after its display pipeline, float TIFFs).
    ``full_scale``: the value that means white (``2**bits - 1`` of the data's bit depth; 1.0 for
    float). ``bits``: that bit depth (``None`` for float).
    """

    pixels: np.ndarray
    full_scale: float
    bits: int | None

    def to_unit(self) -> np.ndarray:
        """float32 in [0, 1], same shape: ``pixels / full_scale``."""
        if self.pixels.dtype.kind == "f":
            return self.pixels.astype(np.float32, copy=False)
        return (self.pixels.astype(np.float64) / self.full_scale).astype(np.float32)

    def to_container(self) -> np.ndarray:
        """uint8/uint16 rescaled so that ``full_scale`` maps to the container's maximum (255/65535).

        Distinct stored values stay distinct (a 12-bit value ``v`` becomes ``round(v * 65535 / 4095)``);
        float pixels pass through.
        """
        if self.pixels.dtype.kind == "f":
            return self.pixels.astype(np.float32, copy=False)
        top = float(np.iinfo(self.pixels.dtype).max)
        if self.full_scale == top:
            return self.pixels
        scaled = np.rint(self.pixels.astype(np.float64) * (top / self.full_scale))
        return scaled.astype(self.pixels.dtype)


def _why(exc: BaseException, path: Path, where: str) -> str:
    """An exception's text with the file's full path replaced by ``where`` (messages name files as given)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text.replace(str(path), where).replace(str(path.resolve()), where)


def _fmt(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in PNG_SUFFIXES:
        return "png"
    if suffix in TIFF_SUFFIXES:
        return "tiff"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot open ({e.strerror})") from e
    if head[128:132] == b"DICM":
        return "dicom"
    return "pillow"


def is_dicom(path: str | Path) -> bool:
    """Whether :func:`decode` reads ``path`` as DICOM: a ``.dcm``/``.dicom`` name, or ``DICM`` at byte 128
    (DICOM files are often stored without an extension). Raises ImageReadError if it cannot be opened."""
    return _fmt(Path(path)) == "dicom"


# ---- orientation ---------------------------------------------------------------------------------
def orient(arr: np.ndarray, orientation: int | None) -> np.ndarray:
    """Turn ``[H, W, ...]`` pixels upright for an EXIF/TIFF Orientation value (1-8; others: unchanged).

    2 mirror, 3 rotate 180, 4 flip, 5 transpose, 6 rotate 90 clockwise, 7 transverse,
    8 rotate 90 counter-clockwise (the stored image is shown after this operation).
    """
    if orientation == 2:
        return arr[:, ::-1]
    if orientation == 3:
        return arr[::-1, ::-1]
    if orientation == 4:
        return arr[::-1]
    if orientation == 5:
        return arr.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(arr, k=-1)
    if orientation == 7:
        return arr[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(arr, k=1)
    return arr


def _oriented_shape(h: int, w: int, orientation: int | None) -> tuple[int, int]:
    return (w, h) if orientation in (5, 6, 7, 8) else (h, w)


def transposed_hint(a: tuple[int, int], b: tuple[int, int]) -> str:
    """Advice for two differing sizes: a transpose (one file sideways) or a real size difference."""
    if tuple(a) == tuple(b)[::-1]:
        return (
            "the two sizes differ only by a transpose: one of the files is stored sideways (turned by 90"
            " degrees) without an EXIF/TIFF Orientation tag that says so; rotate that file upright instead"
            " of resizing (a resize would squash it and keep it sideways)"
        )
    return ""


# ---- bit depth -----------------------------------------------------------------------------------
def _png_sbit(path: Path) -> int | None:
    """Largest significant-bits value of the PNG ``sBIT`` chunk (PNG spec 11.3.3.4), or ``None``."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != _PNG_SIGNATURE:
                return None
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return None
                length, kind = struct.unpack(">I4s", head)
                if kind == b"sBIT":
                    data = f.read(length)
                    return max(data) if data else None
                if kind in (b"IDAT", b"IEND"):
                    return None  # sBIT must precede the image data
                f.seek(length + 4, os.SEEK_CUR)
    except OSError:
        return None


def _bits_of(max_value: int) -> int:
    return max(1, int(max_value).bit_length())


def apply_bit_depth(
    arr: np.ndarray, where: str, bit_depth: int | None, file_bits: int | None, shifted_ok: bool
) -> tuple[np.ndarray, int]:
    """Integer pixels and their bit depth: ``bit_depth`` (checked), else the file's, else the container's."""
    container = arr.dtype.itemsize * 8
    if bit_depth is not None:
        bits = int(bit_depth)
        if not 1 <= bits <= container:
            raise ImageReadError(
                f"{where}: data.bit_depth={bits} does not fit its {container}-bit pixels; "
                f"use a value from 1 to {container} (or null to use the file's own bit depth)"
            )
        top = arr.max(initial=0)
        if top > 2**bits - 1:
            raise ImageReadError(
                f"{where}: pixel value {int(top)} is above {2**bits - 1}, the largest of "
                f"data.bit_depth={bits}; raise data.bit_depth or set it to null"
            )
        return arr, bits
    if file_bits is None or not 1 <= file_bits < container:
        return arr, container
    if arr.max(initial=0) > 2**file_bits - 1:
        if not shifted_ok:  # e.g. a TIFF MaxSampleValue the data exceed: not a bit depth after all
            return arr, container
        # PNG: values stored shifted to the top of the container (PNG spec 12.5); shift them back
        return np.right_shift(arr, container - file_bits).astype(arr.dtype), file_bits
    return arr, file_bits


# ---- PNG / JPEG / other Pillow formats ----------------------------------------------------------
_PIL_GRAY_INT = {"L": np.uint8, "I;16": np.uint16, "I;16B": np.uint16, "I;16L": np.uint16, "I": np.uint16}


def _pil_open(path: Path, where: str):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageReadError(
            f"{where}: not a readable image ({_why(e, path, where)}); remove it from the data or re-export it"
        ) from e


def _pil_orientation(img: Image.Image) -> int | None:
    try:
        value = img.getexif().get(_EXIF_ORIENTATION)
    except Exception:  # noqa: BLE001 - a broken EXIF block must not stop the read
        return None
    return int(value) if isinstance(value, int) else None


def _read_pillow(path: Path, where: str, colour: bool, mask: bool) -> tuple[np.ndarray, int | None]:
    """Pixels (``[H, W]`` gray or ``[H, W, 3]`` colour, native depth) and the EXIF orientation."""
    import cv2

    img = _pil_open(path, where)
    try:
        if getattr(img, "n_frames", 1) > 1:
            raise ImageReadError(f"{where}: image has {img.n_frames} frames; store one image per file")
        rawmode = img.tile[0].args if img.tile else ""  # before getexif(), which may load the image
        rawmode = rawmode[0] if isinstance(rawmode, tuple) else rawmode
        orientation = _pil_orientation(img)
        mode = img.mode
        gray_ok = set(_PIL_GRAY_INT) | ({"1", "P", "LA"} if mask else {"1", "LA", "F"} if colour else set())
        if not colour and mode not in gray_ok and not (mode == "P" and _grey_palette(img)):
            kind = "colour" if mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "P", "PA") else "unsupported"
            raise ImageReadError(
                f"{where}: {kind} image (mode {mode}, {len(img.getbands())} channel(s)) is not 2-D grayscale "
                f"with 8 or 16 bits; {_FIX}"
            )
        if mode in ("RGB", "RGBA") and isinstance(rawmode, str) and ";16" in rawmode:
            # Pillow truncates 16-bit colour to 8 bits; OpenCV keeps it (and returns BGR).
            bgr = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
            if bgr is not None and bgr.dtype == np.uint16 and bgr.ndim == 3:
                return np.ascontiguousarray(bgr[:, :, 2::-1][:, :, :3]), orientation
        if mode == "1" or mode == "LA":
            img = img.convert("L")
        elif mode in ("P", "PA"):
            # a palette of greys (GIFs and small PNGs of X-rays) is grayscale, not colour: read as RGB it
            # would make a whole folder of grayscale images 3-channel
            img = img.convert("L") if mask or _grey_palette(img) else img.convert("RGB")
        elif mode not in _PIL_GRAY_INT and mode not in ("F", "RGB"):
            img = img.convert("RGB")
        img.load()
        arr = np.asarray(img)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(
            f"{where}: truncated or corrupt image data ({_why(e, path, where)}); re-export the file"
        ) from e
    finally:
        img.close()
    if img.mode == "I":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(f"{where}: 32-bit integer pixels outside 0..65535; {_FIX}")
        arr = arr.astype(np.uint16)
    return arr, orientation


def _grey_palette(img: Image.Image) -> bool:
    """Whether every palette entry a palette image (mode P or PA) uses is a grey (R = G = B)."""
    palette = np.asarray(img.getpalette("RGB") or [], dtype=np.int64).reshape(-1, 3)
    index = np.asarray(img)
    used = np.unique(index[..., 0] if index.ndim == 3 else index)  # PA: index and alpha
    rgb = palette[used[used < len(palette)]]
    return bool(len(rgb)) and bool((rgb == rgb[:, :1]).all())


def _grey_palette_file(path: Path, where: str) -> bool:
    """:func:`_grey_palette` on a copy of its own (the probe's image must stay unread for ``verify``);
    False when the pixels cannot be read, which the probe then reports."""
    img = _pil_open(path, where)
    try:
        return _grey_palette(img)
    except Exception:  # noqa: BLE001 - a broken file: the probe's verify() names it
        return False
    finally:
        img.close()


def _probe_pillow(path: Path, where: str, mask: bool) -> tuple[int, int]:
    img = _pil_open(path, where)
    try:
        allowed = set(_PIL_GRAY_INT) | ({"1", "P", "LA"} if mask else set())
        if img.mode not in allowed and not (img.mode == "P" and _grey_palette_file(path, where)):
            kind = (
                "colour" if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "P", "PA") else "unsupported"
            )
            raise ImageReadError(
                f"{where}: {kind} image (mode {img.mode}, {len(img.getbands())} channel(s)) is not 2-D "
                f"grayscale with 8 or 16 bits; {_FIX}"
            )
        w, h = img.size
        if img.format == "PNG":
            img.verify()  # walks every chunk and checks its CRC: catches truncated/corrupt files cheaply
            img.close()
            img = _pil_open(path, where)  # verify() leaves the image unusable: reopen for the EXIF block
        else:
            img.load()
        orientation = _pil_orientation(img)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        raise ImageReadError(
            f"{where}: truncated or corrupt image ({_why(e, path, where)}); re-export the file"
        ) from e
    finally:
        img.close()
    return _oriented_shape(h, w, orientation)


# ---- TIFF ----------------------------------------------------------------------------------------
def _tiff_page(tif: tifffile.TiffFile, where: str):
    if len(tif.pages) != 1:
        raise ImageReadError(f"{where}: TIFF with {len(tif.pages)} pages; store one 2-D image per file")
    return tif.pages[0]


def _tag(page: tifffile.TiffPage, name: str) -> int | None:
    tag = page.tags.get(name)
    if tag is None:
        return None
    value = tag.value
    if isinstance(value, tuple | list):
        value = max(value) if value else None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _check_gray_tiff(page: tifffile.TiffPage, where: str, mask: bool) -> None:
    if page.samplesperpixel != 1 or len(page.shape) != 2:
        raise ImageReadError(f"{where}: TIFF of shape {page.shape} is not 2-D grayscale; {_FIX}")
    ok = (np.uint8, np.uint16) + ((np.bool_,) if mask else ())
    if np.dtype(page.dtype).type not in ok:
        raise ImageReadError(f"{where}: pixel type {page.dtype} is not 8- or 16-bit unsigned; {_FIX}")


def _read_tiff(path: Path, where: str, colour: bool, mask: bool) -> tuple[np.ndarray, int | None, int | None]:
    """Pixels (native depth), orientation tag, and the file's bit depth (MaxSampleValue, BitsPerSample)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = _tiff_page(tif, where)
            if not colour:
                _check_gray_tiff(page, where, mask)
                arr = page.asarray()
            else:
                series = tif.series[0]
                arr, axes = series.asarray(), series.axes
                if "S" in axes and axes.index("S") != arr.ndim - 1:  # planar colour -> channels last
                    arr = np.moveaxis(arr, axes.index("S"), -1)
            orientation = _tag(page, _TIFF_ORIENTATION)
            max_sample = _tag(page, "MaxSampleValue")
            bits = _bits_of(max_sample) if max_sample else int(page.bitspersample)
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile raises many types for broken files
        raise ImageReadError(
            f"{where}: truncated or corrupt TIFF ({_why(e, path, where)}); re-export the file"
        ) from e
    return arr, orientation, bits


def _probe_tiff(path: Path, where: str, mask: bool) -> tuple[int, int]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = _tiff_page(tif, where)
            _check_gray_tiff(page, where, mask)
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)), default=0)
            if end > os.path.getsize(path) or not page.dataoffsets:
                raise ImageReadError(f"{where}: truncated TIFF (pixel data runs past the end of the file)")
            return _oriented_shape(int(page.shape[0]), int(page.shape[1]), _tag(page, _TIFF_ORIENTATION))
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(
            f"{where}: truncated or corrupt TIFF ({_why(e, path, where)}); re-export the file"
        ) from e


# ---- DICOM ---------------------------------------------------------------------------------------
_DICOM_IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation", "PixelData")
#: Media Storage Directory Storage (PS3.4 Annex B.5): a DICOMDIR, the index of a file-set.
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Functional groups of an enhanced image whose attributes the display pipeline reads at the top level
#: (PS3.3 C.7.6.16.2.9 Pixel Value Transformation, C.7.6.16.2.10 Frame VOI LUT).
_FRAME_GROUP_ATTRIBUTES = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence"),
}


def _dcmread(path: Path, where: str):
    """Read a DICOM file; without preamble/``DICM`` or file meta, read it with ``force=True``."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False  # dcmread names the problem below
    if empty:
        raise ImageReadError(f"{where}: empty file (0 bytes); put the image there or remove its row")
    forced = False
    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        forced = True
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as e:  # noqa: BLE001 - anything pydicom raises on a non-DICOM file
            raise ImageReadError(
                f"{where}: not a readable DICOM file ({_why(e, path, where)}); re-export the file"
            ) from e
    except (OSError, EOFError, ValueError) as e:
        raise ImageReadError(
            f"{where}: not a readable DICOM file ({_why(e, path, where)}); re-export the file"
        ) from e
    if "DirectoryRecordSequence" in ds or ds.file_meta.get("MediaStorageSOPClassUID") == _DICOMDIR_CLASS:
        raise ImageReadError(
            f"{where}: a DICOMDIR (the index of a DICOM disc or folder), not an image; list the image files "
            "it refers to instead"
        )
    missing = [a for a in _DICOM_IMAGE_ATTRIBUTES if a not in ds]
    if missing == ["PixelData"] and ("FloatPixelData" in ds or "DoubleFloatPixelData" in ds):
        raise ImageReadError(
            f"{where}: float pixel data (FloatPixelData / DoubleFloatPixelData) is not supported; re-export "
            "the image with integer pixels"
        )
    if missing:
        hint = "; a file without the 'DICM' header is read as raw DICOM data elements" if forced else ""
        raise ImageReadError(
            f"{where}: not a DICOM image (no {', '.join(missing)}{hint}); re-export it as a DICOM image"
        )
    meta = ds.file_meta
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit is None or implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little in (None, True) else ExplicitVRBigEndian
    return ds


def check_transfer_syntax(ds: Dataset, where: str) -> None:
    """Refuse, before decoding, a transfer syntax that pydicom cannot decode here; name what to install."""
    from pydicom.pixels import get_decoder

    ts = ds.file_meta.TransferSyntaxUID
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        decoder = None
    name = getattr(ts, "name", str(ts))
    if decoder is None:
        raise ImageReadError(
            f"{where}: DICOM transfer syntax {name} ({ts}) is not supported by pydicom; re-export the image "
            "uncompressed (Explicit VR Little Endian) or with JPEG Lossless, JPEG-LS, JPEG 2000 or RLE"
        )
    twelve_bit_jpeg = str(ts) == "1.2.840.10008.1.2.4.51" and int(ds.get("BitsStored", 8) or 8) > 8
    libjpeg = "pylibjpeg" in getattr(decoder, "available_plugins", ()) and _has_module("libjpeg")
    if twelve_bit_jpeg and not libjpeg:
        raise ImageReadError(
            f"{where}: DICOM pixel data compressed as JPEG Extended with 12-bit samples ({ts}) can only be "
            "decoded by pylibjpeg-libjpeg, which gastrodistill does not install because of its licence "
            "(GPL-3.0): pip install pylibjpeg pylibjpeg-libjpeg if that licence suits you, or re-export "
            "the image losslessly (JPEG Lossless, JPEG-LS, JPEG 2000, RLE or uncompressed). The file "
            "itself is fine."
        )
    if not decoder.is_available:
        package = DICOM_DECODER_PACKAGES.get(str(ts), DEFAULT_DECODER_PACKAGE)
        raise ImageReadError(
            f"{where}: DICOM pixel data compressed as {name} ({ts}) needs a decoder that is not installed: "
            f"pip install {package} (a dependency of gastrodistill: reinstall the package with its "
            "dependencies). The file itself is fine."
        )


#: Compressed transfer syntaxes on which python-gdcm, pydicom's first decoder plugin here, can abort the
#: whole process on a corrupt codestream instead of raising (a C++ exception escapes: "terminate called
#: after throwing ...", exit status 134). Measured with python-gdcm 3.x on JPEG Baseline and on both JPEG
#: 2000 syntaxes with 40 bytes inside the codestream flipped (``tests/data/test_dicom_syntaxes.py``); JPEG
#: Extended shares the Baseline codec. For these the plugins that raise decode first, in this order.
GDCM_MAY_ABORT = {
    "1.2.840.10008.1.2.4.50": ("pillow",),  # JPEG Baseline (8-bit)
    "1.2.840.10008.1.2.4.51": ("pylibjpeg", "pillow"),  # JPEG Extended
    "1.2.840.10008.1.2.4.90": ("pylibjpeg", "pillow"),  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": ("pylibjpeg", "pillow"),  # JPEG 2000
}
#: Decodes one file with python-gdcm in a child process (argv: DICOM path, .npy output path).
_GDCM_CHILD = (
    "import sys, numpy, pydicom\n"
    "from pydicom.pixels import pixel_array\n"
    "ds = pydicom.dcmread(sys.argv[1], force=True)\n"
    "numpy.save(sys.argv[2], pixel_array(ds, decoding_plugin='gdcm'), allow_pickle=False)\n"
)


def _dicom_pixels(ds: Dataset, path: Path, where: str) -> np.ndarray:
    """The stored pixel values of a DICOM (``ds.pixel_array``), decoded so that no decoder can abort the
    process: for the syntaxes of :data:`GDCM_MAY_ABORT` the plugins that raise come first, and python-gdcm
    (which reads some files they cannot) runs only after them, in a child process, where an abort is an
    error naming the file. Raises :class:`ImageReadError` when no decoder reads the pixel data."""
    # pydicom logs each failing plugin's traceback at ERROR; the error raised here names every reason
    decoder_log = logging.getLogger("pydicom.pixels.decoders.base")
    level = decoder_log.level
    decoder_log.setLevel(logging.CRITICAL)
    try:
        return _decode_dicom_pixels(ds, path, where)
    finally:
        decoder_log.setLevel(level)


def _decode_dicom_pixels(ds: Dataset, path: Path, where: str) -> np.ndarray:
    ts = str(ds.file_meta.get("TransferSyntaxUID", ""))
    if ts not in GDCM_MAY_ABORT:
        try:
            return ds.pixel_array
        except Exception as e:  # noqa: BLE001 - pydicom raises many types for broken pixel data
            raise ImageReadError(
                f"{where}: truncated or corrupt DICOM pixel data ({_why(e, path, where)}); re-export the file"
            ) from e
    from pydicom.pixels import get_decoder, pixel_array

    available = get_decoder(ts).available_plugins
    reasons = []
    for plugin in (p for p in GDCM_MAY_ABORT[ts] if p in available):
        try:
            return pixel_array(ds, decoding_plugin=plugin)
        except Exception as e:  # noqa: BLE001 - as above
            reasons.append(_plain_reason(_why(e, path, where).splitlines()[-1]))  # "<plugin>: <why>"
    if "gdcm" in available:
        pixels, reason = _gdcm_in_child(path)
        if pixels is not None:
            return pixels
        reasons.append(f"gdcm: {_plain_reason(reason)}")
    raise ImageReadError(
        f"{where}: truncated or corrupt DICOM pixel data ({'; '.join(reasons) or 'no decoder installed'}); "
        "re-export the file"
    )


def _plain_reason(text: str) -> str:
    """A decoder's error line without object addresses (``<_io.BytesIO object at 0x7f...>``)."""
    import re

    return re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", text).strip()


def _gdcm_in_child(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode ``path`` with python-gdcm in a child Python; ``(pixels, "")``, or ``(None, why)`` when the
    child fails or aborts."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gastrodistill-gdcm-") as tmp:
        out = Path(tmp) / "pixels.npy"
        proc = subprocess.run(
            [sys.executable, "-c", _GDCM_CHILD, str(path), str(out)], capture_output=True, text=True
        )
        if proc.returncode == 0 and out.is_file():
            return np.load(out, allow_pickle=False), ""
    if proc.returncode < 0 or proc.returncode == 134:  # a signal, or abort() of the C++ runtime
        return None, "the decoder aborted"
    last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1].strip()
    return None, last.removeprefix("gdcm: ").replace(str(path), "<file>")


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _with_range(fn: Callable[[np.ndarray], np.ndarray], arr: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Apply an array-scaling pydicom step whose output depends on ``arr``'s min/max to the full range.

    ``apply_presentation_lut`` maps ``arr.min()..arr.max()`` (INVERSE: ``arr.max() - arr``); appending
    the two ends of the nominal range makes it map the range, not the image's own extremes.
    """
    flat = np.concatenate([arr.ravel().astype(np.float64), [lo, hi]])
    out = np.asarray(fn(flat))
    return out[:-2].reshape(arr.shape)


def _stored_range(ds: Dataset) -> tuple[float, float]:
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return 0.0, 2.0**bits - 1


def _lut_bits(item: Dataset) -> int:
    descriptor = item.LUTDescriptor
    return int(descriptor[2])


def _voi_lut_view(ds: Dataset):
    """A dataset holding only the first VOI LUT (and the encoding) for ``apply_voi``.

    pydicom 3.0.2 indexes an 8-bit VOI LUT with an array of the LUT's own dtype (uint8), so a LUT with
    more than 256 entries wraps around; the LUT's values are the same when declared 16-bit, so the
    view declares 16 bits (the output range used for scaling stays the file's 8 bits).
    """
    import copy

    from pydicom.dataset import Dataset

    view = Dataset()
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta
    view.set_original_encoding(*ds.original_encoding[:2])
    item = copy.deepcopy(ds.VOILUTSequence[0])
    descriptor = list(item.LUTDescriptor)
    if int(descriptor[2]) == 8:
        descriptor[2] = 16  # entries are 16-bit words in the file either way (PS3.3 C.11.2.1.1)
        item.LUTDescriptor = descriptor
    view.VOILUTSequence = [item]
    return view


def _check_display_values(ds: Dataset, where: str) -> None:
    """Refuse a rescale or window value that would blank the image: NaN or infinite, a zero
    ``RescaleSlope`` (every value becomes the intercept) or a ``WindowWidth`` below 1 (PS3.3 C.11.2.1.2)."""
    from pydicom.multival import MultiValue

    uses_window = not (ds.get("VOILUTSequence") and "LUTData" in ds.VOILUTSequence[0])
    fields: tuple[str, ...] = () if ds.get("ModalityLUTSequence") else ("RescaleSlope", "RescaleIntercept")
    if uses_window and ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        fields += ("WindowCenter", "WindowWidth")
    for keyword in fields:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        first = value[0] if isinstance(value, MultiValue | list | tuple) else value  # window index 0
        try:
            number = float(first)
        except (TypeError, ValueError):
            raise ImageReadError(
                f"{where}: DICOM {keyword} {first!r} is not a number; re-export the file"
            ) from None
        if not np.isfinite(number):
            raise ImageReadError(
                f"{where}: DICOM {keyword} is {number}, which blanks the image; re-export the file with a "
                f"finite {keyword}" + (" (or without it)" if keyword.startswith("Window") else "")
            )
        if keyword == "RescaleSlope" and number == 0:
            raise ImageReadError(
                f"{where}: DICOM RescaleSlope is 0, which turns every pixel into the intercept; re-export "
                "the file with its real slope (1 when the stored values need no rescaling)"
            )
        exact = str(ds.get("VOILUTFunction", "")).upper() == "LINEAR_EXACT"  # may be narrower than 1
        if keyword == "WindowWidth" and (number <= 0 if exact else number < 1):
            raise ImageReadError(
                f"{where}: DICOM WindowWidth is {number:g}; a window must be "
                f"{'wider than 0' if exact else 'at least 1 wide'}: re-export the file with its real window, "
                "or without WindowCenter/WindowWidth to show the full range"
            )


def _voi_step(ds: Dataset) -> str | None:
    """The VOI step pydicom applies to ``ds``: ``"lut"`` (a VOI LUT with data, first), ``"window"``
    (WindowCenter and WindowWidth both set) or None (PS3.3 C.11.2)."""
    if ds.get("VOILUTSequence") and "LUTData" in ds.VOILUTSequence[0]:
        return "lut"
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        return "window"
    return None


def _modality_range(ds: Dataset) -> tuple[float, float]:
    """Where the modality step maps the lowest and the highest stored value: a modality LUT's output range,
    else the rescaled stored range (descending for a negative RescaleSlope), else the stored range."""
    lo, hi = _stored_range(ds)
    if ds.get("ModalityLUTSequence"):
        return 0.0, 2.0 ** _lut_bits(ds.ModalityLUTSequence[0]) - 1
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        return lo * slope + intercept, hi * slope + intercept
    return lo, hi


def _display_pipeline(ds: Dataset, raw: np.ndarray) -> np.ndarray:
    """Stored values -> [0, 1] display values with pydicom's modality, VOI and presentation steps."""
    from pydicom.pixels.processing import apply_modality_lut, apply_presentation_lut, apply_voi, apply_voi_lut

    lo, hi = sorted(_modality_range(ds))
    values = apply_modality_lut(raw, ds)
    voi = _voi_step(ds)
    if voi == "lut":
        lo, hi = 0.0, 2.0 ** _lut_bits(ds.VOILUTSequence[0]) - 1
        values = apply_voi(values, _voi_lut_view(ds), index=0)
    elif voi == "window":  # apply_windowing maps to the stored range, rescaled (PS3.3 C.11.2.1.2)
        lo, hi = _modality_range(ds)
        values = apply_voi_lut(values, ds, index=0, prefer_lut=True)
    values = np.asarray(values, dtype=np.float64)
    # with a negative RescaleSlope pydicom's window output runs from lo (the larger) down to hi: the same
    # (values - lo) / (hi - lo) undoes it, and values below the window stay dark (PS3.3 C.11.2.1.2)
    out = (values - lo) / (hi - lo) if hi != lo else np.zeros_like(values)
    out = np.clip(out, 0.0, 1.0)

    photometric = str(ds.PhotometricInterpretation).upper()
    if "PresentationLUTSequence" in ds or "PresentationLUTShape" in ds:
        if "PresentationLUTSequence" in ds:
            bits = _lut_bits(ds.PresentationLUTSequence[0])
            out = _with_range(lambda a: apply_presentation_lut(a, ds), out, 0.0, 1.0) / (2.0**bits - 1)
        else:  # IDENTITY or INVERSE; MONOCHROME1 pairs with INVERSE (PS3.3 C.7.6.1; _check_polarity)
            out = _with_range(lambda a: apply_presentation_lut(a, ds), out, 0.0, 1.0)
    elif photometric == "MONOCHROME1":
        out = 1.0 - out
    return np.clip(out, 0.0, 1.0)


def _read_dicom(path: Path, where: str) -> np.ndarray:
    ds = _dcmread(path, where)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{where}: DICOM with PhotometricInterpretation {photometric or 'missing'} "
            f"is not grayscale; {_FIX}"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ImageReadError(f"{where}: multi-frame DICOM; store one 2-D image per file")
    check_transfer_syntax(ds, where)
    _adopt_frame_groups(ds)
    _check_polarity(ds, where)
    raw = _dicom_pixels(ds, path, where)
    if raw.ndim != 2:
        raise ImageReadError(f"{where}: DICOM pixel array of shape {raw.shape} is not 2-D")

    padding = np.zeros(raw.shape, dtype=bool)
    pad = ds.get("PixelPaddingValue")
    if pad is not None:
        limit = ds.get("PixelPaddingRangeLimit")
        lo, hi = (pad, pad) if limit is None else (min(pad, limit), max(pad, limit))
        padding = (raw >= lo) & (raw <= hi)
    _check_display_values(ds, where)
    try:
        out = _display_pipeline(ds, raw)
    except (AttributeError, ValueError, TypeError, IndexError, KeyError, NotImplementedError) as e:
        raise ImageReadError(
            f"{where}: DICOM display attributes (rescale, LUTs, window) cannot be applied "
            f"({_why(e, path, where)}); re-export the file"
        ) from e
    _refuse_constant(raw[~padding], out[~padding], ds, where)
    out[padding] = 0.0
    return out.astype(np.float32)


def _adopt_frame_groups(ds: Dataset) -> None:
    """Give a single-frame enhanced image (Enhanced XA/XRF, ...) its rescale and window at the top level,
    where the display pipeline (and pydicom's LUT functions) read them: from the first frame's
    per-frame functional group, else the shared one (PS3.3 C.7.6.16). Attributes already at the top
    level are kept. ``ds`` is changed in place (a dataset just read for this image)."""
    groups = [
        seq[0]
        for seq in (ds.get("PerFrameFunctionalGroupsSequence"), ds.get("SharedFunctionalGroupsSequence"))
        if seq
    ]
    for name, keywords in _FRAME_GROUP_ATTRIBUTES.items():
        if any(k in ds for k in keywords):
            continue
        item = next((g[name][0] for g in groups if g.get(name)), None)
        for keyword in keywords if item is not None else ():
            if keyword in item:
                setattr(ds, keyword, item[keyword].value)


def _check_polarity(ds: Dataset, where: str) -> None:
    """Refuse MONOCHROME1 paired with Presentation LUT Shape IDENTITY: the first says the smallest value
    is white, the second (which the General Image module pairs with MONOCHROME2, PS3.3 C.7.6.1) that it is
    black; viewers disagree on which wins, so the image's polarity (which a classifier would learn) is
    unknown. Raises :class:`ImageReadError` naming the file."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    shape = str(ds.get("PresentationLUTShape", "")).upper()
    if photometric == "MONOCHROME1" and shape == "IDENTITY":
        raise ImageReadError(
            f"{where}: DICOM PhotometricInterpretation MONOCHROME1 (smallest value white) with "
            "PresentationLUTShape IDENTITY (smallest value black) contradict each other, so the image's "
            "polarity is unknown; re-export it with PresentationLUTShape INVERSE (or without it) if its "
            "smallest values show white, or as MONOCHROME2 if they show black"
        )


def _refuse_constant(raw: np.ndarray, out: np.ndarray, ds: Dataset, where: str) -> None:
    """Refuse a DICOM whose (non-padding) pixels all show one grey level of the patch store's 256: it holds
    nothing to learn, and when its stored values vary, its display settings (the window) or a
    ``BitsStored`` far above the data's own bit depth blank it."""
    levels = to_uint8(out)  # as the patch store keeps them
    if levels.size and levels.min() < levels.max():
        return
    if not raw.size:
        raise ImageReadError(f"{where}: every pixel is PixelPaddingValue; remove the file from the data")
    if raw.min() == raw.max():
        raise ImageReadError(
            f"{where}: every stored pixel value is {raw.flat[0]}, a blank image with nothing to learn; "
            "remove it from the data or re-export it"
        )
    applied = [
        f"{k} {ds.get(k)}"
        for k in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth")
        if ds.get(k) is not None
    ] + [k for k in ("ModalityLUTSequence", "VOILUTSequence") if ds.get(k)]
    level = int(levels.flat[0])
    if _voi_step(ds) is None and not ds.get("ModalityLUTSequence"):
        # no window or LUT applied: the stored range itself (an identity or other rescale keeps it one level)
        bits = int(ds.get("BitsStored") or ds.BitsAllocated)
        real_bits = "the data's real BitsStored (e.g. 12), or with " if bits > 12 else ""
        raise ImageReadError(
            f"{where}: stored values {raw.min()}..{raw.max()} fill so little of the {bits}-bit range "
            f"(BitsStored {bits}) that they all show as one grey level ({level} of 255), a blank image; "
            f"re-export the file with {real_bits}a window (WindowCenter/WindowWidth) that covers the values"
        )
    raise ImageReadError(
        f"{where}: the DICOM display settings ({', '.join(applied)}) turn stored values "
        f"{raw.min()}..{raw.max()} into one grey level ({level} of 255), a blank image; check the "
        "window (WindowCenter/WindowWidth must cover the data's values) and re-export the file, or remove "
        "the window to use the full range"
    )


# ---- public API ----------------------------------------------------------------------------------
def decode(
    path: str | os.PathLike,
    *,
    colour: bool = False,
    mask: bool = False,
    bit_depth: int | None = None,
    where: str | None = None,
) -> Decoded:
    """Read one image file upright with its bit depth (see the module doc); the core of every reader.

    ``colour=False``: only 2-D grayscale is accepted (``[H, W]``); ``colour=True``: grayscale stays
    ``[H, W]``, colour becomes ``[H, W, 3]`` (alpha dropped, palette/CMYK converted). ``bit_depth``:
    the bit depth of every integer image of the collection (``data.bit_depth``), overriding the file's.
    ``where`` names the file in messages (default: the path). Raises :class:`ImageReadError`.
    """
    path = Path(path)
    where = where or str(path)
    kind = _fmt(path)
    if kind == "dicom":
        if mask:
            raise ImageReadError(f"{where}: masks must be PNG or TIFF (nonzero = stomach), not DICOM")
        return Decoded(_read_dicom(path, where), 1.0, None)
    file_bits = None
    shifted_ok = False
    arr: np.ndarray | None = None
    orientation = None
    if kind == "tiff":
        try:
            arr, orientation, file_bits = _read_tiff(path, where, colour, mask)
        except ImageReadError:
            if not colour:
                raise
            arr = None  # e.g. a compression tifffile cannot decode without imagecodecs: try Pillow
    if arr is None:
        arr, orientation = _read_pillow(path, where, colour, mask)
        if kind == "png":
            file_bits, shifted_ok = _png_sbit(path), True
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):  # drop alpha
        arr = arr[..., : arr.shape[-1] - 1]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3) or (arr.ndim == 3 and not colour):
        fix = _COLOUR_FIX if colour else _FIX
        raise ImageReadError(f"{where}: pixel array of shape {arr.shape} is not one 2-D image; {fix}")
    arr = np.ascontiguousarray(orient(arr, orientation))
    if arr.dtype == np.bool_:
        return Decoded(arr.astype(np.uint8), 1.0, 1)
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
        if not np.isfinite(arr).all():
            raise ImageReadError(f"{where}: float image contains NaN or infinite values; fix or drop it")
        if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
            raise ImageReadError(
                f"{where}: float image values lie in [{arr.min():.4g}, {arr.max():.4g}], outside [0, 1]; "
                "scale them to [0, 1] or store uint8/uint16"
            )
        return Decoded(arr, 1.0, None)
    if arr.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(
            f"{where}: pixel type {arr.dtype} is not supported (no agreed intensity scale); "
            "convert the images to uint8, uint16 or float in [0, 1]"
        )
    arr, bits = apply_bit_depth(
        arr, where, None if mask else bit_depth, None if mask else file_bits, shifted_ok
    )
    return Decoded(arr, float(2**bits - 1), bits)


def read_image(path: str | os.PathLike, bit_depth: int | None = None) -> np.ndarray:
    """A grayscale image as float32 in [0, 1], shape ``(H, W)``, upright; ImageReadError names the file.

    Integers are divided by their bit depth's maximum (``bit_depth``, else PNG sBIT / TIFF
    MaxSampleValue or BitsPerSample, else the container); DICOM follows its display pipeline.
    """
    return decode(path, bit_depth=bit_depth).to_unit()


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A stomach mask as a boolean ``(H, W)`` array (nonzero = stomach), upright."""
    return decode(path, mask=True).pixels != 0


def probe_image(path: str | os.PathLike, mask: bool = False) -> tuple[int, int]:
    """Check that a file is a readable 2-D grayscale image and return its upright ``(H, W)``.

    Cheap where the format allows it (PNG: header plus chunk CRCs; TIFF: header plus data extents),
    so a whole collection can be validated before a long build starts.
    """
    path = Path(path)
    where = str(path)
    kind = _fmt(path)
    if kind == "tiff":
        return _probe_tiff(path, where, mask)
    if kind == "dicom":
        if mask:
            raise ImageReadError(f"{where}: masks must be PNG or TIFF (nonzero = stomach), not DICOM")
        return tuple(_read_dicom(path, where).shape)  # type: ignore[return-value]
    return _probe_pillow(path, where, mask)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Display values in [0, 1] (float, any shape) as the patch store keeps them: ``rint(x * 255)``, uint8
    of the same shape (values outside [0, 1] clipped)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


__all__ = [
    "Decoded",
    "check_transfer_syntax",
    "decode",
    "orient",
    "probe_image",
    "read_image",
    "read_mask",
    "to_uint8",
    "transposed_hint",
]
