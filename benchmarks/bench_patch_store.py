"""Patch-store build throughput and peak memory on 2048x2048 16-bit X-ray-sized inputs.

    python benchmarks/bench_patch_store.py                 # N = 6 and 12 images, storage 299 and 64 px
    python benchmarks/bench_patch_store.py --n 12 48 --sizes 299

Writes N synthetic 2048² 16-bit PNGs with random elliptic masks to a temporary folder, then builds
a store for every (N, storage size) in a fresh subprocess (so each peak RSS is that build's own),
timing the whole cold path: hashing, validation, tiling, labelling, writing. Peak memory should
not grow with N (the build streams image by image). Ends with the extrapolation to the paper's
136,297 training patches.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from proc_memory import reset_peak_rss, status_kib

PAPER_PATCHES = (
    48_385 + 42_785 + 45_127
)  # irrelevant + non-gastritis + gastritis training patches (ICIP 2020)
SIDE = 2048


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    """n X-ray-like 16-bit PNGs (smooth field + noise, so PNG compression is realistic) and masks."""
    import cv2
    from PIL import Image

    from gastrodistill.utils.seeding import numpy_rng

    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(exist_ok=True)
    for i in range(n):
        rng = numpy_rng(seed, "bench-image", i)
        field = cv2.resize(
            rng.random((32, 32)).astype(np.float32), (SIDE, SIDE), interpolation=cv2.INTER_CUBIC
        )
        img = np.clip(field * 40000 + 8000 + rng.normal(0, 600, (SIDE, SIDE)), 0, 65535).astype(np.uint16)
        Image.fromarray(img).save(folder / "images" / f"img{i:03d}.png")
        cy, cx, ry, rx = (
            rng.uniform(600, 1400),
            rng.uniform(600, 1400),
            rng.uniform(300, 600),
            rng.uniform(300, 600),
        )
        mask = cv2.ellipse(
            np.zeros((SIDE, SIDE), np.uint8), (int(cx), int(cy)), (int(rx), int(ry)), 0, 0, 360, 255, -1
        )
        Image.fromarray(mask).save(folder / "masks" / f"img{i:03d}.png")


def data_root(src: Path, dst: Path, n: int) -> Path:
    """DATA_ROOT: first n images (hard links stay inside it); half gastritis, every 3rd patient test."""
    for sub in ("images", "masks"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    rows = ["image,patient_id,diagnosis,split,mask"]
    for i in range(n):
        for sub in ("images", "masks"):
            target = dst / sub / f"img{i:03d}.png"
            try:
                os.link(src / sub / target.name, target)
            except OSError:
                shutil.copy2(src / sub / target.name, target)
        pid = f"P{i // 2:03d}"  # two images per patient
        diag = "gastritis" if (i // 2) % 2 else "non-gastritis"
        split = "test" if (i // 2) % 3 == 2 else "train"
        rows.append(f"images/img{i:03d}.png,{pid},{diag},{split},masks/img{i:03d}.png")
    (dst / "manifest.csv").write_text("\n".join(rows) + "\n")
    return dst


def _peak_rss_mb() -> float:
    try:
        return status_kib("VmHWM") / 1024
    except (OSError, RuntimeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(root: str, store_root: str, size: int) -> None:
    """One cold build in this process; prints a JSON line with time and memory."""
    import gastrodistill.data.splits  # noqa: F401 - imports torch (via seeding) before the peak is reset
    from gastrodistill.data.patch_store import PatchStore, StoreSpec, build_store
    from gastrodistill.data.tiling import Geometry

    import_rss = _peak_rss_mb()
    reset = reset_peak_rss()
    spec = StoreSpec(
        Path(root),
        Path(store_root),
        Geometry(299, 50),
        storage_size=None if size == 299 else size,
        val_fraction=0.2,
    )
    tracemalloc.start()
    t0 = time.perf_counter()
    path = build_store(spec, progress=False)
    seconds = time.perf_counter() - t0
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    store = PatchStore(path)
    print(
        json.dumps(
            {
                "patches": int(store.patches.shape[0]),
                "seconds": seconds,
                "build_seconds": store.meta["build_seconds"],
                "import_peak_rss_mb": import_rss,
                "peak_rss_mb": _peak_rss_mb(),
                "peak_reset": reset,
                "traced_peak_mb": traced_peak / 2**20,
                "store_mb": (path / "patches.npy").stat().st_size / 1e6,
                "index_bytes": (path / "index.csv").stat().st_size,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, nargs="+", default=[6, 12], help="numbers of 2048² images to build from"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[299, 64], help="storage sizes (299 = full)")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--worker", nargs=3, metavar=("ROOT", "STORE", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], int(args.worker[2]))
        return

    work = Path(tempfile.mkdtemp(prefix="bench_patch_store_", dir=args.workdir))
    try:
        t0 = time.perf_counter()
        make_images(work / "source", max(args.n))
        print(
            f"wrote {max(args.n)} images of {SIDE}x{SIDE} 16-bit PNG in {time.perf_counter() - t0:.1f} s "
            f"({sum(f.stat().st_size for f in (work / 'source' / 'images').iterdir()) / 1e6:.0f} MB)"
        )
        env = dict(os.environ, NO_ALBUMENTATIONS_UPDATE="1")
        results = []
        print(
            f"{'N img':>5} {'size':>4} {'patches':>7} {'total s':>8} {'build s':>7} {'patch/s':>8} "
            f"{'RSS MB':>7} {'imp. MB':>7} {'traced MB':>9} {'store MB':>8}"
        )
        roots = {n: data_root(work / "source", work / f"data{n}", n) for n in args.n}
        for size in args.sizes:
            for n in args.n:
                stores = work / f"stores-{size}-{n}"  # own store root: no source-hash cache from earlier runs
                cmd = [sys.executable, __file__, "--worker", str(roots[n]), str(stores), str(size)]
                out = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if out.returncode != 0:
                    raise SystemExit(f"build failed for N={n}, size={size}:\n{out.stderr}")
                r = json.loads(out.stdout.strip().splitlines()[-1]) | {"n": n, "size": size}
                results.append(r)
                shutil.rmtree(stores, ignore_errors=True)
                print(
                    f"{n:>5} {size:>4} {r['patches']:>7} {r['seconds']:>8.2f} {r['build_seconds']:>7.2f} "
                    f"{r['patches'] / r['seconds']:>8.0f} {r['peak_rss_mb']:>7.0f} "
                    f"{r['import_peak_rss_mb']:>7.0f} {r['traced_peak_mb']:>9.1f} {r['store_mb']:>8.1f}"
                )
        print(
            "RSS MB: peak resident memory during the build (high-water mark reset after imports"
            + ("" if all(r["peak_reset"] for r in results) else "; NOT reset on this OS, includes imports")
            + "); imp. MB: peak after imports; traced MB: peak Python/numpy allocations (tracemalloc)"
        )
        print(f"\nextrapolated to the paper's {PAPER_PATCHES:,} patches (from the largest N, cold build):")
        for size in args.sizes:
            r = max((x for x in results if x["size"] == size), key=lambda x: x["n"])
            rate = r["patches"] / r["seconds"]
            disk = PAPER_PATCHES * size * size + PAPER_PATCHES * r["index_bytes"] / r["patches"]
            print(
                f"  storage {size:>3} px: {PAPER_PATCHES / rate / 60:6.1f} min at {rate:.0f} patches/s "
                f"on this machine, {disk / 1e9:6.2f} GB on disk; "
                f"build memory stays at ~{r['peak_rss_mb']:.0f} MB RSS"
            )
        growth = {
            size: [x["peak_rss_mb"] for x in sorted(results, key=lambda x: x["n"]) if x["size"] == size]
            for size in args.sizes
        }
        print(
            "peak RSS by N (should be flat): "
            + "; ".join(
                f"{s} px: " + " -> ".join(f"{v:.0f}" for v in vals) + " MB" for s, vals in growth.items()
            )
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
