"""DICOM output: a valid file with made-up patient fields whose rescaled pixels equal the PNG pixels."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut
from synthetic_testparams import ONE_PATIENT_EACH as PARAMS  # noqa: E402

from gastrodistill.data.synthetic.generator import generate_dataset


def test_dicom_header_and_pixels_round_trip(tmp_path):
    dcm_root = generate_dataset(tmp_path / "dcm", seed=3, format="dicom", **PARAMS)
    png_root = generate_dataset(tmp_path / "png", seed=3, format="png", **PARAMS)
    with open(dcm_root / "manifest.csv", newline="") as f:
        dcm_rows = list(csv.DictReader(f))
    with open(png_root / "manifest.csv", newline="") as f:
        png_rows = list(csv.DictReader(f))
    assert len(dcm_rows) == 2
    for d_row, p_row in zip(dcm_rows, png_rows, strict=True):
        assert d_row["image"].endswith(".dcm") and d_row["patient_id"] == p_row["patient_id"]
        ds = pydicom.dcmread(dcm_root / d_row["image"])
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.PatientID == d_row["patient_id"]
        family, given = str(ds.PatientName).split("^")
        assert family.isalpha() and given.isalpha()
        assert len(ds.PatientBirthDate) == 8 and ds.PatientBirthDate.isdigit()
        assert ds.InstitutionName and ds.ReferringPhysicianName and ds.AccessionNumber
        assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 16
        assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) > 0  # the LUT matters
        stored = ds.pixel_array
        pixels = apply_modality_lut(stored, ds)
        png = np.asarray(Image.open(png_root / p_row["image"])).astype(np.float64)
        assert not np.array_equal(stored.astype(np.float64), png)
        np.testing.assert_array_equal(pixels, png)


def test_data_core_reads_dicom_and_png_alike(tmp_path):
    """Through the project's reader (modality LUT + VOI window), both formats give the same pixels."""
    from gastrodistill.data.readers import read_image

    dcm_root = generate_dataset(tmp_path / "dcm", seed=4, format="dicom", **PARAMS)
    png_root = generate_dataset(tmp_path / "png", seed=4, format="png", **PARAMS)
    with open(dcm_root / "manifest.csv", newline="") as f:
        dcm_rows = list(csv.DictReader(f))
    with open(png_root / "manifest.csv", newline="") as f:
        png_rows = list(csv.DictReader(f))
    for d_row, p_row in zip(dcm_rows, png_rows, strict=True):
        a, b = read_image(dcm_root / d_row["image"]), read_image(png_root / p_row["image"])
        assert a.shape == b.shape and a.std() > 0.01
        np.testing.assert_allclose(a, b, atol=1e-6)
