"""Model tests run on one torch thread (OpenMP spin-waits make tiny ops crawl on a busy 2-core box)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
