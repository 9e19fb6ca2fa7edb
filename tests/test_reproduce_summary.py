"""``SUMMARY.md``'s recipe lines (:mod:`gastrodistill.pipeline.summary`) read back against the config and the
sets' own ``distill/<mode>/config.yaml`` they describe."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from gastrodistill.pipeline import summary
from gastrodistill.pipeline.summary import recipe_lines, sets_distill

DSA = "gastrodistill.distillation.augment.DSA"


def test_the_distillation_line_gives_each_value_of_the_distill_section(compose_cfg):
    """Every number as the config gives it, written out by hand: images ipc x steps, T = steps x epochs,
    the distribution matching, the clipping, a DSA that does nothing said as 'none'. Mutants: ipc alone, T
    as steps + epochs, the distribution-matching steps or the clipping left out, '' for no augmentation,
    every DSA operation listed whether on or not."""
    cfg = compose_cfg(
        [
            "experiment=tiny",
            "distill.ipc=2",
            "distill.steps=3",
            "distill.epochs=2",
            "distill.window=4",
            "distill.distribution_matching.steps=5",
            "distill.grad_clip_ema=2.5",
            f"distill.dsa={{_target_: {DSA}, flip: false}}",
        ]
    )
    d = cfg.distill
    line = recipe_lines(cfg, ["soft", "hard"])[2]
    assert line == (
        f"distillation (soft, hard): 6 images per class (ipc 2 x 3 steps); T = 6 inner steps (3 x 2 epochs), "
        f"momentum {d.inner_momentum}, lr_init {d.lr_init}, a differentiable window of 4 steps; "
        f"start {d.image_init} + 5 distribution-matching steps; {d.outer_steps} outer steps, real batch "
        f"{d.batch_real}, lr images / labels / lrs {d.lr_images} / {d.lr_labels} / {d.lr_lrs}, meta-gradient "
        f"clipped at 2.5 x its running norm; augmentation (DSA) none; backend {d.backend}, precision "
        f"{d.precision}"
    )


def test_a_recorded_section_without_the_newer_keys_reads_as_the_configs_defaults(compose_cfg):
    """A set recorded before inner_momentum, backend, precision or the texture-matching features and
    exaggeration existed was made with the values conf/distill gives them now: its line equals that of the
    section with them written out (mutants: another default for any of them)."""
    cfg = compose_cfg(["experiment=tiny", "distill.texture_matching.steps=2"])
    full = OmegaConf.to_container(cfg.distill, resolve=True)
    assert (full["inner_momentum"], full["backend"], full["precision"]) == (0.0, "func", "32-true")
    assert (full["texture_matching"]["features"], full["texture_matching"]["exaggeration"]) == (
        "teacher",
        1.0,
    )
    older = {k: v for k, v in full.items() if k not in ("inner_momentum", "backend", "precision")}
    older["texture_matching"] = {"steps": 2}
    assert recipe_lines(cfg, ["soft"], older)[2] == recipe_lines(cfg, ["soft"], full)[2]
    assert "+ 2 texture-matching steps (teacher features, exaggeration 1.0)" in recipe_lines(cfg, ["soft"])[2]


def test_the_distillation_line_says_when_the_matching_sees_the_augmentation(compose_cfg):
    """``distill.texture_matching.augment`` with a DSA to see through is named; off, or with no DSA (then
    nothing augments the matching), it is not."""
    base = ["experiment=tiny", "distill.texture_matching.steps=2"]
    dsa = "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 1}"
    on = recipe_lines(compose_cfg([*base, dsa, "distill.texture_matching.augment=true"]), ["soft"])[2]
    assert "texture-matching steps (teacher features, exaggeration 1.0, through the DSA)" in on
    for off in ([*base, dsa], [*base, "distill.texture_matching.augment=true"]):
        assert "through the DSA" not in recipe_lines(compose_cfg(off), ["soft"])[2]


def test_the_distillation_line_names_the_clustered_classes(compose_cfg):
    base = ["experiment=tiny", "distill.texture_matching.steps=2"]
    on = compose_cfg([*base, "distill.texture_matching.cluster_classes=[irrelevant,gastritis]"])
    line = recipe_lines(on, ["soft", "hard"])[2]
    assert (
        "(teacher features, exaggeration 1.0; one k-means cluster per image for irrelevant, gastritis, of at "
        "most 2000 patches a class)" in line
    )
    assert "k-means" not in recipe_lines(compose_cfg(base), ["soft"])[2]


def test_the_distillation_line_names_the_bridge_images_of_a_soft_set_only(compose_cfg):
    cfg = compose_cfg(
        [
            "experiment=tiny",
            "distill.texture_matching.steps=2",
            "distill.texture_matching.teacher_labels=1.0",
            "distill.texture_matching.bridges=2",
            "distill.texture_matching.bridge_weight=0.4",
        ]
    )
    bridges = (
        "(teacher features, exaggeration 1.0; 2 bridge images per class (texture partner, weight 0.4; "
        "soft set only))"
    )
    assert bridges in recipe_lines(cfg, ["soft", "hard"])[2]
    assert "(teacher features, exaggeration 1.0);" in recipe_lines(cfg, ["hard"])[2]  # never on hard sets


def test_the_network_line_names_the_whitening_filter_with_each_of_its_settings(compose_cfg):
    """Mutants: the whitening left out; the kernel size given for eps."""
    zca = (
        "{_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 5, eps: 0.25, max_images: 7, "
        "max_windows: 11}"
    )
    cfg = compose_cfg(["experiment=tiny", f"data.zca={zca}"])
    assert recipe_lines(cfg, ["soft"])[1].endswith(
        "), behind a 5 px local ZCA filter of the training split (eps 0.25, 11 windows of at most 7 images)"
    )
    assert "ZCA" not in recipe_lines(compose_cfg(["experiment=tiny"]), ["soft"])[1]


def test_without_an_eval_section_there_is_no_evaluation_line(compose_cfg):
    """Three lines: data, network, distillation (a mutant gave none for the evaluation either way)."""
    cfg = compose_cfg(["experiment=tiny", "eval.n_networks=2"])
    assert recipe_lines(cfg, ["soft"])[3] == (
        "evaluation: 2 fresh networks per row; schedules replay, standard; architectures ConvNet, lenet"
    )
    cfg.eval = None
    assert [line.split(":")[0] for line in recipe_lines(cfg, ["soft"])] == [
        "data",
        "network",
        "distillation (soft)",
    ]


@pytest.mark.parametrize(
    ("node", "text"),
    [
        ({"_target_": "builtins.dict", "p": 0.5, "mode": "x"}, "p 0.5, mode x"),
        ({"_target_": "builtins.dict"}, "builtins.dict"),
        ({"_target_": DSA, "flip": False, "rotate": 2.5, "shift_px": 3}, "rotate 2.5, shift 3 px"),
        ({"_target_": DSA, "rotate": 10.0, "contrast": 0.25}, "flip, rotate 10, contrast 0.25"),
    ],
)
def test_an_augmentation_other_than_the_dsa_is_given_by_its_own_keys_or_its_target(node, text):
    """Mutants: the ``_target_`` key listed among the settings; a node without settings said 'none'; a
    whole-number angle written as ``10.0`` (``:g`` gives ``10``)."""
    assert summary._augment_text(OmegaConf.create(node)) == text


def _save_set_config(out, mode, distill):
    (out / "distill" / mode).mkdir(parents=True)
    (out / "distill" / mode / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "distill": distill}))


def test_a_set_whose_config_records_no_distill_section_is_left_out_of_the_recipe(compose_cfg, tmp_path):
    """The hard set's section is the recipe when the soft set's config.yaml has none (a mutant read the
    soft set's missing section and failed)."""
    cfg = compose_cfg(["experiment=tiny"])
    section = OmegaConf.to_container(cfg.distill, resolve=True) | {"mode": "hard", "outer_steps": 9}
    (tmp_path / "distill" / "soft").mkdir(parents=True)
    (tmp_path / "distill" / "soft" / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "distill": None}))
    _save_set_config(tmp_path, "hard", section)
    assert sets_distill(tmp_path, ["soft", "hard"]) == (section, None)


def test_the_summarys_targets_are_the_results_targets_every_line(monkeypatch):
    """SUMMARY.md gives each of the study's target lines (a mutant kept the first alone)."""
    monkeypatch.setattr(
        "gastrodistill.evaluation.results.target_lines", lambda df: [f"line {i} of {df}" for i in range(3)]
    )
    assert summary.target_lines("df") == ["line 0 of df", "line 1 of df", "line 2 of df"]
