"""Many fresh networks of one setting trained and scored together with ``torch.func``.

The E networks' weights are stacked (``torch.func.stack_module_state``: every parameter becomes one
leaf ``[E, ...]``) and one forward pass runs all of them (``vmap`` over ``functional_call`` of a
weightless copy of the architecture). Training is the loop's, network by network:

* standard schedule: one optimiser over the stacked leaves. SGD (momentum, weight decay), Adam and
  AdamW update every element on its own, and the summed loss gives each network exactly its own
  gradient, so each member follows the loop's trajectory; per-network permutations and augmentations
  come from the per-network generators in the loop's order;
* replay: T graph-free SGD steps, the gradients of all members from one ``vmap(grad(...))`` (with an
  augmented replay each member gets its own augmented batch, drawn as the loop draws it).

Where an architecture cannot be vmapped (batch norm with running statistics, dropout, an operation
without a batching rule) :func:`supports_ensemble` says no and the caller falls back to the loop of
:mod:`gastrodistill.evaluation.fresh_training`, which is also the reference the tests compare against.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, grad, stack_module_state, vmap

from gastrodistill.distillation.inner_loop import inner_generator
from gastrodistill.evaluation.fresh_training import (
    StandardSchedule,
    augment_small,
    augmenter,
    learned_nothing,
    make_optimizer,
    replay_momentum,
    replay_seed_parts,
    small_set_steps,
)

if TYPE_CHECKING:
    from gastrodistill.distillation.distilled_set import DistilledSet


class Ensemble:
    """E networks of one architecture as stacked weights; :meth:`forward` runs all of them at once."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        if not nets:
            raise ValueError("an ensemble needs at least one network")
        self.nets = list(nets)
        self.base = copy.deepcopy(self.nets[0]).to("meta")
        params, buffers = stack_module_state(self.nets)
        self.params: dict[str, Tensor] = params
        self.buffers: dict[str, Tensor] = buffers

    def __len__(self) -> int:
        return len(self.nets)

    def _call(self, params: dict[str, Tensor], buffers: dict[str, Tensor], x: Tensor) -> Tensor:
        return functional_call(self.base, (params, buffers), (x,))

    def forward(self, x: Tensor, params: dict[str, Tensor] | None = None) -> Tensor:
        """Logits ``[E, B, K]`` of a shared batch ``[B, C, H, W]`` or per-network ``[E, B, C, H, W]``."""
        p = self.params if params is None else params
        in_x = 0 if x.dim() == 5 else None
        return vmap(self._call, in_dims=(0, 0, in_x))(p, self.buffers, x)

    __call__ = forward

    @torch.no_grad()
    def unstack(self) -> list[nn.Module]:
        """Write the stacked weights back into the member networks and return them (in eval mode)."""
        for i, net in enumerate(self.nets):
            for name, p in net.named_parameters():
                p.copy_(self.params[name][i])
            for name, b in net.named_buffers():
                b.copy_(self.buffers[name][i])
            net.eval()
        return self.nets


def supports_ensemble(net: nn.Module, image_shape: Sequence[int]) -> bool:
    """Whether ``net``'s architecture trains identically under ``vmap``: no running statistics or dropout,
    and a forward and backward pass of two stacked copies works."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            return False
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return False
    try:
        ens = Ensemble([net, copy.deepcopy(net)])
        dev = next(net.parameters()).device
        x = torch.zeros(2, *image_shape, device=dev)
        out = ens.forward(x)
        out.sum().backward()
    except Exception:  # noqa: BLE001 - any failure to batch means: use the loop
        return False
    return True


def trains_as_ensemble(schedule: StandardSchedule) -> bool:
    """Whether :func:`train_small_sets` can train ``schedule``: float32 only, because autocast does not reach
    inside ``torch.func.vmap`` (measured on the CPU, torch 2.13: vmapped logits stay float32). The study
    trains other precisions network by network (``Study.train_setting``)."""
    return schedule.precision == "32-true"


def train_small_sets(
    nets: Sequence[nn.Module],
    sets: Sequence[tuple[Tensor, Tensor]],
    schedule: StandardSchedule,
    generators: Sequence[torch.Generator],
) -> list[nn.Module]:
    """Each ``nets[i]`` trained on ``sets[i]`` (images ``[N, C, H, W]``, targets ``[N, K]`` or ``[N]``) with
    the standard recipe and ``generators[i]``, all at once; equals
    ``[train_small_set(n, x, y, schedule, g) for ...]`` up to float rounding. Every set has the same N.
    Raises ``FloatingPointError`` naming the network whose loss is not finite, and ``ValueError`` for a
    ``bf16-mixed`` schedule: autocast does not reach inside ``vmap`` (torch 2.13), so such a schedule
    trains in the loop (:meth:`gastrodistill.evaluation.study.Study.train_setting` chooses it).
    """
    if not trains_as_ensemble(schedule):
        raise ValueError(
            f"ensembles train in float32 only (autocast does not apply under vmap); precision "
            f"{schedule.precision!r} needs the loop (fresh_training.train_small_set)"
        )
    if not (len(nets) == len(sets) == len(generators)):
        raise ValueError(f"{len(nets)} networks, {len(sets)} sets and {len(generators)} generators")
    ens = Ensemble(nets)
    dev = next(nets[0].parameters()).device
    xs = [x.detach().to(dev) for x, _ in sets]
    ys = [y.detach().to(dev) for _, y in sets]
    n = len(xs[0])
    if any(len(x) != n for x in xs):
        raise ValueError(f"ensemble sets must have equal sizes, got {[len(x) for x in xs]}")
    bs, total = small_set_steps(n, schedule)
    leaves = list(ens.params.values())
    opt = make_optimizer(leaves, schedule.optimizer, schedule.lr, schedule.momentum, schedule.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total) if schedule.cosine else None
    e = len(nets)
    shared = (
        schedule.augments is False
        and bs == n
        and all(x.data_ptr() == xs[0].data_ptr() and x.shape == xs[0].shape for x in xs)
    )
    for epoch in range(schedule.epochs):
        orders = [torch.randperm(n, generator=g) if bs < n else torch.arange(n) for g in generators]
        for start in range(0, n, bs):
            idx = [o[start : start + bs].to(dev) for o in orders]
            if shared:
                xb = xs[0]
            else:
                xb = torch.stack(
                    [augment_small(x[i], schedule, g) for x, i, g in zip(xs, idx, generators, strict=True)]
                )
            yb = torch.stack([y[i] for y, i in zip(ys, idx, strict=True)])  # [E, B] or [E, B, K]
            logits = ens.forward(xb)  # [E, B, K]
            per = (
                F.cross_entropy(logits.flatten(0, 1), yb.flatten(0, 1), reduction="none").view(e, -1).mean(1)
            )
            if not torch.isfinite(per).all():
                bad = torch.nonzero(~torch.isfinite(per)).flatten().tolist()
                raise FloatingPointError(
                    f"standard schedule epoch {epoch}: loss of network(s) {bad} not finite; lower eval lr"
                )
            opt.zero_grad(set_to_none=True)
            per.sum().backward()
            opt.step()
            if sched is not None:
                sched.step()
    return ens.unstack()


def train_replays(
    nets: Sequence[nn.Module],
    distilled: DistilledSet,
    augment: Mapping[str, Any] | None = None,
    generators: Sequence[torch.Generator] | None = None,
) -> list[nn.Module]:
    """Each network trained by the replay of ``distilled`` (T graph-free SGD steps with the learned rates
    and the set's inner momentum, torch's SGD convention), all at once; equals ``train_replay`` per network
    (with the same ``augment`` and ``generators[i]``) up to float rounding. With ``augment`` every network
    draws its own augmentation of each step's batch. Raises ``ValueError`` for an augmentation without one
    generator per network."""
    aug = augmenter(augment)
    if aug is not None and (generators is None or len(generators) != len(nets)):
        raise ValueError("an augmented replay needs one generator per network")
    seeds = [replay_seed_parts(g) for g in generators] if aug is not None and generators else []
    ens = Ensemble(nets)
    dev = next(nets[0].parameters()).device
    params = {k: v.detach() for k, v in ens.params.items()}
    momentum = replay_momentum(distilled)
    velocity: dict[str, Tensor] | None = None

    def loss_fn(p: dict[str, Tensor], b: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(functional_call(ens.base, (p, b), (x,)), y)

    x_dim = 0 if seeds else None  # augmented: one batch per network
    grad_all = vmap(grad(loss_fn), in_dims=(0, 0, x_dim, None))
    loss_all = vmap(loss_fn, in_dims=(0, 0, x_dim, None))
    lrs = distilled.lrs().detach().cpu().tolist()
    with torch.no_grad():
        for t, lr in enumerate(lrs):
            x, y = distilled.batch(t)
            x, y = x.detach().to(dev), y.detach().to(dev)
            if seeds:
                x = torch.stack([aug(x, inner_generator(s, t)) for s in seeds])
            with torch.enable_grad():
                g = grad_all(params, ens.buffers, x, y)
            if t == 0 or t == len(lrs) - 1:
                losses = loss_all(params, ens.buffers, x, y)
                if not torch.isfinite(losses).all():
                    raise FloatingPointError(
                        f"replay step {t}: a network's loss is not finite; the set is unusable"
                    )
            if momentum:
                velocity = g if velocity is None else {k: momentum * velocity[k] + g[k] for k in g}
                step = velocity
            else:
                step = g
            params = {k: params[k].add(step[k], alpha=-float(lr)) for k in params}
    ens.params = params
    return ens.unstack()


def check_finite(nets: Sequence[nn.Module]) -> None:
    """Raise ``FloatingPointError`` if a trained network holds a non-finite weight."""
    for i, net in enumerate(nets):
        for name, p in net.named_parameters():
            if not torch.isfinite(p).all():
                raise FloatingPointError(f"network {i}: weight {name} is not finite")


def train_or_learned_nothing(
    train: Callable[[nn.Module], nn.Module], net: nn.Module
) -> tuple[nn.Module, str | None]:
    """``(train(net), None)``, or, when its training loss turns non-finite or its weights end non-finite
    after a last finite loss (``FloatingPointError``, :func:`check_finite`), ``(net, why)`` with ``net``
    made a network that learned nothing (:func:`learned_nothing`: uniform predictions). The one way a
    diverged network is scored: by the evaluate stage and by a receiving site."""
    try:
        trained = train(net)
        check_finite([trained])  # the last step's update can overflow after a finite loss
        return trained, None
    except FloatingPointError as exc:
        return learned_nothing(net), str(exc)


__all__ = [
    "Ensemble",
    "check_finite",
    "supports_ensemble",
    "train_or_learned_nothing",
    "train_replays",
    "train_small_sets",
]
