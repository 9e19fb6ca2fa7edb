"""Every option of every config group composes with the root config, and every ``_target_`` imports.

The options are discovered from ``conf/*/*.yaml`` when the tests are collected, so a new file is
covered without touching this test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra.utils import get_object
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import OmegaConf

from gastrodistill.cli import CONF_DIR

OPTIONS = sorted((p.parent.name, p.stem) for p in Path(CONF_DIR).glob("*/*.yaml"))


def _targets(node: Any, where: str = "") -> Iterator[tuple[str, str]]:
    """(config key, ``_target_`` value) for every node that names one, lists included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_":
                yield where or "<root>", value
            else:
                yield from _targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _targets(value, f"{where}[{i}]")


def test_the_tree_has_the_documented_groups():
    groups = {g for g, _ in OPTIONS}
    expected = {"paths", "synthetic", "data", "model", "distill", "eval", "audit", "trainer", "logger"}
    assert expected <= groups, f"missing config groups: {sorted(expected - groups)}"
    assert {("data", "gastric"), ("data", "folder"), ("data", "npz")} <= set(OPTIONS)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_targets_import(compose_cfg, group: str, option: str):
    cfg = compose_cfg([f"{group}={option}"])
    # every value resolves (mandatory ``???`` values, e.g. data.root, may stay missing)
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    assert isinstance(container, dict) and "seed" in container
    for key, target in _targets(container):
        assert isinstance(target, str) and target, f"{group}={option}: empty _target_ at {key}"
        try:
            get_object(target)
        except Exception as exc:  # noqa: BLE001 - report any import failure with its key
            pytest.fail(f"{group}={option}: _target_ {target!r} at {key} does not import: {exc}")


# ---- every experiment preset with every data group (issue 12, item 5) -----------------------------------
PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
DATA_GROUPS = sorted(p.stem for p in (Path(CONF_DIR) / "data").glob("*.yaml"))


def _small_npz(path: Path) -> Path:
    import numpy as np

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 24), ("val", 8), ("test", 8)):
        y = np.arange(n) % 2
        x = rng.integers(0, 60, (n, 20, 20)).astype(np.uint8) + (y * 120).astype(np.uint8)[:, None, None]
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y
    np.savez(path, **arrays, class_names=np.array([b"normal", b"pneumonia"]))
    return path


def _data_overrides(group: str, tmp_path: Path) -> list[str]:
    if group == "npz":
        return [f"data.path={_small_npz(tmp_path / 'small.npz')}"]
    if group == "folder":
        import numpy as np
        from PIL import Image

        root = tmp_path / "folder"
        for c in ("a", "b"):
            (root / c).mkdir(parents=True, exist_ok=True)
            for i in range(6):
                Image.fromarray(np.full((20, 20), 40 + 100 * (c == "b") + i, np.uint8)).save(
                    root / c / f"{i}.png"
                )
        return [f"data.root={root}"]
    return []


@pytest.mark.parametrize(
    ("preset", "group"),
    [(p, g) for p in PRESETS for g in DATA_GROUPS],
    ids=[f"experiment={p}-data={g}" for p in PRESETS for g in DATA_GROUPS],
)
def test_every_preset_instantiates_with_every_data_group(compose_cfg, tmp_path, preset, group):
    import hydra

    cfg = compose_cfg([f"experiment={preset}", f"data={group}", *_data_overrides(group, tmp_path)])
    dm = hydra.utils.instantiate(cfg.data)
    assert dm.batch_size == cfg.data.batch_size
    if group in ("npz", "folder", "digits"):  # cheap to load: the preset's keys must be honoured
        dm.prepare_data()
        dm.setup()
        cap = cfg.data.get("storage_size")
        side = 8 if group == "digits" else 20
        expected = side if not cap or side <= cap else cap
        assert max(dm.image_size) == expected
        if group == "npz":
            assert dm.class_names == ["normal", "pneumonia"]
    model = hydra.utils.instantiate(cfg.model)
    assert callable(model)


@pytest.mark.parametrize("preset", ["cpu", "tiny"])
def test_issue_example_reproduce_distill_stage_on_npz(compose_cfg, tmp_path, preset):
    """`gastrodistill-reproduce experiment=cpu data=npz data.path=FILE 'stages=[distill]'` runs."""
    from gastrodistill.cli.reproduce import Pipeline

    cfg = compose_cfg(
        [
            f"experiment={preset}",
            "data=npz",
            *_data_overrides("npz", tmp_path),
            "stages=[distill]",
            "reproduce.distill_modes=[soft]",
            "distill.outer_steps=2",
            "distill.ckpt_every=0",
            "distill.grid_every=0",
            "trainer.enable_progress_bar=false",
        ]
    )
    Pipeline(cfg).run()
    assert (tmp_path / "out" / "distill" / "soft" / "distilled.json").is_file()
    import json

    meta = json.loads((tmp_path / "out" / "distill" / "soft" / "distilled.json").read_text())
    assert "normal" in json.dumps(meta) and "b'normal'" not in json.dumps(meta)


def test_the_cpu_preset_specialises_itself_for_npz_collections_only(compose_cfg):
    """``experiment=cpu data=npz`` also loads ``conf/specialize/cpu_npz.yaml`` (the recipe chosen on the
    digits' validation split); the gastric CPU study keeps its own recipe, no preset or data group without
    a specialisation is touched, and a command-line override still wins over the specialisation."""
    spec = OmegaConf.load(Path(CONF_DIR) / "specialize" / "cpu_npz.yaml")
    npz = compose_cfg(["experiment=cpu", "data=npz", "data.path=x.npz"])
    for key, value in spec.distill.items():
        if key == "scheduler":
            assert npz.distill.scheduler.step_size == value.step_size
        elif key in ("distribution_matching", "texture_matching"):
            assert npz.distill[key].steps == value.steps == 0, key
        else:
            assert npz.distill[key] == value, key
    sized = OmegaConf.load(Path(CONF_DIR) / "specialize_model" / "cpu_npz_convnet_cpu.yaml")
    assert (npz.model.depth, npz.model.width, npz.model.pool) == (sized.depth, sized.width, "max")
    assert npz.model.head == sized.head == "flatten"  # the digits recipe's head, not the gastric study's
    gastric = compose_cfg(["experiment=cpu"])
    assert (gastric.distill.ipc, gastric.distill.steps, gastric.distill.outer_steps) == (10, 1, 25)
    assert gastric.model.depth == 3
    assert gastric.model.head == "avg"
    d = gastric.distill
    assert (d.epochs, d.inner_momentum, d.lr_init) == (150, 0.9, 0.03)
    assert (d.lr_images, d.lr_labels) == (0.001, 0.01)
    assert gastric.distill.image_init == "class_mean"
    assert gastric.distill.texture_matching.steps > 0 and gastric.distill.window == 10
    assert gastric.distill.distribution_matching.steps == 0
    # the gastric study's flips and 8-px shifts everywhere; none of them on an npz collection (8-px digits)
    shift = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": True, "shift_px": 8}
    for node in (
        d.dsa,
        gastric.eval.standard.augment,
        gastric.eval.replay_augment,
        gastric.eval.baselines.real.augment,
    ):
        assert OmegaConf.to_container(node) == shift
    assert npz.distill.dsa is None and npz.eval.standard.augment is None and npz.eval.replay_augment is None
    assert (npz.eval.baselines.real.augment.flip, npz.eval.baselines.real.augment.shift_px) == (True, 0)
    tiny_npz = compose_cfg(["experiment=tiny", "data=npz", "data.path=x.npz"])
    assert tiny_npz.distill.outer_steps == compose_cfg(["experiment=tiny"]).distill.outer_steps
    mine = compose_cfg(["experiment=cpu", "data=npz", "data.path=x.npz", "distill.ipc=3", "model.depth=3"])
    assert (mine.distill.ipc, mine.model.depth) == (3, 3)


@pytest.mark.parametrize("model", ["resnet18", "alexnet", "lenet"])
@pytest.mark.parametrize("extra", [["experiment=cpu"], ["experiment=tiny"], ["experiment=cpu", "data=npz"]])
def test_a_preset_with_another_model_gets_that_model_as_configured(compose_cfg, model, extra):
    """The presets size their ConvNet through a model option of their own (``convnet_cpu``,
    ``convnet_tiny``; the npz ConvNet depth is keyed on the model as well), so ``model=...`` on the command
    line gives that network with its own defaults: no ConvNet key (``depth``, ``pool``) leaks into it and
    it builds. (A preset that patched ``model.depth`` made ``experiment=cpu model=resnet18`` a TypeError.)"""
    cfg = compose_cfg([*extra, f"model={model}"] + (["data.path=x.npz"] if "data=npz" in extra else []))
    alone = compose_cfg([f"model={model}"])
    assert OmegaConf.to_container(cfg.model) == OmegaConf.to_container(alone.model)
    net = hydra_instantiate(cfg.model)(in_channels=1, num_classes=3, image_size=(32, 32))
    assert net(torch.zeros(2, 1, 32, 32)).shape == (2, 3)


def test_summary_recipe_states_the_cpu_presets_unroll(compose_cfg):
    """SUMMARY.md's recipe lines read the resolved config: T = steps x epochs, the window, the matching."""
    from gastrodistill.pipeline.summary import recipe_lines

    cfg = compose_cfg(["experiment=cpu"])
    d = cfg.distill
    data, network, distill, evaluation = recipe_lines(cfg, ["soft"])
    assert data == (
        f"data: GastricPatchDataModule, synthetic data 'cpu' (generator seed {cfg.synthetic.seed}), "
        f"{cfg.data.patch_size} px patches stored at 64 px; run seed {cfg.seed}"
    )
    assert network.startswith("network: ConvNet (width 32, depth 3,") and "pool max" in network
    assert "head avg" in network
    t = d.steps * d.epochs
    assert f"{d.ipc * d.steps} images per class (ipc {d.ipc} x {d.steps} steps)" in distill
    assert f"T = {t} inner steps ({d.steps} x {d.epochs} epochs), momentum {d.inner_momentum}" in distill
    assert f"a differentiable window of {d.window} steps" in distill and d.window < t
    tm = d.texture_matching
    start = (
        f"start class_mean + {tm.steps} texture-matching steps (teacher features, "
        f"exaggeration {tm.exaggeration} ± {tm.exaggeration_spread})"
    )
    assert tm.exaggeration_spread > 0
    assert start in distill
    assert "distribution-matching" not in distill
    assert "augmentation (DSA) flip, shift 8 px" in distill
    assert evaluation == (
        f"evaluation: {cfg.eval.n_networks} fresh networks per row; schedules replay, standard; "
        "architectures ConvNet, lenet"
    )
    # the npz data keep their image size and do not come from the generator; a whole unroll and DSA
    cfg = compose_cfg(
        [
            "experiment=cpu",
            "data=npz",
            "data.path=x.npz",
            "distill.window=null",
            "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, rotate: 10}",
        ]
    )
    data, _, distill, _ = recipe_lines(cfg, ["soft"])
    assert data == f"data: NpzDataModule; run seed {cfg.seed}"
    assert "the whole unroll differentiable" in distill and "augmentation (DSA) flip, rotate 10" in distill


def test_the_summary_recipe_is_the_sets_own(compose_cfg, tmp_path):
    """``SUMMARY.md`` describes the sets in the run folder (each ``distill/<mode>/config.yaml``), not the
    command that wrote it last (a resume with more outer steps, then ``stages=[evaluate]``: the summary gave
    the command's 3 outer steps for 7-step sets); sets of other settings from each other are noted."""
    import yaml

    from gastrodistill.pipeline.summary import recipe_lines, sets_distill

    cfg = compose_cfg(["experiment=tiny"])
    assert sets_distill(tmp_path, ["soft", "hard"]) == (None, None)  # no sets: the command's recipe
    for mode, steps, every in (("soft", 7, 1), ("hard", 7, 5)):
        saved = OmegaConf.to_container(cfg, resolve=True)
        saved["distill"] |= {"mode": mode, "outer_steps": steps, "ckpt_every": every}
        (tmp_path / "distill" / mode).mkdir(parents=True)
        (tmp_path / "distill" / mode / "config.yaml").write_text(yaml.safe_dump(saved))
    made, note = sets_distill(tmp_path, ["soft", "hard"])
    assert made["outer_steps"] == 7 and made["mode"] == "soft" and note is None  # ckpt_every: no recipe
    assert "; 7 outer steps," in recipe_lines(cfg, ["soft", "hard"], made)[2]
    assert f"; {cfg.distill.outer_steps} outer steps," in recipe_lines(cfg, ["soft", "hard"])[2]
    hard = yaml.safe_load((tmp_path / "distill" / "hard" / "config.yaml").read_text())
    hard["distill"]["lr_images"] = 0.5
    (tmp_path / "distill" / "hard" / "config.yaml").write_text(yaml.safe_dump(hard))
    note = (
        "the hard set was distilled with other settings than the soft set, whose settings the recipe gives "
        "(each set's distill/<mode>/config.yaml)"
    )
    assert sets_distill(tmp_path, ["soft", "hard"])[1] == note
    # ... and SUMMARY.md says so under its notes, with the soft set's 7 steps in its recipe
    from gastrodistill.pipeline.pipeline import Pipeline

    pipe = Pipeline(compose_cfg(["experiment=tiny", f"paths.output_dir={tmp_path}"]))
    summary = pipe.write_summary().read_text()
    assert f"## Notes\n\n- {note}" in summary and "; 7 outer steps," in summary


def test_two_commands_started_in_the_same_second_get_their_own_run_folders(tmp_path):
    """Run folders are named to the microsecond: two runs of one experiment started together (a script's
    ``&``) wrote into one folder named to the second, each overwriting the other's outputs unsaid."""
    import re
    import subprocess
    import sys

    script = (
        "from hydra import compose, initialize_config_dir\n"
        "from omegaconf import OmegaConf\n"
        "from gastrodistill.cli import CONF_DIR\n"
        "with initialize_config_dir(config_dir=CONF_DIR, version_base='1.3'):\n"
        f"    cfg = compose('config', overrides=['paths.root_dir={tmp_path}'], return_hydra_config=True)\n"
        "print(cfg.hydra.run.dir, cfg.hydra.sweep.dir)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    stamp = r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d{6}"
    for run, sweep in outs:
        assert re.fullmatch(rf"{re.escape(str(tmp_path))}/outputs/default/runs/{stamp}", run), run
        assert re.fullmatch(rf"{re.escape(str(tmp_path))}/outputs/default/multiruns/{stamp}", sweep), sweep
    assert outs[0][0] != outs[1][0] and outs[0][1] != outs[1][1]


def _conf_dir_from(module_file: Path) -> str:
    """``CONF_DIR`` as ``gastrodistill/utils/config_tree.py`` computes it from ``module_file``, a copy of it
    placed in another tree (loaded from there, so that its ``__file__`` is that copy)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("config_tree_copy", module_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.CONF_DIR


def _layout(root: Path, checkout_conf: bool, package_conf: bool) -> Path:
    """A package ``root/gastrodistill`` holding a copy of ``config_tree.py``, with ``conf/config.yaml``
    beside it (a source checkout) and/or inside it (a regular install's package data)."""
    import shutil

    from gastrodistill.utils import config_tree

    copy = root / "gastrodistill" / "utils" / "config_tree.py"
    copy.parent.mkdir(parents=True)
    shutil.copy(config_tree.__file__, copy)
    for wanted, conf in ((checkout_conf, root / "conf"), (package_conf, root / "gastrodistill" / "conf")):
        conf.mkdir(parents=True, exist_ok=True)
        if wanted:
            (conf / "config.yaml").write_text("seed: 0\n")
    return copy


def test_the_config_tree_is_the_checkouts_first_then_the_packages_own(tmp_path):
    """A source checkout's ``conf/`` wins over a copy inside the package; an installed package uses its own;
    a folder without ``config.yaml`` is no tree; with none, the error says to reinstall (kills the order
    reversed, the package's copy ignored, a folder taken for a tree and the error dropped)."""
    both = _layout(tmp_path / "both", checkout_conf=True, package_conf=True)
    assert _conf_dir_from(both) == str(tmp_path / "both" / "conf")
    installed = _layout(tmp_path / "installed", checkout_conf=False, package_conf=True)
    assert _conf_dir_from(installed) == str(tmp_path / "installed" / "gastrodistill" / "conf")
    neither = _layout(tmp_path / "neither", checkout_conf=False, package_conf=False)
    with pytest.raises(
        FileNotFoundError, match=r"nor inside it \(gastrodistill/conf\); reinstall gastrodistill"
    ):
        _conf_dir_from(neither)


def test_a_package_reached_through_a_link_finds_the_checkout_beside_its_real_folder(tmp_path):
    """A package folder linked into another place (``site-packages/gastrodistill -> checkout/gastrodistill``)
    finds the checkout's ``conf/`` beside the real folder (kills the module's path taken unresolved)."""
    _layout(tmp_path / "checkout", checkout_conf=True, package_conf=False)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "gastrodistill").symlink_to(tmp_path / "checkout" / "gastrodistill")
    linked = tmp_path / "site" / "gastrodistill" / "utils" / "config_tree.py"
    assert _conf_dir_from(linked) == str((tmp_path / "checkout" / "conf").resolve())
