"""DistillModule + run_distillation through a real Lightning Trainer: outputs, logging, hard mode,
exact resume, and a clean stop on non-finite values."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
import torch
from _distill_helpers import make_tiny_splits

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.module import NonFiniteError
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.distillation.run import build_distilled_set, run_distillation


def read_metrics(log_dir):
    files = list(log_dir.rglob("metrics.csv"))
    assert len(files) == 1, files
    with files[0].open() as f:
        return list(csv.DictReader(f))


def test_run_writes_the_set_pictures_logs_and_run_info(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    cfg = compose_cfg(tiny_overrides)
    out = tmp_path / "out"
    initial = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
    ds = run_distillation(cfg, tiny_dm, out)
    d = out / "soft"
    for name in (
        "distilled.safetensors",
        "distilled.json",
        "grid.png",
        "lrs.png",
        "summary.json",
        "config.yaml",
        "run_info.json",
        "grids/step_000002.png",
    ):
        assert (d / name).is_file(), name
    assert not (d / "zca.png").exists()  # no data.zca, no whitening picture
    back = DistilledSet.load(d)
    assert torch.equal(back.images, ds.images) and torch.equal(back.raw_lrs, ds.raw_lrs)
    # the data it was distilled from, which evaluation and audit compare with theirs
    assert (
        back.data_source_hash
        == tiny_dm.source_hash()
        == json.loads((d / "distilled.json").read_text())["data_source_hash"]
    )
    # All three groups moved away from their initial values.
    for name in ("images", "label_logits", "raw_lrs"):
        assert not torch.equal(getattr(ds, name), getattr(initial, name)), name
    rows = read_metrics(out / "logs")
    losses = [float(r["outer/loss"]) for r in rows if r.get("outer/loss")]
    assert len(losses) == 3 and all(np.isfinite(losses))
    assert {"lr/000", "lr/001", "labels/entropy", "outer/acc", "opt/lr_images"} <= set(rows[0])
    lr_rows = [r for r in rows if r.get("lr/001")]
    assert float(lr_rows[-1]["lr/001"]) == pytest.approx(float(ds.lrs()[1].detach()), rel=1e-5)
    summary = json.loads((d / "summary.json").read_text())
    assert summary["outer_steps"] == 3 and summary["mode"] == "soft"
    # a fresh run says the matching stages were off (a resumed run's images came from its first run's)
    assert summary["distribution_matching_steps"] == 0 and summary["texture_matching_steps"] == 0
    p = torch.softmax(back.label_logits.detach().double() / back.temperature, dim=1)
    assert summary["label_entropy"] == pytest.approx(float(-(p * p.log()).sum(1).mean()), rel=1e-5)
    # Nothing logged (hyper-parameters included) carries a local path.
    for f in (out / "logs").rglob("*"):
        if f.is_file():
            assert str(tmp_path) not in f.read_text(errors="ignore"), f


def test_the_set_is_written_last_so_a_stop_leaves_no_finished_set_without_its_record(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
):
    """distilled.json marks a set finished; a Ctrl-C after it and before run_info.json left a "finished"
    set that a new run refused and that could not be resumed (a breaker's finding)."""
    present = {}
    save = DistilledSet.save

    def recording_save(self, directory):
        present.update({n: (directory / n).is_file() for n in ("grid.png", "summary.json", "run_info.json")})
        return save(self, directory)

    monkeypatch.setattr(DistilledSet, "save", recording_save)
    run_distillation(compose_cfg(tiny_overrides), tiny_dm, tmp_path / "out")
    assert present == {"grid.png": True, "summary.json": True, "run_info.json": True}


def test_hard_mode_keeps_labels_fixed(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    cfg = compose_cfg(
        [*tiny_overrides, "distill=hard", "distill.label_init_scale=2.0", "distill.grad_clip=0.5"]
    )
    ds = run_distillation(cfg, tiny_dm, tmp_path / "out")
    assert ds.mode == "hard"
    expected = torch.nn.functional.one_hot(ds.hard_labels(), 3).float()
    assert torch.equal(ds.label_logits, 2.0 * expected)
    assert torch.equal(ds.soft_targets(), expected)
    assert (tmp_path / "out" / "hard" / "distilled.safetensors").is_file()


def test_exact_resume_from_a_checkpoint(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    """Stop at step 2, resume to 4: the same tensors as 4 uninterrupted steps (Adam, StepLR, seeds, data)."""
    common = [
        *tiny_overrides,
        "distill.outer_steps=4",
        "distill.inner_nets_per_step=2",
        "distill.scheduler.step_size=1",
        "distill.scheduler.gamma=0.7",
        "distill.grid_every=0",
    ]
    full = run_distillation(compose_cfg(common), tiny_dm, tmp_path / "full")
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=2", "distill.ckpt_every=2"]), tiny_dm, tmp_path / "part"
    )
    ckpt = tmp_path / "part" / "soft" / "checkpoints" / "last.ckpt"
    assert ckpt.exists()
    two_steps = DistilledSet.load(tmp_path / "part" / "soft")
    # Continue in the same output folder, as a user would after an interruption: without Lightning's
    # warning that the checkpoints' folder is not empty (it holds the checkpoint continued; it named the
    # folder's path in the job's log)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        resumed = run_distillation(
            compose_cfg([*common, "distill.resume=last", "distill.ckpt_every=2"]), tiny_dm, tmp_path / "part"
        )
    assert not [w for w in seen if "exists and is not empty" in str(w.message)]
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(full, name), getattr(resumed, name)), name
    assert not torch.equal(two_steps.images, full.images)  # the resumed run really took two more steps
    assert json.loads((tmp_path / "part" / "soft" / "summary.json").read_text())["outer_steps"] == 4


def first_step_drawing(source: RealBatchSource, index: int, start: int = 1) -> int:
    return next(s for s in range(start, 100) if index in source.indices(s, 0).tolist())


def test_nan_in_a_real_batch_stops_the_run_naming_the_step(
    compose_cfg, tiny_overrides, tmp_path, monkeypatch
):
    """... and its W&B run is recorded as failed (exit code 1), not finished (a sweep's broken jobs were)."""
    from _wandb_run_file import exit_codes

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    splits = make_tiny_splits()
    cfg = compose_cfg([*tiny_overrides, "distill.outer_steps=20", "logger=default"])
    probe = RealBatchSource(None, splits["train"][1], cfg.distill.batch_real, cfg.seed, 3)
    victim = next(i for i in range(40) if i not in probe.indices(0, 0).tolist())
    step = first_step_drawing(probe, victim)
    x = splits["train"][0].copy()
    dm = TensorImageDataModule(splits={**splits, "train": (x, splits["train"][1])})
    dm.setup()
    x[victim, 0, 1, 1] = np.nan  # after setup: the statistics stay finite, one training image is poisoned
    with pytest.raises(NonFiniteError, match=rf"outer step {step}: the outer loss is not finite"):
        run_distillation(cfg, dm, tmp_path / "out")
    assert not (tmp_path / "out" / "soft" / "distilled.safetensors").exists()
    (run_file,) = (tmp_path / "out" / "logs").rglob("*.wandb")
    assert exit_codes(run_file) == [1]


def test_wandb_offline_gets_uint8_grids_and_no_paths(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
):
    from _wandb_run_file import exit_codes

    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_dir"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    cfg = compose_cfg([*tiny_overrides, "logger=default"])
    run_distillation(cfg, tiny_dm, tmp_path / "out")
    (run_file,) = (tmp_path / "out" / "logs").rglob("*.wandb")
    assert exit_codes(run_file) == [0]  # finished
    pngs = list((tmp_path / "out" / "logs").rglob("media/images/distilled/grid_*.png"))
    assert len(pngs) == 1, pngs
    from PIL import Image

    img = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert img.dtype == np.uint8 and img.std() > 10  # a real picture, not a cast-to-black float image
    ours = np.asarray(Image.open(tmp_path / "out" / "soft" / "grids" / "step_000002.png").convert("RGB"))
    assert img.shape == ours.shape
    for f in (tmp_path / "out" / "logs").rglob("*"):
        if f.is_file() and f.suffix in {".yaml", ".json", ".csv"}:
            assert str(tmp_path) not in f.read_text(errors="ignore"), f


def test_distillation_refuses_a_network_that_cannot_run_before_training(compose_cfg, tiny_dm):
    """``build_module`` builds one network at once, so a ResNet with instance norm on 6 px images is
    refused before the Trainer starts (it was refused at the first inner step), and the probe leaves the
    global RNG stream where it was."""
    from gastrodistill.distillation.run import build_distilled_set, build_module
    from gastrodistill.models.layers import ModelConfigError

    cfg = compose_cfg(["model=resnet18", "model.width=8", "model.norm=instance"])
    ds = build_distilled_set(cfg.distill, tiny_dm, "soft", 0)
    with pytest.raises(ModelConfigError, match="1x1 feature map"):
        build_module(cfg, tiny_dm, ds, None)
    ok = compose_cfg(["model=convnet", "model.width=8", "model.depth=2"])
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    build_module(ok, tiny_dm, ds, None)
    torch.testing.assert_close(torch.rand(3), expected, rtol=0, atol=0)


def test_a_set_distilled_behind_a_zca_filter_records_that_filter(compose_cfg, tiny_overrides, tmp_path):
    """With data.zca the set's model_config (the "same" network at evaluation, the artifact's architecture)
    carries the data's own filter, and zca.png is drawn."""
    from gastrodistill.data.zca import LocalZCA
    from gastrodistill.models.zca import ZCA_KEY

    dm = TensorImageDataModule(splits=make_tiny_splits(), class_names=["a", "b", "c"], zca=LocalZCA(3))
    run_distillation(compose_cfg(tiny_overrides), dm, tmp_path / "out")
    back = DistilledSet.load(tmp_path / "out" / "soft")
    kernel = dm.zca_kernel()
    assert kernel is not None and tuple(kernel.shape) == (1, 3, 3)
    assert torch.equal(torch.tensor(back.model_config[ZCA_KEY]), kernel)
    assert (tmp_path / "out" / "soft" / "zca.png").is_file()
