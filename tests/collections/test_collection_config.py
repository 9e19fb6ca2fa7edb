"""``data=npz`` / ``data=folder`` through Hydra: required paths, instantiation, albumentations augment."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.utils import instantiate
from omegaconf.errors import MissingMandatoryValue

from gastrodistill.data.collections import FolderDataModule, NpzDataModule


def test_npz_path_is_required(compose_cfg):
    cfg = compose_cfg(["data=npz"])
    with pytest.raises(MissingMandatoryValue):
        instantiate(cfg.data)


def test_npz_from_config(compose_cfg, make_npz):
    path = make_npz(k=2, channels=3)
    cfg = compose_cfg(
        ["data=npz", f"data.path={path}", "data.batch_size=8", "seed=5", "data.balanced_sampler=true"]
    )
    dm = instantiate(cfg.data)
    assert isinstance(dm, NpzDataModule) and dm.seed == 5 and dm.balanced_sampler
    dm.setup()
    assert dm.num_classes == 2 and dm.image_shape == (3, 12, 12)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 12, 12) and len(y) == 8


def test_folder_with_albumentations_augment(compose_cfg, make_folder):
    root = make_folder(n=5, channels=1)
    flip = "{_target_:albumentations.HorizontalFlip,p:1.0}"
    augment = f"{{_target_:albumentations.Compose,_convert_:all,transforms:[{flip}]}}"
    cfg = compose_cfg(
        ["data=folder", f"data.root={root}", "data.image_size=[12,10]", f"data.augment={augment}"]
    )
    dm = instantiate(cfg.data)
    assert isinstance(dm, FolderDataModule)
    dm.setup()
    assert dm.image_size == (12, 10)
    plain, _ = dm.dataset("train", augment=False)[0]
    flipped, _ = dm.dataset("train", augment=True)[0]
    assert not np.allclose(plain.numpy(), flipped.numpy())
    np.testing.assert_allclose(flipped.numpy(), plain.numpy()[:, :, ::-1], atol=1e-5)


def test_reproduce_with_npz_skips_the_gastric_stages(compose_cfg, make_npz, tmp_path, capsys):
    """The default ``stages`` begin with ``generate`` and ``patches``; with ``data=npz`` they are skipped
    with a note (no synthetic gastric data written, none named in the summary)."""
    from gastrodistill.cli.reproduce import Pipeline

    path = make_npz(k=2)
    cfg = compose_cfg(["data=npz", f"data.path={path}", "stages=[generate,patches]"])
    paths = Pipeline(cfg).run()
    assert "data" not in paths and "patch store" not in paths
    assert not (tmp_path / "data").exists()  # paths.data_root, where generate writes
    assert "stages ['generate', 'patches'] skipped" in capsys.readouterr().out
    summary = (tmp_path / "out" / "SUMMARY.md").read_text()
    assert "## Notes" in summary and "NpzDataModule does not read" in summary
    assert "synthetic" not in summary.split("## Recipe")[1].split("## Outputs")[0]
