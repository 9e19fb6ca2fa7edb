"""How many real patches per class does the distillation's network need? The learning curve of random
real subsets, on validation patients, and the same for patches of another collection (a *pool*).

For each size n (``--ipc``, patches per class) the script draws ``--draws`` class-balanced random subsets
of the training split (``datamodule.sample_per_class``, the random-subset baseline's own draw), trains
``--networks`` fresh networks of the distillation architecture on each by the evaluation's small-set
recipe (``eval.standard``, every learning rate of ``eval.lr_grid``), and scores them on the
**validation** patients only: patch balanced accuracy, patient AUC (the evaluation's patient score:
the share of gastritis among the patches predicted relevant) and the recall of each class. The learning
rate with the best mean validation balanced accuracy is reported per size (the evaluation's own rule);
the test split is never read. ``--set DIR`` places a saved distilled set on the same curve: its images
with their soft targets trained by the same recipe, and its learned schedule replayed
(``train_replay``), ``draws x networks`` fresh networks each.

``--pool OVERRIDES`` draws the subsets from another data config's store instead (e.g. a collection
generated with pinned severities: clean prototypes of each diagnosis), renormalised by the scored data's
pixel statistics; the networks are still scored on the validation patients of the main config. What a
distilled set of n images per class must beat is the curve's value at n; the size at which the curve
reaches a target says how many real patches each distilled image would have to be worth
(``docs/distillation.md``, "Tenth round").

    python benchmarks/small_set_curve.py --ipc 10 30 100 experiment=cpu
    python benchmarks/small_set_curve.py --ipc 10 --set outputs/cpu/runs/<run>/distill/soft experiment=cpu
    python benchmarks/small_set_curve.py --ipc 10 30 --pool synthetic.name=prototypes \\
        "synthetic.gastritis_severity=[1,1]" "synthetic.non_gastritis_severity=[0,0]" -- experiment=cpu

Hydra overrides of the scored data come last (after ``--`` when ``--pool`` is given); both stores must
exist (``gastrodistill-reproduce 'stages=[generate,patches]' ...``). One torch thread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def renormalise(x: torch.Tensor, source: tuple[float, float], target: tuple[float, float]) -> torch.Tensor:
    """Images ``[N, C, H, W]`` normalised by ``source`` (mean, std) re-expressed under ``target``'s."""
    return (x * source[1] + source[0] - target[0]) / target[1]


def pixel_stats(dm) -> tuple[float, float]:
    """(mean, std) of the training split's normalisation (single-channel stores)."""
    ds = dm.dataset("train", augment=False)
    return float(np.ravel(ds.mean)[0]), float(np.ravel(ds.std)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ipc", type=int, nargs="+", default=[10, 30, 100], help="patches per class")
    ap.add_argument("--draws", type=int, default=2, help="random subsets per size")
    ap.add_argument("--networks", type=int, default=3, help="fresh networks per subset and learning rate")
    ap.add_argument("--pool", nargs="*", default=None, help="Hydra overrides of the store to draw from")
    ap.add_argument(
        "--set", type=Path, action="append", default=[], help="a saved distilled set (repeatable)"
    )
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the scored data, e.g. experiment=cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from gastrodistill.cli import CONF_DIR
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.checks import check_distilled_set
    from gastrodistill.evaluation.fresh_training import (
        distilled_tensors,
        standard_schedule,
        train_replay,
        train_small_set,
    )
    from gastrodistill.evaluation.metrics import patch_metrics, patient_metrics
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.evaluation.patient import patient_scores
    from gastrodistill.evaluation.run import recorded_model
    from gastrodistill.evaluation.scoring import predict_split
    from gastrodistill.evaluation.splits import SplitCache, class_index
    from gastrodistill.utils.seeding import torch_generator

    def load(overrides: list[str]):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=["logger=none", *overrides])
        dm = instantiate(cfg.data)
        dm.prepare_data()
        dm.setup()
        return cfg, dm

    cfg, dm = load(args.overrides)
    ev = cfg.eval
    pool_dm = load([*args.overrides, *args.pool])[1] if args.pool is not None else dm
    stats, pool_stats = pixel_stats(dm), pixel_stats(pool_dm)
    val = SplitCache(dm, "val", int(ev.max_in_memory_mb) * 2**20, int(ev.batch_size))
    names = list(dm.class_names)
    pos = class_index(names, ev.patient.positive_class, "positive_class", required=val.has_patients)
    irr = class_index(names, ev.patient.irrelevant_class, "irrelevant_class", required=False)
    spec = net_spec(cfg, "same", dm)
    lrs = [float(v) for v in ev.lr_grid] or [float(ev.standard.lr)]

    def score(nets: list, **what) -> dict:
        """Validation figures of ``nets``: balanced accuracy, patient AUC (mean ± std), recall per class."""
        preds = predict_split(nets, val).argmax(-1)
        bacc, auc, recall = [], [], []
        for p in preds:
            bacc.append(float(patch_metrics(p, val.labels, dm.num_classes)["patch_balanced_accuracy"]))
            recall.append([float(np.mean(p[val.labels == c] == c)) for c in range(dm.num_classes)])
            if pos is not None and val.has_patients:
                ps = patient_scores("val", p, val.patient_ids, val.patient_labels, pos, irr)
                auc.append(float(patient_metrics(ps.labels, ps.scores > 0.5, ps.scores)["patient_auc"]))
        return {
            **what,
            "networks": len(nets),
            "val_balanced_accuracy": float(np.mean(bacc)),
            "val_balanced_accuracy_std": float(np.std(bacc)),
            "val_patient_auc": float(np.mean(auc)) if auc else float("nan"),
            "val_patient_auc_std": float(np.std(auc)) if auc else float("nan"),
            "val_recall": dict(zip(names, np.mean(recall, 0).round(3).tolist(), strict=True)),
        }

    def best_of(per_lr: list[dict]) -> dict:
        """The row of the learning rate with the best mean validation balanced accuracy, printed."""
        best = max(per_lr, key=lambda r: r["val_balanced_accuracy"])
        best = {**best, "by_lr": {str(r["lr"]): r["val_balanced_accuracy"] for r in per_lr}}
        label = f"ipc {best['ipc']:4d}" if "ipc" in best else f"{best['set']} ({best['schedule']})"
        lr = f" (lr {best['lr']})" if best.get("lr") is not None else ""
        print(
            f"{label}{lr}: val balanced accuracy {best['val_balanced_accuracy']:.3f} ± "
            f"{best['val_balanced_accuracy_std']:.3f}, val patient AUC {best['val_patient_auc']:.2f} ± "
            f"{best['val_patient_auc_std']:.2f}, recall {best['val_recall']}",
            flush=True,
        )
        return best

    rows = []
    for n in args.ipc:
        per_lr = []
        for lr in lrs:
            schedule = standard_schedule(ev, lr)
            nets = []
            for d in range(args.draws):
                x, y = pool_dm.sample_per_class(n, torch_generator(int(cfg.seed), "small-set-curve", n, d))
                x = renormalise(x, pool_stats, stats) if pool_dm is not dm else x
                for k in range(args.networks):
                    g = torch_generator(int(cfg.seed), "small-set-curve", n, d, k)
                    nets.append(train_small_set(spec.build(g), x, y, schedule, g).eval())
            per_lr.append(score(nets, ipc=n, lr=lr))
        rows.append(best_of(per_lr))
    for folder in args.set:  # distilled sets, on the same curve: their soft targets, then their replay
        ds = DistilledSet.load(folder)
        check_distilled_set(folder.name, ds, dm)
        set_spec = net_spec(cfg, "same", dm, recorded_model(ds))
        x, y = distilled_tensors(ds)
        n_nets = args.draws * args.networks
        per_lr = []
        for lr in lrs:
            gens = [torch_generator(int(cfg.seed), "small-set-curve", folder.name, k) for k in range(n_nets)]
            nets = [
                train_small_set(set_spec.build(g), x, y, standard_schedule(ev, lr), g).eval() for g in gens
            ]
            per_lr.append(score(nets, set=folder.name, schedule="standard", lr=lr))
        rows.append(best_of(per_lr))
        gens = [
            torch_generator(int(cfg.seed), "small-set-curve", folder.name, "replay", k) for k in range(n_nets)
        ]
        nets = [train_replay(set_spec.build(g), ds).eval() for g in gens]
        rows.append(best_of([score(nets, set=folder.name, schedule="replay", lr=None)]))
    if args.json:
        args.json.write_text(
            json.dumps({"pool": args.pool, "overrides": args.overrides, "rows": rows}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
