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
- **DICOM** (pydicom, :mod:`gastrodistill.data.dicom`) goes through the display pipeline of a viewer, with
  pydicom's own functions:
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

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gastrodistill.data.dicom import check_transfer_syntax, read_dicom
from gastrodistill.data.errors import GRAYSCALE_FIX, BitDepthExceeded, ImageReadError, error_text

if TYPE_CHECKING:
    import tifffile
    from PIL import Image

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
_COLOUR_FIX = "save it as an 8- or 16-bit grayscale or RGB image"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXIF_ORIENTATION = 0x0112
_TIFF_ORIENTATION = "Orientation"


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


def bit_depth_setting(value: object, error: type[Exception]) -> int | None:
    """``data.bit_depth`` as an integer from 1 to 16 (a string of digits or a whole float too), or None;
    else ``error`` naming the key and the range (``twelve`` was Python's "invalid literal for int()")."""
    if value is None:
        return None
    text = str(int(value) if isinstance(value, float) and value.is_integer() else value).strip()  # 12.0: 12
    if isinstance(value, bool) or not text.isdecimal() or not 1 <= int(text) <= 16:
        raise error(f"data.bit_depth={value} must be between 1 and 16, or null (the files' own)")
    return int(text)


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
            raise BitDepthExceeded(
                f"{where}: pixel value {int(top)} is above {2**bits - 1}, the largest of "
                f"data.bit_depth={bits}; raise data.bit_depth or set it to null",
                int(top),
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
            f"{where}: not a readable image ({error_text(e, path, where)}); remove it from the data or "
            "re-export it"
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
                f"with 8 or 16 bits; {GRAYSCALE_FIX}"
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
            f"{where}: truncated or corrupt image data ({error_text(e, path, where)}); re-export the file"
        ) from e
    finally:
        img.close()
    if img.mode == "I":
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ImageReadError(f"{where}: 32-bit integer pixels outside 0..65535; {GRAYSCALE_FIX}")
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
                f"grayscale with 8 or 16 bits; {GRAYSCALE_FIX}"
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
            f"{where}: truncated or corrupt image ({error_text(e, path, where)}); re-export the file"
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
        raise ImageReadError(f"{where}: TIFF of shape {page.shape} is not 2-D grayscale; {GRAYSCALE_FIX}")
    ok = (np.uint8, np.uint16) + ((np.bool_,) if mask else ())
    if np.dtype(page.dtype).type not in ok:
        raise ImageReadError(
            f"{where}: pixel type {page.dtype} is not 8- or 16-bit unsigned; {GRAYSCALE_FIX}"
        )


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
            f"{where}: truncated or corrupt TIFF ({error_text(e, path, where)}); re-export the file"
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
            f"{where}: truncated or corrupt TIFF ({error_text(e, path, where)}); re-export the file"
        ) from e


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
        return Decoded(read_dicom(path, where), 1.0, None)
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
        fix = _COLOUR_FIX if colour else GRAYSCALE_FIX
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
        return tuple(read_dicom(path, where).shape)  # type: ignore[return-value]
    return _probe_pillow(path, where, mask)


__all__ = [
    "Decoded",
    "check_transfer_syntax",
    "decode",
    "orient",
    "probe_image",
    "read_image",
    "read_mask",
    "transposed_hint",
]
