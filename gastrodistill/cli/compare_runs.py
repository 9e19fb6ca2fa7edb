"""Compare runs side by side: the settings that differ between them and each one's results (a sweep).

    python -m gastrodistill.cli.compare_runs outputs/cpu/multiruns/<time>            # every job of a sweep
    python -m gastrodistill.cli.compare_runs <run A> <run B> --metric auc --out compare.md --plot compare.png
    python -m gastrodistill.cli.compare_runs <sweep> --row soft/replay --row soft/standard --csv compare.csv

Each argument is a run folder (``gastrodistill-reproduce``'s ``outputs/<experiment>/runs/<time>``, or an
evaluation's own output folder) or a sweep folder (``outputs/<experiment>/multiruns/<time>``, whose job
folders ``0``, ``1``, ... are run folders). For every run with a finished evaluation (``eval/results.csv``)
it prints one line: the config-group choices and config keys whose values differ between the runs (the
groups of ``.hydra/hydra.yaml``, such as ``distill=soft_cpu``; the recipe keys ``paired_over_runs``
compares, with the distilled sets' own ``distill`` settings; the seeds ``seed``, ``synthetic.seed``,
``data.split_seed``; other command-line overrides that differ, such as ``+tag=x``, less those naming
places, :data:`LOCATION_KEYS`), then,
per results row (default: soft and hard by replay, all real patches, the random subset; ``--row`` chooses),
the patient HM or AUC with the run's own bootstrap interval over its test patients (image accuracy or AUC
for data without patients), the first distilled row's ratio to all real patches, and its paired
differences to the random subset and to the hard set, as the run's ``results.csv`` holds them. Runs are
labelled ``job <n>`` within one sweep, else by the shortest end of their paths that tells them apart.

The intervals are each run's own: they leave out the variation between seeds, which on the CPU study is
as large as the differences between settings. Pool the runs of one setting, a seed sweep, with
``paired_over_runs`` and ``check_experiment``. Nothing is chosen here: the numbers are on test patients, so
choose settings on validation patients (``benchmarks/small_set_curve.py``), then compare on test.

A sweep's job that did not finish its evaluation (failed, stopped, still running) is left out with a note:
the command that finishes its evaluation, or, for a job that stopped before it, where its log is; jobs the
sweep planned (its ``multirun.yaml``) that never started are named too, as is a ``--row`` no run holds.
Refused (exit 2, one line, nothing written): a run folder given by name whose evaluation did not finish,
folders without runs, one run given twice (also as its ``eval/`` folder), runs of data with and without
patients together, a results table cut short, with a row without method or given twice or text in a
number column, ``--row`` values that are not ``method/schedule[/architecture]``, and an ``--out``,
``--csv`` or ``--plot`` path inside any run folder, named like a run's or a sweep's file, in a folder that
does not exist, or (``--plot``) not ending in ``.png``. The files are written together, each whole,
before the table is printed. Exit status 0, or 2 for unusable input.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gastrodistill.cli.check_experiment import RecipeError, read_results
from gastrodistill.cli.printing import print_to_reader
from gastrodistill.cli.sweep_check import sweep_jobs
from gastrodistill.evaluation.over_runs import (
    RunsInputError,
    finish_command,
    read_recipe,
    recipe_differences,
    split_differences,
)
from gastrodistill.evaluation.record_settings import flat_settings
from gastrodistill.evaluation.report import RESULTS_CSV, unfinished_evaluation
from gastrodistill.evaluation.results import BASELINE_METHODS, has_patients
from gastrodistill.utils.atomic import atomic_path
from gastrodistill.utils.run_info import read_hydra_choices, read_hydra_overrides

#: Rows shown when ``--row`` is not given, those a run's table holds (method, schedule), at the
#: distillation's own architecture.
DEFAULT_ROWS = (("soft", "replay"), ("hard", "replay"), ("full", "real"), ("random", "standard"))

#: Seeds that tell runs apart though :func:`recipe_differences` leaves them out (a seed sweep).
SEED_KEYS = ("seed", "synthetic.seed", "data.split_seed")

#: Config groups whose choice is no setting of its own: Hydra's, and the specialisations that follow
#: the experiment, data and model choices (``conf/specialize``).
NOT_SHOWN_GROUPS = ("hydra", "specialize", "specialize_model")

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
    """Input that cannot be compared (no runs, a run given by name that did not finish, a bad ``--row``,
    an output path among the inputs); the message names the folder or value and what to do."""


@dataclass
class Found:
    """A run folder with a finished evaluation: the folder, its evaluation folder and, for a sweep's job,
    the sweep folder."""

    folder: Path
    eval_dir: Path
    sweep: Path | None = None


@dataclass
class Run:
    """One run to compare: its label, results table, config, config-group choices, and the distilled
    sets whose own recipe could not be read (its ``distill`` keys are then the evaluation command's)."""

    found: Found
    label: str
    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    choices: dict[str, str] = field(default_factory=dict)
    unread_sets: list[str] = field(default_factory=list)
    overrides: dict[str, str] = field(default_factory=dict)
    config_read: bool = True  # whether its evaluation's config.yaml was there


def _eval_dir_of(folder: Path) -> Path:
    """The folder that holds (or would hold) the evaluation of the run in ``folder``: its ``eval/`` also
    before any record is written there, where ``over_runs.eval_folder`` (which needs records) would take
    the run folder itself for an evaluation folder."""
    return folder / "eval" if (folder / "eval").is_dir() or not (folder / RESULTS_CSV).is_file() else folder


#: What a run folder holds, finished or not: an evaluation's folder, table or records, a run record or
#: Hydra's ``.hydra/`` of a job.
RUN_MARKERS = ("eval", RESULTS_CSV, "records", "config.yaml", ".hydra")


def _looks_like_run(folder: Path) -> bool:
    """Whether ``folder`` is a run folder, finished or not (it holds one of :data:`RUN_MARKERS`)."""
    return any((folder / name).exists() for name in RUN_MARKERS)


def _job_order(folder: Path) -> tuple[int, int | str]:
    """Sweep jobs in their numbers' order (``2`` before ``10``), other names after them by name."""
    return (0, int(folder.name)) if folder.name.isdigit() else (1, folder.name)


def planned_jobs(sweep: Path) -> list[list[str]] | None:
    """The override lists of the jobs the sweep in ``sweep`` planned: its ``multirun.yaml``'s task
    overrides expanded as Hydra's basic sweeper does (:func:`~gastrodistill.cli.sweep_check.sweep_jobs`);
    None without a readable file or a sweep expanded here."""
    try:
        saved = yaml.safe_load((sweep / "multirun.yaml").read_text())
        task = saved["hydra"]["overrides"]["task"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return None
    return sweep_jobs([str(t) for t in task]) if isinstance(task, list) else None


def _swept(jobs: Sequence[Sequence[str]]) -> list[int]:
    """The positions of the overrides whose values differ between the jobs."""
    return [i for i in range(len(jobs[0])) if len({job[i] for job in jobs if i < len(job)}) > 1]


def _never_started(sweep: Path, jobs: Sequence[Sequence[str]]) -> str | None:
    """A note naming the jobs the sweep planned that have no folder (never started), or None."""
    missing = [i for i in range(len(jobs)) if not (sweep / str(i)).is_dir()]
    if not missing:
        return None
    swept = _swept(jobs) if len(jobs) > 1 else []
    named = [
        f"{i} ({' '.join(jobs[i][k] for k in swept if k < len(jobs[i]))})" if swept else str(i)
        for i in missing
    ]
    return (
        f"{sweep}: the sweep planned {len(jobs)} jobs (multirun.yaml); job{'s' if len(missing) > 1 else ''} "
        f"{', '.join(named)} never started"
    )


def find_runs(paths: Sequence[Path]) -> tuple[list[Found], list[str], list[str]]:
    """The runs to compare, the notes on sweep jobs left out, and the swept keys in the sweeps' order.

    A path that is a run folder (or an evaluation folder) counts as itself; any other folder is read as a
    sweep folder and its job folders (those that look like runs, :func:`_looks_like_run`) count, in job
    order. A sweep job whose evaluation did not finish is left out with a note naming why and the command
    that finishes it (or where its log is, for a job without an evaluation); jobs the sweep's
    ``multirun.yaml`` planned that never started are named.

    Raises :class:`CompareInputError` naming the path: one that does not exist or is not a folder, a
    folder with neither a run nor job folders, a run given by name whose evaluation did not finish, one run
    given twice (as its folder and its ``eval/`` folder too), and no run left to compare.
    """
    found: list[Found] = []
    notes: list[str] = []
    swept_keys: list[str] = []
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
            found.append(Found(p, _eval_dir_of(p)))
            continue
        jobs = sorted((c for c in p.iterdir() if c.is_dir() and _looks_like_run(c)), key=_job_order)
        empty = sorted(
            (c for c in p.iterdir() if c.is_dir() and c.name.isdigit() and c not in jobs), key=_job_order
        )
        notes += [f"{job} left out: it holds no run files (the job wrote nothing)" for job in empty]
        planned = planned_jobs(p)
        if not jobs:
            raise CompareInputError(
                f"{p} holds no run: neither eval/{RESULTS_CSV} nor job folders (0, 1, ...) of a sweep; give "
                "a run folder (outputs/<experiment>/runs/<time>) or a sweep folder "
                "(outputs/<experiment>/multiruns/<time>)"
            )
        for job in jobs:
            eval_dir = _eval_dir_of(job)
            if not eval_dir.is_dir():  # failed or stopped before its evaluation: its own log says why
                notes.append(f"{job} left out: it has no evaluation (its log there says why)")
                continue
            why = unfinished_evaluation(eval_dir)
            if why is None:
                found.append(Found(job, eval_dir, p))
            else:
                notes.append(f"{job} left out ({why}); finish it with {finish_command(eval_dir)}")
        if planned:
            note = _never_started(p, planned)
            notes += [note] if note else []
            for i in _swept(planned) if len(planned) > 1 else []:
                key = planned[0][i].split("=", 1)[0].lstrip("+~")
                swept_keys += [key] if key not in swept_keys else []
    if not found:
        raise CompareInputError(
            "no run with a finished evaluation to compare"
            + (f"; {notes[0]}" + (f" (and {len(notes) - 1} more)" if len(notes) > 1 else "") if notes else "")
        )
    seen: dict[Path, Path] = {}
    for f in found:
        key = f.eval_dir.resolve()  # a run folder and its eval/ folder are one run
        if key in seen:
            raise CompareInputError(f"{f.folder} is given twice (as {seen[key]}); each run counts once")
        seen[key] = f.folder
    return found, notes, swept_keys


def run_labels(found: Sequence[Found]) -> list[str]:
    """A unique label per run: ``job <n>`` when all are jobs of one sweep, else the shortest end of their
    resolved paths (``0``, ``sw1/0``, ``0/eval``) that tells every run apart."""
    sweeps = {f.sweep for f in found}
    if len(sweeps) == 1 and None not in sweeps:
        return [f"job {f.folder.name}" for f in found]
    parts = [f.folder.resolve().parts for f in found]
    for k in range(1, max(map(len, parts)) + 1):
        labels = ["/".join(p[-k:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(f.folder.resolve()) for f in found]


def _run_root(f: Found) -> Path:
    """The folder of the run's Hydra record (``.hydra/``): the run folder, also for its ``eval/`` given
    by name."""
    return f.folder.parent if f.folder.name == "eval" and not (f.folder / ".hydra").is_dir() else f.folder


def hydra_choices(f: Found) -> dict[str, str]:
    """The config-group choices of the run's command (``.hydra/hydra.yaml``'s ``hydra.runtime.choices``,
    less :data:`NOT_SHOWN_GROUPS`), ``{}`` without the file."""
    choices = read_hydra_choices(_run_root(f)) or {}
    return {str(g): str(c) for g, c in choices.items() if str(g).split("/", 1)[0] not in NOT_SHOWN_GROUPS}


#: Override keys never shown as settings: where things are (folders, files) and Hydra's own.
LOCATION_KEYS = ("hydra", "paths", "data.root", "data.path", "data.store_root", "distill.resume",
                 "distill.resume_root", "eval.distilled_dirs", "audit.sets")  # fmt: skip


def hydra_overrides(f: Found) -> dict[str, str]:
    """The command-line overrides of the run's command (``.hydra/overrides.yaml``) as key -> value (a
    removed key, ``~key``, as ``(removed)``), less :data:`LOCATION_KEYS`; ``{}`` without the file."""
    out = {}
    for item in read_hydra_overrides(_run_root(f)) or []:
        key, _, value = item.partition("=")
        name = key.lstrip("+~")
        if name and not any(name == k or name.startswith(k + ".") for k in LOCATION_KEYS):
            out[name] = "(removed)" if key.startswith("~") else value
    return out


def _numeric_problem(table: pd.DataFrame) -> str | None:
    """What is wrong with a results table's rows for the comparison: a row without a method, schedule or
    architecture, a row given twice, or a cell of a number column (means, interval ends, differences) that
    is no number; the line named as a text editor counts (the header is line 1; ``table.attrs["lines"]``
    of :func:`~gastrodistill.cli.check_experiment.read_results` where a blank line shifts the rows). None
    when nothing is, the number columns then converted to numbers in ``table``."""
    line = table.attrs.get("lines") or range(2, len(table) + 2)
    keys = ["method", "schedule", "architecture"]
    blank = table[keys].isna().any(axis=1)
    if blank.any():
        return f"line {line[int(blank.to_numpy().argmax())]} has no method, schedule or architecture"
    twice = table.duplicated(subset=keys)
    if twice.any():
        i = int(twice.to_numpy().argmax())
        return f"line {line[i]} repeats the row {'/'.join(map(str, table.loc[table.index[i], keys]))}"
    for column in table.columns:
        if not str(column).endswith(("_mean", "_std", "_ci_low", "_ci_high", "_diff")):
            continue
        numbers = pd.to_numeric(table[column], errors="coerce")
        bad = numbers.isna() & table[column].notna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            return f"line {line[i]}, column {column}: {table[column].iloc[i]!r} is not a number"
        table[column] = numbers
    return None


def load_runs(found: Sequence[Found]) -> list[Run]:
    """Each run's results table, config (its evaluation's ``config.yaml`` with the sets' own ``distill``
    section, :func:`~gastrodistill.evaluation.over_runs.run_config`) and config-group choices, labelled by
    :func:`run_labels`. Raises :class:`CompareInputError` naming a table that cannot be read, and when some
    runs hold patient numbers and others do not."""
    runs = []
    for f, label in zip(found, run_labels(found), strict=True):
        path = f.eval_dir / RESULTS_CSV
        try:
            table = read_results(path)  # the check_experiment reader: cut, malformed or foreign tables
        except (RecipeError, OSError) as e:
            raise CompareInputError(" ".join(str(e).split())) from None
        missing = [c for c in ("architecture",) if c not in table]
        problem = (
            f"it has no column {missing[0]}; it is not a results table the evaluate stage wrote"
            if missing
            else _numeric_problem(table)
        )
        if problem:
            raise CompareInputError(f"{path}: {problem}; evaluate the run again to rewrite it")
        config, unread = read_recipe(f.eval_dir, set(table["method"].astype(str)))
        config_read = (f.eval_dir / "config.yaml").is_file()
        runs.append(Run(f, label, table, config, hydra_choices(f), unread, hydra_overrides(f), config_read))
    kinds = {has_patients(r.table) for r in runs}
    if len(kinds) > 1:
        image = [str(r.found.eval_dir / RESULTS_CSV) for r in runs if not has_patients(r.table)]
        raise CompareInputError(
            f"some runs hold patient-level numbers and others image-level ones only (no patient_hm_mean "
            f"numbers in {', '.join(image[:3])}: data without patients); compare runs of one kind of data"
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
        rows += [parts] if parts not in rows else []
    return rows


def differing_settings(runs: Sequence[Run], order: Sequence[str] = ()) -> list[str]:
    """The config-group choices (:func:`hydra_choices`) and config keys whose values differ between the
    runs: the recipe keys (:func:`~gastrodistill.evaluation.over_runs.recipe_differences`), the seeds
    (:data:`SEED_KEYS`) and ``experiment_name``, then the commands' other overrides
    (:func:`hydra_overrides`) not shown by those; runs without a saved config are not compared. Keys in
    ``order`` (a sweep's swept keys) come first, in that order."""
    groups = sorted({g for r in runs for g in r.choices})
    keys = [g for g in groups if len({r.choices.get(g) for r in runs if r.choices}) > 1]
    configs = [r.config for r in runs]
    keys += recipe_differences(configs)
    flat = [flat_settings(dict(c), "", {}) for c in configs if c]
    for key in (*SEED_KEYS, "experiment_name"):
        if len({repr(f.get(key)) for f in flat}) > 1:
            keys.append(key)
    with_overrides = [r.overrides for r in runs if r.overrides]
    for key in sorted({k for o in with_overrides for k in o}):  # e.g. +tag=x,y: no recipe key, but swept
        if key not in keys and len({o.get(key) for o in with_overrides}) > 1 and not _covered(key, keys):
            keys.append(key)
    keys = [k for k in keys if k in order or not _set_by_group(runs, k, keys, groups)]
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def _set_by_group(runs: Sequence[Run], key: str, keys: Sequence[str], groups: Sequence[str]) -> bool:
    """Whether ``key`` (``model.depth``) lies in the node of a config group shown among ``keys``
    (``model``) and takes one value among the runs of each of its choices: the choice sets it, so it is no
    column of its own (a ``model=convnet,resnet18`` sweep showed every key the two networks' files set)."""
    group = key.split(".")[0]
    if group == key or group not in groups or group not in keys:
        return False
    values: dict[str, set[str]] = {}
    for run in runs:
        if run.config and run.choices:
            values.setdefault(str(run.choices.get(group)), set()).add(setting(run, key, groups))
    return bool(values) and all(len(v) == 1 for v in values.values())


def _covered(key: str, keys: Sequence[str]) -> bool:
    """Whether ``key`` (an override) is shown already: as itself or by a key below it."""
    return any(k == key or k.startswith(key + ".") for k in keys)


def _text(value: Any) -> str:
    """A config value as a Hydra override writes it: lists ``[a, b]``, mappings ``{k: v}``."""
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_text(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def setting(run: Run, key: str, groups: Sequence[str] = ()) -> str:
    """The value of ``key`` in ``run``: a config-group choice (``–`` where the run's command chose none,
    e.g. removed it with ``~group``), else the dotted key of its config, else its command's override
    (``–`` where the run has neither)."""
    if key in run.choices or key in groups:
        return run.choices.get(key, "–")
    if key in run.overrides and key.split(".")[0] not in run.config:  # +tag=x of a config without it
        return run.overrides[key]
    node: Any = run.config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return "–"
        node = node[part]
    return _text(node)


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
        return float(row.get(column, math.nan))
    except (TypeError, ValueError):
        return math.nan


def row_name(key: tuple[str, ...]) -> str:
    """``method schedule`` (with `` (architecture)`` when given), as the table's header names a row."""
    return f"{key[0]} {key[1]}" + (f" ({key[2]})" if len(key) == 3 else "")


def _held(runs: Sequence[Run]) -> list[str]:
    """Every row the runs' tables hold, as ``method/schedule/architecture``."""
    return sorted(
        {
            f"{m}/{s}/{a}"
            for r in runs
            for m, s, a in zip(r.table["method"], r.table["schedule"], r.table["architecture"], strict=True)
        }
    )


@dataclass
class Comparison:
    """What :func:`compare` found: the differing keys, the rows compared and one line of cells per run."""

    keys: list[str]
    rows: list[tuple[str, ...]]
    metric: str  # the statistic's name, e.g. "patient HM"
    names: list[str]  # each row's name (:func:`row_name`), the stem of its numbers in ``values``
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
    runs: Sequence[Run],
    rows: Sequence[tuple[str, ...]],
    metric: str,
    level: float = 0.95,
    order: Sequence[str] = (),
    asked: bool = False,
) -> Comparison:
    """One line per run: its differing settings (:func:`differing_settings`, ``order`` first), each row's
    ``metric`` (``hm``: patient HM, or image accuracy without patients; ``auc``) with the run's interval,
    and for the first distilled row (not a baseline,
    :data:`~gastrodistill.evaluation.results.BASELINE_METHODS`) its ratio to all real patches (``full``)
    and its paired differences to :data:`SHOWN_PARTNERS`, all read from each run's ``results.csv``;
    a derived column no run has a number for is left out. ``asked``: the rows were given (``--row``), so
    one no run holds gets a note. Raises :class:`CompareInputError` when no run holds any of ``rows``."""
    patients = has_patients(runs[0].table)
    mean_stem, ci_stem, name = METRICS[(metric, patients)]
    keys = differing_settings(runs, order)
    groups = sorted({g for r in runs for g in r.choices})
    present = [k for k in rows if any(row_of(r.table, k) is not None for r in runs)]
    if not present:
        raise CompareInputError(
            f"no run holds the rows {', '.join('/'.join(k) for k in rows)}; the runs hold "
            f"{', '.join(_held(runs))} (give them with --row; method/schedule alone means the distillation's "
            "own architecture)"
        )
    first = next((k for k in present if k[0] not in BASELINE_METHODS), None)
    derived: list[tuple[str, Callable[[Run], tuple[float, float, float]], bool]] = []
    if first is not None:
        full = ("full", "real")

        def ratio(run: Run) -> tuple[float, float, float]:
            top = _number(row_of(run.table, first), f"{mean_stem}_mean")
            base = _number(row_of(run.table, full), f"{mean_stem}_mean")
            value = top / base if math.isfinite(top) and math.isfinite(base) and base > 0 else math.nan
            return value, math.nan, math.nan

        derived.append((f"{row_name(first)} / {row_name(full)}", ratio, False))
        for p in (p for p in SHOWN_PARTNERS if p != first[0]):

            def paired(run: Run, p: str = p) -> tuple[float, float, float]:
                r = row_of(run.table, first)
                return tuple(_number(r, f"vs_{p}_{ci_stem}_{s}") for s in ("diff", "ci_low", "ci_high"))  # type: ignore[return-value]

            derived.append((f"{row_name(first)} − {p}", paired, True))
    found_derived = [(n, fn(r)) for n, fn, _ in derived for r in runs]
    shown = [d for d in derived if any(math.isfinite(v[0]) for n, v in found_derived if n == d[0])]
    header = ["run", *keys, *(f"{row_name(k)} [{level:.0%} CI]" for k in present)]
    header += [n + (f" [{level:.0%} CI]" if signed else "") for n, _, signed in shown]
    lines, values = [], []
    for run in runs:
        cells, numbers = [run.label, *(setting(run, k, groups) for k in keys)], {}
        for k in present:
            r = row_of(run.table, k)
            m, lo, hi = (
                _number(r, f"{mean_stem}_{s}") if s == "mean" else _number(r, f"{ci_stem}_{s}")
                for s in ("mean", "ci_low", "ci_high")
            )
            numbers.update({f"{row_name(k)} mean": m, f"{row_name(k)} low": lo, f"{row_name(k)} high": hi})
            cells.append(_cell(m, lo, hi))
        for n, fn, signed in shown:
            v, lo, hi = fn(run)
            plain = n.replace("−", "-")
            numbers[plain] = v
            if signed:
                numbers.update({f"{plain} low": lo, f"{plain} high": hi})
                cells.append(_cell(v, lo, hi, signed=True))
            else:
                cells.append("–" if not math.isfinite(v) else f"{v:.3f}")
        lines.append(cells)
        values.append(numbers)
    notes = []
    if asked:
        notes += [
            f"No run holds the row {'/'.join(k)} (the runs hold {', '.join(_held(runs))})."
            for k in rows
            if k not in present
        ]
    unknown = [r for r in runs if r.unread_sets or not r.config_read]
    if len(runs) > 1 and not keys and not unknown:
        notes.append(
            "The runs share every setting compared (the same config choices, recipe and seeds): their "
            "differences are the host's, or none."
        )
    apart = split_differences([r.config for r in runs if r.config])
    if apart:
        notes.append(
            f"The runs score different test {'patients' if patients else 'images'} "
            f"({', '.join(apart[:4])} differ): a difference between them mixes the setting with the "
            "draw of test units."
        )
    for i, run in enumerate(runs):  # paired_over_runs refuses such a pair (it would pool one run twice)
        twin = next((r for r in runs[:i] if r.table.equals(run.table)), None)
        if twin is not None:
            notes.append(
                f"{run.label}: its results table equals {twin.label}'s to the last digit (a copy of one run, "
                "cp -a?): not a second measurement."
            )
    for run in runs:
        if not run.config_read:
            notes.append(
                f"{run.label}: its evaluation folder has no readable config.yaml; its settings are unknown."
            )
        elif run.unread_sets:
            notes.append(
                f"{run.label}: the recipe of set {', '.join(run.unread_sets)} could not be read (its folder "
                "is gone, holds another set, or has no config.yaml); its distill settings are the evaluation "
                "command's."
            )
    return Comparison(keys, present, name, [row_name(k) for k in present], header, lines, values, notes)


def render(comparison: Comparison, left_out: Sequence[str], level: float = 0.95) -> str:
    """The comparison as a Markdown table with its notes (what the intervals are, runs left out)."""
    c = comparison
    n = len(c.lines)
    lines = [
        f"## {n} run{'s' if n > 1 else ''} compared: {c.metric}"
        + (f" (settings that differ: {', '.join(c.keys)})" if c.keys else ""),
        "",
        "| " + " | ".join(c.header) + " |",
        "|" + "---|" * len(c.header),
        *("| " + " | ".join(cells) + " |" for cells in c.lines),
        "",
        f"Each run's own numbers (eval/{RESULTS_CSV}): the mean over its fresh networks, its {level:.0%} "
        "bootstrap interval over its test units and its paired differences. They leave out the variation "
        "between seeds; pool the runs of one setting (a seed sweep) with python -m "
        "gastrodistill.cli.paired_over_runs. These are test numbers: choose settings on validation data.",
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


def check_outputs(outputs: Sequence[tuple[str, Path | None]]) -> None:
    """Refuse an output path (``--out``, ``--csv``, ``--plot``) that is a folder, lies in a folder that does
    not exist, lies inside a run folder (one that holds any of :data:`RUN_MARKERS`: its own files would be
    overwritten), is named like a run's or a sweep's file (:data:`RUN_MARKERS`, ``multirun.yaml``), is
    given to two options, or (``--plot``) does not end in ``.png``. Raises :class:`CompareInputError`."""
    seen: dict[Path, str] = {}
    for flag, path in outputs:
        if path is None:
            continue
        if path.is_dir() or not path.resolve().parent.is_dir():
            raise CompareInputError(f"{flag} {path}: give a file path in an existing folder")
        if flag == "--plot" and path.suffix.lower() != ".png":
            raise CompareInputError(f"{flag} {path}: the figure is a PNG; give a path ending in .png")
        target = path.resolve()
        runs = [p for p in target.parents if _looks_like_run(p)]
        if runs or target.name in (*RUN_MARKERS, "multirun.yaml"):
            where = (
                f"lies inside the run folder {runs[0]}"
                if runs
                else f"is named like a run's file ({target.name})"
            )
            raise CompareInputError(
                f"{flag} {path} {where}; write the comparison elsewhere, under a name of its own (a run's "
                "and a sweep's own files are not overwritten)"
            )
        if target in seen:
            raise CompareInputError(f"{flag} {path} is also given to {seen[target]}; give each its own file")
        seen[target] = flag


def write_outputs(
    comparison: Comparison, text: str, out: Path | None, csv: Path | None, plot: Path | None
) -> None:
    """Write the table (``out``), the numbers (``csv``) and the figure (``plot``) together: each to a
    temporary file beside it, renamed only when all are written. Raises :class:`CompareInputError` naming
    the path that cannot be written."""
    from gastrodistill.evaluation.plots import plot_runs_compared

    writers: list[tuple[str, Path | None, Callable[[Path], Any]]] = [
        ("--out", out, lambda tmp: tmp.write_text(text + "\n")),
        ("--csv", csv, lambda tmp: tmp.write_text(to_frame(comparison).to_csv(index=False))),
        ("--plot", plot, lambda tmp: plot_runs_compared(comparison, tmp)),
    ]
    with contextlib.ExitStack() as stack:
        for flag, path, write in writers:
            if path is None:
                continue
            try:
                write(stack.enter_context(atomic_path(path, suffix=path.suffix)))
            except OSError as e:
                raise CompareInputError(f"{flag} {path}: cannot write ({e.strerror or e})") from None


def main(argv: list[str] | None = None) -> int:
    """Command line: find the runs, compare them, write ``--out``, ``--csv`` and ``--plot``, then print the
    table; exit status 0, or 2 after printing a :class:`CompareInputError`."""
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
    ap.add_argument("--plot", type=Path, help="also draw each row's value and interval per run (a .png)")
    args = ap.parse_args(argv)
    try:
        check_outputs((("--out", args.out), ("--csv", args.csv), ("--plot", args.plot)))
        rows = parse_rows(args.row)
        found, left_out, order = find_runs(args.folders)
        comparison = compare(load_runs(found), rows, args.metric, order=order, asked=bool(args.row))
        text = render(comparison, left_out)
        write_outputs(comparison, text, args.out, args.csv, args.plot)
    except RunsInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_to_reader(text)  # a full disk behind `> file`: one line and status 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
