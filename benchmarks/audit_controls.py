"""The audit's targets on a hand-made collection where most patches are near-uniform background.

Builds the collection of ``tests/anonymity/_anon_data.make_background_dm`` (per patient, a share
``--background`` of near-uniform background patches with a shading common to every patient, the rest
structured patches of two relevant classes), distils a noise-init soft set on it, runs the full audit
(``run_audit``) and prints the figures the issue asks for: the copy and noisy-copy controls' flagged
shares, the distilled set's, and the membership attack on the overfitted control, the all-data network
and the distilled set's networks, with their counts. About 2-3 minutes on one CPU thread::

    .venv/bin/python benchmarks/audit_controls.py --out outputs/audit_controls
    .venv/bin/python benchmarks/audit_controls.py --background 0.8 -- audit.controls.noise_std=0.02

Arguments after ``--`` are Hydra overrides of the root config.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = [
    "model=convnet",
    "model.width=16",
    "model.depth=2",
    "logger=none",
    "distill=soft_cpu",
    "distill.image_init=noise",
    "distill.ipc=2",
    "distill.steps=5",
    "distill.epochs=1",
    "distill.batch_real=128",
    "distill.outer_steps=60",
    "distill.grid_every=0",
    "distill.ckpt_every=0",
    "trainer=cpu",
    "eval.baselines.real.epochs=6",
    "eval.progress=false",
    "audit.membership.n_networks=2",
    "audit.membership.max_per_side=1000",
]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    overrides: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, overrides = argv[:i], argv[i + 1 :]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--background", type=float, default=0.7, help="share of background patches per patient")
    p.add_argument("--patients", type=int, nargs=3, default=(24, 8, 24), help="train, val, test patients")
    p.add_argument("--per-patient", type=int, default=40, help="patches per patient")
    p.add_argument("--size", type=int, default=32, help="patch side, px")
    p.add_argument("--out", default="outputs/audit_controls", help="folder of the audit's outputs")
    args = p.parse_args(argv)

    import torch
    from hydra import compose, initialize_config_dir

    from gastrodistill.anonymity.audit import run_audit
    from gastrodistill.cli import CONF_DIR
    from gastrodistill.distillation.run import run_distillation

    sys.path.insert(0, str(ROOT / "tests" / "anonymity"))
    from _anon_data import make_background_dm

    torch.set_num_threads(1)
    out = Path(args.out)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=[f"paths.root_dir={out}", f"paths.output_dir={out}", *BASE, *overrides],
        )
    dm = make_background_dm(
        seed=int(cfg.seed),
        patients=tuple(args.patients),
        per_patient=args.per_patient,
        size=args.size,
        background=args.background,
    )
    dm.setup()
    soft = run_distillation(cfg, dm, out / "distill")
    results = run_audit(cfg, dm, {"soft": soft}, out / "audit")
    r, ctl, real = results["soft"], results["control_overfit"], results["real"]
    print(f"patches: {int(r['n_train_patches'])} training, {int(r['n_informative'])} informative")
    for row in ("control_copy", "control_noisy", "soft"):
        x = results[row]
        print(
            f"{row}: flagged {x['frac_flagged']:.0%} of {int(x['n_images'])} "
            f"(ncc max {x['ncc_nearest_max']:.3f})"
        )
    print(f"flag threshold (between-patient ncc q99): {r['ncc_ref_q']:.3f}")
    for name, x in (("overfit control", ctl), ("all-data network", real), ("soft networks", r)):
        print(
            f"{name}: patch AUC (best calibrated attack) {x['mia_patch_best_auc']:.3f}, "
            f"TPR@1% {x['mia_patch_best_tpr_at_1pct']:.3f}, "
            f"TPR@0.1% {x['mia_patch_best_tpr_at_0p1pct']:.3f} ({int(x['mia_patch_n_members'])} members / "
            f"{int(x['mia_patch_n_nonmembers'])}); patient AUC {x['mia_patient_best_auc']:.3f} "
            f"({int(x['mia_patient_n_members'])} / {int(x['mia_patient_n_nonmembers'])} patients)"
        )
    print(f"verdict: {(out / 'audit' / 'audit.md').read_text().split('- **soft**: ')[1].splitlines()[0]}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    raise SystemExit(main())
