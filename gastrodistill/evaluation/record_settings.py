"""What each finished network of an evaluation folder was made with, so that a re-run never mixes settings.

A re-run in the same folder skips every job whose record exists (:func:`report.finished_jobs`), which is
how an interrupted evaluation resumes. Records made under other settings (another ``eval.standard`` or
full-data recipe, another precision, which ``experiment=cpu`` chooses by the machine, another network
config, seed, patch store or distilled set) would then sit in one table with the new ones, and nothing
would say so. Beside each record, ``records/<job>.settings.json`` keeps what that network depends on
(:meth:`RecordSettings.of_job`, written just before the record); a run whose settings differ from a
finished network's stops before it trains or writes anything, naming the keys that differ and the two
ways on. Records written before this file existed have none and are trusted, as before. The saved
reference network (the ``random_soft`` teacher) keeps its settings the same way
(``Study.REFERENCE_SETTINGS``) and is trained again when they differ or are missing.

Not compared, because they do not change a finished network's record: what only chooses which jobs exist
(more networks, architectures, schedules, baselines or distilled sets add jobs beside the finished ones),
what only shapes the table from the records (bootstrap, interval level, bytes per pixel), and how the work
is executed (processes, threads, batch and memory sizes, ensembles, memory format, progress bars, the
full-data trainer's devices); these change results at most by float rounding. The files hold config
values and content hashes: no path, no patient id (``eval.distilled_dirs`` is left out; the sets are
named by their content).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gastrodistill.evaluation.jobs import RANDOM_SUBSET_BASELINES, EvaluationConfigError, Job
from gastrodistill.evaluation.report import RECORDS
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.precision import PRECISION_ALIASES

#: Suffix of the settings file beside a job's record (``records/<job key>.npz``).
SETTINGS_SUFFIX = ".settings.json"

#: ``eval`` keys (dotted, below ``eval``) that do not change a finished job's record.
NOT_COMPARED = frozenset(
    {
        # which jobs exist: a re-run may add networks, architectures, schedules and baselines
        "n_networks",
        "architectures",
        "schedules",
        "baselines.methods",
        "baselines.architectures",
        "baselines.n_networks_full",
        # the table from the records
        "bootstrap",
        "ci_level",
        "max_ci_width",
        "real_bytes_per_pixel",
        # execution (float rounding at most)
        "progress",
        "device",
        "processes",
        "num_threads",
        "batch_size",
        "max_in_memory_mb",
        "max_device_mb",
        "ensemble",
        "score_together",
        "score_channels_last",
        "baselines.real.accelerator",
        "baselines.real.devices",
        "baselines.real.strategy",
        # paths (the sets are compared by content)
        "distilled_dirs",
    }
)

#: Keys of a job's settings that name one distilled set or the subset size, not the whole study.
SET_KEYS = ("distilled set ", "random subset per class", "architecture ")


def flat_settings(node: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    """``node``'s leaves into ``out`` by dotted key under ``prefix`` (mappings in key order; an empty one
    is a leaf); returns ``out``."""
    if isinstance(node, Mapping) and node:
        for key in sorted(node):
            flat_settings(node[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = node
    return out


def _json(value: Any) -> Any:
    """``value`` as the file gives it back (tuples become lists, and so on)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


#: Metadata computed from a hashed tensor, left out of :func:`set_digest`: ``lrs`` is ``softplus(raw_lrs)``,
#: whose float32 values differ by 1-2 ulp between CPU instruction sets (AVX2 and AVX-512 give other
#: digests for one set of 30 learning rates), so a run folder moved between hosts would not match.
#: Metadata a set's digest leaves out: ``lrs`` (softplus of ``raw_lrs``, which is hashed) and
#: ``data_source_hash`` (where it was distilled from, which its artifact does not carry: a set read from
#: its folder and from its artifact train the same networks and keep one digest).
DERIVED_METADATA = ("lrs", "data_source_hash")


def set_digest(distilled: Any) -> str:
    """SHA-256 (hex) of a distilled set's content, not of any file: its tensors (``state_dict``: images,
    label logits, raw lrs) in key order and its metadata (temperature, inner momentum, recorded model, ...:
    what replaying it reads) but :data:`DERIVED_METADATA`. The same on every machine for one set, whether
    it is read from its folder, an artifact folder or a zip. Two sets with the same digest train the same
    networks."""
    meta = {k: v for k, v in distilled.metadata().items() if k not in DERIVED_METADATA}
    return state_digest(distilled.state_dict(), meta)


def legacy_set_digest(distilled: Any) -> str:
    """The digest settings files written before :data:`DERIVED_METADATA` was left out hold (the metadata
    in full): it still matches a set on the machine that wrote the file, so such folders resume."""
    return state_digest(distilled.state_dict(), distilled.metadata())


def set_digests(distilled: Any) -> set[str]:
    """Every digest a settings file may name for ``distilled``: :func:`set_digest` and
    :func:`legacy_set_digest`."""
    return {set_digest(distilled), legacy_set_digest(distilled)}


def trained_on(out: Path, key: str) -> dict[str, str]:
    """Set name -> the digest of that set that job ``key``'s settings file in ``out/records`` names (the
    sets its network was trained on: its ``distilled set <name>`` entries), read once; empty without a
    settings file (an older version), with one that cannot be read (the evaluation names it itself), or
    for a job that trained on no set (a baseline)."""
    path = settings_path(out, key)
    if not path.is_file():
        return {}
    try:
        saved = _read(path)
    except EvaluationConfigError:
        return {}
    prefix = "distilled set "
    return {
        k.removeprefix(prefix): str(v) for k, v in saved.items() if k.startswith(prefix) and v is not None
    }


def state_digest(state: Mapping[str, Any], meta: Mapping[str, Any] | None = None) -> str:
    """SHA-256 (hex) of a ``state_dict`` (tensors by name, in key order: name, shape, dtype and values,
    whatever the memory format or device) and of ``meta`` (JSON), e.g. a network's weights."""
    h = hashlib.sha256()
    for key, tensor in sorted(state.items()):
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        if str(tensor.dtype) != "torch.float32":  # float32 (a distilled set's tensors) as digests had it
            h.update(str(tensor.dtype).encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    h.update(json.dumps(meta or {}, sort_keys=True, default=str).encode())
    return h.hexdigest()


def study_settings(cfg: DictConfig, datamodule: Any) -> dict[str, Any]:
    """The settings every job's record depends on, as flat dotted keys (JSON values): ``eval.*`` but
    :data:`NOT_COMPARED`, ``model.*``, ``seed`` and the patch store's ``source_hash``. Interpolations are
    resolved (the CPU preset's ``${if_native_bf16:...}`` choices become this machine's values) and
    precisions take Lightning's names (``32`` and ``32-true`` are one setting). ``data.zca.*`` joins them
    when it is set (every setting, defaults written out, and ``data.zca.seed``, the data module's seed)."""
    ev = flat_settings(OmegaConf.to_container(cfg.eval, resolve=True), "", {})
    compared = {k: v for k, v in ev.items() if not any(k == n or k.startswith(f"{n}.") for n in NOT_COMPARED)}
    settings: dict[str, Any] = {f"eval.{k}": v for k, v in compared.items()}
    settings.update(flat_settings(OmegaConf.to_container(cfg.model, resolve=True), "model", {}))
    zca = getattr(datamodule, "zca", None)
    if zca is not None:  # the networks' ZCA filter (absent when off, so that earlier records still match):
        # every setting written out, and the seed of its draw of training images
        settings.update(flat_settings(zca.record(datamodule.seed), "data.zca", {}))
    for key, value in settings.items():
        if key.rsplit(".", 1)[-1] == "precision":
            settings[key] = PRECISION_ALIASES.get(str(value), value)
    settings["seed"] = cfg.get("seed")
    settings["data.source_hash"] = datamodule.source_hash()
    return _json(settings)


class RecordSettings:
    """The settings of a study's jobs (:func:`study_settings` plus what each job reads of the sets), their
    files beside the records of ``out``, and the check of a folder's finished networks against them.

    ``sets``: the study's distilled sets by name; ``subset_per_class``: a callable giving the random
    subsets' size (raising when there is none), called only for the random baselines; ``architecture``: a
    callable giving the resolved model config (a dict) of an architecture other than ``same`` (composed
    from ``conf/model``, which a user may edit between runs).

    A set's own networks of the ``same`` architecture are built from the model config it recorded, which
    its digest covers. The baselines' ``same`` networks follow the first set's recorded model:
    ``baseline_model``, given when it differs from ``model.*`` (sets distilled with another network than
    this config's), stands in for ``model.*`` in their settings; otherwise ``model.*`` is what they were
    built from (as in ``reproduce``, whose reference network trains before any set exists).
    """

    def __init__(
        self,
        study: Mapping[str, Any],
        sets: Mapping[str, Any],
        subset_per_class: Callable[[], int],
        architecture: Callable[[str], dict[str, Any]],
        baseline_model: Mapping[str, Any] | None = None,
    ) -> None:
        self.study = dict(study)
        self.digests = {name: set_digest(ds) for name, ds in sets.items()}
        self.legacy_digests = {name: legacy_set_digest(ds) for name, ds in sets.items()}
        self.subset_per_class = subset_per_class
        self.architecture = architecture
        self.baseline_model = dict(baseline_model) if baseline_model else None

    def of_job(self, job: Job) -> dict[str, Any]:
        """The settings of one job's record: the study's, the digest of the set it trains on, the random
        subsets' size for the random baselines, and the model config of an architecture other than
        ``same`` (for a baseline's ``same`` network, ``baseline_model`` in place of ``model.*``)."""
        settings = dict(self.study)
        if job.arch == "same" and job.method not in self.digests:
            settings = self._baseline_network(settings)
        if job.method in self.digests:
            settings[f"distilled set {job.method}"] = self.digests[job.method]
        if job.method in RANDOM_SUBSET_BASELINES:
            settings["random subset per class"] = int(self.subset_per_class())
        if job.arch != "same":
            settings.update(flat_settings(self.architecture(job.arch), f"architecture {job.arch}", {}))
        return _json(settings)

    def _baseline_network(self, settings: dict[str, Any]) -> dict[str, Any]:
        """``settings`` of a baseline's ``same`` network: ``baseline_model`` in place of ``model.*``."""
        if not self.baseline_model:
            return settings
        settings = {k: v for k, v in settings.items() if not k.startswith("model.")}
        return {**settings, **flat_settings(self.baseline_model, "model", {})}

    def _current(self, before: dict[str, Any]) -> dict[str, Any]:
        """``before`` (a settings file's content) with a set's :func:`legacy_set_digest` read as its
        current :func:`set_digest`."""
        out = dict(before)
        for name, legacy in self.legacy_digests.items():
            if out.get(f"distilled set {name}") == legacy:
                out[f"distilled set {name}"] = self.digests[name]
        return out

    def write(self, out: Path, job: Job) -> None:
        """Write ``out/records/<job>.settings.json`` (atomically), before the job's record is written."""
        self.write_file(settings_path(out, job.key), job)

    def write_file(self, path: Path, job: Job) -> None:
        """Write ``job``'s settings to ``path`` (atomically; e.g. beside the reference network's weights)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(self.of_job(job), indent=1, sort_keys=True))

    def matches(self, path: Path, job: Job) -> bool:
        """Whether ``path`` holds ``job``'s settings now (False when it is missing, unreadable or differs)."""
        try:
            return path.is_file() and not differences(self._current(_read(path)), self.of_job(job))
        except EvaluationConfigError:
            return False

    def check(self, out: Path, finished: Iterable[str], jobs: Iterable[Job]) -> None:
        """Compare every finished record's settings with these.

        ``finished``: the keys of the folder's finished jobs; ``jobs``: this run's jobs. A finished job of
        this run is compared in full; one this run does not list (its records still join networks.csv) on
        the study's settings only (a baseline's ``same`` network on the model it was built from). Records
        without a settings file (an older version) are trusted. Raises
        :class:`EvaluationConfigError` naming up to 8 differences (and how many more), how many networks
        they concern, and what to do; for a settings file that cannot be read, its path."""
        by_key = {j.key: j for j in jobs}
        lines: dict[str, None] = {}
        concerned = 0
        for key in sorted(finished):
            path = settings_path(out, key)
            if not path.is_file():
                continue
            before = self._current(_read(path))
            if key in by_key:
                now = self.of_job(by_key[key])
            else:  # a baseline on `same`: neither a set's digest nor an architecture's config
                baseline = not any(k.startswith(("distilled set ", "architecture ")) for k in before)
                now = _json(self._baseline_network(dict(self.study))) if baseline else self.study
                before = {k: v for k, v in before.items() if not k.startswith(SET_KEYS)}
            diff = differences(before, now)
            concerned += bool(diff)
            lines.update(dict.fromkeys(diff))
        if not lines:
            return
        shown = list(lines)
        text = "; ".join(shown[:8]) + (f"; and {len(shown) - 8} more" if len(shown) > 8 else "")
        folder = Path(out) / RECORDS
        raise EvaluationConfigError(
            f"{concerned} finished network(s) in {folder} were trained with other settings ({text}). A "
            "re-run there would put both in one table: give another output folder (paths.output_dir=...), "
            f"or remove {folder} to train every network again with these settings"
        )


def settings_path(out: Path, key: str) -> Path:
    """The settings file of job ``key`` beside its record: ``<out>/records/<key>.settings.json``."""
    return Path(out) / RECORDS / f"{key}{SETTINGS_SUFFIX}"


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        data = exc
    if not isinstance(data, dict):
        why = f"({data})" if isinstance(data, Exception) else "(not a JSON object)"
        raise EvaluationConfigError(
            f"{path} cannot be read {why}; it records what the finished network beside it was trained "
            f"with: remove {path.parent} to train every network again"
        )
    return data


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One line per key whose value differs between two settings (a key missing on one side included);
    a distilled set or the patch store is named with "new", "absent" or "other content"."""
    missing = object()
    lines = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key, missing), now.get(key, missing)
        if a is not missing and b is not missing and _same(a, b):
            continue
        if key.startswith("distilled set ") or key == "data.source_hash":
            what = "new" if a is missing else ("absent" if b is missing else "other content")
            lines.append(f"{key}: {what}")
        else:
            was = "unset" if a is missing else repr(a)
            is_ = "unset" if b is missing else repr(b)
            lines.append(f"{key} was {was}, now {is_}")
    return lines
