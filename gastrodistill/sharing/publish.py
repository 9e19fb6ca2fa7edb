"""From a run's config to a published artifact: the card fields and the private strings it must not hold."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gastrodistill.anonymity.text_check import (
    SOURCE_NAME_KIND,
    PrivateStrings,
    config_private_strings,
    embedded_patient_ids,
    name_warning_strings,
)
from gastrodistill.anonymity.verdict import NOT_AUDITED, anonymity_verdict
from gastrodistill.sharing.artifact import save_artifact
from gastrodistill.utils.privacy import REDACTED, public_config
from gastrodistill.utils.run_info import CONFIG_FILE

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet

log = logging.getLogger(__name__)


def _replay_augment(cfg: DictConfig) -> dict[str, Any] | None:
    node = cfg.eval.get("replay_augment") if "eval" in cfg else None
    return public_config(node) if node is not None else None


def _replay_text(cfg: DictConfig, distilled: DistilledSet | None) -> str:
    """How a receiving site replays the set: the inner SGD's momentum is the set's own (its
    ``inner_momentum``), or ``distill.inner_momentum`` for a card written from the config alone."""
    default = cfg.distill.get("inner_momentum", 0.0) if "distill" in cfg else 0.0
    momentum = float(getattr(distilled, "inner_momentum", default) or 0.0)
    sgd = f"SGD steps with momentum {momentum:g}" if momentum else "plain SGD steps"
    return f"steps x epochs {sgd}, step t on batch(t % steps) with lrs[t]"


#: What a set records of the recipe it was distilled with, as the ``distill`` config names it.
RECORDED_RECIPE = ("ipc", "steps", "epochs", "inner_momentum")


def recipe_mismatch(cfg: DictConfig, distilled: DistilledSet) -> dict[str, tuple[Any, Any]]:
    """``{key: (the set's value, this config's value)}`` for the recipe fields where a distilled set and
    ``cfg.distill`` disagree (empty when they agree, or when ``cfg`` has no ``distill`` section).

    A card's ``training_recipe`` is written from the config; a set audited under another experiment's
    config would travel with a recipe (and a replay augmentation and standard schedule) it was not made
    with."""
    if "distill" not in cfg:
        return {}
    out: dict[str, tuple[Any, Any]] = {}
    for key in RECORDED_RECIPE:
        mine, theirs = (
            getattr(distilled, key, None),
            cfg.distill.get(key, 0.0 if key == "inner_momentum" else None),
        )
        if mine is not None and theirs is not None and float(mine) != float(theirs):
            out[key] = (mine, theirs)
    return out


def set_recipe(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The recipe a distilled set in ``folder`` was made with: ``{"distill": ..., "seed": ...}`` from the
    resolved ``config.yaml`` its distillation wrote beside it (``utils.run_info.save_run_info``), path-free
    (:func:`~gastrodistill.utils.privacy.public_config`); None when there is none or it cannot be read
    (a set copied without it, an artifact), and the card then falls back to the current config."""
    from omegaconf import OmegaConf

    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        saved = OmegaConf.load(path)
    except Exception:  # noqa: BLE001 - an unreadable record: the current config describes the set
        return None
    if not isinstance(saved, DictConfig) or "distill" not in saved or "seed" not in saved:
        return None
    try:
        return {"distill": public_config(saved.distill, at="distill"), "seed": int(saved.seed)}
    except (TypeError, ValueError):
        return None


def _numbers(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """Only finite scalar metrics go on a card (no arrays, no per-patient values)."""
    out: dict[str, float] = {}
    for k, v in (metrics or {}).items():
        if isinstance(v, bool | int | float) and math.isfinite(float(v)):
            out[str(k)] = float(v)
    return out


def card_description(name: str, data_target: str, experiment_name: Any) -> str:
    """The card's one-line ``description`` of the set ``name`` distilled from ``data_target`` data."""
    return f"{name} distilled set of {data_target} ({experiment_name}), gastrodistill"


def check_experiment_name(cfg: DictConfig) -> None:
    """Refuse, before any stage runs, an ``experiment_name`` that no shared card may carry (a path, a file
    name, a DICOM person name or UID: :func:`~gastrodistill.sharing.card.check_public`): it goes into every
    artifact's description. Raises :class:`~gastrodistill.sharing.card.CardError` naming the key."""
    from gastrodistill.sharing.card import CardError, string_problem

    name = cfg.get("experiment_name")
    reason = string_problem(card_description("soft", "data", name))
    if reason is not None:
        raise CardError(
            f"experiment_name={name!r} {reason}, and it goes into every shared artifact's card; choose a "
            f"name without paths, file names or header fields (e.g. experiment_name=site_a)"
        )


#: The text fields of a W&B logger's config (``logger.<name>.*``) that name its run on the W&B server
#: (``name`` and ``job_type`` are set by ``utils.loggers.stage_loggers`` from experiment_name and the stage).
WANDB_NAME_KEYS = ("project", "group", "name", "tags")
#: W&B refuses longer tags (its own error is a traceback that prints the tag).
WANDB_TAG_MAX = 64


#: The config keys that map a user-chosen set name to a folder: the name goes into every logged metric's
#: name (``audit/<name>/...``), the results table and the set's artifact card.
SET_NAME_KEYS = ("eval.distilled_dirs", "audit.sets")


def logged_names(cfg: DictConfig) -> dict[str, str]:
    """Every user-chosen string that names a logged run or what it logs, key -> value: ``experiment_name``;
    for each W&B logger under ``logger``, its :data:`WANDB_NAME_KEYS` (each tag as
    ``logger.wandb.tags[i]``); and the set names of :data:`SET_NAME_KEYS` (as ``audit.sets: set name 1``:
    a key never spells the name, which may be what is refused)."""
    names = {"experiment_name": str(cfg.get("experiment_name"))}
    for key in SET_NAME_KEYS:
        sets = OmegaConf.select(cfg, key, default=None)
        if isinstance(sets, DictConfig):
            for i, name in enumerate(sets.keys(), start=1):
                names[f"{key}: set name {i}"] = str(name)
    for logger, conf in (cfg.get("logger") or {}).items():
        if not isinstance(conf, DictConfig) or "wandb" not in str(conf.get("_target_", "")).lower():
            continue
        for key in WANDB_NAME_KEYS:
            value = conf.get(key)
            if value is None:
                continue
            values = list(value) if isinstance(value, ListConfig) else [value]
            for i, item in enumerate(values):
                names[f"logger.{logger}.{key}" + (f"[{i}]" if key == "tags" else "")] = str(item)
    return names


def check_logged_names_in_data(
    cfg: DictConfig, datamodule: ImageDataModule | None, warn: bool = True
) -> None:
    """Refuse an ``experiment_name``, a W&B run's project, group or tag, or a set's name
    (:func:`logged_names`) that holds a private string of ``datamodule``'s data (a patient id, a DICOM
    header value, a source path:
    :func:`~gastrodistill.anonymity.text_check.private_strings`, found as the artifact check finds them,
    its words joined by ``_``, ``-``, ``.`` or nothing too; or the data folder's own name, which often names
    the site: ``source_name``; a site's distinctive word or a patient id too short for the artifact search
    is warned about, not refused: :func:`_warn_of_site_words_and_short_ids`),
    or that is itself a path, file name or header field
    (:func:`~gastrodistill.sharing.card.string_problem`; for ``experiment_name``
    :func:`check_experiment_name`), and a tag W&B would refuse; then every other text value the loggers get
    (:func:`logged_config_values`) that holds such a string (:func:`_refuse_private_config_values`).
    ``experiment_name`` names the run folder,
    the loggers' runs and every artifact's card, the W&B values name the run on the W&B server, and a
    set's name (``eval.distilled_dirs``, ``audit.sets``) every metric logged of it and its card, so
    every command that logs calls this once the data can be read and before its loggers start
    (``gastrodistill-reproduce`` before its first such stage, ``run_distillation``,
    ``gastrodistill-evaluate`` and ``gastrodistill-audit``). With ``datamodule`` None, only the strings
    of the data's files and its folder's name are searched (manifest ids and paths, DICOM headers, file names:
    :func:`~gastrodistill.anonymity.text_check.private_strings`): ``gastrodistill-distill`` and
    ``gastrodistill-reproduce`` call it so before the patch store is built (``warn`` False: the warnings
    come once, from the later call with the data module). Raises
    :class:`~gastrodistill.sharing.card.CardError` naming the key and the kind of string, never the
    string."""
    from gastrodistill.sharing.card import CardError, find_strings, string_problem

    check_experiment_name(cfg)  # a path or header field in it: refused with the card's wording
    names = logged_names(cfg)
    for key, value in names.items():
        if key == "experiment_name" or value == names["experiment_name"]:
            continue  # checked above (the W&B group is experiment_name by default)
        reason = string_problem(value)
        if reason is not None:
            raise CardError(
                f"{key}: the value {reason}, and {_what_it_names(key)}; choose one without paths, file "
                "names or header fields"
            )
        if ".tags[" in key and len(value) > WANDB_TAG_MAX:
            raise CardError(
                f"{key} is {len(value)} characters long; W&B takes tags of at most {WANDB_TAG_MAX}"
            )
    strings = config_private_strings(cfg, datamodule, with_source_name=True)  # the folder: often the site's
    encoded = {key: value.encode("utf-8") for key, value in names.items()}
    hits = find_strings(encoded, strings.values)
    if not hits:
        _refuse_private_config_values(cfg, strings)
        if warn:
            _warn_of_site_words_and_short_ids(encoded, strings)
        return
    key = hits[0][0]  # names keep their order: experiment_name first
    kinds = ", ".join(sorted({strings.kinds[i] for k, i in hits if k == key}))  # dicom:<keyword>: no value
    if key == "experiment_name":
        raise CardError(
            f"experiment_name holds a private string of the data ({kinds}), and it names the run "
            f"folder, the logged runs and every shared artifact's card; choose a name that holds no patient "
            f"id, header value or path (e.g. experiment_name=site_a); a run folder this command made is "
            f"removed"
        )
    raise CardError(
        f"{key} holds a private string of the data ({kinds}), and {_what_it_names(key)}; choose a "
        "value that holds no patient id, header value or path"
    )


def logged_config_values(cfg: DictConfig) -> dict[str, str]:
    """Every text value of the config the loggers are given
    (:func:`~gastrodistill.utils.privacy.public_config`: W&B's run config, ``logs/csv/*/hparams.yaml``),
    dotted key (``eval.comment``, ``logger.wandb.notes``, ``x.tags[0]``) -> value; the values it redacts
    are left out."""
    values: dict[str, str] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")
        elif isinstance(node, str) and node != REDACTED:
            values[key] = node

    walk(public_config(cfg), "")
    return values


def _refuse_private_config_values(cfg: DictConfig, strings: PrivateStrings) -> None:
    """Refuse a config value the loggers would be given (:func:`logged_config_values`: a key added on the
    command line, ``+eval.comment=...``, W&B's ``notes``) that holds a private string of the data
    (``strings`` but the data folder's own name, which an ordinary value such as a data set's name may
    equal). Raises :class:`~gastrodistill.sharing.card.CardError` naming the key and the kind, never the
    string."""
    from gastrodistill.sharing.card import CardError, find_strings

    searched = [i for i, kind in enumerate(strings.kinds) if kind != SOURCE_NAME_KIND]
    values = {key: value.encode("utf-8") for key, value in logged_config_values(cfg).items()}
    # One search of all the values at once (a collection has thousands of private strings, a config
    # hundreds of values), then the values of the strings found, one by one.
    found = find_strings({"config": b"\n".join(values.values())}, [strings.values[i] for i in searched])
    if not found:
        return
    searched = [searched[i] for _, i in found]
    hits = find_strings(values, [strings.values[i] for i in searched])
    if not hits:  # (a string found only across two values: none can be, they are joined by a line break)
        return
    key = hits[0][0]
    kinds = ", ".join(sorted({strings.kinds[searched[i]] for k, i in hits if k == key}))
    raise CardError(
        f"{key} holds a private string of the data ({kinds}), and the run's config goes to every logger "
        "it starts (the W&B run's config, logs/csv/*/hparams.yaml); choose a value that holds no patient "
        "id, header value or path"
    )


def _warn_of_site_words_and_short_ids(encoded: Mapping[str, bytes], strings: PrivateStrings) -> None:
    """Warn (the job's log and the console: the key and the kind, never the string) of a name holding a
    distinctive word of the site's header values or a patient id too short for the artifact search
    (:func:`~gastrodistill.anonymity.text_check.name_warning_strings`), or a long patient id inside a word
    (:func:`~gastrodistill.anonymity.text_check.embedded_patient_ids`: ``pt4471902``): such a name may
    name the site or a patient in every shared card, but ordinary names hold such words and numbers too."""
    from gastrodistill.sharing.card import find_strings

    suspects = name_warning_strings(strings)
    found: dict[str, set[str]] = {}
    for key, i in find_strings(encoded, suspects.values):
        found.setdefault(key, set()).add(suspects.kinds[i])
    ids = [pid.lower() for pid in embedded_patient_ids(strings)]
    for key, blob in encoded.items():  # an id as a token of its own was refused before: here, inside a word
        text = blob.decode("utf-8").lower()
        if any(pid in text for pid in ids):
            found.setdefault(key, set()).add("a patient_id inside a word")
    for key, kinds in found.items():
        log.warning(
            "%s holds %s of the data; it goes into what this run logs and shares (for experiment_name and "
            "set names, every artifact's card): if it names the site or a patient, choose another",
            key,
            ", ".join(sorted(kinds)),
        )


def _what_it_names(key: str) -> str:
    """What a :func:`logged_names` key names, for the refusal's message."""
    if key.split(":")[0] in SET_NAME_KEYS:  # logged_names' "audit.sets: set name 1"
        return (
            "a set's name goes into every logged metric's name, the results table and the set's artifact "
            f"card (e.g. {key.split(':')[0]}={{soft: ...}})"
        )
    return "it names the logged W&B run"


def card_fields_from_config(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    name: str,
    evaluation: Mapping[str, Any] | None = None,
    anonymity: Mapping[str, Any] | None = None,
    distilled: DistilledSet | None = None,
    standard_lr: float | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Card fields of one distilled set: classes, normalisation, architecture, recipe (path-free), metrics.

    With ``distilled``, the card describes the set: its recorded normalisation and architecture (the
    current config's model only for a set that records none) and its label mode (``distill.mode`` of the
    recipe; one config distils both modes). ``recipe``: the distillation settings and seed the set was
    made with (:func:`set_recipe`); without it the card's ``training_recipe.distill`` and ``seed`` come
    from ``cfg``. ``standard_lr``: the standard-schedule learning rate the evaluation chose for this set on
    validation patients; it replaces ``eval.standard.lr`` in the card's recipe, so a receiving site trains
    with the rate behind the card's numbers."""
    data_target = str(cfg.data.get("_target_", "data")).rsplit(".", 1)[-1]
    names = list(datamodule.class_names)
    positive = cfg.get("eval", {}).get("patient", {}).get("positive_class") if "eval" in cfg else None
    if recipe:
        distill_recipe = dict(recipe["distill"])
    else:
        distill_recipe = public_config(cfg.distill, at="distill") if "distill" in cfg else {}
    fields: dict[str, Any] = {
        "name": str(name),
        "description": card_description(name, data_target, cfg.experiment_name),
        "dataset": data_target,
        "class_names": names,
        "mean": [float(v) for v in (getattr(distilled, "mean", None) or datamodule.mean)],
        "std": [float(v) for v in (getattr(distilled, "std", None) or datamodule.std)],
        "architecture": getattr(distilled, "model_config", None) or public_config(cfg.model),
        "training_recipe": {
            "distill": distill_recipe,
            "replay": _replay_text(cfg, distilled),
            "standard": public_config(cfg.eval.standard) if "eval" in cfg and "standard" in cfg.eval else {},
            # the replay's augmentation (eval.replay_augment; null: the exact replay of the unroll)
            "replay_augment": _replay_augment(cfg),
            "seed": int(recipe["seed"]) if recipe else int(cfg.seed),
        },
        "source_hash": datamodule.source_hash(),
    }
    if distilled is not None and fields["training_recipe"]["distill"]:
        fields["training_recipe"]["distill"]["mode"] = str(distilled.mode)
    if standard_lr is not None and fields["training_recipe"]["standard"]:
        fields["training_recipe"]["standard"]["lr"] = float(standard_lr)
        fields["training_recipe"]["standard_lr_source"] = "chosen on validation patients from eval.lr_grid"
    if positive in names:
        fields["positive_class"] = positive
    if evaluation:
        fields["evaluation"] = _numbers(evaluation)
    if anonymity:
        fields["anonymity"] = _numbers(anonymity)
    # The verdict travels with the set: a pass only when the audit's positive controls were flagged.
    fields["anonymity_verdict"] = anonymity_verdict(anonymity) if anonymity else NOT_AUDITED
    return fields


def publish_artifact(
    cfg: DictConfig,
    datamodule: ImageDataModule,
    name: str,
    distilled: DistilledSet,
    out_dir: str | os.PathLike,
    evaluation: Mapping[str, Any] | None = None,
    anonymity: Mapping[str, Any] | None = None,
    archive: bool | None = None,
    standard_lr: float | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write the shareable artifact of ``distilled``; aborts if an id, header value or path would leak.
    ``standard_lr``: the evaluation's chosen standard-schedule lr for the set; ``recipe``: the settings it
    was distilled with (:func:`set_recipe`; see :func:`card_fields_from_config` for both)."""
    acfg = cfg.audit.artifact
    strings = config_private_strings(cfg, datamodule)
    from gastrodistill.evaluation.checks import check_distilled_set

    check_distilled_set(name, distilled, datamodule)
    fields = card_fields_from_config(
        cfg,
        datamodule,
        name,
        evaluation,
        anonymity,
        distilled=distilled,
        standard_lr=standard_lr,
        recipe=recipe,
    )
    return save_artifact(
        out_dir,
        distilled,
        fields,
        forbidden_strings=strings.values,
        forbidden_kinds=strings.kinds,
        archive=bool(acfg.archive) if archive is None else archive,
        grid_max=int(acfg.grid_max),
    )
