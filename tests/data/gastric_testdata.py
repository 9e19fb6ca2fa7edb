"""Helpers writing tiny gastric data sets with numpy/Pillow in the user layout of SPEC §1.1 (no generator)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

#: Small geometry used by most tests: 32 px patches, 8 px overlap (stride 24).
PATCH, OVERLAP = 32, 8
HEIGHT, WIDTH = 100, 90  # rows 0,24,48,68 ; cols 0,24,48,58 -> 16 patches per image


def write_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def write_manifest(root: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    columns = columns or ["image", "patient_id", "diagnosis", "split", "mask"]
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return path


def stomach_mask(h: int, w: int, seed: int) -> np.ndarray:
    """An ellipse whose position depends on the seed: some patches inside, some outside, some partial."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.35, 0.65) * h, rng.uniform(0.35, 0.65) * w
    yy, xx = np.mgrid[:h, :w]
    return (((yy - cy) / (0.3 * h)) ** 2 + ((xx - cx) / (0.3 * w)) ** 2 <= 1.0).astype(np.uint8) * 255


def image_pixels(h: int, w: int, seed: int, dtype=np.uint16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = 65535 if dtype == np.uint16 else 255
    return rng.integers(0, top + 1, size=(h, w)).astype(dtype)


def make_data(
    root: Path,
    patients: dict[str, tuple[str, str | None]] | None = None,
    images_per_patient: int = 2,
    size: tuple[int, int] = (HEIGHT, WIDTH),
    with_split: bool = True,
    seed: int = 0,
) -> Path:
    """DATA_ROOT with ``patients`` = {id: (diagnosis, split)}; 16-bit PNGs and elliptic masks."""
    if patients is None:
        patients = {
            "A1": ("gastritis", "train"),
            "A2": ("gastritis", "train"),
            "A3": ("gastritis", "train"),
            "B1": ("non-gastritis", "train"),
            "B2": ("non-gastritis", "train"),
            "B3": ("non-gastritis", "train"),
            "C1": ("gastritis", "test"),
            "D1": ("non-gastritis", "test"),
        }
    rows = []
    for p_i, (pid, (diag, split)) in enumerate(sorted(patients.items())):
        for k in range(images_per_patient):
            s = seed * 1000 + p_i * 10 + k
            img = f"images/{pid}_{k}.png"
            msk = f"masks/{pid}_{k}.png"
            write_png(root / img, image_pixels(*size, s))
            write_png(root / msk, stomach_mask(*size, s))
            rows.append(
                {"image": img, "patient_id": pid, "diagnosis": diag, "split": split or "", "mask": msk}
            )
    cols = ["image", "patient_id", "diagnosis"] + (["split"] if with_split else []) + ["mask"]
    write_manifest(root, rows, cols)
    return root


def write_dicom(path: Path, raw: np.ndarray, **fields) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-0042"
    ds.Rows, ds.Columns = raw.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for k, v in fields.items():
        setattr(ds, k, v)
    ds.PixelData = raw.astype("<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
