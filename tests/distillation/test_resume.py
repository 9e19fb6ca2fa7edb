"""``distill.resume``: checkpoint names without '=', ``last`` across run folders, mode separation, errors."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import torch
from _distill_helpers import TINY, run_distill_cli

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.resume import ResumeError, resolve_resume
from gastrodistill.distillation.run import run_distillation

HERE = Path(__file__).resolve().parent


def touch(path: Path, age_s: float = 0.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    t = time.time() - age_s
    os.utime(path, (t, t))
    return path


def test_resolve_last_run_folder_and_files(tmp_path):
    root = tmp_path / "outputs" / "exp"
    old = touch(root / "runs" / "r1" / "soft" / "checkpoints" / "step000002.ckpt", age_s=100)
    new = touch(root / "runs" / "r2" / "distill" / "soft" / "checkpoints" / "last.ckpt", age_s=10)
    hard = touch(root / "runs" / "r2" / "distill" / "hard" / "checkpoints" / "step000004.ckpt", age_s=1)
    current = tmp_path / "outputs" / "exp" / "runs" / "r3" / "soft"
    assert resolve_resume(None, "soft", current, root) is None
    assert resolve_resume("last", "soft", current, root) == new  # newest of this mode, not the hard one
    assert resolve_resume("last", "hard", current, root) == hard
    assert resolve_resume(str(root / "runs" / "r1"), "soft", current, root) == old  # a run folder
    assert resolve_resume(str(old), "soft", current, root) == old  # a file of this mode
    # A hard checkpoint named for the soft run stands for its run folder: the soft checkpoint there.
    assert resolve_resume(str(hard), "soft", current, root) == new
    assert resolve_resume(str(root / "runs" / "r1"), "hard", current, root) is None
    assert resolve_resume("last", "soft", current, tmp_path / "elsewhere") is None
    with pytest.raises(ResumeError, match="no such checkpoint file or run folder"):
        resolve_resume(str(tmp_path / "nope.ckpt"), "soft", current, root)


def test_run_refuses_a_checkpoint_of_the_other_mode(compose_cfg, tiny_dm, tiny_overrides, tmp_path):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg(common), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "step000002.ckpt"
    assert ckpt.is_file() and (ckpt.parent / "last.ckpt").is_file()
    plain = tmp_path / "soft_copy.ckpt"  # outside a <mode>/checkpoints folder: only its content tells
    plain.write_bytes(ckpt.read_bytes())
    with pytest.raises(ResumeError, match="never share a checkpoint"):
        run_distillation(
            compose_cfg([*common, "distill=hard", f"distill.resume={plain}"]), tiny_dm, tmp_path / "b"
        )
    with pytest.raises(ResumeError, match="no checkpoint of the hard-label run"):
        run_distillation(
            compose_cfg([*common, "distill=hard", "distill.resume=last"]), tiny_dm, tmp_path / "a"
        )


def test_run_refuses_a_checkpoint_of_other_settings_and_names_the_folder_passed(
    compose_cfg, tiny_dm, tiny_overrides, tmp_path
):
    common = [*tiny_overrides, "distill.outer_steps=2", "distill.ckpt_every=2", "distill.grid_every=0"]
    run_distillation(compose_cfg([*common, "distill.ipc=1"]), tiny_dm, tmp_path / "a")
    ckpt = tmp_path / "a" / "soft" / "checkpoints" / "last.ckpt"
    with pytest.raises(ResumeError, match="does not fit this run") as info:
        run_distillation(
            compose_cfg([*common, "distill.ipc=2", f"distill.resume={ckpt}"]), tiny_dm, tmp_path / "b"
        )
    assert "distilled.images" in str(info.value) and "distill.ipc" in str(info.value)
    assert not (tmp_path / "b" / "soft" / "distilled.safetensors").exists()
    # A run folder without a checkpoint of this mode: the message names that folder, not the new run's.
    with pytest.raises(ResumeError) as info:
        run_distillation(
            compose_cfg([*common, "distill=hard", f"distill.resume={tmp_path / 'a'}"]),
            tiny_dm,
            tmp_path / "c",
        )
    assert f"found under {tmp_path / 'a'}." in str(info.value) and str(tmp_path / "c") not in str(info.value)


def test_cli_refuses_a_checkpoint_of_other_settings_in_one_line_and_leaves_no_run_folder(
    compose_cfg, tmp_path
):
    from hydra.utils import instantiate

    common = [*TINY, "data=digits", "logger=csv", "distill.outer_steps=2", "distill.grid_every=0"]
    cfg = compose_cfg([*common, "distill.ckpt_every=2"])
    run_distillation(cfg, instantiate(cfg.data), tmp_path / "first")
    ckpt = tmp_path / "first" / "soft" / "checkpoints" / "last.ckpt"
    run_dir = tmp_path / "outputs" / "second"
    proc = run_distill_cli(
        tmp_path,
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={run_dir}",
        *common,
        "distill.ipc=2",  # the checkpoint holds 1 image per class
        f"distill.resume={ckpt}",
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "size mismatch" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: the checkpoint does not fit this run")
    assert not run_dir.exists()  # its logs/ held only the CSV logger's hparams.yaml


def cli(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_distill_cli(
        tmp_path,
        "data=digits",
        f"paths.root_dir={tmp_path}",
        "logger=csv",
        *TINY,
        "distill.outer_steps=4",
        "distill.inner_nets_per_step=2",
        "distill.scheduler.step_size=1",
        "distill.scheduler.gamma=0.7",
        "distill.grid_every=0",
        *overrides,
    )


def test_cli_stop_and_resume_in_a_new_run_folder_is_exact(tmp_path):
    runs = tmp_path / "outputs" / "default" / "runs"
    full = cli(tmp_path, f"hydra.run.dir={tmp_path / 'uninterrupted'}")
    assert full.returncode == 0, full.stderr[-3000:]
    part = cli(tmp_path, f"hydra.run.dir={runs / 'first'}", "distill.outer_steps=2", "distill.ckpt_every=2")
    assert part.returncode == 0, part.stderr[-3000:]
    ckpts = sorted(p.name for p in (runs / "first" / "soft" / "checkpoints").iterdir())
    assert ckpts == ["last.ckpt", "step000002.ckpt"]  # no '=' in names
    resumed = cli(tmp_path, f"hydra.run.dir={runs / 'second'}", "distill.resume=last", "distill.ckpt_every=2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming the soft-label distillation from checkpoint" in resumed.stdout
    assert str(runs / "first" / "soft" / "checkpoints") in resumed.stdout
    a = DistilledSet.load(tmp_path / "uninterrupted" / "soft")
    b = DistilledSet.load(runs / "second" / "soft")
    two = DistilledSet.load(runs / "first" / "soft")
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(two.images, a.images)
    # The checkpoint path itself, unquoted, is a valid override too.
    again = cli(
        tmp_path,
        f"hydra.run.dir={runs / 'third'}",
        f"distill.resume={runs / 'first' / 'soft' / 'checkpoints' / 'step000002.ckpt'}",
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert torch.equal(DistilledSet.load(runs / "third" / "soft").images, a.images)
    # A resume that finds nothing (no hard run was ever checkpointed) stops with an error, not step 0.
    missing = cli(tmp_path, f"hydra.run.dir={runs / 'fourth'}", "distill=hard", "distill.resume=last")
    assert missing.returncode == 1, missing.stderr[-2000:]
    assert "no checkpoint of the hard-label run" in missing.stdout + missing.stderr
    assert not (runs / "fourth" / "hard" / "distilled.safetensors").exists()
