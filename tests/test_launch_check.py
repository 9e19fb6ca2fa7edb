"""Processes that do not match the trainer are refused before any data is prepared (``check_launch``):
found by a newcomer running ``torchrun`` and a shell with a leftover ``RANK``."""

from __future__ import annotations

import pytest
from _cli_runner import assert_nothing_written, run_main

from gastrodistill.utils.distributed import LaunchError, check_launch, global_rank, world_size


@pytest.fixture
def env(launcher_env):
    """A clean launch environment (tests/conftest.py); returns a setter of one torchrun rank's variables."""

    def torchrun(rank: int, size: int) -> None:
        launcher_env(
            TORCHELASTIC_RUN_ID="none", RANK=rank, LOCAL_RANK=rank, WORLD_SIZE=size, MASTER_ADDR="127.0.0.1"
        )

    return torchrun


def test_a_leftover_rank_is_refused(env, monkeypatch, compose_cfg):
    trainer = compose_cfg([]).trainer
    check_launch(trainer)  # one command, no launcher
    monkeypatch.setenv("RANK", "0")
    check_launch(trainer)  # rank 0 of nothing runs every stage: harmless
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(LaunchError, match=r"^RANK=1 is set in this shell but WORLD_SIZE is not.*unset RANK"):
        check_launch(trainer)
    monkeypatch.setenv("WORLD_SIZE", "")  # empty: world_size() could not read it
    with pytest.raises(LaunchError, match=r"^WORLD_SIZE='' is not a count; unset it"):
        check_launch(trainer)
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(LaunchError, match=r"^WORLD_SIZE='' is not a count"):
        check_launch(trainer)  # RANK=0 too (a reviewer's case: world_size() raised ValueError later)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(LaunchError, match=r"^RANK=1 is not below WORLD_SIZE=1"):
        check_launch(trainer)
    monkeypatch.setenv("WORLD_SIZE", "2")  # both left in the shell: no launcher set MASTER_ADDR (a breaker's)
    with pytest.raises(LaunchError, match=r"^WORLD_SIZE=2 and RANK=1 are set in this shell but MASTER_ADDR"):
        check_launch(trainer)


@pytest.mark.parametrize("rank", [0, 1])
def test_torchrun_processes_must_match_the_trainer(env, compose_cfg, rank):
    env(rank, 2)
    with pytest.raises(LaunchError) as info:  # trainer=cpu: one device, so two whole studies
        check_launch(compose_cfg([]).trainer)
    assert str(info.value) == (
        "torchrun started 2 process(es) but the trainer runs on trainer.devices=1 x "
        "trainer.num_nodes=1 = 1, so each process would run a whole study of its own; pass trainer=ddp_sim "
        "trainer.strategy.start_method=popen trainer.devices=2"
    )
    with pytest.raises(LaunchError, match=r"start_method=spawn would start 2 more from each; add trainer\."):
        check_launch(compose_cfg(["trainer=ddp_sim"]).trainer)  # 4 processes, two of them spawned
    check_launch(compose_cfg(["trainer=ddp_sim", "trainer.strategy.start_method=popen"]).trainer)  # the doc's
    with pytest.raises(
        LaunchError, match=r"trainer.devices=3 x trainer.num_nodes=1 = 3; pass trainer=ddp_sim"
    ):
        check_launch(
            compose_cfg(
                ["trainer=ddp_sim", "trainer.strategy.start_method=popen", "trainer.devices=3"]
            ).trainer
        )
    gpu = compose_cfg(["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=1"]).trainer
    with pytest.raises(LaunchError, match=r"pass trainer=ddp trainer.devices=<processes per node> trainer"):
        check_launch(gpu)
    check_launch(compose_cfg(["trainer=ddp", "trainer.devices=1", "trainer.num_nodes=2"]).trainer)
    check_launch(compose_cfg(["trainer=ddp", "trainer.devices=[0,1]"]).trainer)  # GPU indices counted
    check_launch(compose_cfg(["trainer=ddp", "trainer.devices='0,1'"]).trainer)  # Lightning's string form too
    with pytest.raises(LaunchError, match=r"devices=0,2,3 x trainer.num_nodes=1 = 3; pass trainer=ddp"):
        check_launch(compose_cfg(["trainer=ddp", "trainer.devices='0,2,3'"]).trainer)
    with pytest.raises(LaunchError, match=r"trainer.devices=1, x trainer.num_nodes=1 = 1, so each process"):
        check_launch(compose_cfg(["trainer=ddp", "trainer.devices='1,'"]).trainer)  # one GPU: index 1


def test_a_leftover_rank_stops_the_command_before_anything_is_written(env, monkeypatch, capsys, tmp_path):
    """``RANK=1 gastrodistill-reproduce`` skipped every rank-0 stage and exited 0 with no table."""
    from gastrodistill.cli.reproduce import main

    monkeypatch.setenv("RANK", "1")
    argv = [
        "gastrodistill-reproduce",
        "experiment=tiny",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]
    code, text = run_main(main, argv, monkeypatch, capsys)
    assert code == 1
    assert (
        text.startswith("error: RANK=1 is set in this shell but WORLD_SIZE is not") and text.count("\n") == 1
    )
    assert_nothing_written(tmp_path)


def test_slurm_a_batch_script_is_one_process_and_an_srun_step_is_counted(env, monkeypatch, compose_cfg):
    """``sbatch --ntasks-per-node=4`` (cores for one process) was taken for srun by a first version."""
    for name, value in {"SLURM_NTASKS": "4", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "myjob"}.items():
        monkeypatch.setenv(name, value)
    check_launch(compose_cfg([]).trainer)  # the batch script itself
    assert world_size() == 1 and global_rank() == 0  # one process: the cpu preset's teacher is not refused
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")  # inside `srun` with 4 tasks
    with pytest.raises(LaunchError, match=r"^srun started 4 process\(es\) but the trainer runs on"):
        check_launch(compose_cfg([]).trainer)
    check_launch(
        compose_cfg(["trainer=ddp_sim", "trainer.strategy.start_method=popen", "trainer.devices=4"]).trainer
    )


def test_other_spellings_of_a_spawning_strategy_and_of_counts(env, monkeypatch, compose_cfg):
    env(0, 4)
    with pytest.raises(LaunchError, match=r"and trainer.strategy=ddp_spawn would start"):
        check_launch(compose_cfg(["trainer=ddp_sim", "trainer.strategy=ddp_spawn"]).trainer)
    # a node count from oc.env is text: still counted (2 x 2 = 4 match; 2 x 1 would not)
    check_launch(compose_cfg(["trainer=ddp", "trainer.devices=2", "trainer.num_nodes='2'"]).trainer)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")  # Kubeflow's PyTorchJob: RANK, WORLD_SIZE, MASTER_ADDR only
    with pytest.raises(LaunchError, match=r"^the launcher that set RANK and WORLD_SIZE started 4 process"):
        check_launch(compose_cfg(["trainer=ddp", "trainer.devices=2", "trainer.num_nodes=1"]).trainer)


def test_srun_in_an_interactive_allocation_is_refused(env, monkeypatch, compose_cfg):
    """Neither Lightning nor global_rank() reads SLURM's rank when the job is `bash` (salloc): every task
    would take itself for rank 0."""
    for name, value in {"SLURM_NTASKS": "2", "SLURM_PROCID": "1", "SLURM_JOB_NAME": "bash"}.items():
        monkeypatch.setenv(name, value)
    check_launch(compose_cfg([]).trainer)  # the interactive shell itself
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    with pytest.raises(LaunchError, match=r"^srun started 2 tasks in an interactive allocation"):
        check_launch(compose_cfg(["trainer=ddp_sim", "trainer.strategy.start_method=popen"]).trainer)


def test_one_process_is_told_to_use_one_device(env, compose_cfg):
    env(0, 1)
    with pytest.raises(
        LaunchError, match=r"= 2; pass trainer=cpu \(or trainer=gpu\): one process, one device$"
    ):
        check_launch(compose_cfg(["trainer=ddp_sim", "trainer.strategy.start_method=popen"]).trainer)


@pytest.mark.parametrize("devices", ["0", "'0'", "'00'", "-2", "'-1,'", "','", "abc", "[]", "1.5", "null"])
def test_a_device_count_lightning_would_refuse_is_refused_before_any_data(env, compose_cfg, devices):
    """`trainer.devices=0` failed when the Trainer was built, after generate and patches had run."""
    with pytest.raises(LaunchError, match=r"^trainer.devices=.* is not a device count; use an integer >= 1"):
        check_launch(compose_cfg([f"trainer.devices={devices}"]).trainer)


@pytest.mark.parametrize("devices", ["1", "'2'", "-1", "'-1'", "auto", "[0]", "'0,1'", "'0,'"])
def test_device_counts_lightning_takes_pass(env, compose_cfg, devices):
    check_launch(compose_cfg(["trainer=gpu", f"trainer.devices={devices}"]).trainer)


def test_a_launcher_is_one_that_started_siblings(env, monkeypatch):
    """One srun task, or WORLD_SIZE=1 from another launcher, is one command (Lightning may still start its
    ranks); torchrun is named whatever its size (mutants: ``world_size() >= 1`` and ``WORLD_SIZE >= 1``)."""
    from gastrodistill.utils.distributed import _launcher

    for name, value in {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "job"}.items():
        monkeypatch.setenv(name, value)
    assert _launcher() is None
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    assert _launcher() == "srun"
    monkeypatch.delenv("SLURM_STEP_NUM_TASKS")
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "10.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    assert _launcher() is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert _launcher() == "the launcher that set RANK and WORLD_SIZE"
    env(0, 1)
    assert _launcher() == "torchrun"


@pytest.mark.parametrize(
    ("text", "count"),
    [(" 3 ", 3), ("3\n", 3), (4, 4), ("0", 0), ("", 0), (None, 0), ("-1", 0), ("1.5", 0), (True, 0)],
)
def test_a_count_given_as_text_is_its_digits_or_zero(text, count):
    """Mutants: no strip (a value with a newline from a file read as 0), 1 instead of 0 for no count."""
    from gastrodistill.utils.distributed import _count

    assert _count(text) == count


@pytest.mark.parametrize("gpus", [0, 2, 4])
def test_devices_minus_one_counts_the_visible_gpus(env, compose_cfg, monkeypatch, gpus):
    """trainer=ddp (devices=-1) under torchrun of 4 processes on one node: 4 GPUs match, 2 do not, and
    without a GPU the count says nothing (mutants: -1 not counted; a count of 0 taken for a count)."""
    from gastrodistill.utils import distributed

    monkeypatch.setattr(distributed.torch.cuda, "device_count", lambda: gpus)
    env(0, 4)
    trainer = compose_cfg(["trainer=ddp"]).trainer
    if gpus == 2:
        with pytest.raises(
            LaunchError, match=r"^torchrun started 4 process\(es\) but .*devices=-1 x .* = 2;"
        ):
            check_launch(trainer)
    else:
        check_launch(trainer)


def test_a_list_of_gpu_indices_is_counted(env, compose_cfg):
    """Three indices for two processes (mutant: a list not counted, so never compared)."""
    env(0, 2)
    with pytest.raises(LaunchError, match=r"trainer.devices=\[0, 1, 2\] x trainer.num_nodes=1 = 3; pass"):
        check_launch(compose_cfg(["trainer=ddp", "trainer.devices=[0,1,2]"]).trainer)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("trainer.strategy=ddp_notebook", "trainer.strategy=ddp_notebook"),
        ("trainer.strategy.start_method=fork", "trainer.strategy.start_method=fork"),
        ("trainer.strategy.start_method=forkserver", "trainer.strategy.start_method=forkserver"),
    ],
)
def test_every_strategy_that_starts_its_own_ranks_is_refused_under_a_launcher(
    env, compose_cfg, override, named
):
    """Mutants: ``notebook`` or ``fork`` not taken for a strategy that starts its ranks."""
    env(0, 2)
    with pytest.raises(LaunchError, match=rf"^torchrun started 2 processes and {named} would start 2 more"):
        check_launch(compose_cfg(["trainer=ddp_sim", override]).trainer)


def test_one_process_with_a_spawning_strategy_is_told_to_use_one_device(env, compose_cfg):
    """One torchrun process is no duplication: the advice is one device (mutant: the spawn refusal for
    a single process too)."""
    env(0, 1)
    with pytest.raises(
        LaunchError, match=r"= 2; pass trainer=cpu \(or trainer=gpu\): one process, one device$"
    ):
        check_launch(compose_cfg(["trainer=ddp_sim"]).trainer)


@pytest.mark.parametrize("cuda", [True, False])
def test_the_advice_for_accelerator_auto_follows_the_machine(env, compose_cfg, monkeypatch, cuda):
    """``accelerator: auto`` trains on GPUs where there are some: the advice is trainer=ddp there and
    trainer=ddp_sim elsewhere (mutant: auto always advised ddp_sim)."""
    from gastrodistill.utils import distributed

    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: cuda)
    env(0, 2)
    trainer = compose_cfg(["trainer=ddp_sim", "trainer.strategy.start_method=popen", "trainer.devices=3"])
    trainer.trainer.accelerator = "auto"
    fix = "trainer=ddp trainer.devices=<processes per node>" if cuda else "trainer=ddp_sim trainer.strategy"
    with pytest.raises(LaunchError, match=rf"= 3; pass {fix}"):
        check_launch(trainer.trainer)


@pytest.mark.parametrize("nodes", ["0", "-1", "1.5", "abc", "true"])
def test_a_node_count_lightning_would_refuse_is_refused(env, compose_cfg, nodes):
    """Mutants: ``_count(nodes) < 0`` (0 nodes passed), text that is no count taken for 1."""
    with pytest.raises(LaunchError, match=r"^trainer.num_nodes=.* must be an integer >= 1$"):
        check_launch(compose_cfg(["trainer=ddp", f"trainer.num_nodes={nodes}"]).trainer)


@pytest.mark.parametrize("devices", ["[-1]", "[0,-1]", "[true]"])
def test_a_list_of_devices_with_a_negative_or_boolean_index_is_refused(env, compose_cfg, devices):
    """Mutant: ``i >= -1`` for the indices of a list."""
    with pytest.raises(LaunchError, match=r"^trainer.devices=.* is not a device count"):
        check_launch(compose_cfg([f"trainer.devices={devices}"]).trainer)


def test_a_leftover_world_size_of_one_is_harmless(env, monkeypatch, compose_cfg):
    """WORLD_SIZE=1 (RANK=0) without MASTER_ADDR is one process: no group to form (mutant: ``>= 1``)."""
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    check_launch(compose_cfg([]).trainer)


def test_one_srun_task_in_an_interactive_allocation_passes(env, monkeypatch, compose_cfg):
    """One task cannot take itself for rank 0 wrongly (mutant: ``tasks >= 1``)."""
    for name, value in {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0", "SLURM_JOB_NAME": "bash"}.items():
        monkeypatch.setenv(name, value)
    check_launch(compose_cfg([]).trainer)


@pytest.mark.parametrize(
    ("accelerator", "refused"), [("gpu", True), ("cuda", True), ("cpu", False), ("auto", False)]
)
def test_a_gpu_accelerator_is_refused_only_on_a_machine_without_cuda(monkeypatch, accelerator, refused):
    """Mutant: ``cuda`` not taken for a GPU accelerator."""
    from gastrodistill.utils import distributed

    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: False)
    trainer = {"accelerator": accelerator}
    if refused:
        with pytest.raises(
            LaunchError, match=rf"^trainer.accelerator={accelerator} but this machine has no CUDA device"
        ):
            distributed.check_accelerator_here(trainer)
    else:
        distributed.check_accelerator_here(trainer)
    monkeypatch.setattr(distributed.torch.cuda, "is_available", lambda: True)
    distributed.check_accelerator_here(trainer)
