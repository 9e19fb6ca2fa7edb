"""The distillation's memory lower bound (``distillation.memory``): a huge ``distill.ipc`` was killed by the
kernel's out-of-memory killer without a word; it is refused before anything is allocated."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gastrodistill.distillation import memory
from gastrodistill.distillation.errors import DistillConfigError


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))


def test_saved_bytes_per_image_counts_the_forward_and_the_differentiated_backward():
    """Per image: the ReLU's output [4, 8, 8] saved by the forward (the Linear saves a view of it: the same
    storage, counted once) and the gradient at the convolution's output [4, 8, 8] that the double backward
    keeps; two float32 [4, 8, 8] by hand, plus the few bytes of the softmax and the per-image gradient of
    the two logits (under 64 bytes). The input and the weights' gradients do not count."""
    got = memory.saved_bytes_per_image(_net(), (1, 8, 8))
    assert 2 * 4 * 8 * 8 * 4 <= got < 2 * 4 * 8 * 8 * 4 + 64


def _distill(**over):
    base = {"ipc": 10, "steps": 5, "epochs": 2, "window": None, "checkpoint": False, "precision": "32-true"}
    return OmegaConf.create({**base, **over})


@pytest.mark.parametrize(
    ("over", "unroll"),
    [
        ({}, 10 * 3 * 10 * 1000),  # T = 10 steps of 3 x 10 images, 1000 bytes saved each
        ({"window": 4}, 4 * 3 * 10 * 1000),
        ({"precision": "bf16"}, 10 * 3 * 10 * 500),
        ({"checkpoint": True}, 10 * 3 * 10 * (4 * 1 * 8 * 8) + 3 * 10 * 1000),  # step inputs + one step
    ],
)
def test_the_lower_bound_adds_the_set_with_adam_state_and_the_kept_activations(over, unroll):
    total, set_bytes, got_unroll = memory.distill_memory_lower_bound(_distill(**over), 3, (1, 8, 8), 1000)
    assert set_bytes == 4 * 5 * 3 * 10 * (1 * 8 * 8 * 4)  # param, grad, Adam m and v of 150 images
    assert got_unroll == unroll and total == set_bytes + unroll


def test_a_run_over_the_memory_left_is_refused_naming_what_to_lower(monkeypatch):
    trainer = OmegaConf.create({"accelerator": "cpu"})
    d = _distill(ipc=100000)
    need, _, _ = memory.distill_memory_lower_bound(
        d, 3, (1, 8, 8), memory.saved_bytes_per_image(_net(), (1, 8, 8))
    )
    monkeypatch.setattr(memory, "available_memory", lambda: need - 1)
    with pytest.raises(DistillConfigError) as info:
        memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)
    msg = str(info.value)
    assert msg.startswith(
        "distill.ipc=100000, distill.steps=5, distill.epochs=2 on 3 classes of 1x8x8 images"
    )
    assert "lower distill.ipc or distill.steps" in msg and "distill.window=N" in msg
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)  # exactly enough: not refused
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)  # the system does not say: not refused


def test_the_bound_is_below_what_a_real_unroll_saves(compose_cfg, tiny_dm, tiny_overrides):
    """The bound's unroll term against every storage autograd saves in one outer step's unroll of the tiny
    preset (counted independently, inputs and weights included): a lower bound, so never above it."""
    from gastrodistill.distillation.run import build_distilled_set, build_module, network_factory
    from gastrodistill.models.preflight import shape_of

    cfg = compose_cfg(tiny_overrides)
    tiny_dm.setup("fit")
    networks = network_factory(cfg, tiny_dm)
    module = build_module(
        cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed), None, networks
    )
    channels, classes, size = shape_of(tiny_dm)
    per_image = memory.saved_bytes_per_image(networks(), (channels, *size))
    _, _, unroll = memory.distill_memory_lower_bound(cfg.distill, classes, (channels, *size), per_image)
    seen, saved = set(), 0

    def pack(t):
        nonlocal saved
        s = t.untyped_storage()
        if s.data_ptr() not in seen:
            seen.add(s.data_ptr())
            saved += s.nbytes()
        return t

    x, y = module.real_batch(0, 0)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        module.inner_net_objective(x, y, 0, 0, 0)
    assert 0 < unroll <= saved
