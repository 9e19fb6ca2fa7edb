"""Train fresh networks on a small set: a distilled set (replay or standard schedule) or a baseline.

Two ways to use a distilled set: ``replay`` repeats what the distillation optimised for (T = steps ×
epochs graph-free SGD steps, step t on ``distilled.batch(t)`` with the learned rate ``lrs()[t]``, by the
distillation's own step), and ``standard`` ignores the learned rates and trains with the one small-set
recipe (:class:`StandardSchedule`) that also trains the random subsets, class means and the
random-images-with-soft-labels control. These loops are the reference of the ``torch.func`` ensembles
(:mod:`gastrodistill.evaluation.ensemble`); the full-data bound is :mod:`gastrodistill.evaluation.full_data`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from gastrodistill.utils.precision import lightning_precision, precision_autocast
from gastrodistill.utils.values import check_switch, is_count, is_finite_number

if TYPE_CHECKING:
    from gastrodistill.distillation.distilled_set import DistilledSet

SCHEDULES = ("replay", "standard")


@dataclass(frozen=True)
class NetSpec:
    """How to build one fresh network: a model factory (``instantiate(cfg.model)``) and the data's shape."""

    factory: Callable[..., nn.Module]
    in_channels: int
    num_classes: int
    image_size: tuple[int, int]
    init: str = "xavier"
    name: str = "net"
    device: str = "cpu"

    def build(self, generator: torch.Generator) -> nn.Module:
        """A new network on ``device``, re-initialised from a CPU ``generator`` (never the global RNG)."""
        from gastrodistill.models.init import initialize

        net = self.factory(
            in_channels=self.in_channels, num_classes=self.num_classes, image_size=tuple(self.image_size)
        )
        initialize(net, self.init, generator)
        return net.to(self.device)


def device_of(net: nn.Module) -> torch.device:
    """The device of ``net``'s first parameter (where its inputs must go)."""
    return next(net.parameters()).device


@dataclass(frozen=True)
class StandardSchedule:
    """The one recipe for every small labelled set (distilled images, random subsets, class means, the
    random-images-with-soft-labels control): ``epochs`` of an ordinary optimiser over the set, with the
    same label-preserving augmentation for every method: ``augment`` is ``None`` or a node
    ``{_target_: gastrodistill.distillation.augment.DSA, ...}`` (by default the distillation's own
    ``distill.dsa``), applied to every batch with the network's generator. ``optimizer`` is a short name
    or a ``{_target_: ...}`` node. ``precision``: ``32-true`` (float32) or ``bf16-mixed`` (forward and
    loss under bfloat16 autocast, weights and optimiser in float32), named as Lightning names them (the
    short ``32`` and ``bf16`` are read as those, as for ``distill.precision``); no other value is accepted."""

    epochs: int = 300
    lr: float = 0.01
    optimizer: Any = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 0  # 0: full batch
    cosine: bool = True
    augment: Any = None
    precision: str = "32-true"

    def __post_init__(self) -> None:
        # Lightning's name (the short 32 / bf16 read as 32-true / bf16-mixed, as for distill.precision)
        object.__setattr__(self, "precision", lightning_precision(self.precision, "eval.standard.precision"))
        if isinstance(self.optimizer, str) and self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"eval standard optimizer {self.optimizer!r} unknown; use one of {sorted(OPTIMIZERS)} "
                "or a {_target_: ...} node"
            )
        if int(self.batch_size) != self.batch_size or self.batch_size < 0:
            raise ValueError(
                f"eval standard batch_size must be an integer >= 0 (0: full batch), got {self.batch_size!r}"
            )
        if not is_count(self.epochs):
            raise ValueError(f"eval standard schedule needs an integer epochs >= 1 (got {self.epochs!r})")
        if not (is_finite_number(self.lr) and self.lr > 0):
            raise ValueError(f"eval standard schedule needs a finite lr > 0 (got {self.lr!r})")
        if not (is_finite_number(self.momentum) and 0 <= self.momentum < 1):
            raise ValueError(f"eval standard momentum must be a number in [0, 1), got {self.momentum!r}")
        if not (is_finite_number(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"eval standard weight_decay must be a number >= 0, got {self.weight_decay!r}")
        check_switch(self.cosine, "eval standard cosine")
        if self.augment is not None and (
            not isinstance(self.augment, Mapping) or "_target_" not in self.augment
        ):
            raise ValueError(f"eval augment must be null or a {{_target_: ...}} node, got {self.augment!r}")

    @property
    def augments(self) -> bool:
        """Whether the schedule augments its training batches (``augment`` is set)."""
        return self.augment is not None

    def autocast(self, device: torch.device) -> torch.autocast:
        """The autocast context of a training step's forward pass and loss on ``device``."""
        return precision_autocast(self.precision, device)


def standard_schedule(ev: Any, lr: float | None = None) -> StandardSchedule:
    """``eval.standard`` (the one small-set recipe) of the ``eval`` config node, with ``lr`` replaced when
    given. Raises ``ValueError`` (from :class:`StandardSchedule`) for a value it refuses and ``TypeError``
    for a key it does not know."""
    from omegaconf import OmegaConf

    s = OmegaConf.to_container(ev.standard, resolve=True)
    if lr is not None:
        s["lr"] = lr
    return StandardSchedule(**s)


#: Short optimiser names accepted in ``eval`` recipes beside a ``{_target_: ...}`` node.
OPTIMIZERS = {"sgd": "torch.optim.SGD", "adam": "torch.optim.Adam", "adamw": "torch.optim.AdamW"}


def make_optimizer(
    params: Iterable[nn.Parameter] | Iterable[torch.Tensor],
    optimizer: Any,
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """The evaluation optimiser, instantiated from a ``_target_`` like distillation's.

    ``optimizer`` is a node ``{_target_: torch.optim.SGD, ...}`` (its other kwargs pass through) or a
    short name (``sgd``, ``adam``, ``adamw``) standing for that target. ``lr`` and ``weight_decay``
    come from the recipe; SGD also gets ``momentum`` unless the node sets it. Raises ``ValueError`` for
    an unknown name or a node without ``_target_``.
    """
    import hydra
    from omegaconf import DictConfig, OmegaConf

    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {optimizer!r} unknown; use one of {sorted(OPTIMIZERS)} or a _target_"
            )
        node: dict[str, Any] = {"_target_": OPTIMIZERS[optimizer]}
    else:
        node = dict(
            OmegaConf.to_container(optimizer, resolve=True)
            if isinstance(optimizer, DictConfig)
            else optimizer
        )
        if "_target_" not in node:
            raise ValueError(f"eval optimizer node {node} has no _target_")
    node.update(lr=float(lr), weight_decay=float(weight_decay))
    if node["_target_"] == OPTIMIZERS["sgd"]:
        node.setdefault("momentum", float(momentum))
    node["_partial_"] = True
    return hydra.utils.instantiate(OmegaConf.create(node))(params)


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with integer labels or with probability targets (as the distillation's inner loss)."""
    return F.cross_entropy(logits, targets)


_AUGMENTERS: dict[str, Callable] = {}


def augmenter(
    node: Mapping[str, Any] | None,
) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """The augmentation of a ``{_target_: ...}`` node (e.g. ``DSA``), instantiated once per distinct node."""
    if node is None:
        return None
    import json

    import hydra
    from omegaconf import OmegaConf

    key = json.dumps(dict(node), sort_keys=True, default=str)
    if key not in _AUGMENTERS:
        _AUGMENTERS[key] = hydra.utils.instantiate(OmegaConf.create(dict(node)))
    return _AUGMENTERS[key]


def augment_small(x: torch.Tensor, schedule: StandardSchedule, generator: torch.Generator) -> torch.Tensor:
    """Label-preserving augmentation of a batch ``[B, C, H, W]`` (normalised images) by the schedule's
    ``augment`` (the project's DSA, ``gastrodistill.distillation.augment``), its per-image parameters
    drawn from the CPU ``generator``, so an ensemble and a loop that share per-network generators see the
    same augmentations. No augmentation: ``x`` unchanged."""
    aug = augmenter(schedule.augment)
    if aug is None:
        return x
    with torch.no_grad():
        return aug(x, generator)


def replay_momentum(distilled: DistilledSet) -> float:
    """The inner SGD momentum stored with a distilled set (0 for sets distilled with plain SGD)."""
    for name in ("inner_momentum", "momentum"):
        v = getattr(distilled, name, None)
        if isinstance(v, int | float):
            return float(v)
    return 0.0


def replay_seed_parts(generator: torch.Generator) -> tuple[int | str, ...]:
    """The seed parts of an augmented replay's draws: one integer drawn from the network's ``generator``
    (after its initialisation), so the loop and the ensemble, given the same generators, draw the same
    augmentations, and every network its own."""
    return (int(torch.randint(0, 2**62, (1,), generator=generator)), "replay")


def train_replay(
    net: nn.Module,
    distilled: DistilledSet,
    augment: Mapping[str, Any] | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Replay the learned schedule: T = steps x epochs graph-free SGD steps with the learned rates and the
    set's inner momentum, by the distillation's own step (``inner_loop.replay``). Without ``augment`` the
    replayed weights equal the unroll's final weights (``tests/evaluation/test_engine.py``). ``augment``
    (``eval.replay_augment``: a DSA node) draws every step's distilled batch through the augmentation with
    this network's own draws (:func:`replay_seed_parts` of ``generator``, required then). Raises
    ``FloatingPointError`` on a non-finite loss and ``ValueError`` for an augmentation without a generator."""
    from gastrodistill.distillation.inner_loop import replay

    aug = augmenter(augment)
    if aug is None:
        return replay(net, distilled)
    if generator is None:
        raise ValueError("an augmented replay (eval.replay_augment) needs the network's generator")
    return replay(net, distilled, augment=aug, seed_parts=replay_seed_parts(generator))


@torch.no_grad()
def learned_nothing(net: nn.Module) -> nn.Module:
    """Set every parameter of ``net`` to 0, in place, and return it: every layer then outputs 0, so the
    logits are 0 and the predicted probabilities uniform (1/K) for any input. This is how a network whose
    training diverged is scored (chance-level metrics) instead of ending the study."""
    for p in net.parameters():
        p.zero_()
    return net


def small_set_steps(n: int, schedule: StandardSchedule) -> tuple[int, int]:
    """(batch size, total optimiser steps) of the standard schedule on ``n`` images."""
    bs = n if schedule.batch_size <= 0 else min(schedule.batch_size, n)
    return bs, schedule.epochs * math.ceil(n / bs)


def train_small_set(
    net: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    schedule: StandardSchedule,
    generator: torch.Generator,
) -> nn.Module:
    """Train on a small in-memory set (soft ``[N, K]`` or hard ``[N]`` targets) with the standard recipe.

    The reference for :func:`gastrodistill.evaluation.ensemble.train_small_sets`: per epoch one
    permutation from ``generator`` (when batches are smaller than the set), per batch the augmentation
    draws of :func:`augment_small`.
    """
    dev = device_of(net)
    images, targets = images.detach().to(dev), targets.detach().to(dev)
    n = len(images)
    bs, total = small_set_steps(n, schedule)
    opt = make_optimizer(
        net.parameters(), schedule.optimizer, schedule.lr, schedule.momentum, schedule.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if schedule.cosine else None
    net.train()
    for epoch in range(schedule.epochs):
        order = torch.randperm(n, generator=generator) if bs < n else torch.arange(n)
        for start in range(0, n, bs):
            idx = order[start : start + bs].to(dev)
            xb = augment_small(images[idx], schedule, generator)
            opt.zero_grad(set_to_none=True)
            with schedule.autocast(dev):
                loss = soft_cross_entropy(net(xb), targets[idx])
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"standard schedule epoch {epoch}: loss is {loss.item()}; lower eval lr"
                )
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
    return net


def distilled_tensors(distilled: DistilledSet) -> tuple[torch.Tensor, torch.Tensor]:
    """All distilled images and their targets (soft probabilities, or one-hot in hard mode), detached."""
    with torch.no_grad():
        return distilled.images.detach().clone(), distilled.soft_targets().detach().clone()


def train_on_distilled(
    distilled: DistilledSet,
    spec: NetSpec,
    schedule: str,
    generator: torch.Generator,
    standard: StandardSchedule | None = None,
    replay_augment: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A fresh network trained on ``distilled`` with the ``replay`` (augmented by ``replay_augment`` when
    given) or ``standard`` schedule."""
    return train_built_on_distilled(
        spec.build(generator), distilled, schedule, generator, standard, replay_augment
    )


def train_built_on_distilled(
    net: nn.Module,
    distilled: DistilledSet,
    schedule: str,
    generator: torch.Generator,
    standard: StandardSchedule | None = None,
    replay_augment: Mapping[str, Any] | None = None,
) -> nn.Module:
    """:func:`train_on_distilled` of a network already built from ``generator`` (in place): a caller that
    keeps the network when its training diverges (``ensemble.train_or_learned_nothing``) builds it first."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule {schedule!r} unknown; use one of {SCHEDULES}")
    if schedule == "replay":
        return train_replay(net, distilled, replay_augment, generator)
    x, y = distilled_tensors(distilled)
    return train_small_set(net, x, y, standard or StandardSchedule(), generator)


def in_memory_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator
) -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
    """One shuffled pass over in-memory tensors ``x`` ``[N, ...]``, ``y`` ``[N]`` (audit shadow networks)."""
    order = torch.randperm(len(x), generator=generator)
    for start in range(0, len(x), batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
