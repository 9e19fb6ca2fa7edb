"""Derived seeds (utils.seeding): each stream a stable function of the config seed and named parts, and
``seed_everything`` seeding the global generators third-party code draws from."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest
import torch

from gastrodistill.utils.seeding import derive_seed, numpy_rng, seed_everything, torch_generator


def test_a_derived_seed_is_the_first_8_bytes_of_sha256_little_endian_without_the_top_bit():
    """Pinned against SHA-256's published digest of "0" (5feceb66 ffc86f38 ...): a change of byte order,
    of the bytes taken or of the mask would change every seed of every study (mutants: "big", [:4])."""
    digest = bytes.fromhex("5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9")
    assert hashlib.sha256(b"0").digest() == digest
    assert derive_seed(0) == 0x386FC8FF66EBEC5F  # bytes 5f ec eb 66 ff c8 6f 38 read little-endian
    for parts in [(3, "bootstrap", 7), (11,), ("a", "b")]:
        text = "/".join(map(str, parts)).encode()  # the parts joined by "/"
        expect = int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & (2**63 - 1)
        assert derive_seed(*parts) == expect


def test_derived_seeds_use_all_63_bits_and_never_the_64th():
    seeds = [derive_seed(0, i) for i in range(200)]
    assert all(0 <= s < 2**63 for s in seeds)  # mutant: a 64-bit mask
    assert any(s >= 2**62 for s in seeds)  # mutant: 4 bytes (all below 2**32)


def test_parts_are_kept_apart_by_their_separator():
    """(1, 23) and (12, 3) are different streams: joined without "/" both read "123"."""
    assert derive_seed(1, 23) != derive_seed(12, 3)
    assert derive_seed(1, 23) != derive_seed(123)


def test_the_torch_and_numpy_generators_are_seeded_by_every_part():
    """Mutants: the generators seeded by the first part only, or without the last."""
    expect = torch.Generator().manual_seed(derive_seed(5, "init", 2))
    assert torch.equal(
        torch.rand(4, generator=torch_generator(5, "init", 2)), torch.rand(4, generator=expect)
    )
    draws = {tuple(torch.rand(4, generator=torch_generator(5, "init", n)).tolist()) for n in range(3)}
    assert len(draws) == 3
    assert np.array_equal(
        numpy_rng(5, "init", 2).random(4), np.random.default_rng(derive_seed(5, "init", 2)).random(4)
    )
    assert len({tuple(numpy_rng(5, "init", n).random(4)) for n in range(3)}) == 3


@pytest.fixture
def global_streams():
    """The global generators as they were, put back after the test."""
    state = random.getstate(), np.random.get_state(), torch.random.get_rng_state()  # noqa: NPY002
    yield
    random.setstate(state[0])
    np.random.set_state(state[1])  # noqa: NPY002
    torch.random.set_rng_state(state[2])


def test_seed_everything_seeds_pythons_numpys_and_torchs_global_streams(global_streams):
    """Each global stream draws what a generator of its own seeded with ``seed`` draws; numpy's legacy seed
    takes 32 bits, so a larger seed is taken modulo 2**32 (mutants: a stream left unseeded, another
    modulus)."""
    seed = 2**31 + 5  # below 2**32: numpy gets it whole (modulo 2**31 would give 5)
    for _ in range(2):  # the same draws twice: the streams are set, not moved on
        seed_everything(seed)
        assert random.random() == random.Random(seed).random()
        assert np.random.rand() == np.random.RandomState(seed).rand()  # noqa: NPY002
        assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(seed)))
    seed_everything(2**40 + 7)
    assert np.random.rand() == np.random.RandomState(7).rand()  # noqa: NPY002
