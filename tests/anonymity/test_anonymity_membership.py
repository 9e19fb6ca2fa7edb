"""Membership inference: chance on identically distributed members and non-members, ~1 on a memorising net."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gastrodistill.anonymity.membership import balanced_subsets, membership_attack, summarise
from gastrodistill.models import LeNet


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LeNet(in_channels=1, num_classes=3, image_size=(16, 16))


def _draw(rng: np.random.Generator, n: int) -> TensorDataset:
    x = torch.as_tensor(rng.standard_normal((n, 1, 16, 16)), dtype=torch.float32)
    return TensorDataset(x, torch.as_tensor(rng.integers(0, 3, n)))


def _fit(net: torch.nn.Module, data: TensorDataset, steps: int) -> torch.nn.Module:
    x, y = data.tensors
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def test_identically_distributed_members_and_nonmembers_give_chance():
    """A network that saw neither side: members and non-members are the same distribution -> AUC ~ 0.5."""
    rng = np.random.default_rng(0)
    net = _fit(_net(0), _draw(rng, 64), steps=60)  # trained on a third, unrelated sample
    result = membership_attack(net, _draw(rng, 600), _draw(rng, 600))
    for attack in ("loss", "confidence"):
        assert result.auc[attack] == pytest.approx(0.5, abs=0.06), attack  # null std of the AUC ~ 0.017


def test_memorising_network_is_detected():
    """A network overfit to a handful of random-label patches: its members are found (AUC near 1)."""
    rng = np.random.default_rng(1)
    members, nonmembers = _draw(rng, 24), _draw(rng, 24)
    net = _fit(_net(1), members, steps=150)
    result = membership_attack(net, members, nonmembers)
    assert result.auc["loss"] > 0.95
    assert result.advantage["loss"] > 0.8
    summary = summarise([result, result])
    assert summary["mia_loss_auc"] == pytest.approx(result.auc["loss"]) and summary["mia_loss_auc_std"] == 0.0


def test_balanced_subsets_are_equal_seeded_and_refuse_tiny_splits():
    rng = np.random.default_rng(2)
    a, b = balanced_subsets(_draw(rng, 50), _draw(rng, 30), max_per_side=100, seed=3)
    assert len(a) == len(b) == 30
    a2, _ = balanced_subsets(a.dataset, b.dataset, max_per_side=100, seed=3)
    assert a.indices == a2.indices
    with pytest.raises(ValueError, match="at least 2 members"):
        balanced_subsets(_draw(rng, 1), _draw(rng, 5), max_per_side=10, seed=0)
