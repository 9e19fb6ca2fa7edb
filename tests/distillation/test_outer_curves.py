"""``curves.png`` beside a distilled set: the outer loop's loss and accuracy per outer step, the same
numbers the CSV logger writes, carried through a checkpoint so a resumed run draws its whole curve."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from PIL import Image

from gastrodistill.distillation.curves import OuterCurves
from gastrodistill.distillation.run import run_distillation


def checkpoint_curves(folder) -> dict[str, list[float]]:
    """The curve a run's ``last.ckpt`` holds (the callback's state, saved by Lightning)."""
    ckpt = torch.load(folder / "soft" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["callbacks"][OuterCurves().state_key]


def test_the_curves_are_the_logged_numbers_and_a_resume_continues_them(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
) -> None:
    common = [*tiny_overrides, "distill.ckpt_every=1", "distill.grid_every=0", "logger=csv"]
    whole = tmp_path / "whole"
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=4", f"paths.output_dir={whole}"]), tiny_dm, whole
    )
    curves = checkpoint_curves(whole)
    assert curves["step"] == [1.0, 2.0, 3.0, 4.0]
    logged = pd.read_csv(whole / "logs" / "csv" / "distill-soft" / "metrics.csv")
    logged = logged.dropna(subset=["outer/loss"]).sort_values("step")
    assert curves["loss"] == pytest.approx(logged["outer/loss"].tolist(), rel=1e-6)
    assert curves["accuracy"] == pytest.approx(logged["outer/acc"].tolist(), rel=1e-6)
    image = Image.open(whole / "soft" / "curves.png")
    assert image.format == "PNG" and image.width > 2 * image.height  # two panels side by side

    first, second = tmp_path / "first", tmp_path / "second"
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=2", f"paths.output_dir={first}"]), tiny_dm, first
    )
    assert checkpoint_curves(first)["step"] == [1.0, 2.0]
    resume = f"distill.resume={first / 'soft' / 'checkpoints' / 'last.ckpt'}"
    run_distillation(
        compose_cfg([*common, "distill.outer_steps=4", resume, f"paths.output_dir={second}"]), tiny_dm, second
    )
    assert checkpoint_curves(second) == curves  # steps 1-2 from the checkpoint, 3-4 run here: the whole curve


def test_a_checkpoint_from_before_the_curves_starts_an_empty_curve() -> None:
    cb = OuterCurves()
    cb.load_state_dict({})
    assert cb.curves() == {"step": [], "loss": [], "accuracy": []}
    cb.load_state_dict({"step": [1, 2], "loss": [0.5, 0.25], "accuracy": [0.1, 0.2]})
    assert cb.state_dict() == {"step": [1.0, 2.0], "loss": [0.5, 0.25], "accuracy": [0.1, 0.2]}


def test_a_texture_matching_start_gets_its_own_panel_of_its_losses(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path, monkeypatch
) -> None:
    """The start before the outer loop (texture matching here) is drawn as a third panel, named and with
    its own losses (not the distribution matching's)."""
    import json

    import gastrodistill.distillation.run as run_module

    drawn, real = [], run_module.curves_image
    monkeypatch.setattr(
        run_module,
        "curves_image",
        lambda outer, start=None, name="image start": (
            drawn.append((list(start or []), name)) or real(outer, start, name)
        ),
    )
    cfg = compose_cfg(
        [
            *tiny_overrides,
            "distill.outer_steps=1",
            "distill.grid_every=0",
            "distill.texture_matching.steps=3",
            "distill.texture_matching.features=random",
            "distill.texture_matching.progress=false",
        ]
    )
    run_distillation(cfg, tiny_dm, tmp_path / "out")
    summary = json.loads((tmp_path / "out" / "soft" / "summary.json").read_text())
    ((start, name),) = drawn
    assert name == "texture matching" and len(start) == summary["texture_matching_steps"] == 3
    assert (start[0], start[-1]) == pytest.approx(
        (summary["texture_matching_loss_first"], summary["texture_matching_loss_last"])
    )
    image = Image.open(tmp_path / "out" / "soft" / "curves.png")
    assert image.width > 3 * image.height  # three panels: the start, the outer loss, the outer accuracy


def test_each_step_with_a_logged_loss_is_kept_by_number_with_nan_for_a_missing_accuracy() -> None:
    """The hook on a stand-in trainer. Kills: a step without a logged loss not skipped, a missing accuracy
    kept as 0, the logged tensor kept without a copy (a later in-place update would change the curve)."""
    from types import SimpleNamespace

    cb = OuterCurves()
    trainer = SimpleNamespace(global_step=1, callback_metrics={})
    cb.on_train_batch_end(trainer, None, None, None, 0)  # nothing logged yet
    loss = torch.tensor(0.5)
    trainer.global_step, trainer.callback_metrics = 2, {"outer/loss": loss}
    cb.on_train_batch_end(trainer, None, None, None, 1)
    loss.add_(1.0)
    trainer.global_step, trainer.callback_metrics = 3, {"outer/loss": 0.25, "outer/acc": torch.tensor(0.75)}
    cb.on_train_batch_end(trainer, None, None, None, 2)
    curves = cb.curves()
    assert curves["step"] == [2.0, 3.0] and curves["loss"] == [0.5, 0.25]
    assert math.isnan(curves["accuracy"][0]) and curves["accuracy"][1] == 0.75


def test_loading_a_checkpoints_curve_replaces_the_curve_held() -> None:
    cb = OuterCurves()
    cb.load_state_dict({"step": [1, 2, 3], "loss": [0.9, 0.8, 0.7], "accuracy": [0.1, 0.2, 0.3]})
    cb.load_state_dict({"step": [1], "loss": [0.5], "accuracy": [0.4]})
    assert cb.curves() == {"step": [1.0], "loss": [0.5], "accuracy": [0.4]}
