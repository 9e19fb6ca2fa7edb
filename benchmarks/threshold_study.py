"""How well does a patient threshold fitted on n patients carry to other patients? Compares the
threshold rules of ``eval.patient.threshold_rule`` without reading a test patient.

For each ``--set`` the script replays the set's learned schedule on ``--networks`` fresh networks
(``train_replay``), scores the patients of the pool (the evaluation's patient score), then draws
``--draws`` fitting sets of n patients (``--sizes``, half per diagnosis) from the pool, fits each rule on
them (:func:`gastrodistill.evaluation.patient.fit_threshold`) and applies the threshold to the rest of
the pool. ``--pool val`` (the default): the validation patients only, which nothing of the distillation
has read; ``--pool train+val``: the training patients too, a pool three times larger but biased: the
networks never train on a training patient's patches, yet the distilled set was built from them (the
outer loss, the texture targets, the teacher), and their scores run higher.

Printed per rule and n: the held-out HM (mean over networks and draws), the spread (sd) of the fitted
threshold between draws, and as a ceiling the best threshold of the held-out patients themselves; and the
mean patient score per diagnosis of each split in the pool.

    python benchmarks/threshold_study.py --set outputs/cpu/runs/<run>/distill/soft \\
        --set outputs/cpu/runs/<run>/distill/hard --sizes 10 -- experiment=cpu

``--pool external`` draws from every split of *another* collection instead (``--pool-overrides``, e.g.
``"synthetic.name=cpu_pool synthetic.seed=5"`` and any patient counts: the same generator and settings,
another seed, so no patient of it was read by the distillation or belongs to a run's test patients),
normalised with the main data's statistics. Only there can all-data networks be studied beside the sets
(``--full K``: K networks by the full-data recipe, ``eval.baselines.real``): on the main data their
training patients are not held out. Build the pool first (``gastrodistill-generate`` and
``gastrodistill-patches`` with the same overrides). With ``--full``, the table also gives each set's
held-out HM over the all-data networks'. With an external pool the script also fits each network's
threshold on the main data's validation patients, as the evaluation does, and scores it on the whole
pool: how far that one validation draw moves each row. ``--test-draw G O`` draws a whole run's patients
from the pool instead, per draw n fitting patients shared by every network and G + O test patients from
the rest (12 + 28 for the default synthetic test patients), and prints the spread of each set's test HM
over the all-data networks' that one draw of that size gives. Patients are scored as the evaluation
scores them (``eval.score_autocast``, ``eval.score_channels_last``).

    python benchmarks/threshold_study.py --set RUN/distill/soft --pool external \\
        --pool-overrides "synthetic.name=cpu_pool synthetic.seed=5 synthetic.train_gastritis=50 \\
        synthetic.train_non_gastritis=50 synthetic.test_gastritis=30 synthetic.test_non_gastritis=30" \\
        --full 2 --sizes 20 32 48 --test-draw 12 28 -- experiment=cpu

The pool's collection and patch store must have been built with the same overrides (the script checks
its seed and settings against ``synthetic_info.json``).

One torch thread; about 40 s per set for 6 networks, a few minutes per all-data network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from study_config import composed, prepared_data  # benchmarks/study_config.py


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=type(
            "_Help", (argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter), {}
        ),
    )
    ap.add_argument("--set", type=Path, action="append", required=True, help="a saved distilled set")
    ap.add_argument("--networks", type=int, default=6, help="replayed networks per set")
    ap.add_argument("--draws", type=int, default=300, help="fitting draws per network and size")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10], help="fitting patients")
    ap.add_argument(
        "--pool", choices=("val", "train+val", "external"), default="val", help="patients drawn from"
    )
    ap.add_argument("--pool-overrides", default="", help="Hydra overrides naming the external pool's data")
    ap.add_argument("--full", type=int, default=0, help="all-data networks (external pool only)")
    ap.add_argument(
        "--test-draw",
        type=int,
        nargs=2,
        metavar=("GASTRITIS", "OTHER"),
        help="with --full: also draw a run's patients from the pool (n fitting, these test patients), as "
        "make reproduce has them, and print the spread of each set's test HM over the all-data networks'",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the networks and the draws")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides of the data, after --")
    args = ap.parse_args(argv)
    if min(args.networks, args.draws) < 1 or min(args.sizes) < 4:
        ap.error("--networks and --draws must be >= 1, every --sizes >= 4")
    if any(n % 2 for n in args.sizes):
        ap.error(f"--sizes {args.sizes}: each size must be even (half of the fitting patients per diagnosis)")
    if (args.pool == "external") != bool(args.pool_overrides.split()):
        ap.error("--pool external and --pool-overrides go together")
    if args.test_draw and (not args.full or min(args.test_draw) < 1):
        ap.error("--test-draw needs --full and at least one test patient per diagnosis")
    if args.full and args.pool != "external":
        ap.error("--full needs --pool external: the all-data networks trained on the main data's patients")
    torch.set_num_threads(1)

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.checks import check_distilled_set
    from gastrodistill.evaluation.fresh_training import train_replay
    from gastrodistill.evaluation.full_data import train_full_data
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.evaluation.patient import (
        THRESHOLD_RULES,
        PatientScores,
        fit_threshold,
        harmonic_mean,
        patient_scores,
        sensitivity_specificity,
    )
    from gastrodistill.evaluation.scoring import predict_split
    from gastrodistill.evaluation.splits import SplitCache, class_index
    from gastrodistill.evaluation.study import real_recipe, recorded_model
    from gastrodistill.utils.seeding import numpy_rng, torch_generator

    cfg = composed(args.overrides)
    if args.pool == "external":
        pcfg = composed([*args.overrides, *args.pool_overrides.split()])
        if pcfg.data.root == cfg.data.root:
            ap.error(f"--pool-overrides name the main data ({cfg.data.root}); name another collection")
        try:
            pool_dm = open_pool(pcfg)
        except ValueError as exc:
            ap.error(
                f"--pool-overrides: {exc}; build the pool first with the same overrides: "
                f"gastrodistill-generate {' '.join(args.overrides)} {args.pool_overrides}, then "
                f"gastrodistill-patches with the same"
            )
    dm = prepared_data(cfg)
    ev = cfg.eval
    names = list(dm.class_names)
    pos = class_index(names, ev.patient.positive_class, "positive_class", required=True)
    irr = class_index(names, ev.patient.irrelevant_class, "irrelevant_class", required=False)
    pool_splits = ("val",) if args.pool == "val" else ("train", "val")
    if args.pool != "external":
        pool_dm = dm
    else:
        pool_dm.mean, pool_dm.std = dm.mean, dm.std  # the networks' normalisation
        pool_splits = ("train", "val", "test")
    splits = {
        s: SplitCache(pool_dm, s, int(ev.max_in_memory_mb) * 2**20, int(ev.batch_size)) for s in pool_splits
    }
    if not all(c.has_patients for c in splits.values()):
        ap.error("the data have no patients: there is no patient threshold to study")
    # checked before any network is trained: the pool's patients per diagnosis
    n_pos = sum(sum(c.patient_labels.values()) for c in splits.values())
    n_neg = sum(len(c.patient_labels) for c in splits.values()) - n_pos
    too_big = [n for n in args.sizes if n // 2 >= min(n_pos, n_neg)]
    if too_big:
        ap.error(
            f"--sizes {too_big}: the pool has {n_pos} gastritis and {n_neg} other patients; half of a size "
            "must leave at least one of each held out"
        )
    half = max(args.sizes) // 2
    short = [
        f"{have} {what} patients, fewer than {half} + {want}"
        for what, have, want in zip(
            ("gastritis", "other"), (n_pos, n_neg), args.test_draw or (), strict=False
        )
        if half + want > have
    ]
    if short:
        ap.error(
            f"--test-draw {args.test_draw[0]} {args.test_draw[1]} with --sizes up to {max(args.sizes)}: the "
            f"pool has {' and '.join(short)}; lower them"
        )
    # external pool: each network's threshold also fitted on the main data's validation patients, as the
    # evaluation fits it, and applied to the whole pool
    main_val = (
        SplitCache(dm, "val", int(ev.max_in_memory_mb) * 2**20, int(ev.batch_size))
        if args.pool == "external"
        else None
    )
    eval_rule = str(ev.patient.get("threshold_rule", "empirical"))

    def predict(net: torch.nn.Module, cache: SplitCache) -> np.ndarray:
        """Patch decisions ``[N]`` as the evaluation makes them (its autocast and memory format)."""
        autocast, channels_last = bool(ev.get("score_autocast")), bool(ev.get("score_channels_last"))
        return predict_split([net.eval()], cache, autocast, channels_last)[0].argmax(-1)

    def hm(scores: np.ndarray, labels: np.ndarray, t: float) -> float:
        return harmonic_mean(*sensitivity_specificity(labels, scores >= t))

    def score_pool(net: torch.nn.Module, by_split: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
        if main_val is not None:
            pred = predict(net, main_val)
            by_split.setdefault("main val", []).append(
                patient_scores("val", pred, main_val.patient_ids, main_val.patient_labels, pos, irr)
            )
        parts = []
        for name, cache in splits.items():
            pred = predict(net, cache)
            parts.append(patient_scores(name, pred, cache.patient_ids, cache.patient_labels, pos, irr))
            by_split[name].append(parts[-1])
        return np.concatenate([p.scores for p in parts]), np.concatenate([p.labels for p in parts]).astype(
            bool
        )

    rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray]], dict[str, list]]] = []
    if args.full:
        spec = net_spec(cfg, "same", dm)
        pooled, by_split = [], {s: [] for s in splits}
        for k in range(args.full):
            g = torch_generator(args.seed, "threshold-study", "full", k)
            net, _ = train_full_data(
                spec.build(g),
                dm.dataset("train", augment=False),
                dm.labels("train"),
                dm.dataset("val", augment=False),
                real_recipe(ev),
                dm.num_classes,
                (args.seed, "threshold-study", "full", k),
            )
            pooled.append(score_pool(net, by_split))
        rows.append((f"all real training patches ({args.full} networks)", pooled, by_split))
    for folder in args.set:
        try:
            ds = DistilledSet.load(folder)
            check_distilled_set(folder.name, ds, dm)
        except ValueError as exc:
            ap.error(f"--set {folder}: {exc}")
        spec = net_spec(cfg, "same", dm, recorded_model(ds))
        pooled, by_split = [], {s: [] for s in splits}
        for k in range(args.networks):
            g = torch_generator(args.seed, "threshold-study", folder.name, k)
            pooled.append(
                score_pool(train_replay(spec.build(g), ds, cfg.eval.get("replay_augment"), g), by_split)
            )
        rows.append((f"{folder} ({args.networks} replayed networks)", pooled, by_split))

    reference: dict[tuple[str, int], float] = {}  # all-data held-out HM per (rule, size)
    for title, pooled, by_split in rows:
        y0 = pooled[0][1]
        print(f"\n{title}, {len(y0)} {args.pool} patients")
        for name, scores in by_split.items():
            g = np.mean([s.scores[s.labels == 1].mean() for s in scores])
            n = np.mean([s.scores[s.labels == 0].mean() for s in scores])
            print(f"  mean score of {name} patients: gastritis {g:.3f}, not {n:.3f}")
        head = " | / all data |\n  |---|---|---|---|---|" if args.full else " |\n  |---|---|---|---|"
        print(f"  | rule | n | held-out HM | threshold sd{head}")
        for size in args.sizes:
            held = {r: [] for r in (*THRESHOLD_RULES, "ceiling")}
            spread = {r: [] for r in THRESHOLD_RULES}
            for k, (s, y) in enumerate(pooled):
                # network k of every row gets the same fitting draws
                rng = numpy_rng(args.seed, "threshold-study-draws", size, k)
                values = {r: [] for r in THRESHOLD_RULES}
                for _ in range(args.draws):
                    fit = np.concatenate(
                        [rng.choice(np.flatnonzero(y == c), size // 2, replace=False) for c in (True, False)]
                    )
                    rest = np.ones(len(y), dtype=bool)
                    rest[fit] = False
                    ids = np.array([f"p{i}" for i in fit])
                    part = PatientScores(
                        "val", ids, s[fit], y[fit].astype(np.int64), np.ones(len(fit), np.int64)
                    )
                    for rule in THRESHOLD_RULES:
                        t = fit_threshold(part, rule).value
                        values[rule].append(t)
                        held[rule].append(hm(s[rest], y[rest], t))
                    others = PatientScores(
                        "val",
                        np.flatnonzero(rest).astype(str),
                        s[rest],
                        y[rest].astype(np.int64),
                        np.ones(rest.sum()),
                    )
                    held["ceiling"].append(fit_threshold(others).fit_hm)  # the empirical rule on them
                for rule in THRESHOLD_RULES:
                    spread[rule].append(np.std(values[rule]))
            for rule, v in held.items():
                sd = f"{np.mean(spread[rule]):.3f}" if rule in spread else ""
                if args.full and not reference.get((rule, size)):
                    reference[(rule, size)] = float(np.mean(v))  # the first row: the all-data networks
                ratio = f" | {np.mean(v) / reference[(rule, size)]:.3f}" if args.full else ""
                print(f"  | {rule} | {size} | {np.mean(v):.3f} | {sd}{ratio} |")
    if main_val is not None:
        n_val = len(main_val.patient_labels)
        print(
            f"\nEach network's threshold fitted on the main data's {n_val} validation patients (rule "
            f"{eval_rule}, as the evaluation fits it) and applied to the whole pool"
        )
        print("  | row | pool HM (mean over networks) | / all data |\n  |---|---|---|")
        first = None
        for title, pooled, by_split in rows:
            hms = [
                hm(s, y, fit_threshold(fit, eval_rule).value)
                for (s, y), fit in zip(pooled, by_split["main val"], strict=True)
            ]
            first = first if first is not None else float(np.mean(hms))
            ratio = f"{np.mean(hms) / first:.3f}" if args.full else ""
            print(f"  | {title} | {np.mean(hms):.3f} | {ratio} |")
    if args.test_draw:
        print(
            f"\nA run's patients drawn from the pool ({args.draws} draws): n fitting patients shared by "
            f"every network (rule {eval_rule}), {args.test_draw[0]} + {args.test_draw[1]} test patients from "
            "the rest; per draw each set's mean test HM over the all-data networks'"
        )
        print("  | set | n | mean | 2.5 % | median | 97.5 % | draws below 0.9 |")
        print("  |---|---|---|---|---|---|---|")
        for size in args.sizes:
            ratios = run_draws(rows, size, tuple(args.test_draw), args.draws, eval_rule, args.seed)
            for (title, *_), r in zip(rows[1:], ratios, strict=True):
                q = np.percentile(r, [2.5, 50, 97.5])
                print(
                    f"  | {title.split(' (')[0]} | {size} | {r.mean():.3f} | {q[0]:.3f} | {q[1]:.3f} | "
                    f"{q[2]:.3f} | {np.mean(r < 0.9):.0%} |"
                )
    return 0


def open_pool(pcfg):
    """The external pool's data module, set up from its existing patch store (never built here).

    Raises ValueError saying why it cannot be read as ``pcfg`` names it: its synthetic collection missing,
    incomplete or written with another seed or other settings (the generator's own check,
    :func:`~gastrodistill.data.synthetic.writer.is_current`), or its patch store not built."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gastrodistill.data.errors import DataInputError
    from gastrodistill.data.synthetic.config import SyntheticConfig
    from gastrodistill.data.synthetic.writer import is_current, read_info

    root = Path(pcfg.data.root)
    info = read_info(root) if root.is_dir() else None
    if info is None:
        raise ValueError(f"no synthetic collection in {root}")
    params = OmegaConf.to_container(pcfg.synthetic, resolve=True)
    seed = params.pop("seed", 0)
    for key in ("_target_", "_convert_", "root", "num_workers", "progress"):
        params.pop(key, None)
    if not is_current(root, SyntheticConfig.from_params(**params).content_hash(seed)):
        raise ValueError(
            f"the collection in {root} was written with seed {info.get('seed')} or other settings than "
            "these, or is incomplete"
        )
    dm = instantiate(pcfg.data)
    try:
        dm.setup()
    except DataInputError:
        raise ValueError(f"no up-to-date patch store of {root}") from None
    return dm


def draw_run(
    rng: np.random.Generator, y: np.ndarray, size: int, test: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """One run's patients from a pool with diagnoses ``y`` ``[P]`` (bool, gastritis): indices of ``size``
    fitting patients (half per diagnosis) and of ``test`` = (gastritis, other) test patients among the
    rest. Raises ValueError where the pool is too small."""
    fit = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size // 2, replace=False) for c in (True, False)]
    )
    rest = np.setdiff1d(np.arange(len(y)), fit)
    tst = np.concatenate(
        [rng.choice(rest[y[rest] == c], n, replace=False) for c, n in zip((True, False), test, strict=True)]
    )
    return fit, tst


def run_draws(
    rows: list, size: int, test: tuple[int, int], draws: int, rule: str, seed: int
) -> list[np.ndarray]:
    """Per draw, a run's patients from the pool: ``size`` fitting patients (half per diagnosis) shared by
    every network, then ``test`` = (gastritis, other) test patients from the rest. Returns, for each row
    after the first (the all-data networks), the ratio of its mean test HM to the first row's per draw
    (``[draws]``)."""
    from gastrodistill.evaluation.patient import (
        PatientScores,
        fit_threshold,
        harmonic_mean,
        sensitivity_specificity,
    )
    from gastrodistill.utils.seeding import numpy_rng

    y = rows[0][1][0][1]
    rng = numpy_rng(seed, "threshold-study-run-draws", size, *test)
    out = np.zeros((len(rows) - 1, draws))
    for d in range(draws):
        fit, tst = draw_run(rng, y, size, test)
        means = []
        for _, pooled, _ in rows:
            hms = []
            for s, yy in pooled:
                part = PatientScores(
                    "val", fit.astype(str), s[fit], yy[fit].astype(np.int64), np.ones(len(fit))
                )
                t = fit_threshold(part, rule).value
                hms.append(harmonic_mean(*sensitivity_specificity(yy[tst], s[tst] >= t)))
            means.append(np.mean(hms))
        out[:, d] = np.array(means[1:]) / means[0]
    return list(out)


if __name__ == "__main__":
    raise SystemExit(main())
