"""Build a network from its config before any data is read, so that a value the network refuses stops a
study at once, with a message naming the key, instead of after data generation (``model.*``) or after
the distillation (an evaluation architecture).

The shape comes from the data module's constructor, which reads no data: the gastric patch store knows
its channels, classes and stored side from the config alone (``data.storage_size`` or
``data.patch_size``). Collections whose shape is in their files (npz, image folders, digits) are probed
at :data:`PROBE_SIZE`, which checks every value that does not depend on the image size (norm, pooling,
activation, head, init scheme, width, unknown keys); their size-dependent checks
(:class:`~gastrodistill.models.layers.ModelSizeError`) run when the stage builds the network on the loaded
data.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from gastrodistill.models.layers import ModelConfigError, ModelSizeError

#: (H, W) in px at which a model is probed when the data's size is known only from its files.
PROBE_SIZE = (256, 256)

#: (in_channels, num_classes, (H, W)) of the data a network is built for.
Shape = tuple[int, int, tuple[int, int]]


def shape_of(dm: Any) -> Shape:
    """``(in_channels, num_classes, (H, W))`` of a data module (set up, or the gastric store's, whose
    constructor knows them). Raises ``AttributeError`` when the module does not know them yet."""
    return int(dm.in_channels), int(dm.num_classes), tuple(int(s) for s in dm.image_size)  # type: ignore[return-value]


def data_shape(data_cfg: DictConfig) -> Shape | None:
    """The shape ``data_cfg`` fixes before any data is read, or ``None`` when it is in the data's files.

    Instantiates the data module (its constructor reads no files; a mandatory value left at ``???``
    raises omegaconf's ``MissingMandatoryValue`` naming it) and reads ``in_channels``, ``num_classes``
    and ``image_size``, which the gastric data module sets from its config and the collections set in
    ``setup``.
    """
    dm: Any = hydra.utils.instantiate(data_cfg)
    try:
        return shape_of(dm)
    except AttributeError:
        return None


def check_model_config(model_cfg: DictConfig, shape: Shape | None, key: str = "model") -> Any:
    """Build the network of ``model_cfg`` (a Hydra partial of ``conf/model``) once for ``shape`` and return
    the instantiated partial (the factory the stages build their networks with).

    ``shape`` is ``(in_channels, num_classes, (H, W))`` from :func:`data_shape` or the loaded data;
    ``None`` probes 1 channel, 2 classes at :data:`PROBE_SIZE` px and lets a refusal that depends on the
    size alone (:class:`~gastrodistill.models.layers.ModelSizeError`) pass: it is checked again on the
    loaded data. The network is built under ``torch.random.fork_rng``, so a constructor drawing from the
    global stream leaves it as it was. Raises :class:`ModelConfigError` ``"<key> cannot be built for ...:
    <what the constructor said>"`` for anything the constructor refuses (its own ``ModelConfigError``, an
    unknown norm, pooling or activation, an unknown keyword, a value of the wrong type or a zero width).
    A size-free probe that runs out of memory (a flatten head at 256 px can need gigabytes) is not a
    refusal: the factory is returned unchecked and the stage builds the network on the loaded data.
    """
    channels, classes, size = shape or (1, 2, PROBE_SIZE)
    where = f"{size[0]}x{size[1]} px images" if shape else "any image size"
    check_value_types(model_cfg, key)
    try:
        factory = hydra.utils.instantiate(model_cfg)
        with torch.random.fork_rng(devices=[]):
            factory(in_channels=channels, num_classes=classes, image_size=size)
    except ModelSizeError as exc:
        if shape is not None:
            other = (
                ""
                if key == "model"
                else f" (model.* settings do not change {key}: leave it out of eval.architectures "
                "or give larger images)"
            )
            raise ModelSizeError(f"{key} cannot be built for {where}: {exc}{other}") from None
    except ModelConfigError as exc:
        raise ModelConfigError(f"{key} cannot be built for {where}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - whatever the constructor raises, the cause is a config value
        if shape is None and _out_of_memory(exc):
            return factory  # the 256 px probe, not the model, was too large: checked on the loaded data
        kind = "" if isinstance(exc, (TypeError, ValueError)) else f"{type(exc).__name__}: "
        raise ModelConfigError(f"{key} cannot be built for {where}: {kind}{exc}") from None
    return factory


#: Constructor annotations whose values are checked by type, and the Python types each accepts.
_SIMPLE_TYPES: dict[type, tuple[type, ...]] = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def check_value_types(model_cfg: DictConfig, key: str = "model") -> None:
    """Refuse a value whose type the network constructor's annotation rules out (``int``, ``float``,
    ``str``, ``bool``; a bool is not a number here, and ``None`` is refused where the annotation is not
    optional), naming its key: ``model.width=abc`` used to be reported as a TypeError of the whole
    ``model``. Keys without such an annotation and targets that cannot be inspected are left to the
    constructor. Raises :class:`ModelConfigError`."""
    target = model_cfg.get("_target_") if isinstance(model_cfg, DictConfig) else None
    if not target:
        return
    # an unresolvable value (${oc.env:VAR} with VAR unset) raises omegaconf's error naming its key, which
    # the command line reports as a project error (gastrodistill.cli.errors)
    values = OmegaConf.to_container(model_cfg, resolve=True)
    try:
        obj = hydra.utils.get_object(str(target))
        hints = typing.get_type_hints(obj.__init__ if inspect.isclass(obj) else obj)
    except Exception:  # noqa: BLE001 - an unknown target: the build reports it
        return
    prefix = "model." if key == "model" else f"{key}: "
    for name, value in values.items():
        want = hints.get(name)
        if name.startswith("_") or want not in _SIMPLE_TYPES:  # Optional[...] is a Union: not checked
            continue
        numeric = want in (int, float)
        if not isinstance(value, _SIMPLE_TYPES[want]) or (numeric and isinstance(value, bool)):
            raise ModelConfigError(
                f"{prefix}{name} = {value!r} must be {'an' if want is int else 'a'} {want.__name__} "
                f"(got {type(value).__name__})"
            )


def _out_of_memory(exc: BaseException) -> bool:
    """Whether building failed for lack of memory (``MemoryError``, or torch's allocator on CPU or CUDA)."""
    if isinstance(exc, MemoryError | torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)


def check_configured_model(cfg: DictConfig) -> None:
    """:func:`check_model_config` of ``cfg.model`` for the shape ``cfg.data`` fixes (:func:`data_shape`),
    when it fixes one; data whose shape is in its files (digits, class folders) is checked on them, where
    the message names the size. What ``gastrodistill-distill`` and ``-evaluate`` check before any data."""
    shape = data_shape(cfg.data)
    if shape is not None:
        check_model_config(cfg.model, shape)
