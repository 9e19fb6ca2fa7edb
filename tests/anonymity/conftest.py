"""Fixtures of the anonymity tests: a patient data set and a noise distilled set."""

from __future__ import annotations

import pytest
from _anon_data import make_dm, noise_set


@pytest.fixture(scope="module")
def dm():
    return make_dm()


@pytest.fixture
def noise(dm):
    return noise_set(dm)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread; two threads on a shared 2-core machine thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
