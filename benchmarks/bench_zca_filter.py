"""Peak memory and seconds of the ZCA filter estimate (``data.zca``): all images at once against the
batch-by-batch read of :meth:`gastrodistill.data.zca.LocalZCA.kernel` (by default in the data module's
batches: at most 512 images and ``ZCA_READ_BYTES``), side by side, each in its own process.

The images are made on demand by a seeded loader (smoothed noise, one per index), so the loader itself
holds nothing: what each way keeps is what the peak shows. Example (the full preset's size)::

    .venv/bin/python benchmarks/bench_zca_filter.py --images 2000 --size 299

prints one row per way (peak RSS above the start in MiB, seconds) and whether the two filters are equal
to the bit.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from proc_memory import reset_peak_rss, status_kib  # benchmarks/proc_memory.py


def make_images(picks: list[int], size: int) -> torch.Tensor:
    """``[len(picks), 1, size, size]`` float32: white noise smoothed by a 3 x 3 box, image i seeded by i."""
    out = torch.empty(len(picks), 1, size, size)
    for j, i in enumerate(picks):
        g = torch.Generator().manual_seed(int(i))
        noise = torch.randn(1, 1, size + 2, size + 2, generator=g)
        out[j] = torch.nn.functional.avg_pool2d(noise, 3, stride=1)[0]
    return out


def one_way(way: str, images: int, size: int, kernel_size: int, batch: int) -> dict:
    """Run one way in this process: peak RSS above the start (MiB), seconds, the filter (as a list)."""
    from gastrodistill.data.zca import LocalZCA, zca_kernel
    from gastrodistill.utils.seeding import torch_generator

    torch.set_num_threads(1)
    zca = LocalZCA(kernel_size=kernel_size, max_images=images)
    exact = reset_peak_rss()
    start_kib = status_kib("VmRSS")
    t0 = time.perf_counter()
    g = torch_generator(0, "zca")
    if way == "at-once":  # the draw of LocalZCA.kernel, then every image in memory together
        picks = torch.randperm(images, generator=g)[:images].sort().values.tolist()
        kernel = zca_kernel(make_images(picks, size), kernel_size, zca.eps, g, zca.max_windows)
    else:
        read = lambda picks: (make_images(picks[i : i + batch], size) for i in range(0, len(picks), batch))  # noqa: E731
        kernel = zca.kernel(images, read, g, (1, size, size))
    seconds = time.perf_counter() - t0
    peak = (status_kib("VmHWM") - start_kib) / 1024
    return {
        "way": way,
        "peak_mib": round(peak, 1),
        "exact_peak": exact,
        "seconds": round(seconds, 2),
        "kernel": kernel.tolist(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000, help="training images the filter reads (max_images)")
    ap.add_argument("--size", type=int, default=299, help="image side, px")
    ap.add_argument("--kernel-size", type=int, default=9, help="filter side, px (odd)")
    ap.add_argument(
        "--batch", type=int, help="images per batch read (default: the data module's, at most ZCA_READ_BYTES)"
    )
    ap.add_argument("--way", choices=["at-once", "batches"], help=argparse.SUPPRESS)  # the child's job
    args = ap.parse_args()
    if args.batch is None:
        from gastrodistill.data.base import ZCA_READ_BYTES

        args.batch = max(1, min(512, ZCA_READ_BYTES // (4 * args.size * args.size)))
    if args.way:
        print(json.dumps(one_way(args.way, args.images, args.size, args.kernel_size, args.batch)))
        return
    rows = []
    for way in ("at-once", "batches"):
        cmd = [
            sys.executable,
            __file__,
            "--way",
            way,
            "--images",
            str(args.images),
            "--size",
            str(args.size),
            "--kernel-size",
            str(args.kernel_size),
            "--batch",
            str(args.batch),
        ]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout))
    print(
        f"{args.images} grey {args.size} px images, {args.kernel_size} px filter, batches of {args.batch}, "
        "one torch thread"
    )
    print("| way | peak RSS above start (MiB) | seconds |")
    print("|---|---|---|")
    for r in rows:
        note = "" if r["exact_peak"] else " (lower bound)"
        print(f"| {r['way']} | {r['peak_mib']}{note} | {r['seconds']} |")
    print("filters equal to the bit:", rows[0]["kernel"] == rows[1]["kernel"])


if __name__ == "__main__":
    main()
