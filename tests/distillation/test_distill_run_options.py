"""The distiller's options through the config and a real Trainer: wiring, exact resume, clipping, init."""

from __future__ import annotations

import json

import pytest
import torch

from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.inner_loop import sample_window_end
from gastrodistill.distillation.run import build_distilled_set, build_module, run_distillation
from gastrodistill.evaluation.baselines import class_means
from gastrodistill.utils.seeding import torch_generator

DSA_OVERRIDE = (
    "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, rotate: 10, scale: 0.1, "
    "translate: 0.1, brightness: 0.1, contrast: 0.1}"
)
ALL_OPTIONS = [
    "distill.inner_momentum=0.5",
    "distill.epochs=2",  # T = 4
    "distill.window=2",
    "distill.outer_chunk=5",
    "distill.grad_clip_ema=1.5",
    "distill.grad_clip_ema_decay=0.5",
    DSA_OVERRIDE,
]


def test_defaults_are_todays_behaviour(compose_cfg):
    d = compose_cfg(["distill=soft_cpu"]).distill
    assert d.inner_momentum == 0.0 and d.window is None and d.outer_chunk is None and d.dsa is None
    assert d.grad_clip_ema is None and d.image_init == "noise"


def test_options_reach_the_module_and_the_set(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, *ALL_OPTIONS])
    ds = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
    module = build_module(cfg, tiny_dm, ds, None)
    assert ds.inner_momentum == 0.5
    assert module.window == 2 and module.outer_chunk == 5 and module.grad_clip_ema == 1.5
    assert isinstance(module.augment, DSA) and module.augment.rotate == 10.0 and module.augment_real
    ends = {module.window_end(s, 0, 0) for s in range(40)}
    assert ends == {2, 3, 4}
    # each (rank, inner network) draws its own ends, from the generator named by both
    steps = range(40)
    draws = {ri: [module.window_end(s, *ri) for s in steps] for ri in ((0, 0), (1, 0), (0, 1))}
    t = module.distilled.num_inner_steps
    for (rank, index), ends in draws.items():
        gens = [torch_generator(module.seed, "window", s, rank, index) for s in steps]
        assert ends == [sample_window_end(t, 2, g) for g in gens]
    assert draws[(0, 0)] != draws[(1, 0)] and draws[(0, 0)] != draws[(0, 1)]


@pytest.mark.parametrize("backend", ["func", "higher"])
def test_exact_resume_with_every_option(compose_cfg, tiny_dm, tiny_overrides, tmp_path, backend):
    """Stop at step 2 and resume to 4 with window, DSA, chunks, momentum and EMA clipping: same tensors."""
    common = [*tiny_overrides, *ALL_OPTIONS, f"distill.backend={backend}", "distill.outer_steps=4"]
    common += ["distill.grid_every=0"]
    full = run_distillation(compose_cfg(common), tiny_dm, tmp_path / "full")
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=2", "distill.ckpt_every=2"]), tiny_dm, tmp_path / "part"
    )
    ckpt = torch.load(tmp_path / "part" / "soft" / "checkpoints" / "last.ckpt", weights_only=False)
    assert isinstance(ckpt["grad_norm_ema"], float) and ckpt["grad_norm_ema"] > 0
    resumed = run_distillation(
        compose_cfg([*common, "distill.resume=last", "distill.ckpt_every=2"]), tiny_dm, tmp_path / "part"
    )
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(full, name), getattr(resumed, name)), name
    meta = json.loads((tmp_path / "full" / "soft" / "distilled.json").read_text())
    assert meta["inner_momentum"] == 0.5
    assert DistilledSet.load(tmp_path / "full" / "soft").inner_momentum == 0.5


def test_ema_clipping_bounds_the_norm_against_its_running_average(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.grad_clip_ema=2.0", "distill.grad_clip_ema_decay=0.5"])
    module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    params = list(module.distilled.parameters())

    def set_norm(value: float) -> None:
        for p in params:
            p.grad = torch.zeros_like(p)
        params[0].grad.view(-1)[0] = value

    def norm() -> float:
        return float(torch.sqrt(sum((p.grad**2).sum() for p in params)))

    set_norm(1.0)
    module._clip_to_running_norm()  # first step: the EMA starts at the norm, nothing clipped
    assert module.grad_norm_ema == 1.0 and norm() == 1.0
    set_norm(10.0)
    module._clip_to_running_norm()  # limit 2 x 1.0
    assert norm() == pytest.approx(2.0) and module.grad_norm_ema == pytest.approx(1.5)
    set_norm(1.0)
    module._clip_to_running_norm()  # under the limit 3.0: untouched
    assert norm() == pytest.approx(1.0) and module.grad_norm_ema == pytest.approx(1.25)


def test_class_mean_init_is_the_class_mean_plus_noise(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.image_init=class_mean", "distill.class_mean_noise_std=0.0"])
    ds = build_distilled_set(cfg.distill, tiny_dm, "soft", 0)
    x, y = tiny_dm.load_split("train")
    for c in range(3):  # independent: the plain mean of each class's normalised training images
        expected = x[y == c].double().mean(0).float()
        for i in torch.nonzero(ds.hard_labels() == c).flatten():
            assert torch.allclose(ds.images[i], expected, atol=1e-5)
    cfg = compose_cfg([*tiny_overrides, "distill.image_init=class_mean", "distill.class_mean_noise_std=0.5"])
    noisy = build_distilled_set(cfg.distill, tiny_dm, "soft", 0)
    means, _ = class_means([(x, y)], 3)
    resid = noisy.images - means[noisy.hard_labels()]
    assert 0.3 < float(resid.std()) < 0.7
