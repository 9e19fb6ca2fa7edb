"""Paired differences pooled over several runs of one experiment (a seed sweep): soft − random, ...

One run's results table pairs each distilled set's row with its partners (``results.PARTNERS``) over the
test patients of that run, for one distillation, one random subset and one set of network inits. Its
bootstrap interval therefore leaves out the variation between seeds, which on the CPU study is as large
as the difference itself (docs/evaluation.md). This module pools the runs' per-network records
(``eval/records/*.npz``): the estimate is the mean over runs of each run's paired difference (mean over
the first row's networks minus mean over the partner's), and its interval is a two-level (hierarchical)
percentile bootstrap (Davison & Hinkley 1997, section 3.8; Saravanan, Berman & Sober 2020): every
resample draws the runs with replacement and the test units (patients, else images) within each class.

When every run holds the same test units (same data and split: the same test labels, and the same
``data`` and ``synthetic`` config apart from the run seed), a resample draws one set of units for all
runs, since the patients' own variation is common to them ("shared"); otherwise each drawn run gets its
own draw ("independent"). With 2-3 runs the run level of the bootstrap is coarse (it cannot see more
spread than the runs show); the per-run differences are printed beside the pooled one.
"""

from __future__ import annotations

import hashlib
import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gastrodistill.evaluation.metrics import statistic_rows, stratified_resamples
from gastrodistill.evaluation.record_settings import flat_settings
from gastrodistill.evaluation.report import (
    RECORDS,
    UNREADABLE,
    load_record,
    table_records,
    unfinished_evaluation,
)
from gastrodistill.evaluation.results import (
    BASELINE_METHODS,
    KEY_COLUMNS,
    PARTNERS,
    _arrays,
    bootstrap_kinds,
    partner_key,
)
from gastrodistill.utils.run_info import CONFIG_FILE, read_run_config
from gastrodistill.utils.seeding import numpy_rng
from gastrodistill.utils.values import hydra_quoted

Key = tuple[str, str, str]
#: One run: its networks' test arrays per results row (method, schedule, architecture).
RunRows = dict[Key, list[dict[str, np.ndarray]]]


class RunsInputError(ValueError):
    """A run folder that cannot be pooled (missing, without records, unreadable); the message names it."""


@dataclass
class PooledDifference:
    """One paired difference (``row`` minus ``partner`` on ``kind``) over several runs."""

    row: Key
    partner: Key
    kind: str  # patient_hm | patient_auc | image_accuracy | image_auc
    per_run: list[float]  # each run's paired difference (mean over its networks); NaN where a row is missing
    estimate: float  # mean of per_run over the runs that have both rows
    low: float
    high: float
    n_runs: int  # runs that have both rows


def eval_folder(run_dir: Path) -> Path:
    """The evaluation folder of ``run_dir``: ``<run>/eval`` for a run folder, else ``run_dir`` itself.

    Raises :class:`RunsInputError` when ``run_dir`` is not a folder.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunsInputError(f"run folder {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunsInputError(
            f"{run_dir} is not a folder; give the run folder (outputs/<experiment>/runs/<time>)"
        )
    return run_dir / "eval" if (run_dir / "eval" / RECORDS).is_dir() else run_dir


def finish_command(eval_dir: Path) -> str:
    """The command that finishes the evaluation in ``eval_dir``: ``gastrodistill-reproduce`` with the run's
    own overrides (``.hydra/overrides.yaml``; ``<its overrides>`` without the file), the stages it was asked
    for from ``evaluate`` on (``'stages=[evaluate,audit,artifact]'``) and ``hydra.run.dir=<run folder>`` for
    a run folder's ``eval/``, else ``gastrodistill-evaluate`` with
    ``hydra.run.dir=<eval_dir>`` (an evaluation's own output folder). A re-run resumes: it trains only
    the jobs without a record, then writes the table."""
    eval_dir = Path(eval_dir)
    in_run = eval_dir.name == "eval"
    folder = eval_dir.parent if in_run else eval_dir
    try:
        saved = yaml.safe_load((folder / ".hydra" / "overrides.yaml").read_text())
        overrides = [
            shlex.quote(str(o))
            for o in saved
            if not str(o).lstrip("+~").startswith(("stages=", "hydra.run.dir="))
        ]
    except (OSError, yaml.YAMLError, UnicodeDecodeError, TypeError):
        overrides = ["<its overrides>"]
    stages = [shlex.quote(f"stages=[{','.join(_stages_from_evaluate_on(folder))}]")] if in_run else []
    tool = "gastrodistill-reproduce" if in_run else "gastrodistill-evaluate"
    where = str(folder.absolute())  # the command works from any folder
    if re.search(r"[^A-Za-z0-9_./:@+-]", where):  # spaces, commas, '=', characters outside ASCII
        where = hydra_quoted(where)
    return " ".join([tool, *overrides, *stages, shlex.quote(f"hydra.run.dir={where}")])


def _stages_from_evaluate_on(run_folder: Path) -> list[str]:
    """The stages the run in ``run_folder`` was asked for from ``evaluate`` on (its run record
    ``config.yaml``: audit and artifact after an evaluation stopped part way), else ``[evaluate]``."""
    try:
        stages = [str(s) for s in (read_run_config(run_folder) or {})["stages"]]
    except (TypeError, KeyError):
        return ["evaluate"]
    return stages[stages.index("evaluate") :] if "evaluate" in stages else ["evaluate"]


def check_finished(run_dir: Path) -> None:
    """Raise :class:`RunsInputError` naming ``run_dir`` and the command that finishes it when its
    evaluation is not finished (:func:`~gastrodistill.evaluation.report.unfinished_evaluation`: no
    ``results.csv``, or records it was not computed from): an evaluate stage stopped part way (Ctrl-C, a
    killed job) left the records of some networks only, which would be pooled as a run."""
    eval_dir = eval_folder(run_dir)
    why = unfinished_evaluation(eval_dir)
    if why is not None:
        raise RunsInputError(
            f"{run_dir}: its evaluation did not finish ({why} in {eval_dir}: an evaluate stage stopped part "
            f"way); finish it with {finish_command(eval_dir)}, or leave the folder out"
        )


def load_run(run_dir: Path) -> tuple[RunRows, dict[str, Any]]:
    """The per-network test arrays of one run, grouped by results row, and its ``eval/config.yaml``.

    ``run_dir`` is a run folder (holding ``eval/records``) or an evaluation output folder (holding
    ``records``); its records are those its ``results.csv`` was computed from
    (:func:`~gastrodistill.evaluation.report.table_records`). Raises :class:`RunsInputError` naming the
    folder or file when it has no records, its evaluation did not finish (:func:`check_finished`), a record
    cannot be read, or its config is not YAML.
    """
    eval_dir = eval_folder(run_dir)
    paths = table_records(eval_dir)  # the records its results.csv was computed from
    if not paths:
        raise RunsInputError(
            f"{run_dir} holds no evaluation records (eval/records/*.npz); give a run whose evaluate "
            "stage finished"
        )
    rows: dict[Key, list[dict[str, Any]]] = {}
    for p in paths:
        try:
            rec = load_record(p)
            key = tuple(str(rec[k]) for k in KEY_COLUMNS)
        except UNREADABLE:  # empty, truncated, foreign or pickled files: one message
            raise RunsInputError(
                f"{p}: not a readable evaluation record (an .npz the evaluate stage writes); delete it and "
                "re-run the evaluate stage, which re-scores the missing job"
            ) from None
        rows.setdefault(key, []).append(rec)
    check_finished(run_dir)  # after the records: a damaged one is named with what to do about it
    run: RunRows = {}
    for key, recs in rows.items():
        recs.sort(key=lambda r: int(r.get("network", 0)))
        nets = [_arrays(r) for r in recs]
        if bootstrap_kinds(nets):
            run[key] = nets  # type: ignore[assignment]
    return run, run_config(eval_dir, {key[0] for key in rows})


def run_config(eval_dir: Path, methods: set[str]) -> dict[str, Any]:
    """An evaluation's ``config.yaml`` in ``eval_dir`` (``{}`` without the file), its ``distill`` section
    the sets' own (:func:`with_set_recipes`) for the evaluated ``methods``: what :func:`recipe_differences`
    compares (:func:`read_recipe`, without the list of sets it could not read)."""
    return read_recipe(eval_dir, methods)[0]


def read_recipe(eval_dir: Path, methods: set[str]) -> tuple[dict[str, Any], list[str]]:
    """:func:`run_config`, and the evaluated sets whose folder is known but whose recipe cannot be read
    there (:func:`set_recipes`; each set is read once). An evaluation's own folder with such sets carries
    :data:`UNREAD_SETS`. Raises :class:`RunsInputError` naming a file that is not YAML or not a mapping."""
    cfg_path = Path(eval_dir) / CONFIG_FILE
    try:
        config = (yaml.safe_load(cfg_path.read_text()) or {}) if cfg_path.is_file() else {}
    except (yaml.YAMLError, UnicodeDecodeError):
        raise RunsInputError(
            f"{cfg_path} is not valid YAML; restore the file the evaluate stage wrote"
        ) from None
    if not isinstance(config, dict):
        raise RunsInputError(f"{cfg_path} is not a config mapping; restore the file the evaluate stage wrote")
    eval_dir = Path(eval_dir)
    sections, unread = set_recipes(config, eval_dir, methods)
    config = with_set_recipes(config, sections)
    if unread and not _in_run_folder(eval_dir):  # its distill section is the evaluate command's default
        config = {**config, UNREAD_SETS: {"folder": str(eval_dir), "sets": unread}}
    return config, unread


def _in_run_folder(eval_dir: Path) -> bool:
    """Whether ``eval_dir`` is a run folder's ``eval/``, its sets in ``<run>/distill/<set>``."""
    return eval_dir.name == "eval" and (eval_dir.parent / "distill").is_dir()


#: The key :func:`run_config` adds to an evaluation folder's config when the recipe of some of its sets
#: could not be read (their folders gone, another set there, no ``config.yaml``): its ``distill`` section
#: is then the evaluate command's default, which :func:`check_one_recipe` does not take for the recipe.
UNREAD_SETS = "_unread_sets"


def set_folders(config: Mapping[str, Any], eval_dir: Path, methods: set[str]) -> dict[str, Path]:
    """Where each evaluated set among ``methods`` lies: ``<run>/distill/<name>`` for a run folder's
    ``eval/`` (when the folder holds ``distill/``), else the evaluation's own ``eval.distilled_dirs`` (an
    evaluation's output folder, ``gastrodistill-evaluate``; a relative path is read from the current
    folder, then from ``paths.root_dir``). Names without a folder (the baselines) are left out."""
    eval_dir = Path(eval_dir)
    if _in_run_folder(eval_dir):
        return {n: eval_dir.parent / "distill" / n for n in sorted(set(methods) - set(BASELINE_METHODS))}
    dirs = (
        (config.get("eval") or {}).get("distilled_dirs") if isinstance(config.get("eval"), Mapping) else None
    )
    root = (config.get("paths") or {}).get("root_dir") if isinstance(config.get("paths"), Mapping) else None
    out: dict[str, Path] = {}
    for name, where in (dirs or {}).items() if isinstance(dirs, Mapping) else ():
        if str(name) not in methods or str(name) in BASELINE_METHODS or not where:
            continue
        path = Path(str(where))
        if not path.is_absolute() and not path.is_dir() and root:
            path = Path(str(root)) / path
        out[str(name)] = path
    return dict(sorted(out.items()))


def set_recipes(
    config: Mapping[str, Any], eval_dir: Path, methods: set[str]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The ``distill`` section each evaluated set was made with (its ``<set>/config.yaml``, less ``mode``
    and the keys that are no recipe), for the sets :func:`set_folders` finds whose records were trained on
    that very set (:func:`records_of_set`), and the names of the sets :func:`set_folders` finds whose
    section cannot be read so (folder gone, another set there now, no ``config.yaml``). Raises
    :class:`RunsInputError` naming a set's ``config.yaml`` that is not YAML."""
    sections: dict[str, dict[str, Any]] = {}
    unread: list[str] = []
    for name, folder in set_folders(config, Path(eval_dir), methods).items():
        path = folder / CONFIG_FILE
        if not path.is_file() or not records_of_set(Path(eval_dir), folder, name):
            unread.append(name)
            continue
        try:
            saved = yaml.safe_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            raise RunsInputError(
                f"{path} is not valid YAML; restore the file the distill stage wrote beside the set"
            ) from None
        if isinstance(saved, dict) and isinstance(saved.get("distill"), dict):
            sections[name] = distill_recipe(saved["distill"])
        else:
            unread.append(name)
    return sections, unread


def distill_recipe(section: Mapping[str, Any]) -> dict[str, Any]:
    """A set's ``distill`` section less ``mode`` and the keys that are no recipe (:data:`NOT_RECIPE`,
    :data:`NOT_RECIPE_LEAVES`), as :func:`recipe_differences` skips them."""
    skip = {"mode", *NOT_RECIPE["distill"], *NOT_RECIPE_LEAVES}
    return {k: v for k, v in section.items() if k not in skip}


def with_set_recipes(config: dict[str, Any], sections: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """``config`` (an evaluation's ``config.yaml``) with its ``distill`` section replaced by the one the
    evaluated sets were made with (``sections``, :func:`set_recipes`: a run folder's
    ``distill/<set>/config.yaml``, or for an evaluation's own output folder the sets named by its
    ``eval.distilled_dirs``), when any is found; else ``config`` as it is.

    An evaluation records its command's ``distill`` settings. After a resume that extended the sets
    (``distill.resume``, a higher ``distill.outer_steps``), an evaluation run without repeating that value
    named the command's default, and :func:`recipe_differences` then pooled a 6-step run with 3-step ones
    (a newcomer trial); an evaluation of sets distilled elsewhere (``gastrodistill-evaluate``) named its
    command's default too (another). The sets' sections are one section when they agree, else one per set
    (which differs from any single-recipe run, so pooling is refused unless allowed)."""
    if not sections:
        return config
    first = next(iter(sections.values()))
    if not all(section == first for section in sections.values()):
        return {**config, "distill": sections}
    own = config.get("distill")
    if isinstance(own, dict) and "mode" in own:  # the command's mode key stays: the same shape as elsewhere
        first = {**first, "mode": own["mode"]}
    return {**config, "distill": first}


def fingerprint(run: RunRows) -> str:
    """A digest of every array of a run's records: two runs with the same digest are one run copied."""
    h = hashlib.sha256()
    for key in sorted(run):
        for nets in run[key]:
            for name in sorted(nets):
                h.update(f"{key}/{name}".encode())
                h.update(np.ascontiguousarray(nets[name]).tobytes())
    return h.hexdigest()


def check_no_copies(runs: Sequence[RunRows], sources: Sequence[Path]) -> None:
    """Raise :class:`RunsInputError` naming both folders when two runs hold the same records
    (:func:`fingerprint`): one run copied (``cp -a``) would count twice, and the spread between runs
    would shrink to nothing."""
    prints: dict[str, Path] = {}
    for src, run in zip(sources, runs, strict=True):
        fp = fingerprint(run)
        if fp in prints:
            raise RunsInputError(
                f"{src} holds the same records as {prints[fp]} (a copy of one run); each run counts once"
            )
        prints[fp] = src


def unit_kind(run: RunRows) -> str | None:
    """What a run's statistics are computed on: ``"patient-level"`` (data with patients: patient HM and
    AUC) or ``"image-level, K classes"`` (image accuracy and AUC, binary for K = 2, else macro
    one-vs-rest); ``None`` for a run without rows. Runs of different kinds cannot be pooled."""
    kinds = set()
    for nets in run.values():
        if "decisions" in nets[0]:
            kinds.add("patient-level")
        else:
            kinds.add(f"image-level, {nets[0]['probs'].shape[-1]} classes")
    return "; ".join(sorted(kinds)) or None


def check_one_kind(runs: Sequence[RunRows], sources: Sequence[Path]) -> None:
    """Raise :class:`RunsInputError` naming the run folders of each kind when the runs' statistics are of
    different kinds (a run on patients beside one on images without patients, or runs with different
    numbers of classes): their differences are not one quantity to pool."""
    by_kind: dict[str, list[str]] = {}
    for run, src in zip(runs, sources, strict=True):
        kind = unit_kind(run)
        if kind is not None:
            by_kind.setdefault(kind, []).append(str(src))
    if len(by_kind) > 1:
        where = "; ".join(f"{kind} in {', '.join(srcs)}" for kind, srcs in by_kind.items())
        raise RunsInputError(
            f"the runs' metrics are of different kinds ({where}): pool runs of one kind of data "
            "(all with patients, or all of images with the same classes)"
        )


def _test_split(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """What fixes a run's test units: its ``data`` (less the run seed) and ``synthetic`` config."""
    if "data" not in config:
        return None
    data = {k: v for k, v in dict(config["data"]).items() if k not in ("seed", "progress")}
    return {
        "data": data,
        "synthetic": config.get("synthetic"),
        "paths": (config.get("paths") or {}).get("data_root"),
    }


def split_differences(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The config keys that fix the test units and differ between runs (``synthetic.seed``, ...); a run
    without a saved config is named as such."""
    splits = [_test_split(c) for c in configs]
    out = [f"run {i + 1} has no eval/config.yaml" for i, sp in enumerate(splits) if sp is None]
    known = [sp for sp in splits if sp is not None]
    if known:
        for section in ("data", "synthetic"):
            first = known[0].get(section) or {}
            for sp in known[1:]:
                other = sp.get(section) or {}
                out += [
                    f"{section}.{k}"
                    for k in sorted(set(first) | set(other), key=str)
                    if first.get(k) != other.get(k) and f"{section}.{k}" not in out
                ]
        if any(sp["paths"] != known[0]["paths"] for sp in known[1:]):
            out.append("paths.data_root")
    return out


#: Keys of a run's ``distill`` and ``eval`` sections that do not change its recipe: how it was resumed,
#: logged, checkpointed, spread over processes or threads (progress bars and the precision each host
#: chooses for itself, ``${if_native_bf16:...}``, at any depth: :data:`NOT_RECIPE_LEAVES`), so runs of
#: one recipe from two hosts pool. Of ``data`` and ``synthetic``: the seeds (``seed``, ``${seed}``, and
#: ``split_seed``; ``synthetic.seed`` too: a seed sweep without ``synthetic.seed=0`` draws other patients
#: by design, and the pooled interval then draws each run's units apart, naming the key), where the data
#: are and which module reads them (``root``, ``path``, ``store_root``, ``_target_``, the preset's
#: ``name``: the same images from another folder or format), and how they are read (workers, the scoring
#: batch). Every other data key changes what the networks see (``storage_size``, ``patch_size``,
#: ``overlap``, ``mask_threshold``, ``image_size``, the split fractions, the augmentation, the synthetic
#: collection's size and look) and counts.
NOT_RECIPE = {
    "data": (
        "_target_",
        "root",
        "path",
        "store_root",
        "seed",
        "split_seed",
        "num_workers",
        "eval_batch_size",
    ),
    "synthetic": ("_target_", "_convert_", "name", "root", "seed", "num_workers"),
    "distill": (
        "resume",
        "resume_root",
        "ckpt_every",
        "grid_every",
        "log_every",
        "check_every",
        "real_data",
        "resident_max_bytes",
        "prefetch",
        "checkpoint",
        "outer_chunk",
        "channels_last",
    ),
    "eval": (
        "processes",
        "num_threads",
        "batch_size",
        "device",
        "score_channels_last",
        "score_autocast",
        "distilled_dirs",
    ),
}


#: Keys at any depth that do not change a recipe: progress bars (``texture_matching.progress`` follows
#: ``trainer.enable_progress_bar``) and the precision each host chooses.
NOT_RECIPE_LEAVES = ("progress", "precision")


def records_of_set(eval_dir: Path, set_dir: Path, name: str) -> bool:
    """Whether every record of set ``name`` in ``eval_dir/records`` was trained on the set now in ``set_dir``:
    their settings files name its digest (``distilled set <name>``). False without settings files (an older
    version), for a set that cannot be read, or when any record names another digest (networks of an
    earlier version of the set, kept from before a resume)."""
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.record_settings import set_digests, trained_on
    from gastrodistill.evaluation.report import finished_jobs

    keys = [k for k in finished_jobs(eval_dir) if k.startswith(f"{name}__")]
    seen = [trained_on(eval_dir, k).get(name) for k in keys]
    if not seen or None in seen:
        return False
    try:
        ds = DistilledSet.load(set_dir)
    except Exception:  # noqa: BLE001 - a set that cannot be read does not speak for the records
        return False
    return set(seen) <= set_digests(ds)


#: The config sections :func:`recipe_differences` compares.
RECIPE_SECTIONS = ("data", "synthetic", "model", "distill", "eval")


def recipe_differences(configs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of ``data``, ``synthetic``, ``model``, ``distill`` and ``eval`` (less :data:`NOT_RECIPE`
    and, at any depth, :data:`NOT_RECIPE_LEAVES`) whose values differ between the runs' saved configs:
    runs of a seed sweep differ in none (their seeds and the data's location are no recipe keys). Runs
    without a saved config are not compared."""

    views = []
    for c in configs:
        if not c:
            continue
        view: dict[str, Any] = {}
        for section in RECIPE_SECTIONS:
            node = {
                k: v for k, v in dict(c.get(section) or {}).items() if k not in NOT_RECIPE.get(section, ())
            }
            if node:  # a section of no recipe keys (folder data: root and module only) is no leaf of its own
                flat_settings(node, section, view)
        views.append({k: v for k, v in view.items() if k.rsplit(".", 1)[-1] not in NOT_RECIPE_LEAVES})
    out: list[str] = []
    for other in views[1:]:
        out += [
            k for k in sorted(set(views[0]) | set(other)) if views[0].get(k) != other.get(k) and k not in out
        ]
    return out


def check_one_recipe(configs: Sequence[Mapping[str, Any]], verb: str = "pool") -> None:
    """Raise :class:`RunsInputError` naming the keys (:func:`recipe_differences`, the first six) when the
    runs were made with different recipes, or naming the folder when an evaluation folder's recipe is not
    known (:data:`UNREAD_SETS`); ``verb`` says what the tool does with the runs (``pool``, ``check``), and
    the message names ``--allow-recipe-differences``, which both tools take."""
    unread = [c[UNREAD_SETS] for c in configs if c and UNREAD_SETS in c]
    if unread:
        folder, sets = unread[0]["folder"], ", ".join(unread[0]["sets"])
        raise RunsInputError(
            f"{folder}: the recipe of its set {sets} cannot be read (the folder its eval.distilled_dirs "
            "names is gone, holds another set or has no config.yaml), so its distill settings are the "
            f"evaluate command's defaults; put the set back, or pass --allow-recipe-differences to {verb} it "
            "anyway"
        )
    recipes = recipe_differences(configs)
    if recipes:
        shown = ", ".join(recipes[:6]) + (f" and {len(recipes) - 6} more" if len(recipes) > 6 else "")
        raise RunsInputError(
            f"the runs were made with different recipes ({shown}); {verb} the runs of one recipe (a seed "
            f"sweep), or pass --allow-recipe-differences to {verb} them anyway"
        )


def shares_test_units(runs: Sequence[RunRows], configs: Sequence[Mapping[str, Any]]) -> bool:
    """Whether all runs score the same test units: equal test labels in every row and the same data config.

    Without a saved config for every run the labels alone cannot tell: ``False`` (independent draws,
    the cautious choice, since shared units drawn independently would understate the patients' part).
    """
    splits = [_test_split(c) for c in configs]
    if any(s is None for s in splits) or any(s != splits[0] for s in splits[1:]):
        return False
    labels = [a["labels"] for run in runs for nets in run.values() for a in nets]
    return all(np.array_equal(x, labels[0]) for x in labels[1:])


def _run_difference(
    kind: str, a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]], idx: np.ndarray
) -> np.ndarray:
    """Mean over A's networks minus mean over B's of ``kind`` on every resample ``idx`` ``[n, units]``."""
    sa = np.mean([statistic_rows(kind, r, idx) for r in a], axis=0)
    sb = np.mean([statistic_rows(kind, r, idx) for r in b], axis=0)
    return sa - sb


def _whole(kind: str, a: list[dict[str, np.ndarray]], b: list[dict[str, np.ndarray]]) -> float:
    """One run's paired difference on all its test units."""
    return float(_run_difference(kind, a, b, np.arange(len(a[0]["labels"]))[None])[0])


def pooled_difference(
    kind: str,
    pairs: Sequence[tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]],
    rng: np.random.Generator,
    n_boot: int = 2000,
    level: float = 0.95,
    shared: bool = True,
) -> tuple[float, float, float]:
    """(estimate, low, high) of one paired difference pooled over runs.

    ``pairs[r]`` = (networks of the first row, networks of the partner) in run r, each network a dict of
    per-unit arrays (``labels`` plus ``decisions``/``scores`` or ``correct``/``probs``). The estimate
    is the mean over runs of the run's difference on all its units. Resample b draws, in this order:
    the test units (``shared``: one class-stratified draw ``[n_boot, units]`` used by every run;
    otherwise, for each of the R run slots in turn, one draw per run), then the runs,
    ``rng.integers(0, R, size=(n_boot, R))``; its value is the mean over the R drawn runs of their
    differences on their units. Percentile interval at ``level``; NaN when ``n_boot`` is 0 or a class
    is missing. Raises ``ValueError`` when ``shared`` and the runs' labels differ.
    """
    n_runs = len(pairs)
    est = float(np.mean([_whole(kind, a, b) for a, b in pairs]))
    labels = [a[0]["labels"] for a, _ in pairs]
    if n_boot <= 0 or any(len(np.unique(x)) < 2 for x in labels):
        return est, math.nan, math.nan
    if shared:
        if any(not np.array_equal(x, labels[0]) for x in labels[1:]):
            raise ValueError("shared test units need the same test labels in every run")
        idx = stratified_resamples(labels[0], rng, n_boot)
        diffs = np.stack([_run_difference(kind, a, b, idx) for a, b in pairs])  # [R, n_boot]
        slot_diffs = [diffs] * n_runs
    else:
        slot_diffs = []
        for _ in range(n_runs):  # every slot of a resample draws its own units for whichever run it gets
            slot_diffs.append(
                np.stack(
                    [
                        _run_difference(kind, a, b, stratified_resamples(a[0]["labels"], rng, n_boot))
                        for a, b in pairs
                    ]
                )
            )
    drawn = rng.integers(0, n_runs, size=(n_boot, n_runs))
    cols = np.arange(n_boot)
    vals = np.mean([slot_diffs[j][drawn[:, j], cols] for j in range(n_runs)], axis=0)
    q = (1.0 - level) / 2.0
    return est, float(np.nanquantile(vals, q)), float(np.nanquantile(vals, 1.0 - q))


def pool_runs(
    runs: Sequence[RunRows],
    seed: int,
    n_boot: int = 2000,
    level: float = 0.95,
    shared: bool = True,
) -> list[PooledDifference]:
    """Every paired difference of the results tables (each distilled row minus its partners), pooled.

    A pair counts in the runs that hold both rows; a pair found in no run is left out. Order: soft rows,
    hard rows, then any other distilled method; the distilling architecture (the one the baselines
    train) before the others; replay before the standard schedule. Each difference draws from its own
    stream ``derive_seed(seed, 'paired-over-runs', row, 'minus', partner, statistic)``, so adding a row
    or a run's extra rows never moves another difference's interval.
    """
    keys: list[Key] = []
    for run in runs:
        keys += [k for k in run if k not in keys]
    primary = {k[2] for k in keys if k[0] in BASELINE_METHODS}  # baselines train on the distilling network
    order = {"soft": 0, "hard": 1}
    keys.sort(key=lambda k: (order.get(k[0], 2), k[0], k[2] not in primary, k[2], k[1] != "replay", k[1]))
    out = []
    for key in keys:
        if key[0] in BASELINE_METHODS:
            continue
        for partner, same_schedule in PARTNERS:
            other = partner_key(key, partner, same_schedule)
            if partner == key[0]:
                continue
            present = [r for r in runs if key in r and other in r]
            if not present:
                continue
            for kind in bootstrap_kinds(present[0][key]):
                rng = numpy_rng(seed, "paired-over-runs", "/".join(key), "minus", "/".join(other), kind)
                est, lo, hi = pooled_difference(
                    kind, [(r[key], r[other]) for r in present], rng, n_boot, level, shared
                )
                per_run = [
                    _whole(kind, r[key], r[other]) if key in r and other in r else math.nan for r in runs
                ]
                out.append(PooledDifference(key, other, kind, per_run, est, lo, hi, len(present)))
    return out


def render(
    diffs: Sequence[PooledDifference],
    sources: Sequence[Path],
    shared: bool,
    level: float,
    n_boot: int,
    why_apart: Sequence[str] = (),
) -> str:
    """A Markdown table of the pooled differences, one line per (row, partner, statistic).

    ``why_apart``: the config keys that set the runs' test units apart (said when ``shared`` is False).
    The ``runs`` column counts the runs that hold both rows; a pair pooled over fewer runs than given
    says so there.
    """
    pct = f"{100 * level:g} %"
    lines = [f"run {i + 1}: {s}" for i, s in enumerate(sources)]
    if shared:
        units = "the same in every run (one draw per resample)"
    else:
        units = "drawn per run" + (f" (the runs differ in {', '.join(why_apart)})" if why_apart else "")
    lines += [
        "",
        f"test units: {units}; {n_boot} resamples of runs and units; {pct} percentile intervals",
        "",
        "| row | minus | statistic | "
        + " | ".join(f"run {i + 1}" for i in range(len(sources)))
        + f" | runs | pooled [{pct}] |",
        "|---|---|---|" + "---|" * len(sources) + "---|---|",
    ]
    for d in diffs:
        runs = " | ".join("–" if not math.isfinite(v) else f"{v:+.3f}" for v in d.per_run)
        ci = f" [{d.low:+.3f}, {d.high:+.3f}]" if math.isfinite(d.low) else ""
        lines.append(
            f"| {'/'.join(d.row)} | {'/'.join(d.partner)} | {d.kind} | {runs} | {d.n_runs} of {len(sources)} "
            f"| {d.estimate:+.3f}{ci} |"
        )
    return "\n".join(lines)
