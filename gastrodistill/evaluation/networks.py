"""Which networks the evaluation trains: architectures through Hydra composition, and the optimisers.

``same`` is the distilled set's own architecture: the model config recorded in its ``distilled.json``
(``DistilledSet.model_config``) when there is one, else the current ``cfg.model``. Every other name is
composed from the ``model`` config group (``hydra.compose(..., overrides=['model=<name>'])``), so it
sees the same search path, defaults and overrides as a ``model=<name>`` on the command line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from gastrodistill.evaluation.fresh_training import NetSpec
from gastrodistill.evaluation.jobs import SAME, EvaluationConfigError
from gastrodistill.models.preflight import check_model_config, shape_of
from gastrodistill.models.zca import ZCA_KEY, with_zca_kernel, without_zca_kernel

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule

#: In an evaluation worker process only: model configs the parent composed (:func:`precompose_models`),
#: set by :func:`use_precomposed_models`. A spawned worker has no Hydra of its own and would compose from
#: the bundled config folder alone, missing a model of the user's ``-cd`` folder.
_PRECOMPOSED: dict[str, DictConfig] = {}


def precompose_models(archs: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Each named architecture's model config (``same`` excluded), composed here as plain resolved
    containers, for worker processes (:func:`use_precomposed_models`). Raises
    :class:`EvaluationConfigError` for a name the model group does not hold."""
    return {
        str(a): OmegaConf.to_container(_compose_model(str(a)), resolve=True)  # type: ignore[misc]
        for a in archs
        if str(a) != SAME
    }


def use_precomposed_models(configs: Mapping[str, Mapping[str, Any]]) -> None:
    """In a worker process: answer :func:`architecture_config` for these names from ``configs``."""
    _PRECOMPOSED.clear()
    _PRECOMPOSED.update({name: OmegaConf.create(dict(conf)) for name, conf in configs.items()})


def _compose_model(arch: str) -> DictConfig:
    """The ``model`` node of the root config composed with ``model=<arch>`` (Hydra's config search path;
    in a worker process, the parent's composition)."""
    if arch in _PRECOMPOSED:
        return _PRECOMPOSED[arch]
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from gastrodistill.utils.config_tree import CONF_DIR

    try:
        if GlobalHydra.instance().is_initialized():
            root = compose(config_name="config", overrides=[f"model={arch}"])
        else:
            with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
                root = compose(config_name="config", overrides=[f"model={arch}"])
    except HydraException as e:
        found = str(e).split("\nConfig search path")[0].strip()  # Hydra's options list, not its search path
        raise EvaluationConfigError(
            f"eval architecture {arch!r} is not in the model config group (no conf/model/{arch}.yaml): "
            f"{found}"
        ) from e
    return root.model


def architecture_config(cfg: DictConfig, arch: str, recorded: Mapping[str, Any] | None = None) -> DictConfig:
    """The model config of ``arch``.

    ``same``: ``recorded`` (the distilled set's own model config, a ``_target_`` and its kwargs) when
    given, else ``cfg.model``. Other names: composed from the ``model`` group. Raises
    :class:`EvaluationConfigError` for a name the group does not hold.
    """
    if arch == SAME:
        if recorded:
            node = OmegaConf.create(dict(recorded))
            node["_partial_"] = True
            return node
        return cfg.model
    return _compose_model(arch)


def check_distinct(archs: Iterable[str], name_of: Callable[[str], str], method: str) -> None:
    """Refuse two entries of ``archs`` that build one network (``name_of`` gives the same class name,
    e.g. ``same`` and ``convnet`` when the set was distilled on a ConvNet): their rows would share one key
    of the results table. Raises :class:`EvaluationConfigError` naming both entries."""
    names: dict[str, str] = {}
    for arch in archs:
        name = name_of(arch)
        if names.setdefault(name, arch) != arch:
            raise EvaluationConfigError(
                f"eval architectures {names[name]!r} and {arch!r} are both {name} for {method}: "
                "list the distilled set's own architecture only as 'same'"
            )


def architecture_name(mcfg: DictConfig | Mapping[str, Any]) -> str:
    """The class name of a model config, lower case (``gastrodistill.models.ConvNet`` -> ``convnet``)."""
    target = str(mcfg.get("_target_", "model"))
    return target.rsplit(".", 1)[-1].lower()


def eval_device(cfg: DictConfig) -> str:
    """``eval.device``: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:i]``."""
    dev = str(cfg.eval.get("device") or "auto")
    if dev == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def net_spec(
    cfg: DictConfig,
    arch: str,
    dm: ImageDataModule,
    recorded: Mapping[str, Any] | None = None,
    zca_of: Mapping[str, Any] | None = None,
) -> NetSpec:
    """How to build fresh networks of ``arch`` for the data's shape (see :func:`architecture_config`).

    Whitening (``model.zca_kernel``): with ``zca_of`` (the model config a distilled set recorded) the
    networks, of any architecture, start with that set's filter, or none when it has none: a set is
    trained as it was distilled. Without it (the baselines, the audit's real-data networks) they start
    with the data's filter (``data.zca``, :meth:`~gastrodistill.data.base.ImageDataModule.zca_kernel`),
    whatever filter ``recorded`` holds: it gives the architecture only."""
    mcfg = without_zca_kernel(architecture_config(cfg, arch, recorded))
    kernel = zca_of.get(ZCA_KEY) if zca_of is not None else dm.zca_kernel()
    mcfg = with_zca_kernel(mcfg, kernel)
    key = "model" if arch == SAME else f"eval architecture {arch!r}"
    factory = check_model_config(mcfg, shape_of(dm), key)
    init = str(cfg.eval.get("init") or mcfg.get("init", "xavier"))
    return NetSpec(
        device=eval_device(cfg),
        factory=factory,
        in_channels=dm.in_channels,
        num_classes=dm.num_classes,
        image_size=tuple(dm.image_size),
        init=init,
        name=architecture_name(mcfg),
    )
