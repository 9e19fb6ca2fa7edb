"""Pre-flight check of the ``distill`` config section: every value that can be checked without data.

The distill stage checks its values as it builds the distilled set and the module; those checks come
after data generation and the patch store (a minute on the CPU preset, hours on a real collection).
:func:`check_distill_config` runs the same check functions on the config alone, so
``gastrodistill-reproduce`` and ``gastrodistill-distill`` refuse a bad value before any data is touched.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gastrodistill.distillation.distilled_set import MODES, DistilledSetError, inverse_softplus
from gastrodistill.distillation.distribution_matching import check_matching_config
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.inner_loop import (
    check_backend,
    check_chunk,
    check_momentum,
    check_window,
    is_integer,
)
from gastrodistill.distillation.module import check_precision
from gastrodistill.distillation.real_batches import REAL_DATA_MODES
from gastrodistill.distillation.texture_matching import check_texture_config
from gastrodistill.models.init import check_scheme
from gastrodistill.utils.values import check_switch

#: How the images start (``distill.image_init``); ``run.build_distilled_set`` implements them.
IMAGE_INITS = ("noise", "real", "class_mean")


def _integer(d: Mapping[str, Any], key: str, low: int, default: int | None = None) -> int:
    raw = d.get(key, default)
    if not is_integer(raw) or raw < low:
        raise DistillConfigError(f"distill.{key} must be an integer >= {low}, got {raw!r}")
    return int(raw)


def _number(d: Mapping[str, Any], key: str, default: float | None = None, zero_ok: bool = False) -> float:
    raw = d.get(key, default)
    ok = not isinstance(raw, bool) and isinstance(raw, (int, float)) and math.isfinite(raw)
    if not ok or raw < 0 or (raw == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise DistillConfigError(f"distill.{key} must be a finite number {bound}, got {raw!r}")
    return float(raw)


def _flag(d: Mapping[str, Any], key: str, default: bool = False) -> bool:
    raw = d.get(key, default)
    check_switch(raw, f"distill.{key}", DistillConfigError)
    return raw


def _built(node: Any, key: str, nullable: bool = False) -> Any:
    """``instantiate(node)``; the object's own error when it refuses a value, else one naming ``key`` (and,
    for a ``nullable`` key, that null turns it off)."""
    import hydra
    from hydra.errors import InstantiationException

    if not isinstance(node, Mapping) or "_target_" not in node:
        raise DistillConfigError(
            f"distill.{key} must be a {{_target_: ...}} node (see conf/distill/soft.yaml)"
            f"{' or null for none' if nullable else ''}, got {node!r}"
        )
    try:
        return hydra.utils.instantiate(node)
    except InstantiationException as e:
        if isinstance(e.__cause__, DistillConfigError):
            raise e.__cause__ from None
        raise DistillConfigError(f"distill.{key} cannot be built: {' '.join(str(e).split())}") from None


def _check_outer_optimizer(d: Mapping[str, Any]) -> None:
    """Build the outer optimiser and scheduler on a dummy parameter and take one step, as the stage will."""
    import torch

    if d.get("optimizer") is None:
        return
    factory = _built(d["optimizer"], "optimizer")
    try:
        opt = factory([torch.zeros(1, requires_grad=True)], lr=0.01)
    except Exception as e:  # noqa: BLE001 - whatever the optimiser refuses, say so with its key
        raise DistillConfigError(f"distill.optimizer cannot build an optimiser: {e}") from None
    if not d.get("scheduler"):
        return
    gamma = d["scheduler"].get("gamma") if isinstance(d["scheduler"], Mapping) else None
    if gamma is not None and not (
        isinstance(gamma, (int, float)) and not isinstance(gamma, bool) and gamma > 0
    ):
        raise DistillConfigError(f"distill.scheduler.gamma must be a number > 0, got {gamma!r}")
    factory = _built(d["scheduler"], "scheduler", nullable=True)
    try:
        sched = factory(opt)
        opt.step()
        sched.step()
    except Exception as e:  # noqa: BLE001
        raise DistillConfigError(
            f"distill.scheduler cannot run ({type(e).__name__}: {e}); check its values "
            "(e.g. distill.scheduler.step_size >= 1)"
        ) from None


def _check_dsa(node: Any) -> None:
    """Build ``distill.dsa`` and augment a small batch with it, as the distiller does."""
    import torch

    augment = _built(node, "dsa", nullable=True)
    side = max(8, int(getattr(augment, "shift_px", 0)) + 1)  # a shift needs images wider than it
    try:
        out = augment(torch.zeros(2, 1, side, side), torch.Generator().manual_seed(0))
    except Exception as e:  # noqa: BLE001
        raise DistillConfigError(
            f"distill.dsa must augment a batch as augment(x, generator) -> x ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, 1, side, side):
        raise DistillConfigError("distill.dsa must return a batch of the shape it was given")


@functools.cache
def distill_keys() -> frozenset[str]:
    """The distiller's options: the top-level keys of ``conf/distill/soft.yaml`` (every other distill
    option file and preset sets a subset of them)."""
    from omegaconf import OmegaConf

    from gastrodistill.utils.config_tree import CONF_DIR

    return frozenset(map(str, OmegaConf.load(Path(CONF_DIR) / "distill" / "soft.yaml").keys()))


def check_distill_config(d: Mapping[str, Any], mode: str | None = None) -> None:
    """Refuse a ``distill`` section that the stage would refuse, or that would run without meaning.

    ``mode`` (the mode about to run; ``gastrodistill-reproduce`` runs ``reproduce.distill_modes``) is
    checked as well as ``d.mode``. Checks: no key outside :func:`distill_keys` (a ``+distill.x``
    that nothing reads); ``image_init``; ``ipc``, ``steps``, ``epochs``,
    ``outer_steps``, ``batch_real``, ``inner_nets_per_step``, ``log_every``, ``check_every`` (integers
    >= 1), ``grid_every``, ``ckpt_every`` (integers >= 0); ``lr_init``, ``temperature`` (> 0);
    ``lr_images``, ``lr_labels``, ``lr_lrs``, ``class_mean_noise_std``, ``label_init_scale`` (>= 0);
    the flags ``checkpoint``, ``known_init``, ``channels_last``, ``batch_real_per_rank``,
    ``debug_record`` (true/false); ``init``; ``backend`` with ``checkpoint``; ``inner_momentum``;
    ``window`` against T = steps x epochs; ``outer_chunk``; ``grad_clip``/``grad_clip_ema`` (> 0 or
    null) and ``grad_clip_ema_decay``; ``precision``; ``real_data``; ``distribution_matching``;
    ``texture_matching`` (its ``bridges`` below the images per class of a soft set, its
    ``cluster_max_patches`` not below them when it clusters); the outer
    ``optimizer`` and ``scheduler`` (built on a dummy parameter and
    stepped once); ``dsa`` (built, and run on a small batch). Raises :class:`DistillConfigError` naming
    the key and what to write.
    """
    unknown = sorted(set(map(str, d.keys())) - distill_keys())
    if unknown:
        near = difflib.get_close_matches(unknown[0], sorted(distill_keys()), n=1)
        hint = f" (did you mean distill.{near[0]}?)" if near else ""
        raise DistillConfigError(
            f"distill.{unknown[0]} is not an option of the distiller{hint}: nothing would read it. The "
            "options are the keys of conf/distill/soft.yaml; set one without '+'."
        )
    for value in (d.get("mode", "soft"), mode):
        if value is not None and value not in MODES:
            raise DistillConfigError(f"distill.mode must be one of {MODES}, got {value!r}")
    if d.get("image_init", "noise") not in IMAGE_INITS:
        raise DistillConfigError(
            f"distill.image_init must be one of {IMAGE_INITS}, got {d.get('image_init')!r}"
        )
    for key in ("ipc", "steps", "epochs", "outer_steps", "batch_real"):
        _integer(d, key, 1)
    for key in ("inner_nets_per_step", "log_every", "check_every"):
        _integer(d, key, 1, default=1)
    for key in ("grid_every", "ckpt_every"):
        _integer(d, key, 0, default=0)
    try:
        inverse_softplus(_number(d, "lr_init", 0.02))
    except DistilledSetError:
        raise DistillConfigError(
            f"distill.lr_init must be a finite number > 0, got {d.get('lr_init')!r}"
        ) from None
    _number(d, "temperature", 1.0)
    for key, default in (
        ("lr_images", 0.01),
        ("lr_labels", 0.01),
        ("lr_lrs", 0.01),
        ("class_mean_noise_std", 0.2),
        ("label_init_scale", 3.0),
    ):
        _number(d, key, default, zero_ok=True)
    for key in ("checkpoint", "known_init", "channels_last", "debug_record"):
        _flag(d, key)
    _flag(d, "batch_real_per_rank", True)
    try:
        check_scheme(str(d.get("init", "xavier")))
    except ValueError as e:
        raise DistillConfigError(f"distill.init (model.init unless set): {e}") from None
    check_backend(d.get("backend", "func"), d.get("checkpoint", False))
    check_momentum(d.get("inner_momentum", 0.0) or 0.0)
    check_window(d.get("window"), int(d["steps"]) * int(d["epochs"]))
    check_chunk(d.get("outer_chunk"))
    for key in ("grad_clip", "grad_clip_ema"):
        if d.get(key) is not None:
            _number(d, key)
    if _number(d, "grad_clip_ema_decay", 0.9, zero_ok=True) >= 1.0:
        raise DistillConfigError(
            f"distill.grad_clip_ema_decay must be in [0, 1), got {d['grad_clip_ema_decay']!r}"
        )
    if d.get("resident_max_bytes") is not None:  # -1 meant "never resident" silently, as 0 does
        _number(d, "resident_max_bytes", zero_ok=True)
    if d.get("prefetch") is not None:  # -1 was silently 1
        _integer(d, "prefetch", 1)
    check_precision(d.get("precision", "32-true"))
    if d.get("real_data", "items") not in REAL_DATA_MODES:
        raise DistillConfigError(
            f"distill.real_data must be one of {REAL_DATA_MODES}, got {d.get('real_data')!r}"
        )
    check_matching_config(d.get("distribution_matching"))
    tmc = check_texture_config(d.get("texture_matching"))
    per_class = int(d["ipc"]) * int(d["steps"])
    if tmc["bridges"] and tmc["bridges"] >= per_class and (mode or d.get("mode", "soft")) == "soft":
        raise DistillConfigError(
            f"distill.texture_matching.bridges={tmc['bridges']} would leave each class no image of its own "
            f"texture (distill.ipc x distill.steps = {per_class} images per class): set it below {per_class}"
        )
    if tmc["cluster_classes"] and tmc["cluster_max_patches"] < per_class:
        raise DistillConfigError(
            f"distill.texture_matching.cluster_max_patches={tmc['cluster_max_patches']} would leave a "
            f"clustered class fewer patches than its {per_class} images (distill.ipc x distill.steps), one "
            f"cluster each: set it to at least {per_class}"
        )
    _check_outer_optimizer(d)
    if d.get("dsa") is not None:
        _check_dsa(d["dsa"])
