"""Driver of ``benchmarks/gpu_check.sh``: the full preset on full-size synthetic patches, timed.

Composes the root config with ``experiment=full`` (or ``--dry-run``: a CPU-sized variant), replaces the
data module by random uint8 patches of the preset's size held in memory (the distillation only needs an
array-backed train split; pixels do not change the cost), runs ``run_distillation`` for ``--steps`` outer
steps and reports seconds per outer step (median after a warm-up), peak GPU memory
(``torch.cuda.max_memory_allocated``; RSS on CPU) and the share of the step spent waiting for real
batches. Works under ``torchrun`` (``trainer=ddp``): every rank runs it; rank 0 writes the JSON.

    python benchmarks/gpu_check.py --steps 300 --json out.json [hydra overrides ...]
    python benchmarks/gpu_check.py --dry-run --json out.json       # seconds on a CPU
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

DRY = [
    "trainer=cpu",
    "model.width=8",
    "distill.batch_real=16",
    "distill.steps=2",
    "distill.epochs=1",
    "distill.precision=32",
    "distill.channels_last=false",
    "distill.log_every=1",
    "distill.check_every=1",
]


class StepTimer(pl.Callback):
    """Wall time of each outer step (device-synchronised) and the real-batch wait inside it."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.waits: list[float] = []
        self.cpu: list[float] = []  # CPU seconds of the main thread per step: its own work, whatever the load

    def _sync(self) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._sync()
        self._t0 = time.perf_counter()
        self._c0 = time.thread_time()
        self._w0 = pl_module.real_batches.wait_seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._sync()
        self.times.append(time.perf_counter() - self._t0)
        self.cpu.append(time.thread_time() - self._c0)
        self.waits.append(pl_module.real_batches.wait_seconds - self._w0)
        self.mode = pl_module.real_batches.mode
        self.batch = pl_module.real_batches.batch_size


class StepProfiler(pl.Callback):
    """``torch.profiler`` over outer steps ``[start, start + n)`` (CPU and, on a GPU, CUDA activity); the
    operator table, sorted by self device time (self CPU time without a GPU), is written to ``path``."""

    def __init__(self, start: int, n: int, path: Path, cuda: bool) -> None:
        self.start, self.n, self.path, self.cuda = start, n, path, cuda
        self.prof: torch.profiler.profile | None = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.start and self.prof is None:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if self.cuda:
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.prof = torch.profiler.profile(activities=activities)
            self.prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.prof is not None and trainer.global_step >= self.start + self.n:
            self._write(trainer.global_step - self.start)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.prof is not None:  # the run ended first (a dry run's few steps)
            self._write(trainer.global_step - self.start)

    def _write(self, steps: int) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        self.prof.__exit__(None, None, None)
        key = "self_cuda_time_total" if self.cuda else "self_cpu_time_total"
        table = self.prof.key_averages().table(sort_by=key, row_limit=30)
        self.path.write_text(f"{steps} outer steps from step {self.start}, sorted by {key}\n{table}\n")
        self.prof = None


def synthetic_datamodule(size: int, n_train: int, seed: int = 0):
    from gastrodistill.data.base import TensorImageDataModule

    rng = np.random.default_rng(seed)

    def split(n: int):
        return rng.integers(0, 256, size=(n, 1, size, size), dtype=np.uint8), np.arange(n) % 3

    dm = TensorImageDataModule(
        splits={"train": split(n_train), "val": split(30), "test": split(30)},
        class_names=["irrelevant", "non-gastritis", "gastritis"],
    )
    dm.setup()
    return dm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300, help="timed outer steps")
    ap.add_argument("--warmup", type=int, default=10, help="untimed outer steps first")
    ap.add_argument("--n-train", type=int, help="synthetic training patches (8192; at least the real batch)")
    ap.add_argument(
        "--dry-run", action="store_true", help="tiny sizes on a CPU: checks the script end to end"
    )
    ap.add_argument("--size", type=int, help="patch size (default 299; 32 with --dry-run)")
    ap.add_argument("--json", type=Path, help="write the figures to this JSON file")
    ap.add_argument(
        "--profile",
        type=int,
        default=0,
        help="profile this many outer steps after the warm-up (torch.profiler); the operator table goes "
        "beside --json as <name>.profile.txt",
    )
    ap.add_argument(
        "--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True (A/B knob)"
    )
    ap.add_argument(
        "--matmul-precision",
        choices=["highest", "high", "medium"],
        help="torch.set_float32_matmul_precision (A/B knob; float32 matmuls on TF32 tensor cores for high)",
    )
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides")
    args = ap.parse_intermixed_args()

    from hydra import compose, initialize_config_dir

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.distillation.run import run_distillation
    from gastrodistill.utils.distributed import is_global_zero

    tmp = tempfile.mkdtemp(prefix="gpu_check_")
    size = args.size or (32 if args.dry_run else 299)
    steps = min(args.steps, 6) if args.dry_run else args.steps
    warmup = 2 if args.dry_run else args.warmup
    overrides = [
        "experiment=full",
        f"paths.root_dir={tmp}",
        f"paths.output_dir={tmp}/out",
        "logger=none",
        f"distill.outer_steps={steps}",
        "distill.grid_every=0",
        "distill.ckpt_every=0",
        "trainer.enable_progress_bar=false",
        *(DRY if args.dry_run else []),
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    n_train = max(args.n_train or (64 if args.dry_run else 8192), int(cfg.distill.batch_real))
    dm = synthetic_datamodule(size, n_train)
    timer = StepTimer()
    cuda = torch.cuda.is_available() and not args.dry_run
    if args.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if args.matmul_precision:
        torch.set_float32_matmul_precision(args.matmul_precision)
    callbacks: list[pl.Callback] = [timer]
    if args.profile > 0 and args.json is not None and is_global_zero():
        callbacks.append(StepProfiler(warmup, args.profile, args.json.with_suffix(".profile.txt"), cuda))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    try:
        run_distillation(cfg, dm, Path(tmp) / "out", callbacks=callbacks, resume=None)
        wall = time.time() - t0
    finally:  # the run's set, checkpoints and logs: scratch of this measurement (one folder per rank)
        shutil.rmtree(tmp, ignore_errors=True)
    times, waits = timer.times[warmup:] or timer.times, timer.waits[warmup:] or timer.waits
    result = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "dry_run": args.dry_run,
        "image_size": size,
        "batch_real": int(cfg.distill.batch_real),
        "T": int(cfg.distill.steps * cfg.distill.epochs),
        "outer_chunk": cfg.distill.get("outer_chunk"),
        "precision": str(cfg.distill.precision),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "steps": len(timer.times),
        "s_per_step": statistics.median(times),
        "cpu_s_per_step_this_rank": statistics.median(timer.cpu[warmup:] or timer.cpu),
        "batch_real_this_rank": None if not timer.cpu else getattr(timer, "batch", None),
        "data_wait_fraction": sum(waits) / max(sum(times), 1e-12),
        "real_data_mode": getattr(timer, "mode", None),
        "peak_gb": (torch.cuda.max_memory_allocated() / 1e9)
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "peak_source": "torch.cuda.max_memory_allocated" if cuda else "ru_maxrss (process RSS)",
        "wall_s": wall,
        "projected_hours_24k_steps": statistics.median(times) * 24000 / 3600,
    }
    if is_global_zero():
        text = json.dumps(result, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
