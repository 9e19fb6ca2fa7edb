"""How consistent is the meta-gradient of the distilled images from one outer step to the next?

Draws ``--samples`` fresh inner networks (the distiller's own init) and class-balanced real batches, and
for each the meta-gradient of the outer loss with respect to the distilled images (one unroll, one
backward, ``inner_loop.meta_objective``), for a distilled set at its initialisation (``distill.image_init``)
or loaded from ``--set DIR``. Prints the mean pairwise cosine of those gradients, on the pixels and after
average pooling (``--pool``: 4 px blocks ... one value per image), and the norm of their mean over their
mean norm. ``--warm-steps K`` first trains each inner network K plain SGD steps (lr ``--warm-lr``) on the
distilled set or on class-balanced real batches of 10 per class (``--warm-on``): the later training states
a pool of partly trained inner networks (FRePo) would unroll from. A pairwise cosine near 0 means each
outer step's gradient is dominated by its own network and batch: Adam then mostly random-walks the
pixels, and a distiller needs about 1 / cosine outer steps (or inner networks per step) before the common
direction shows. ``docs/cpu_study.md`` ("Why the CPU study's
distiller stalls") has the figures.

    GASTRODISTILL_ROOT=... python benchmarks/meta_gradient_snr.py experiment=cpu
    python benchmarks/meta_gradient_snr.py --set outputs/cpu/runs/<run>/distill/soft experiment=cpu

Hydra overrides (``experiment=cpu``, ``distill.epochs=12``, ...) come after the options; the data must
already exist (``gastrodistill-generate`` / ``make reproduce``). One torch thread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from study_config import composed, prepared_data  # benchmarks/study_config.py


def pairwise_cosine(grads: torch.Tensor) -> float:
    """Mean cosine over the distinct pairs of the rows of ``grads`` ``[S, D]`` (S >= 2)."""
    unit = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-30)
    sims = unit @ unit.T
    off = ~torch.eye(len(grads), dtype=torch.bool)
    return float(sims[off].mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=8, help="fresh inner networks / real batches (>= 2)")
    ap.add_argument("--set", type=Path, default=None, help="a saved DistilledSet folder (default: its init)")
    ap.add_argument("--pool", type=int, nargs="+", default=[1, 4, 16, 0], help="pool sizes in px; 0 = image")
    ap.add_argument("--warm-steps", type=int, default=0, help="SGD steps before the unroll (a pool's state)")
    ap.add_argument(
        "--warm-on", choices=["distilled", "real"], default="distilled", help="what the warm steps train on"
    )
    ap.add_argument("--warm-lr", type=float, default=0.02, help="learning rate of the warm steps")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=cpu")
    args = ap.parse_args(argv)
    if args.samples < 2:
        ap.error("--samples must be >= 2")
    torch.set_num_threads(1)

    from hydra.utils import instantiate

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.distillation.inner_loop import meta_objective, sgd_step
    from gastrodistill.distillation.run import build_distilled_set
    from gastrodistill.models.init import initialize
    from gastrodistill.utils.seeding import torch_generator

    cfg = composed(args.overrides)
    dm = prepared_data(cfg)
    x, y = dm.load_split("train")
    mode = str(cfg.distill.mode)
    seed = int(cfg.seed)
    ds = DistilledSet.load(args.set) if args.set else build_distilled_set(cfg.distill, dm, mode, seed)
    by_class = [torch.nonzero(y == c).flatten() for c in range(dm.num_classes)]
    per_class = max(1, int(cfg.distill.batch_real) // dm.num_classes)
    grads, losses = [], []
    for k in range(args.samples):
        g = torch_generator(int(cfg.seed), "meta-gradient-snr", k)
        net = instantiate(cfg.model)(
            in_channels=dm.in_channels, num_classes=dm.num_classes, image_size=tuple(dm.image_size)
        )
        initialize(net, str(cfg.distill.init), g)
        for t in range(args.warm_steps):  # a partly trained inner network
            if args.warm_on == "distilled":
                xb, tb = ds.batch(t % ds.num_inner_steps)
                sgd_step(net, xb.detach(), tb.detach(), args.warm_lr)
            else:
                warm = torch.cat([b[torch.randint(len(b), (10,), generator=g)] for b in by_class])
                sgd_step(net, x[warm], y[warm], args.warm_lr)
        idx = torch.cat([b[torch.randint(len(b), (per_class,), generator=g)] for b in by_class])
        ds.zero_grad(set_to_none=True)
        window = cfg.distill.get("window")
        res = meta_objective(net, ds, x[idx], y[idx], window=window, window_end=ds.num_inner_steps)
        res.surrogate.backward()
        grads.append(ds.images.grad.detach().clone())
        losses.append(float(res.loss))
    stack = torch.stack(grads)  # [S, N, C, H, W]
    s, n, c, h, w = stack.shape
    out: dict[str, float] = {"samples": s, "warm_steps": args.warm_steps, "outer_loss_mean": sum(losses) / s}
    for p in args.pool:
        if p > min(h, w):
            continue
        pooled = stack.view(s * n, c, h, w)
        pooled = pooled.mean((2, 3), keepdim=True) if p == 0 else F.avg_pool2d(pooled, p)
        key = "image" if p == 0 else f"{p}px"
        out[f"cosine_{key}"] = pairwise_cosine(pooled.reshape(s, -1))
    flat = stack.reshape(s, -1)
    out["mean_norm_over_norm"] = float(flat.mean(0).norm() / flat.norm(dim=1).mean())
    out["independent_noise_reference"] = 1 / s**0.5
    for k, v in out.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
