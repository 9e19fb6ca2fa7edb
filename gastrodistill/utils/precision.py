"""Training precisions by Lightning's names, for the loops that run outside Lightning's Trainer.

The distillation's unroll, the evaluation's standard schedule and the anonymity audit's shadow networks
train by hand; they name their precision as Lightning does (``32-true``, ``bf16-mixed``) and enter the
matching ``torch.autocast`` through :func:`precision_autocast`.

bfloat16 autocast pays only on a device that computes bfloat16 itself; the CPU preset chooses its
precisions by the device (``${if_native_bf16:...}``, :mod:`gastrodistill.utils.bf16_support`).
"""

from __future__ import annotations

import torch

#: The precisions the hand-written training loops accept (Lightning's names).
PRECISIONS = ("32-true", "bf16-mixed")
#: The short names also accepted (configs written before the project took Lightning's names).
PRECISION_ALIASES = {"32": "32-true", "bf16": "bf16-mixed"}
#: Autocast dtypes of Lightning's mixed-precision names; any other precision trains without autocast.
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}


def precision_autocast(precision: str, device: torch.device | str) -> torch.autocast:
    """Autocast for a Lightning precision name on ``device``: bfloat16 for ``bf16-mixed``, float16 for
    ``16-mixed``, disabled otherwise (weights, optimiser state and the returned loss stay float32)."""
    dtype = AUTOCAST_DTYPES.get(str(precision))
    return torch.autocast(torch.device(device).type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def lightning_precision(value: str | int, key: str) -> str:
    """Lightning's name of a training precision: ``32-true`` or ``bf16-mixed``, the short ``32`` and
    ``bf16`` read as those. Raises ``ValueError`` naming the config ``key`` and the names allowed."""
    name = PRECISION_ALIASES.get(str(value), str(value))
    if name not in PRECISIONS:
        raise ValueError(f"{key} must be one of {list(PRECISIONS)} (or 32, bf16), got {value!r}")
    return name
