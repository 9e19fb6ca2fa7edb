"""The differentiable inner loop: T SGD steps of a network on the distilled set, then its loss on real data.

Two backends behind one function, :func:`meta_objective` (and its older face :func:`outer_loss`), giving
the same meta-gradients:

* ``"higher"``: ``higher.innerloop_ctx`` with a differentiable SGD (momentum included), the step's
  learning rate passed through ``override`` and ``copy_initial_weights=False``. Quirk: with that flag the
  template network's own ``.grad`` fills during the outer backward (the initial weights are graph leaves);
  the template is a throw-away network here, and callers clear it with :func:`release_template`.
* ``"func"``: ``torch.func.functional_call`` over a dict of weights, each step
  ``v ← μ·v + ∇θ L;  θ ← θ − lr·v`` (``v = ∇θ L`` when μ = 0) with
  ``torch.autograd.grad(create_graph=True)``. With ``checkpoint=True`` each step runs under
  ``torch.utils.checkpoint``: only the weights (and velocities) between steps are kept and a step's
  activations are recomputed during the backward pass.

Options beyond the 2018-2020 recipe (each off by default):

* inner momentum μ (Deng & Russakovsky, NeurIPS 2022, "Remember the past"): PyTorch's SGD convention
  without dampening, ``v₁ = g₀``; the receiving site replays it with :func:`replay`;
* a random truncated window (RaT-BPTT, Feng, Vedantam & Kempe, ICLR 2024): the steps before the window run
  without a graph on detached distilled tensors, then ``W`` differentiable steps end at ``window_end``
  (drawn by :func:`sample_window_end`); the outer loss is taken there;
* a chunked outer loss: the gradient of the outer loss w.r.t. the final inner weights ``w_T`` is
  accumulated chunk by chunk of the real batch on detached copies of ``w_T``, then one backward runs
  through the unroll (the split of SsnL/dataset-distillation's ``train_distilled_image.backward``), so
  memory does not grow with the real batch;
* differentiable augmentation (DSA) of the distilled batch of every inner step and of the real batch,
  each drawn from its own generator (see :mod:`gastrodistill.distillation.augment`).

The sampled network's initial weights are never written: the ``func`` backend starts from detached
aliases and builds new tensors; ``higher`` builds new fast weights from the template; a graph-free prefix
runs on a deep copy.

:func:`sgd_step` is a plain, graph-free step (with optional momentum); :func:`replay` trains a fresh network
on a distilled set with the learned rates and stored momentum, exactly the update rule of the unroll.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint as activation_checkpoint

from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.utils.seeding import torch_generator

BACKENDS = ("higher", "func")

#: ``augment(x, generator) -> x'``: a label-preserving, differentiable augmentation of an image batch.
Augment = Callable[[Tensor, torch.Generator], Tensor]


def is_integer(value: Any) -> bool:
    """A whole number given as an int or an integral float (not a bool, a string or a fraction)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value) and int(value) == value


def check_backend(backend: str, checkpoint: bool) -> None:
    """Raise ``ValueError`` for an unknown backend, or checkpointing with ``higher``."""
    if backend not in BACKENDS:
        raise DistillConfigError(
            f"distill.backend: unknown inner-loop backend {backend!r}; use 'higher' or 'func'"
        )
    if checkpoint and backend != "func":
        raise DistillConfigError(
            "distill.checkpoint: activation checkpointing needs distill.backend=func (higher keeps every "
            "step's graph)"
        )


def check_momentum(momentum: float) -> float:
    """``momentum`` as a float in [0, 1); ``ValueError`` naming ``distill.inner_momentum`` otherwise."""
    try:
        m = math.nan if isinstance(momentum, bool) else float(momentum)
    except (TypeError, ValueError):
        m = math.nan
    if not (0.0 <= m < 1.0) or not math.isfinite(m):
        raise DistillConfigError(f"distill.inner_momentum must be in [0, 1), got {momentum!r}")
    return m


def check_window(window: int | None, num_steps: int) -> int:
    """The number of differentiable steps: ``window`` (1 <= W <= T) or T when ``window`` is None."""
    if window is None:
        return num_steps
    if not is_integer(window) or not 1 <= window <= num_steps:
        raise DistillConfigError(
            f"distill.window must be an integer in [1, T={num_steps}] (T = steps * epochs) or null, "
            f"got {window!r}"
        )
    return int(window)


def sample_window_end(num_steps: int, window: int | None, generator: torch.Generator) -> int:
    """RaT-BPTT's end point: uniform on the integers ``[W, T]`` (T when ``window`` is None or W = T).

    The outer loss is taken after ``end`` inner steps; steps ``[end - W, end)`` are differentiable.
    Feng, Vedantam & Kempe (ICLR 2024), Alg. 1: the unroll length is drawn uniformly in ``[W, T]`` and
    only its last ``W`` steps are back-propagated.
    """
    w = check_window(window, num_steps)
    if w == num_steps:
        return num_steps
    return int(torch.randint(w, num_steps + 1, (1,), generator=generator))


def inner_generator(seed_parts: Sequence[int | str], t: int) -> torch.Generator:
    """The generator of inner step ``t``'s augmentation draws (the unroll's and an augmented replay's)."""
    return torch_generator(*seed_parts, "inner", t)


def _real_generator(seed_parts: Sequence[int | str]) -> torch.Generator:
    return torch_generator(*seed_parts, "real")


def _inner_batch(
    distilled: nn.Module, t: int, augment: Augment | None, seed_parts: Sequence[int | str]
) -> tuple[Tensor, Tensor]:
    """(images, targets) of inner step ``t``, augmented with the generator of (seed_parts, t) if asked."""
    x, target = distilled.batch(t)
    if augment is not None:
        x = augment(x, inner_generator(seed_parts, t))
    return x, target


# ---- graph-free steps ---------------------------------------------------------------------------------
@torch.no_grad()
def _apply_sgd(model: nn.Module, lr: float, momentum: float, velocity: dict[str, Tensor] | None) -> None:
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        step = p.grad
        if momentum:
            if velocity is None:
                raise ValueError(
                    "sgd_step with momentum > 0 needs a velocity dict (pass {} on the first step)"
                )
            v = velocity.get(name)
            step = velocity[name] = p.grad.clone() if v is None else v.mul_(momentum).add_(p.grad)
        p.add_(step, alpha=-lr)


def sgd_step(
    model: nn.Module,
    x: Tensor,
    targets: Tensor,
    lr: float,
    momentum: float = 0.0,
    velocity: dict[str, Tensor] | None = None,
) -> float:
    """One plain (no higher-order graph) SGD step with CE on ``targets`` (class indices or probabilities).

    ``x``: ``[B, C, H, W]``; ``targets``: ``[B]`` class indices or ``[B, K]`` probabilities. With
    ``momentum`` μ > 0: ``v ← μ·v + g`` (``v = g`` on the first step), ``θ ← θ − lr·v``, where ``velocity``
    maps parameter names to ``v`` and is updated in place (pass the same dict every step, ``{}`` first).
    Returns the loss before the step. Raises ``ValueError`` for μ > 0 without a velocity dict.
    """
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():  # also under a caller's no_grad
        loss = F.cross_entropy(model(x), targets)
        loss.backward()
    _apply_sgd(model, lr, momentum, velocity)
    model.zero_grad(set_to_none=True)
    return float(loss.detach())


def _plain_steps(
    net: nn.Module,
    distilled: nn.Module,
    stop: int,
    momentum: float,
    velocity: dict[str, Tensor],
    augment: Augment | None = None,
    seed_parts: Sequence[int | str] = (),
    check_finite: bool = False,
) -> nn.Module:
    """Steps ``[0, stop)`` of the distilled schedule on ``net`` in place, with detached tensors."""
    lrs = distilled.lrs().detach().cpu().tolist()
    p0 = next(net.parameters())
    for t in range(stop):
        x, target = distilled.batch(t)
        x, target = x.detach().to(p0.device, p0.dtype), target.detach().to(p0.device)
        if target.is_floating_point():
            target = target.to(p0.dtype)
        if augment is not None:
            with torch.no_grad():
                x = augment(x, inner_generator(seed_parts, t))
        loss = sgd_step(net, x, target, float(lrs[t]), momentum, velocity)
        if check_finite and not math.isfinite(loss):
            raise FloatingPointError(f"replay step {t}: loss is {loss}; the distilled set is unusable")
    return net


def replay(
    net: nn.Module,
    distilled: nn.Module,
    *,
    steps: int | None = None,
    augment: Augment | None = None,
    seed_parts: Sequence[int | str] = (),
) -> nn.Module:
    """Train ``net`` in place on ``distilled`` with its learned schedule; returns ``net``.

    T = steps × epochs graph-free SGD steps (``steps`` overrides T), the learning rates ``distilled.lrs()``
    and the momentum ``distilled.inner_momentum`` (0 for sets that predate it): the same update rule as the
    differentiable unroll. Without ``augment`` it is the unroll's trajectory exactly; with it, step t's
    distilled batch is drawn through ``augment`` with the generator of ``(*seed_parts, "inner", t)``, as the
    unroll draws it (so the same ``seed_parts`` give the unroll's own draws). The distilled tensors are
    moved to ``net``'s device and dtype. Raises ``FloatingPointError`` naming the step when a loss is not
    finite.
    """
    momentum = check_momentum(getattr(distilled, "inner_momentum", 0.0))
    net.train()
    total = distilled.num_inner_steps if steps is None else int(steps)
    return _plain_steps(net, distilled, total, momentum, {}, augment, seed_parts, check_finite=True)


# ---- differentiable steps (func backend) -------------------------------------------------------------
def _func_graph_step(
    net: nn.Module,
    names: Sequence[str],
    buffers: dict[str, Tensor],
    x: Tensor,
    target: Tensor,
    lr: Tensor,
    momentum: float,
    *state: Tensor,
) -> tuple[Tensor, ...]:
    """One SGD step on flat weights (``state`` = weights, then velocities when μ > 0); the new state.

    The higher-order graph is built only where gradients are being recorded: in a plain unroll, and when
    checkpointing recomputes the step during the backward pass. Under ``no_grad`` (the first, discarded pass
    of a checkpointed step, or plain evaluation) the step's own gradient is computed without it.
    """
    create_graph = torch.is_grad_enabled()
    n = len(names)
    weights, velocities = state[:n], state[n:]
    with torch.enable_grad():  # the inner gradient is needed even when the caller only evaluates
        params = {**dict(zip(names, weights, strict=True)), **buffers}
        loss = F.cross_entropy(functional_call(net, params, (x,)), target)
        grads = torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True)
        if not momentum:
            return tuple(w if g is None else w - lr * g for w, g in zip(weights, grads, strict=True))
        new_v = tuple(v if g is None else momentum * v + g for v, g in zip(velocities, grads, strict=True))
        new_w = tuple(w if g is None else w - lr * v for w, v, g in zip(weights, new_v, grads, strict=True))
        return (*new_w, *new_v)


def unroll_func(
    net: nn.Module,
    distilled: nn.Module,
    checkpoint: bool = False,
    *,
    momentum: float = 0.0,
    start: int = 0,
    stop: int | None = None,
    velocity: dict[str, Tensor] | None = None,
    augment: Augment | None = None,
    seed_parts: Sequence[int | str] = (),
) -> dict[str, Tensor]:
    """The weights after differentiable SGD steps ``[start, stop)`` on ``distilled`` (``torch.func`` backend).

    Starts from ``net``'s weights (and ``velocity``, name → tensor, zeros when missing), which are the
    weights after step ``start``; ``stop`` defaults to T.
    """
    names = [n for n, _ in net.named_parameters()]
    buffers = dict(net.named_buffers())
    weights = tuple(p.detach().requires_grad_(True) for _, p in net.named_parameters())  # never written
    velocity = velocity or {}
    velocities = (
        tuple(
            velocity[n].detach() if n in velocity else torch.zeros_like(w)
            for n, w in zip(names, weights, strict=True)
        )
        if momentum
        else ()
    )
    state = (*weights, *velocities)
    lrs = distilled.lrs()
    stop = distilled.num_inner_steps if stop is None else stop
    for t in range(start, stop):
        x, target = _inner_batch(distilled, t, augment, seed_parts)
        if checkpoint:
            # Reentrant checkpointing: the forward keeps only the step's inputs; the non-reentrant variant
            # keeps the tensors that the inner autograd.grad unpacks, so it saves no memory here.
            state = activation_checkpoint(
                _func_graph_step,
                net,
                names,
                buffers,
                x,
                target,
                lrs[t],
                momentum,
                *state,
                use_reentrant=True,
                preserve_rng_state=False,
            )
        else:
            state = _func_graph_step(net, names, buffers, x, target, lrs[t], momentum, *state)
    return dict(zip(names, state[: len(names)], strict=True))


# ---- the outer objective -------------------------------------------------------------------------------
@dataclass
class MetaResult:
    """What one unroll and its outer loss give.

    ``loss``: the outer cross-entropy (detached scalar); ``acc``: the final network's accuracy on the real
    batch (detached scalar); ``surrogate``: a scalar whose gradient w.r.t. the distilled tensors is the
    meta-gradient of ``loss`` (``loss`` itself, with its graph, for an unchunked loss; otherwise
    ``Σ ⟨w_T, ∂L/∂w_T⟩``, see :func:`_chunked_outer`); ``surrogate.backward()`` (or Lightning's
    ``manual_backward``) runs the one backward pass through the unroll.
    """

    loss: Tensor
    acc: Tensor
    surrogate: Tensor
    logits: Tensor | None = None  # [N, K], with its graph; only for an unchunked loss


def _chunked_outer(
    forward: Callable[[Tensor, Sequence[Tensor]], Tensor],
    final: Sequence[Tensor],
    x_real: Tensor,
    y_real: Tensor,
    chunk: int,
) -> MetaResult:
    """The outer loss over the real batch in chunks of ``chunk`` images, then one backward's worth.

    For each chunk c of n_c images: CE_c·(n_c/N) on detached leaf copies of the final weights, its gradient
    w.r.t. the copies accumulated (``torch.autograd.grad``); the chunk's graph is freed at once. The
    returned surrogate ``Σ_i ⟨w_T,i, G_i⟩`` (G the accumulated gradient, a constant) back-propagates exactly
    ``torch.autograd.backward(w_T, G)``: one pass through the unroll, as SsnL/dataset-distillation splits
    the outer gradient from the unroll's backward. Memory holds one chunk's activations at a time.
    Networks with batch statistics (``norm=batch``) normalise per chunk, so their loss depends on ``chunk``.
    """
    n = len(y_real)
    leaves = [w.detach().requires_grad_(True) for w in final]
    grads: list[Tensor | None] = [None] * len(leaves)
    total = torch.zeros((), dtype=torch.float64, device=x_real.device)
    correct = torch.zeros((), dtype=torch.long, device=x_real.device)
    for s in range(0, n, chunk):
        xc, yc = x_real[s : s + chunk], y_real[s : s + chunk]
        with torch.enable_grad():
            logits = forward(xc, leaves)
            part = F.cross_entropy(logits, yc) * (len(yc) / n)
            gs = torch.autograd.grad(part, leaves, allow_unused=True)
        for i, g in enumerate(gs):
            if g is not None:
                grads[i] = g if grads[i] is None else grads[i] + g
        total += part.detach().double()
        correct += (logits.detach().argmax(1) == yc).sum()
    terms = [(w * g).sum() for w, g in zip(final, grads, strict=True) if g is not None and w.requires_grad]
    surrogate = torch.stack(terms).sum() if terms else torch.zeros((), device=x_real.device)
    return MetaResult(total.to(x_real.dtype), correct.double().div(n).to(x_real.dtype), surrogate)


def _whole_outer(
    forward: Callable[[Tensor, Sequence[Tensor]], Tensor],
    final: Sequence[Tensor],
    x_real: Tensor,
    y_real: Tensor,
) -> MetaResult:
    logits = forward(x_real, final)
    loss = F.cross_entropy(logits, y_real)
    acc = (logits.detach().argmax(1) == y_real).to(x_real.dtype).mean()
    return MetaResult(loss.detach(), acc, loss, logits)


def check_chunk(chunk: int | None) -> int | None:
    """``distill.outer_chunk`` as an int >= 1, or None (no chunking); ``DistillConfigError`` otherwise."""
    if chunk is None:
        return None
    if not is_integer(chunk) or chunk < 1:
        raise DistillConfigError(f"distill.outer_chunk must be a positive integer or null, got {chunk!r}")
    return int(chunk)


def meta_objective(
    net: nn.Module,
    distilled: nn.Module,
    x_real: Tensor,
    y_real: Tensor,
    backend: str = "func",
    checkpoint: bool = False,
    *,
    window: int | None = None,
    window_end: int | None = None,
    outer_chunk: int | None = None,
    augment: Augment | None = None,
    augment_real: bool = True,
    seed_parts: Sequence[int | str] = (),
) -> MetaResult:
    """Unroll the distilled schedule from ``net``'s weights, take the outer loss on ``(x_real, y_real)``.

    ``x_real``: ``[N, C, H, W]``, ``y_real``: ``[N]`` class indices. The momentum is
    ``distilled.inner_momentum``. With ``window`` W, steps ``[0, window_end − W)`` run graph-free on a copy
    of ``net`` and steps ``[window_end − W, window_end)`` are differentiable (``window_end`` defaults to T;
    draw it with :func:`sample_window_end`). ``outer_chunk``: real images per chunk of the outer loss (None:
    the whole batch at once). ``augment``: applied to every inner step's distilled batch (generator of
    ``(*seed_parts, "inner", t)``) and, with ``augment_real``, to the real batch (``(*seed_parts, "real")``).
    The meta-gradient is ``result.surrogate``'s; callers of the ``higher`` backend then call
    :func:`release_template`. Raises ``ValueError`` for bad options.
    """
    check_backend(backend, checkpoint)
    momentum = check_momentum(getattr(distilled, "inner_momentum", 0.0))
    chunk = check_chunk(outer_chunk)
    T = distilled.num_inner_steps
    w = check_window(window, T)
    end = T if window_end is None else int(window_end)
    if not w <= end <= T:
        raise ValueError(f"window_end must be in [W={w}, T={T}], got {window_end!r}")
    start = end - w
    velocity: dict[str, Tensor] = {}
    template = net
    if start > 0:
        template = _plain_steps(copy.deepcopy(net), distilled, start, momentum, velocity, augment, seed_parts)
    if augment is not None and augment_real:
        with torch.no_grad():
            x_real = augment(x_real, _real_generator(seed_parts))

    def finish(forward: Callable[[Tensor, Sequence[Tensor]], Tensor], final: Sequence[Tensor]) -> MetaResult:
        if chunk is None:
            return _whole_outer(forward, final, x_real, y_real)
        return _chunked_outer(forward, final, x_real, y_real, chunk)

    if backend == "func":
        weights = unroll_func(
            template,
            distilled,
            checkpoint,
            momentum=momentum,
            start=start,
            stop=end,
            velocity=velocity,
            augment=augment,
            seed_parts=seed_parts,
        )
        names = list(weights)
        buffers = dict(template.named_buffers())

        def forward(x: Tensor, params: Sequence[Tensor]) -> Tensor:
            return functional_call(template, {**dict(zip(names, params, strict=True)), **buffers}, (x,))

        result = finish(forward, list(weights.values()))
    else:
        result = _higher_objective(
            template, distilled, momentum, start, end, velocity, augment, seed_parts, finish
        )
    if template is not net:
        release_template(template)
    return result


def _higher_objective(
    template: nn.Module,
    distilled: nn.Module,
    momentum: float,
    start: int,
    end: int,
    velocity: dict[str, Tensor],
    augment: Augment | None,
    seed_parts: Sequence[int | str],
    finish: Callable[..., MetaResult],
) -> MetaResult:
    import higher

    lrs = distilled.lrs()
    # The real lr of each step comes through `override`; the velocity of a graph-free prefix enters as the
    # optimizer's momentum buffers, which higher copies into its differentiable optimizer.
    opt = torch.optim.SGD(template.parameters(), lr=1.0, momentum=momentum)
    for name, p in template.named_parameters():
        if name in velocity:
            opt.state[p]["momentum_buffer"] = velocity[name].detach().clone()
    with higher.innerloop_ctx(template, opt, copy_initial_weights=False, track_higher_grads=True) as (
        fnet,
        diffopt,
    ):
        for t in range(start, end):
            x, target = _inner_batch(distilled, t, augment, seed_parts)
            diffopt.step(F.cross_entropy(fnet(x), target), override={"lr": [lrs[t]]})

        def forward(x: Tensor, params: Sequence[Tensor]) -> Tensor:
            return fnet(x, params=list(params))

        return finish(forward, list(fnet.fast_params))


def outer_loss(
    net: nn.Module,
    distilled: nn.Module,
    x_real: Tensor,
    y_real: Tensor,
    backend: str = "func",
    checkpoint: bool = False,
    **options: Any,
) -> tuple[Tensor, Tensor]:
    """(CE on the real batch with its graph, the final network's logits ``[N, K]``): the unchunked objective.

    Differentiable w.r.t. the distilled images, label logits and raw learning rates; ``options`` are those
    of :func:`meta_objective` except ``outer_chunk`` (use :func:`meta_objective` for a chunked loss).
    """
    if options.get("outer_chunk") is not None:
        raise ValueError("outer_loss returns full logits; use meta_objective for a chunked outer loss")
    result = meta_objective(net, distilled, x_real, y_real, backend, checkpoint, **options)
    return result.surrogate, result.logits


def release_template(net: nn.Module) -> None:
    """Drop the ``.grad`` that ``higher`` (copy_initial_weights=False) accumulates on the template network."""
    for p in net.parameters():
        p.grad = None
