"""Paired differences (soft − random, soft − hard, ...) pooled over several runs, e.g. a seed sweep.

    python -m gastrodistill.cli.paired_over_runs --run-dir outputs/cpu/runs/<seed 0> --run-dir <seed 1>
    python -m gastrodistill.cli.paired_over_runs --run-dir <a> --run-dir <b> --n-boot 5000 --out pooled.md

Reads each run's per-network records (``eval/records/*.npz``; no patient data) and prints, for every
distilled row and each partner of its results table (random subset, random images with soft labels,
hard labels), the paired difference of patient HM and AUC (image accuracy and AUC for data without
patients) in each run and pooled over the runs, with a two-level bootstrap interval that resamples the
runs as well as the test units (``gastrodistill.evaluation.over_runs``). One run's own table leaves the
seed's variation out of its intervals; this view keeps it in.

Pooled: finished runs of one recipe, e.g. a seed sweep (``seed=0,1,2``, with or without
``synthetic.seed=0``: runs of other patients are drawn apart). Refused, naming the folder or the keys: a
run whose evaluation did not finish (no ``eval/results.csv``, or records it was not computed from: an
evaluate stage stopped part way; the message gives the ``'stages=[evaluate]' hydra.run.dir=<run>`` command
that finishes it), the same run twice or copied, runs of different experiments or kinds of data, and runs of
different recipes: any ``data``, ``synthetic``, ``model``, ``distill`` or ``eval`` key that differs (e.g.
``data.storage_size``, ``data.patch_size``, ``synthetic.image_size``), but not the seeds (``seed``,
``data.split_seed``, ``synthetic.seed``), where the data are, how a run was resumed, logged or spread
over processes, nor the precision each host chooses (``--allow-recipe-differences`` pools them anyway).
Exit status 0, or 2 for unusable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gastrodistill.cli.printing import print_to_reader
from gastrodistill.evaluation.over_runs import (
    RunsInputError,
    check_no_copies,
    check_one_kind,
    check_one_recipe,
    eval_folder,
    load_run,
    pool_runs,
    render,
    shares_test_units,
    split_differences,
)
from gastrodistill.utils.atomic import write_text_atomic

#: Fewest resamples for a percentile interval whose ends are not single draws.
MIN_BOOT = 100


def main(argv: list[str] | None = None) -> int:
    """Command line: pool the paired differences of several runs and print (or write) the table; exit
    status 0, or 2 after printing a :class:`RunsInputError`."""
    ap = argparse.ArgumentParser(
        prog="python -m gastrodistill.cli.paired_over_runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--run-dir",
        type=Path,
        action="append",
        required=True,
        help="a finished run folder (or its eval/ folder); repeat it, once per run (at least two)",
    )
    ap.add_argument(
        "--n-boot", type=int, default=2000, help=f"bootstrap resamples (default 2000, at least {MIN_BOOT})"
    )
    ap.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default 0)")
    ap.add_argument(
        "--independent",
        action="store_true",
        help="draw the test units separately for every run even when the runs share them "
        "(by default shared units are drawn once per resample)",
    )
    ap.add_argument(
        "--allow-recipe-differences",
        action="store_true",
        help="pool runs whose data, synthetic, model, distill or eval settings differ (by default refused: "
        "a seed sweep differs in none of them; the seeds, the data's location, the host's precision and "
        "the number of processes do not count)",
    )
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = ap.parse_args(argv)
    try:
        if len(args.run_dir) < 2:
            raise RunsInputError("give at least two --run-dir (one run's own results table pairs it already)")
        if not 0.0 < args.level < 1.0:
            raise RunsInputError(f"--level {args.level} must lie between 0 and 1 (e.g. 0.95)")
        if args.n_boot < MIN_BOOT:
            raise RunsInputError(f"--n-boot {args.n_boot}: give at least {MIN_BOOT} resamples (default 2000)")
        if args.out is not None and (args.out.is_dir() or not args.out.resolve().parent.is_dir()):
            raise RunsInputError(f"--out {args.out}: give a file path in an existing folder")
        seen: dict[Path, Path] = {}
        for d in args.run_dir:
            key = eval_folder(d).resolve()  # a run folder and its eval/ folder are one run
            if key in seen:
                raise RunsInputError(f"{d} is given twice (as {seen[key]}); each run counts once")
            seen[key] = d
        loaded = [load_run(d) for d in args.run_dir]
        runs, configs = [r for r, _ in loaded], [c for _, c in loaded]
        check_one_kind(runs, args.run_dir)  # before the recipes: other data differ in data keys too
        if not args.allow_recipe_differences:
            check_one_recipe(configs, "pool")
        check_no_copies(runs, args.run_dir)
        names = {str(c.get("experiment_name")) for c in configs if c.get("experiment_name") is not None}
        if len(names) > 1:
            raise RunsInputError(
                f"the runs belong to different experiments ({', '.join(sorted(names))}); pool runs of one "
                "experiment (a seed sweep)"
            )
        shared = not args.independent and shares_test_units(runs, configs)
        diffs = pool_runs(runs, args.seed, args.n_boot, args.level, shared)
        if not diffs:
            raise RunsInputError(
                "no distilled row has a partner (random, random_soft or hard) in these runs; "
                "were they evaluated with eval.baselines?"
            )
        why = [] if shared or args.independent else split_differences(configs)
        text = render(diffs, args.run_dir, shared, args.level, args.n_boot, why)
        if args.out:  # first: a reader that leaves early (| head) must not cost the file
            try:
                write_text_atomic(args.out, text + "\n")
            except OSError as e:
                raise RunsInputError(f"--out {args.out}: cannot write ({e.strerror})") from None
        print_to_reader(text)
    except RunsInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
