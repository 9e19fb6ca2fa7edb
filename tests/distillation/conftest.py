"""Fixtures for the distillation tests: one torch thread, a tiny separable data module, tiny configs."""

from __future__ import annotations

import pytest
import torch
from _distill_helpers import TINY, make_tiny_splits

from gastrodistill.data.base import TensorImageDataModule


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks gain nothing from threads, and OpenMP spin-waits slow them badly on a busy 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_dm() -> TensorImageDataModule:
    return TensorImageDataModule(splits=make_tiny_splits(), class_names=["a", "b", "c"])


@pytest.fixture
def tiny_overrides() -> list[str]:
    return list(TINY)
