"""Scale switches through the Trainer on CPU: bf16 autocast + channels-last + chunks + checkpointing,
logging and finiteness checks every N steps (the first bad step is still named exactly)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from _distill_helpers import make_tiny_splits

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.module import NonFiniteError
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.distillation.run import build_distilled_set, build_module, run_distillation


def test_bf16_channels_last_chunked_checkpointed_run(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.grid_every=0"]
    cfg = compose_cfg(
        [
            *common,
            "distill.precision=bf16-mixed",
            "distill.channels_last=true",
            "distill.outer_chunk=5",
            "distill.checkpoint=true",
            "distill.real_data=resident",
        ]
    )
    initial = build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed)
    ds = run_distillation(cfg, tiny_dm, tmp_path / "out")
    assert ds.images.dtype == torch.float32 and torch.isfinite(ds.images).all()
    assert not torch.equal(ds.images, initial.images)
    # The bf16 outer loss is the float32 one within bfloat16 rounding.
    fp32 = build_module(compose_cfg(common), tiny_dm, initial, None)
    bf16 = build_module(cfg, tiny_dm, build_distilled_set(cfg.distill, tiny_dm, "soft", cfg.seed), None)
    seen: dict[str, tuple[bool, torch.dtype]] = {}
    for name, module in (("fp32", fp32), ("bf16", bf16)):  # the autocast state the objective runs under
        objective = module._meta_objective

        def spy(*args, _objective=objective, _name=name, **kwargs):
            seen[_name] = (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"))
            return _objective(*args, **kwargs)

        module._meta_objective = spy
    x, y = fp32.real_batch(0, 0)
    a = fp32.inner_net_objective(x, y, 0, 0, 0)[0].loss
    b = bf16.inner_net_objective(*bf16.real_batch(0, 0), 0, 0, 0)[0].loss
    assert seen["bf16"] == (True, torch.bfloat16) and seen["fp32"][0] is False
    assert a.dtype == b.dtype == torch.float32  # the outer loss itself is float32 under autocast too
    assert float(b) != float(a)  # bfloat16 rounding shows ...
    assert float(b) == pytest.approx(float(a), rel=0.03)  # ... and stays within its size


def test_metrics_every_n_steps(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    cfg = compose_cfg(
        [*tiny_overrides, "distill.outer_steps=7", "distill.log_every=3", "distill.grid_every=0"]
    )
    run_distillation(cfg, tiny_dm, tmp_path / "out")
    (f,) = (tmp_path / "out" / "logs").rglob("metrics.csv")
    with f.open() as fh:
        steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("outer/loss")]
    assert steps == [2, 5]  # every 3rd step: Lightning writes (and syncs) nothing in between
    summary = json.loads((tmp_path / "out" / "soft" / "summary.json").read_text())
    assert summary["outer_steps"] == 7 and np.isfinite(summary["outer/loss"])  # the last step's values


def test_sparse_checks_still_name_the_first_bad_step(compose_cfg, tiny_overrides, tmp_path):
    splits = make_tiny_splits()
    cfg = compose_cfg([*tiny_overrides, "distill.outer_steps=20", "distill.check_every=7"])
    probe = RealBatchSource(None, splits["train"][1], cfg.distill.batch_real, cfg.seed, 3)
    victim = next(i for i in range(40) if i not in probe.indices(0, 0).tolist())
    step = next(s for s in range(1, 100) if victim in probe.indices(s, 0).tolist())
    assert step % 7 != 6  # the bad step is not itself a check step
    x = splits["train"][0].copy()
    dm = TensorImageDataModule(splits={**splits, "train": (x, splits["train"][1])})
    dm.setup()
    x[victim, 0, 1, 1] = np.nan
    with pytest.raises(NonFiniteError, match=rf"outer step {step}: the outer loss is not finite"):
        run_distillation(cfg, dm, tmp_path / "out")
    assert not (tmp_path / "out" / "soft" / "distilled.safetensors").exists()


def test_distill_precision_takes_lightning_names_and_the_short_ones():
    """``distill.precision`` is named as the evaluation's (Lightning's) precisions; the short names of
    earlier configs are read as those, anything else is refused naming the key."""
    from gastrodistill.distillation.module import check_precision

    assert [check_precision(p) for p in ("32-true", "bf16-mixed", "32", 32, "bf16")] == [
        "32-true",
        "bf16-mixed",
        "32-true",
        "32-true",
        "bf16-mixed",
    ]
    with pytest.raises(ValueError, match="distill.precision must be one of"):
        check_precision("16-mixed")
