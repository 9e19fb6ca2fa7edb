"""Re-check a reproduction recipe (``experiments/<name>.yaml``): which numbers fall outside their ranges.

    python -m gastrodistill.cli.check_experiment experiments/cpu_synthetic.yaml        # latest run
    python -m gastrodistill.cli.check_experiment experiments/cpu_synthetic.yaml --run-dir outputs/cpu/runs/<t>
    python -m gastrodistill.cli.check_experiment experiments/cpu_synthetic.yaml --run  # re-run, check
    python -m gastrodistill.cli.check_experiment experiments/cpu_synthetic.yaml --run-dir A --run-dir B

A recipe names its command and overrides, the results file (relative to the run folder) and a list
of expectations. Each expectation reads one cell of the results table (``value``: method, schedule,
optional architecture, column), optionally divided by (``relative_to``) or reduced by (``minus``)
another cell, and gives the ``range`` [low, high] it must fall in. Exit status 0 when every number is
inside its range, 1 otherwise (missing rows count as outside), 2 for a malformed recipe.

Several runs of one recipe (``--run-dir`` or ``--results`` repeated: e.g. a seed sweep, ``seed=0,1,2``)
are checked together: each number is shown per run, with its mean over the runs and a 95 % Student-t
interval over them, and the mean is what must fall in the range. The results tables' own intervals are
bootstraps over test patients for one run; they leave out the variation between seeds (the distillation,
the random subsets, the networks' inits), which the interval over runs holds. As ``paired_over_runs``
refuses them (with its functions, ``gastrodistill.evaluation.over_runs``), several runs of different
recipes (a ``data``, ``synthetic``, ``model``, ``distill`` or ``eval`` key that differs, not the seeds nor
where the data are; ``--allow-recipe-differences`` checks them anyway) and a copy of one run (the same
records) are refused, and so is a run whose records are not the ones its table was computed from (an
evaluation run again and stopped part way), naming the command that finishes it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import io
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from scipy.stats import t as t_dist

from gastrodistill.cli.output_folder import output_folder_problem
from gastrodistill.cli.printing import print_to_reader
from gastrodistill.utils.run_info import read_hydra_choices, read_hydra_overrides, read_run_config

#: The columns that identify a row of a results table (``eval/results.csv``).
RESULT_KEYS = ("method", "schedule")


class RecipeError(ValueError):
    """A malformed recipe or unusable input (run folder, results file); the message names the file and key."""


@dataclass
class Check:
    """One expectation of a recipe on one results table: the value found and its allowed range."""

    what: str
    value: float
    low: float
    high: float
    note: str = ""  # why the value is missing (the row or column not found), else empty

    @property
    def ok(self) -> bool:
        """The value is finite and within ``[low, high]``."""
        return math.isfinite(self.value) and self.low <= self.value <= self.high


#: The keys that pick one number of the results table (a row, then a column).
REFERENCE_KEYS = ("method", "schedule", "architecture", "column")
#: Those that pick the row.
RESULT_ROW_KEYS = REFERENCE_KEYS[:-1]


def load_recipe(path: str | Path) -> dict[str, Any]:
    """The recipe (``experiments/<name>.yaml``) at ``path``, its keys and expectations checked.

    Raises :class:`RecipeError` naming the file and key when it is missing or malformed."""
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"recipe {p} not found; recipes live in experiments/*.yaml")
    try:
        recipe = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise RecipeError(f"{p}: not valid YAML ({' '.join(str(e).split())}); fix the file") from None
    if not isinstance(recipe, dict):
        raise RecipeError(f"{p}: a recipe is a YAML mapping")
    for key in ("name", "overrides", "results", "expect"):
        if key not in recipe:
            raise RecipeError(f"{p}: missing key {key!r}")
    if not isinstance(recipe["expect"], list):
        raise RecipeError(f"{p}: 'expect' is a list of expectations")
    for i, e in enumerate(recipe["expect"]):
        if not isinstance(e, dict) or "value" not in e or "range" not in e or len(e["range"]) != 2:
            raise RecipeError(f"{p}: expect[{i}] needs 'value' and a two-number 'range'")
        if "relative_to" in e and "minus" in e:
            raise RecipeError(f"{p}: expect[{i}] has both 'relative_to' and 'minus'; use one")
        for part in ("value", "relative_to", "minus"):  # a misspelt key would pick another row silently
            ref = e.get(part)
            if part != "value" and ref is None:
                continue
            if not isinstance(ref, dict):
                raise RecipeError(f"{p}: expect[{i}].{part} must be a mapping, e.g. {{method: soft}}")
            unknown = sorted(set(ref) - set(REFERENCE_KEYS))
            if unknown:
                raise RecipeError(
                    f"{p}: expect[{i}].{part} has unknown key(s) {unknown}; use {', '.join(REFERENCE_KEYS)}"
                )
        try:
            low, high = (float(x) for x in e["range"])
        except (TypeError, ValueError):
            raise RecipeError(f"{p}: expect[{i}] range {e['range']!r} must be two numbers") from None
        if low > high:
            raise RecipeError(
                f"{p}: expect[{i}] range [{low:g}, {high:g}] has its low end above its high end"
            )
    return recipe


def _row_text(ref: Mapping[str, Any]) -> str:
    """The row a reference picks, as messages give it: ``method=full, schedule=real``."""
    return ", ".join(f"{k}={ref[k]}" for k in RESULT_ROW_KEYS if k in ref)


def lookup(df: pd.DataFrame, ref: Mapping[str, Any]) -> tuple[float, str]:
    """One number of the results table and, when it is missing, why: ``(NaN, "no row method=... ")`` or
    ``(NaN, "no column ...")``; ``(value, "")`` otherwise."""
    sel = df
    for key in RESULT_ROW_KEYS:
        if key in ref:
            if key not in sel:
                return math.nan, f"no column {key!r}"
            sel = sel[sel[key].astype(str) == str(ref[key])]
    if "architecture" not in ref and "cross_architecture" in sel:
        sel = sel[~sel["cross_architecture"].astype(bool)]
    column = ref.get("column", "patient_hm_mean")
    if not len(sel):
        return math.nan, f"no row {_row_text(ref)}"
    if column not in sel:
        return math.nan, f"no column {column!r}"
    return float(sel[column].iloc[0]), ""


def evaluate(recipe: Mapping[str, Any], df: pd.DataFrame) -> list[Check]:
    """The recipe's expectations on one results table; a missing number's ``note`` says what was not found."""
    checks = []
    for e in recipe["expect"]:
        v, note = lookup(df, e["value"])
        notes = [note]
        if "relative_to" in e:
            d, note = lookup(df, e["relative_to"])
            v = v / d if d else math.nan
            if d == 0:  # a table whose reference row learned nothing (a tiny run): say why there is no ratio
                ref = e["relative_to"]
                note = f"{_row_text(ref)}: {ref.get('column', 'patient_hm_mean')} is 0, so no ratio"
            notes.append(note)
        elif "minus" in e:
            d, note = lookup(df, e["minus"])
            v = v - d
            notes.append(note)
        low, high = (float(x) for x in e["range"])
        checks.append(Check(str(e.get("what", e["value"])), v, low, high, "; ".join(n for n in notes if n)))
    return checks


@dataclass
class CheckOverRuns:
    """One expectation over several runs: the per-run values, their mean and a 95 % t interval."""

    what: str
    values: list[float]
    low: float
    high: float
    notes: list[str] = field(default_factory=list)  # per run: why its value is missing, else empty

    @property
    def mean(self) -> float:
        """Mean over the runs; NaN when any run lacks the number (a missing row counts as outside)."""
        return float(np.mean(self.values)) if all(math.isfinite(v) for v in self.values) else math.nan

    @property
    def interval(self) -> tuple[float, float]:
        """95 % Student-t interval of the mean over the runs (n - 1 degrees of freedom); NaN for one run."""
        n = len(self.values)
        if n < 2 or not math.isfinite(self.mean):
            return (math.nan, math.nan)
        half = float(t_dist.ppf(0.975, n - 1)) * float(np.std(self.values, ddof=1)) / math.sqrt(n)
        return (self.mean - half, self.mean + half)

    @property
    def ok(self) -> bool:
        """The mean over the runs is finite and within ``[low, high]``."""
        return math.isfinite(self.mean) and self.low <= self.mean <= self.high


def evaluate_runs(recipe: Mapping[str, Any], tables: list[pd.DataFrame]) -> list[CheckOverRuns]:
    """The recipe's checks on each of several results tables (one per run), combined per expectation."""
    per_run = [evaluate(recipe, df) for df in tables]
    return [
        CheckOverRuns(
            first.what,
            [run[i].value for run in per_run],
            first.low,
            first.high,
            [run[i].note for run in per_run],
        )
        for i, first in enumerate(per_run[0])
    ]


#: Config groups whose choice makes another study (other data, network or recipe); a run that chooses one
#: of them where the recipe does not is not of the recipe. ``trainer=``, ``logger=`` and the like are not.
STUDY_GROUPS = (
    "data",
    "model",
    "synthetic",
    "distill",
    "eval",
    "experiment",
    "specialize",
    "specialize_model",
)


def _other_groups(
    made: list[str] | None, recipe: Mapping[str, Any], run_dir: Path | None = None
) -> list[str]:
    """The choices of :data:`STUDY_GROUPS` (``data=npz``, ``model=lenet``) of a run that the recipe does not
    make. With ``run_dir``'s ``.hydra/hydra.yaml``, the run's resolved group choices are compared with the
    recipe's (:func:`_recipe_choices`), so a run that spelled out its preset's own groups
    (``experiment=cpu model=convnet_cpu``) is of the recipe; otherwise, the run's Hydra overrides ``made``
    (:func:`~gastrodistill.utils.run_info.read_hydra_overrides`) that are not among the recipe's overrides."""
    ran = read_hydra_choices(run_dir) if run_dir is not None else None
    wanted_choices = _recipe_choices(tuple(str(o) for o in recipe.get("overrides") or []))
    if ran is not None and wanted_choices is not None:
        return [
            f"{g}={ran.get(g)}"
            for g in STUDY_GROUPS
            if g in ran and _loaded(g, ran.get(g)) != _loaded(g, wanted_choices.get(g))
        ]
    wanted = {str(o) for o in recipe.get("overrides") or []}
    return [
        o
        for o in made or []
        if "=" in o and o not in wanted and o.split("=", 1)[0].lstrip("+~") in STUDY_GROUPS
    ]


#: Groups the root config loads as ``optional``: a choice without its file (``specialize=tiny_folder``) loaded
#: nothing, so it is no choice the run made.
OPTIONAL_GROUPS = ("specialize", "specialize_model")


def _loaded(group: str, option: Any) -> Any:
    """``option`` of ``group``, or None for an optional group's option that has no file in the bundled
    config (nothing was loaded)."""
    from gastrodistill.cli import CONF_DIR

    if group in OPTIONAL_GROUPS and not (Path(CONF_DIR) / group / f"{option}.yaml").is_file():
        return None
    return option


@functools.lru_cache(maxsize=8)
def _recipe_choices(overrides: tuple[str, ...]) -> dict[str, Any] | None:
    """The config group choices the recipe's ``overrides`` make (composed once), or None when they do not
    compose (then the override strings are compared)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from gastrodistill.cli import CONF_DIR

    try:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
        return OmegaConf.to_container(cfg.hydra.runtime.choices)
    except Exception:  # noqa: BLE001 - a recipe that does not compose: fall back to the override strings
        return None


def latest_run(root: Path, recipe: Mapping[str, Any]) -> Path:
    """The newest finished run of the recipe: under ``outputs/<experiment_name>/runs``, else any run
    folder whose Hydra overrides include all of the recipe's overrides."""
    name = str(recipe.get("experiment_name", recipe["name"]))
    finished = [d for d in (root / "outputs" / name / "runs").glob("*") if (d / recipe["results"]).is_file()]
    other = {d: groups for d in finished if (groups := _other_groups(read_hydra_overrides(d), recipe, d))}
    if other:  # e.g. an npz run of experiment=cpu: same folder, another study
        finished = [d for d in finished if d not in other]
        last = list(other)[-1]
        print(
            f"note: {len(other)} run(s) under {root / 'outputs' / name / 'runs'} chose config groups the "
            f"recipe does not ({', '.join(other[last])} in {last.name}) and are not of this recipe; not "
            "checked",
            file=sys.stderr,
        )
    if not finished:
        wanted = {str(o) for o in recipe["overrides"]}
        for d in (root / "outputs").glob("*/runs/*"):
            made = read_hydra_overrides(d)
            if (
                (d / recipe["results"]).is_file()
                and made is not None
                and wanted <= set(made)
                and not _other_groups(made, recipe, d)
            ):
                finished.append(d)
    if not finished:
        raise RecipeError(
            f"no finished run of {recipe['name']!r} under {root / 'outputs'}; pass --run-dir or --run "
            "(the jobs of a multirun, outputs/<experiment>/multiruns/<time>/<n>, are not searched: "
            "give each with --run-dir)"
        )
    newest = max(finished, key=lambda d: (d / recipe["results"]).stat().st_mtime)
    when = (newest / recipe["results"]).stat().st_mtime
    later = sorted(
        d
        for d in (root / "outputs" / name / "multiruns").glob("*/*")
        if (d / recipe["results"]).is_file() and (d / recipe["results"]).stat().st_mtime > when
    )
    if later:  # a sweep finished after the newest single run: say so rather than check the older run unsaid
        print(
            f"note: checking {newest}; {len(later)} multirun job(s) finished after it (e.g. {later[-1]}), "
            "which are not searched: give each with --run-dir",
            file=sys.stderr,
        )
    return newest


def rerun(recipe: Mapping[str, Any], run_dir: Path) -> None:
    """Run ``gastrodistill-reproduce`` with the recipe's overrides into ``run_dir``.

    Raises ``subprocess.CalledProcessError`` when the run fails."""
    cmd = ["gastrodistill-reproduce", *map(str, recipe["overrides"]), f"hydra.run.dir={run_dir}"]
    exe = Path(sys.executable).with_name("gastrodistill-reproduce")
    if exe.exists():
        cmd[0] = str(exe)
    print("running:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})


def render(recipe: Mapping[str, Any], checks: list[Check], source: Path) -> str:
    """The text report of ``checks`` on the table at ``source``: one line per check, value, range, status."""
    lines = [f"{recipe['name']}: {recipe.get('table', '')}", f"results: {source}", ""]
    width = max(len(c.what) for c in checks) if checks else 10
    for c in checks:
        status = "ok" if c.ok else "OUTSIDE"
        note = f"  (not found: {c.note})" if c.note else ""
        lines.append(f"  {c.what:<{width}}  {c.value:8.4f}  in [{c.low:g}, {c.high:g}]  {status}{note}")
    n_out = sum(not c.ok for c in checks)
    lines.append("")
    lines.append("all numbers inside their ranges" if n_out == 0 else f"{n_out} of {len(checks)} outside")
    return "\n".join(lines)


def render_runs(recipe: Mapping[str, Any], checks: list[CheckOverRuns], sources: list[Path]) -> str:
    """The checks over several runs: one column per run, the mean, its 95 % t interval over the runs."""
    lines = [f"{recipe['name']}: {recipe.get('table', '')}"]
    lines += [f"run {i + 1}: {src}" for i, src in enumerate(sources)]
    lines.append("")
    width = max(len(c.what) for c in checks) if checks else 10
    head = "  ".join(f"{'run ' + str(i + 1):>8}" for i in range(len(sources)))
    lines.append(f"  {'':<{width}}  {head}  {'mean':>8}  95 % interval over runs")
    for c in checks:
        values = "  ".join(f"{v:8.4f}" for v in c.values)
        lo, hi = c.interval
        status = "ok" if c.ok else "OUTSIDE"
        missing = "; ".join(f"run {i + 1}: {n}" for i, n in enumerate(c.notes) if n)
        lines.append(
            f"  {c.what:<{width}}  {values}  {c.mean:8.4f}  [{lo:.4f}, {hi:.4f}]  "
            f"mean in [{c.low:g}, {c.high:g}]  {status}" + (f"  (not found: {missing})" if missing else "")
        )
    n_out = sum(not c.ok for c in checks)
    lines.append("")
    lines.append(
        f"all means over {len(sources)} runs inside their ranges"
        if n_out == 0
        else f"{n_out} of {len(checks)} outside (means over {len(sources)} runs)"
    )
    return "\n".join(lines)


def read_results(source: Path) -> pd.DataFrame:
    """A results table (``eval/results.csv``).

    ``df.attrs["lines"]``: each row's line in the file (the header is line 1; blank lines are counted
    there and skipped here).

    Raises:
        RecipeError: naming the file when it is empty, not CSV, lacks the key columns, has a row with
            another number of fields than its header (blank lines are skipped, as pandas does), or lacks
            its final newline: a copy cut short, whose missing cells ``pd.read_csv`` would fill with NaN.
    """
    try:
        text = source.read_text(encoding="utf-8")  # read once: parsed by pandas, checked row by row below
        df = pd.read_csv(io.StringIO(text))
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise RecipeError(
            f"{source} is not a readable results table ({' '.join(str(e).split())}); "
            "re-run the evaluate stage"
        ) from None
    rows = list(csv.reader(io.StringIO(text)))
    width = len(rows[0])
    bad = [(i, len(row)) for i, row in enumerate(rows[1:], start=2) if row and len(row) != width]
    if bad:
        line, n = bad[0]
        cut = "; it looks cut short" if n < width else ""
        raise RecipeError(
            f"{source}: line {line} has {n} fields where its header has {width}{cut}; "
            "copy it again or re-run the evaluate stage"
        )
    if not text.endswith("\n"):
        raise RecipeError(
            f"{source} is cut short (no final newline); copy it again or re-run the evaluate stage"
        )
    missing = [c for c in RESULT_KEYS if c not in df.columns]
    if missing:
        raise RecipeError(
            f"{source} is not a results table of the evaluate stage: it lacks the columns {missing}; "
            "give the run's eval/results.csv"
        )
    lines = [i for i, row in enumerate(rows[1:], start=2) if row]  # blank lines skipped, as pandas does
    if len(lines) == len(df):
        df.attrs["lines"] = lines  # each row's line in the file, for the errors found later
    return df


def run_experiment_name(run_dir: Path) -> str | None:
    """The ``experiment_name`` recorded in a run folder's ``config.yaml`` (None when it is not there)."""
    cfg = read_run_config(run_dir)
    name = cfg.get("experiment_name") if cfg is not None else None
    return None if name is None else str(name)


def check_runs(
    folders: list[Path], sources: list[Path], tables: list[pd.DataFrame], allow_recipe_differences: bool
) -> None:
    """Refuse what ``paired_over_runs`` refuses, with its functions (``gastrodistill.evaluation.over_runs``):
    a folder whose evaluation holds records but did not finish (records written after the table:
    :func:`~gastrodistill.evaluation.over_runs.check_finished`), and, for several runs, runs made with
    different recipes (:func:`~gastrodistill.evaluation.over_runs.check_one_recipe`, unless
    ``allow_recipe_differences``) or two folders holding the same records (a copy of one run, which would
    count twice and shrink the interval over runs to nothing:
    :func:`~gastrodistill.evaluation.over_runs.check_no_copies`). ``folders[i]`` holds the table
    ``tables[i]`` read from ``sources[i]``: a run folder, or the folder of a table given by ``--results``.
    A table without records beside it is compared by the ``config.yaml`` beside it alone (when there is
    one). Raises :class:`RecipeError`."""
    from gastrodistill.evaluation.over_runs import (
        RECORDS,
        RunsInputError,
        check_no_copies,
        check_one_recipe,
        load_run,
        run_config,
    )

    try:
        runs, with_records, configs = [], [], []
        for folder, source, df in zip(folders, sources, tables, strict=True):
            eval_dir = source.parent
            if any((eval_dir / RECORDS).glob("*.npz")):
                run, config = load_run(folder)  # refuses an unfinished evaluation
                runs.append(run)
                with_records.append(folder)
            else:
                config = run_config(eval_dir, set(df["method"].astype(str)))
            configs.append(config)
        if len(folders) > 1:
            if not allow_recipe_differences:
                check_one_recipe(configs, "check")
            check_no_copies(runs, with_records)
    except RunsInputError as e:
        raise RecipeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    """Command line: check a recipe's expectations on one or more runs; exit status 0 (all within
    range), 1 (some outside) or 2 (a :class:`RecipeError`, printed)."""
    ap = argparse.ArgumentParser(
        prog="python -m gastrodistill.cli.check_experiment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("recipe", help="experiments/<name>.yaml")
    ap.add_argument(
        "--run-dir",
        type=Path,
        action="append",
        help="a finished run folder (default: the latest of the experiment); repeat it to check several "
        "runs (e.g. seeds) together: per-run values, their mean and a 95 %% t interval over the runs",
    )
    ap.add_argument(
        "--results", type=Path, action="append", help="a results.csv to check directly (repeatable)"
    )
    ap.add_argument("--run", action="store_true", help="re-run the recipe first (into --run-dir if given)")
    ap.add_argument(
        "--allow-recipe-differences",
        action="store_true",
        help="check several runs whose data, synthetic, model, distill or eval settings differ (by default "
        "refused, as paired_over_runs refuses them: a seed sweep differs in none)",
    )
    ap.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("GASTRODISTILL_ROOT", ".")),
        help="project folder whose outputs/<experiment>/runs hold the runs (default: $GASTRODISTILL_ROOT, .)",
    )
    args = ap.parse_args(argv)
    try:
        recipe = load_recipe(args.recipe)
        if args.results and (args.run_dir or args.run):
            raise RecipeError("--results reads tables directly: use it or --run-dir / --run, not both")
        if args.results:
            sources = list(args.results)
            folders = [src.parent for src in sources]
        else:
            if args.run:
                from datetime import datetime

                if args.run_dir and len(args.run_dir) > 1:
                    raise RecipeError("--run re-runs the recipe into one folder: give at most one --run-dir")
                run_dirs = args.run_dir or [
                    args.root
                    / "outputs"
                    / str(recipe.get("experiment_name", recipe["name"]))
                    / ("runs/check_" + datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f"))
                ]
                if run_dirs[0].is_dir() and any(run_dirs[0].iterdir()):
                    raise RecipeError(
                        f"--run writes a new run into {run_dirs[0]}, which already holds files (an earlier "
                        f"run's would be overwritten): give a new or empty --run-dir, or drop --run to check "
                        f"the run that is there"
                    )
                problem = output_folder_problem(run_dirs[0])
                if problem is not None:  # before the re-run (its traceback, then ours, otherwise)
                    raise RecipeError(f"--run-dir {run_dirs[0]} {problem}")
                rerun(recipe, run_dirs[0])
            else:
                run_dirs = args.run_dir or [latest_run(args.root, recipe)]
            want = str(recipe.get("experiment_name", recipe["name"]))
            for d in run_dirs:
                if d.is_file():
                    raise RecipeError(
                        f"run folder {d} is a file; give the run's folder (it holds {recipe['results']})"
                    )
                if not d.is_dir():
                    raise RecipeError(f"run folder {d} does not exist")
                got = run_experiment_name(d)
                if got is not None and got != want:
                    print(
                        f"warning: {d} is a run of experiment {got!r}; this recipe's ranges are for {want!r}",
                        file=sys.stderr,
                    )
                groups = _other_groups(read_hydra_overrides(d), recipe, d)
                if groups:  # e.g. data=npz under experiment=cpu: the recipe's ranges are of another study
                    print(
                        f"warning: {d} chose config groups the recipe does not ({', '.join(groups)}); this "
                        "recipe's ranges are for its own overrides "
                        f"({' '.join(map(str, recipe['overrides']))})",
                        file=sys.stderr,
                    )
            # an evaluation's own folder (gastrodistill-evaluate) holds its results.csv itself
            name = Path(str(recipe["results"])).name
            sources = [
                d / name
                if not (d / recipe["results"]).is_file() and (d / name).is_file()
                else d / recipe["results"]
                for d in run_dirs
            ]
            folders = list(run_dirs)
        seen: dict[Path, Path] = {}
        for source in sources:
            if not source.is_file():
                raise RecipeError(f"no results at {source}; did the run finish its evaluate stage?")
            key = source.resolve()
            if key in seen:
                raise RecipeError(
                    f"{source} is given twice (as {seen[key]}); each run counts once in the mean"
                )
            seen[key] = source
        tables = [read_results(src) for src in sources]
        check_runs(folders, sources, tables, args.allow_recipe_differences)
        if len(sources) == 1:
            checks = evaluate(recipe, tables[0])
            print_to_reader(render(recipe, checks, sources[0]))
        else:
            checks = evaluate_runs(recipe, tables)
            print_to_reader(render_runs(recipe, checks, sources))
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
