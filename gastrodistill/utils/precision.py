"""Training precisions by Lightning's names, for the loops that run outside Lightning's Trainer.

The distillation's unroll, the evaluation's standard schedule and the anonymity audit's shadow networks
train by hand; they name their precision as Lightning does (``32-true``, ``bf16-mixed``) and enter the
matching ``torch.autocast`` through :func:`precision_autocast`.

bfloat16 autocast pays only on a processor that computes bfloat16 itself. On an x86 CPU without
AVX512-BF16 or AMX (AVX2 only, say) oneDNN converts every operand and the same training step takes
about 5x as long as in float32 (`benchmarks/bench_precision.py`). The CPU preset therefore chooses by
the machine, through the config resolver ``${if_cpu_bf16:A,B}`` (:func:`register_resolver`): ``A`` where
:func:`cpu_has_native_bfloat16`, else ``B``. A run's saved ``config.yaml`` holds the value chosen.
"""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import OmegaConf

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


#: The config resolver that picks a value by the CPU's bfloat16 support (:func:`if_cpu_bf16`).
CPU_BF16_RESOLVER = "if_cpu_bf16"


def cpu_has_native_bfloat16() -> bool:
    """Whether this machine's CPU computes bfloat16 natively: x86 AVX512-BF16 or AMX tiles, as torch's
    CPU dispatch reports them (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``).
    False where torch cannot tell (another architecture, or a torch without these probes)."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def if_cpu_bf16(native: Any, otherwise: Any) -> Any:
    """``native`` on a CPU with native bfloat16 (:func:`cpu_has_native_bfloat16`), else ``otherwise``:
    the ``${if_cpu_bf16:bf16-mixed,32-true}`` of a config (the CPU preset's training precisions and its
    bfloat16 scoring, ``${if_cpu_bf16:true,false}``)."""
    return native if cpu_has_native_bfloat16() else otherwise


def register_resolver() -> None:
    """Register ``${if_cpu_bf16:A,B}`` with OmegaConf (idempotent); done wherever the config tree is
    composed (``gastrodistill.utils.config_tree``)."""
    if not OmegaConf.has_resolver(CPU_BF16_RESOLVER):
        OmegaConf.register_new_resolver(CPU_BF16_RESOLVER, if_cpu_bf16)
