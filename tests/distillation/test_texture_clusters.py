"""Cluster targets of texture matching (``distill.texture_matching.cluster_classes``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _cli_runner import assert_nothing_written, reproduce_refusal, run_main
from _distill_helpers import assert_grad_matches_central_differences, texture_probe
from torch.utils.data import DataLoader

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.resume import _start_compared
from gastrodistill.distillation.run import run_distillation
from gastrodistill.distillation.texture_clusters import (
    cluster_class_indices,
    cluster_deviations,
    clustered_statistics,
    patch_picks,
)
from gastrodistill.distillation.texture_matching import (
    check_texture_config,
    exaggeration_offsets,
    texture_loss,
    texture_statistics,
)
from gastrodistill.models import ConvNet


def _two_kinds(n_big: int, n_small: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two levels of statistics (3 and 2 columns) of ``n_big + n_small`` patches: two tight, far-apart
    kinds, the big one first in a shuffled order; returns the rows ``[n, 5]`` and each row's kind."""
    rng = np.random.default_rng(seed)
    kind = np.array([0] * n_big + [1] * n_small)
    rng.shuffle(kind)
    centres = np.array([[0.0, 0.0, 0.0, 0.0, 0.0], [9.0, -7.0, 5.0, 8.0, -6.0]])
    return centres[kind] + 0.01 * rng.standard_normal((len(kind), 5)), kind


def test_each_image_of_a_clustered_class_gets_its_kinds_deviation_from_the_class_mean():
    rows, kind = _two_kinds(7, 3)
    stats = {1: [[torch.from_numpy(rows[:, :3]), torch.from_numpy(rows[:, 3:])]]}
    targets = [[torch.ones(3, 3), torch.ones(3, 2)]]  # equal scales: the clustering sees the rows as they are
    labels = torch.tensor([0, 1, 2, 1, 0, 2])  # class 1's images are 1 (first: the biggest cluster) and 3
    devs = cluster_deviations(stats, targets, labels, seed=0, class_names=["a", "b", "c"])
    big, small = rows[kind == 0].mean(0) - rows.mean(0), rows[kind == 1].mean(0) - rows.mean(0)
    got = torch.cat(devs[0], 1).double().numpy()
    np.testing.assert_allclose(got[1], big, atol=1e-5)
    np.testing.assert_allclose(got[3], small, atol=1e-5)
    assert not got[[0, 2, 4, 5]].any()  # the classes not clustered keep their targets
    assert [d.shape for d in devs[0]] == [torch.Size([6, 3]), torch.Size([6, 2])]


def test_the_loss_scales_decide_the_clusters():
    """The texture loss's per-statistic scale divides each statistic before k-means: a level whose targets
    are large counts for less, so the split follows the other level."""
    rng = np.random.default_rng(1)
    n = 12
    split_a = np.repeat([0.0, 1.0], n // 2)  # level 0 splits the patches into halves ...
    split_b = np.tile([0.0, 1.0], n // 2)  # ... level 1 into odd and even
    lvl0 = (split_a * 10.0)[:, None] + 0.01 * rng.standard_normal((n, 1))
    lvl1 = (split_b * 10.0)[:, None] + 0.01 * rng.standard_normal((n, 1))
    stats = {0: [[torch.from_numpy(lvl0), torch.from_numpy(lvl1)]]}
    labels = torch.tensor([0, 0])
    for big, follows in ((0, split_b), (1, split_a)):
        scale = [1000.0 if level == big else 1.0 for level in (0, 1)]
        targets = [[torch.full((2, 1), scale[0]), torch.full((2, 1), scale[1])]]
        dev = torch.cat(cluster_deviations(stats, targets, labels, seed=0)[0], 1).double().numpy()
        rows = np.concatenate([lvl0, lvl1], 1)
        means = {tuple(np.round(rows[follows == v].mean(0) - rows.mean(0), 3)) for v in (0.0, 1.0)}
        assert {tuple(np.round(d, 3)) for d in dev} == means


def test_clustered_statistics_are_each_patches_statistics_in_dataset_order():
    torch.manual_seed(0)
    nets = [ConvNet(1, 3, 8, width=3, depth=1, head="avg").eval() for _ in range(2)]
    x, y = torch.randn(11, 1, 8, 8), torch.tensor([0, 2, 2, 1, 2, 0, 2, 1, 1, 2, 0])
    batches = [(x[i : i + 4], y[i : i + 4]) for i in range(0, 11, 4)]
    got = clustered_statistics(nets, batches, [2, 1])
    for c in (2, 1):
        for net, per_level in zip(nets, got[c], strict=True):
            want = texture_statistics(net, x[y == c])
            for g, w in zip(per_level, want, strict=True):
                assert g.dtype == torch.float64
                torch.testing.assert_close(g, w.double().detach(), rtol=1e-5, atol=1e-6)
    assert clustered_statistics(nets, batches, [1])[1][0][0].shape[0] == 3
    # at most 2 patches a class: the drawn ones, whichever batch they fall in
    picks = patch_picks(y.numpy(), [2, 1, 0], 2, seed=3)
    assert sorted(picks) == [0, 1, 2] and all(int(m.sum()) == 2 for m in picks.values())
    assert patch_picks(y.numpy(), [2], 5, seed=3) == {}  # class 2 has 5 patches: all are clustered
    assert torch.equal(picks[2], patch_picks(y.numpy(), [2], 2, seed=3)[2])  # the draw is the seed's
    drawn = clustered_statistics(nets, batches, [2, 1], picks)
    for c in (2, 1):
        want = texture_statistics(nets[1], x[y == c][picks[c]])
        for g, w in zip(drawn[c][1], want, strict=True):
            torch.testing.assert_close(g, w.double().detach(), rtol=1e-5, atol=1e-6)


def test_the_same_seed_gives_the_same_clusters_ranked_by_size():
    rows = np.random.default_rng(4).standard_normal((40, 5))  # no clear kinds: the k-means++ draw decides
    stats = {0: [[torch.from_numpy(rows)]]}
    targets, labels = [[torch.ones(2, 5)]], torch.tensor([0, 0, 0, 1])
    a = cluster_deviations(stats, targets, labels, seed=5)[0][0].double()
    assert torch.equal(a, cluster_deviations(stats, targets, labels, seed=5)[0][0].double())
    # each deviation is a cluster's mean minus the mean of all; recover each cluster's size from the
    # rows nearest to it and check the ranking: image 0's cluster is the largest, image 2's the smallest
    centres = a[:3].numpy() + rows.mean(0)
    nearest = np.argmin(((rows[:, None, :] - centres[None]) ** 2).sum(-1), 1)
    sizes = np.bincount(nearest, minlength=3)
    assert sizes[0] >= sizes[1] >= sizes[2] and sizes.sum() == 40
    assert not a[3].any()


def test_the_loss_with_deviations_against_a_numpy_loop_and_finite_differences():
    net, targets = texture_probe(3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    offsets = exaggeration_offsets(labels, 3, 1.0, 0.5).double()
    gen = torch.Generator().manual_seed(7)
    devs = [torch.randn(6, t.shape[1], generator=gen, dtype=torch.float64) * 0.1 for t in targets]
    syn = torch.randn(6, 1, 8, 8, dtype=torch.float64, requires_grad=True)

    def loss(s):
        return texture_loss(texture_statistics(net, s), targets, labels, offsets, None, devs)

    with torch.no_grad():
        stats = [v.numpy() for v in texture_statistics(net, syn)]
    want = 0.0
    for s, t, d in zip(stats, targets, devs, strict=True):
        t, d, o = t.numpy(), d.numpy(), offsets.numpy()
        per = [t[labels[i]] + o[i] * (t[labels[i]] - t.mean(0)) + d[i] for i in range(6)]
        want += np.mean([np.sum((s[i] - per[i]) ** 2) for i in range(6)]) / np.mean(np.sum(t**2, 1))
    assert float(loss(syn).detach()) == pytest.approx(want, rel=1e-10)
    assert_grad_matches_central_differences(loss, syn, rel=1e-5, abs_tol=1e-9)
    zero = [torch.zeros_like(d) for d in devs]
    with torch.no_grad():
        assert float(
            texture_loss(texture_statistics(net, syn), targets, labels, offsets, None, zero)
        ) == float(texture_loss(texture_statistics(net, syn), targets, labels, offsets))


def test_bad_cluster_classes_are_refused_naming_the_key():
    assert check_texture_config({"cluster_classes": ["irrelevant"]})["cluster_classes"] == ["irrelevant"]
    assert check_texture_config(None)["cluster_classes"] == []
    assert check_texture_config({"cluster_classes": None})["cluster_classes"] == []
    for bad, message in [
        ("irrelevant", r"cluster_classes must be a list of class names \(e.g. \[irrelevant\]"),
        (3, r"cluster_classes must be a list of class names"),
        ([1], r"cluster_classes must list class names as strings, got 1"),
        (["a", "b", "a"], r"cluster_classes names 'a' more than once"),
    ]:
        with pytest.raises(DistillConfigError, match=message):
            check_texture_config({"cluster_classes": bad})
    with pytest.raises(DistillConfigError, match=r"cluster_max_patches must be >= 1 \(patches per clustered"):
        check_texture_config({"cluster_max_patches": 0})
    assert cluster_class_indices(["c", "a"], ["a", "b", "c"]) == [2, 0]
    with pytest.raises(
        DistillConfigError, match=r"names 'gastric', which is not a class of this data \(its "
    ):
        cluster_class_indices(["gastric"], ["a", "b", "c"])


def test_a_class_with_fewer_patches_than_images_is_refused():
    stats = {0: [[torch.zeros(2, 3, dtype=torch.float64)]]}
    with pytest.raises(DistillConfigError, match=r"class 'a' has 2 training patch\(es\) for 3 images"):
        cluster_deviations(stats, [[torch.ones(2, 3)]], torch.tensor([0, 0, 0, 1]), 0, ["a", "b"])


def test_a_section_without_the_key_starts_a_set_as_one_with_the_default():
    on = {"steps": 3}
    assert _start_compared({"texture_matching": on}) == _start_compared(
        {"texture_matching": {**on, "cluster_classes": []}}
    )
    assert _start_compared({"texture_matching": on}) != _start_compared(
        {"texture_matching": {**on, "cluster_classes": ["a"]}}
    )


def test_the_config_hands_each_images_deviation_to_the_matching(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
):
    """With ``cluster_classes=[b]`` the matching gets deviations that are 0 except on class b's images, and
    they are the ones :func:`cluster_deviations` gives for the run's networks, patches and seed."""
    common = [
        *tiny_overrides,
        "distill.texture_matching.steps=2",
        "distill.texture_matching.features=random",
        "distill.texture_matching.random_networks=2",
        "distill.texture_matching.progress=false",
        "distill.ipc=2",
        "distill.outer_steps=1",
        "seed=4",
    ]
    import gastrodistill.distillation.run as run_module

    seen, real_match = [], run_module.match_textures

    def match(*a, **k):  # the call, and the images the matching leaves (before the loop moves them)
        losses = real_match(*a, **k)
        seen.append((a, k, a[0].images.detach().clone()))
        return losses

    monkeypatch.setattr(run_module, "match_textures", match)
    on = compose_cfg([*common, "distill.texture_matching.cluster_classes=[b]"])
    run_distillation(on, tiny_dm, tmp_path / "a")
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "b")
    (args, kw, matched), (_, kw_off, matched_off) = seen
    assert kw_off["deviations"] is None
    labels = DistilledSet.load(tmp_path / "a" / "soft").hard_labels()
    nets, targets = args[1], args[2]
    batches = DataLoader(tiny_dm.dataset("train", augment=False), batch_size=256, shuffle=False)
    want = cluster_deviations(clustered_statistics(nets, batches, [1]), targets, labels, 4)
    for got_net, want_net in zip(kw["deviations"], want, strict=True):
        for g, w in zip(got_net, want_net, strict=True):
            assert torch.equal(g, w)
            assert not g[labels != 1].any() and g[labels == 1].abs().sum() > 0
    same = labels != 1
    assert torch.equal(matched[same], matched_off[same])  # the other classes' images are matched as before
    assert not torch.allclose(matched[~same], matched_off[~same])


def test_reproduce_refuses_a_misspelt_class_before_generating_anything(compose_cfg, tmp_path):
    cfg = compose_cfg(["experiment=tiny", "distill.texture_matching.cluster_classes=[irelevant]"])
    error = reproduce_refusal(cfg, tmp_path)
    assert isinstance(error, DistillConfigError)
    assert str(error).startswith(
        "distill.texture_matching.cluster_classes names 'irelevant', which is not a class of this data (its "
        "classes: irrelevant, non-gastritis, gastritis)"
    )


MISSPELT_CLASS = (
    "distill.texture_matching.cluster_classes=[gastritis,gastric]",
    "error: distill.texture_matching.cluster_classes names 'gastric', which",
)
MISSPELT_KEY = (
    "+distill.texture_matching.cluster_clases=[irrelevant]",
    "error: distill.texture_matching.cluster_clases is not an option of distill.texture_matching "
    "(did you mean distill.texture_matching.cluster_classes?)",
)


@pytest.mark.parametrize("command", ["distill", "reproduce"])
@pytest.mark.parametrize(("override", "message"), [MISSPELT_CLASS, MISSPELT_KEY])
def test_the_commands_refuse_it_in_one_line_and_write_nothing(
    tmp_path, monkeypatch, capsys, command, override, message
):
    import importlib

    main = importlib.import_module(f"gastrodistill.cli.{command}").main
    argv = [
        f"gastrodistill-{command}",
        "experiment=tiny",
        override,
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    code, text = run_main(main, argv, monkeypatch, capsys)
    assert code == 1
    assert text.strip().startswith(message)
    assert "Traceback" not in text
    assert_nothing_written(tmp_path)


def test_an_empty_cluster_leaves_its_image_the_class_target_in_the_projects_words(caplog):
    """Seven equal rows into two clusters: k-means leaves one empty. No NaN reaches the targets, scipy's
    own warning is not shown, and the project's names the class."""
    import logging
    import warnings

    stats = {0: [[torch.ones(7, 3, dtype=torch.float64)]]}
    with warnings.catch_warnings(record=True) as shown, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        devs = cluster_deviations(stats, [[torch.ones(2, 3)]], torch.tensor([0, 0, 1]), 0, ["edge", "b"])
    assert torch.equal(devs[0][0], torch.zeros(3, 3))
    assert not [w for w in shown if "clusters is empty" in str(w.message)]
    assert "a k-means cluster of class edge is empty; its image keeps the class target" in caplog.text


def test_a_cap_below_the_images_per_class_is_refused_before_any_data(compose_cfg):
    from gastrodistill.distillation.config_check import check_distill_config

    base = ["experiment=tiny", "distill.ipc=2", "distill.steps=3"]
    cap = "distill.texture_matching.cluster_max_patches="
    cluster = "distill.texture_matching.cluster_classes=[irrelevant]"
    check_distill_config(compose_cfg([*base, cap + "5"]).distill)  # nothing clustered: the cap reads nothing
    with pytest.raises(DistillConfigError, match=r"max_patches=5 would leave a clustered class fewer "):
        check_distill_config(compose_cfg([*base, cap + "5", cluster]).distill)
    check_distill_config(compose_cfg([*base, cap + "6", cluster]).distill)


def test_a_drawn_class_is_logged_with_its_size(caplog):
    import logging

    with caplog.at_level(logging.INFO):
        patch_picks(np.array([0, 1, 1, 1, 0, 1]), [1, 0], 3, seed=0, class_names=["a", "b"])
    assert "3 of class b's 4 training patches are clustered (a seeded draw" in caplog.text
    assert "class a's" not in caplog.text  # 2 patches: all clustered, nothing drawn


@pytest.mark.parametrize(
    ("inert", "active"),
    [
        ({"bridge_weight": 0.5, "bridge_partner": "teacher"}, {"bridges": 1, "teacher_labels": 1.0}),
        ({"cluster_max_patches": 50}, {"cluster_classes": ["a"]}),
        ({"random_networks": 2}, {"features": "random"}),
        ({"teacher_ce": 0.5}, {"features": "teacher"}),
    ],
)
def test_a_value_that_changes_nothing_given_the_others_compares_as_its_default(inert, active):
    """Inert values: a resume continues a run that set them otherwise; once the option they belong to
    acts, they count (``teacher_ce`` is inert with random features, so its active case names the teacher)."""
    on = {"steps": 3, "features": "random"} if "teacher_ce" in inert else {"steps": 3}
    assert _start_compared({"texture_matching": on}) == _start_compared({"texture_matching": {**on, **inert}})
    on_active = {**on, **active}
    assert _start_compared({"texture_matching": on_active}) != _start_compared(
        {"texture_matching": {**on_active, **inert}}
    )


def test_a_key_added_with_plus_that_no_option_reads_is_refused_naming_the_nearest():
    from gastrodistill.distillation.distribution_matching import check_matching_config

    with pytest.raises(
        DistillConfigError, match=r"cluster_clases is not an option of distill.texture_matching \(did"
    ):
        check_texture_config({"cluster_clases": ["irrelevant"]})
    with pytest.raises(
        DistillConfigError, match=r"distill.distribution_matching.stpes is not an option of .*steps\?"
    ):
        check_matching_config({"stpes": 3})
    with pytest.raises(DistillConfigError, match=r"""quote a name that reads as a number: '.*=\["3"\]'"""):
        check_texture_config({"cluster_classes": [3]})
