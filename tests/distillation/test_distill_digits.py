"""Real-data sanity check (no download): scikit-learn's 1,797 handwritten 8x8 digits.

Distilling ONE image per class with soft labels, learned learning rates and inner momentum must reach
0.90 test accuracy (the issue's target; measured 0.912 at seed 0, 0.915 [0.908, 0.923] over seeds 0-4)
on fresh randomly initialised networks (mean over seeded networks, replayed with ``inner_loop.replay``)
and beat a random real subset of the same size (1 per class) by a wide margin (15 points) under the
same evaluation. The random subset even gets a generous schedule (300 SGD steps, lr picked on the
validation split). The distillation settings were chosen on the validation split only
(docs/distillation.md).
"""

from __future__ import annotations

import time

import pytest
import torch
from hydra.utils import instantiate

from gastrodistill.data.digits import DigitsDataModule
from gastrodistill.distillation.inner_loop import replay, sgd_step
from gastrodistill.distillation.run import run_distillation
from gastrodistill.models import initialize
from gastrodistill.utils.seeding import torch_generator

N_NETS = 5


def accuracy(net, x, y) -> float:
    with torch.no_grad():
        return (net(x).argmax(1) == y).float().mean().item()


def fresh_net(factory, dm, k: int):
    net = factory(in_channels=dm.in_channels, num_classes=dm.num_classes, image_size=dm.image_size)
    return initialize(net, "xavier", torch_generator(1234, "eval-net", k))


@pytest.mark.slow
def test_one_soft_image_per_class_beats_a_random_real_subset(compose_cfg, tmp_path):
    dm = DigitsDataModule()
    dm.setup()
    cfg = compose_cfg(
        [
            "model=convnet",
            "model.width=32",
            "model.depth=2",
            "distill=soft",
            "distill.ipc=1",
            "distill.steps=1",
            "distill.epochs=10",
            "distill.lr_init=0.1",
            "distill.inner_momentum=0.5",
            "distill.label_init_scale=3.0",
            "distill.lr_images=0.2",
            "distill.lr_labels=0.03",
            "distill.lr_lrs=0.01",
            "distill.batch_real=512",
            "distill.grad_clip_ema=2.0",
            "distill.outer_steps=1200",
            "distill.scheduler.step_size=400",
            "distill.grid_every=0",
            "distill.ckpt_every=0",
            "trainer.enable_progress_bar=false",
        ]
    )
    start = time.perf_counter()
    ds = run_distillation(cfg, dm, tmp_path / "out")
    seconds = time.perf_counter() - start
    assert ds.images.shape == (10, 1, 8, 8)
    factory = instantiate(cfg.model)
    x_test, y_test = dm.load_split("test")
    x_val, y_val = dm.load_split("val")

    distilled_acc = [accuracy(replay(fresh_net(factory, dm, k), ds), x_test, y_test) for k in range(N_NETS)]

    def train_on(x, y, lr, k):
        net = fresh_net(factory, dm, k)
        for _ in range(300):
            sgd_step(net, x, y, lr)
        return net

    random_acc = []
    for subset in range(3):
        xr, yr = dm.sample_per_class(1, torch_generator(cfg.seed, "random-subset", subset))
        best_lr = max((0.01, 0.03, 0.1, 0.3), key=lambda lr: accuracy(train_on(xr, yr, lr, 99), x_val, y_val))
        random_acc += [accuracy(train_on(xr, yr, best_lr, k), x_test, y_test) for k in range(N_NETS)]

    d_mean, r_mean = sum(distilled_acc) / len(distilled_acc), sum(random_acc) / len(random_acc)
    print(
        f"\ndigits, 10 images: distilled (soft, 1/class) {d_mean:.3f} "
        f"[{min(distilled_acc):.3f}..{max(distilled_acc):.3f}] vs random real subset {r_mean:.3f} "
        f"[{min(random_acc):.3f}..{max(random_acc):.3f}]; distillation {seconds:.0f} s"
    )
    # The target (0.90); measured 0.912 at seed 0 and 0.911-0.925 at seeds 1-4 with these settings,
    # chosen on the validation split over three seeds (docs/distillation.md, "Sanity check on real data").
    assert d_mean >= 0.90
    assert d_mean >= r_mean + 0.15
