"""Seconds per outer step of the CPU preset's shape, with and without each distiller option (one thread).

Shape (``experiment=cpu``): ConvNet width 32, depth 3, gray ``size x size`` input, 3 classes, ipc 2,
steps 5, epochs 2 (T = 10), real batch 256. One outer step = sample an inner network, unroll, outer loss,
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

import torch

from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.distribution_matching import mean_embedding_loss
from gastrodistill.distillation.inner_loop import meta_objective, release_template, sample_window_end
from gastrodistill.models import ConvNet, initialize
from gastrodistill.models.features import penultimate_features
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
    """One step of distribution matching (``distill.distribution_matching``): a fresh network, features of
    ``per_class`` real images per class and of the 30 distilled images, the loss, its backward."""
    k = 3
    ds = DistilledSet(k, 2, 5, 2, (1, size, size)).init_noise(torch_generator(0, "bench-images"))
    labels = ds.hard_labels()
    times, cpu = [], []
    for r in range(repeats + 1):
        net = ConvNet(1, k, (size, size), width=32, depth=3)
        initialize(net, "xavier", torch_generator(0, "bench-net", r))
        for p in net.parameters():
            p.requires_grad_(False)
        x = torch.randn(k * per_class, 1, size, size, generator=torch_generator(0, "bench-real", r))
        y = torch.arange(k).repeat_interleave(per_class)
        ds.zero_grad(set_to_none=True)
        start, cpu_start = time.perf_counter(), time.process_time()
        with torch.no_grad():
            f_real = penultimate_features(net, x)
        loss = mean_embedding_loss(f_real, y, penultimate_features(net, ds.images), labels, k)
        loss.backward()
        if r:
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu_start)
    return statistics.median(times), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rows", nargs="*", default=None, help="substrings of the row names to run")
    ap.add_argument("--json", default=None)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
