"""A network's penultimate representation: the input of its last ``nn.Linear`` (every family ends in one)."""

from __future__ import annotations

from torch import Tensor, nn

from gastrodistill.models.layers import ModelConfigError


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` (its classifier). Raises ``ModelConfigError`` when it has none."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ModelConfigError(
            f"{type(model).__name__} has no nn.Linear classifier; the feature space is the input "
            "to the last linear layer"
        )
    return linears[-1]


def penultimate_features(model: nn.Module, x: Tensor) -> Tensor:
    """The input of ``model``'s last ``nn.Linear`` for images ``x`` ``[B, C, H, W]``, flattened: ``[B, D]``.

    Differentiable (gradients reach ``x`` and the weights); the caller sets train/eval mode and no_grad.
    Raises ``ModelConfigError`` when the model has no linear layer.
    """
    seen: list[Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[-1].flatten(1)
