"""Pre-flight check of the ``distill`` config section: every value that can be checked without data.

The distill stage checks its values as it builds the distilled set and the module; those checks come
after data generation and the patch store (a minute on the CPU preset, hours on a real collection).
:func:`check_distill_config` runs the same check functions on the config alone, so
``gastrodistill-reproduce`` and ``gastrodistill-distill`` refuse a bad value before any data is touched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from gastrodistill.distillation.distilled_set import MODES, DistilledSetError, inverse_softplus
from gastrodistill.distillation.distribution_matching import check_matching_config
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.inner_loop import check_backend, check_chunk, check_momentum, check_window
from gastrodistill.distillation.module import check_precision
from gastrodistill.distillation.real_batches import REAL_DATA_MODES
from gastrodistill.models.init import check_scheme

#: How the images start (``distill.image_init``); ``run.build_distilled_set`` implements them.
IMAGE_INITS = ("noise", "real", "class_mean")


def _integer(d: Mapping[str, Any], key: str, low: int, default: int | None = None) -> int:
    raw = d.get(key, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise DistillConfigError(f"distill.{key} must be an integer >= {low}, got {raw!r}") from None
    if value != raw or value < low:
        raise DistillConfigError(f"distill.{key} must be an integer >= {low}, got {raw!r}")
    return value


def _positive(d: Mapping[str, Any], key: str, default: float | None = None, zero_ok: bool = False) -> float:
    raw = d.get(key, default)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        bound = ">= 0" if zero_ok else "> 0"
        raise DistillConfigError(f"distill.{key} must be a finite number {bound}, got {raw!r}")
    return value


def check_distill_config(d: Mapping[str, Any], mode: str | None = None) -> None:
    """Refuse a ``distill`` section that the stage would refuse later; ``mode`` overrides ``d.mode``.

    Checks: ``mode``; ``image_init``; ``ipc``, ``steps``, ``epochs``, ``outer_steps``, ``batch_real``,
    ``inner_nets_per_step``, ``log_every``, ``check_every`` (integers >= 1); ``lr_init``, ``temperature``
    (> 0); ``class_mean_noise_std``, ``label_init_scale`` (>= 0); ``init``; ``backend`` with
    ``checkpoint``; ``inner_momentum``; ``window`` against T = steps x epochs; ``outer_chunk``;
    ``grad_clip``/``grad_clip_ema`` (> 0 or null) and ``grad_clip_ema_decay``; ``precision``;
    ``real_data``; ``distribution_matching``; ``dsa`` (built once, as the stage builds it).
    Raises :class:`DistillConfigError` naming the key and what to write instead.
    """
    mode = mode if mode is not None else d.get("mode", "soft")
    if mode not in MODES:
        raise DistillConfigError(f"distill.mode must be one of {MODES}, got {mode!r}")
    if d.get("image_init", "noise") not in IMAGE_INITS:
        raise DistillConfigError(
            f"distill.image_init must be one of {IMAGE_INITS}, got {d.get('image_init')!r}"
        )
    for key in ("ipc", "steps", "epochs", "outer_steps", "batch_real"):
        _integer(d, key, 1)
    for key in ("inner_nets_per_step", "log_every", "check_every"):
        _integer(d, key, 1, default=1)
    try:
        inverse_softplus(float(d.get("lr_init", 0.02)))
    except (DistilledSetError, TypeError, ValueError):
        raise DistillConfigError(
            f"distill.lr_init must be a finite number > 0, got {d.get('lr_init')!r}"
        ) from None
    _positive(d, "temperature", 1.0)
    _positive(d, "class_mean_noise_std", 0.2, zero_ok=True)
    _positive(d, "label_init_scale", 3.0, zero_ok=True)
    try:
        check_scheme(str(d.get("init", "xavier")))
    except ValueError as e:
        raise DistillConfigError(f"distill.init: {e}") from None
    check_backend(d.get("backend", "func"), bool(d.get("checkpoint", False)))
    check_momentum(d.get("inner_momentum", 0.0) or 0.0)
    check_window(d.get("window"), int(d["steps"]) * int(d["epochs"]))
    check_chunk(d.get("outer_chunk"))
    for key in ("grad_clip", "grad_clip_ema"):
        if d.get(key) is not None:
            _positive(d, key)
    if _positive(d, "grad_clip_ema_decay", 0.9, zero_ok=True) >= 1.0:
        raise DistillConfigError(
            f"distill.grad_clip_ema_decay must be in [0, 1), got {d['grad_clip_ema_decay']!r}"
        )
    check_precision(d.get("precision", "32-true"))
    if d.get("real_data", "items") not in REAL_DATA_MODES:
        raise DistillConfigError(
            f"distill.real_data must be one of {REAL_DATA_MODES}, got {d.get('real_data')!r}"
        )
    check_matching_config(d.get("distribution_matching"))
    if d.get("dsa"):
        import hydra
        from hydra.errors import InstantiationException

        try:
            hydra.utils.instantiate(d["dsa"])  # the augmentation checks its own values (distill.dsa.<key>)
        except InstantiationException as e:
            if isinstance(e.__cause__, DistillConfigError):
                raise e.__cause__ from None
            raise DistillConfigError(f"distill.dsa cannot be built: {' '.join(str(e).split())}") from None
