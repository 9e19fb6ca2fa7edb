"""The privacy-fidelity frontier: what each image init and number of outer steps costs in anonymity.

For every image init (``noise``, ``real``, and ``class_mean`` when the distiller has it) the script
distils once up to the largest number of outer steps, keeping a snapshot of the distilled set at each
requested step (step 0 is the init itself). Every snapshot is then measured twice:

* fidelity: fresh networks trained from it (replay schedule), tested on real test patients: patient
  HM (threshold from validation patients, eval.patient policy) and patient ROC AUC, with the counts;
* privacy: its nearest *informative* real patch (pixel NCC, max and share flagged at or above the
  between-patient q99, as the audit computes it) and the calibrated membership attack (LiRA, shadow
  networks on random halves of the patients) on the same fresh networks: patch AUC and advantage.

Writes ``frontier.csv``, ``frontier.md`` and ``frontier.png`` (patient HM and AUC against nearest-real
NCC and against membership advantage) to ``--out``. The default scale fits in about 10 minutes of one
CPU thread on the embedded synthetic data at 32 px (docs/anonymity.md has the table and how to read it)::

    GASTRODISTILL_ROOT=. .venv/bin/python benchmarks/privacy_frontier.py --out outputs/frontier
    .venv/bin/python benchmarks/privacy_frontier.py --steps 0 50 150 --inits noise real -- distill.ipc=2

Arguments after ``--`` are Hydra overrides of the root config (``experiment=cpu`` is always applied
first, then this script's small-scale defaults, then yours).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

#: Small-scale defaults on top of experiment=cpu (overridable after ``--``). The snapshots come from the
#: bi-level loop alone, started from each init: the preset's texture matching (which moves every init
#: toward class statistics before the loop) is off, so the soft labels start one-hot (no teacher's
#: predictions), and its RaT-BPTT window of 10 would not fit the 5-step unroll, backpropagated whole.
SMALL = [
    "data.storage_size=32",
    "data.progress=false",
    "logger=none",
    "distill.ipc=2",
    "distill.steps=5",
    "distill.epochs=1",
    "distill.window=null",
    "distill.texture_matching.steps=0",
    "distill.texture_matching.teacher_labels=null",
    "distill.batch_real=128",
    "distill.grid_every=0",
    "distill.ckpt_every=0",
    "eval.baselines.real.epochs=4",
    "eval.progress=false",
    "audit.membership.max_per_side=600",
    "audit.membership.shadows=2",
    "audit.nearest.reference_size=400",
]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    overrides: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, overrides = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inits", nargs="+", default=None, help="image inits (default: noise, class_mean, real)")
    p.add_argument("--steps", nargs="+", type=int, default=[0, 40, 120], help="outer steps to snapshot")
    p.add_argument("--networks", type=int, default=2, help="fresh networks per snapshot")
    p.add_argument("--out", default="outputs/frontier", help="output folder")
    return p.parse_args(argv), overrides


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from gastrodistill.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name="config", overrides=["experiment=cpu", *SMALL, *overrides])


def available_inits() -> list[str]:
    """``noise``, ``class_mean`` (if this version of the distiller has it) and ``real``."""
    from gastrodistill.distillation.distilled_set import DistilledSet

    return ["noise", *(["class_mean"] if hasattr(DistilledSet, "init_class_mean") else []), "real"]


def snapshots(cfg, dm, init: str, steps: list[int], out: Path) -> dict[int, object]:
    """Distil with ``image_init=init`` up to ``max(steps)``; a copy of the set at each requested step."""
    import pytorch_lightning as pl
    from omegaconf import open_dict

    from gastrodistill.distillation.run import run_distillation

    wanted = sorted(set(steps))
    kept: dict[int, object] = {}

    class Snap(pl.Callback):
        def on_train_start(self, trainer, module):
            if 0 in wanted:
                kept[0] = copy.deepcopy(module.distilled).cpu().float()

        def on_train_batch_end(self, trainer, module, *args):
            if trainer.global_step in wanted:
                kept[trainer.global_step] = copy.deepcopy(module.distilled).cpu().float()

    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.distill.image_init = init
        cfg.distill.outer_steps = max(1, wanted[-1])
    final = run_distillation(cfg, dm, out / f"distill_{init}", callbacks=[Snap()])
    kept.setdefault(wanted[-1], final)
    return {s: kept[s] for s in wanted if s in kept}


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse(sys.argv[1:] if argv is None else argv)
    import hydra
    import numpy as np
    import pandas as pd
    import torch
    from omegaconf import OmegaConf

    from gastrodistill.anonymity.audit import (
        RealFit,
        distilled_networks,
        informative_selection,
        train_reference_network,
    )
    from gastrodistill.anonymity.membership import attack_target, build_pool, train_shadows
    from gastrodistill.anonymity.nearest import nearest_real
    from gastrodistill.evaluation.run import build_context, evaluate_network
    from gastrodistill.utils.atomic import atomic_path, write_text_atomic

    torch.set_num_threads(1)
    t0 = time.time()
    out = Path(args.out).resolve()
    cfg = compose([f"paths.output_dir={out}", *overrides])
    out.mkdir(parents=True, exist_ok=True)
    inits = args.inits or available_inits()
    dm = hydra.utils.instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    seed = int(cfg.seed)

    sets: dict[str, object] = {}
    for init in inits:
        for step, ds in snapshots(cfg, dm, init, args.steps, out).items():
            sets[f"{init}@{step}"] = ds
    print(f"distilled {len(sets)} snapshots in {time.time() - t0:.0f} s", flush=True)

    real_net, info = train_reference_network(cfg, dm)
    ncfg = cfg.audit.nearest
    informative = informative_selection(cfg, dm)
    near = nearest_real(
        dm,
        {k: v.images.detach() for k, v in sets.items()},
        reference_size=int(ncfg.reference_size),
        seed=seed,
        real_indices=informative.indices,
        ssim=False,
        flag_quantile=float(ncfg.flag_quantile),
        duplicate_ncc=float(ncfg.duplicate_ncc),
    )
    mcfg = cfg.audit.membership
    pool = build_pool(dm, int(mcfg.max_per_side), seed)
    epochs = int(info.get("best_epoch") or cfg.eval.baselines.real.epochs)
    shadows = train_shadows(pool, RealFit(cfg, dm, epochs), int(mcfg.shadows), seed)
    ctx = build_context(cfg, dm)
    real_attack = attack_target(real_net, pool, shadows, pool.is_train)
    real_eval = evaluate_network(real_net, ctx)
    print(f"reference network, shadows: {time.time() - t0:.0f} s", flush=True)

    rows = []
    for name, ds in sets.items():
        init, step = name.split("@")
        nets = distilled_networks(cfg, dm, ds, name, args.networks, "replay")
        evals = [evaluate_network(n, ctx) for n in nets]
        attacks = [attack_target(n, pool, shadows, pool.is_train) for n in nets]
        summary = near.summary(name)
        rows.append(
            {
                "init": init,
                "outer_steps": int(step),
                "patient_hm": float(np.mean([e.get("patient_hm", math.nan) for e in evals])),
                "patient_auc": float(np.mean([e.get("patient_auc", math.nan) for e in evals])),
                "patch_accuracy": float(np.mean([e["patch_accuracy"] for e in evals])),
                "ncc_nearest_max": summary["ncc_nearest_max"],
                "ncc_nearest_mean": summary["ncc_nearest_mean"],
                "ncc_frac_flagged": summary["ncc_frac_flagged"],
                "mia_lira_auc": float(np.mean([a.patch["lira"].auc for a in attacks])),
                "mia_lira_advantage": float(np.mean([a.patch["lira"].advantage for a in attacks])),
                "mia_patient_lira_auc": float(np.mean([a.patient["lira"].auc for a in attacks])),
            }
        )
        print(f"{name}: {rows[-1]}", flush=True)
    df = pd.DataFrame(rows)
    n_test = int(len(evals[0]["test_labels"])) if evals and "test_labels" in evals[0] else 0
    n_pos = int(np.sum(evals[0]["test_labels"])) if n_test else 0
    thr = evals[0].get("threshold_fit_count", math.nan) if evals else math.nan
    meta = {
        "ncc_flag_threshold": near.threshold("ncc"),
        "n_informative": len(informative.indices),
        "n_train_patches": informative.n_total,
        "n_test_patients": n_test,
        "n_test_gastritis": n_pos,
        "n_threshold_patients": float(thr),
        "pool_members": int(pool.is_train.sum()),
        "pool_nonmembers": int((~pool.is_train).sum()),
        "pool_patients": pool.n_patients,
        "shadows": shadows.n_shadows,
        "networks_per_snapshot": args.networks,
        "real_network": {
            "patient_hm": float(real_eval.get("patient_hm", math.nan)),
            "patient_auc": float(real_eval.get("patient_auc", math.nan)),
            "mia_lira_auc": real_attack.patch["lira"].auc,
            "mia_lira_advantage": real_attack.patch["lira"].advantage,
        },
        "seconds": round(time.time() - t0, 1),
        "config": OmegaConf.to_container(cfg.distill, resolve=True),
    }
    with atomic_path(out / "frontier.csv", suffix=".csv") as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")
    write_text_atomic(out / "frontier.json", json.dumps(meta, indent=2, default=str))
    write_text_atomic(out / "frontier.md", to_markdown(df, meta))
    plot(df, meta, out / "frontier.png")
    print(to_markdown(df, meta))
    print(f"wrote {out}/frontier.{{csv,md,png,json}} in {time.time() - t0:.0f} s")
    return 0


def to_markdown(df, meta) -> str:
    r = meta["real_network"]
    lines = [
        "| init | outer steps | patient HM | patient AUC | nearest-real NCC (max) | flagged | "
        "LiRA AUC | membership advantage |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, x in df.iterrows():
        lines.append(
            f"| {x.init} | {x.outer_steps} | {x.patient_hm:.3f} | {x.patient_auc:.3f} | "
            f"{x.ncc_nearest_max:.3f} | {x.ncc_frac_flagged:.0%} | {x.mia_lira_auc:.3f} | "
            f"{x.mia_lira_advantage:.3f} |"
        )
    lines.append(
        f"| all real patches (upper bound) | – | {r['patient_hm']:.3f} | {r['patient_auc']:.3f} | – | – | "
        f"{r['mia_lira_auc']:.3f} | {r['mia_lira_advantage']:.3f} |"
    )
    lines += [
        "",
        f"Patient HM and AUC on {meta['n_test_patients']} test patients ({meta['n_test_gastritis']} "
        f"gastritis), thresholds on {meta['n_threshold_patients']:.0f} patients; mean of "
        f"{meta['networks_per_snapshot']} fresh networks (replay). Flag: pixel NCC at or above "
        f"{meta['ncc_flag_threshold']:.3f}, the between-patient q99 over {meta['n_informative']} informative "
        f"of {meta['n_train_patches']} training patches. Membership: {meta['pool_members']} training vs "
        f"{meta['pool_nonmembers']} test patches of {meta['pool_patients']} patients, "
        f"{meta['shadows']} shadow networks. {meta['seconds']:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def plot(df, meta, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gastrodistill.utils.atomic import atomic_path

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    markers = {"noise": "o", "class_mean": "s", "real": "^"}
    for ax, (col, label) in zip(
        axes,
        (
            ("ncc_nearest_max", "nearest-real pixel NCC (max over images)"),
            ("mia_lira_advantage", "membership advantage (LiRA)"),
        ),
        strict=True,
    ):
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for i, (init, part) in enumerate(df.groupby("init", sort=False)):
            part = part.sort_values("outer_steps")
            for metric, style in (("patient_hm", "-"), ("patient_auc", ":")):
                ax.plot(
                    part[col],
                    part[metric],
                    style,
                    color=colors[i % len(colors)],
                    marker=markers.get(init, "x"),
                    label=f"{init} {metric[8:]}",
                )
            for _, x in part.iterrows():
                ax.annotate(
                    str(x.outer_steps),
                    (x[col], x.patient_hm),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        if col == "ncc_nearest_max":
            ax.axvline(
                meta["ncc_flag_threshold"], color="red", linestyle="--", linewidth=1, label="flag (q99)"
            )
        ax.set_xlabel(label)
    axes[0].set_ylabel("patient HM (solid) / AUC (dotted)")
    axes[0].legend(fontsize=7)
    fig.suptitle("privacy-fidelity frontier (labels: outer steps); up and left is better", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    raise SystemExit(main())
