"""DICOM output: a valid file with made-up patient fields whose rescaled pixels equal the PNG pixels."""

from __future__ import annotations

import csv

import numpy as np
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut
from synthetic_testparams import IDENTITY  # noqa: E402
from synthetic_testparams import ONE_PATIENT_EACH as PARAMS  # noqa: E402

from gastrodistill.data.synthetic.generator import generate_dataset
from gastrodistill.data.synthetic.writer import write_dicom


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


def test_header_carries_the_made_up_patient_and_exam_and_says_the_text_is_burned_in(tmp_path):
    """Every identifying field a hospital file has, from the identity (the anonymity audit looks for them),
    a DX "for presentation" image (PS3.6: SOP class 1.2.840.10008.5.1.4.1.1.1.1), BurnedInAnnotation YES."""
    image = np.arange(4000, 4000 + 12 * 10, dtype=np.uint16).reshape(12, 10)
    write_dicom(tmp_path / "a.dcm", image, IDENTITY, 2, uid_seed="s")
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    assert str(ds.PatientName) == "KITAHARA^NORIKO" and ds.PatientID == "P7654321"
    assert ds.PatientBirthDate == "19480730" and ds.PatientSex == "F" and ds.StudyDate == "20170214"
    assert ds.InstitutionName == "HOKUYO HEALTH SCREENING CENTER"
    assert ds.ReferringPhysicianName == "ODAGIRI^MAYUMI"
    assert ds.AccessionNumber == "A987654321" and ds.StudyID == "654321"
    assert ds.InstanceNumber == 2 and ds.BurnedInAnnotation == "YES"
    assert ds.Modality == "DX" and ds.PresentationIntentType == "FOR PRESENTATION"
    assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.5.1.4.1.1.1.1"
    assert (ds.Rows, ds.Columns) == (12, 10) and ds.PixelRepresentation == 0 and ds.BitsStored == 16
    assert int(ds.RescaleIntercept) == 4000


def test_voi_window_maps_each_value_to_its_fraction_of_65535(tmp_path):
    """PS3.3 C.11.2.1.2.1's linear window, ``((x - (c - 0.5)) / (w - 1) + 0.5)`` of the rescaled value x,
    is ``x / 65535`` for the written centre and width: a viewer shows what the 16-bit PNG shows."""
    image = np.array([[0, 1, 32767], [32768, 65534, 65535]], dtype=np.uint16)
    write_dicom(tmp_path / "a.dcm", image, IDENTITY, 1, uid_seed="s")
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    x = apply_modality_lut(ds.pixel_array, ds)
    np.testing.assert_array_equal(x, image)
    np.testing.assert_allclose((x - (c - 0.5)) / (w - 1) + 0.5, image / 65535.0, rtol=0, atol=1e-12)


def test_uids_one_study_and_series_per_patient_one_instance_per_image_and_deterministic(tmp_path):
    image = np.full((8, 8), 100, np.uint16)
    paths = []
    for number, uid_seed in ((1, "s"), (2, "s"), (1, "t")):
        paths.append(tmp_path / f"{number}{uid_seed}.dcm")
        write_dicom(paths[-1], image, IDENTITY, number, uid_seed=uid_seed)
    one, two, other = (pydicom.dcmread(p) for p in paths)
    assert one.StudyInstanceUID == two.StudyInstanceUID and one.SeriesInstanceUID == two.SeriesInstanceUID
    assert one.SOPInstanceUID != two.SOPInstanceUID and one.StudyInstanceUID != one.SeriesInstanceUID
    assert len({one.StudyInstanceUID, one.SeriesInstanceUID, one.SOPInstanceUID}) == 3
    assert other.StudyInstanceUID != one.StudyInstanceUID and other.SOPInstanceUID != one.SOPInstanceUID
    write_dicom(tmp_path / "again.dcm", image, IDENTITY, 1, uid_seed="s")
    assert (tmp_path / "again.dcm").read_bytes() == paths[0].read_bytes()


def test_a_patients_images_are_numbered_from_one(tmp_path):
    """Two images per patient: files ``<id>_01.dcm`` and ``<id>_02.dcm`` with InstanceNumber 1 and 2."""
    root = generate_dataset(tmp_path / "dcm", seed=3, format="dicom", **{**PARAMS, "images_per_patient": 2})
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for row in rows:
        pid = row["patient_id"]
        number = int(row["image"][-6:-4])
        assert row["image"] == f"images/{pid}/{pid}_{number:02d}.dcm"
        assert pydicom.dcmread(root / row["image"]).InstanceNumber == number
    assert sorted(int(r["image"][-6:-4]) for r in rows) == [1, 1, 2, 2]
