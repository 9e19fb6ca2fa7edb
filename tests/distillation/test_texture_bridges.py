"""Bridge images of texture matching (soft mode): the partner classes, which images become bridges, the
loss and its gradient against a numpy loop and float64 finite differences, the teacher's cross-entropy
toward the mix, and the config path (soft sets have them, hard sets never)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from _distill_helpers import assert_grad_matches_central_differences, texture_net_and_teacher, texture_probe
from torch import nn
from torch.utils.data import DataLoader

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.run import run_distillation
from gastrodistill.distillation.texture_matching import (
    Bridges,
    bridge_images,
    check_texture_config,
    confused_classes,
    exaggeration_offsets,
    match_textures,
    nearest_classes,
    texture_loss,
    texture_statistics,
)
from gastrodistill.utils.seeding import torch_generator


def test_each_class_is_paired_with_the_class_of_the_nearest_target_by_the_losss_distance():
    """Two statistics of very different scales: the distance weights each by its targets' mean square, so
    the small-scale statistic decides as much as the large one (a plain Euclidean pairing would differ)."""
    big = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 130.0], [101.0, 0.0]])  # 1 <-> 3 close; 0 near 1
    small = torch.tensor([[0.0], [0.9], [0.05], [0.6]])
    targets = [big, small]
    weights = [float(np.mean(np.sum(t.numpy() ** 2, 1))) for t in targets]
    want = []
    for c in range(4):
        d = [
            np.inf
            if c == k
            else sum(
                np.sum((t[c].numpy() - t[k].numpy()) ** 2) / w for t, w in zip(targets, weights, strict=True)
            )
            for k in range(4)
        ]
        want.append(int(np.argmin(d)))
    got = nearest_classes(targets).tolist()
    assert got == want
    assert got[0] == 2  # by scale alone class 0 would pair with 1 (distance 100 against 130)
    assert nearest_classes([big]).tolist()[0] == 1


class _FixedLogits(nn.Module):
    """A 'teacher' whose logits are the first pixels of each image (one per class)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.anchor = nn.Parameter(torch.zeros(()))  # a device to read

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)[:, : self.k] + self.anchor


def test_the_teachers_partner_is_the_other_class_it_puts_most_probability_on_over_each_classs_patches():
    """Probabilities averaged over patches, not the arg-max counted: class 0's patches give class 1 the top
    other class on two patches of three, class 2 much more on the third (the mean favours class 2)."""
    logits = torch.tensor(
        [
            [3.0, 1.0, 0.9],  # class 0
            [3.0, 1.0, 0.9],
            [0.0, -2.0, 4.0],
            [0.0, 5.0, 1.0],  # class 1
            [0.5, 0.0, 4.0],  # class 2
            [0.0, 0.0, 2.0],
        ]
    )
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    x = torch.zeros(6, 1, 2, 2)
    x.view(6, -1)[:, :3] = logits
    batches = [(x[:4], labels[:4]), (x[4:], labels[4:])]  # streamed in two batches
    p = torch.softmax(logits.double(), 1).numpy()
    want = []
    for c in range(3):
        mean = p[labels.numpy() == c].mean(0)
        mean[c] = -np.inf
        want.append(int(np.argmax(mean)))
    got = confused_classes(_FixedLogits(3), batches, 3).tolist()
    assert got == want == [2, 2, 0]
    with pytest.raises(DistillConfigError, match="class 2 has none"):
        confused_classes(_FixedLogits(3), [(x[:4], labels[:4])], 3)


def test_the_first_images_of_each_class_become_bridges_toward_its_partner():
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])  # ipc 1 over 3 steps: a class's images interleave
    partners = torch.tensor([2, 2, 1])
    b = bridge_images(labels, partners, per_class=2, weight=0.25)
    assert b.partner.tolist() == [2, 2, 1, 2, 2, 1, 2, 2, 1]
    assert b.weight.tolist() == [0.25] * 6 + [0.0] * 3  # the first two of each class, in index order
    with pytest.raises(DistillConfigError, match=r"bridges=3 would leave class 0 \(3 images\) no image"):
        bridge_images(labels, partners, per_class=3, weight=0.25)


def test_the_loss_with_bridges_against_a_numpy_loop_and_finite_differences():
    net, targets = texture_probe(5)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    offsets = exaggeration_offsets(labels, 3, 1.0, 1.0).double()
    bridges = bridge_images(labels, torch.tensor([1, 0, 0]), per_class=1, weight=0.4)
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)

    def loss(s):
        return texture_loss(texture_statistics(net, s), targets, labels, offsets, bridges)

    with torch.no_grad():
        stats = [v.numpy() for v in texture_statistics(net, syn)]
    want = 0.0
    for s, t in zip(stats, targets, strict=True):
        t = t.numpy()
        per = []
        for i in range(6):
            y, o = int(labels[i]), float(offsets[i])
            own = t[y] + o * (t[y] - t.mean(0))
            beta = float(bridges.weight[i])
            per.append((1 - beta) * own + beta * t[int(bridges.partner[i])])
        want += np.mean([np.sum((s[i] - per[i]) ** 2) for i in range(6)]) / np.mean(np.sum(t**2, 1))
    assert float(loss(syn).detach()) == pytest.approx(want, rel=1e-10)
    assert_grad_matches_central_differences(loss, syn, rel=1e-5, abs_tol=1e-9)
    # no bridge (every weight 0) is the loss without bridges
    none = Bridges(bridges.partner, torch.zeros(6))
    with torch.no_grad():
        stats = texture_statistics(net, syn)
        plain = float(texture_loss(stats, targets, labels, offsets))
        assert float(texture_loss(stats, targets, labels, offsets, none)) == pytest.approx(plain, rel=1e-12)


def test_the_teachers_cross_entropy_goes_toward_the_mix(tiny_dm):
    net, teacher, targets = texture_net_and_teacher(tiny_dm, 6)
    ds = DistilledSet(3, 2, 1, 1, (1, 6, 6)).init_noise(torch_generator(0, "bridge-test"))
    x = ds.images.detach().clone()
    labels = ds.hard_labels()
    bridges = bridge_images(labels, torch.tensor([1, 2, 1]), per_class=1, weight=0.3)
    losses = match_textures(
        ds, [net], targets, steps=1, lr=0.1, teacher=teacher, teacher_ce=0.5, bridges=bridges, progress=False
    )
    with torch.no_grad():
        logp = torch.log_softmax(teacher(x), 1).numpy()
    mix = np.zeros((6, 3))
    for i in range(6):
        beta = float(bridges.weight[i])
        mix[i, int(labels[i])] += 1 - beta
        mix[i, int(bridges.partner[i])] += beta
    ce = -np.mean(np.sum(mix * logp, 1))
    with torch.no_grad():
        tex = float(texture_loss(texture_statistics(net, x), targets[0], labels, None, bridges))
    assert losses[0] == pytest.approx(tex + 0.5 * ce, rel=1e-5)
    assert mix[0].tolist() == pytest.approx([0.7, 0.3, 0.0])  # a bridge of class 0 toward class 1
    assert float(nn.functional.cross_entropy(teacher(x), labels)) != pytest.approx(ce, rel=1e-3)


def test_the_section_checks_bridges():
    base = {"steps": 1, "teacher_labels": 1.0}
    assert check_texture_config({**base, "bridges": 2, "bridge_weight": 0.5})["bridges"] == 2
    for bad, message in [
        ({**base, "bridges": -1}, r"bridges must be >= 0 images per class \(0 = off\), got -1"),
        (
            {**base, "bridge_weight": 0},
            r"bridge_weight must be strictly between 0 and 1 \(the partner class's share",
        ),
        (
            {**base, "bridge_weight": 1.0},
            r"strictly between 0 and 1 .*got 1.0; distill.texture_matching.bridges=0",
        ),
        ({**base, "bridge_weight": float("nan")}, r"bridge_weight must be a finite number"),
        (
            {"steps": 1, "bridges": 2},
            r"shows: set distill.texture_matching.teacher_labels \(e.g. 1.0, with .*features",
        ),
        (
            {**base, "bridge_partner": "random"},
            r"bridge_partner must be one of texture, teacher, got 'random'",
        ),
    ]:
        with pytest.raises(DistillConfigError, match=message):
            check_texture_config(bad)


@pytest.mark.parametrize(("mode", "partner"), [("soft", "texture"), ("soft", "teacher"), ("hard", "texture")])
def test_soft_sets_get_bridges_and_hard_sets_never(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch, caplog, mode, partner
):
    caplog.set_level(logging.INFO, logger="gastrodistill.distillation.run")
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "distill.texture_matching.steps=2",
            "distill.texture_matching.teacher_labels=1.0",
            "distill.texture_matching.bridges=1",
            "distill.texture_matching.bridge_weight=0.4",
            f"distill.texture_matching.bridge_partner={partner}",
            "distill.texture_matching.progress=false",
            "distill.outer_steps=1",
            "eval.baselines.real.epochs=1",
            "eval.baselines.real.precision=32-true",
        ]
    )
    import gastrodistill.distillation.run as run_module

    seen, real_match = [], run_module.match_textures
    monkeypatch.setattr(
        run_module, "match_textures", lambda *a, **k: seen.append((a, k)) or real_match(*a, **k)
    )
    run_distillation(cfg, tiny_dm, tmp_path, mode=mode)
    (args, kwargs) = seen[0]
    said = [r.getMessage() for r in caplog.records if "bridge" in r.getMessage()]
    if mode == "hard":
        assert kwargs["bridges"] is None
        assert said == [
            "texture matching: no bridge images in a hard set (distill.texture_matching.bridges is soft-only)"
        ]
        return
    labels = DistilledSet.load(tmp_path / mode).hard_labels()
    if partner == "texture":
        partners = nearest_classes(args[2][0])
    else:
        train = DataLoader(tiny_dm.dataset("train", augment=False), batch_size=256)
        partners = confused_classes(kwargs["teacher"], train, 3)
    want = bridge_images(labels, partners, 1, 0.4)
    assert torch.equal(kwargs["bridges"].partner, want.partner)
    assert torch.equal(kwargs["bridges"].weight, want.weight)
    assert int((want.weight > 0).sum()) == 3  # one per class


def test_bridges_as_many_as_a_classs_images_are_refused_before_any_data_for_a_soft_set_only(compose_cfg):
    """ipc x steps images per class: bridges must leave at least one; a hard set (which has none) passes."""
    from gastrodistill.distillation.config_check import check_distill_config

    on = ["distill.texture_matching.steps=2", "distill.texture_matching.teacher_labels=1.0"]
    cfg = compose_cfg(
        ["experiment=tiny", *on, "distill.ipc=2", "distill.steps=2", "distill.texture_matching.bridges=4"]
    )
    with pytest.raises(
        DistillConfigError,
        match=r"bridges=4 would leave each class .* = 4 images per class\): set it below 4",
    ):
        check_distill_config(cfg.distill, "soft")
    check_distill_config(cfg.distill, "hard")
    cfg.distill.texture_matching.bridges = 3
    check_distill_config(cfg.distill, "soft")
