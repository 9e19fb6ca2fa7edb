"""The written folder is exactly the user's layout (SPEC §1.1) and matches its manifest."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from synthetic_testparams import ONE_PATIENT_EACH  # noqa: E402

from gastrodistill.data.synthetic.config import SyntheticConfig
from gastrodistill.data.synthetic.generator import generate_dataset, plan_patients


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


def test_plan_has_each_groups_own_count():
    """Four different counts, so that no two (split, diagnosis) groups can be mixed up."""
    cfg = SyntheticConfig(train_gastritis=1, train_non_gastritis=2, test_gastritis=3, test_non_gastritis=4)
    plan = plan_patients(cfg, 0)
    assert Counter((p.split, p.diagnosis) for p in plan) == {
        ("train", "gastritis"): 1,
        ("train", "non-gastritis"): 2,
        ("test", "gastritis"): 3,
        ("test", "non-gastritis"): 4,
    }
    assert [p.index for p in plan] == list(range(10))


def test_info_counts_images_per_group_and_the_mean_stomach_fraction_of_the_masks(tmp_path):
    params = dict(ONE_PATIENT_EACH, test_gastritis=1, images_per_patient=2)
    root = generate_dataset(tmp_path / "d", seed=1, **params)
    info = json.loads((root / "synthetic_info.json").read_text())
    assert info["counts"] == {
        "images": 6,
        "patients": 3,
        "train/gastritis": {"patients": 1, "images": 2},
        "train/non-gastritis": {"patients": 1, "images": 2},
        "test/gastritis": {"patients": 1, "images": 2},
        "test/non-gastritis": {"patients": 0, "images": 0},
    }
    fractions = [(np.asarray(Image.open(root / r["mask"])) > 0).mean() for r in _rows(root)]
    assert info["mean_stomach_fraction"] == round(float(np.mean(fractions)), 4)
    assert 0.1 < info["mean_stomach_fraction"] < 0.9


def test_content_hash_follows_settings_seed_and_generator_version(monkeypatch):
    from gastrodistill.data.synthetic import config as config_mod

    cfg = SyntheticConfig()
    digest = cfg.content_hash(0)
    assert SyntheticConfig().content_hash(0) == digest
    assert cfg.content_hash(1) != digest
    assert SyntheticConfig(patchiness=0.3).content_hash(0) != digest
    monkeypatch.setattr(config_mod, "GENERATOR_VERSION", "another")
    assert cfg.content_hash(0) != digest
