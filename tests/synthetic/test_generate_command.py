"""The generate command's own code (gastrodistill.cli.generate): its summary counted from a manifest
written by hand (patients with several images, in both splits), its run record; and the collection check
that the evaluate and audit commands leave to each job of a sweep."""

from __future__ import annotations

import csv
import json

import pytest

from gastrodistill.cli import audit, evaluate, generate

ROWS = [  # (patient, split, diagnosis): 3 train gastritis images of one patient, 2 patients of 1 image...
    ("p1", "train", "gastritis"),
    ("p1", "train", "gastritis"),
    ("p1", "train", "gastritis"),
    ("p2", "train", "non-gastritis"),
    ("p3", "train", "non-gastritis"),
    ("p3", "train", "non-gastritis"),
    ("p4", "test", "gastritis"),
    ("p5", "test", "non-gastritis"),
    ("p5", "test", "non-gastritis"),
]


def _manifest(root):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "split", "diagnosis", "path"])
        for i, (pid, split, diag) in enumerate(ROWS):
            w.writerow([pid, split, diag, f"{i}.png"])
    return root


def test_the_summary_counts_each_patient_once_and_each_image(tmp_path):
    """Patients and images per (split, diagnosis), counted here by hand from ROWS (mutants counted a
    patient per image, or an image per patient: the tiny preset has one image per patient)."""
    counts = generate.summarise(_manifest(tmp_path))
    expected = {}
    for split, diag in {(s, d) for _, s, d in ROWS}:
        rows = [pid for pid, s, d in ROWS if (s, d) == (split, diag)]
        expected[(split, diag, "images")] = len(rows)
        expected[(split, diag, "patients")] = len(set(rows))
    assert dict(counts) == expected
    assert counts[("train", "gastritis", "patients")] == 1 and counts[("train", "gastritis", "images")] == 3


def test_the_command_prints_the_counts_of_its_collection_and_records_the_stage(
    tmp_path, compose_cfg, monkeypatch, capsys
):
    """run() prints patients then images of each diagnosis and records stage 'generate' in run_info.json
    (mutants swapped the two counts or recorded another stage name)."""
    root = _manifest(tmp_path / "data")
    monkeypatch.setattr(generate.hydra.utils, "instantiate", lambda node: str(root))
    assert generate.run(compose_cfg(["synthetic=tiny"])) == root
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == [
        "  train  gastritis: 1 patients / 3 images,  non-gastritis: 2 patients / 3 images",
        "  test   gastritis: 1 patients / 1 images,  non-gastritis: 1 patients / 2 images",
    ]
    assert json.loads((tmp_path / "out" / "run_info.json").read_text())["stage"] == "generate"


@pytest.mark.parametrize("command", [audit, evaluate])
def test_a_sweep_check_leaves_the_collection_to_the_job_that_reads_it(compose_cfg, tiny_root, command):
    """check_values(here=False) (a sweep, before its first job generates) does not compare the collection
    on disk; the job's own check does (a mutant checked it only when not here)."""
    from gastrodistill.data.synthetic.generator import SyntheticCollectionMismatch

    cfg = compose_cfg(["experiment=tiny", "seed=2", f"paths.data_root={tiny_root}"])
    command.check_values(cfg, here=False)
    with pytest.raises(SyntheticCollectionMismatch, match="synthetic.seed=11"):
        command.check_values(cfg)
