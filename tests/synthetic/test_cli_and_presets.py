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


def test_stages_refuse_a_collection_of_another_seed_or_other_settings(compose_cfg, tiny_root):
    """The stages read the collection on disk as it is: one of another seed (``seed`` moved and
    ``synthetic.seed`` followed it) or other settings is refused before any data is read, so a run's saved
    config never names data it did not read. Another data root is not checked."""
    from gastrodistill.cli.build_patches import run as patches_run
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.data.synthetic.generator import SyntheticCollectionMismatch, check_synthetic_collection

    def cfg(*more: str):
        return compose_cfg(["experiment=tiny", f"paths.data_root={tiny_root}", *more])

    check_synthetic_collection(cfg("seed=11"))  # the collection's own seed and settings
    check_synthetic_collection(cfg("seed=2", "synthetic.seed=11"))  # other network seeds, the same data
    check_synthetic_collection(cfg("seed=2", f"data.root={tiny_root.parent / 'elsewhere'}"))
    with pytest.raises(SyntheticCollectionMismatch) as info:
        check_synthetic_collection(cfg("seed=2"))
    text = str(info.value)
    assert text.startswith(
        f"{tiny_root} holds the synthetic collection of synthetic.seed=11, but this run's "
    )
    assert "synthetic.seed is 2" in text and "add synthetic.seed=11" in text and "\n" not in text
    with pytest.raises(SyntheticCollectionMismatch) as info:
        check_synthetic_collection(cfg("seed=11", "synthetic.train_gastritis=5"))
    assert (
        "written with other settings than this run's (synthetic.train_gastritis is 2 there but 5 here)"
        in str(info.value)
    )
    with pytest.raises(
        SyntheticCollectionMismatch, match="synthetic.seed=11"
    ):  # the patch stage, before a store
        patches_run(cfg("seed=2"))
    assert not (tiny_root.parent.parent / "stores").exists()
    with pytest.raises(SyntheticCollectionMismatch, match="synthetic.seed=11"):  # reproduce without generate
        Pipeline(cfg("seed=2")).check_reproduce_section(["patches", "distill"])
    Pipeline(cfg("seed=2")).check_reproduce_section(["generate", "distill"])  # generate writes seed 2 first
    # a receiving site's command too (it trained on the seed-11 collection and recorded seed 2), before the
    # artifact is read or anything is written
    from gastrodistill.cli.train_from_artifact import run as receive_run

    out = tiny_root.parent / "receive_report"
    with pytest.raises(SyntheticCollectionMismatch, match="synthetic.seed=11"):
        receive_run(["--artifact", str(out / "none.zip"), "--output", str(out), "experiment=tiny",
                     f"paths.data_root={tiny_root}", "seed=2"])  # fmt: skip
    assert not out.exists()
