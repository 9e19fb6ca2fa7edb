"""Read whole X-rays and masks as plain pixel arrays; nothing else from the file travels further.

PNG (Pillow) and TIFF (tifffile) at 8 or 16 bit are scaled by their bit depth to [0, 1]. DICOM
(pydicom) follows the display pipeline a viewer would use: stored values -> rescale slope/intercept
-> window centre/width when the header has one (else the rescaled range of the stored bits, so a
DICOM and a PNG of the same stored values give the same pixels) -> MONOCHROME1 inverted;
pixel-padding values are set to 0 whatever the inversion. Only the pixel
array is returned, so no header field (patient name, IDs, dates) can reach a patch store.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gastrodistill.data.errors import ImageReadError

PNG_SUFFIXES = (".png",)
TIFF_SUFFIXES = (".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom")
_PIL_GRAY_MODES = {"L": 8, "I;16": 16, "I;16B": 16, "I;16L": 16, "I": 16}
_FIX = "save it as a single-channel 8- or 16-bit grayscale PNG/TIFF or a MONOCHROME DICOM"


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
    raise ImageReadError(f"{path}: unsupported file type {suffix!r}; use .png, .tif/.tiff or .dcm")


# ---- PNG ---------------------------------------------------------------------------------------
def _open_pil(path: Path, mask: bool):
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(path)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ImageReadError(f"{path}: not a readable image ({e}); re-export the file") from e
    allowed = set(_PIL_GRAY_MODES) | ({"1", "P"} if mask else set())
    if img.mode not in allowed:
        kind = "colour" if img.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LA", "P", "PA") else "unsupported"
        raise ImageReadError(
            f"{path}: {kind} image (mode {img.mode}, {len(img.getbands())} channel(s)) is not 2-D grayscale "
            f"with 8 or 16 bits; {_FIX}"
        )
    return img


def _read_png(path: Path, mask: bool) -> np.ndarray:
    img = _open_pil(path, mask)
    try:
        arr = np.asarray(img)
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: truncated or corrupt image data ({e}); re-export the file") from e
    finally:
        img.close()
    if img.mode == "I":
        if arr.min() < 0 or arr.max() > 65535:
            raise ImageReadError(f"{path}: 32-bit integer pixels outside 0..65535; {_FIX}")
        arr = arr.astype(np.uint16)
    return arr


def _probe_png(path: Path, mask: bool) -> tuple[int, int]:
    img = _open_pil(path, mask)
    size = img.size
    try:
        img.verify()  # walks every chunk and checks its CRC: catches truncated/corrupt files cheaply
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for broken files
        raise ImageReadError(f"{path}: truncated or corrupt PNG ({e}); re-export the file") from e
    finally:
        img.close()
    return size[1], size[0]


# ---- TIFF --------------------------------------------------------------------------------------
def _tiff_page(tif, path: Path):
    if len(tif.pages) != 1:
        raise ImageReadError(f"{path}: TIFF with {len(tif.pages)} pages; store one 2-D image per file")
    page = tif.pages[0]
    if page.samplesperpixel != 1 or len(page.shape) != 2:
        raise ImageReadError(f"{path}: TIFF of shape {page.shape} is not 2-D grayscale; {_FIX}")
    return page


def _check_int_dtype(dtype: np.dtype, path: Path, mask: bool) -> None:
    ok = (np.uint8, np.uint16) + ((np.bool_,) if mask else ())
    if dtype.type not in ok:
        raise ImageReadError(f"{path}: pixel type {dtype} is not 8- or 16-bit unsigned; {_FIX}")


def _read_tiff(path: Path, mask: bool) -> np.ndarray:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = _tiff_page(tif, path)
            _check_int_dtype(np.dtype(page.dtype), path, mask)
            return page.asarray()
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001 - tifffile raises many types for broken files
        raise ImageReadError(f"{path}: truncated or corrupt TIFF ({e}); re-export the file") from e


def _probe_tiff(path: Path, mask: bool) -> tuple[int, int]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = _tiff_page(tif, path)
            _check_int_dtype(np.dtype(page.dtype), path, mask)
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)), default=0)
            if end > os.path.getsize(path) or not page.dataoffsets:
                raise ImageReadError(f"{path}: truncated TIFF (pixel data runs past the end of the file)")
            return int(page.shape[0]), int(page.shape[1])
    except ImageReadError:
        raise
    except Exception as e:  # noqa: BLE001
        raise ImageReadError(f"{path}: truncated or corrupt TIFF ({e}); re-export the file") from e


# ---- DICOM -------------------------------------------------------------------------------------
def _first(value, default=None):
    if value is None:
        return default
    try:
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)
    except (TypeError, ValueError, IndexError):
        return default


def _read_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError) as e:
        raise ImageReadError(f"{path}: not a readable DICOM file ({e}); re-export the file") from e
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if int(ds.get("SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{path}: DICOM with PhotometricInterpretation {photometric or 'missing'} "
            f"is not grayscale; {_FIX}"
        )
    if int(ds.get("NumberOfFrames", 1) or 1) != 1:
        raise ImageReadError(f"{path}: multi-frame DICOM; store one 2-D image per file")
    try:
        raw = ds.pixel_array
    except Exception as e:  # noqa: BLE001 - pydicom raises many types for broken pixel data
        raise ImageReadError(
            f"{path}: truncated or undecodable DICOM pixel data ({e}); re-export the file"
        ) from e
    if raw.ndim != 2:
        raise ImageReadError(f"{path}: DICOM pixel array of shape {raw.shape} is not 2-D")

    padding = np.zeros(raw.shape, dtype=bool)
    pad = ds.get("PixelPaddingValue")
    if pad is not None:
        limit = ds.get("PixelPaddingRangeLimit")
        lo, hi = (pad, pad) if limit is None else (min(pad, limit), max(pad, limit))
        padding = (raw >= lo) & (raw <= hi)

    slope = _first(ds.get("RescaleSlope"), 1.0)
    intercept = _first(ds.get("RescaleIntercept"), 0.0)
    values = raw.astype(np.float64) * slope + intercept

    centre, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if centre is not None and width is not None and width >= 1:
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper()
        if function == "SIGMOID":
            out = 1.0 / (1.0 + np.exp(-4.0 * (values - centre) / width))
        elif function == "LINEAR_EXACT":
            out = (values - centre) / width + 0.5
        else:  # LINEAR (PS3.3 C.11.2.1.2.1)
            out = (values - (centre - 0.5)) / max(width - 1.0, 1.0) + 0.5
    else:  # no window: the stored bit range, rescaled, as PNG/TIFF are scaled by their bit depth
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        lo_raw, hi_raw = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        lo, hi = sorted((lo_raw * slope + intercept, hi_raw * slope + intercept))
        out = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    out = np.clip(out, 0.0, 1.0)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    out[padding] = 0.0
    return out.astype(np.float32)


# ---- public API --------------------------------------------------------------------------------
def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image's pixels as float32 in [0, 1], shape ``(H, W)``; raises ImageReadError naming the file."""
    path = Path(path)
    kind = _fmt(path)
    if kind == "dicom":
        return _read_dicom(path)
    arr = _read_png(path, mask=False) if kind == "png" else _read_tiff(path, mask=False)
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: pixel array of shape {arr.shape} is not 2-D grayscale; {_FIX}")
    scale = 255.0 if arr.dtype == np.uint8 else 65535.0
    return arr.astype(np.float32) / np.float32(scale)


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A stomach mask as a boolean ``(H, W)`` array (nonzero = stomach)."""
    path = Path(path)
    kind = _fmt(path)
    if kind == "dicom":
        raise ImageReadError(f"{path}: masks must be PNG or TIFF (nonzero = stomach), not DICOM")
    arr = _read_png(path, mask=True) if kind == "png" else _read_tiff(path, mask=True)
    if arr.ndim != 2:
        raise ImageReadError(f"{path}: mask of shape {arr.shape} is not 2-D; save it as a one-channel PNG")
    return arr != 0


def probe_image(path: str | os.PathLike, mask: bool = False) -> tuple[int, int]:
    """Check that a file is a readable 2-D grayscale image and return ``(H, W)``.

    Cheap where the format allows it (PNG: header plus chunk CRCs; TIFF: header plus data extents),
    so a whole collection can be validated before a long build starts.
    """
    path = Path(path)
    kind = _fmt(path)
    if kind == "png":
        return _probe_png(path, mask)
    if kind == "tiff":
        return _probe_tiff(path, mask)
    if mask:
        raise ImageReadError(f"{path}: masks must be PNG or TIFF (nonzero = stomach), not DICOM")
    return tuple(_read_dicom(path).shape)  # type: ignore[return-value]
