"""The evaluation's work as a flat list of jobs: one job = one fresh network of one setting.

A job is (method, schedule, architecture, network index). The list is built from the ``eval`` config
alone, in a fixed order, so every rank of a multi-process run builds the same list; rank ``r`` of
``world`` takes ``jobs[r::world]`` (:func:`shard`). Every network is seeded by its own job
(``derive_seed(seed, 'eval', method, schedule, architecture, index)``), so which rank trains it, and
which other networks train beside it in an ensemble, never changes its weights. Finished jobs are
recorded (``networks.csv`` and one ``records/<job>.npz`` each, see :mod:`gastrodistill.evaluation.report`)
and skipped when the evaluation is run again in the same folder (:func:`pending`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gastrodistill.utils.values import check_switch, is_count, is_finite_number

log = logging.getLogger(__name__)

#: ``same`` is the distilled set's own architecture (the one it was distilled with).
SAME = "same"
#: Baselines: ``full`` every real training patch (upper bound); ``random`` a random real subset of the
#: distilled size; ``mean`` the per-class mean images; ``random_soft`` a random real subset of the
#: distilled size with soft labels from a teacher trained on all real data (the DD-Ranking control).
BASELINES = ("full", "random", "mean", "random_soft")
#: The baselines that draw a random real subset of each class (their size: ``random_per_class``).
RANDOM_SUBSET_BASELINES = frozenset({"random", "random_soft"})
#: The anonymity audit's own rows (``anonymity.audit``; ``real`` joins the table as ``full``): a set of one
#: of these names would replace them in ``audit.json`` and in the table.
AUDIT_ROWS = ("real", "control_copy", "control_noisy", "control_overfit")
#: Names Windows cannot give a file, whatever the extension.
_DEVICE_NAMES = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}
SCHEDULES = ("replay", "standard")
#: The schedule name of the full-data rows (trained by the Lightning recipe, not a small-set schedule).
REAL_SCHEDULE = "real"


class EvaluationConfigError(ValueError):
    """A bad ``eval`` config entry; the message names the key and the accepted values."""


@dataclass(frozen=True, order=True)
class Job:
    """One fresh network: ``arch`` is the config's architecture key (``same`` or a ``conf/model`` name)."""

    method: str
    schedule: str
    arch: str
    index: int

    @property
    def setting(self) -> tuple[str, str, str]:
        """(method, schedule, arch): the networks of one setting train together as an ensemble."""
        return (self.method, self.schedule, self.arch)

    @property
    def key(self) -> str:
        """A file-name-safe identifier, e.g. ``soft__replay__same__3``."""
        return f"{self.method}__{self.schedule}__{self.arch}__{self.index}"


#: A distilled set's name: it names files and folders (``records/<job>.npz``, ``plots/distilled_<name>.png``,
#: ``artifacts/<name>/``), so letters, digits, ``.``, ``_`` and ``-`` only, starting with a letter or digit.
SET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_set_name(name: object, key: str) -> str:
    """Return ``name`` as a string, or raise :class:`EvaluationConfigError` naming ``key`` (e.g.
    ``eval.distilled_dirs``) when it is not a plain file name (:data:`SET_NAME`): a name such as ``../x``
    or ``a/b`` would put the set's records, plots and artifact outside the run folder."""
    if name is None or isinstance(name, bool):  # Hydra reads {true: PATH} as True, {null: PATH} as None
        read_as = "null" if name is None else "a boolean"
        raise EvaluationConfigError(
            f"{key}: the set name {str(name).lower()} is read as {read_as}; "
            "choose a name of letters and digits (e.g. soft, hard, soft_site2)"
        )
    text = str(name)
    stem = text.split(".")[0].lower()
    if not SET_NAME.fullmatch(text) or text.endswith(".") or stem in _DEVICE_NAMES:
        raise EvaluationConfigError(
            f"{key}: the set name {text!r} cannot name files; use letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit and not ending in '.', and not a Windows device name (con, "
            "nul, ...) (e.g. soft, hard, soft_site2)"
        )
    if text.lower().endswith(".zip"):  # the artifact stage writes artifacts/<name>.zip beside each folder
        raise EvaluationConfigError(
            f"{key}: the set name {text!r} ends in .zip; the artifact of a set {text[:-4]!r} would be "
            f"written at artifacts/{text[:-4]}.zip: drop the .zip from the name"
        )
    if text.lower() in AUDIT_ROWS:
        raise EvaluationConfigError(
            f"{key}: the set name {text!r} is the name of one of the anonymity audit's own rows "
            f"({', '.join(AUDIT_ROWS)}), which it would replace; give the set another name (e.g. {text}_set)"
        )
    return text


def check_set_names(names: Iterable[object], key: str) -> list[str]:
    """:func:`check_set_name` for each of ``names``, and no two that differ only in case (their records,
    plots and artifacts would be one file on macOS and Windows file systems). Returns the names as
    strings; raises :class:`EvaluationConfigError` naming ``key``."""
    folded: dict[str, str] = {}
    checked = []
    for name in names:
        text = check_set_name(name, key)
        if folded.setdefault(text.lower(), text) != text:
            raise EvaluationConfigError(
                f"{key}: the set names {folded[text.lower()]!r} and {text!r} differ only in case; their "
                "records, plots and artifacts would share files on a case-insensitive file system: rename one"
            )
        checked.append(text)
    return checked


def as_list(node: str | Iterable[Any] | None) -> list:
    """A config entry that may be null, one string or a list, as a list."""
    if node is None:
        return []
    if isinstance(node, str):
        return [node]
    return list(node)


_ABSENT = object()


def _check_count(ev: DictConfig, key: str, minimum: int, null: str | None) -> None:
    """Refuse ``eval.<key>`` unless it is an integer >= ``minimum``, or null where ``null`` says what
    null means; a key the config does not have is left to its consumer's default."""
    value = OmegaConf.select(ev, key, default=_ABSENT)
    if value is _ABSENT or (value is None and null is not None):
        return
    if not is_count(value, minimum):
        hint = f" or null ({null})" if null else ""
        raise EvaluationConfigError(f"eval.{key} must be an integer >= {minimum}{hint}, got {value!r}")


def _check_scoring(ev: DictConfig) -> None:
    """The values the evaluation reads only when it scores or summarises (after training), checked first:
    ``threshold_source``, ``ci_level``, ``max_ci_width``, ``ensemble`` and ``device``; and the switches
    ``score_autocast``, ``progress`` and ``baselines.real.balanced`` (Hydra keeps ``maybe`` a string, which
    was read as true)."""
    from gastrodistill.evaluation.patient import FIT_SPLITS

    for key, value in (
        ("score_autocast", ev.get("score_autocast", False)),
        ("progress", ev.get("progress", True)),
        ("baselines.real.balanced", ((ev.get("baselines") or {}).get("real") or {}).get("balanced", False)),
    ):
        check_switch(value, f"eval.{key}", EvaluationConfigError)

    source = ev.get("threshold_source", "val")
    if source not in FIT_SPLITS:
        raise EvaluationConfigError(
            f"eval.threshold_source = {source!r}; use one of {FIT_SPLITS} (never 'test')"
        )
    level = ev.get("ci_level", 0.95)
    if not (is_finite_number(level) and 0 < level < 1):
        raise EvaluationConfigError(f"eval.ci_level must be a number in (0, 1), e.g. 0.95; got {level!r}")
    width = ev.get("max_ci_width")
    if width is not None and not (is_finite_number(width) and width > 0):
        raise EvaluationConfigError(
            f"eval.max_ci_width must be a number > 0 or null (no flag), got {width!r}"
        )
    from gastrodistill.evaluation.study import ensemble_mode

    ensemble_mode(ev.get("ensemble", "auto"), "cpu")  # the stage's own reading: an unknown word raises
    device = str(ev.get("device") or "auto")
    if device != "auto":
        import torch

        try:
            kind = torch.device(device).type
        except RuntimeError:
            raise EvaluationConfigError(f"eval.device = {device!r}; use auto, cpu or cuda[:i]") from None
        if kind not in ("cpu", "cuda"):
            raise EvaluationConfigError(f"eval.device = {device!r}; use auto, cpu or cuda[:i]")
        if kind == "cuda" and not torch.cuda.is_available():
            raise EvaluationConfigError(
                f"eval.device = {device!r} but this machine has no CUDA device; use eval.device=auto or cpu"
            )


def validate(ev: DictConfig, here: bool = True) -> None:
    """Refuse unknown schedules, baselines and standard-schedule precisions, an architecture listed twice,
    and a count (networks, random-subset size, bootstrap resamples, batch size, memory, processes,
    threads) that is not an integer in range, naming the
    key (before any network is trained); and every value read only when a network is built or trained
    (:func:`gastrodistill.evaluation.config_check.check_training_values`: empty schedules or architectures,
    the init scheme, ``eval.lr_grid``, the augmentation nodes, the teacher temperature and
    ``eval.baselines.real``, its Lightning Trainer included). ``here`` False: the study runs on another
    machine (a sweep's launcher), whose devices are not checked against this one."""
    for s in as_list(ev.schedules):
        if s not in SCHEDULES:
            raise EvaluationConfigError(f"eval.schedules entry {s!r} unknown; use 'replay' and/or 'standard'")
    for b in as_list(ev.baselines.methods):
        if b not in BASELINES:
            raise EvaluationConfigError(
                f"eval.baselines.methods entry {b!r} unknown; use some of {BASELINES}"
            )
    for key, archs in (
        ("eval.architectures", ev.architectures),
        ("eval.baselines.architectures", ev.baselines.architectures),
    ):
        names = [str(a) for a in as_list(archs)]
        twice = sorted({a for a in names if names.count(a) > 1})
        if twice:
            raise EvaluationConfigError(
                f"{key} lists {', '.join(map(repr, twice))} more than once; list each architecture once"
            )
    # the counts, before any network trains (a bad eval.bootstrap used to stop the study at its end)
    for key, minimum, null in (
        ("n_networks", 1, None),
        ("baselines.n_networks_full", 1, "as many as eval.n_networks"),
        ("baselines.n_per_class", 1, "the first distilled set's size"),
        ("bootstrap", 0, None),
        ("batch_size", 1, None),
        ("max_in_memory_mb", 0, None),
        ("processes", 1, "one process"),
        ("num_threads", 1, "this process's threads"),
        ("max_device_mb", 0, "always on the device"),
        ("patient.min_patients_per_class", 0, None),
        ("patient.cv_folds", 2, None),
    ):
        _check_count(ev, key, minimum, null)
    _check_scoring(ev)
    if "patient" in ev:  # the threshold policy's keys (rule, fallback, counts), before any network trains
        from gastrodistill.evaluation.patient import PatientEvaluationError, threshold_policy

        try:
            threshold_policy(ev.patient)
        except (PatientEvaluationError, ValueError, TypeError) as exc:  # int('abc') of a count, too
            raise EvaluationConfigError(
                f"eval.patient: {exc}" if "eval.patient" not in str(exc) else str(exc)
            ) from None
    if "standard" in ev:  # every field of the small-set recipe, checked before any network trains
        from gastrodistill.evaluation.fresh_training import standard_schedule

        try:
            standard_schedule(ev)
        except (TypeError, ValueError) as exc:
            raise EvaluationConfigError(f"eval.standard: {exc}") from None
    from gastrodistill.evaluation.config_check import check_training_values

    check_training_values(ev, here)
    if "standard" in ev:
        grid = [float(v) for v in as_list(ev.get("lr_grid"))]
        if grid and float(ev.standard.lr) not in grid:  # Study.choose_lr takes the rate from the grid
            log.warning(
                "eval.standard.lr=%g is not used: the rate comes from eval.lr_grid %s (chosen on validation "
                "when it holds several); put the rate in eval.lr_grid to use it",
                float(ev.standard.lr),
                grid,
            )


def build_jobs(ev: DictConfig, set_names: Sequence[str]) -> list[Job]:
    """Every job of the study, in a fixed order (distilled sets first, then the baselines).

    Distilled sets: ``eval.architectures`` x ``eval.schedules`` x ``eval.n_networks``. Baselines:
    ``eval.baselines.methods`` x ``eval.baselines.architectures`` x ``eval.n_networks`` (the full-data
    baseline ``eval.baselines.n_networks_full``). Raises :class:`EvaluationConfigError` on a bad entry, a set
    name that cannot name files (:func:`check_set_name`) or a set named like a baseline.
    """
    validate(ev)
    n = int(ev.n_networks)
    archs = as_list(ev.architectures) or [SAME]
    base_archs = as_list(ev.baselines.architectures) or [SAME]
    n_full = n if ev.baselines.get("n_networks_full") is None else int(ev.baselines.n_networks_full)
    jobs: list[Job] = []
    for name in check_set_names(set_names, "distilled set"):
        if name.lower() in BASELINES:
            raise EvaluationConfigError(
                f"a distilled set is named {name!r}, the name of a baseline ({', '.join(BASELINES)}): its "
                "networks and the baseline's would share records and rows. Give the set another name "
                f"(e.g. 'eval.distilled_dirs={{{name}_set: PATH}}')"
            )
        for arch in archs:
            for schedule in as_list(ev.schedules):
                jobs += [Job(name, schedule, arch, i) for i in range(n)]
    for method in as_list(ev.baselines.methods):
        for arch in base_archs:
            if method == "full":
                jobs += [Job("full", REAL_SCHEDULE, arch, i) for i in range(n_full)]
            else:
                jobs += [Job(method, "standard", arch, i) for i in range(n)]
    return jobs


def shard(jobs: Sequence[Job], rank: int, world_size: int) -> list[Job]:
    """The jobs of rank ``rank`` out of ``world_size``: ``jobs[rank::world_size]`` (round robin)."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise EvaluationConfigError(f"rank {rank} of world size {world_size} is not a valid process")
    return list(jobs[rank::world_size])


def pending(jobs: Iterable[Job], finished: set[str]) -> list[Job]:
    """The jobs whose key is not in ``finished`` (see ``report.finished_jobs``)."""
    return [j for j in jobs if j.key not in finished]


def by_setting(jobs: Iterable[Job]) -> dict[tuple[str, str, str], list[Job]]:
    """Jobs grouped by setting, in first-seen order (each group trains as one ensemble)."""
    groups: dict[tuple[str, str, str], list[Job]] = {}
    for j in jobs:
        groups.setdefault(j.setting, []).append(j)
    return groups
