"""The presets compose from the root config, and the CLI reports what it wrote and records the run."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf

from gastrodistill.cli.generate import run
from gastrodistill.data.synthetic import SyntheticConfig

RUNTIME_KEYS = ("_target_", "_convert_", "root", "seed", "num_workers", "progress")


@pytest.mark.parametrize(
    ("preset", "counts", "size", "per_patient"),
    [
        ("default", (24, 24, 12, 28), 1280, 2),
        ("tiny", (2, 2, 2, 2), 600, 1),
        ("full", (100, 100, 140, 475), 2048, 8),
    ],
)
def test_presets(compose_cfg, preset, counts, size, per_patient):
    cfg = compose_cfg([f"synthetic={preset}", "seed=4"])
    node = OmegaConf.to_container(cfg.synthetic, resolve=True)
    assert node["name"] == preset and node["seed"] == 4
    assert node["root"].endswith(f"data/synthetic/{preset}")
    assert node["_target_"] == "gastrodistill.data.synthetic.generate_dataset"
    conf = SyntheticConfig.from_params(**{k: v for k, v in node.items() if k not in RUNTIME_KEYS})
    got = (conf.train_gastritis, conf.train_non_gastritis, conf.test_gastritis, conf.test_non_gastritis)
    assert got == counts and conf.image_size == size and conf.images_per_patient == per_patient


def test_cli_run_prints_counts_and_saves_run_info(compose_cfg, tiny_root, tmp_path, capsys):
    cfg = compose_cfg(["synthetic=tiny", "seed=11", f"paths.data_root={tiny_root}"])
    root = run(cfg)
    assert root == tiny_root
    out = capsys.readouterr().out
    assert str(tiny_root) in out
    assert "train  gastritis: 2 patients / 2 images,  non-gastritis: 2 patients / 2 images" in out
    assert "test   gastritis: 2 patients / 2 images" in out
    info = json.loads((tmp_path / "out" / "run_info.json").read_text())
    assert "versions" in info and "git_revision" in info
    assert (tmp_path / "out" / "config.yaml").read_text().count("name: tiny") >= 1


def test_cli_run_prints_the_collections_own_seed(compose_cfg, tiny_root, capsys):
    """``seed=2 synthetic.seed=11`` keeps the seed-11 collection: the summary names 11, not the run's 2."""
    cfg = compose_cfg(["synthetic=tiny", "seed=2", "synthetic.seed=11", f"paths.data_root={tiny_root}"])
    run(cfg)
    out = capsys.readouterr().out
    assert "synthetic data set 'tiny' (seed 11)" in out
