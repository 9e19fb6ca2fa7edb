"""The ``eval`` values read only when a network is built or trained, checked by the code that reads them.

:func:`check_training_values` (called by :func:`~gastrodistill.evaluation.jobs.validate`, before any
network trains) builds what the study will build from each value: the init scheme, the
:class:`~gastrodistill.evaluation.fresh_training.StandardSchedule` of every rate of ``eval.lr_grid``, the
augmentation nodes, the teacher temperature, the full-data
:class:`~gastrodistill.evaluation.full_data.RealRecipe` with its optimiser and its Lightning Trainer. What
those refuse is raised as one line of
:class:`~gastrodistill.evaluation.jobs.EvaluationConfigError` naming the key, the value and what to use.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from gastrodistill.evaluation.jobs import EvaluationConfigError, as_list


def _plain(value: Any) -> Any:
    """A config node as plain Python (resolved), anything else as it is."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def one_line(exc: BaseException) -> str:
    """An error's message on one line, without Hydra's ``set env var HYDRA_FULL_ERROR`` hint."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.replace(", set env var HYDRA_FULL_ERROR=1 to see chained stack trace.", ".")
    return text.replace(" set env var HYDRA_FULL_ERROR=1 to see chained stack trace.", "")


def check_lists(ev: DictConfig) -> None:
    """``eval.schedules`` and ``eval.architectures`` list at least one entry (empty, the distilled sets
    trained no network and were missing from the table, or fell back to ``same`` unsaid); so does
    ``eval.baselines.architectures`` when there are baselines."""
    if not as_list(ev.get("schedules")):
        raise EvaluationConfigError(
            f"eval.schedules = {_plain(ev.get('schedules'))!r} lists no schedule, so the distilled sets "
            "would train no network and be missing from the results; list replay and/or standard, e.g. "
            "'eval.schedules=[replay,standard]'"
        )
    if not as_list(ev.get("architectures")):
        raise EvaluationConfigError(
            f"eval.architectures = {_plain(ev.get('architectures'))!r} lists no architecture; list at least "
            "one, e.g. 'eval.architectures=[same]' (same: the distilled set's own) or [same,lenet]"
        )
    baselines = ev.get("baselines") or {}
    if as_list(baselines.get("methods")) and not as_list(baselines.get("architectures")):
        raise EvaluationConfigError(
            f"eval.baselines.architectures = {_plain(baselines.get('architectures'))!r} lists no "
            "architecture for the baselines; list at least one, e.g. 'eval.baselines.architectures=[same]', "
            "or no baseline ('eval.baselines.methods=[]')"
        )


def check_init(ev: DictConfig) -> None:
    """``eval.init``: null (each architecture's own ``init``) or a scheme of ``gastrodistill.models.init``."""
    from gastrodistill.models.init import SCHEMES, check_scheme

    init = ev.get("init")
    if init is None:
        return
    try:
        check_scheme(init)
    except (ValueError, TypeError):
        raise EvaluationConfigError(
            f"eval.init = {init!r} is not an init scheme; use one of {', '.join(SCHEMES)} "
            "(or null: each architecture's model.init)"
        ) from None


def check_augment(key: str, node: Any) -> None:
    """An augmentation node (``eval.standard.augment``, ``eval.replay_augment``,
    ``eval.baselines.real.augment``): null, or a ``{_target_: ...}`` node that the study's own
    :func:`~gastrodistill.evaluation.fresh_training.augmenter` builds."""
    from hydra.errors import HydraException

    from gastrodistill.evaluation.fresh_training import StandardSchedule, augmenter

    value = _plain(node)
    if value is None:
        return
    try:
        StandardSchedule(epochs=1, lr=1.0, augment=value)  # the schedules' own check: a {_target_: ...} node
        augmenter(value)
    except (ValueError, TypeError, HydraException) as exc:
        cause = exc.__cause__ if isinstance(exc, HydraException) and exc.__cause__ is not None else exc
        raise EvaluationConfigError(
            f"{key} = {value!r} cannot be built ({one_line(cause)}); use null or a node such as "
            "{_target_: gastrodistill.distillation.augment.DSA, flip: true}"
        ) from None


def check_lr_grid(ev: DictConfig) -> None:
    """``eval.lr_grid``: a list (or null) whose every rate makes a valid standard schedule, as
    ``Study.choose_lr`` builds it."""
    from gastrodistill.evaluation.fresh_training import standard_schedule

    grid = ev.get("lr_grid")
    if grid is None or "standard" not in ev:
        return
    if not isinstance(grid, ListConfig | list | tuple):
        raise EvaluationConfigError(
            f"eval.lr_grid = {_plain(grid)!r} is not a list; list the standard schedule's learning rates, "
            f"e.g. 'eval.lr_grid=[{grid}]' (one rate: no selection) or [0.003,0.01,0.03]"
        )
    for lr in _plain(grid):
        try:
            standard_schedule(ev, lr)
        except (TypeError, ValueError) as exc:
            raise EvaluationConfigError(
                f"eval.lr_grid entry {lr!r} refused ({one_line(exc)}); list finite learning rates > 0, "
                "e.g. 'eval.lr_grid=[0.003,0.01,0.03]'"
            ) from None


def check_teacher_temperature(ev: DictConfig) -> None:
    """``eval.baselines.teacher_temperature``, by the ``random_soft`` baseline's own check."""
    from gastrodistill.evaluation.baselines import check_temperature

    baselines = ev.get("baselines") or {}
    if "teacher_temperature" not in baselines:
        return
    try:
        check_temperature(baselines.get("teacher_temperature"))
    except ValueError as exc:
        raise EvaluationConfigError(str(exc)) from None


def check_real(ev: DictConfig, here: bool = True) -> None:
    """``eval.baselines.real``: the :class:`~gastrodistill.evaluation.full_data.RealRecipe` built from it, its
    optimiser built on a dummy parameter, its augmentation built, and (``here``: the study runs on this
    machine) its Lightning Trainer built, which trains nothing but refuses an accelerator this machine
    lacks, a device count or strategy Lightning does not accept, and a precision it cannot run. Not
    ``here``: the accelerator and strategy names only."""
    import torch
    from hydra.errors import HydraException

    from gastrodistill.evaluation.fresh_training import OPTIMIZERS, make_optimizer
    from gastrodistill.evaluation.full_data import RealRecipe

    baselines = ev.get("baselines") or {}
    if baselines.get("real") is None:
        return
    settings = _plain(baselines.real)
    try:
        recipe = RealRecipe(**settings)
    except (TypeError, ValueError) as exc:
        text = one_line(exc)
        raise EvaluationConfigError(
            text if text.startswith("eval.baselines.real") else f"eval.baselines.real: {text}"
        ) from None
    if isinstance(recipe.optimizer, str) and recipe.optimizer not in OPTIMIZERS:
        raise EvaluationConfigError(
            f"eval.baselines.real.optimizer = {recipe.optimizer!r} unknown; use one of {sorted(OPTIMIZERS)} "
            "or a {_target_: torch.optim.X, ...} node"
        )
    try:
        make_optimizer(
            [torch.zeros(1, requires_grad=True)],
            recipe.optimizer,
            recipe.lr,
            recipe.momentum,
            recipe.weight_decay,
        )
    except (TypeError, ValueError, HydraException) as exc:
        raise EvaluationConfigError(
            f"eval.baselines.real.optimizer = {_plain(recipe.optimizer)!r} (lr={recipe.lr!r}, "
            f"momentum={recipe.momentum!r}, weight_decay={recipe.weight_decay!r}) cannot build an "
            f"optimiser ({one_line(exc)}); fix the value it names"
        ) from None
    check_augment("eval.baselines.real.augment", settings.get("augment"))
    if here:
        _check_trainer(recipe)
    else:
        _check_trainer_names(recipe)


_TRAINER_KEYS = "eval.baselines.real.accelerator / devices / strategy / precision"


def _check_trainer(recipe: Any) -> None:
    """Build the recipe's Trainer (:func:`~gastrodistill.evaluation.full_data.real_trainer`, quiet)."""
    from pytorch_lightning.utilities.exceptions import MisconfigurationException

    from gastrodistill.evaluation.full_data import _quiet, real_trainer

    try:
        with _quiet(True):
            real_trainer(recipe)
    except (MisconfigurationException, ValueError, TypeError, ImportError, RuntimeError) as exc:
        raise EvaluationConfigError(
            f"{_TRAINER_KEYS} = {recipe.accelerator!r} / {recipe.devices!r} / {recipe.strategy!r} / "
            f"{recipe.precision!r}: Lightning refuses them on this machine ({one_line(exc)}); "
            "use e.g. accelerator=auto devices=1 strategy=auto (the defaults)"
        ) from None


def _check_trainer_names(recipe: Any) -> None:
    """The accelerator and strategy among the names Lightning registers (a machine elsewhere: its devices
    cannot be checked here)."""
    from pytorch_lightning.accelerators import AcceleratorRegistry
    from pytorch_lightning.strategies import StrategyRegistry

    accelerators = ["auto", "gpu", *AcceleratorRegistry.available_accelerators()]
    if str(recipe.accelerator) not in accelerators:
        raise EvaluationConfigError(
            f"eval.baselines.real.accelerator = {recipe.accelerator!r} unknown; use one of {accelerators}"
        )
    strategies = ["auto", *StrategyRegistry.available_strategies()]
    if isinstance(recipe.strategy, str) and recipe.strategy not in strategies:
        raise EvaluationConfigError(
            f"eval.baselines.real.strategy = {recipe.strategy!r} unknown; use auto, or e.g. ddp "
            f"(Lightning's names: {', '.join(strategies[:8])}, ...)"
        )


def check_training_values(ev: DictConfig, here: bool = True) -> None:
    """Every ``eval`` value read only when a network is built or trained (module docstring); raises
    :class:`~gastrodistill.evaluation.jobs.EvaluationConfigError` naming the key. ``here`` False: the
    study runs on another machine, whose devices are not checked."""
    check_lists(ev)
    check_init(ev)
    check_lr_grid(ev)
    if "standard" in ev:
        check_augment("eval.standard.augment", ev.standard.get("augment"))
    check_augment("eval.replay_augment", ev.get("replay_augment"))
    check_teacher_temperature(ev)
    check_real(ev, here)
