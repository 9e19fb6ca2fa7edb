"""The differentiable inner loop: T SGD steps of a network on the distilled set, then its loss on real data.

Two backends behind one function, :func:`outer_loss`, giving the same meta-gradients:

* ``"higher"``: ``higher.innerloop_ctx`` with a plain differentiable SGD, the step's learning rate
  passed through ``override`` and ``copy_initial_weights=False``. Quirk: with that flag the template
  network's own ``.grad`` fills during the outer backward (the initial weights are graph leaves); the
  template is a throw-away network here, and :func:`outer_loss` callers clear it with
  :func:`release_template`.
* ``"func"``: ``torch.func.functional_call`` over a dict of weights, each step
  ``θ ← θ − lr·∇θ L`` with ``torch.autograd.grad(create_graph=True)``. With ``checkpoint=True`` each
  step runs under ``torch.utils.checkpoint`` (non-reentrant): only the weights between steps are kept
  and a step's activations are recomputed during the backward pass.

The sampled network's initial weights are never written: the ``func`` backend starts from detached
aliases and builds new tensors; ``higher`` builds new fast weights from the template.

:func:`sgd_step` is a plain, graph-free step for training fresh networks on a distilled set.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call
from torch.utils.checkpoint import checkpoint as activation_checkpoint

BACKENDS = ("higher", "func")


def check_backend(backend: str, checkpoint: bool) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"unknown inner-loop backend {backend!r}: use 'higher' or 'func'")
    if checkpoint and backend != "func":
        raise ValueError("activation checkpointing needs backend='func' (higher keeps every step's graph)")


def _sgd_graph_step(
    net: nn.Module,
    names: Sequence[str],
    buffers: dict[str, Tensor],
    x: Tensor,
    target: Tensor,
    lr: Tensor,
    *weights: Tensor,
) -> tuple[Tensor, ...]:
    """One SGD step on flat weights; returns the new weights.

    The higher-order graph is built only where gradients are being recorded: in a plain unroll, and when
    checkpointing recomputes the step during the backward pass. Under ``no_grad`` (the first, discarded pass
    of a checkpointed step, or plain evaluation) the step's own gradient is computed without it.
    """
    create_graph = torch.is_grad_enabled()
    with torch.enable_grad():  # the inner gradient is needed even when the caller only evaluates
        params = {**dict(zip(names, weights, strict=True)), **buffers}
        loss = F.cross_entropy(functional_call(net, params, (x,)), target)
        grads = torch.autograd.grad(loss, weights, create_graph=create_graph, allow_unused=True)
        return tuple(w if g is None else w - lr * g for w, g in zip(weights, grads, strict=True))


def unroll_func(net: nn.Module, distilled: nn.Module, checkpoint: bool = False) -> dict[str, Tensor]:
    """The weights after T differentiable SGD steps on ``distilled`` (``torch.func`` backend)."""
    names = [n for n, _ in net.named_parameters()]
    buffers = dict(net.named_buffers())
    weights = tuple(
        p.detach().requires_grad_(True) for _, p in net.named_parameters()
    )  # aliases, never written
    lrs = distilled.lrs()
    for t in range(distilled.num_inner_steps):
        x, target = distilled.batch(t)
        if checkpoint:
            # Reentrant checkpointing: the forward keeps only the step's inputs; the non-reentrant variant
            # keeps the tensors that the inner autograd.grad unpacks, so it saves no memory here.
            weights = activation_checkpoint(
                _sgd_graph_step,
                net,
                names,
                buffers,
                x,
                target,
                lrs[t],
                *weights,
                use_reentrant=True,
                preserve_rng_state=False,
            )
        else:
            weights = _sgd_graph_step(net, names, buffers, x, target, lrs[t], *weights)
    return dict(zip(names, weights, strict=True))


def outer_loss(
    net: nn.Module,
    distilled: nn.Module,
    x_real: Tensor,
    y_real: Tensor,
    backend: str = "func",
    checkpoint: bool = False,
) -> tuple[Tensor, Tensor]:
    """Unroll T steps from ``net``'s weights on the distilled set; return (CE on the real batch, its logits).

    The loss is differentiable w.r.t. the distilled images, label logits and raw learning rates.
    """
    check_backend(backend, checkpoint)
    if backend == "func":
        weights = unroll_func(net, distilled, checkpoint)
        logits = functional_call(net, ({**weights, **dict(net.named_buffers())}), (x_real,))
        return F.cross_entropy(logits, y_real), logits
    import higher

    lrs = distilled.lrs()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)  # the real lr of each step comes through `override`
    with higher.innerloop_ctx(net, opt, copy_initial_weights=False, track_higher_grads=True) as (
        fnet,
        diffopt,
    ):
        for t in range(distilled.num_inner_steps):
            x, target = distilled.batch(t)
            diffopt.step(F.cross_entropy(fnet(x), target), override={"lr": [lrs[t]]})
        logits = fnet(x_real)
    return F.cross_entropy(logits, y_real), logits


def release_template(net: nn.Module) -> None:
    """Drop the ``.grad`` that ``higher`` (copy_initial_weights=False) accumulates on the template network."""
    for p in net.parameters():
        p.grad = None


@torch.no_grad()
def _apply_sgd(model: nn.Module, lr: float) -> None:
    for p in model.parameters():
        if p.grad is not None:
            p.add_(p.grad, alpha=-lr)


def sgd_step(model: nn.Module, x: Tensor, targets: Tensor, lr: float) -> float:
    """One plain (no higher-order graph) SGD step with CE on ``targets`` (class indices or probabilities).

    For training fresh networks on a distilled set: ``for t in range(T): x, p = ds.batch(t);
    sgd_step(net, x.detach(), p.detach(), float(ds.lrs()[t]))``. Returns the loss before the step.
    """
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), targets)
    loss.backward()
    _apply_sgd(model, lr)
    model.zero_grad(set_to_none=True)
    return float(loss.detach())
