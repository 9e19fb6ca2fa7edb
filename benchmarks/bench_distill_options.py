"""Seconds per outer step of the early CPU preset's shape, with and without each distiller option (1 thread).

Shape (the early ``experiment=cpu``; the preset now unrolls T = 150 steps on all 30 images): ConvNet
width 32, depth 3, gray ``size x size`` input, 3 classes, ipc 2, steps 5, epochs 2 (T = 10), real batch
256. One outer step = sample an inner network, unroll, outer loss,
backward into the distilled tensors (:func:`meta_objective` + ``surrogate.backward()``), as
``DistillModule.training_step`` does minus Lightning's bookkeeping and the Adam step. Median of
``--repeats`` steps after one warm-up step (fresh seeds per repeat); wall time and this process's CPU time
(``time.process_time``, less sensitive to other processes on a shared machine).

    .venv/bin/python benchmarks/bench_distill_options.py --size 32 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from gastrodistill.data.base import ArrayDataset
from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.distribution_matching import match_distributions
from gastrodistill.distillation.inner_loop import meta_objective, release_template, sample_window_end
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.distillation.texture_matching import class_texture_targets, match_textures
from gastrodistill.models import ConvNet, initialize
from gastrodistill.utils.seeding import torch_generator

ROWS: dict[str, dict] = {
    "baseline (func)": {},
    "backend=higher": {"backend": "higher"},
    "checkpoint=true": {"checkpoint": True},
    "inner_momentum=0.9": {"momentum": 0.9},
    "window=5 (end ~ U[5,10])": {"window": 5},
    "window=2 (end ~ U[2,10])": {"window": 2},
    "outer_chunk=64": {"outer_chunk": 64},
    "T=30 (epochs 6), window=10 (the cpu preset's unroll)": {"epochs": 6, "window": 10},
    "dsa (flip, rot 10, scale/shift 0.1, bright/contrast 0.1)": {"dsa": True},
    "all: momentum .9, window 5, chunk 64, dsa": {
        "momentum": 0.9,
        "window": 5,
        "outer_chunk": 64,
        "dsa": True,
    },
}


def one_row(opts: dict, size: int, repeats: int) -> tuple[float, float]:
    k, ipc, steps, epochs, batch = 3, 2, 5, opts.get("epochs", 2), 256
    ds = DistilledSet(
        k, ipc, steps, epochs, (1, size, size), lr_init=0.02, inner_momentum=opts.get("momentum", 0.0)
    )
    ds.init_noise(torch_generator(0, "bench-images"))
    dsa = DSA(rotate=10, scale=0.1, translate=0.1, brightness=0.1, contrast=0.1) if opts.get("dsa") else None
    times, cpu = [], []
    for r in range(repeats + 1):
        net = ConvNet(1, k, (size, size), width=32, depth=3)
        initialize(net, "xavier", torch_generator(0, "bench-net", r))
        gen = torch_generator(0, "bench-real", r)
        x = torch.randn(batch, 1, size, size, generator=gen)
        y = torch.randint(0, k, (batch,), generator=gen)
        end = sample_window_end(ds.num_inner_steps, opts.get("window"), torch_generator(0, "bench-window", r))
        ds.zero_grad(set_to_none=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        res = meta_objective(
            net,
            ds,
            x,
            y,
            opts.get("backend", "func"),
            opts.get("checkpoint", False),
            window=opts.get("window"),
            window_end=end,
            outer_chunk=opts.get("outer_chunk"),
            augment=dsa,
            seed_parts=(0, "bench-dsa", r),
        )
        res.surrogate.backward()
        release_template(net)
        if r:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return statistics.median(times), statistics.median(cpu)


def matching_step(size: int, repeats: int, per_class: int = 64) -> tuple[float, float]:
    """Mean seconds per step of ``match_distributions`` itself (``distill.distribution_matching``): the
    network's re-initialisation, a class-balanced real batch of ``per_class`` images per class (a resident
    uint8 array, as the preset's ``real_data: auto`` chooses), both forwards, the loss, its backward and
    the SGD step on the 30 images. ``repeats`` steps in one call, after a one-step warm-up call."""
    k = 3
    ds = DistilledSet(k, 2, 5, 2, (1, size, size)).init_noise(torch_generator(0, "bench-images"))
    rng = np.random.default_rng(0)
    n = 300 * k
    train = ArrayDataset(
        rng.integers(0, 256, (n, 1, size, size), dtype=np.uint8), np.arange(n) % k, mean=[0.5], std=[0.25]
    )
    real = RealBatchSource(
        train, train.labels, k * per_class, seed=0, num_classes=k, balanced=True, mode="resident"
    )

    def factory() -> torch.nn.Module:
        return ConvNet(1, k, (size, size), width=32, depth=3)

    def call(steps: int) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        match_distributions(ds, factory, real, steps=steps, lr=1.0, progress=False)
        return time.perf_counter() - start, time.process_time() - cpu_start

    call(1)
    sec, cpu = call(repeats)
    return sec / repeats, cpu / repeats


def texture_step(size: int, repeats: int, features: str) -> tuple[float, float]:
    """Mean seconds per step of ``match_textures`` itself (``distill.texture_matching``, the CPU preset's
    network: pooled-head ConvNet width 32, depth 3): each of the 30 images' Gram matrices and channel means
    at the input and the 3 ReLUs, the loss, its backward and the Adam step; ``teacher``: one network plus
    the cross-entropy term (weight 0.1; the teacher's training, once per run, is not counted), ``random``:
    4 networks. The class targets (one pass over the training split) are computed before the clock starts.
    ``repeats`` steps in one call, after a one-step warm-up call."""
    k = 3
    ds = DistilledSet(k, 2, 5, 2, (1, size, size)).init_noise(torch_generator(0, "bench-images"))
    n_nets = 1 if features == "teacher" else 4
    nets = []
    for i in range(n_nets):
        net = ConvNet(1, k, (size, size), width=32, depth=3, head="avg")
        initialize(net, "xavier", torch_generator(0, "bench-texture", i))
        nets.append(net.eval())
    x = torch.randn(300, 1, size, size, generator=torch_generator(0, "bench-real"))
    targets = class_texture_targets(nets, [(x, torch.arange(300) % k)], k, alpha=1.0)
    teacher = nets[0] if features == "teacher" else None

    def call(steps: int) -> tuple[float, float]:
        start, cpu_start = time.perf_counter(), time.process_time()
        match_textures(
            ds, nets, targets, steps=steps, lr=0.05, teacher=teacher, teacher_ce=0.1, progress=False
        )
        return time.perf_counter() - start, time.process_time() - cpu_start

    call(1)
    sec, cpu = call(repeats)
    return sec / repeats, cpu / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32, help="image side of the distilled and real batches, px")
    ap.add_argument("--repeats", type=int, default=5, help="outer steps timed per row (after one warm-up)")
    ap.add_argument(
        "--rows", nargs="*", default=None, help=f"substrings of the row names to run, of: {', '.join(ROWS)}"
    )
    ap.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = []
    print(f"CPU preset shape at {args.size}x{args.size}, 1 thread, median of {args.repeats} outer steps")
    for name, opts in ROWS.items():
        if args.rows and not any(s in name for s in args.rows):
            continue
        sec, cpu = one_row(opts, args.size, args.repeats)
        out.append({"option": name, "size": args.size, "wall_s": round(sec, 3), "cpu_s": round(cpu, 3)})
        print(f"{name:60s} wall {sec:7.3f} s   cpu {cpu:7.3f} s", flush=True)
    name = "one distribution-matching step (64 real per class)"
    if not args.rows or any(s in name for s in args.rows):
        sec, cpu = matching_step(args.size, args.repeats)
        out.append({"option": name, "size": args.size, "wall_s": round(sec, 3), "cpu_s": round(cpu, 3)})
        print(f"{name:60s} wall {sec:7.3f} s   cpu {cpu:7.3f} s", flush=True)
    for features, name in [
        ("teacher", "one texture-matching step (teacher + CE, pooled head)"),
        ("random", "one texture-matching step (4 random networks)"),
    ]:
        if not args.rows or any(s in name for s in args.rows):
            sec, cpu = texture_step(args.size, args.repeats, features)
            out.append({"option": name, "size": args.size, "wall_s": round(sec, 3), "cpu_s": round(cpu, 3)})
            print(f"{name:60s} wall {sec:7.3f} s   cpu {cpu:7.3f} s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
