"""Write scikit-learn's digits (1,797 images, 8×8 px, 10 classes; shipped with scikit-learn, no download)
as a MedMNIST-layout ``.npz`` (uint8 ``train/val/test_images`` ``[N, 8, 8]`` and ``*_labels``), to run
the npz path of the pipeline offline:

    python benchmarks/make_digits_npz.py /tmp/digits.npz
    gastrodistill-reproduce experiment=cpu data=npz data.path=/tmp/digits.npz 'stages=[distill,evaluate]'

(``experiment=cpu data=npz`` loads the npz recipe, ``conf/specialize/cpu_npz.yaml``, whose ConvNet depth 2
suits 8 px images.) Split: a seeded permutation, 1,000 / 300 / 497 images. Pixel values 0–16 are
scaled by 16 and clipped to 255.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="the .npz file to write")
    ap.add_argument("--seed", type=int, default=0, help="seed of the train/val/test permutation")
    args = ap.parse_args(argv)
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.clip(d.images * 16, 0, 255).astype(np.uint8)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(args.seed).permutation(len(x))
    parts = {"train": idx[:1000], "val": idx[1000:1300], "test": idx[1300:]}
    arrays = {
        f"{k}_{kind}": (x if kind == "images" else y)[v]
        for k, v in parts.items()
        for kind in ("images", "labels")
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)  # a new folder, as for the project's run folders
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez(tmp, **arrays, class_names=np.array([str(c) for c in range(10)]))
    tmp.replace(args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {len(v)}" for k, v in parts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
