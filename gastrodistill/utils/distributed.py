"""Who is global rank 0, before and after the process group exists, and rank-0-first data preparation.

Three ways to start several processes (docs/distillation.md, "Multi-GPU and multi-node"):

* Lightning's own launcher (``trainer=ddp`` from one command): the command runs once, and Lightning
  re-runs it for ranks 1.. only when ``Trainer.fit`` starts (children carry ``LOCAL_RANK``/``NODE_RANK``).
  By then rank 0 has prepared the data; the children find it ready.
* ``torchrun`` (``RANK``, ``WORLD_SIZE``) and SLURM ``srun`` (``SLURM_PROCID``,
  ``SLURM_STEP_NUM_TASKS``; a batch script that calls no srun is one process): every process runs the
  whole command from the start, before any process group exists. Rank 0 prepares the data (builds the
  patch store); the others poll until the data module sets up (the store is written
  under a temporary name and renamed when complete, so a half-built store is never seen).

After the process group exists (during and after ``Trainer.fit``), :func:`global_rank` asks
``torch.distributed``.
"""

from __future__ import annotations

import atexit
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.distributed as dist

#: Seconds a non-zero rank waits for rank 0 to prepare the data (a full-size store takes a while).
PREPARE_TIMEOUT_S = float(os.environ.get("GASTRODISTILL_PREPARE_TIMEOUT_S", 6 * 3600))


def _in_srun_step() -> bool:
    """Inside a job step that ``srun`` started (``SLURM_STEP_NUM_TASKS``: a batch script itself, one process
    however many tasks its allocation has, is not one) and not in an interactive ``salloc`` shell, as
    Lightning decides."""
    return "SLURM_STEP_NUM_TASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    )


def global_rank() -> int:
    """This process's global rank: the process group's, else the launcher's environment, else 0.

    Under Lightning's launcher before ``fit`` only rank 0 exists; a child started by it is non-zero when
    its ``LOCAL_RANK`` or ``NODE_RANK`` is (its exact global rank is not needed here).
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if _in_srun_step() and "SLURM_PROCID" in os.environ:
        return int(os.environ["SLURM_PROCID"])
    local, node = int(os.environ.get("LOCAL_RANK", 0)), int(os.environ.get("NODE_RANK", 0))
    return 0 if local == 0 and node == 0 else max(local, 1)


def local_rank() -> int:
    """This process's rank on its node (its GPU index): torchrun's ``LOCAL_RANK``, else ``SLURM_LOCALID``
    inside ``srun`` with several tasks, else 0."""
    if "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    if _in_srun_step() and "SLURM_LOCALID" in os.environ:
        return int(os.environ["SLURM_LOCALID"])
    return 0


def world_size() -> int:
    """Number of processes of this job (process group, ``WORLD_SIZE``, the srun step's
    ``SLURM_STEP_NUM_TASKS``), else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    if "WORLD_SIZE" in os.environ:
        return int(os.environ["WORLD_SIZE"])
    if _in_srun_step():
        return _count(os.environ["SLURM_STEP_NUM_TASKS"]) or 1
    return 1


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (:func:`global_rank`)."""
    return global_rank() == 0


def barrier() -> None:
    """``torch.distributed.barrier`` when a process group exists (no-op otherwise)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def destroy_process_group_at_exit() -> None:
    """Destroy the process group when this process exits, as Lightning does itself for NCCL only.

    Left to interpreter shutdown, a gloo group's worker threads are still alive (``ddp_spawn`` workers,
    torchrun ranks) and one that needs the GIL once finalisation has begun aborts the process
    ("terminate called without an active exception"); destroying the group at exit joins them first.
    Lightning's own handler (``_destroy_dist_connection``), registered once however often this is called.
    """
    # Imported here: importing Lightning before Hydra configures logging changes where Lightning logs.
    from lightning_fabric.utilities.distributed import _destroy_dist_connection

    if dist.is_available() and dist.is_initialized():
        atexit.unregister(_destroy_dist_connection)
        atexit.register(_destroy_dist_connection)


def wait_until(
    ready: Callable[[], bool], what: str, timeout_s: float = PREPARE_TIMEOUT_S, poll_s: float = 2.0
) -> None:
    """Poll ``ready()`` until it is true; ``TimeoutError`` naming ``what`` after ``timeout_s`` seconds."""
    start = time.monotonic()
    announced = False
    while not ready():
        if time.monotonic() - start > timeout_s:
            last = getattr(ready, "last_error", None)
            raise TimeoutError(
                f"rank {global_rank()}: waited {timeout_s:.0f} s for global rank 0 to {what}; check rank 0's "
                f"log (or raise GASTRODISTILL_PREPARE_TIMEOUT_S)"
                + (f". Last attempt: {last}" if last else "")
            )
        if not announced:
            print(f"rank {global_rank()}: waiting for global rank 0 to {what}", flush=True)
            announced = True
        time.sleep(poll_s)


def _prepares_something(datamodule: Any) -> bool:
    import pytorch_lightning as pl

    return type(datamodule).prepare_data is not pl.LightningDataModule.prepare_data


def prepare_data_rank_zero_first(datamodule: Any, timeout_s: float = PREPARE_TIMEOUT_S) -> None:
    """``datamodule.prepare_data()`` on global rank 0 only; other ranks wait until ``setup()`` succeeds.

    With a process group: rank 0 prepares, then a barrier. Without one (torchrun/SLURM before ``fit``):
    ranks > 0 poll ``datamodule.setup()`` (which finds a complete store or raises) every 2 s.
    Data modules that prepare nothing (in-memory arrays) are left alone.
    """
    if world_size() <= 1 or is_global_zero():
        datamodule.prepare_data()
        barrier()
        return
    if dist.is_available() and dist.is_initialized():
        barrier()
        return
    if not _prepares_something(datamodule):
        return

    class Ready:
        """``datamodule.setup()`` succeeds (the store is complete); remembers why it did not."""

        last_error: str | None = None

        def __call__(self) -> bool:
            try:
                datamodule.setup()
            except Exception as err:  # rank 0 may still be writing the data the store is built from
                self.last_error = f"{type(err).__name__}: {err}"
                return False
            return True

    wait_until(Ready(), "prepare the data (patch store)", timeout_s)


class LaunchError(RuntimeError):
    """The processes this command runs in do not match the trainer: the message says what to change."""


#: Start methods by which Lightning's strategy starts the ranks itself (``trainer=ddp_sim``: spawn).
SPAWNING_START_METHODS = ("spawn", "fork", "forkserver")


def _launcher() -> str | None:
    """The external launcher that started this process with its siblings: ``torchrun`` (its
    ``TORCHELASTIC_RUN_ID``), ``srun`` (a job step of several tasks: ``SLURM_STEP_NUM_TASKS``; a batch
    script of an allocation with several tasks is one process), another launcher that sets ``RANK``,
    ``WORLD_SIZE`` and ``MASTER_ADDR`` (Kubeflow's PyTorchJob, ``torch.distributed.launch``), else None
    (one command, or a child that Lightning's own launcher started: it sets no ``RANK``)."""
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return "torchrun"
    if _in_srun_step() and world_size() > 1 and "SLURM_PROCID" in os.environ:
        return "srun"
    if os.environ.get("RANK") and os.environ.get("MASTER_ADDR") and _count(os.environ.get("WORLD_SIZE")) > 1:
        return "the launcher that set RANK and WORLD_SIZE"
    return None


def _count(text: Any) -> int:
    """A count given as text (an environment variable, a config value from ``oc.env``); 0 when it is none."""
    text = str(text).strip() if text is not None else ""
    return int(text) if text.isdigit() else 0


def _device_string_ids(devices: str) -> list[str] | None:
    """The device indices of a ``trainer.devices`` string with a comma (``"0,1"``, ``"0,"``: Lightning reads
    it as a list of GPU indices, its ``_normalize_parse_gpu_string_input``), stripped and non-empty; None
    for a string without a comma (a count such as ``"2"`` or ``"-1"``, or ``auto``)."""
    if "," not in devices:
        return None
    return [part.strip() for part in devices.split(",") if part.strip()]


def _trainer_processes(trainer: Any) -> int | None:
    """The processes ``trainer`` (a ``conf/trainer`` mapping) runs on: ``devices`` x ``num_nodes``, a list
    of GPU indices counted; None when ``devices`` does not say (``auto``, ``-1`` without CUDA)."""
    devices, nodes = trainer.get("devices", "auto"), _count(trainer.get("num_nodes", 1))
    if isinstance(devices, str):
        ids, count = _device_string_ids(devices), devices.strip()
        devices = len(ids) if ids is not None else int(count) if re.fullmatch(r"-?[0-9]+", count) else None
    elif isinstance(devices, Sequence):
        devices = len(devices)
    if devices == -1:
        devices = torch.cuda.device_count()
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1 or nodes < 1:
        return None
    return devices * nodes


def _spawning(strategy: Any) -> str | None:
    """How ``strategy`` (``trainer.strategy``: a config node or Lightning's name) starts ranks of its own,
    as the message names it, or None: a ``start_method`` of :data:`SPAWNING_START_METHODS`, or a name
    such as ``ddp_spawn``, ``ddp_fork`` or ``ddp_notebook``."""
    if isinstance(strategy, str):
        name = strategy.lower()
        return (
            f"trainer.strategy={strategy}" if any(w in name for w in ("spawn", "fork", "notebook")) else None
        )
    start = strategy.get("start_method") if hasattr(strategy, "get") else None
    return f"trainer.strategy.start_method={start}" if start in SPAWNING_START_METHODS else None


def check_trainer_devices(trainer: Any) -> None:
    """Refuse a ``trainer.devices`` or ``trainer.num_nodes`` that Lightning's ``Trainer`` would refuse only
    when it is built (``devices=0`` failed after the data and the patch store were made): ``devices`` is
    ``auto``, an integer >= 1, -1 (every device), a non-empty list of device indices or such a string
    (``"0,1"``); ``num_nodes`` an integer >= 1 (digits from ``${oc.env:...}`` too). Raises
    :class:`LaunchError` naming the key."""
    devices = trainer.get("devices", "auto")
    ok = devices == "auto" or (isinstance(devices, int) and not isinstance(devices, bool) and devices >= -1)
    ok = ok and devices != 0
    if isinstance(devices, str) and devices != "auto":
        ids = _device_string_ids(devices)
        if ids is None:  # no comma: a count ("2", "-1"); "0" is the count 0 to Lightning ("0,": GPU 0)
            ok = bool(re.fullmatch(r"-1|[0-9]+", devices.strip())) and int(devices) != 0
        else:
            ok = bool(ids) and all(re.fullmatch(r"[0-9]+", part) for part in ids)
    elif not isinstance(devices, str | int) and devices is not None:
        try:
            ids = list(devices)
        except TypeError:
            ids = []
        ok = bool(ids) and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids)
    if not ok:
        raise LaunchError(
            f"trainer.devices={devices!r} is not a device count; use an integer >= 1, -1 (every device), "
            "auto, or a list of device indices such as [0,1]"
        )
    nodes = trainer.get("num_nodes", 1)
    if _count(nodes) < 1:  # digits from ${oc.env:...} count too; True, 1.5 or -1 do not
        raise LaunchError(f"trainer.num_nodes={nodes!r} must be an integer >= 1")


def check_accelerator_here(trainer: Any) -> None:
    """Refuse a ``trainer.accelerator`` of gpu or cuda on this machine when it has no CUDA device
    (Lightning's ``MisconfigurationException`` came after the data was prepared, or from
    ``gastrodistill-distill`` as an instantiation error naming ``trainer``). Raises :class:`LaunchError`."""
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise LaunchError(
            f"trainer.accelerator={accelerator} but this machine has no CUDA device; use trainer=cpu"
        )


def check_launch(trainer: Any) -> None:
    """Refuse, before any data is prepared, a set of processes that does not match ``trainer`` (the
    ``trainer`` config group): a leftover ``RANK`` without ``WORLD_SIZE``, or a ``WORLD_SIZE`` above 1
    without ``MASTER_ADDR`` (a single run took itself for rank 1, skipped every rank-0 stage and exited
    0); torchrun, srun or another launcher (:func:`_launcher`) starting a number of processes
    for a trainer of another ``devices`` x ``num_nodes`` (with one device each process ran a whole study
    of its own in the shared run folder; with a count that does not add up Lightning's traceback came
    after the data was prepared); and a strategy that starts its own ranks (``trainer=ddp_sim``: spawn)
    under such a launcher, which doubled the processes. Raises :class:`LaunchError` saying what to set
    (docs/distillation.md, "Multi-GPU and multi-node")."""
    check_trainer_devices(trainer)
    rank, size = (os.environ.get(k, "").strip() for k in ("RANK", "WORLD_SIZE"))
    for key, value in (("RANK", rank), ("WORLD_SIZE", size)):
        if key in os.environ and not value.isdigit():
            raise LaunchError(
                f"{key}={os.environ[key]!r} is not a count; unset it, or start the ranks with torchrun"
            )
    if rank not in ("", "0") and not size:
        raise LaunchError(
            f"RANK={rank} is set in this shell but WORLD_SIZE is not, so this command would run as rank "
            f"{rank} of a job that does not exist (no evaluation, no summary); unset RANK (a leftover of "
            "another job), or start the ranks with torchrun"
        )
    if rank.isdigit() and size.isdigit() and int(rank) >= int(size):
        raise LaunchError(f"RANK={rank} is not below WORLD_SIZE={size}; unset both, or use torchrun")
    if _count(size) > 1 and not os.environ.get("MASTER_ADDR"):
        raise LaunchError(
            f"WORLD_SIZE={size}{f' and RANK={rank} are' if rank else ' is'} set in this shell but "
            "MASTER_ADDR is not, so no process group can form and this command would run as one rank of a "
            "job that does not exist; unset WORLD_SIZE and RANK (leftovers of another job), or start the "
            "ranks with torchrun"
        )
    tasks = _count(os.environ.get("SLURM_STEP_NUM_TASKS"))
    if tasks > 1 and "SLURM_PROCID" in os.environ and not _in_srun_step():
        raise LaunchError(  # Lightning too reads no SLURM rank in an interactive allocation
            f"srun started {tasks} tasks in an interactive allocation "
            f"(SLURM_JOB_NAME={os.environ.get('SLURM_JOB_NAME')}), where every task takes itself for "
            "rank 0; run srun from a batch script (sbatch), or one task with trainer=ddp"
        )
    launcher = _launcher()
    if launcher is None:
        return
    processes = world_size()
    spawns = _spawning(trainer.get("strategy"))
    if processes > 1 and spawns is not None:
        raise LaunchError(
            f"{launcher} started {processes} processes and {spawns} would start {trainer.get('devices')} "
            f"more from each; add trainer.strategy.start_method=popen (each process then joins as the rank "
            f"{launcher} gave it)"
        )
    wanted = _trainer_processes(trainer)
    if wanted is not None and wanted != processes:
        accelerator = str(trainer.get("accelerator", "auto"))
        if processes == 1:
            fix = "trainer=cpu (or trainer=gpu): one process, one device"
        elif accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
            fix = (
                f"trainer=ddp trainer.devices=<processes per node> trainer.num_nodes=<nodes> "
                f"({processes} in all)"
            )
        else:
            fix = f"trainer=ddp_sim trainer.strategy.start_method=popen trainer.devices={processes}"
        raise LaunchError(
            f"{launcher} started {processes} process(es) but the trainer runs on "
            f"trainer.devices={trainer.get('devices')} x trainer.num_nodes={trainer.get('num_nodes', 1)} = "
            f"{wanted}"
            + (", so each process would run a whole study of its own" if wanted == 1 else "")
            + f"; pass {fix}"
        )
