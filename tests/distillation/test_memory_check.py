"""The distillation's memory lower bound (``distillation.memory``): a huge ``distill.ipc`` was killed by the
kernel's out-of-memory killer without a word; it is refused before anything is allocated."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
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
    ("over", "aug", "unroll"),
    [
        ({}, 0, 10 * 3 * 10 * 1000),  # T = 10 steps of 3 x 10 images, 1000 bytes saved each
        ({"window": 4}, 0, 4 * 3 * 10 * 1000),
        ({"precision": "bf16"}, 0, 10 * 3 * 10 * 500),
        ({}, 300, 10 * 3 * 10 * 1300),  # each step also keeps 300 bytes of its augmentation per image
        ({"checkpoint": True}, 0, 3 * 10 * 1000),  # one step recomputed; its batch is a slice of the set
        ({"checkpoint": True}, 300, 10 * 3 * 10 * 300 + 3 * 10 * 1000),  # + T steps' augmentation kept
        ({"checkpoint": True, "precision": "bf16"}, 300, 10 * 3 * 10 * 150 + 3 * 10 * 500),
    ],
)
def test_the_lower_bound_adds_the_set_with_adam_state_and_the_kept_activations(over, aug, unroll):
    total, set_bytes, got_unroll = memory.distill_memory_lower_bound(
        _distill(**over), 3, (1, 8, 8), 1000, aug
    )
    assert set_bytes == 4 * 5 * 3 * 10 * (1 * 8 * 8 * 4)  # param, grad, Adam m and v of 150 images
    assert got_unroll == unroll and total == set_bytes + unroll


@pytest.mark.parametrize(
    ("dsa", "kept"),
    [
        ({}, 0),  # changes nothing: returns its input, saves nothing
        ({"flip": True}, 1 * 8 * 8 * 4 + 1),  # a new output tensor, and torch.where's mask: one bool an image
        ({"brightness": 0.1}, 1 * 8 * 8 * 4),  # an addition saves nothing; the output is new
    ],
)
def test_the_augmentation_term_counts_what_dsa_keeps_per_image(dsa, kept):
    """A DSA that changes nothing (every strength 0) was counted as a new batch per step and made the bound
    refuse runs that fit (a breaker's finding: 1.8 x the real need); what it keeps is measured now."""
    from gastrodistill.distillation.augment import DSA

    assert memory.augment_bytes_per_image(DSA(**{"flip": False, **dsa}), (1, 8, 8)) == kept


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
    assert msg.endswith(
        "lower distill.ipc or distill.steps, or keep fewer inner steps differentiable "
        "(distill.window=N or distill.checkpoint=true)"
    )
    monkeypatch.setattr(memory, "available_memory", lambda: need)
    memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)  # exactly enough: not refused
    monkeypatch.setattr(memory, "available_memory", lambda: None)
    memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)  # the system does not say: not refused
    both = _distill(ipc=100000, window=1, checkpoint=True)  # nothing left to keep off the graph
    monkeypatch.setattr(memory, "available_memory", lambda: 1)
    with pytest.raises(DistillConfigError) as info:
        memory.check_distill_memory(both, _net, 3, (1, 8, 8), trainer)
    assert str(info.value).endswith("lower distill.ipc or distill.steps")


def test_the_probe_leaves_the_global_random_streams_alone(monkeypatch):
    monkeypatch.setattr(memory, "available_memory", lambda: 1 << 50)
    torch.manual_seed(3)
    expected = torch.rand(4)
    torch.manual_seed(3)
    memory.check_distill_memory(_distill(), _net, 3, (1, 8, 8), OmegaConf.create({"accelerator": "cpu"}))
    assert torch.equal(torch.rand(4), expected)


@pytest.mark.parametrize(
    ("devices", "rank", "index"), [(1, 0, 0), ([1], 0, 1), ("2,3", 1, 3), (2, 1, 1), ([3], 1, 1)]
)
def test_the_gpu_checked_is_the_one_this_rank_will_use(monkeypatch, devices, rank, index):
    """mem_get_info() without a device read GPU 0 on every rank, before Lightning picks the rank's GPU; a
    rank past the end of a ``devices`` list falls back to its own index instead of failing."""
    monkeypatch.setenv("LOCAL_RANK", str(rank))
    assert memory._cuda_index(devices) == index


@pytest.mark.parametrize(
    ("checkpoint", "dsa"),
    [(False, None), (True, None), (False, "rotate: 10"), (True, "rotate: 10, flip: true")],
)
def test_the_bound_is_below_what_a_real_unroll_saves_per_image(
    compose_cfg, tiny_dm, tiny_overrides, checkpoint, dsa
):
    """The bound's unroll term per image against what one outer step's unroll of the tiny preset really
    keeps per image: the storages autograd saves (counted independently, the distilled set's own storage
    apart: the bound's other term) that are still held when the forward pass ends, at ipc 2 minus ipc 1, so
    the real batch and the weights drop out. A checkpointed unroll holds little then and recomputes each
    step in the backward pass: it holds at least that and one step's recompute (the average of the T
    recomputes, each saved tensor kept alive while counting so that no freed address is reused and
    missed). A lower bound: never above it, and not far below (half of it). A first bound counted a
    checkpointed step's distilled batch again for every step and refused runs that fit."""
    import weakref

    from gastrodistill.distillation.run import build_distilled_set, build_module, network_factory
    from gastrodistill.models.preflight import shape_of

    tiny_dm.setup("fit")
    channels, classes, size = shape_of(tiny_dm)
    overrides = [*tiny_overrides, f"distill.checkpoint={checkpoint}"]
    if dsa is not None:  # a rotation's grid_sample saves its input and grid in every step (a breaker: 0.38 x)
        overrides.append(f"distill.dsa={{_target_: gastrodistill.distillation.augment.DSA, {dsa}}}")
    if checkpoint:  # T = 20 steps: the first bound's T batches of the set outweigh one step's recompute
        overrides.append("distill.epochs=10")

    def unroll_saved(ipc: int) -> int:
        cfg = compose_cfg([*overrides, f"distill.ipc={ipc}"])
        networks = network_factory(cfg, tiny_dm)
        distilled = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
        module = build_module(cfg, tiny_dm, distilled, None, networks)
        the_set = distilled.images.untyped_storage().data_ptr()
        records = []  # (a saved tensor, weakly; its storage's address and bytes)

        def pack(t):
            records.append((weakref.ref(t), t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
            return t

        x, y = module.real_batch(0, 0)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            result, _ = module.inner_net_objective(x, y, 0, 0, 0)
        held = {ptr: n for ref, ptr, n in records if ref() is not None and ptr != the_set}
        if not checkpoint:
            return sum(held.values())
        recomputed, seen = [], set(held) | {the_set}

        def keep(t):
            if t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                recomputed.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
            result.surrogate.backward()
        assert recomputed  # the steps were recomputed
        one_step = sum(t.untyped_storage().nbytes() for t in recomputed) // distilled.num_inner_steps
        return sum(held.values()) + one_step

    cfg = compose_cfg(overrides)
    per_image = memory.saved_bytes_per_image(network_factory(cfg, tiny_dm)(), (channels, *size))
    augment = (
        0 if dsa is None else memory.augment_bytes_per_image(instantiate(cfg.distill.dsa), (channels, *size))
    )
    _, _, one = memory.distill_memory_lower_bound(
        OmegaConf.merge(cfg.distill, {"ipc": 1}), classes, (channels, *size), per_image, augment
    )
    real = unroll_saved(2) - unroll_saved(1)  # one more image per class in every unrolled step
    assert 0.5 * real <= one <= real


def test_the_probe_runs_the_network_in_training_mode():
    """The inner loop trains its networks; the probe measures a network in train mode (dropout's masks,
    batch statistics), even one handed over in eval mode."""
    modes = []

    class Record(nn.Module):
        def forward(self, x):
            modes.append(self.training)
            return x

    net = nn.Sequential(Record(), nn.Flatten(), nn.Linear(64, 2)).eval()
    memory.saved_bytes_per_image(net, (1, 8, 8))
    assert modes and all(modes)


def test_the_augmentation_is_counted_in_the_check(monkeypatch):
    """With distill.dsa, the memory left must also hold what the augmentation keeps: a flip keeps its
    [1, 8, 8] float32 output (256 bytes) and a one-byte bool mask per image: 257 bytes."""
    trainer = OmegaConf.create({"accelerator": "cpu"})
    dsa = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": True}
    d = _distill(ipc=1000, dsa=dsa)
    per_image = memory.saved_bytes_per_image(_net(), (1, 8, 8))
    without, _, _ = memory.distill_memory_lower_bound(d, 3, (1, 8, 8), per_image, 0)
    with_dsa = without + 10 * 3 * 1000 * 257  # T = 10 steps of 3 x 1000 images
    monkeypatch.setattr(memory, "available_memory", lambda: with_dsa - 1)
    with pytest.raises(DistillConfigError, match="distill.ipc=1000"):
        memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)
    monkeypatch.setattr(memory, "available_memory", lambda: with_dsa)
    memory.check_distill_memory(d, _net, 3, (1, 8, 8), trainer)  # exactly enough


def test_the_memory_checked_is_the_gpus_when_the_trainer_uses_one(monkeypatch):
    """accelerator gpu/cuda, or auto with CUDA present: the free memory of the rank's GPU (mem_get_info);
    gpu asked for without CUDA: unknown (None), not the CPU's memory; cpu, or auto without CUDA: the CPU's."""
    asked = []

    def mem_get_info(index):
        asked.append(index)
        return 12345, 1 << 40

    monkeypatch.setattr(memory, "available_memory", lambda: 777)
    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu = OmegaConf.create({"accelerator": "gpu", "devices": 1})
    assert memory.device_memory(gpu) == (None, "GPU memory")
    assert memory.device_memory(OmegaConf.create({"accelerator": "auto"})) == (777, "available CPU memory")
    assert memory.device_memory(OmegaConf.create({"accelerator": "cpu"})) == (777, "available CPU memory")
    assert asked == []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for accelerator in ("auto", "gpu", "cuda"):
        cfg = OmegaConf.create({"accelerator": accelerator, "devices": [1]})
        assert memory.device_memory(cfg) == (12345, "free memory of GPU 1")
    assert asked == [1, 1, 1]
    assert memory.device_memory(OmegaConf.create({"accelerator": "cpu"})) == (777, "available CPU memory")
