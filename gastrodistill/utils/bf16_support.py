"""Whether a device computes bfloat16 natively, and the config resolver that chooses by it.

bfloat16 autocast pays only where the hardware computes bfloat16. On an x86 CPU without AVX512-BF16 or
AMX (AVX2 only, or AVX512 without BF16) oneDNN converts every operand, and the CPU preset's training step
took 4.8x and its scoring batch 7x as long as in float32 on an AVX2-only AMD EPYC
(``benchmarks/bench_precision.py``, docs/evaluation.md). ``conf/experiment/cpu.yaml`` therefore sets its
evaluation precisions with ``${if_native_bf16:${eval.device},A,B}``: ``A`` where the device the
evaluation runs on computes bfloat16 (:func:`native_bfloat16`), else ``B``. A run's saved ``config.yaml``
holds the value chosen and ``run_info.json`` the answer (``compute.native_bfloat16``). torch is imported
only when a value is resolved, so that importing the config tree stays light.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

#: The config resolver (:func:`if_native_bf16`).
RESOLVER = "if_native_bf16"


def cpu_has_native_bfloat16() -> bool:
    """Whether this machine's CPU computes bfloat16 natively: x86 AVX512-BF16 or AMX tiles, as torch's
    CPU dispatch reports them (``torch.cpu._is_avx512_bf16_supported``, ``_is_amx_tile_supported``).
    False where these probes are missing or fail, and on other architectures, which are not probed (an
    ARM CPU with bfloat16 instructions is treated as one without)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    try:
        return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)
    except Exception:  # noqa: BLE001 - an unusual platform's probe: float32 is the safe answer
        return False


def native_bfloat16(device: str = "auto") -> bool:
    """Whether ``device`` (``eval.device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:i``) computes bfloat16
    natively. ``auto`` is the device the evaluation picks: CUDA when available, else the CPU. A CUDA
    device answers ``torch.cuda.is_bf16_supported()`` (compute capability 8.0 and newer)."""
    import torch

    name = str(device or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        try:
            return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        except Exception:  # noqa: BLE001 - a CUDA query that fails: float32 is the safe answer
            return False
    return cpu_has_native_bfloat16()


def if_native_bf16(device: Any, native: Any, otherwise: Any) -> Any:
    """``native`` where ``device`` computes bfloat16 natively (:func:`native_bfloat16`), else
    ``otherwise``: the ``${if_native_bf16:${eval.device},bf16-mixed,32-true}`` of a config."""
    return native if native_bfloat16(str(device)) else otherwise


def register_resolver() -> None:
    """Register ``${if_native_bf16:DEVICE,A,B}`` with OmegaConf (idempotent); done once, when the
    ``gastrodistill`` package is imported, so that any code of the project resolves a config holding it
    (one it composes, or one saved unresolved and loaded with ``OmegaConf.load``)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, if_native_bf16)
