"""Compare runs side by side: the settings that differ between them and each one's results (a sweep).

    python -m gastrodistill.cli.compare_runs outputs/cpu/multiruns/<time>            # every job of a sweep
    python -m gastrodistill.cli.compare_runs <run A> <run B> --metric auc --out compare.md --plot compare.png
    python -m gastrodistill.cli.compare_runs <sweep> --row soft/replay --row soft/standard --csv compare.csv

Each argument is a run folder (``gastrodistill-reproduce``'s ``outputs/<experiment>/runs/<time>``, or an
evaluation's own output folder) or a sweep folder (``outputs/<experiment>/multiruns/<time>``, whose job
folders ``0``, ``1``, ... are run folders). For every run with a finished evaluation (``eval/results.csv``)
it prints one line: the config keys whose values differ between the runs (recipe keys as
``paired_over_runs`` names them, and the seeds ``seed``, ``synthetic.seed``, ``data.split_seed``), then,
per results row (default: soft and hard by replay, all real patches, the random subset; ``--row`` chooses),
the patient HM or AUC with the run's own bootstrap interval over its test patients (image accuracy or AUC
for data without patients), the first distilled row's ratio to all real patches, and its paired
differences to the random subset and to the hard set, as the run's ``results.csv`` holds them.

The intervals are each run's own: they leave out the variation between seeds, which on the CPU study is
as large as the differences between settings. Pool the runs of one setting, a seed sweep, with
``paired_over_runs`` and ``check_experiment``. Nothing is chosen here: the numbers are on test patients, so
choose settings on validation patients (``benchmarks/small_set_curve.py``), then compare on test.

A sweep's job that did not finish its evaluation (failed, stopped, still running) is left out with a note:
the command that finishes its evaluation, or, for a job that stopped before it, where its log is. A run
folder given by name whose evaluation did not finish is refused (exit 2),
as are folders without runs, runs of data with and without patients together, and ``--row`` values that
are not ``method/schedule[/architecture]``. Exit status 0, or 2 for unusable input.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gastrodistill.evaluation.over_runs import (
    RunsInputError,
    finish_command,
    recipe_differences,
    run_config,
    split_differences,
)
from gastrodistill.evaluation.record_settings import flat_settings
from gastrodistill.evaluation.report import RESULTS_CSV, unfinished_evaluation
from gastrodistill.evaluation.results import BASELINE_METHODS, has_patients
from gastrodistill.utils.atomic import write_text_atomic

#: Rows shown when ``--row`` is not given, those a run's table holds (method, schedule), at the
#: distillation's own architecture.
DEFAULT_ROWS = (("soft", "replay"), ("hard", "replay"), ("full", "real"), ("random", "standard"))

#: Seeds that tell runs apart though :func:`recipe_differences` leaves them out (a seed sweep).
SEED_KEYS = ("seed", "synthetic.seed", "data.split_seed")

#: The statistic per ``--metric`` and kind of data: the results table's column stem of the mean, and the
#: stem of its interval and paired-difference columns (``<stem>_ci_low``, ``vs_<partner>_<stem>_diff``).
METRICS = {
    ("hm", True): ("patient_hm", "patient_hm", "patient HM"),
    ("auc", True): ("patient_auc", "patient_auc", "patient AUC"),
    ("hm", False): ("patch_accuracy", "image_accuracy", "image accuracy"),
    ("auc", False): ("patch_auc", "image_auc", "image AUC"),
}

#: The partners whose paired differences are shown for the first distilled row.
SHOWN_PARTNERS = ("random", "hard")


class CompareInputError(RunsInputError):
    """Input that cannot be compared (no runs, a run given by name that did not finish, a bad ``--row``);
    the message names the folder or value and what to do."""


@dataclass
class Run:
    """One run with a finished evaluation: where it is, its label, its results table and its config."""

    folder: Path
    label: str
    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)


def _eval_dir_of(folder: Path) -> Path:
    """The folder that holds (or would hold) the evaluation of the run in ``folder``."""
    return folder / "eval" if (folder / "eval").is_dir() or not (folder / RESULTS_CSV).is_file() else folder


def _looks_like_run(folder: Path) -> bool:
    """Whether ``folder`` is a run folder, finished or not: an evaluation's table or records, a run record
    (``config.yaml``) or Hydra's ``.hydra/`` of a job."""
    return any((folder / name).exists() for name in ("eval", RESULTS_CSV, "records", "config.yaml", ".hydra"))


def _job_order(folder: Path) -> tuple[int, int | str]:
    """Sweep jobs in their numbers' order (``2`` before ``10``), other names after them by name."""
    return (0, int(folder.name)) if folder.name.isdigit() else (1, folder.name)


def find_runs(paths: Sequence[Path]) -> tuple[list[tuple[Path, str]], list[str]]:
    """The run folders to compare, each with its label, and a note per sweep job left out.

    A path that is a run folder counts as itself (labelled by its folder name); any other folder is read
    as a sweep folder and its job folders (those that look like runs, :func:`_looks_like_run`) count, in
    job order, labelled ``<sweep name>/<job>`` when several sweeps are given, else ``job <n>``. A sweep job
    whose evaluation did not finish is left out with a note naming why and the command that finishes it.

    Raises :class:`CompareInputError` naming the path: one that does not exist or is not a folder, a
    folder with neither a run nor job folders, a run given by name whose evaluation did not finish, and
    no run left to compare.
    """
    sweeps = [p for p in paths if Path(p).is_dir() and not _looks_like_run(Path(p))]
    found: list[tuple[Path, str]] = []
    left_out: list[str] = []
    for p in map(Path, paths):
        if not p.exists():
            raise CompareInputError(f"{p} does not exist; give a run folder or a sweep folder")
        if not p.is_dir():
            raise CompareInputError(
                f"{p} is not a folder; give a run folder (outputs/<experiment>/runs/<time>) or a sweep "
                "folder (outputs/<experiment>/multiruns/<time>)"
            )
        if _looks_like_run(p):
            why = unfinished_evaluation(_eval_dir_of(p))
            if why is not None:
                raise CompareInputError(
                    f"{p}: its evaluation did not finish ({why}); finish it with "
                    f"{finish_command(_eval_dir_of(p))}, or leave the folder out"
                )
            found.append((p, p.name))
            continue
        jobs = sorted((c for c in p.iterdir() if c.is_dir() and _looks_like_run(c)), key=_job_order)
        if not jobs:
            raise CompareInputError(
                f"{p} holds no run: neither eval/{RESULTS_CSV} nor job folders (0, 1, ...) of a sweep; give "
                "a run folder (outputs/<experiment>/runs/<time>) or a sweep folder "
                "(outputs/<experiment>/multiruns/<time>)"
            )
        for job in jobs:
            label = f"{p.name}/{job.name}" if len(sweeps) > 1 else f"job {job.name}"
            eval_dir = _eval_dir_of(job)
            if not eval_dir.is_dir():  # failed or stopped before its evaluation: its own log says why
                left_out.append(f"{label} left out: it has no evaluation (its log in {job} says why)")
                continue
            why = unfinished_evaluation(eval_dir)
            if why is None:
                found.append((job, label))
            else:
                left_out.append(f"{label} left out ({why}); finish it with {finish_command(eval_dir)}")
    if not found:
        raise CompareInputError(
            "no run with a finished evaluation to compare"
            + (f" ({len(left_out)} left out: {left_out[0]})" if left_out else "")
        )
    seen: dict[Path, str] = {}
    for folder, label in found:
        key = folder.resolve()
        if key in seen:
            raise CompareInputError(f"{folder} is given twice (as {seen[key]}); each run counts once")
        seen[key] = label
    return found, left_out


def load_runs(found: Sequence[tuple[Path, str]]) -> list[Run]:
    """Each found run's results table and config (its ``eval/config.yaml`` with the sets' own ``distill``
    section, :func:`~gastrodistill.evaluation.over_runs.run_config`). Raises :class:`CompareInputError`
    naming a table that cannot be read, and when some runs hold patient numbers and others do not."""
    runs = []
    for folder, label in found:
        eval_dir = _eval_dir_of(folder)
        path = eval_dir / RESULTS_CSV
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, UnicodeDecodeError) as e:
            raise CompareInputError(
                f"{path}: not a readable results table ({e}); evaluate the run again to rewrite it"
            ) from None
        missing = [c for c in ("method", "schedule", "architecture") if c not in table]
        if missing:
            raise CompareInputError(
                f"{path} has no column {', '.join(missing)}; it is not a results table the evaluate stage "
                "wrote (evaluate the run again to rewrite it)"
            )
        runs.append(Run(folder, label, table, run_config(eval_dir, set(table["method"].astype(str)))))
    kinds = {has_patients(r.table) for r in runs}
    if len(kinds) > 1:
        with_patients = [r.label for r in runs if has_patients(r.table)]
        raise CompareInputError(
            f"some runs hold patient-level numbers ({', '.join(with_patients)}) and others image-level ones "
            "(data without patients); compare runs of one kind of data"
        )
    return runs


def parse_rows(values: Sequence[str] | None) -> list[tuple[str, ...]]:
    """``--row`` values ``method/schedule[/architecture]`` as tuples (:data:`DEFAULT_ROWS` without any).
    Raises :class:`CompareInputError` naming a value of another shape."""
    if not values:
        return list(DEFAULT_ROWS)
    rows = []
    for v in values:
        parts = tuple(s.strip() for s in v.split("/"))
        if len(parts) not in (2, 3) or not all(parts):
            raise CompareInputError(
                f"--row {v!r}: give method/schedule or method/schedule/architecture, e.g. soft/replay or "
                "soft/standard/lenet (the first columns of eval/results.csv)"
            )
        rows.append(parts)
    return rows


def differing_settings(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The config keys whose values differ between the runs: the recipe keys
    (:func:`~gastrodistill.evaluation.over_runs.recipe_differences`), then the seeds (:data:`SEED_KEYS`) and
    ``experiment_name``; runs without a saved config are not compared."""
    keys = recipe_differences(configs)
    flat = [flat_settings(dict(c), "", {}) for c in configs if c]
    for key in (*SEED_KEYS, "experiment_name"):
        if len({repr(f.get(key)) for f in flat}) > 1:
            keys.append(key)
    return keys


def setting(config: Mapping[str, Any], key: str) -> str:
    """The value of dotted ``key`` in ``config`` as text (``–`` where the run has no such key)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "–"
        node = node[part]
    return str(node)


def row_of(table: pd.DataFrame, key: tuple[str, ...]) -> Mapping[str, Any] | None:
    """The results row ``(method, schedule[, architecture])``: without an architecture, the row at the
    distillation's own architecture (``cross_architecture`` false, where the column exists)."""
    match = (table["method"].astype(str) == key[0]) & (table["schedule"].astype(str) == key[1])
    if len(key) == 3:
        match &= table["architecture"].astype(str) == key[2]
    elif "cross_architecture" in table:
        match &= ~table["cross_architecture"].astype(str).str.lower().isin(("true", "1"))
    hits = table[match]
    return None if hits.empty else hits.iloc[0].to_dict()


def _number(row: Mapping[str, Any] | None, column: str) -> float:
    if row is None:
        return math.nan
    try:
        value = float(row.get(column, math.nan))
    except (TypeError, ValueError):
        return math.nan
    return value


def row_name(key: tuple[str, ...]) -> str:
    """``method schedule`` (with ``/architecture`` when given), as the table's header names a row."""
    return f"{key[0]} {key[1]}" + (f" ({key[2]})" if len(key) == 3 else "")


@dataclass
class Comparison:
    """What :func:`compare` found: the differing keys, the rows compared and one line of cells per run."""

    keys: list[str]
    rows: list[tuple[str, ...]]
    metric: str  # the statistic's name, e.g. "patient HM"
    header: list[str]
    lines: list[list[str]]
    values: list[dict[str, float]]  # per run: "<row> mean/low/high" and the derived numbers, for CSV and plot
    notes: list[str]


def _cell(mean: float, low: float, high: float, signed: bool = False) -> str:
    if not math.isfinite(mean):
        return "–"
    fmt = "+.3f" if signed else ".3f"
    ci = f" [{low:{fmt}}, {high:{fmt}}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{mean:{fmt}}{ci}"


def compare(
    runs: Sequence[Run], rows: Sequence[tuple[str, ...]], metric: str, level: float = 0.95
) -> Comparison:
    """One line per run: its differing settings (:func:`differing_settings`), each row's ``metric`` (``hm``:
    patient HM, or image accuracy without patients; ``auc``) with the run's interval, and for the first
    distilled row (not a baseline, :data:`~gastrodistill.evaluation.results.BASELINE_METHODS`) its ratio to
    all real patches (``full``) and its paired differences to :data:`SHOWN_PARTNERS`, all read from each
    run's ``results.csv``. Raises :class:`CompareInputError` when no run holds any of ``rows``."""
    patients = has_patients(runs[0].table)
    mean_stem, ci_stem, name = METRICS[(metric, patients)]
    keys = differing_settings([r.config for r in runs])
    present = [k for k in rows if any(row_of(r.table, k) is not None for r in runs)]
    if not present:
        held = sorted(
            {f"{m}/{s}" for r in runs for m, s in zip(r.table["method"], r.table["schedule"], strict=True)}
        )
        raise CompareInputError(
            f"no run holds the rows {', '.join('/'.join(k) for k in rows)}; the runs hold {', '.join(held)} "
            "(give them with --row)"
        )
    first = next((k for k in present if k[0] not in BASELINE_METHODS), None)
    full = ("full", "real") if first is not None and ("full", "real") in present else None
    header = ["run", *keys, *(f"{row_name(k)} [{level:.0%} CI]" for k in present)]
    if full is not None:
        header.append(f"{first[0]} / full")
    partners = [p for p in SHOWN_PARTNERS if first is not None and p != first[0]]
    header += [f"{first[0]} − {p} [{level:.0%} CI]" for p in partners]
    lines, values = [], []
    for run in runs:
        cells, numbers = [run.label, *(setting(run.config, k) for k in keys)], {}
        for k in present:
            r = row_of(run.table, k)
            m, lo, hi = (
                _number(r, f"{mean_stem}_mean"),
                _number(r, f"{ci_stem}_ci_low"),
                _number(r, f"{ci_stem}_ci_high"),
            )
            numbers.update({f"{row_name(k)} mean": m, f"{row_name(k)} low": lo, f"{row_name(k)} high": hi})
            cells.append(_cell(m, lo, hi))
        if full is not None:
            top = _number(row_of(run.table, first), f"{mean_stem}_mean")
            base = _number(row_of(run.table, full), f"{mean_stem}_mean")
            ratio = top / base if math.isfinite(top) and math.isfinite(base) and base > 0 else math.nan
            numbers[f"{first[0]} / full"] = ratio
            cells.append("–" if not math.isfinite(ratio) else f"{ratio:.3f}")
        r = row_of(run.table, first) if first is not None else None
        for p in partners:
            d, lo, hi = (_number(r, f"vs_{p}_{ci_stem}_{s}") for s in ("diff", "ci_low", "ci_high"))
            numbers.update(
                {f"{first[0]} - {p}": d, f"{first[0]} - {p} low": lo, f"{first[0]} - {p} high": hi}
            )
            cells.append(_cell(d, lo, hi, signed=True))
        lines.append(cells)
        values.append(numbers)
    notes = []
    if not keys:
        notes.append(
            "The runs share every setting compared (the same recipe and seeds): their differences are "
            "the host's, or none."
        )
    apart = split_differences([r.config for r in runs if r.config])
    if apart:
        notes.append(
            f"The runs score different test {'patients' if patients else 'images'} "
            f"({', '.join(apart[:4])} differ): a difference between them mixes the setting with the "
            "draw of test units."
        )
    return Comparison(keys, present, name, header, lines, values, notes)


def render(comparison: Comparison, left_out: Sequence[str], level: float = 0.95) -> str:
    """The comparison as a Markdown table with its notes (what the intervals are, runs left out)."""
    c = comparison
    lines = [
        f"## {len(c.lines)} runs compared: {c.metric}"
        + (f" (settings that differ: {', '.join(c.keys)})" if c.keys else ""),
        "",
        "| " + " | ".join(c.header) + " |",
        "|" + "---|" * len(c.header),
        *("| " + " | ".join(cells) + " |" for cells in c.lines),
        "",
        f"Each run's own numbers (eval/{RESULTS_CSV}): the mean over its fresh networks, its {level:.0%} "
        "bootstrap interval over its test units and its paired differences. They leave out the variation "
        "between seeds; pool the runs of one setting (a seed sweep) with python -m "
        "gastrodistill.cli.paired_over_runs. These are test numbers: choose settings on validation patients.",
        *c.notes,
        *left_out,
    ]
    return "\n".join(lines)


def to_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per run: its label, its differing settings and every number of the comparison (means,
    interval ends, ratio, paired differences) as floats, for ``--csv``."""
    records = []
    for cells, numbers in zip(comparison.lines, comparison.values, strict=True):
        records.append({"run": cells[0], **dict(zip(comparison.keys, cells[1:], strict=False)), **numbers})
    return pd.DataFrame(records)


def _writable(path: Path | None, flag: str) -> None:
    if path is not None and (path.is_dir() or not path.resolve().parent.is_dir()):
        raise CompareInputError(f"{flag} {path}: give a file path in an existing folder")


def main(argv: list[str] | None = None) -> int:
    """Command line: find the runs, compare them, print the table (and write ``--out``, ``--csv``,
    ``--plot``); exit status 0, or 2 after printing a :class:`CompareInputError`."""
    ap = argparse.ArgumentParser(
        prog="python -m gastrodistill.cli.compare_runs",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("folders", type=Path, nargs="+", help="run folders and/or sweep folders")
    ap.add_argument(
        "--metric",
        choices=("hm", "auc"),
        default="hm",
        help="hm: patient HM (image accuracy for data without patients; default); auc: patient (image) AUC",
    )
    ap.add_argument(
        "--row",
        action="append",
        help="a results row to show, method/schedule[/architecture] (repeat it); default soft/replay, "
        "hard/replay, full/real, random/standard",
    )
    ap.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    ap.add_argument("--csv", type=Path, help="also write every number to this CSV file, one line per run")
    ap.add_argument("--plot", type=Path, help="also draw the rows' values and intervals per run to this PNG")
    args = ap.parse_args(argv)
    try:
        for path, flag in ((args.out, "--out"), (args.csv, "--csv"), (args.plot, "--plot")):
            _writable(path, flag)
        rows = parse_rows(args.row)
        found, left_out = find_runs(args.folders)
        runs = load_runs(found)
        comparison = compare(runs, rows, args.metric)
        text = render(comparison, left_out)
        print(text)
        try:
            if args.out:
                write_text_atomic(args.out, text + "\n")
            if args.csv:
                write_text_atomic(args.csv, to_frame(comparison).to_csv(index=False))
            if args.plot:
                from gastrodistill.evaluation.plots import plot_runs_compared

                plot_runs_compared(comparison, args.plot)
        except OSError as e:
            raise CompareInputError(f"{e.filename}: cannot write ({e.strerror})") from None
    except RunsInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
