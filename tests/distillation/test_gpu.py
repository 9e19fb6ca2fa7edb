"""GPU checks (marker ``gpu``; skipped without CUDA, run by benchmarks/gpu_check.sh)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.distillation.run import build_distilled_set, run_distillation

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def uint8_dm(n: int = 64, size: int = 32) -> TensorImageDataModule:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(n, 1, size, size), dtype=np.uint8)
    dm = TensorImageDataModule(splits={s: (x, np.arange(n) % 3) for s in ("train", "val", "test")})
    dm.setup()
    return dm


def test_resident_batches_on_the_gpu_match_the_item_path():
    dm = uint8_dm()
    ref = RealBatchSource.from_datamodule(dm, 16, seed=1, mode="items")
    gpu = RealBatchSource.from_datamodule(dm, 16, seed=1, mode="resident")
    for step in range(3):
        xr, yr = ref.get(step, 0)
        xg, yg = gpu.get(step, 0, device="cuda")
        assert xg.is_cuda and gpu._resident.images.dtype == torch.uint8
        assert torch.equal(yg.cpu(), yr)
        torch.testing.assert_close(xg.cpu(), xr, rtol=0, atol=1e-5)


def test_loader_batches_arrive_pinned_for_the_gpu():
    dm = uint8_dm()
    src = RealBatchSource.from_datamodule(dm, 16, seed=1, mode="loader", num_workers=1)
    x, _ = src.get(0, 0, device="cuda")
    assert x.is_pinned()


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_distillation_on_the_gpu_with_bf16_and_channels_last(
    compose_cfg, tiny_overrides, tmp_path, precision
):
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "trainer=gpu",
            f"distill.precision={precision}",
            "distill.channels_last=true",
            "distill.real_data=resident",
            "distill.outer_steps=4",
        ]
    )
    dm = uint8_dm(size=16)
    initial = build_distilled_set(cfg.distill, dm, "soft", cfg.seed)
    torch.cuda.reset_peak_memory_stats()
    ds = run_distillation(cfg, dm, tmp_path / "out")
    assert torch.isfinite(ds.images).all() and torch.isfinite(ds.lrs()).all()
    # the outer steps moved the images and the learning rates (the meta-gradient reached them on the GPU)
    assert not torch.equal(ds.images.detach().cpu(), initial.images.detach())
    assert not torch.equal(ds.lrs().detach().cpu(), initial.lrs().detach())
    assert torch.cuda.max_memory_allocated() > 0  # the run used the GPU


def test_a_cuda_network_initialised_from_a_cpu_generator_gets_the_cpu_weights():
    """Distribution matching and texture matching re-initialise networks already on the GPU with CPU
    generators: the draw happens on the generator's device and is copied (the same weights as on CPU)."""
    from gastrodistill.models import ConvNet, initialize
    from gastrodistill.utils.seeding import torch_generator

    cpu = initialize(ConvNet(1, 3, 16, width=4, depth=2), "xavier", torch_generator(0, "init"))
    gpu = initialize(ConvNet(1, 3, 16, width=4, depth=2).cuda(), "xavier", torch_generator(0, "init"))
    for a, b in zip(cpu.state_dict().values(), gpu.state_dict().values(), strict=True):
        assert b.is_cuda and torch.equal(a, b.cpu())
