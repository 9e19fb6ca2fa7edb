"""The distiller's options through the config and a real Trainer: wiring, exact resume, clipping, init."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch

from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.inner_loop import meta_objective, release_template, sample_window_end
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


def set_grad_norm(params: list[torch.Tensor], value: float, where: int) -> None:
    """Zero every gradient but one entry (the first or last of ``params[where]``): the norm is ``value``."""
    for p in params:
        p.grad = torch.zeros_like(p)
    params[where].grad.view(-1)[where] = value


def grad_norm(params: list[torch.Tensor]) -> float:
    """The global L2 norm of ``params``' gradients."""
    return float(torch.sqrt(sum((p.grad**2).sum() for p in params)))


def test_ema_clipping_bounds_the_norm_against_its_running_average(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.grad_clip_ema=2.0", "distill.grad_clip_ema_decay=0.5"])
    module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    params = list(module.distilled.parameters())

    set_grad_norm(params, 1.0, 0)
    module._clip_to_running_norm()  # first step: the EMA starts at the norm, nothing clipped
    assert module.grad_norm_ema == 1.0 and grad_norm(params) == 1.0
    set_grad_norm(params, 10.0, 0)
    module._clip_to_running_norm()  # limit 2 x 1.0
    assert grad_norm(params) == pytest.approx(2.0) and module.grad_norm_ema == pytest.approx(1.5)
    set_grad_norm(params, 1.0, 0)
    module._clip_to_running_norm()  # under the limit 3.0: untouched
    assert grad_norm(params) == pytest.approx(1.0) and module.grad_norm_ema == pytest.approx(1.25)


def test_ema_clipping_with_a_limit_below_one_and_an_uneven_decay(compose_cfg, tiny_dm, tiny_overrides):
    """grad_clip_ema 0.5, decay 0.8: the first norm only starts the average (even above 0.5 x itself);
    later EMA = 0.8 EMA + 0.2 (clipped norm)."""
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.grad_clip_ema=0.5", "distill.grad_clip_ema_decay=0.8"])
    module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    params = list(module.distilled.parameters())

    def clip(value: float) -> float:
        set_grad_norm(params, value, -1)
        module._clip_to_running_norm()
        return grad_norm(params)

    assert clip(4.0) == 4.0 and module.grad_norm_ema == 4.0
    assert clip(10.0) == pytest.approx(2.0)  # limit 0.5 x 4
    assert module.grad_norm_ema == pytest.approx(0.8 * 4.0 + 0.2 * 2.0)  # 3.6
    assert clip(1.0) == pytest.approx(1.0)  # under the limit 1.8
    assert module.grad_norm_ema == pytest.approx(0.8 * 3.6 + 0.2 * 1.0)


def test_the_running_norm_travels_in_the_checkpoint(compose_cfg, tiny_dm, tiny_overrides):
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.grad_clip_ema=2.0"])
    saving = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    saving.grad_norm_ema = 3.25
    ckpt = {"state_dict": saving.state_dict()}
    saving.on_save_checkpoint(ckpt)
    loading = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    assert loading.grad_norm_ema is None
    loading.on_load_checkpoint(ckpt)
    assert loading.grad_norm_ema == 3.25


def test_due_steps_and_the_ranks_share_of_a_global_real_batch(compose_cfg, tiny_dm, tiny_overrides):
    """Logging/checking every 3 of 7 steps: steps 2 and 5 (every 3rd) and 6 (the last). A global real
    batch of 16 over 3 ranks: ceil(16 / 3) = 6 per rank."""
    tiny_dm.setup()
    cfg = compose_cfg([*tiny_overrides, "distill.batch_real_per_rank=false"])
    module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", 0), None)
    module._trainer = SimpleNamespace(max_steps=7, world_size=3)
    assert [s for s in range(7) if module._due(s, 3)] == [2, 5, 6]
    assert [s for s in range(7) if module._due(s, 1)] == list(range(7))
    module.on_fit_start()
    assert module.real_batches.batch_size == 6


def test_each_rank_and_inner_network_draws_its_own_batch_augmentation_and_window(
    compose_cfg, tiny_dm, tiny_overrides
):
    """The module's objective for (step, rank, index) is meta_objective on that rank's real batch with the
    window end of ``(seed, "window", step, rank, index)`` and DSA draws of ``(seed, "dsa", step, rank,
    index)``; ``dsa.real: false`` leaves the real batch as it is; ``inner_net_loss`` is unchunked."""
    tiny_dm.setup()
    dsa_node = "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, shift_px: 1, real: false}"
    cfg = compose_cfg(
        [*tiny_overrides, "distill.epochs=2", "distill.window=2", "distill.outer_chunk=5", dsa_node]
    )
    module = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed), None)
    assert module.augment_real is False
    src = module.real_batches
    ds, t = module.distilled, module.distilled.num_inner_steps
    losses = []
    for step, rank, index in [(1, 0, 0), (1, 0, 1), (1, 1, 0)]:
        x, y = module.real_batch(step, rank)
        assert torch.equal(y, torch.as_tensor(src.labels[src.indices(step, rank).numpy()]))
        res, net = module.inner_net_objective(x, y, step, rank, index)
        end = sample_window_end(t, 2, torch_generator(cfg.seed, "window", step, rank, index))
        want = meta_objective(
            net,
            ds,
            x,
            y,
            window=2,
            window_end=end,
            outer_chunk=5,
            augment=module.augment,
            augment_real=False,
            seed_parts=(cfg.seed, "dsa", step, rank, index),
        )
        assert res.loss.item() == pytest.approx(want.loss.item(), rel=1e-6), (step, rank, index)
        losses.append(res.loss.item())
        loss, logits, net = module.inner_net_loss(x, y, step, rank, index)
        assert logits is not None and logits.shape == (len(y), 3)
        release_template(net)
    assert len(set(losses)) == 3


class _StepRecorder(pl.Callback):
    """Per outer step: the meta-gradient's global norm and each group's lr, as the optimiser sees them."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.lrs: list[dict[str, float]] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        grads = [p.grad for p in pl_module.distilled.parameters() if p.grad is not None]
        self.norms.append(float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))))
        self.lrs.append({g["name"]: g["lr"] for g in optimizer.param_groups})


def test_absolute_clipping_own_group_rates_and_the_step_schedule(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    """distill.grad_clip caps the applied meta-gradient's norm; each tensor's Adam group starts at its own
    rate and StepLR(step_size=1, gamma=0.5) halves every rate after each outer step."""
    rec = _StepRecorder()
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "distill.grid_every=0",
            "distill.grad_clip=1e-4",
            "distill.lr_images=0.02",
            "distill.lr_labels=0.03",
            "distill.lr_lrs=0.04",
            "distill.scheduler.step_size=1",
            "distill.scheduler.gamma=0.5",
        ]
    )
    run_distillation(cfg, tiny_dm, tmp_path / "out", callbacks=[rec])
    assert len(rec.norms) == 3
    assert all(n == pytest.approx(1e-4, rel=1e-3) for n in rec.norms), rec.norms
    for s, lrs in enumerate(rec.lrs):
        base = {"images": 0.02, "label_logits": 0.03, "raw_lrs": 0.04}
        assert lrs == pytest.approx({k: v * 0.5**s for k, v in base.items()}), s


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
    assert 0.3 < float(resid.detach().std()) < 0.7
