"""Helpers shared by the distillation tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.models import ConvNet, initialize
from gastrodistill.utils.seeding import torch_generator


def make_tiny_splits(n: int = 40, k: int = 3, size: int = 6, seed: int = 0) -> dict:
    """Class c is a bright square at a class-specific place plus noise: learnable in a few SGD steps."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split in ("train", "val", "test"):
        y = np.arange(n) % k
        x = 0.2 * rng.random((n, 1, size, size), dtype=np.float32)
        for j, c in enumerate(y):
            r = (2 * c) % (size - 1)
            x[j, 0, r : r + 2, r : r + 2] += 0.8
        splits[split] = (np.clip(x, 0, 1), y.astype(np.int64))
    return splits


#: Overrides that make a distillation run take a few seconds on a CPU.
TINY = [
    "model=convnet",
    "model.width=4",
    "model.depth=1",
    "distill.steps=2",
    "distill.epochs=1",
    "distill.ipc=1",
    "distill.batch_real=16",
    "distill.outer_steps=3",
    "distill.grid_every=2",
    "distill.ckpt_every=0",
    "distill.lr_init=0.1",
    "trainer.enable_progress_bar=false",
    "distill.log_every=1",
    "distill.check_every=1",
]


def tiny_problem(
    seed: int = 0, steps: int = 2, epochs: int = 2, n_real: int = 8, momentum: float = 0.0, mode: str = "soft"
):
    """A float64 distilled set (3 classes, 4x4; ``mode`` soft or hard), a tanh ConvNet and a real batch,
    all seeded."""
    torch.manual_seed(seed)
    ds = DistilledSet(
        3, 1, steps, epochs, (1, 4, 4), mode=mode, lr_init=0.3, label_init_scale=1.5, inner_momentum=momentum
    )
    ds = ds.double()
    ds.init_noise(torch_generator(seed, "images"))
    with torch.no_grad():
        ds.label_logits.add_(
            0.3 * torch.randn(ds.label_logits.shape, generator=torch_generator(seed, "l"), dtype=torch.double)
        )
        ds.raw_lrs.add_(
            0.2 * torch.randn(steps * epochs, generator=torch_generator(seed, "lr"), dtype=torch.double)
        )
    net = ConvNet(1, 3, (4, 4), width=3, depth=1, act="tanh").double()
    initialize(net, "xavier", torch_generator(seed, "net"))
    gen = torch_generator(seed, "real")
    x = torch.randn(n_real, 1, 4, 4, generator=gen, dtype=torch.double)
    y = torch.randint(0, 3, (n_real,), generator=gen)
    return ds, net, x, y


HERE = Path(__file__).resolve().parent


def texture_probe(seed: int) -> tuple[ConvNet, list[torch.Tensor]]:
    """A small float64 ConvNet (1 channel, 3 classes, 8 px, width 3, depth 1, pooled head; eval mode) and
    its texture targets at exaggeration 1 from 9 random images, for loss-versus-loop checks."""
    from gastrodistill.distillation.texture_matching import class_texture_targets

    torch.manual_seed(seed)
    net = ConvNet(1, 3, 8, width=3, depth=1, head="avg").double().eval()
    batches = [(torch.randn(9, 1, 8, 8).double(), torch.arange(9) % 3)]
    return net, [t.double() for t in class_texture_targets([net], batches, 3, 1.0)[0]]


def texture_net_and_teacher(dm, seed: int) -> tuple[ConvNet, ConvNet, list[torch.Tensor]]:
    """Two small ConvNets (1 channel, 3 classes, 6 px, width 4, depth 1, pooled head; eval mode) drawn after
    ``torch.manual_seed(seed)``, a feature network and a teacher, and the feature network's texture targets
    at exaggeration 1 over ``dm``'s training split (set up here)."""
    from torch.utils.data import DataLoader

    from gastrodistill.distillation.texture_matching import class_texture_targets

    dm.setup()
    torch.manual_seed(seed)
    net = ConvNet(1, 3, 6, width=4, depth=1, head="avg").eval()
    teacher = ConvNet(1, 3, 6, width=4, depth=1, head="avg").eval()
    return net, teacher, class_texture_targets([net], DataLoader(dm.dataset("train"), batch_size=64), 3, 1.0)


def run_distill_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m gastrodistill.cli.distill *args`` in a fresh process (1 thread, W&B offline) in ``cwd``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "NO_ALBUMENTATIONS_UPDATE": "1",
    }
    cmd = [sys.executable, "-m", "gastrodistill.cli.distill", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


def assert_grad_matches_central_differences(loss, x, rel: float, abs_tol: float, eps: float = 1e-6) -> None:
    """The autograd gradient of ``loss(x)`` (a float64 scalar) at three pixels of ``x`` ``[6, 1, 8, 8]``
    against central finite differences with step ``eps``."""
    import pytest
    import torch

    (grad,) = torch.autograd.grad(loss(x), x)
    for idx in [(0, 0, 0, 0), (3, 0, 4, 5), (5, 0, 7, 7)]:
        d = torch.zeros_like(x)
        d[idx] = eps
        with torch.no_grad():
            fd = (loss(x.detach() + d) - loss(x.detach() - d)) / (2 * eps)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=rel, abs=abs_tol)
