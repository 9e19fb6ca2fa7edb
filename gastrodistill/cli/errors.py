"""What a failing command shows a person: the project's own error message alone, and nothing left behind.

Every Hydra main of ``gastrodistill/cli`` is wrapped by :func:`friendly_errors` (one decorator line
under ``@hydra.main``). When a stage raises one of the project's errors (bad data, a malformed
distilled set, a config that cannot run; the list is :data:`PROJECT_ERRORS`, matched by class name
along the exception's class hierarchy and its ``__cause__`` chain, so Hydra's instantiation wrapper
does not hide them), the command prints ``error: <message>`` alone and exits with status 1; in a
``-m`` sweep the job's message is logged, the other jobs still run, and the sweep then exits with
status 1 (Hydra adds its own two lines around the message there).
``HYDRA_FULL_ERROR=1`` shows the full traceback instead, as for any Hydra app.

Two kinds of config value are refused the same way although no stage of the project raises them: a root
``seed`` that is not an integer (checked before the stage runs), and a value that a config object's
constructor cannot take (Hydra's ``InstantiationException`` around a ``ValueError`` or ``TypeError``,
e.g. ``data.storage_size=abc``): the line names the config key, the class and, where one matches, the
override to change.

Whatever the error, any W&B run left open by the failed job is closed as failed (so the next job of
a sweep starts its own run), and the job's output folder is removed when it holds nothing but
bookkeeping (Hydra's ``.hydra/`` and job log, the run record ``config.yaml``/``run_info.json``, logger
folders holding only hyper-parameters), so a refused input leaves no output behind.

Ctrl-C (SIGINT) and SIGTERM (``kill PID``, ``timeout``, a scheduler) stop a command the same way: the
signal raises ``KeyboardInterrupt`` in the task (:func:`signals_as_interrupts`), so worker pools terminate
and join their workers and staging folders are removed on the way out; then the job's output folder goes
if it holds nothing else, W&B runs are closed as failed, and the command prints ``interrupted (Ctrl-C)``
or ``interrupted (SIGTERM)`` alone and exits with status 128 + the signal's number (130, 143). A sweep
stops at that job.
"""

from __future__ import annotations

import atexit
import errno
import functools
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from hydra.errors import CompactHydraException

log = logging.getLogger(__name__)

#: The project's own errors (module.qualname); their messages say what is wrong and what to do.
PROJECT_ERRORS = frozenset(
    {
        "gastrodistill.data.errors.DataInputError",
        "gastrodistill.data.zca.ZCAError",
        "gastrodistill.distillation.distilled_set.DistilledSetError",
        "gastrodistill.distillation.module.NonFiniteError",
        "gastrodistill.distillation.errors.DistillConfigError",
        "gastrodistill.distillation.resume.ResumeError",
        "gastrodistill.evaluation.jobs.EvaluationConfigError",
        "gastrodistill.evaluation.checks.DistilledSetMismatch",
        "gastrodistill.evaluation.patient.PatientEvaluationError",
        "gastrodistill.evaluation.full_data.RealTrainingDivergedError",
        "gastrodistill.anonymity.config_check.AuditConfigError",
        "gastrodistill.anonymity.nearest.NearestInputError",
        "gastrodistill.anonymity.membership.MembershipInputError",
        "gastrodistill.anonymity.text_check.TextCheckError",
        "gastrodistill.cli.audit.AuditInputError",
        "gastrodistill.pipeline.stages.ReproduceConfigError",
        "gastrodistill.cli.check_experiment.RecipeError",
        "gastrodistill.utils.distributed.LaunchError",
        "gastrodistill.data.synthetic.config.SyntheticConfigError",
        "gastrodistill.data.synthetic.writer.SyntheticOutputError",
        "gastrodistill.sharing.artifact.ArtifactError",
        "gastrodistill.sharing.card.CardError",
        "gastrodistill.cli.errors.CommandError",
        "gastrodistill.models.layers.ModelConfigError",
        # a mandatory config value left at ??? (e.g. data.root for data=folder)
        "omegaconf.errors.MissingMandatoryValue",
        # an interpolation that cannot be resolved (e.g. ${oc.env:VAR} with VAR unset); names the key
        "omegaconf.errors.InterpolationResolutionError",
    }
)
#: Exit status of a command stopped by one of the project's errors.
EXIT_STATUS = 1


class CommandError(ValueError):
    """A command-line usage problem detected by a command itself (the message says what to change)."""


class StageError(CompactHydraException):
    """The project's error, re-raised so that Hydra prints its message alone (no traceback)."""


def _module_name(module: str) -> str:
    """``module``, or for ``__main__`` the name it was run by (``python -m gastrodistill.cli.audit``
    defines ``__main__.AuditInputError``, which is the project's ``AuditInputError``)."""
    if module == "__main__":
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        return str(getattr(spec, "name", None) or module)
    return module


def _is_project_error(exc: BaseException) -> bool:
    return any(
        f"{_module_name(cls.__module__)}.{cls.__qualname__}" in PROJECT_ERRORS for cls in type(exc).__mro__
    )


def _first_in_chain(
    exc: BaseException, wanted: Callable[[BaseException], bool], causes_only: bool = False
) -> BaseException | None:
    """The first exception of ``exc``'s cause/context chain (``exc`` included) for which ``wanted`` holds.
    With ``causes_only`` the chain follows explicit causes (``raise ... from``) only, not the error an
    ``except`` block was handling when another was raised."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if wanted(cur):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ if causes_only else cur.__cause__ or cur.__context__
    return None


def project_error(exc: BaseException) -> BaseException | None:
    """The first of the project's errors in ``exc``'s cause/context chain, or ``None``."""
    return _first_in_chain(exc, _is_project_error)


def message(exc: BaseException) -> str:
    """The text shown to a person: ``error: <message>`` (OmegaConf's key details kept, its noise dropped)."""
    text = str(exc).strip()
    if type(exc).__name__ == "MissingMandatoryValue":
        first = text.splitlines()[0] if text else "missing mandatory value"
        key = getattr(exc, "full_key", None)
        text = f"{first}; set it on the command line, e.g. {key}=..." if key else first
    elif _is_a(exc, "InterpolationResolutionError"):
        first = text.splitlines()[0] if text else "an interpolation cannot be resolved"
        key = getattr(exc, "full_key", None)
        text = f"{first} (at {key}; fix that value or its override)" if key else first
    return f"error: {text}"


def check_root_values(cfg: Any) -> None:
    """Refuse a root ``seed`` that is not an integer (``seed=abc`` reached ``int()`` deep inside a stage);
    a string of digits (e.g. from ``${oc.env:SEED}``) is an integer here, as the stages read it by ``int()``.

    Raises:
        CommandError: naming the value and an example of a valid override.
    """
    try:
        if not hasattr(cfg, "get") or "seed" not in cfg:
            return
        seed = cfg.get("seed")
    except Exception:  # noqa: BLE001 - an interpolation error is reported by the stage itself
        return
    if isinstance(seed, str) and re.fullmatch(r"\s*[+-]?\d+\s*", seed):
        return
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise CommandError(f"seed must be an integer, got {seed!r}; e.g. seed=0")


def _task_overrides() -> list[str]:
    try:
        from hydra.core.hydra_config import HydraConfig

        return [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # noqa: BLE001 - no Hydra context
        return []


def instantiation_value_error(exc: BaseException) -> BaseException | None:
    """Hydra's ``InstantiationException`` in ``exc``'s chain when its cause is a ``ValueError`` or
    ``TypeError`` (a config value the object's constructor cannot take), else ``None``."""
    return _first_in_chain(
        exc, lambda e: _is_a(e, "InstantiationException") and isinstance(e.__cause__, ValueError | TypeError)
    )


def instantiation_message(exc: BaseException, overrides: list[str] | None = None) -> str:
    """``error: cannot build <key> (<class>): <cause>; <what to change>`` for
    :func:`instantiation_value_error`'s exception; the override whose value appears in the cause is named.
    """
    text = str(exc)
    target = re.search(r"target '([^']+)'", text)
    key_match = re.search(r"full_key: (\S+)", text)
    key = key_match.group(1) if key_match else ""
    cause = str(exc.__cause__)
    overrides = _task_overrides() if overrides is None else overrides
    suspects = []
    for override in overrides:
        name, sep, value = override.lstrip("+~").partition("=")
        named = re.search(rf"(?<![\w.]){re.escape(value)}(?![\w.])", cause) if value else None
        if sep and named and (not key or name == key or name.startswith(key + ".")):
            suspects.append(override)
    what = f"{key} ({target.group(1)})" if target else (key or "a config object")
    hint = (
        f"change the override {' or '.join(suspects)}"
        if suspects
        else f"check the values under {key or 'the config'} (HYDRA_FULL_ERROR=1 shows where it failed)"
    )
    return f"error: cannot build {what}: {cause}; {hint}"


def _is_a(exc: BaseException, name: str) -> bool:
    """Whether ``exc``'s class or one of its bases is called ``name``."""
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def close_open_runs(failed: bool) -> None:
    """Finish a W&B run left open (exit code 1 when the job failed), so the next job starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return
    try:
        wandb.finish(exit_code=1 if failed else 0)
    except Exception as exc:  # noqa: BLE001 - closing must never hide the job's own error
        log.warning("could not close the W&B run: %s", exc)


def _job_output_dir() -> Path | None:
    try:
        from hydra.core.hydra_config import HydraConfig

        if not HydraConfig.initialized():
            return None
        return Path(HydraConfig.get().runtime.output_dir)
    except Exception:  # noqa: BLE001 - no Hydra context (e.g. called from Python)
        return None


def _job_name() -> str:
    from hydra.core.hydra_config import HydraConfig

    return str(HydraConfig.get().job.name)


def _only_hyperparameters(logs: Path) -> bool:
    """Whether ``logs/`` holds nothing but the CSV logger's ``hparams.yaml`` files, which it writes when a
    stage starts (a stage refused at its first step, e.g. a checkpoint that does not fit, leaves them)."""
    return all(p.is_dir() or p.name == "hparams.yaml" for p in logs.rglob("*"))


def remove_if_untouched(out: Path | None) -> bool:
    """Remove a job's output folder holding only bookkeeping: what Hydra wrote (``.hydra/``,
    ``<job>.log``), the run record of ``utils.run_info.save_run_info`` (``config.yaml``,
    ``run_info.json``), logger folders holding only hyper-parameters (``logs/**/hparams.yaml``) and
    folders with no file (a stage's, made before it was stopped), i.e. a run that failed or was
    interrupted before producing anything. A folder that existed before the command (``hydra.run.dir``)
    is kept, with what the command added of that bookkeeping removed and ``.hydra/`` and the run record
    put back when the command produced nothing (:func:`~gastrodistill.cli.run_folder.restore_if_refused`).
    Returns True when the folder was removed."""
    if out is None or not out.is_dir():
        return False
    from gastrodistill.cli.run_folder import (
        HYDRA_DIR,
        LOGS_DIR,
        RECORD_FILES,
        restore_if_refused,
        state_before,
    )

    try:
        hydra_only = {HYDRA_DIR, f"{_job_name()}.log", *RECORD_FILES}
    except Exception:  # noqa: BLE001
        return False
    if (out / LOGS_DIR).is_dir() and _only_hyperparameters(out / LOGS_DIR):
        hydra_only.add(LOGS_DIR)
    entries = list(out.iterdir())
    hydra_only |= {p.name for p in entries if p.is_dir() and not any(f.is_file() for f in p.rglob("*"))}
    if restore_if_refused(out, hydra_only - {HYDRA_DIR, *RECORD_FILES}):
        return False  # the folder was there before the command (hydra.run.dir): kept, as it was
    if {p.name for p in entries} <= hydra_only:
        shutil.rmtree(out, ignore_errors=True)
        before = state_before(out)  # only the folders made for this run: an empty folder of the user's stays
        for parent in before.made_parents if before is not None else ():
            try:
                Path(parent).rmdir()  # only removes an empty folder
            except OSError:
                break
        return True
    return False


def restore_if_existed(out: Path | None) -> None:
    """After a bug (an error that is not the project's, printed with its traceback): a run folder that
    existed before the command (``hydra.run.dir``) is put back as after a refusal when the command produced
    nothing (:func:`remove_if_untouched`); a new folder is kept whole, its job log and config being the bug
    report's evidence."""
    from gastrodistill.cli.run_folder import state_before

    before = state_before(out) if out is not None else None
    if before is not None and before.existed:
        remove_if_untouched(out)


def _multirun() -> bool:
    from gastrodistill.utils.hydra_job import sweep_job_number

    return sweep_job_number() is not None


#: The signal stopping the command, recorded by :func:`signals_as_interrupts`' handler.
_RECEIVED: list[int] = []


def _raise_interrupt(signum: int, _frame: Any) -> None:
    _RECEIVED.append(signum)
    raise KeyboardInterrupt(signal.Signals(signum).name)


#: Handlers no one else installed: the commands replace only these.
_DEFAULT_HANDLERS = (signal.SIG_DFL, signal.default_int_handler)


@contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """Within: SIGTERM, like Ctrl-C, raises ``KeyboardInterrupt`` in the main thread, so that what cleans
    up after Ctrl-C runs for ``kill PID`` too (plain SIGTERM killed the process at once, leaving its worker
    processes running). Handlers someone else installed are left alone; the previous ones come back after.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    _RECEIVED.clear()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum, handler in previous.items():
        if handler in (*_DEFAULT_HANDLERS, _late_signal):
            signal.signal(signum, _raise_interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)


_LATE: list[int] = []


def _late_signal(signum: int, _frame: Any) -> None:
    """After the work finished: the first signal says so and lets the closing up (W&B, Hydra, the
    interpreter) end with status 0; a second one stops it at once by the signal's default action."""
    if _LATE:  # as without these handlers: the signal's default action (killed by it)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _LATE.append(signum)
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(
        f"{name} after the work finished: every output of the run is written; closing up (send it again "
        "to stop at once)",
        file=sys.stderr,
    )


def _ignore_signals_in_teardown() -> None:
    """The last second or so of a finished command, the interpreter's teardown (modules freed after every
    exit function), runs with Python's handlers gone: a SIGTERM there still killed the finished command
    (143, no word; a breaker's finding). Registered with ``atexit`` when this module is imported, so it
    runs after the command's own exit functions (W&B's finish; those run last-in, first-out), this sets
    SIGINT and SIGTERM to be ignored where :func:`finish_through_late_signals` holds them: the operating
    system ignores them through the teardown, which ends with the command's status."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is _late_signal:
            signal.signal(signum, signal.SIG_IGN)


atexit.register(_ignore_signals_in_teardown)


def _is_top_level_command() -> bool:
    """Whether this process was started as one of the commands (a ``gastrodistill-*`` console script, or
    ``python -m gastrodistill.cli.<name>``), so nothing runs after it but its closing up; a script, a
    notebook or a test calling a command's ``main`` goes on afterwards and keeps its own Ctrl-C."""
    main_file = Path(getattr(sys.modules.get("__main__"), "__file__", None) or "")
    in_cli = main_file.parent.name == "cli" and main_file.parent.parent.name == "gastrodistill"
    return main_file.name.startswith("gastrodistill-") or in_cli


def finish_through_late_signals() -> None:
    """Once a command's work is done and written: a Ctrl-C or SIGTERM in the second or so of closing up
    (W&B's finish, Hydra's and the interpreter's teardown) no longer ends it with 130/143 and no word, which
    a scheduler took for a failed job (a breaker's finding); see :func:`_late_signal`. Only in a process
    started as the command (:func:`_is_top_level_command`), on its main thread and global rank 0; handlers
    someone else installed are left alone, and :func:`signals_as_interrupts` replaces these for a next
    command in the same process."""
    from gastrodistill.utils.distributed import is_global_zero

    if threading.current_thread() is not threading.main_thread() or not _is_top_level_command():
        return
    if not is_global_zero():  # another rank's outputs are rank 0's to write
        return
    _LATE.clear()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) in _DEFAULT_HANDLERS:
            signal.signal(signum, _late_signal)


def interrupting_signal(exc: BaseException) -> int | None:
    """The signal stopping the command when ``exc`` ends it: one received within
    :func:`signals_as_interrupts`, whatever ``exc`` it became (Lightning's ``fit`` turns
    ``KeyboardInterrupt`` into ``SystemExit(1)``), or SIGINT for a ``KeyboardInterrupt``; else ``None``."""
    if _RECEIVED:
        return _RECEIVED[0]
    return int(signal.SIGINT) if isinstance(exc, KeyboardInterrupt) else None


def stop_if_interrupted(exc: BaseException) -> None:
    """:func:`stop_interrupted` when a signal ends the command with ``exc`` (:func:`interrupting_signal`);
    returns for any other exception."""
    signum = interrupting_signal(exc)
    if signum is not None:
        stop_interrupted(signum)


def stop_interrupted(signum: int) -> NoReturn:
    """After a stage stopped by ``signum`` (its pools and staging folders already cleaned up on the way
    out): stop child processes left running, remove the job's untouched output folder, close W&B runs,
    one line, exit 128 + ``signum``."""
    stop_children()
    remove_if_untouched(_job_output_dir())
    close_open_runs(failed=True)
    close_progress_bars()
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    print(f"interrupted ({name})", file=sys.stderr)
    raise SystemExit(128 + signum) from None


def stop_children(grace_s: float = 5.0) -> None:
    """Terminate this process's ``multiprocessing`` children still running (SIGTERM, then SIGKILL after
    ``grace_s``): e.g. Lightning's ``ddp_spawn`` ranks, which a SIGTERM to this process alone does not reach
    and for which the interpreter would wait at exit."""
    import multiprocessing

    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_s
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            child.kill()
            child.join(1.0)


#: How a Hydra command's output folder is chosen, as the storage errors' advice names it.
HYDRA_OUTPUTS = "hydra.run.dir=... or paths.root_dir=..."


def known_error_text(exc: BaseException, outputs: str = HYDRA_OUTPUTS) -> str | None:
    """The ``error: ...`` line of a project error (:data:`PROJECT_ERRORS`, :func:`message`) or of a config
    value a constructor refused (:func:`instantiation_message`); ``None`` for anything else, which the
    commands re-raise with its traceback (a bug, a ``KeyboardInterrupt``, ``SystemExit``). ``outputs``: how
    the command's output folder is chosen, for the advice of a full disk or a folder it may not write."""
    if not isinstance(exc, Exception):
        return None
    found = project_error(exc)
    if found is not None:
        return message(found)
    bad_value = instantiation_value_error(exc)
    if bad_value is not None:
        return instantiation_message(bad_value)
    return (
        target_error_text(exc)
        or storage_error_text(exc, outputs)
        or folder_error_text(exc)
        or wandb_error_text(exc)
    )


def target_error_text(exc: BaseException) -> str | None:
    """The ``error: ...`` line of a ``_target_`` that cannot be imported (Hydra's "Error locating target"
    in ``exc``'s chain: a misspelt class or function), naming the config key and the target; None
    otherwise. It came out as Hydra's five-line message, with the run folder left (a fuzzer's finding)."""
    found = _first_in_chain(
        exc, lambda e: _is_a(e, "InstantiationException") and "Error locating target" in str(e)
    )
    if found is None:
        return None
    text = str(found)
    target = re.search(r"Error locating target '([^']+)'", text)
    key = re.search(r"full_key: (\S+)", text)
    where = f"{key.group(1)}._target_" if key else "a _target_"
    name = target.group(1) if target else "?"
    return (
        f"error: {where} = {name!r} cannot be imported (no such module, class or function): check its "
        "spelling, or that the package that defines it is installed"
    )


def folder_error_text(exc: BaseException) -> str | None:
    """The ``error: ...`` line of a file standing where the run needs a folder (``NotADirectoryError``, or
    ``FileExistsError`` on a path that is a file: ``data.store_root``, ``paths.log_dir``, a logger's
    ``save_dir`` or ``paths.data_root`` set to a file), naming the path; None otherwise. They came out as
    tracebacks (a fuzzer's finding)."""

    def file_in_the_way(e: BaseException) -> bool:
        if isinstance(e, NotADirectoryError):
            return True
        return isinstance(e, FileExistsError) and bool(e.filename) and not Path(e.filename).is_dir()

    found = _first_in_chain(exc, file_in_the_way, causes_only=True)  # not a bug raised while handling one
    if found is None:
        return None
    name = getattr(found, "filename", None)
    where = f" ({name})" if name else ""
    return (
        f"error: a file is in the way of a folder this run needs{where}: point the key that names it "
        "(data.store_root, paths.data_root, paths.log_dir, paths.output_dir, a logger's save_dir) at a "
        "folder, or move the file"
    )


def _raised_in_wandb_init(exc: BaseException) -> bool:
    """Whether ``exc`` is one of W&B's own errors (``wandb.errors``) raised while ``wandb.init`` started a
    run (a frame of ``wandb_init.py``'s ``init`` on its traceback)."""
    if not type(exc).__module__.startswith("wandb.errors"):
        return False
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == "init" and Path(code.co_filename).name == "wandb_init.py":
            return True
        tb = tb.tb_next
    return False


def wandb_error_text(exc: BaseException) -> str | None:
    """The ``error: ...`` line of W&B's own errors raised while starting a run (no API key, no network
    after its retries) found in ``exc``'s chain: its first line and the ways on, offline included; None
    otherwise (W&B's errors elsewhere, such as a misuse after the run finished, keep their traceback). An
    online run without a key or a network ended in W&B's traceback (a breaker's finding)."""
    found = _first_in_chain(exc, _raised_in_wandb_init)
    if found is None:
        return None
    first = (str(found).strip().splitlines() or [type(found).__name__])[0]
    return (
        f"error: W&B could not start an online run ({first}); check the network and the API key (wandb "
        "login, or WANDB_API_KEY), or log offline (drop WANDB_MODE=online or logger.wandb.offline=false) and "
        "upload later with 'wandb sync <run folder>/logs/wandb/offline-run-*'"
    )


#: ``errno`` values of a full or quota-bound disk, and of a file or folder that may not be written.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def storage_error_text(exc: BaseException, outputs: str = HYDRA_OUTPUTS) -> str | None:
    """The ``error: ...`` line of a full disk or a file/folder that may not be read or written: ``exc`` or
    one of its explicit causes (``raise ... from``; not an error an ``except`` block was handling when a
    bug raised another) is an ``OSError`` of such an ``errno``, or carries the operating system's text
    (safetensors' ``SafetensorError``, torch's full shared memory), naming the file when the error does;
    None otherwise. They came out as tracebacks
    from Lightning's loggers, safetensors, the patch store or Hydra's instantiation (a breaker's finding:
    a tmpfs of 800 kB, a folder made immutable)."""

    def storage(e: BaseException) -> bool:
        if isinstance(e, OSError):
            return e.errno in _FULL_ERRNOS | _DENIED_ERRNOS
        return "No space left on device" in str(e) or "Disk quota exceeded" in str(e)

    found = _first_in_chain(exc, storage, causes_only=True)
    if found is None:
        return None
    name = getattr(found, "filename", None)
    where = f" ({name})" if name else ""
    if isinstance(found, OSError) and found.errno in _DENIED_ERRNOS:
        return (
            f"error: {found.strerror or 'permission denied'}{where}: make it readable (an input) or writable "
            f"(an output) for you, or choose another output folder ({outputs}) or patch store folder "
            "(data.store_root=...)"
        )
    if "/torch_" in str(found):  # torch's shared memory for DataLoader workers (/dev/shm, 64 MB in Docker)
        return (
            "error: the shared memory (/dev/shm) is full: the data loader's workers pass batches through it; "
            "set data.num_workers=0, or give the machine or container more (docker run --shm-size=8g)"
        )
    return (
        f"error: no space left on the device{where}: free space there, or choose an output folder "
        f"({outputs}) or a patch store folder (data.store_root=...) on a disk with room; what this run "
        "wrote before stopping is incomplete"
    )


def friendly_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Hydra task function (below ``@hydra.main``): see the module docstring."""

    @functools.wraps(task)
    def wrapper(cfg: Any) -> Any:
        failed = True
        try:
            with signals_as_interrupts():
                check_root_values(cfg)
                result = task(cfg)
            failed = False
            if not _multirun():  # a sweep's next job must still stop at Ctrl-C
                finish_through_late_signals()
            return result
        except BaseException as exc:
            stop_if_interrupted(exc)
            text = known_error_text(exc)
            if text is None:  # a bug: its traceback; an existing folder put back when nothing was made
                restore_if_existed(_job_output_dir())
                raise
            remove_if_untouched(_job_output_dir())
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            if _multirun():  # the other jobs of the sweep still run; Hydra reports the failure at the end
                # on the console, not through logging: the job's log file is kept, and a data error
                # names the file or patient to fix (no such name in a log)
                print(text, file=sys.stderr)
                raise StageError(text) from None
            close_open_runs(failed=True)
            close_progress_bars()
            print(text, file=sys.stderr)
            raise SystemExit(EXIT_STATUS) from None
        finally:
            close_open_runs(failed)

    return wrapper


def close_progress_bars() -> None:
    """Close every live tqdm bar (Lightning's and ours), so that an error line is printed below them on a
    line of its own, not glued to a half-drawn bar, and no bar is redrawn after it at exit."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def report_errors(
    main: Callable[..., Any] | None = None, *, outputs: str = HYDRA_OUTPUTS
) -> Callable[..., Any]:
    """The same for a command that is not a Hydra main (argparse): message alone, exit status 1.
    ``@report_errors(outputs="--output ...")``: how that command's output folder is chosen, for the
    advice of a storage error (:func:`known_error_text`)."""
    if main is None:
        return functools.partial(report_errors, outputs=outputs)

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        failed = True
        try:
            with signals_as_interrupts():
                result = main(*args, **kwargs)
            failed = False
            finish_through_late_signals()
            return result
        except BaseException as exc:
            stop_if_interrupted(exc)
            text = known_error_text(exc, outputs)
            if text is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            close_progress_bars()
            print(text, file=sys.stderr)
            raise SystemExit(EXIT_STATUS) from None
        finally:
            close_open_runs(failed)

    return wrapper
