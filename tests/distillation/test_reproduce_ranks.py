"""The rank-aware pipeline: rank 0 prepares the data while the others wait; a 2-process torchrun run of
``reproduce`` (gloo) distils on both ranks, evaluates on rank 0 only and writes each output once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl

from gastrodistill.data.errors import StoreError
from gastrodistill.utils import distributed


class SlowStore(pl.LightningDataModule):
    """``setup`` fails until rank 0 (simulated by the test) has "built" the store."""

    def __init__(self, ready_after: int) -> None:
        super().__init__()
        self.calls, self.ready_after, self.prepared = 0, ready_after, False

    def prepare_data(self) -> None:
        self.prepared = True

    def setup(self, stage=None) -> None:
        self.calls += 1
        if self.calls < self.ready_after:
            raise StoreError("no up-to-date patch store")


def test_only_global_rank_zero_prepares_the_others_wait(monkeypatch):
    monkeypatch.setattr(distributed.time, "sleep", lambda s: None)
    for var in (
        "RANK",
        "WORLD_SIZE",
        "LOCAL_RANK",
        "NODE_RANK",
        "SLURM_NTASKS",
        "SLURM_PROCID",
        "SLURM_STEP_NUM_TASKS",
    ):
        monkeypatch.delenv(var, raising=False)
    dm = SlowStore(ready_after=3)
    distributed.prepare_data_rank_zero_first(dm)  # one process: prepares
    assert dm.prepared and distributed.world_size() == 1 and distributed.is_global_zero()

    monkeypatch.setenv("RANK", "1")  # torchrun's rank 1 of 2, before any process group
    monkeypatch.setenv("WORLD_SIZE", "2")
    dm = SlowStore(ready_after=3)
    distributed.prepare_data_rank_zero_first(dm)
    assert not dm.prepared and dm.calls == 3  # waited for the store, never built it
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setenv("SLURM_NTASKS", "4")  # a batch script of 4 tasks: one process until it calls srun
    monkeypatch.setenv("SLURM_PROCID", "0")
    assert distributed.global_rank() == 0 and distributed.world_size() == 1
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")  # srun task 2 of 4
    monkeypatch.setenv("SLURM_PROCID", "2")
    assert distributed.global_rank() == 2 and distributed.world_size() == 4
    dm = SlowStore(ready_after=10**9)
    try:
        distributed.prepare_data_rank_zero_first(dm, timeout_s=-1)
    except TimeoutError as err:
        assert "global rank 0 to prepare the data" in str(err) and "Last attempt: StoreError" in str(err)
    else:
        raise AssertionError("no timeout")
    monkeypatch.setenv("SLURM_PROCID", "0")
    dm = SlowStore(ready_after=0)
    distributed.prepare_data_rank_zero_first(dm)
    assert dm.prepared


def store_stamp(root: Path) -> list[tuple[str, int]]:
    return sorted(
        (str(p), p.stat().st_mtime_ns) for p in (root / "data" / "stores").rglob("*") if p.is_file()
    )


def test_torchrun_two_ranks_evaluate_once_and_match_a_single_process(compose_cfg, tmp_path, capsys):
    from gastrodistill.cli.reproduce import run

    run(compose_cfg(["experiment=tiny", "stages=[generate,patches]"]))  # the data, once
    capsys.readouterr()
    stamp = store_stamp(tmp_path)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "WANDB_MODE": "offline",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
    }
    ddp, logs = tmp_path / "ddp", tmp_path / "torchrun_logs"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        f"--log-dir={logs}",
        "--redirects=3",
        "-m",
        "gastrodistill.cli.reproduce",
        "experiment=tiny",
        "stages=[distill,evaluate]",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={ddp}",
        "trainer=ddp_sim",
        "trainer.strategy.start_method=popen",  # torchrun made the processes: no launcher
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    out = {r: next(logs.rglob(f"attempt_0/{r}/stdout.log")).read_text() for r in (0, 1)}
    assert proc.returncode == 0, proc.stderr[-3000:] + "".join(out.values())[-3000:]
    # Both ranks distilled (one process group of 2); only rank 0 evaluated and wrote the run's files.
    for r in (0, 1):
        assert f"GLOBAL_RANK: {r}, MEMBER: {r + 1}/2" in out[r] and "<== distill done" in out[r]
    assert "==> [2/2] evaluate (elapsed" in out[0] and "evaluate: runs on global rank 0" in out[1]
    assert "==> [2/2] evaluate (elapsed" not in out[1] and "s in all (start-up" not in out[1]
    assert sorted(p.name for p in (ddp / "logs" / "csv").iterdir()) == [
        "distill-hard",
        "distill-soft",
        "evaluation",
    ]
    stores = [p for p in (tmp_path / "data" / "stores").iterdir() if p.is_dir()]
    assert len(stores) == 1 and not stores[0].name.startswith("."), stores
    assert store_stamp(tmp_path) == stamp  # nobody rebuilt the store

    # The same distilled sets evaluated by one process give the same table.
    single = tmp_path / "single"
    shutil.copytree(ddp / "distill", single / "distill")
    run(compose_cfg(["experiment=tiny", "stages=[evaluate]", f"paths.output_dir={single}"]))
    a = pd.read_csv(ddp / "eval" / "results.csv")
    b = pd.read_csv(single / "eval" / "results.csv")
    pd.testing.assert_frame_equal(a, b)
    assert (ddp / "SUMMARY.md").is_file() and (ddp / "run_info.json").is_file()


def test_local_rank_reads_torchrun_then_srun(monkeypatch):
    """The GPU index of this process (distribution matching runs there): torchrun's LOCAL_RANK first, then
    srun's SLURM_LOCALID (a job step srun started with several tasks), else 0."""
    for var in ("LOCAL_RANK", "SLURM_LOCALID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.local_rank() == 0
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert distributed.local_rank() == 0  # the batch script itself: no srun step
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "8")
    assert distributed.local_rank() == 3
    monkeypatch.setenv("SLURM_JOB_NAME", "interactive")  # salloc shell: not a task of a batch step
    assert distributed.local_rank() == 0
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert distributed.local_rank() == 2
