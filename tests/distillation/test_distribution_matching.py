"""Distribution matching before the bi-level loop: the loss, its gradient, one step, the config path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _distill_helpers import assert_grad_matches_central_differences
from torch import nn

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.distribution_matching import match_distributions, mean_embedding_loss
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.distillation.run import (
    build_distilled_set,
    build_module,
    run_distillation,
    run_distribution_matching,
)
from gastrodistill.models import ConvNet, LeNet, initialize
from gastrodistill.models.features import penultimate_features
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.utils.seeding import torch_generator


def test_mean_embedding_loss_against_a_numpy_loop():
    rng = np.random.default_rng(0)
    fr, fs = rng.normal(size=(11, 5)), rng.normal(size=(7, 5))
    yr, ys = rng.integers(0, 3, 11), np.array([0, 0, 1, 1, 2, 2, 2])
    yr[:3] = [0, 1, 2]
    want = sum(np.sum((fr[yr == c].mean(0) - fs[ys == c].mean(0)) ** 2) for c in range(3))
    got = mean_embedding_loss(*(torch.as_tensor(a) for a in (fr, yr, fs, ys)), num_classes=3)
    assert float(got) == pytest.approx(want, rel=1e-12)
    # A class absent from the real batch contributes nothing (4 classes, class 3 on neither side).
    got4 = mean_embedding_loss(*(torch.as_tensor(a) for a in (fr, yr, fs, ys)), num_classes=4)
    assert float(got4) == pytest.approx(want, rel=1e-12)
    # A class on one side only contributes nothing either (class 3: 2 synthetic rows; class 4: 2 real rows).
    fr5, yr5 = np.concatenate([fr, rng.normal(size=(2, 5))]), np.concatenate([yr, [4, 4]])
    fs5, ys5 = np.concatenate([fs, rng.normal(size=(2, 5))]), np.concatenate([ys, [3, 3]])
    got5 = mean_embedding_loss(*(torch.as_tensor(a) for a in (fr5, yr5, fs5, ys5)), num_classes=5)
    assert float(got5) == pytest.approx(want, rel=1e-12)


def test_penultimate_features_are_the_last_linear_input():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 16, 16)
    conv = ConvNet(1, 3, 16, width=6, depth=2)
    assert torch.allclose(penultimate_features(conv, x), conv.features(x).flatten(1))
    lenet = LeNet(1, 3, 16)
    seen = []
    last = [m for m in lenet.modules() if isinstance(m, nn.Linear)][-1]
    h = last.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    lenet(x)
    h.remove()
    assert torch.allclose(penultimate_features(lenet, x), seen[0].flatten(1))
    with pytest.raises(ModelConfigError, match="nn.Linear"):
        penultimate_features(nn.Sequential(nn.Conv2d(1, 2, 3)), x)


def test_the_loss_gradient_matches_float64_finite_differences():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 64, 3)).double()
    real, yr = torch.randn(9, 1, 8, 8, dtype=torch.float64), torch.arange(9) % 3
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    ys = torch.arange(6) % 3

    def loss(s):
        with torch.no_grad():
            fr = penultimate_features(net, real)
        return mean_embedding_loss(fr, yr, penultimate_features(net, s), ys, 3)

    assert_grad_matches_central_differences(loss, syn, rel=1e-6, abs_tol=1e-10)


def _tiny_matching(tiny_dm, per_class: int, width: int):
    """A balanced real source, a noise-initialised set of 6 images (6 px), its images before, a factory."""
    tiny_dm.setup()
    source = RealBatchSource(
        tiny_dm.dataset("train"), tiny_dm.labels("train"), 3 * per_class, 0, 3, balanced=True
    )
    ds = DistilledSet(3, 2, 1, 1, (1, 6, 6)).init_noise(torch_generator(0, "x"))

    def factory():
        return ConvNet(1, 3, 6, width=width, depth=1)

    return source, ds, ds.images.detach().clone(), factory


def test_one_step_is_minus_lr_times_the_gradient_of_that_steps_network(tiny_dm):
    """Recompute step 0 independently: the network of (seed, step 0), the real batch of step 0."""
    source, ds, before, factory = _tiny_matching(tiny_dm, per_class=4, width=4)
    losses = match_distributions(ds, factory, source, steps=1, lr=0.5, momentum=0.0, seed=7, progress=False)
    net = factory()
    initialize(net, "xavier", torch_generator(7, "distribution-matching", 0))
    xr, yr = source.get(0, 0)
    x = before.clone().requires_grad_(True)
    with torch.no_grad():
        fr = penultimate_features(net, xr)
    loss = mean_embedding_loss(fr, yr, penultimate_features(net, x), ds.hard_labels(), 3)
    (g,) = torch.autograd.grad(loss, x)
    assert losses == [pytest.approx(float(loss.detach()), rel=1e-6)]
    assert torch.allclose(ds.images.detach(), before - 0.5 * g, atol=1e-6)
    assert not torch.equal(ds.images.detach(), before)


def test_two_steps_use_each_steps_network_and_real_batch_and_sgd_momentum(tiny_dm):
    """Recompute two steps independently: step t's loss uses the network of (seed, t) and the real batch of
    step t; SGD with momentum m moves x1 = x0 - lr g0, x2 = x1 - lr (m g0 + g1)."""
    source, ds, before, factory = _tiny_matching(tiny_dm, per_class=4, width=4)
    lr, m = 0.5, 0.5
    losses = match_distributions(ds, factory, source, steps=2, lr=lr, momentum=m, seed=7, progress=False)

    def loss_and_grad(step, x):
        net = factory()
        initialize(net, "xavier", torch_generator(7, "distribution-matching", step))
        xr, yr = source.get(step, 0)
        x = x.clone().requires_grad_(True)
        with torch.no_grad():
            fr = penultimate_features(net, xr)
        loss = mean_embedding_loss(fr, yr, penultimate_features(net, x), ds.hard_labels(), 3)
        return float(loss.detach()), torch.autograd.grad(loss, x)[0]

    l0, g0 = loss_and_grad(0, before)
    x1 = before - lr * g0
    l1, g1 = loss_and_grad(1, x1)
    assert losses == [pytest.approx(l0, rel=1e-6), pytest.approx(l1, rel=1e-6)]
    assert torch.allclose(ds.images.detach(), x1 - lr * (m * g0 + g1), atol=1e-6)
    with pytest.raises(DistillConfigError, match=r"momentum must be in \[0, 1\)"):
        match_distributions(ds, factory, source, steps=1, lr=1.0, momentum=1.0)


def test_the_augmentation_applies_to_both_sides(tiny_dm):
    """A deterministic augmentation (a horizontal flip): the real and the distilled images are both
    flipped before the network; the step is minus lr times the gradient of that loss."""
    source, ds, before, factory = _tiny_matching(tiny_dm, per_class=4, width=4)
    calls = []

    def flip(x, generator):
        calls.append(len(x))
        return x.flip(-1)

    match_distributions(
        ds, factory, source, steps=1, lr=0.5, momentum=0.0, seed=7, augment=flip, progress=False
    )
    assert sorted(calls) == [6, 12]  # the 6 distilled images and the 3 x 4 real ones
    net = factory()
    initialize(net, "xavier", torch_generator(7, "distribution-matching", 0))
    xr, yr = source.get(0, 0)
    x = before.clone().requires_grad_(True)
    with torch.no_grad():
        fr = penultimate_features(net, xr.flip(-1))
    loss = mean_embedding_loss(fr, yr, penultimate_features(net, x.flip(-1)), ds.hard_labels(), 3)
    (g,) = torch.autograd.grad(loss, x)
    assert torch.allclose(ds.images.detach(), before - 0.5 * g, atol=1e-6)


def test_matching_lowers_the_loss_and_steps_zero_is_a_no_op(tiny_dm):
    source, ds, before, factory = _tiny_matching(tiny_dm, per_class=8, width=8)
    assert match_distributions(ds, factory, source, steps=0, lr=1.0) == []
    assert torch.equal(ds.images.detach(), before)
    losses = match_distributions(ds, factory, source, steps=60, lr=1.0, progress=False)
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    with pytest.raises(DistillConfigError, match="steps must be >= 0"):
        match_distributions(ds, factory, source, steps=-1, lr=1.0)
    with pytest.raises(DistillConfigError, match="lr must be > 0"):
        match_distributions(ds, factory, source, steps=1, lr=0.0)


def test_the_config_runs_it_before_the_loop_and_a_resume_does_not(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    on = ["distill.distribution_matching.steps=4", "distill.distribution_matching.progress=false"]
    cfg = compose_cfg([*tiny_overrides, *on, "distill.outer_steps=2", "distill.ckpt_every=2"])
    run_distillation(cfg, tiny_dm, tmp_path / "a")
    summary = json.loads((tmp_path / "a" / "soft" / "summary.json").read_text())
    assert summary["distribution_matching_steps"] == 4
    # The matched start differs from the plain start.
    tiny_dm.setup()
    plain = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
    matched = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
    assert len(run_distribution_matching(cfg, tiny_dm, build_module(cfg, tiny_dm, matched, None))) == 4
    assert not torch.equal(plain.images, matched.images)
    # Resuming from the step-2 checkpoint to step 3 skips the matching (the images come from the checkpoint).
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    resumed = compose_cfg([*tiny_overrides, *on, "distill.outer_steps=3"])
    run_distillation(resumed, tiny_dm, tmp_path / "b", resume=ckpt)
    summary_b = json.loads((tmp_path / "b" / "soft" / "summary.json").read_text())
    assert "distribution_matching_steps" not in summary_b and summary_b["outer_steps"] == 3
    bad = compose_cfg(
        [
            *tiny_overrides,
            "distill.distribution_matching.steps=2",
            "distill.distribution_matching.batch_per_class=0",
        ]
    )
    with pytest.raises(DistillConfigError, match="batch_per_class"):
        run_distillation(bad, tiny_dm, tmp_path / "c")


def test_the_matching_section_is_checked_even_when_off():
    """check_matching_config: an absent section is off; every bad value is refused with its key, whether
    or not steps > 0 (a bad value must not lie unnoticed until someone turns the matching on)."""
    from gastrodistill.distillation.distribution_matching import check_matching_config

    off = check_matching_config(None)
    assert (off["steps"], off["augment"], off["progress"]) == (0, True, True)  # as conf/distill/soft.yaml
    ok = check_matching_config({"steps": 3, "lr": 0.5, "momentum": 0.0, "batch_per_class": 2})
    assert (ok["steps"], ok["lr"], ok["momentum"], ok["batch_per_class"]) == (3, 0.5, 0.0, 2)
    for bad, message in [
        ({"steps": -1}, r"distill.distribution_matching.steps must be >= 0 \(0 = off\), got -1"),
        ({"steps": 0, "lr": 0}, r"distill.distribution_matching.lr must be > 0, got 0.0"),
        ({"steps": 0, "momentum": 1.0}, r"distill.distribution_matching.momentum must be in \[0, 1\)"),
        ({"steps": 0, "batch_per_class": 0}, r"distill.distribution_matching.batch_per_class must be >= 1"),
        ({"steps": "many"}, r"distill.distribution_matching.steps must be an integer, got 'many'"),
        ({"steps": 1.5}, r"distill.distribution_matching.steps must be an integer, got 1.5"),
        ({"batch_per_class": True}, r"distill.distribution_matching.batch_per_class must be an integer"),
        ({"lr": "fast"}, r"distill.distribution_matching.lr must be a number, got 'fast'"),
        ({"momentum": -0.1}, r"distill.distribution_matching.momentum must be in \[0, 1\), got -0.1"),
        ({"augment": "no"}, r"distill.distribution_matching.augment must be true or false, got 'no'"),
        ({"progress": 1}, r"distill.distribution_matching.progress must be true or false, got 1"),
    ]:
        with pytest.raises(DistillConfigError, match=message):
            check_matching_config(bad)
    with pytest.raises(DistillConfigError, match=r"distill.distribution_matching must be a section"):
        check_matching_config(5)


def test_config_spells_out_the_code_defaults(compose_cfg):
    """conf/distill/soft.yaml's matching section and MATCHING_DEFAULTS (what an absent key means) agree."""
    from gastrodistill.distillation.distribution_matching import MATCHING_DEFAULTS, check_matching_config

    section = compose_cfg(["distill=soft"]).distill.distribution_matching
    assert {k: section[k] for k in MATCHING_DEFAULTS} == MATCHING_DEFAULTS
    assert {k: v for k, v in check_matching_config({}).items() if k in MATCHING_DEFAULTS} == MATCHING_DEFAULTS
