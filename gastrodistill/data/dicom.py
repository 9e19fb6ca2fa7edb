"""DICOM through a viewer's display pipeline, with pydicom's own LUT functions (:func:`read_dicom`).

Modality LUT (Rescale Slope/Intercept or a Modality LUT Sequence) -> VOI LUT (a VOI LUT Sequence or
Window Center/Width) -> MONOCHROME1 inversion or the Presentation LUT, scaled to [0, 1] by the output
range of the last step (PS3.3 C.11; PS3.4 N.2.1.1); the transfer syntax checked before any pixel is
decoded (:func:`check_transfer_syntax`), decoders that may abort the process run in a child process.
The rules are those of :mod:`gastrodistill.data.readers`, which reads every other format.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gastrodistill.data.errors import GRAYSCALE_FIX, ImageReadError, error_text
from gastrodistill.utils.images import to_uint8

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydicom.dataset import Dataset

#: Python packages that decode a compressed DICOM transfer syntax (pydicom decoder plugins).
DICOM_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.201": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg and pylibjpeg-openjpeg",  # HTJ2K
}
DEFAULT_DECODER_PACKAGE = "python-gdcm"

_DICOM_IMAGE_ATTRIBUTES = ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation", "PixelData")
#: Media Storage Directory Storage (PS3.4 Annex B.5): a DICOMDIR, the index of a file-set.
_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Functional groups of an enhanced image whose attributes the display pipeline reads at the top level
#: (PS3.3 C.7.6.16.2.9 Pixel Value Transformation, C.7.6.16.2.10 Frame VOI LUT).
_FRAME_GROUP_ATTRIBUTES = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence"),
}


#: First bytes of the image formats a file named ``.dcm`` holds instead, most often (an export or a
#: conversion that kept the name): the format's name and its own extension.
_OTHER_FORMATS = (
    (b"\x89PNG\r\n\x1a\n", "PNG", ".png"),
    (b"\xff\xd8\xff", "JPEG", ".jpg"),
    (b"II*\x00", "TIFF", ".tif"),
    (b"MM\x00*", "TIFF", ".tif"),
    (b"II+\x00", "BigTIFF", ".tif"),
    (b"MM\x00+", "BigTIFF", ".tif"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000", ".jp2"),
    (b"\xff\x4f\xff\x51", "JPEG 2000 codestream", ".j2k"),
    (b"GIF87a", "GIF", ".gif"),
    (b"GIF89a", "GIF", ".gif"),
)


def _other_format(path: Path, where: str) -> str | None:
    """When the file at ``path``, read as DICOM, is another image format by its first bytes (a PNG named
    ``.dcm``): the message saying so, to give it its own extension; else None."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None  # dcmread names the problem
    for magic, name, suffix in _OTHER_FORMATS:
        if head.startswith(magic):
            return (
                f"{where}: this file is a {name} image named {path.suffix}, not a DICOM file; give it its "
                f"own extension ({suffix})"
            )
    return None


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
        other = _other_format(path, where)  # no DICM marker: a PNG named .dcm says so by its first bytes
        if other is not None:
            raise ImageReadError(other) from None
        forced = True
        try:
            ds = pydicom.dcmread(path, force=True)
        except Exception as e:  # noqa: BLE001 - anything pydicom raises on a non-DICOM file
            raise ImageReadError(
                f"{where}: not a readable DICOM file ({error_text(e, path, where)}); re-export the file"
            ) from e
    except (OSError, EOFError, ValueError) as e:
        raise ImageReadError(
            f"{where}: not a readable DICOM file ({error_text(e, path, where)}); re-export the file"
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
                f"{where}: truncated or corrupt DICOM pixel data ({error_text(e, path, where)}); "
                "re-export the file"
            ) from e
    from pydicom.pixels import get_decoder, pixel_array

    available = get_decoder(ts).available_plugins
    reasons = []
    for plugin in (p for p in GDCM_MAY_ABORT[ts] if p in available):
        try:
            return pixel_array(ds, decoding_plugin=plugin)
        except Exception as e:  # noqa: BLE001 - as above
            reasons.append(_plain_reason(error_text(e, path, where).splitlines()[-1]))  # "<plugin>: <why>"
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
            item = ds.PresentationLUTSequence[0]
            bits, entries = _lut_bits(item), int(item.LUTDescriptor[0]) or 2**16
            # [0, 1] maps linearly onto the LUT's entries, its maximum onto the last (PS3.3 C.11.6).
            # pydicom scales to the entries in float32 and truncates (1.0 * 255 = 254.99998: white read
            # 254/255), so the entry of each pixel is found here in float64, to the nearest, and pydicom
            # only looks it up (its scaling of 0..entries-1 onto itself is exact)
            index = np.rint(out * (entries - 1))
            lookup = _with_range(lambda a: apply_presentation_lut(a, ds), index, 0.0, entries - 1.0)
            out = lookup / (2.0**bits - 1)
        else:  # IDENTITY or INVERSE; MONOCHROME1 pairs with INVERSE (PS3.3 C.7.6.1; _check_polarity)
            out = _with_range(lambda a: apply_presentation_lut(a, ds), out, 0.0, 1.0)
    elif photometric == "MONOCHROME1":
        out = 1.0 - out
    return np.clip(out, 0.0, 1.0)


def read_dicom(path: Path, where: str) -> np.ndarray:
    """A grayscale DICOM as float display values in [0, 1], ``[H, W]`` (the module's pipeline; ``where``
    names the file in messages). Raises :class:`~gastrodistill.data.errors.ImageReadError` naming the
    attribute to fix."""
    ds = _dcmread(path, where)
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{where}: DICOM with PhotometricInterpretation {photometric or 'missing'} "
            f"is not grayscale; {GRAYSCALE_FIX}"
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
            f"({error_text(e, path, where)}); re-export the file"
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


def dicom_patient(path: Path) -> tuple[str, ...] | None:
    """The patient a DICOM file's header names, ``(IssuerOfPatientID, PatientID, PatientName,
    PatientBirthDate)`` stripped (``""`` where absent), for the check that one person is not listed under
    two manifest ids in two splits (:func:`~gastrodistill.data.patch_store.check_dicom_patients`). None
    when the header names no patient (no or a blank PatientID) or cannot be read (the file checks report
    such a file). Reads the header only."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        keys = ["IssuerOfPatientID", "PatientID", "PatientName", "PatientBirthDate"]
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=keys)
    except (OSError, ValueError, EOFError, InvalidDicomError):
        return None
    values = tuple(str(ds.get(k, "") or "").strip() for k in keys)
    return values if values[1] else None
