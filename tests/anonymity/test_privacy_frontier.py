"""benchmarks/privacy_frontier.py: its config is one the stages accept, and a small run writes the table it
describes (one row per init and snapshot step, the set sizes and counts of the run)."""

from __future__ import annotations

import json

import pandas as pd
from _benchmarks import load_benchmark


def _frontier():
    return load_benchmark("privacy_frontier")


def test_the_frontier_config_passes_the_stage_checks() -> None:
    """The script composes ``experiment=cpu`` plus its small-scale defaults: the distiller and the audit
    must accept that config as they would on the command line (a 5-step unroll under the preset's
    10-step RaT-BPTT window was refused before the run did anything)."""
    from gastrodistill.anonymity.config_check import check_audit_config
    from gastrodistill.distillation.config_check import check_distill_config

    frontier = _frontier()
    cfg = frontier.compose([])
    check_distill_config(cfg.distill)
    check_audit_config(cfg.audit)
    assert cfg.distill.steps * cfg.distill.epochs == 5 and cfg.distill.texture_matching.steps == 0


#: A scale that runs in seconds (in the fast suite, so that the script cannot fall behind the configs
#: again unseen): 8 training and 8 test patients, 16 px patches, tiny networks.
TINY = [
    "synthetic.train_gastritis=4",
    "synthetic.train_non_gastritis=4",
    "synthetic.test_gastritis=4",
    "synthetic.test_non_gastritis=4",
    "synthetic.images_per_patient=1",
    "synthetic.image_size=600",
    "synthetic.num_workers=1",
    "synthetic.progress=false",
    "data.storage_size=16",
    "model=convnet_tiny",
    "eval.baselines.real.epochs=1",
    "eval.baselines.real.precision=32-true",
    "eval.score_autocast=false",
    "eval.patient.min_patients_per_class=1",
    "audit.membership.max_per_side=64",
    "audit.nearest.reference_size=32",
    "distill.batch_real=32",
]


def test_a_small_frontier_run_writes_one_row_per_snapshot(tmp_path, monkeypatch) -> None:
    import hydra

    frontier = _frontier()
    monkeypatch.setenv("GASTRODISTILL_ROOT", str(tmp_path))
    out = tmp_path / "frontier"
    hydra.utils.instantiate(frontier.compose([f"paths.output_dir={out}", *TINY]).synthetic)
    argv = ["--inits", "noise", "real", "--steps", "0", "2", "--networks", "1", "--out", str(out)]
    argv += ["--", *TINY]
    assert frontier.main(argv) == 0

    table = pd.read_csv(out / "frontier.csv")
    assert list(zip(table.init, table.outer_steps, strict=True)) == [
        ("noise", 0),
        ("noise", 2),
        ("real", 0),
        ("real", 2),
    ]
    assert table[["ncc_nearest_max", "mia_lira_auc", "patch_accuracy"]].notna().all().all()
    meta = json.loads((out / "frontier.json").read_text())
    assert meta["networks_per_snapshot"] == 1 and meta["shadows"] == 2
    assert meta["n_test_patients"] == 8 and meta["n_test_gastritis"] == 4
    assert meta["config"]["window"] is None and meta["config"]["texture_matching"]["steps"] == 0
    assert (out / "frontier.png").stat().st_size > 0
    assert "| real | 2 |" in (out / "frontier.md").read_text()
