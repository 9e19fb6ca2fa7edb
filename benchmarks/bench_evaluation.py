"""The evaluation stage, network by network (loop) against torch.func ensembles, in one run.

Both modes run the same jobs on the same data, at the CPU preset's shape: 32 px single-channel patches
of 3 classes (48 training, 16 validation and 40 test patients of ``--patches`` patches each, the
in-memory patient data of ``tests/evaluation/conftest.py``), ConvNet width 32 depth 3 and LeNet,
a distilled set of 10 images per class (5 steps x 2 epochs x 2 per class), ``--nets`` networks per
setting, replay and standard schedules, and the baselines (full data, random subset, class means,
random images with teacher labels). ``loop``: every network trained and scored on its own (each one
reading the splits again), as the evaluation did before; ``ensemble``: the networks of a setting
trained together (``torch.func``) and scored in one pass over each split. The full-data networks are
trained one by one (Lightning) in both modes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_evaluation.py            # ~3 min on one thread
    .venv/bin/python benchmarks/bench_evaluation.py --nets 4 --epochs 150 --json out.json

Prints one line per mode, the agreement of the two tables, a projection for the full preset
(labelled projected), and last ``speedup: <x>``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def _patient_dm(patches: int):
    spec = importlib.util.spec_from_file_location(
        "eval_conftest", ROOT / "tests" / "evaluation" / "conftest.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_patient_dm(seed=0, patients=(48, 16, 40), patches=patches, size=32)


def _cfg(tmp: Path, nets: int, epochs: int, ensemble: bool):
    from hydra import compose, initialize_config_dir

    from gastrodistill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[
                f"paths.root_dir={tmp}",
                f"paths.output_dir={tmp}/out",
                "logger=none",
                "model.width=32",
                "model.depth=3",
                f"eval.n_networks={nets}",
                "eval.architectures=[same,lenet]",
                "eval.schedules=[replay,standard]",
                "eval.baselines.methods=[full,random,mean,random_soft]",
                "eval.baselines.n_networks_full=2",
                "eval.baselines.real.epochs=8",
                "eval.baselines.real.batch_size=64",
                f"eval.standard.epochs={epochs}",
                "eval.lr_grid=[0.01,0.03]",
                "eval.bootstrap=200",
                "eval.progress=false",
                "eval.device=cpu",
                f"eval.ensemble={str(ensemble).lower()}",
                f"+eval.score_together={str(ensemble).lower()}",
            ],
        )


def _distilled(dm):
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.utils.seeding import torch_generator

    ds = DistilledSet(
        3, 2, 5, 2, dm.image_shape, "soft", lr_init=0.02, class_names=dm.class_names, mean=dm.mean, std=dm.std
    )
    return ds.init_real(dm, torch_generator(0, "bench-init"))


def run_mode(mode: str, nets: int, epochs: int, patches: int) -> tuple[float, dict, object]:
    from gastrodistill.evaluation.run import run_evaluation

    dm = _patient_dm(patches)
    sets = {"soft": _distilled(dm)}
    with tempfile.TemporaryDirectory() as tmp:
        cfg = _cfg(Path(tmp), nets, epochs, mode == "ensemble")
        t0 = time.perf_counter()
        df = run_evaluation(cfg, dm, sets, Path(tmp) / "eval", loggers=[])
        seconds = time.perf_counter() - t0
    by_kind: dict = {}
    return seconds, by_kind, df


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", type=int, default=4, help="fresh networks per setting (CPU preset: 4)")
    ap.add_argument("--epochs", type=int, default=150, help="standard-schedule epochs (CPU preset: 150)")
    ap.add_argument("--patches", type=int, default=40, help="patches per patient")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    tables = {}
    for mode in ("loop", "ensemble"):
        seconds, _, df = run_mode(mode, args.nets, args.epochs, args.patches)
        results[mode] = seconds
        tables[mode] = df
        print(
            f"{mode:9s} {seconds:8.1f} s  ({len(df)} rows, {int(df.n_networks.sum())} networks)", flush=True
        )
    a = tables["loop"].sort_values(["method", "schedule", "architecture"])
    b = tables["ensemble"].sort_values(["method", "schedule", "architecture"])
    diff = float(np.nanmax(np.abs(a["patch_accuracy_mean"].to_numpy() - b["patch_accuracy_mean"].to_numpy())))
    print(f"largest |loop - ensemble| patch accuracy over rows: {diff:.4f}")
    speedup = results["loop"] / results["ensemble"]
    # Projection for the full preset on one H100-class GPU (no GPU in this session: projected, not
    # measured). 20 networks x 4 architectures x 2 schedules x 2 sets = 320 small-set networks plus the
    # baselines (random, mean, random_soft: 20 x 4 each = 240; full data: 3 networks per architecture).
    # Assumptions, stated: ConvNet-128 at 128 px; a standard-schedule network 300 epochs of 100 images
    # = 300 steps; an H100 runs a vmapped 20-network step of 100 images in ~15 ms (~20 x 100 x 0.6
    # GFLOP x 3 / ~400 TFLOP/s effective is ~1 ms; overhead-bound); scoring ~400k test patches per
    # setting at ~40k images/s per network in one pass (20 networks: ~200 s per setting, 28 settings);
    # full data 3 x 4 networks x 30 epochs over ~1.5M patches at ~20k images/s.
    small = 28 * 300 * 0.015 + 28 * 3 * 300 * 0.015  # training + lr selection (3 lrs, one net each)
    scoring = 28 * 200
    full = 12 * 30 * 1.5e6 / 2e4
    total_h = (small + scoring + full) / 3600
    print(
        f"projected (not measured) full preset on one H100-class GPU: small sets {small / 3600:.2f} h, "
        f"scoring {scoring / 3600:.2f} h, full data {full / 3600:.2f} h, total {total_h:.2f} GPU-h"
    )
    if args.json:
        args.json.write_text(
            json.dumps({**results, "speedup": speedup, "projected_gpu_h": total_h}, indent=2)
        )
    print(f"speedup: {speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
