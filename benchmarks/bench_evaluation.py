"""The evaluation stage, network by network (loop) against torch.func ensembles and worker processes.

Both modes run the same jobs on the same data, at the CPU preset's shape: 32 px single-channel patches
of 3 classes (48 training, 16 validation and 40 test patients of ``--patches`` patches each, the
in-memory patient data of ``tests/evaluation/conftest.py``), ConvNet width 32 depth 3 and LeNet,
a distilled set of 10 images per class (5 steps x 2 epochs x 2 per class), ``--nets`` networks per
setting, replay and standard schedules, and the baselines (full data, random subset, class means,
random images with teacher labels). ``loop``: every network trained and scored on its own (each one
reading the splits again), as the evaluation did before; ``ensemble``: the networks of a setting
trained together (``torch.func``) and scored in one pass over each split; ``processes``: the engine as the
CPU preset runs it (``eval.processes``, ``--processes`` workers of one torch thread, each setting a task).
In every mode the ``random_soft`` teacher is the first full-data network (no network of its own). The
full-data networks are trained one by one (Lightning) in every mode. ``speedup`` is the loop's time over
the fastest other mode's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_evaluation.py   # ~15 min on a 2-core machine
    .venv/bin/python benchmarks/bench_evaluation.py --modes loop processes --processes 2
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
    # the data module's class lives in tests/evaluation/_eval_sets.py; worker processes inherit sys.path
    sys.path.insert(0, str(ROOT / "tests" / "evaluation"))
    spec = importlib.util.spec_from_file_location(
        "eval_conftest", ROOT / "tests" / "evaluation" / "conftest.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.make_patient_dm(seed=0, patients=(48, 16, 40), patches=patches, size=32)


def _cfg(tmp: Path, nets: int, epochs: int, ensemble: bool, processes: int = 1):
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
                f"+eval.score_together={str(ensemble or processes > 1).lower()}",
                f"eval.processes={processes}",
            ],
        )


def _distilled(dm):
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.utils.seeding import torch_generator

    ds = DistilledSet(
        3, 2, 5, 2, dm.image_shape, "soft", lr_init=0.02, class_names=dm.class_names, mean=dm.mean, std=dm.std
    )
    return ds.init_real(dm, torch_generator(0, "bench-init"))


def run_mode(
    mode: str, nets: int, epochs: int, patches: int, processes: int = 2
) -> tuple[float, dict, object]:
    from gastrodistill.evaluation import run as run_mod

    dm = _patient_dm(patches)
    sets = {"soft": _distilled(dm)}
    studies = []
    original = run_mod.run_jobs

    def keep(*a, **k):
        study = original(*a, **k)
        studies.append(study)
        return study

    run_mod.run_jobs = keep
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workers = processes if mode == "processes" else 1
            cfg = _cfg(Path(tmp), nets, epochs, mode == "ensemble", workers)
            t0 = time.perf_counter()
            df = run_mod.run_evaluation(cfg, dm, sets, Path(tmp) / "eval", loggers=[])
            seconds = time.perf_counter() - t0
    finally:
        run_mod.run_jobs = original
    by_kind = {"full-data training": 0.0, "small-set training": 0.0, "scoring": 0.0}
    for t in studies[0].timings:
        kind = "full-data training" if t["setting"].startswith("full/") else "small-set training"
        by_kind[kind] += t["train_s"]
        by_kind["scoring"] += t["score_s"]
    return seconds, by_kind, df


def forward_gflop(arch: str, size: int = 299) -> float:
    """Forward GFLOP of one ``size`` px single-channel image for a ``conf/model`` architecture (3 classes)."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from torch.utils.flop_counter import FlopCounterMode

    from gastrodistill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        mcfg = compose(config_name="config", overrides=[f"model={arch}"]).model
    net = instantiate(mcfg)(in_channels=1, num_classes=3, image_size=(size, size)).eval()
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        net(torch.zeros(1, 1, size, size))
    return fc.get_total_flops() / 1e9


def projection(tflops: float) -> tuple[float, list[str]]:
    """Projected (not measured: no GPU in this session) GPU-hours of the full preset's evaluation.

    FLOPs are counted (torch.utils.flop_counter) at 299 px for each architecture; a training step costs
    3x a forward. Work of ``conf/experiment/full.yaml``: 20 networks x 4 architectures x 2 schedules x
    2 sets (30 images each: 10 steps x 3 classes x 1 per class; replay 30 steps, standard 300 epochs of
    full batches), baselines random / mean / random_soft (20 networks each on the distillation
    architecture, 300 epochs) and full data (5 networks + 1 teacher, 15 epochs), learning rates chosen
    from 3 (one network each per method and architecture). Splits assumed: ~400k test patches (the
    issue's figure), 110k training and 20k validation patches. Every network scores test and validation
    once (one pass per setting). Throughput: ``tflops`` effective.
    """
    archs = ["convnet", "lenet", "alexnet", "resnet18"]
    g = {a: forward_gflop(a) for a in archs}
    n, test, val, train = 20, 400_000, 20_000, 110_000
    small_imgs = 30
    flop = 0.0
    train_small = 0.0
    for a in archs:  # two sets, two schedules
        train_small += 2 * n * (300 * small_imgs + 30 * 3) * 3 * g[a]  # standard + replay
        train_small += 2 * 3 * 300 * small_imgs * 3 * g[a]  # lr selection
    train_small += 3 * (n + 3) * 300 * small_imgs * 3 * g["convnet"]  # baselines on `same`
    score = sum(2 * 2 * n * (test + val) * g[a] for a in archs) + 3 * n * (test + val) * g["convnet"]
    full = 6 * 15 * (train * 3 + val) * g["convnet"] + 5 * (test + val) * g["convnet"]
    flop = (train_small + score + full) * 1e9
    hours = flop / (tflops * 1e12) / 3600
    lines = [
        "forward GFLOP per 299 px image: " + ", ".join(f"{a} {v:.2f}" for a, v in g.items()),
        f"projected (not measured) full preset on one H100-class GPU at {tflops:.0f} effective TFLOP/s: "
        f"small sets {train_small * 1e9 / (tflops * 1e12) / 3600:.2f} h, "
        f"scoring {score * 1e9 / (tflops * 1e12) / 3600:.2f} h, "
        f"full data {full * 1e9 / (tflops * 1e12) / 3600:.2f} h, total {hours:.2f} GPU-h",
    ]
    return hours, lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nets", type=int, default=4, help="fresh networks per setting (CPU preset: 4)")
    ap.add_argument("--epochs", type=int, default=150, help="standard-schedule epochs (CPU preset: 150)")
    ap.add_argument("--patches", type=int, default=40, help="patches per patient")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument(
        "--modes", nargs="+", default=["loop", "ensemble", "processes"], help="loop first, then the others"
    )
    ap.add_argument("--processes", type=int, default=2, help="worker processes of the 'processes' mode")
    ap.add_argument(
        "--tflops", type=float, default=300.0, help="assumed effective bf16 TFLOP/s of one H100-class GPU"
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = {}
    tables = {}
    if args.modes[0] != "loop" or len(args.modes) < 2:
        ap.error("--modes: 'loop' first, then at least one of ensemble, processes")
    for mode in args.modes:
        seconds, by_kind, df = run_mode(mode, args.nets, args.epochs, args.patches, args.processes)
        results[mode] = seconds
        results[f"{mode}_breakdown_s"] = by_kind
        tables[mode] = df
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in by_kind.items())
        nets = int(df.n_networks.sum())
        print(f"{mode:9s} {seconds:8.1f} s  ({len(df)} rows, {nets} networks; {parts})", flush=True)
    a = tables["loop"].sort_values(["method", "schedule", "architecture"])
    for mode in args.modes[1:]:
        b = tables[mode].sort_values(["method", "schedule", "architecture"])
        gap = np.abs(a["patch_accuracy_mean"].to_numpy() - b["patch_accuracy_mean"].to_numpy())
        print(f"largest |loop - {mode}| patch accuracy over rows: {float(np.nanmax(gap)):.4f}")
    fastest = min(args.modes[1:], key=lambda m: results[m])
    speedup = results["loop"] / results[fastest]
    print(f"fastest: {fastest}")
    total_h, lines = projection(args.tflops)
    for line in lines:
        print(line)
    if args.json:
        args.json.write_text(
            json.dumps({**results, "speedup": speedup, "projected_gpu_h": total_h}, indent=2)
        )
    print(f"speedup: {speedup:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
