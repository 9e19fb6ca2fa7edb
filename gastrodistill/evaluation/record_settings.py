"""What an evaluation folder's records were made with, so that a re-run there never mixes two settings.

A re-run in the same folder skips every job whose record exists (:func:`report.finished_jobs`), which is
how an interrupted evaluation resumes. Records made under other settings (another ``eval.standard`` or
full-data recipe, another precision, which ``experiment=cpu`` chooses by the machine, another network
config, seed, patch store or distilled set) would then sit in one table with the new ones, and nothing
would say so. ``records/settings.json`` keeps the settings of the first run; a re-run whose settings differ
stops before any network trains, naming the keys that differ and the two ways on.

Not compared: what only chooses which jobs exist (more networks, architectures, schedules or baselines add
jobs beside the finished ones), what only shapes the table from the records (bootstrap, interval level),
and how the work is executed (processes, batch and memory sizes, ensembles, memory format, progress bars,
the devices of the full-data trainer). The file holds config values and content hashes: no path, no
patient id (``eval.distilled_dirs`` is left out; the sets are named by their content).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.report import RECORDS
from gastrodistill.utils.atomic import write_text_atomic

#: The file, inside the folder of records (``records/``).
SETTINGS_FILE = "settings.json"

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
        # execution
        "progress",
        "processes",
        "batch_size",
        "max_in_memory_mb",
        "max_device_mb",
        "ensemble",
        "score_channels_last",
        "baselines.real.accelerator",
        "baselines.real.devices",
        "baselines.real.strategy",
        # paths (the sets are compared by content)
        "distilled_dirs",
    }
)


def _flat(node: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(node, Mapping) and node:
        for key in sorted(node):
            _flat(node[key], f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = node
    return out


def set_digest(distilled: Any) -> str:
    """SHA-256 (hex) of a distilled set's tensors (its ``state_dict``: images, label logits, raw lrs),
    in key order: two sets with the same digest train the same networks."""
    h = hashlib.sha256()
    for key, tensor in sorted(distilled.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def record_settings(cfg: DictConfig, datamodule: Any, distilled_sets: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a finished job's record depends on, as flat dotted keys (JSON values):
    ``eval.*`` but :data:`NOT_COMPARED`, ``model.*``, ``seed``, the patch store's ``source_hash`` and each
    distilled set's :func:`set_digest`. Resolves interpolations (the ``${if_native_bf16:...}`` choices
    of the CPU preset become the value this machine takes)."""
    ev = _flat(OmegaConf.to_container(cfg.eval, resolve=True), "", {})
    compared = {k: v for k, v in ev.items() if not any(k == n or k.startswith(f"{n}.") for n in NOT_COMPARED)}
    settings: dict[str, Any] = {f"eval.{k}": v for k, v in compared.items()}
    settings.update(_flat(OmegaConf.to_container(cfg.model, resolve=True), "model", {}))
    settings["seed"] = cfg.get("seed")
    settings["data.source_hash"] = datamodule.source_hash()
    for name in sorted(distilled_sets):
        settings[f"distilled set {name}"] = set_digest(distilled_sets[name])
    return json.loads(json.dumps(settings, sort_keys=True))  # the values as the file will give them back


def _differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    missing = object()
    lines = []
    for key in sorted(set(before) | set(now)):
        a, b = before.get(key, missing), now.get(key, missing)
        if a == b:
            continue
        if key.startswith("distilled set ") or key == "data.source_hash":
            what = "absent" if a is missing else ("new" if b is missing else "other content")
            lines.append(f"{key}: {what}")
        else:
            was = "unset" if a is missing else repr(a)
            is_ = "unset" if b is missing else repr(b)
            lines.append(f"{key} was {was}, now {is_}")
    return lines


def check_record_settings(out: Path, settings: Mapping[str, Any], write: bool = True) -> None:
    """Compare ``settings`` (:func:`record_settings`) with those of the records already in ``out/records``.

    No file yet: ``write`` saves ``settings`` (atomically; rank 0 of a sharded run) and returns; a folder
    with records from a version that kept no settings is trusted as before. Raises
    :class:`EvaluationConfigError` naming up to 8 differing keys (and how many more), and what to do:
    another output folder, or the records removed to train every network again."""
    path = Path(out) / RECORDS / SETTINGS_FILE
    if not path.is_file():
        if write:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(dict(settings), indent=1, sort_keys=True))
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise EvaluationConfigError(
            f"{path} cannot be read ({exc}); it records what the finished networks in {path.parent} were "
            f"trained with: remove {path.parent} to train every network again"
        ) from None
    diff = _differences(before, settings)
    if not diff:
        return
    shown = "; ".join(diff[:8]) + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "")
    raise EvaluationConfigError(
        f"the finished networks in {path.parent} were trained with other settings ({shown}). A re-run "
        "there would put both in one table: give another output folder (paths.output_dir=...), or remove "
        f"{path.parent} to train every network again with these settings"
    )
