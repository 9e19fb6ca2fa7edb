"""float32 against bfloat16 autocast on this machine's CPU, for the CPU preset's network and batches.

``experiment=cpu`` trains its all-data and small-set networks and scores patients in bfloat16 autocast only
where the device computes bfloat16 itself (``${if_native_bf16:...}``,
``gastrodistill/utils/bf16_support.py``).
This script measures why, side by side in one process, with the preset's own network and batches (read
from the composed ``experiment=cpu``: the ConvNet of ``conf/model/convnet_cpu.yaml``, patches of
``data.storage_size`` = 64 px): one Adam training step on a batch of ``eval.baselines.real.batch_size`` = 64
and one scoring forward of ``eval.batch_size`` = 16, each in float32 and under bfloat16 autocast
(``utils.precision.precision_autocast``), in the default and in the channels-last memory format. Prints
the median time of each over ``--repeats`` timed calls after ``--warmup`` untimed ones, each mode's ratio
to float32, the peak resident memory, and what the resolver chooses here::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_precision.py            # ~1 min on one thread
    .venv/bin/python benchmarks/bench_precision.py --threads 2 --repeats 20 --json precision.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

MODES = ("float32", "bfloat16", "float32 channels-last", "bfloat16 channels-last")


def preset():
    """The composed ``experiment=cpu`` config (its three-class gastric patches are single-channel)."""
    from hydra import compose, initialize_config_dir

    from gastrodistill.utils.config_tree import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=cpu"])


def _network(cfg) -> torch.nn.Module:
    from hydra.utils import instantiate

    torch.manual_seed(0)
    return instantiate(cfg.model)(1, 3, int(cfg.data.storage_size))  # model configs are partial


def _median_seconds(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(cfg, mode: str, warmup: int, repeats: int) -> dict[str, float]:
    """Median seconds of one training step (the all-data batch) and one scoring forward (the scoring
    batch) in ``mode``."""
    from gastrodistill.utils.precision import precision_autocast

    net = _network(cfg)
    precision = "bf16-mixed" if mode.startswith("bfloat16") else "32-true"
    fmt = torch.channels_last if mode.endswith("channels-last") else torch.contiguous_format
    net = net.to(memory_format=fmt)
    size, batch, score_batch = (
        int(cfg.data.storage_size),
        int(cfg.eval.baselines.real.batch_size),
        int(cfg.eval.batch_size),
    )
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, size, size, generator=g).contiguous(memory_format=fmt)
    y = torch.randint(0, 3, (batch,), generator=g)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def train_step() -> None:
        with precision_autocast(precision, "cpu"):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def score() -> None:
        with torch.no_grad(), precision_autocast(precision, "cpu"):
            net(x[:score_batch])

    return {
        "train_step_s": _median_seconds(train_step, warmup, repeats),
        "score_s": _median_seconds(score, warmup, 3 * repeats),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as the CPU preset)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--repeats", type=int, default=10, help="timed training steps per mode (default 10)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.threads < 1 or args.warmup < 0 or args.repeats < 1:
        p.error("--threads and --repeats must be >= 1, --warmup >= 0")
    from gastrodistill.utils.bf16_support import cpu_has_native_bfloat16

    torch.set_num_threads(args.threads)
    native = cpu_has_native_bfloat16()
    print(
        f"CPU: {torch.backends.cpu.get_cpu_capability()}, native bfloat16: {native}; {args.threads} torch "
        f"thread(s); the CPU preset trains and scores here (eval.device=cpu) in "
        f"{'bfloat16 autocast' if native else 'float32'}",
        flush=True,
    )
    cfg = preset()
    rows = {mode: measure(cfg, mode, args.warmup, args.repeats) for mode in MODES}
    base = rows["float32"]
    train_title = f"train step ({int(cfg.eval.baselines.real.batch_size)})"
    score_title = f"score ({int(cfg.eval.batch_size)})"
    print(f"{'mode':24s} {train_title:>16s} {'x float32':>10s} {score_title:>11s} {'x float32':>10s}")
    for mode, r in rows.items():
        print(
            f"{mode:24s} {r['train_step_s'] * 1e3:13.1f} ms {r['train_step_s'] / base['train_step_s']:9.2f}x "
            f"{r['score_s'] * 1e3:8.1f} ms {r['score_s'] / base['score_s']:9.2f}x"
        )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mib:.0f} MiB")
    if args.json is not None:
        from gastrodistill.utils.atomic import write_text_atomic

        out = {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bfloat16": native}
        out |= {"threads": args.threads, "rows": rows, "peak_rss_mib": round(peak_mib)}
        write_text_atomic(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
