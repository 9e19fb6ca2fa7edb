"""Texture matching before the bi-level loop: the statistics, the class targets, the loss and its
gradient, one Adam step, the config path (random features and a trained teacher) and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _distill_helpers import assert_grad_matches_central_differences, texture_net_and_teacher, texture_probe
from torch import nn
from torch.utils.data import DataLoader

from gastrodistill.distillation.augment import DSA
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.run import run_distillation
from gastrodistill.distillation.texture_matching import (
    TEXTURE_DEFAULTS,
    check_texture_config,
    class_texture_targets,
    exaggerate,
    exaggeration_offsets,
    match_textures,
    teacher_label_logits,
    texture_loss,
    texture_statistics,
)
from gastrodistill.models import ConvNet, LeNet
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.utils.seeding import torch_generator


def _maps_by_hand(net: ConvNet, x: torch.Tensor) -> list[np.ndarray]:
    """The input and each ReLU output of a ConvNet, stepping through ``net.features`` module by module."""
    maps, h = [x.detach().numpy()], x
    for m in net.features:
        h = m(h)
        if isinstance(m, nn.ReLU):
            maps.append(h.detach().numpy())
    return maps


def test_statistics_are_each_images_gram_matrices_and_channel_means():
    torch.manual_seed(0)
    net = ConvNet(1, 3, 16, width=5, depth=2, head="avg").double().eval()
    x = torch.randn(3, 1, 16, 16, dtype=torch.float64)
    got = texture_statistics(net, x)
    maps = _maps_by_hand(net, x)
    assert len(got) == 2 * len(maps) == 6  # the input and two blocks, a Gram matrix and means each
    for level, f in enumerate(maps):
        b, c, h, w = f.shape
        for i in range(b):
            flat = f[i].reshape(c, h * w)
            gram = np.array([[np.dot(flat[p], flat[q]) / (h * w) for q in range(c)] for p in range(c)])
            np.testing.assert_allclose(got[2 * level][i].detach().numpy(), gram.reshape(-1), rtol=1e-12)
            np.testing.assert_allclose(got[2 * level + 1][i].detach().numpy(), flat.mean(1), rtol=1e-12)
    # ReLUs after the flattening (LeNet's classifier) carry no texture and are left out.
    lenet = LeNet(1, 3, 16)
    n_conv_relus = sum(1 for m in lenet.modules() if isinstance(m, nn.ReLU)) - 2
    assert len(texture_statistics(lenet, x.float())) == 2 * (1 + n_conv_relus)
    with pytest.raises(ModelConfigError, match="no nn.ReLU module"):
        texture_statistics(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten()), x.float())


def test_exaggeration_pushes_each_class_away_from_the_average_of_the_classes():
    means = torch.tensor([[1.0, 0.0], [3.0, 2.0], [2.0, 7.0]], dtype=torch.float64)
    assert torch.equal(exaggerate(means, 0.0), means)
    centre = means.mean(0)
    out = exaggerate(means, 1.5)
    assert torch.allclose(out.mean(0), centre)  # the average of the classes stays
    assert torch.allclose(out - centre, 2.5 * (means - centre))


def test_class_targets_are_the_exaggerated_means_over_all_patches(tiny_dm):
    tiny_dm.setup()
    net = ConvNet(1, 3, 6, width=3, depth=1, head="avg").eval()
    batches = DataLoader(tiny_dm.dataset("train"), batch_size=5, shuffle=False)  # uneven last batch
    targets = class_texture_targets([net], batches, 3, alpha=0.5)
    x = torch.stack([tiny_dm.dataset("train")[i][0] for i in range(len(tiny_dm.labels("train")))])
    y = torch.as_tensor(tiny_dm.labels("train"))
    with torch.no_grad():
        whole = texture_statistics(net, x)
    assert len(targets) == 1 and len(targets[0]) == len(whole)
    for got, s in zip(targets[0], whole, strict=True):
        means = torch.stack([s[y == c].double().mean(0) for c in range(3)])
        want = means + 0.5 * (means - means.mean(0))
        assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-6)
    one_class = [(x[y == 0], y[y == 0])]
    with pytest.raises(DistillConfigError, match="class 1 has none"):
        class_texture_targets([net], one_class, 3, alpha=0.0)


def test_the_loss_against_a_numpy_loop_and_its_gradient_against_float64_finite_differences():
    net, targets = texture_probe(1)
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])

    def loss(s):
        return texture_loss(texture_statistics(net, s), targets, labels)

    with torch.no_grad():
        stats = [v.numpy() for v in texture_statistics(net, syn)]
    want = 0.0
    for s, t in zip(stats, targets, strict=True):
        t = t.numpy()
        want += np.mean([np.sum((s[i] - t[labels[i]]) ** 2) for i in range(6)]) / np.mean(np.sum(t**2, 1))
    assert float(loss(syn).detach()) == pytest.approx(want, rel=1e-10)
    assert_grad_matches_central_differences(loss, syn, rel=1e-5, abs_tol=1e-9)


def test_a_spread_gives_each_image_of_a_class_its_own_exaggeration():
    """Image i's target ``t_y + o_i (t_y - mean_k t_k)`` equals the class means exaggerated by its own
    alpha_i, computed here from the raw means; the alphas climb evenly over [alpha - s, alpha + s]."""
    means = torch.tensor([[1.0, 0.0, 2.0], [3.0, 2.0, -1.0], [2.0, 7.0, 0.5]], dtype=torch.float64)
    labels = torch.tensor([2, 0, 0, 1, 0, 2, 1, 0, 1])  # interleaved classes: order within a class counts
    alpha, spread = 1.5, 1.0
    offsets = exaggeration_offsets(labels, 3, alpha, spread).double()
    t = exaggerate(means, alpha)
    per_image = t[labels] + offsets[:, None] * (t - t.mean(0))[labels]
    for c in range(3):
        idx = torch.nonzero(labels == c).flatten().tolist()
        alphas = np.linspace(alpha - spread, alpha + spread, len(idx))
        for i, a in zip(idx, alphas, strict=True):
            assert torch.allclose(per_image[i], exaggerate(means, float(a))[c], atol=1e-6)
    assert torch.equal(exaggeration_offsets(labels, 3, alpha, 0.0), torch.zeros(9))
    assert exaggeration_offsets(torch.tensor([0, 1, 1]), 2, 1.0, 1.0)[0] == 0  # a class's only image: alpha
    with pytest.raises(DistillConfigError, match="exaggeration_spread must be between 0 and exaggeration"):
        exaggeration_offsets(labels, 3, 0.5, 1.0)


def test_the_loss_with_offsets_against_a_numpy_loop_and_finite_differences():
    torch.manual_seed(2)
    net = ConvNet(1, 3, 8, width=3, depth=1, head="avg").double().eval()
    raw = class_texture_targets([net], [(torch.randn(9, 1, 8, 8).double(), torch.arange(9) % 3)], 3, 0.0)[0]
    alpha = 1.0
    targets = [exaggerate(t.double(), alpha) for t in raw]
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    offsets = exaggeration_offsets(labels, 3, alpha, 1.0).double()
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)

    def loss(s):
        return texture_loss(texture_statistics(net, s), targets, labels, offsets)

    with torch.no_grad():
        stats = [v.numpy() for v in texture_statistics(net, syn)]
    alphas = [0.0, 2.0, 0.0, 2.0, 0.0, 2.0]  # [alpha - 1, alpha + 1] over each class's two images
    want = 0.0
    for s, m, t in zip(stats, raw, targets, strict=True):
        m, t = m.double().numpy(), t.numpy()
        per = [m[labels[i]] + alphas[i] * (m[labels[i]] - m.mean(0)) for i in range(6)]
        want += np.mean([np.sum((s[i] - per[i]) ** 2) for i in range(6)]) / np.mean(np.sum(t**2, 1))
    assert float(loss(syn).detach()) == pytest.approx(want, rel=1e-10)
    assert_grad_matches_central_differences(loss, syn, rel=1e-5, abs_tol=1e-9)


def _tiny_set() -> DistilledSet:
    return DistilledSet(3, 2, 1, 1, (1, 6, 6)).init_noise(torch_generator(0, "texture-test"))


def test_one_step_is_adams_first_step_and_matching_lowers_the_loss(tiny_dm):
    """Adam's first step moves every pixel by lr * g / (|g| + eps); recomputed here independently."""
    net, teacher, targets = texture_net_and_teacher(tiny_dm, 3)
    ds = _tiny_set()
    before = ds.images.detach().clone()
    assert match_textures(ds, [net], targets, steps=0, lr=0.1) == []
    assert torch.equal(ds.images.detach(), before)
    losses = match_textures(
        ds, [net], targets, steps=1, lr=0.1, teacher=teacher, teacher_ce=0.3, progress=False
    )
    x = before.clone().requires_grad_(True)
    labels = ds.hard_labels()
    loss = texture_loss(texture_statistics(net, x), targets[0], labels)
    loss = loss + 0.3 * nn.functional.cross_entropy(teacher(x), labels)
    (g,) = torch.autograd.grad(loss, x)
    assert losses == [pytest.approx(float(loss.detach()), rel=1e-6)]
    assert torch.allclose(ds.images.detach(), before - 0.1 * g / (g.abs() + 1e-8), atol=1e-6)
    ds = _tiny_set()
    losses = match_textures(ds, [net], targets, steps=80, lr=0.05, progress=False)
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])


def test_matching_leaves_the_feature_networks_and_the_teacher_untouched(tiny_dm):
    """The networks are frozen and in eval mode: with batch norm, matching a set (from training mode)
    changes neither their weights nor their running statistics, and leaves no gradient on them; each
    step's loss is the one of eval-mode networks."""
    tiny_dm.setup()
    torch.manual_seed(4)
    net = ConvNet(1, 3, 6, width=4, depth=1, head="avg", norm="batch")
    teacher = ConvNet(1, 3, 6, width=4, depth=1, head="avg", norm="batch")
    targets = class_texture_targets([net.eval()], DataLoader(tiny_dm.dataset("train"), batch_size=64), 3, 1.0)
    net.train(), teacher.train()
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (net, teacher)]
    ds = _tiny_set()
    x = ds.images.detach().clone()
    losses = match_textures(
        ds, [net], targets, steps=2, lr=0.1, teacher=teacher, teacher_ce=0.3, progress=False
    )
    for m, saved in zip((net, teacher), before, strict=True):
        assert not m.training
        assert all(torch.equal(v, saved[k]) for k, v in m.state_dict().items())
        assert all(p.grad is None for p in m.parameters())
    with torch.no_grad():
        labels = ds.hard_labels()
        first = texture_loss(texture_statistics(net, x), targets[0], labels)
        first = first + 0.3 * nn.functional.cross_entropy(teacher(x), labels)
    assert losses[0] == pytest.approx(float(first), rel=1e-6)


def test_the_section_is_checked_even_when_off():
    assert check_texture_config(None)["steps"] == 0
    ok = check_texture_config({"steps": 3, "features": "random", "exaggeration": 0, "random_networks": 2})
    assert (ok["steps"], ok["features"], ok["exaggeration"], ok["random_networks"]) == (3, "random", 0.0, 2)
    for bad, message in [
        ({"steps": -1}, r"distill.texture_matching.steps must be >= 0 \(0 = off\), got -1"),
        ({"lr": 0}, r"distill.texture_matching.lr must be > 0, got 0.0"),
        ({"features": "vgg"}, r"distill.texture_matching.features must be one of teacher, random, got 'vgg'"),
        ({"exaggeration": -0.5}, r"distill.texture_matching.exaggeration must be >= 0"),
        ({"teacher_ce": -1}, r"distill.texture_matching.teacher_ce must be >= 0"),
        ({"random_networks": 0}, r"distill.texture_matching.random_networks must be >= 1"),
        ({"steps": 2.5}, r"distill.texture_matching.steps must be an integer, got 2.5"),
        ({"lr": "fast"}, r"distill.texture_matching.lr must be a number, got 'fast'"),
        ({"lr": float("inf")}, r"distill.texture_matching.lr must be a finite number, got inf"),
        ({"exaggeration": float("nan")}, r"distill.texture_matching.exaggeration must be a finite number"),
        ({"teacher_ce": float("inf")}, r"distill.texture_matching.teacher_ce must be a finite number"),
        ({"augment": "no"}, r"distill.texture_matching.augment must be true or false, got 'no'"),
        (
            {"exaggeration": 1.0, "exaggeration_spread": 1.5},
            r"spread must be between 0 and distill.texture_matching.exaggeration \(1.0: no image",
        ),
        ({"exaggeration_spread": -0.1}, r"distill.texture_matching.exaggeration_spread must be between 0"),
        (
            {"teacher_labels": 0, "steps": 1},
            r"teacher_labels must be a temperature > 0 \(or null: off\), got 0",
        ),
        ({"teacher_labels": "hot"}, r"distill.texture_matching.teacher_labels must be a number, got 'hot'"),
        ({"teacher_labels": float("inf"), "steps": 1}, r"teacher_labels must be a temperature > 0"),
        ({"teacher_labels": 2.0, "steps": 1, "features": "random"}, r"teacher_labels needs the teacher: set"),
        (
            {"teacher_labels": 2.0},
            r"texture matching trains, which is off \(distill.texture_matching.steps=0\)",
        ),
    ]:
        with pytest.raises(DistillConfigError, match=message):
            check_texture_config(bad)
    with pytest.raises(DistillConfigError, match="distill.texture_matching must be a section"):
        check_texture_config(3)


def test_config_spells_out_the_code_defaults(compose_cfg):
    section = compose_cfg(["distill=soft"]).distill.texture_matching
    assert {k: section[k] for k in TEXTURE_DEFAULTS} == TEXTURE_DEFAULTS


@pytest.mark.parametrize("features", ["random", "teacher"])
def test_the_config_runs_it_before_the_loop(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, features, monkeypatch
):
    on = [
        "distill.texture_matching.steps=3",
        f"distill.texture_matching.features={features}",
        f"distill.texture_matching.exaggeration_spread={0.5 if features == 'random' else 0.0}",
        "distill.texture_matching.random_networks=2",
        "distill.texture_matching.progress=false",
        "distill.outer_steps=1",
        "eval.baselines.real.epochs=1",
        "eval.baselines.real.precision=32-true",
    ]
    cfg = compose_cfg([*tiny_overrides, *on])
    import gastrodistill.distillation.run as run_module

    seen, real_match = [], run_module.match_textures
    monkeypatch.setattr(run_module, "match_textures", lambda *a, **k: seen.append(k) or real_match(*a, **k))
    run_distillation(cfg, tiny_dm, tmp_path / "a")
    offsets = seen[0]["offsets"]  # the spread reaches the matching as each image's own exaggeration
    if features == "random":
        labels = DistilledSet.load(tmp_path / "a" / "soft").hard_labels()
        assert torch.equal(offsets, exaggeration_offsets(labels, 3, 1.0, 0.5))
    else:
        assert offsets is None
    summary = json.loads((tmp_path / "a" / "soft" / "summary.json").read_text())
    assert summary["texture_matching_steps"] == 3
    assert summary["texture_matching_loss_last"] < summary["texture_matching_loss_first"]
    off = compose_cfg([*tiny_overrides, "distill.outer_steps=1"])
    run_distillation(off, tiny_dm, tmp_path / "b")
    assert json.loads((tmp_path / "b" / "soft" / "summary.json").read_text())["texture_matching_steps"] == 0
    # Same seed, same start: only the matching separates the two saved sets.
    a = DistilledSet.load(tmp_path / "a" / "soft")
    b = DistilledSet.load(tmp_path / "b" / "soft")
    assert not torch.allclose(a.images, b.images)


def test_teacher_label_logits_are_the_teachers_logits_over_the_temperature_in_any_batching():
    torch.manual_seed(0)
    teacher = ConvNet(in_channels=1, num_classes=3, width=4, depth=2, image_size=16)
    images = torch.randn(7, 1, 16, 16)
    for tau in (1.0, 2.5):
        by_hand = np.stack([teacher(images[i : i + 1]).detach().numpy()[0] / tau for i in range(7)])
        got = teacher_label_logits(teacher, images, tau, batch=3)
        np.testing.assert_allclose(got.numpy(), by_hand, rtol=1e-5, atol=1e-6)
        assert not got.requires_grad and got.dtype == torch.float32
    # at temperature 1 the soft targets are the teacher's own prediction
    p = torch.softmax(teacher_label_logits(teacher, images, 1.0), 1)
    np.testing.assert_allclose(p.numpy(), torch.softmax(teacher(images), 1).detach().numpy(), atol=1e-6)


@pytest.mark.parametrize("mode", ["soft", "hard"])
def test_teacher_labels_start_the_soft_labels_at_the_teachers_prediction(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, mode
):
    """With the outer rates at 0 the saved set holds the matched images and the labels' start: soft targets
    equal to softmax(teacher logits / tau) on those images at any distill.temperature (soft), or the one-hot
    logits (hard: the option does not apply)."""
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "distill.texture_matching.steps=2",
            "distill.texture_matching.teacher_labels=2.0",
            "distill.temperature=4.0",
            "distill.texture_matching.progress=false",
            "distill.outer_steps=1",
            "distill.lr_images=0",
            "distill.lr_labels=0",
            "eval.baselines.real.epochs=1",
            "eval.baselines.real.precision=32-true",
        ]
    )
    import gastrodistill.distillation.run as run_module

    seen, real_match = [], run_module.match_textures
    monkeypatch.setattr(run_module, "match_textures", lambda *a, **k: seen.append(k) or real_match(*a, **k))
    run_distillation(cfg, tiny_dm, tmp_path, mode=mode)
    saved = DistilledSet.load(tmp_path / mode)
    teacher = seen[0]["teacher"]
    with torch.no_grad():
        expected = torch.softmax(teacher(saved.images.float()) / 2.0, 1)  # softmax(teacher / tau)
    if mode == "soft":  # at any distill.temperature: the logits are scaled by it
        assert saved.temperature == 4.0
        got = saved.soft_targets().detach().numpy()
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-5)
    else:  # the hard set's logits stay one-hot x label_init_scale (its targets are one-hot in any case)
        one_hot = torch.nn.functional.one_hot(saved.hard_labels(), 3).float() * cfg.distill.label_init_scale
        assert torch.equal(saved.label_logits.detach(), one_hot)


def test_a_teacher_is_refused_under_a_multi_process_launch(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
):
    import gastrodistill.distillation.run as run_module

    monkeypatch.setattr(run_module, "world_size", lambda: 2)
    cfg = compose_cfg([*tiny_overrides, "distill.texture_matching.steps=2", "distill.outer_steps=1"])
    with pytest.raises(DistillConfigError, match="features=random"):
        run_distillation(cfg, tiny_dm, tmp_path / "a")
    assert not (tmp_path / "a" / "soft" / "distilled.safetensors").exists()


def test_an_inplace_relu_gives_the_same_statistics_and_gradient():
    """A hook keeps the ReLU's output; an in-place ReLU, or an in-place op after it, must not change what
    was kept (the class targets are computed without a graph; the matching differentiates)."""

    def net(inplace: bool, clamp: bool) -> nn.Module:
        torch.manual_seed(5)
        after = [nn.Hardtanh(inplace=True)] if clamp else []
        return (
            nn.Sequential(
                nn.Conv2d(1, 3, 3, padding=1),
                nn.ReLU(inplace=inplace),
                *after,
                nn.Conv2d(3, 2, 3, padding=1),
                nn.ReLU(inplace=inplace),
                nn.Flatten(),
                nn.Linear(2 * 36, 3),
            )
            .double()
            .eval()
        )

    torch.manual_seed(2)
    x = torch.randn(4, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():  # an in-place clamp after the ReLU: the statistics still read the ReLU's output
        a, b = texture_statistics(net(False, True), x), texture_statistics(net(True, True), x)
        want = [torch.relu(net(False, False)[0](x))]
    for u, v in zip(a, b, strict=True):
        assert torch.allclose(u, v)
    flat = want[0].flatten(2)
    assert torch.allclose(a[2], (flat @ flat.transpose(1, 2)).flatten(1) / 36)
    xs = [x.clone().requires_grad_(True) for _ in range(2)]
    stats = [
        texture_statistics(net(inplace, False), xi) for inplace, xi in zip((False, True), xs, strict=True)
    ]
    for st in stats:
        sum(t.sum() for t in st).backward()
    assert torch.allclose(xs[0].grad, xs[1].grad)


def test_a_network_without_relu_is_refused_before_the_teacher_trains(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
):
    import gastrodistill.evaluation.full_data as full_data

    def no_training(*_a, **_k):
        raise AssertionError("the teacher was trained before the refusal")

    monkeypatch.setattr(full_data, "train_full_data", no_training)
    cfg = compose_cfg([*tiny_overrides, "model.act=tanh", "distill.texture_matching.steps=2"])
    with pytest.raises(ModelConfigError, match="model.act=relu"):
        run_distillation(cfg, tiny_dm, tmp_path / "a")


def test_a_saved_teacher_that_does_not_fit_the_network_is_refused_naming_the_file(tmp_path):
    from gastrodistill.distillation.run import load_texture_teacher
    from gastrodistill.models.weights import save_weights

    torch.manual_seed(0)
    saved = ConvNet(in_channels=1, num_classes=3, width=4, depth=2, image_size=16)
    path = save_weights(saved, tmp_path / "teacher.safetensors")
    same = load_texture_teacher(
        lambda: ConvNet(in_channels=1, num_classes=3, width=4, depth=2, image_size=16), path
    )
    assert not same.training  # returned in eval mode, its weights the saved ones
    for k, v in saved.state_dict().items():
        assert torch.equal(same.state_dict()[k], v)

    def wider() -> ConvNet:
        return ConvNet(in_channels=1, num_classes=3, width=8, depth=2, image_size=16)

    with pytest.raises(
        DistillConfigError, match=r"teacher\.safetensors: the texture-matching teacher does not"
    ):
        load_texture_teacher(wider, path)


def test_with_augment_every_step_sees_the_images_through_that_steps_draw(tiny_dm):
    """``augment``: each step's texture statistics and teacher cross-entropy are those of the images
    flipped and shifted by the draw of (seed, step); Adam's first step recomputed independently."""
    net, teacher, targets = texture_net_and_teacher(tiny_dm, 3)
    dsa = DSA(flip=True, shift_px=2)
    ds = _tiny_set()
    before = ds.images.detach().clone()
    losses = match_textures(
        ds,
        [net],
        targets,
        steps=1,
        lr=0.1,
        teacher=teacher,
        teacher_ce=0.3,
        augment=dsa,
        seed=5,
        progress=False,
    )
    x = before.clone().requires_grad_(True)
    seen = dsa(x, torch_generator(5, "texture-matching-augment", 0))
    assert not torch.equal(seen.detach(), before)  # the draw moves the images: the test can tell
    labels = ds.hard_labels()
    loss = texture_loss(texture_statistics(net, seen), targets[0], labels)
    loss = loss + 0.3 * nn.functional.cross_entropy(teacher(seen), labels)
    (g,) = torch.autograd.grad(loss, x)
    assert losses == [pytest.approx(float(loss.detach()), rel=1e-6)]
    assert torch.allclose(ds.images.detach(), before - 0.1 * g / (g.abs() + 1e-8), atol=1e-6)
    plain = _tiny_set()
    match_textures(plain, [net], targets, steps=1, lr=0.1, teacher=teacher, teacher_ce=0.3, progress=False)
    assert not torch.allclose(plain.images, ds.images)


def test_augmented_matching_is_a_function_of_the_seed(tiny_dm):
    net, _, targets = texture_net_and_teacher(tiny_dm, 3)
    runs = {}
    for name, seed in (("a", 3), ("again", 3), ("other", 4)):
        ds = _tiny_set()
        match_textures(
            ds, [net], targets, steps=3, lr=0.1, augment=DSA(flip=True, shift_px=2), seed=seed, progress=False
        )
        runs[name] = ds.images.detach()
    assert torch.equal(runs["a"], runs["again"])
    assert not torch.allclose(runs["a"], runs["other"])


@pytest.mark.parametrize("augment", [True, False])
def test_the_config_hands_the_distillers_augmentation_to_the_matching(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, augment
):
    """``distill.texture_matching.augment``: the module's DSA (``distill.dsa``) and the run's seed reach
    :func:`match_textures`; off, no augmentation does."""
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "distill.texture_matching.steps=2",
            "distill.texture_matching.features=random",
            "distill.texture_matching.random_networks=1",
            "distill.texture_matching.progress=false",
            f"distill.texture_matching.augment={str(augment).lower()}",
            "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 1}",
            "distill.outer_steps=1",
            "seed=11",
        ]
    )
    import gastrodistill.distillation.run as run_module

    seen, real_match = [], run_module.match_textures
    monkeypatch.setattr(run_module, "match_textures", lambda *a, **k: seen.append(k) or real_match(*a, **k))
    run_distillation(cfg, tiny_dm, tmp_path / "a")
    if augment:
        assert (type(seen[0]["augment"]).__name__, seen[0]["augment"].shift_px) == ("DSA", 1)
        assert seen[0]["seed"] == 11
    else:
        assert seen[0]["augment"] is None
