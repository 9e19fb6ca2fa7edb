"""The written folder is exactly the user's layout (SPEC §1.1) and matches its manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from PIL import Image

from gastrodistill.data.synthetic.generator import generate_dataset


def _rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_manifest_columns_files_and_sizes(tiny_root):
    rows = _rows(tiny_root)
    with open(tiny_root / "manifest.csv", newline="") as f:
        header = next(csv.reader(f))
    assert header == ["image", "patient_id", "diagnosis", "split", "mask"]
    assert len(rows) == 8  # tiny: 2 patients per (split, diagnosis), 1 image each
    for r in rows:
        image_path, mask_path = tiny_root / r["image"], tiny_root / r["mask"]
        assert image_path.resolve().is_relative_to(tiny_root.resolve())
        assert image_path.suffix == ".png" and image_path.is_file() and mask_path.is_file()
        img, mask = Image.open(image_path), Image.open(mask_path)
        assert img.mode.startswith("I;16") and mask.mode == "L"
        assert img.size == mask.size == (600, 600)
        arr, m = np.asarray(img), np.asarray(mask)
        assert arr.dtype == np.uint16 and arr.std() > 1000  # uses the 16-bit range, not a flat image
        assert set(np.unique(m)) <= {0, 255}
        assert 0.15 < (m > 0).mean() < 0.75  # the stomach fills a good part of the frame


def test_counts_splits_and_patients(tiny_root):
    rows = _rows(tiny_root)
    per_patient: dict[str, set[tuple[str, str]]] = {}
    for r in rows:
        per_patient.setdefault(r["patient_id"], set()).add((r["split"], r["diagnosis"]))
    assert all(len(v) == 1 for v in per_patient.values())  # one split and one diagnosis per patient
    groups = [next(iter(v)) for v in per_patient.values()]
    for split in ("train", "test"):
        for diag in ("gastritis", "non-gastritis"):
            assert groups.count((split, diag)) == 2
    info = json.loads((tiny_root / "synthetic_info.json").read_text())
    assert info["counts"]["images"] == 8 and info["counts"]["train/gastritis"]["patients"] == 2
    # Nothing private in the info file: it names no folder.
    assert str(tiny_root) not in (tiny_root / "synthetic_info.json").read_text()


def test_identical_request_is_skipped(tiny_root):
    before = {p: p.stat().st_mtime_ns for p in tiny_root.rglob("*") if p.is_file()}
    info = json.loads((tiny_root / "synthetic_info.json").read_text())
    params = {k: v for k, v in info["config"].items()}
    generate_dataset(tiny_root, seed=info["seed"], progress=False, **params)
    after = {p: p.stat().st_mtime_ns for p in tiny_root.rglob("*") if p.is_file()}
    assert before == after
