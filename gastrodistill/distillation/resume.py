"""Which checkpoint ``distill.resume`` means: ``last``, a run folder, or a checkpoint file.

Checkpoints live in ``<run>/<mode>/checkpoints/`` (``gastrodistill-distill``) or
``<run>/distill/<mode>/checkpoints/`` (``gastrodistill-reproduce``) and are named ``step000123.ckpt``
and ``last.ckpt`` (no ``=``: a path can be passed unquoted as a Hydra override). Every run gets a new,
timestamped folder, so ``last`` searches the earlier runs of the same experiment
(``distill.resume_root``, by default ``<root>/outputs/<experiment_name>``) and the current run folder for
checkpoints of the same label mode and takes the newest. The checkpoint also records its mode and
:class:`~gastrodistill.distillation.module.DistillModule` refuses one of the other mode, so soft and
hard runs never share a checkpoint.

Before any data is read, :func:`check_resume_checkpoint` opens the chosen file once (tensors and plain
values only, never arbitrary pickled objects) and refuses a damaged or foreign file, a checkpoint of the
other label mode, and one written with other settings that shape the run (:data:`RUN_KEYS`, ``seed`` and
all of ``model``; recorded in the checkpoint by :func:`run_settings`). Once the data is read,
:func:`check_resume_data` refuses a checkpoint distilled from another collection (the data module's
``source_hash``, recorded beside the settings).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

from gastrodistill.data.zca import zca_of_node
from gastrodistill.distillation.distilled_set import MODES
from gastrodistill.utils.run_info import CONFIG_FILE

CKPT_DIR = "checkpoints"
CKPT_FILENAME = "step{step:06d}"  # ModelCheckpoint template (auto_insert_metric_name=False)


class ResumeError(RuntimeError):
    """A resume was asked for and nothing can be loaded; the message says where it looked and what to pass."""


class OtherModeCheckpoint(ResumeError):
    """The checkpoint ``path`` is the ``saved_mode`` run's, not the ``mode`` run's
    (``gastrodistill-reproduce`` then starts this mode from step 0, as for a mode without a checkpoint)."""

    def __init__(self, message: str, path: Path, saved_mode: str, mode: str) -> None:
        super().__init__(message)
        self.path, self.saved_mode, self.mode = path, saved_mode, mode


def _checkpoints_of(folder: Path, mode: str) -> list[Path]:
    """Every ``*.ckpt`` under ``folder`` that sits in a ``<mode>/checkpoints/`` folder."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.rglob("*.ckpt")
        if p.is_file() and p.parent.name == CKPT_DIR and p.parent.parent.name == mode
    )


def _step_of(path: Path) -> int:
    stem = path.stem
    digits = stem[4:] if stem.startswith("step") else ""
    return int(digits) if digits.isdigit() else -1


def run_folder_of(out: Path) -> Path:
    """The run folder of a mode's output folder ``out`` (``<run>/<mode>`` or ``<run>/distill/<mode>``)."""
    return out.parent.parent if out.parent.name == "distill" else out.parent


def checkpoint_run_folder(ckpt: Path, mode: str) -> Path | None:
    """The run folder a ``mode`` checkpoint was written in (``<run>[/distill]/<mode>/checkpoints/x.ckpt``),
    or None for a checkpoint kept elsewhere (a copied file)."""
    folder = ckpt.parent
    if folder.name != CKPT_DIR or folder.parent.name != mode:
        return None
    return run_folder_of(folder.parent)


def newest(paths: list[Path]) -> Path | None:
    """The most recently written checkpoint (ties: the higher step, then ``last.ckpt``)."""
    if not paths:
        return None
    return max(paths, key=lambda p: (p.stat().st_mtime_ns, _step_of(p), p.name == "last.ckpt"))


#: ``distill.resume`` values that search for the checkpoint (:func:`resolve_resume`): ``last`` stops with
#: :class:`ResumeError` when none is found; ``auto`` then starts from step 0 (:func:`starts_when_none`), so
#: that one command serves the first start and every later one (a sweep run again after a stop, whose jobs
#: had not all started; a SLURM job requeued before or after its first checkpoint).
SEARCHED_SPECS = ("last", "auto")


def starts_when_none(spec: Any) -> bool:
    """Whether the ``distill.resume`` value ``spec`` starts from step 0 when nothing is found to continue
    (``auto``), instead of stopping with :class:`ResumeError` (``last``, a folder, a file)."""
    return str(spec).strip() == "auto"


def resolve_resume(
    spec: str | os.PathLike | None,
    mode: str,
    output_dir: str | os.PathLike,
    resume_root: str | os.PathLike | None = None,
    settings: dict[str, Any] | None = None,
    outer_steps: int | None = None,
) -> Path | None:
    """The checkpoint to resume the ``mode`` run from, or None when ``spec`` is empty or nothing matches.

    ``spec``: ``None``/``""`` (no resume), ``"last"`` or ``"auto"`` (:data:`SEARCHED_SPECS`: the newest
    ``mode`` checkpoint under
    ``output_dir``; when it holds none, the furthest (then newest) under ``resume_root`` that this run
    can continue: written with ``settings`` (:func:`run_settings` of this run, its start keys included;
    ``None``: the newest of any) at an outer step at most ``outer_steps``, so that the jobs of a sweep,
    each resumed with ``last``, take their own runs' checkpoints and not the newest of another job), a
    run folder (newest ``mode`` checkpoint under it) or a ``.ckpt`` file (used as it is when it is of
    this mode, or when its folder does not tell; a checkpoint in ``<run>/<other mode>/checkpoints/``
    stands for its run folder, searched for a ``mode`` checkpoint). Raises :class:`ResumeError` when
    ``spec`` is a path that does not exist or ``mode`` is unknown.
    """
    if spec is None or str(spec).strip() in ("", "null", "None"):
        return None
    if mode not in MODES:
        raise ResumeError(f"unknown distillation mode {mode!r}; expected one of {MODES}")
    text = str(spec).strip()
    if text in SEARCHED_SPECS:
        own = _checkpoints_of(Path(output_dir), mode)
        if own:
            return newest(own)
        found = _checkpoints_of(Path(resume_root), mode) if resume_root is not None else []
        if settings is None:
            return newest(found)
        steps = {p: _continued_step(p, settings, outer_steps) for p in found}
        matching = [p for p, step in steps.items() if step is not None]
        # the furthest run of these settings (not a sibling's earlier step), then the newest
        return max(
            matching, key=lambda p: (steps[p], p.stat().st_mtime_ns, p.name == "last.ckpt"), default=None
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return newest(_checkpoints_of(path, mode))
    if path.is_file():
        parent_mode = path.parent.parent.name if path.parent.name == CKPT_DIR else None
        if parent_mode in MODES and parent_mode != mode:
            run_folder = path.parent.parent.parent
            return newest(_checkpoints_of(run_folder, mode))
        return path
    raise ResumeError(
        f"distill.resume={text}: no such checkpoint file or run folder; pass 'last', 'auto', a run folder "
        f"(outputs/<experiment>/runs/<time>) or a .ckpt file"
    )


def _recorded_settings(path: Path) -> tuple[dict[str, Any] | None, int]:
    """The settings (:func:`run_settings`) the checkpoint at ``path`` records, else those of its run's
    ``config.yaml`` (an older version's checkpoint), else None; and its outer step. Only the record and
    step counter are read (the tensors are memory-mapped, not loaded; a file in ``torch.save``'s legacy,
    non-zip format cannot be memory-mapped and is read whole). Raises what ``torch.load`` raises."""
    import torch

    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    record = ckpt.get("gastrodistill") if isinstance(ckpt, dict) else None
    saved = record.get("settings") if isinstance(record, dict) else None
    saved = saved if isinstance(saved, dict) else _saved_config_settings(path)
    return saved, checkpoint_step(ckpt)


def _continued_step(path: Path, settings: dict[str, Any], outer_steps: int | None) -> int | None:
    """The outer step of the checkpoint at ``path`` when the run with ``settings`` (:func:`run_settings`)
    could continue it, else None: it reads as a checkpoint, records the same settings, start included (or
    records none: an older version's), and is at most at ``outer_steps``."""
    try:
        saved, step = _recorded_settings(path)
    except Exception:  # noqa: BLE001 - another run's unreadable file is not this run's to resume
        return None
    if saved and settings_differences(saved, settings):
        return None
    start: list[str] = []
    if isinstance((saved or {}).get("start"), dict) and isinstance(settings.get("start"), dict):
        start = _start_differences(_start_compared(saved["start"]), _start_compared(settings["start"]))
    return step if not start and (outer_steps is None or step <= int(outer_steps)) else None


def missing_message(
    spec: str, modes: list[str], output_dir: str | os.PathLike, resume_root: str | None
) -> str:
    """The error text for a resume that found nothing (names the modes and the folders searched: the run
    folder or checkpoint passed, or for ``last`` this run's folder and ``resume_root``). A checkpoint file
    of another label mode (in ``<run>/<other mode>/checkpoints/``) is named as such, with how to continue
    that run instead."""
    if str(spec).strip() in SEARCHED_SPECS:
        where = f"{output_dir}" + (f" and {resume_root}" if resume_root else "")
        skipped = sum(len(_checkpoints_of(Path(resume_root), m)) for m in modes) if resume_root else 0
        if skipped:
            where += (
                f" that this run can continue ({skipped} there were written with other settings (seed, "
                "model, distill.*), are past distill.outer_steps or cannot be read, say by another job of a "
                "sweep; pass a run folder to resume it and be told what differs)"
            )
    else:
        path = Path(str(spec).strip()).expanduser()
        where = f"{path}" if path.is_dir() else f"the run folder of {path}"
        other = path.parent.parent.name if path.is_file() and path.parent.name == CKPT_DIR else None
        if other in MODES and other not in modes:
            run_folder = path.parent.parent.parent
            switch = f"distill.mode={other}" if len(modes) == 1 else f"reproduce.distill_modes=[{other}]"
            label = " or ".join(modes)
            return (
                f"distill.resume={spec} is a checkpoint of the {other}-label run and this is the "
                f"{label}-label run; its run folder {run_folder} holds no {label}-label checkpoint. Set "
                f"{switch} to continue the {other}-label run, pass a checkpoint or run folder of a "
                f"{label}-label run, or drop distill.resume to start the {label}-label run from step 0"
            )
    return (
        f"distill.resume={spec}: no checkpoint of the {' or '.join(modes)}-label run found under {where}. "
        f"Checkpoints are written every distill.ckpt_every outer steps to <run>/<mode>/checkpoints; pass an "
        f"existing run folder or .ckpt file, or drop distill.resume to start from step 0"
    )


#: ``distill.*`` settings that shape every outer step; with ``seed`` and all of ``model`` a resume must
#: keep them (:func:`check_resume_checkpoint`). Every other key may change on resume: ``outer_steps``
#: (extend a run), ``resume``/``resume_root``, the logging, picture, finiteness-check (``check_every``)
#: and checkpoint frequencies, ``debug_record``, how the real batches travel (``real_data``,
#: ``resident_max_bytes``, ``prefetch``), the memory knobs (``checkpoint``, ``outer_chunk``,
#: ``channels_last``) and what only shaped the start, which the checkpoint holds (``image_init``,
#: ``lr_init``, ``label_init_scale``, ``class_mean_noise_std``, ``distribution_matching``,
#: ``texture_matching``). The label mode is recorded and checked on its own.
RUN_KEYS = (
    "ipc",
    "steps",
    "epochs",
    "backend",
    "temperature",
    "init",
    "known_init",
    "inner_nets_per_step",
    "inner_momentum",
    "window",
    "dsa",
    "batch_real",
    "batch_real_per_rank",
    "optimizer",
    "scheduler",
    "lr_images",
    "lr_labels",
    "lr_lrs",
    "grad_clip",
    "grad_clip_ema",
    "grad_clip_ema_decay",
    "precision",
)

#: ``distill.*`` settings that only shape a run's start (the checkpoint holds their result): a resume may
#: change them, but ``resume=last`` continues a checkpoint of another run only when they match (jobs of a
#: sweep over them differ in nothing else). Recorded as ``run_settings(cfg)["start"]``.
START_KEYS = (
    "image_init",
    "lr_init",
    "label_init_scale",
    "class_mean_noise_std",
    "distribution_matching",
    "texture_matching",
)

_UNSET = object()  # a key one side of a comparison does not have


def _plain(value: Any) -> Any:
    """``value`` as plain Python (an OmegaConf node resolved to dicts and lists), as checkpoints store it."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def run_settings(cfg: Any) -> dict[str, Any]:
    """What of the root config ``cfg`` determines a distillation run from any outer step on: ``seed``,
    ``model``, the networks' whitening (``data.zca``, every setting written out) and the ``distill`` keys
    of :data:`RUN_KEYS`, as plain values (nested dicts), so that a
    checkpoint can record them and a resume can be compared with them; and, under ``start``, the
    :data:`START_KEYS`, which a resume may change (:func:`settings_differences` leaves them out) but which
    ``resume=last`` matches when it takes another run's checkpoint."""
    seed = cfg.get("seed")
    if isinstance(seed, str) and seed.strip().lstrip("+-").isdigit():
        seed = int(seed)
    d = cfg.get("distill") or {}
    data = cfg.get("data") or {}
    return {
        "seed": seed,
        "model": _plain(cfg.get("model")) or {},
        "zca": _zca_run_settings(data),  # the networks' whitening (None: off, as before the option)
        "distill": {k: _plain(d.get(k)) for k in RUN_KEYS if k in d},
        "start": {k: _without_progress(_plain(d.get(k))) for k in START_KEYS if k in d},
    }


def _zca_run_settings(data: Any) -> dict[str, Any] | None:
    """``data.zca``'s settings with its defaults written out and the seed of its draw of training images
    (``data.seed``), or ``None`` when off (as in the evaluation's records)."""
    zca = zca_of_node(data.get("zca"))
    return zca.record(data.get("seed")) if zca is not None else None


def _without_progress(value: Any) -> Any:
    """``value`` without its ``progress`` keys (how a stage shows itself, not what it computes)."""
    if isinstance(value, dict):
        return {k: _without_progress(v) for k, v in value.items() if k != "progress"}
    return value


def _show(value: Any) -> str:
    if value is _UNSET:
        return "unset"
    if value is None or isinstance(value, bool | dict | list):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def _differences(key: str, saved: Any, ours: Any, out: list[str]) -> None:
    if isinstance(saved, dict) and isinstance(ours, dict):
        for k in sorted(set(saved) | set(ours), key=str):
            _differences(f"{key}.{k}", saved.get(k, _UNSET), ours.get(k, _UNSET), out)
    elif saved != ours:
        out.append(f"{key} is {_show(saved)} there but {_show(ours)} here")


def settings_differences(saved: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """``"<key> is <saved> there but <ours> here"`` for every setting of :func:`run_settings` that differs.

    ``model`` is compared key by key (a key only one side has counts), ``data.zca`` always (a checkpoint
    without it was written without whitening); ``seed`` and each ``distill`` key
    only when both sides record it, so a checkpoint of an older version, which lacks a newer option, still
    resumes.
    """
    out: list[str] = []
    if "seed" in saved and "seed" in ours:
        _differences("seed", saved["seed"], ours["seed"], out)
    if isinstance(saved.get("model"), dict) and isinstance(ours.get("model"), dict):
        _differences("model", saved["model"], ours["model"], out)
    _differences("data.zca", saved.get("zca"), ours.get("zca"), out)  # absent (older checkpoints): off
    saved_d, ours_d = saved.get("distill") or {}, ours.get("distill") or {}
    for k in RUN_KEYS:
        if k in saved_d and k in ours_d:
            _differences(f"distill.{k}", saved_d[k], ours_d[k], out)
    return out


def with_checkpoint_start(cfg: Any, path: str | os.PathLike) -> tuple[Any, list[str]]:
    """``cfg`` with the :data:`START_KEYS` the checkpoint at ``path`` was started with (a resumed run keeps
    the images, labels and rates the checkpoint holds, so those settings, not this run's, shaped its set),
    and ``"distill.<key> is <theirs> there but <ours> here"`` for each one this run gives differently.
    Only what the checkpoint records is compared and replaced (an older version's checkpoint lacks newer
    keys, and one that records no settings gives ``cfg`` unchanged); a ``progress`` key (how a stage shows
    itself) stays this run's. ``cfg`` itself (no copy) when nothing differs. The checkpoint has been
    checked already (:func:`check_resume_checkpoint`)."""
    from omegaconf import DictConfig, OmegaConf

    saved, _ = _recorded_settings(Path(path))
    theirs = (saved or {}).get("start")
    if not isinstance(theirs, dict):
        return cfg, []
    compared = _start_compared(theirs)
    ours = _shaped_like(_start_compared(run_settings(cfg)["start"]), compared)
    said = _start_differences(compared, ours)
    if not said:
        return cfg, []
    recorded = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    for key, value in compared.items():
        if value == ours.get(key, _UNSET):  # the same start, however written: this run's record stays
            continue
        node = recorded.distill.get(key)
        if value is None:  # off: as the checkpoint wrote it (absent: null), none of this run's keys beside
            node, value = None, theirs.get(key)
        both = isinstance(value, dict) and isinstance(node, DictConfig)
        recorded.distill[key] = OmegaConf.merge(node, value) if both else value
    return recorded, said


def with_sets_start(cfg: Any, sections: list[dict[str, Any]]) -> list[str]:
    """Put into ``cfg.distill`` (in place) the :data:`START_KEYS` that the distilled sets a study uses record
    where they differ from ``cfg``'s (a resumed set keeps its checkpoint's start,
    :func:`with_checkpoint_start`; a set an earlier command distilled is used as it was made), so that the
    study's own records (its ``config.yaml``, its evaluation's and audit's, its W&B runs) name the start
    that shaped its sets.
    ``sections``: the ``distill`` section of each set's ``config.yaml``. Returns the keys put in; a key
    the sets record differently from one another stays ``cfg``'s (each set's record is its own)."""
    from omegaconf import open_dict

    starts = [{k: _plain(s[k]) for k in START_KEYS if k in s} for s in sections]
    if not starts:
        return []
    compared = [_start_compared(s) for s in starts]
    theirs, ours = compared[0], _start_compared(run_settings(cfg)["start"])
    agreed = [k for k in theirs if all(c.get(k, _UNSET) == theirs[k] for c in compared[1:])]
    keys = [k for k in agreed if theirs[k] != ours.get(k, _UNSET)]
    with open_dict(cfg):
        for key in keys:
            cfg.distill[key] = starts[0].get(key)  # absent: a matching phase off
    return keys


#: The :data:`START_KEYS` of a matching phase: off (absent, null, ``{}`` or ``steps: 0``) is one setting
#: whatever the section's other keys say.
MATCHING_KEYS = ("distribution_matching", "texture_matching")


def _start_compared(start: dict[str, Any]) -> dict[str, Any]:
    """``start`` (``run_settings(cfg)["start"]`` or a checkpoint's record of it) as it shapes a set's start:
    each matching section (:data:`MATCHING_KEYS`) that is off becomes None, and one that is on has its
    defaults written out (less ``progress``) and, for texture matching, the values that change nothing given
    the others at their defaults (:func:`~.texture_matching.inert_keys`), so ``null`` and ``{steps: 0}``, a
    default left out and written in, or ``bridge_weight`` without bridges, compare equal. A section its
    check refuses (a value of another version) stays as recorded."""
    from gastrodistill.distillation.distribution_matching import check_matching_config
    from gastrodistill.distillation.texture_matching import TEXTURE_DEFAULTS, check_texture_config, inert_keys

    checks = dict(zip(MATCHING_KEYS, (check_matching_config, check_texture_config), strict=True))
    out = dict(start)
    for key, check in checks.items():
        try:
            values = check(out.get(key))  # absent: off (the default; a version before the option)
        except ValueError:  # DistillConfigError: compared as recorded
            continue
        values.pop("progress", None)
        if key == "texture_matching":  # a value that changes nothing given the others compares as its default
            values.update({k: TEXTURE_DEFAULTS[k] for k in inert_keys(values)})
        out[key] = values if values["steps"] > 0 else None
    return out


def _start_differences(theirs: dict[str, Any], ours: dict[str, Any]) -> list[str]:
    """``"distill.<key> is <theirs> there but <ours> here"`` for each start setting (:func:`_start_compared`
    values) that differs; a matching phase on one side only reads ``off`` / ``on (steps: N)``, not the
    whole section."""
    out: list[str] = []
    for key in sorted(set(theirs) | set(ours)):
        a, b = theirs.get(key, _UNSET), ours.get(key, _UNSET)
        if key in MATCHING_KEYS and (a is None) != (b is None) and _UNSET not in (a, b):
            out.append(f"distill.{key} is {_switch(a)} there but {_switch(b)} here")
        else:
            _differences(f"distill.{key}", a, b, out)
    return out


def _switch(section: Any) -> str:
    """``off`` for a matching section that is off (None), else ``on (steps: N)``."""
    return "off" if section is None else f"on (steps: {section.get('steps')})"


def _shaped_like(ours: Any, theirs: Any) -> Any:
    """``ours`` cut to the keys of ``theirs``, level by level, where both are dicts."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return {k: _shaped_like(ours[k], theirs[k]) if k in ours else _UNSET for k in theirs}
    return ours


def _unreadable_reason(path: Path, exc: BaseException) -> str:
    """A short, plain reason why ``torch.load`` could not read ``path`` (its own text is cryptic). The file's
    first bytes are read first: a JSON file (an artifact's ``card.json``) also raises an unpickling error,
    which is not about Python objects."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as err:
        return f"it cannot be read: {err.strerror or err}"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return "it is cut short: an incomplete copy, or a write that was interrupted"
    if not head.startswith(b"PK"):
        if head.lstrip()[:1] in (b"{", b"["):
            return "it is a JSON file (an artifact's card.json or a config?), not a PyTorch checkpoint file"
        return "it is not a PyTorch checkpoint file"
    if isinstance(exc, pickle.UnpicklingError):
        return "it holds Python objects other than tensors and plain values, which are never unpickled"
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:120]}" if first else type(exc).__name__


def _crc_problem(path: Path) -> str | None:
    """Why the checkpoint's zip members fail their CRC-32 check (bytes changed after it was written: a bad
    copy or disk), or None; None too for a file that is no zip, which ``torch.load`` then judges."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None
    except Exception:  # noqa: BLE001 - zlib errors inside a member: damaged as well
        return "its compressed data are damaged"
    if bad is not None:
        return f"member {bad!r} fails its CRC check: bytes changed after it was written (a bad copy or disk)"
    return None


def _content_problem(ckpt: Any) -> str | None:
    """Why a loaded object is not a checkpoint :class:`DistillModule` can resume from, or None."""
    if not isinstance(ckpt, dict):
        return f"it holds a {type(ckpt).__name__}, not a Lightning checkpoint"
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        return "it has no state_dict: not a Lightning checkpoint"
    if "distilled.images" not in state:
        keys = [str(k) for k in list(state)[:3]]
        return f"its state_dict has no distilled images, only {keys}{' ...' if len(state) > 3 else ''}"
    if "optimizer_states" not in ckpt or "global_step" not in ckpt:
        return "it has no optimizer state or step counter: a weights-only checkpoint"
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, loaded on the CPU with tensors and plain values only.

    Raises :class:`ResumeError` naming the file, with a short reason, when it cannot be read or is not a
    checkpoint of a distillation run (a truncated copy, another program's file, a pickled object).
    """
    import torch

    path = Path(path)
    problem: str | None = _crc_problem(path)  # torch.load does not check the zip's CRCs: flipped bytes load
    if problem is None:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - whatever the loader says, the file cannot be resumed from
            problem = _unreadable_reason(path, exc)
        else:
            problem = _content_problem(ckpt)
    if problem is not None:
        others = (
            sorted(p for p in path.parent.glob("*.ckpt") if p != path) if path.parent.name == CKPT_DIR else []
        )
        raise ResumeError(
            f"checkpoint {path} is damaged or is not a gastrodistill distillation checkpoint ({problem}); "
            + (  # "drop distill.resume" would be refused beside the stopped run's other checkpoints
                f"resume from another checkpoint of that run, distill.resume={newest(others)} (remove the "
                "damaged file, or it stays the newest), or start from step 0 in a new run folder"
                if others
                else "pass a checkpoint that a distillation run wrote (<run>/<mode>/checkpoints/*.ckpt) or "
                "its run folder, or drop distill.resume to start from step 0"
            )
        )
    return ckpt


def _saved_config_settings(path: Path) -> dict[str, Any] | None:
    """For a checkpoint that does not record its settings (an older version's): those of the resolved
    ``config.yaml`` that its run wrote beside ``checkpoints/`` when it finished, or None."""
    if path.parent.name != CKPT_DIR:
        return None
    saved = path.parent.parent / CONFIG_FILE
    if not saved.is_file():
        return None
    try:
        from omegaconf import OmegaConf

        return run_settings(OmegaConf.load(saved))
    except Exception:  # noqa: BLE001 - a best-effort fallback: an unreadable record checks nothing
        return None


def check_resume_checkpoint(
    path: str | os.PathLike, mode: str, settings: dict[str, Any], outer_steps: int | None = None
) -> dict[str, Any]:
    """Refuse, before any data is read, a checkpoint the ``mode`` run with ``settings`` (:func:`run_settings`
    of this run's config) cannot resume from exactly; returns the loaded checkpoint.

    Raises :class:`ResumeError` (one line naming the file and what to do) when it is damaged or foreign
    (:func:`read_checkpoint`), of the other label mode, written with other settings (each differing key
    with both values), or past ``outer_steps`` (this run's ``distill.outer_steps``; None: not checked): a
    resume continues a run and cannot take it back to an earlier step. Its settings are those recorded in
    it, else its run's ``config.yaml`` (older checkpoints); with neither only the tensor shapes are checked,
    when Lightning loads it.
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    record = ckpt.get("gastrodistill")
    record = record if isinstance(record, dict) else {}
    saved_mode = record.get("mode")
    if saved_mode is not None and saved_mode != mode:
        raise OtherModeCheckpoint(
            f"checkpoint {path} was written by the {saved_mode}-label run and this is the {mode}-label run: "
            f"soft and hard runs never share a checkpoint. Pass a checkpoint of the {mode}-label run, set "
            f"distill.mode={saved_mode} to continue that run, or drop distill.resume to start from step 0",
            path,
            saved_mode,
            mode,
        )
    saved = record.get("settings")
    saved = saved if isinstance(saved, dict) else _saved_config_settings(path)
    differences = settings_differences(saved, settings) if saved else []
    if differences:
        raise ResumeError(
            f"checkpoint {path} was written with other settings than this run ({'; '.join(differences)}): a "
            f"resume continues the same run exactly, so set them to the checkpoint's values (or drop those "
            f"overrides), or drop distill.resume to start a new run from step 0"
        )
    step = checkpoint_step(ckpt)
    if outer_steps is not None and step > int(outer_steps):
        raise ResumeError(
            f"checkpoint {path} is at outer step {step}, past distill.outer_steps={int(outer_steps)}: a "
            f"resume continues a run and cannot take it back to an earlier step. Set "
            f"distill.outer_steps={step} or more, or drop distill.resume to start a new run from step 0"
        )
    return ckpt


def check_resume_data(path: str | os.PathLike, source_hash: str, spec: Any = None) -> None:
    """Refuse to resume from the checkpoint at ``path`` when its run distilled other data than this run's
    (``source_hash``: the data module's :meth:`source_hash`, which a checkpoint records beside its settings
    as ``data_source_hash``). Called once the data is read, before any outer step: a set continued on
    another collection would mix two collections' patients, and an audit against either would check the
    wrong one. A checkpoint of an older version records no hash and is not checked. ``spec``: the
    ``distill.resume`` value, named in the message (``last`` searches every earlier run of the experiment,
    whatever its data).

    Raises :class:`ResumeError` (one line: the file, both hashes' first 12 hex digits and what to do)."""
    path = Path(path)
    record = read_checkpoint(path).get("gastrodistill")
    saved = record.get("data_source_hash") if isinstance(record, dict) else None
    if saved is None or str(saved) == str(source_hash):
        return
    hint = (
        " (distill.resume=last takes the newest checkpoint of this label mode under the experiment's "
        "outputs, whatever data it was distilled from: pass the run folder to continue instead)"
        if str(spec).strip() in SEARCHED_SPECS
        else ""
    )
    raise ResumeError(
        f"checkpoint {path} was distilled from other data than this run reads (data source hash "
        f"{str(saved)[:12]}... there, {str(source_hash)[:12]}... here){hint}: a resume continues the same "
        f"run on the same collection. Point the data settings at the collection that run used (its "
        f"config.yaml beside checkpoints/ names them), or drop distill.resume to start from step 0"
    )


def checkpoint_step(ckpt: dict[str, Any]) -> int:
    """The number of outer steps a loaded checkpoint (:func:`read_checkpoint`) has finished."""
    return int(ckpt["global_step"])
