"""Small in-memory patch sets with patients (distinctive ids), for the anonymity and sharing tests."""

from __future__ import annotations

import numpy as np
import torch

from gastrodistill.data.base import TensorImageDataModule

CLASSES = ["irrelevant", "non-gastritis", "gastritis"]
#: Distinctive patient ids: any of them in an output file is a leak, never a coincidence.
PID_PREFIX = "Zyxwvut-PID"
#: Overrides of a small audit that runs in seconds (LeNet, two attacked networks, small samples).
FAST_AUDIT = [
    "model=lenet",
    "eval.baselines.real.epochs=1",
    "audit.membership.n_networks=2",
    "audit.nearest.reference_size=64",
    "audit.membership.max_per_side=120",
    "audit.closest_pairs=4",
    "audit.membership.shadows=2",
    "audit.membership.overfit_control.epochs=15",
]


def structured_patch(
    rng: np.random.Generator, cls: int, size: int, base: np.ndarray | None = None
) -> np.ndarray:
    """Stripes whose orientation is the class, on a smooth per-patient background, plus noise."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    direction = (yy, xx, yy + xx)[cls]
    img = 0.5 + 0.25 * np.sin(2 * np.pi * 3 * direction + rng.uniform(0, 2 * np.pi))
    if base is not None:
        img = img + base
    return np.clip(img + 0.05 * rng.standard_normal((size, size)), 0, 1)


class PatientDM(TensorImageDataModule):
    """In-memory splits plus per-sample patient ids (and an optional text-corner mask)."""

    def __init__(self, splits, pids, text_masks=None, **kw) -> None:
        super().__init__(splits=splits, class_names=CLASSES, **kw)
        self._pids, self._text = pids, text_masks

    def patient_ids(self, split):
        return self._pids[split]

    def patient_labels(self, split):
        return {p: int(i % 2) for i, p in enumerate(dict.fromkeys(self._pids[split]))}

    def text_patch_mask(self, split):
        return None if self._text is None else self._text[split]


def make_dm(seed: int = 0, patients=(20, 6, 20), per_patient: int = 8, size: int = 16) -> PatientDM:
    rng = np.random.default_rng(seed)
    splits, pids = {}, {}
    for split, n_pat in zip(("train", "val", "test"), patients, strict=True):
        xs, ys, ids = [], [], []
        for p in range(n_pat):
            yy, xx = np.mgrid[0:size, 0:size] / size
            base = 0.1 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * yy + rng.uniform(0, 1)))
            for _ in range(per_patient):
                c = int(rng.integers(0, 3))
                xs.append(structured_patch(rng, c, size, base))
                ys.append(c)
                ids.append(f"{PID_PREFIX}-{split}-{p:04d}")
        splits[split] = (np.asarray(xs, dtype=np.float32)[:, None], np.asarray(ys))
        pids[split] = np.asarray(ids)
    return PatientDM(splits, pids, batch_size=32, eval_batch_size=64)


def site_npz(path):
    """A small site's patches written as an npz (train/val/test images and labels, class names) at
    ``path``; returns the data module they come from."""
    src = make_dm(patients=(10, 3, 10), per_patient=5)
    arrays = {
        f"{s}_{k}": v
        for s in ("train", "val", "test")
        for k, v in zip(("images", "labels"), src._splits[s], strict=True)
    }
    np.savez(path, class_names=np.array(CLASSES), **arrays)
    return src


def background_patch(rng: np.random.Generator, size: int) -> np.ndarray:
    """Near-uniform background: a grey level, a faint smooth shading shared by every patient, pixel noise.

    Two such patches of different patients correlate almost perfectly (the shading), which is what
    made the old all-patch reference degenerate.
    """
    yy, xx = np.mgrid[0:size, 0:size] / size
    shading = 0.03 * (yy + 0.5 * xx)
    return np.clip(rng.uniform(0.1, 0.3) + shading + 0.001 * rng.standard_normal((size, size)), 0, 1)


def make_background_dm(
    seed: int = 0, patients=(16, 6, 16), per_patient: int = 12, size: int = 16, background: float = 0.5
) -> PatientDM:
    """Like :func:`make_dm`, but a share ``background`` of every patient's patches is near-uniform
    background (class ``irrelevant``); the others are structured patches of the two relevant classes."""
    rng = np.random.default_rng(seed)
    splits, pids = {}, {}
    for split, n_pat in zip(("train", "val", "test"), patients, strict=True):
        xs, ys, ids = [], [], []
        for p in range(n_pat):
            yy, xx = np.mgrid[0:size, 0:size] / size
            base = 0.1 * np.sin(2 * np.pi * (rng.uniform(0.5, 1.5) * yy + rng.uniform(0, 1)))
            n_bg = int(round(background * per_patient))
            for k in range(per_patient):
                if k < n_bg:
                    xs.append(background_patch(rng, size))
                    ys.append(0)
                else:
                    c = int(rng.integers(1, 3))
                    xs.append(structured_patch(rng, c, size, base))
                    ys.append(c)
                ids.append(f"{PID_PREFIX}-{split}-{p:04d}")
        splits[split] = (np.asarray(xs, dtype=np.float32)[:, None], np.asarray(ys))
        pids[split] = np.asarray(ids)
    return PatientDM(splits, pids, batch_size=32, eval_batch_size=64)


def noise_set(dm, steps: int = 2, ipc: int = 1, seed: int = 0):
    """A DistilledSet of Gaussian-noise images (far from every real patch)."""
    from gastrodistill.distillation.distilled_set import DistilledSet

    ds = DistilledSet(
        dm.num_classes, ipc, steps, 1, dm.image_shape, class_names=dm.class_names, mean=dm.mean, std=dm.std
    )
    return ds.init_noise(torch.Generator().manual_seed(seed))


# ---- a source folder with a DICOM whose header and file name are distinctive --------------------
SECRETS = {
    "PatientName": "Zyxwvut^Qwerty",
    "PatientID": "QX-778899",
    "PatientBirthDate": "19420817",
    "InstitutionName": "Hospital Wqxzvb",
    "AccessionNumber": "ACC99887766",
    "ReferringPhysicianName": "Plonkit^Vrrm",
}
IMAGE_NAME = "images/Zyxwvut_Qwerty_scan0042.dcm"


def write_dicom_root(root) -> dict[str, str]:
    """DATA_ROOT with manifest.csv and one DICOM carrying made-up identifying header fields."""
    from pathlib import Path

    import pydicom
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["gastrodistill-test"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = "GASTRODISTILL"  # as the synthetic writer does: software, not patient
    ds = pydicom.Dataset()
    ds.file_meta = meta
    for key, value in SECRETS.items():
        setattr(ds, key, value)
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["gastrodistill-test-study"])
    ds.Modality = "RF"
    ds.Rows, ds.Columns = 32, 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(32 * 32, dtype=np.uint16).tobytes()
    ds.save_as(root / IMAGE_NAME, enforce_file_format=True)
    (root / "manifest.csv").write_text(
        f"image,patient_id,diagnosis\n{IMAGE_NAME},{SECRETS['PatientID']},gastritis\n"
    )
    return {**SECRETS, "sop_uid": str(ds.SOPInstanceUID), "study_uid": str(ds.StudyInstanceUID)}


def rewrite_header(root, **fields) -> None:
    """Set header attributes (keyword=value) of :func:`write_dicom_root`'s DICOM in ``root``, in place."""
    from pathlib import Path

    import pydicom

    path = Path(root) / IMAGE_NAME
    ds = pydicom.dcmread(path)
    for key, value in fields.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def ncc_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of every image of ``a`` with every image of ``b`` (numpy, for
    reference): flattened, zero-mean, unit-norm, dot products, shape ``(len(a), len(b))``."""

    def unit(x: np.ndarray) -> np.ndarray:
        v = x.reshape(len(x), -1).astype(np.float64)
        v = v - v.mean(axis=1, keepdims=True)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    return unit(a) @ unit(b).T


def all_bytes(path) -> bytes:
    """Every byte of a folder or file, zip members decompressed (independent of the code under test)."""
    import zipfile
    from pathlib import Path

    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    chunks = []
    for f in files:
        chunks.append(f.name.encode())
        chunks.append(f.read_bytes())
        if zipfile.is_zipfile(f):
            with zipfile.ZipFile(f) as zf:
                chunks.extend(zf.read(n) + n.encode() for n in zf.namelist())
    return b"\n".join(chunks)
