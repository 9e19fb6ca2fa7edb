"""Writes DATA_ROOT in the user's layout (SPEC §1.1): 16-bit PNG or DICOM images, 8-bit masks, manifest.

The whole folder is staged beside the target and renamed into place only when complete, and a
``synthetic_info.json`` (settings hash, counts) marks it as ours so that an identical request is
skipped and a folder that is *not* ours (e.g. a user's real data) is never replaced.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from gastrodistill.data.synthetic.identities import Identity
from gastrodistill.utils.atomic import atomic_dir

INFO_FILE = "synthetic_info.json"
MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = ("image", "patient_id", "diagnosis", "split", "mask")
#: Digital X-Ray Image Storage - For Presentation.
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


class SyntheticOutputError(ValueError):
    """The target folder cannot be (re)written: it holds something that is not a synthetic data set."""


class NotSyntheticRootError(SyntheticOutputError):
    """The generator's root is a non-empty folder it did not write (the user's own data, say): refused."""


def write_png16(path: Path, image: np.ndarray) -> None:
    """A 16-bit grayscale PNG (Pillow ``I;16``), deterministic bytes for equal pixels."""
    if image.dtype != np.uint16 or image.ndim != 2:
        raise ValueError(f"expected a 2-D uint16 image for {path.name}, got {image.dtype} {image.shape}")
    Image.fromarray(image).save(path, format="PNG", compress_level=1)


def write_mask_png(path: Path, mask: np.ndarray) -> None:
    """An 8-bit PNG mask, 255 inside the stomach and 0 elsewhere."""
    Image.fromarray((mask > 0).astype(np.uint8) * 255).save(path, format="PNG", compress_level=6)


def write_dicom(path: Path, image: np.ndarray, identity: Identity, image_number: int, uid_seed: str) -> None:
    """A DX "for presentation" DICOM with made-up patient fields and a real modality LUT.

    Stored values are ``image - intercept`` with ``RescaleIntercept = min(image)`` and slope 1, so a
    reader that applies the rescale gets back exactly the PNG pixels; the VOI window spans the
    16-bit range. UIDs are derived from ``uid_seed`` (deterministic files).
    """
    study_uid = generate_uid(entropy_srcs=[uid_seed, identity.patient_id, "study"])
    series_uid = generate_uid(entropy_srcs=[uid_seed, identity.patient_id, "series"])
    sop_uid = generate_uid(entropy_srcs=[uid_seed, identity.patient_id, "image", str(image_number)])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_PRESENTATION
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = pydicom.uid.PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "GASTRODISTILL"
    ds = FileDataset(path.name, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = DX_PRESENTATION
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.StudyDate = f"{identity.study_date:%Y%m%d}"
    ds.StudyTime = "093000"
    ds.AccessionNumber = identity.accession
    ds.StudyID = identity.accession[-6:]
    ds.StudyDescription = "UPPER GI DOUBLE CONTRAST"
    ds.BodyPartExamined = "STOMACH"
    ds.InstitutionName = identity.institution
    ds.ReferringPhysicianName = identity.physician
    ds.PatientName = identity.dicom_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = f"{identity.birth_date:%Y%m%d}"
    ds.PatientSex = identity.sex
    ds.SeriesNumber = 1
    ds.InstanceNumber = image_number
    ds.BurnedInAnnotation = "YES"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(s) for s in image.shape)
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    intercept = int(image.min())
    ds.RescaleIntercept = str(intercept)
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    # Full 16-bit VOI window: a presentation viewer (and the data core's reader) maps value v to v / 65535,
    # exactly as for the 16-bit PNG of the same image.
    ds.WindowCenter = "32768"
    ds.WindowWidth = "65536"
    ds.PixelData = (image.astype(np.int64) - intercept).astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_manifest(path: Path, rows: Sequence[dict[str, str]]) -> None:
    """Write ``rows`` as ``manifest.csv`` at ``path`` (the manifest's columns, ``\\n`` line ends)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def read_info(root: Path) -> dict[str, Any] | None:
    """The generator's record ``synthetic_info.json`` in ``root``; ``None`` when missing or unreadable."""
    try:
        return json.loads((root / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None


def is_current(root: Path, config_hash: str) -> bool:
    """True when ``root`` is a complete synthetic folder written with the same settings and seed."""
    info = read_info(root)
    if not info or info.get("config_hash") != config_hash or not (root / MANIFEST_FILE).is_file():
        return False
    with open(root / MANIFEST_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != info.get("counts", {}).get("images"):
        return False
    return all((root / r["image"]).is_file() and (root / r["mask"]).is_file() for r in rows)


@contextlib.contextmanager
def staged_root(root: Path) -> Iterator[Path]:
    """A temporary folder that replaces ``root`` only if the block completes.

    Refuses to replace a non-empty folder that carries no ``synthetic_info.json``.
    """
    if root.exists():
        if not root.is_dir():
            raise SyntheticOutputError(
                f"synthetic data root {root} exists and is not a folder; choose another"
            )
        if any(root.iterdir()) and read_info(root) is None:
            raise NotSyntheticRootError(
                f"refusing to overwrite {root}: it is not empty and has no {INFO_FILE}, so it is not "
                "a synthetic data set written by gastrodistill. Set paths.data_root (or synthetic.root) "
                "to another folder."
            )
    with atomic_dir(root) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        yield tmp


def write_info(path: Path, info: dict[str, Any]) -> None:
    """Write ``info`` to ``path`` as indented JSON with sorted keys."""
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
