"""Who is rank 0, how many ranks there are, the barrier, the wait for rank 0 and rank-0-first data
preparation (``gastrodistill.utils.distributed``), with a process group simulated where one is needed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import pytorch_lightning as pl

from gastrodistill.utils import distributed


@pytest.fixture
def group(monkeypatch):
    """``group(rank, size)`` makes ``torch.distributed`` report a process group of ``size`` ranks with this
    process as ``rank``; returns the list the events are recorded in (``"barrier"`` for each barrier)."""
    events: list[str] = []

    def make(rank: int, size: int) -> list[str]:
        monkeypatch.setattr(distributed.dist, "is_available", lambda: True)
        monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
        monkeypatch.setattr(distributed.dist, "get_rank", lambda *a, **k: rank)
        monkeypatch.setattr(distributed.dist, "get_world_size", lambda *a, **k: size)
        monkeypatch.setattr(distributed.dist, "barrier", lambda *a, **k: events.append("barrier"))
        return events

    return make


class Recording(pl.LightningDataModule):
    """A data module with a store to prepare: records ``prepare`` and ``setup`` in ``events``; ``setup``
    fails until its ``ready_after``-th call (rank 0 still building the store)."""

    def __init__(self, events: list[str], ready_after: int = 1) -> None:
        super().__init__()
        self.events, self.ready_after, self.setups = events, ready_after, 0

    def prepare_data(self) -> None:
        self.events.append("prepare")

    def setup(self, stage=None) -> None:
        self.events.append("setup")
        self.setups += 1
        if self.setups < self.ready_after:
            raise FileNotFoundError("no patch store yet")


class InMemory(pl.LightningDataModule):
    """A data module that prepares nothing (Lightning's own ``prepare_data``)."""

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def setup(self, stage=None) -> None:
        self.events.append("setup")


def test_the_process_group_decides_over_the_launchers_variables(launcher_env, group):
    """Mutants: the process-group branch of global_rank or of world_size dropped."""
    launcher_env(RANK=1, WORLD_SIZE=2, SLURM_PROCID=1, SLURM_STEP_NUM_TASKS=2)
    assert (distributed.global_rank(), distributed.world_size()) == (1, 2)
    group(3, 4)
    assert (distributed.global_rank(), distributed.world_size()) == (3, 4)
    assert not distributed.is_global_zero()


def test_a_child_of_lightnings_launcher_is_not_rank_zero(launcher_env):
    """Lightning's launcher gives its children LOCAL_RANK / NODE_RANK only: the first process of node 1 has
    LOCAL_RANK=0 but is not global rank 0 (mutants: ``max(local, 1)`` -> ``local``; NODE_RANK ignored)."""
    assert distributed.global_rank() == 0
    launcher_env(LOCAL_RANK=0, NODE_RANK=0)
    assert distributed.is_global_zero()
    launcher_env(NODE_RANK=1)
    assert distributed.global_rank() != 0 and not distributed.is_global_zero()
    launcher_env(LOCAL_RANK=2, NODE_RANK=0)
    assert distributed.global_rank() == 2


def test_slurms_rank_counts_only_inside_an_srun_step_of_a_batch_job(launcher_env):
    """The batch script (no step) and an interactive salloc shell are rank 0 whatever SLURM_PROCID says
    (mutant: SLURM_PROCID read without the srun-step check); torchrun's RANK comes first."""
    launcher_env(SLURM_NTASKS=4, SLURM_PROCID=3)
    assert distributed.global_rank() == 0
    launcher_env(SLURM_STEP_NUM_TASKS=4, SLURM_JOB_NAME="bash")
    assert distributed.global_rank() == 0
    launcher_env(SLURM_JOB_NAME="interactive")
    assert distributed.global_rank() == 0
    launcher_env(SLURM_JOB_NAME="train")
    assert distributed.global_rank() == 3
    launcher_env(RANK=1)
    assert distributed.global_rank() == 1


def test_an_srun_steps_size_is_its_own_task_count_not_the_allocations(launcher_env):
    """``srun -n 2`` inside an allocation of 8 tasks runs 2 processes (mutant: SLURM_NTASKS read)."""
    launcher_env(SLURM_NTASKS=8, SLURM_STEP_NUM_TASKS=2, SLURM_PROCID=1, SLURM_JOB_NAME="train")
    assert distributed.world_size() == 2
    launcher_env(SLURM_STEP_NUM_TASKS="")  # unreadable: one process
    assert distributed.world_size() == 1
    launcher_env(WORLD_SIZE=3)
    assert distributed.world_size() == 3


def test_the_barrier_waits_only_in_a_group_of_several_ranks(launcher_env, group):
    """Mutants: the barrier skipped for 2 ranks (``> 2``), or never entered."""
    distributed.barrier()  # no group: nothing to call
    events = group(0, 1)
    distributed.barrier()
    assert events == []
    group(1, 2)
    distributed.barrier()
    assert events == ["barrier"]


def test_the_exit_handler_is_registered_once_and_only_with_a_group(monkeypatch):
    """Mutants: the handler registered again on each call (no unregister first), or without a group.
    ``atexit`` is replaced by a list with its semantics (unregister removes every registration)."""
    from lightning_fabric.utilities.distributed import _destroy_dist_connection

    handlers: list = []

    class AtExit:
        register = staticmethod(handlers.append)

        @staticmethod
        def unregister(func) -> None:
            handlers[:] = [h for h in handlers if h != func]

    monkeypatch.setattr(distributed, "atexit", AtExit)
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    distributed.destroy_process_group_at_exit()
    assert handlers == []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    distributed.destroy_process_group_at_exit()
    distributed.destroy_process_group_at_exit()
    assert handlers == [_destroy_dist_connection]


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when the code sleeps; returns the list of sleeps."""
    now, sleeps = [100.0], []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(distributed.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(distributed.time, "sleep", sleep)
    return sleeps


def test_wait_until_polls_every_poll_s_and_gives_up_only_after_the_timeout(launcher_env, clock, capsys):
    """After 4 s of a 4 s timeout it still waits; after 6 s it stops (mutants: ``>=`` for ``>``, a sleep
    of another length, the announcement printed at every poll)."""
    answers = iter([False, False, False, True])
    distributed.wait_until(lambda: next(answers), "build the store", timeout_s=4, poll_s=2)
    assert clock == [2, 2, 2]
    assert capsys.readouterr().out == "rank 0: waiting for global rank 0 to build the store\n"
    clock.clear()
    with pytest.raises(TimeoutError) as info:
        distributed.wait_until(lambda: False, "build the store", timeout_s=4, poll_s=2)
    assert clock == [2, 2, 2]  # checked at 0, 2, 4 and 6 s
    assert str(info.value) == (
        "rank 0: waited 4 s for global rank 0 to build the store; check rank 0's log "
        "(or raise GASTRODISTILL_PREPARE_TIMEOUT_S)"
    )


def test_a_waiting_rank_tries_the_store_every_2_s(launcher_env, clock, capsys):
    """docs: ranks > 0 poll ``setup()`` every 2 s (mutants: another default poll)."""
    launcher_env(RANK=1, WORLD_SIZE=2)
    events: list[str] = []
    distributed.prepare_data_rank_zero_first(Recording(events, ready_after=3))
    assert events == ["setup"] * 3 and clock == [2.0, 2.0]
    assert capsys.readouterr().out == "rank 1: waiting for global rank 0 to prepare the data (patch store)\n"


def test_a_single_process_prepares_its_data_whatever_rank_variable_is_left(launcher_env):
    """One process (world size 1) with a leftover LOCAL_RANK=1 has no rank 0 to wait for: it prepares
    (mutant: ``world_size() < 1``, which made it wait for a store nobody builds)."""
    launcher_env(LOCAL_RANK=1)
    assert distributed.world_size() == 1 and distributed.global_rank() == 1
    events: list[str] = []
    distributed.prepare_data_rank_zero_first(Recording(events, ready_after=10**9), timeout_s=-1)
    assert events == ["prepare"]


@pytest.mark.parametrize(("rank", "expected"), [(0, ["prepare", "barrier"]), (1, ["barrier"])])
def test_in_a_process_group_rank_zero_prepares_and_every_rank_meets_at_the_barrier(
    launcher_env, group, rank, expected
):
    """Rank 0 prepares before the barrier; the others only wait at it (mutants: a barrier dropped on
    either side, which leaves the other ranks waiting for ever)."""
    events = group(rank, 2)
    distributed.prepare_data_rank_zero_first(Recording(events))
    assert events == expected


def test_a_data_module_that_prepares_nothing_is_left_alone_on_other_ranks(launcher_env):
    """Mutant: the in-memory check dropped, so a rank > 0 called ``setup`` itself."""
    launcher_env(RANK=1, WORLD_SIZE=2)
    events: list[str] = []
    distributed.prepare_data_rank_zero_first(InMemory(events))
    assert events == []


def test_the_wait_for_rank_zero_lasts_6_hours_unless_the_environment_says_otherwise():
    """docs/distillation.md: ``GASTRODISTILL_PREPARE_TIMEOUT_S`` seconds, 6 hours by default."""
    if "GASTRODISTILL_PREPARE_TIMEOUT_S" not in os.environ:
        assert distributed.PREPARE_TIMEOUT_S == 6 * 3600
        assert distributed.wait_until.__defaults__[0] == 6 * 3600
    code = "from gastrodistill.utils.distributed import PREPARE_TIMEOUT_S as t; print(t)"
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "GASTRODISTILL_PREPARE_TIMEOUT_S": "90"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and run.stdout.strip() == "90.0", run.stderr
