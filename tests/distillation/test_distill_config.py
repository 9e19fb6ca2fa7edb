"""The distillation config groups compose and build what they claim; inner networks are seeded as stated."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from pytorch_lightning.strategies import DDPStrategy

from gastrodistill.distillation.run import build_distilled_set, build_module


def test_presets_compose(compose_cfg):
    soft = compose_cfg(["distill=soft"]).distill
    assert (soft.steps, soft.epochs, soft.lr_init, soft.batch_real) == (10, 3, 0.02, 1024)
    assert soft.optimizer.betas == [0.5, 0.999] and soft.scheduler.gamma == 0.5
    assert soft.init == "xavier"  # follows model.init
    hard_cpu = compose_cfg(["distill=hard_cpu", "model.init=kaiming"]).distill
    assert hard_cpu.mode == "hard" and hard_cpu.outer_steps == 300 and hard_cpu.init == "kaiming"
    opt = instantiate(soft.optimizer)([torch.nn.Parameter(torch.zeros(1))])
    assert opt.defaults["betas"] == (0.5, 0.999)  # _convert_: all -> a plain tuple, not a ListConfig


@pytest.mark.parametrize(("name", "backend", "seconds"), [("ddp", "nccl", 1800), ("ddp_sim", "gloo", 120)])
def test_ddp_trainer_configs_build_their_strategy(compose_cfg, name, backend, seconds):
    cfg = compose_cfg([f"trainer={name}"])
    strategy = instantiate(cfg.trainer.strategy)
    assert isinstance(strategy, DDPStrategy)
    assert strategy.process_group_backend == backend
    assert strategy._timeout == timedelta(seconds=seconds)
    assert (strategy._start_method == "spawn") == (name == "ddp_sim")


def test_inner_networks_are_seeded_per_step_rank_index_or_fixed(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()

    def first_weight(known_init: bool, step: int, rank: int, index: int) -> torch.Tensor:
        cfg = compose_cfg([*tiny_overrides, f"distill.known_init={known_init}"])
        module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed), None)
        return next(module.sample_inner_net(step, rank, index).parameters()).detach()

    base = first_weight(False, 3, 0, 0)
    assert torch.equal(base, first_weight(False, 3, 0, 0))
    for other in ((4, 0, 0), (3, 1, 0), (3, 0, 1)):
        assert not torch.equal(base, first_weight(False, *other)), other
    fixed = first_weight(True, 0, 0, 0)
    assert torch.equal(fixed, first_weight(True, 7, 1, 2))


def test_bad_distill_settings_are_named(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.image_init=zeros"])
    with pytest.raises(ValueError, match="distill.image_init"):
        build_distilled_set(cfg.distill, tiny_dm, "soft", 0)
    cfg = compose_cfg([*tiny_overrides, "distill.backend=higher", "distill.checkpoint=true"])
    with pytest.raises(ValueError, match="checkpointing needs distill.backend=func"):
        build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    with pytest.raises(ValueError, match="distill.mode"):
        build_distilled_set(cfg.distill, tiny_dm, "medium", 0)


def test_a_real_start_needs_steps_times_ipc_images_of_every_class(compose_cfg, tiny_dm, tiny_overrides):
    """distill.image_init=real draws ipc images per class for each of the steps: 3 x 5 = 15 per class from
    a training split of 14, 13 and 13 is refused naming the product and the classes, though 5 alone fit."""
    tiny_dm.setup()
    counts = np.bincount(tiny_dm.labels("train"), minlength=3).tolist()
    assert counts == [14, 13, 13]
    cfg = compose_cfg([*tiny_overrides, "distill.image_init=real", "distill.steps=3", "distill.ipc=5"])
    with pytest.raises(ValueError) as info:
        build_distilled_set(cfg.distill, tiny_dm, "soft", 0)
    assert "distill.ipc x distill.steps = 15 training images of each class" in str(info.value)
    assert "'a' (14), 'b' (13), 'c' (13)" in str(info.value)
    cfg = compose_cfg([*tiny_overrides, "distill.image_init=real", "distill.steps=2", "distill.ipc=6"])
    assert build_distilled_set(cfg.distill, tiny_dm, "soft", 0).images.shape[0] == 2 * 3 * 6  # 12 fit
