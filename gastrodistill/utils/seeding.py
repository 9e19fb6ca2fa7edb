"""Explicit, derived seeds: every random stream is a function of the config seed and named integers."""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily: the patch-store builder and generator do not need it
    import torch


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from a base seed and any indices (step, rank, network index, ...)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def torch_generator(*parts: int | str, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded by :func:`derive_seed` of ``parts``."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(*parts))
    return gen


def numpy_rng(*parts: int | str) -> np.random.Generator:
    """A numpy generator seeded by :func:`derive_seed` of ``parts``."""
    return np.random.default_rng(derive_seed(*parts))


def seed_everything(seed: int) -> None:
    """Seed the global generators (for libraries that use them); our own code uses derived generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - seeds third-party code that uses the legacy global RNG
    torch.manual_seed(seed)
