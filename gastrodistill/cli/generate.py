"""``gastrodistill-generate``: write the synthetic gastric X-ray collection to ``paths.data_root``.

gastrodistill-generate                          # the CPU default preset
gastrodistill-generate synthetic=full           # the paper's counts, 2048 x 2048
gastrodistill-generate synthetic.format=dicom seed=3 paths.data_root=/data/gastric
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.errors import friendly_errors
from gastrodistill.cli.override_keys import check_override_keys
from gastrodistill.utils.run_info import save_run_info


def summarise(root: Path) -> Counter:
    """Patients and images per (split, diagnosis), read back from the written manifest."""
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    counts: Counter = Counter()
    seen: set[str] = set()
    for r in rows:
        key = (r["split"], r["diagnosis"])
        counts[(*key, "images")] += 1
        if r["patient_id"] not in seen:
            seen.add(r["patient_id"])
            counts[(*key, "patients")] += 1
    return counts


def run(cfg: DictConfig) -> Path:
    """Generate (or confirm) the data set of ``cfg.synthetic``; record the run; print a summary."""
    root = Path(hydra.utils.instantiate(cfg.synthetic))
    save_run_info(cfg.paths.output_dir, cfg, extra={"stage": "generate"})
    counts = summarise(root)
    print(f"synthetic data set '{cfg.synthetic.name}' (seed {cfg.synthetic.seed}) in {root}")
    for split in ("train", "test"):
        parts = [
            f"{diag}: {counts[(split, diag, 'patients')]} patients / {counts[(split, diag, 'images')]} images"
            for diag in ("gastritis", "non-gastritis")
        ]
        print(f"  {split:5s}  " + ",  ".join(parts))
    return root


@check_override_keys(CONF_DIR)
@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
@friendly_errors
def main(cfg: DictConfig) -> None:
    """Hydra entry point of ``gastrodistill-generate``: :func:`run` on the composed config."""
    run(cfg)


if __name__ == "__main__":
    main()
