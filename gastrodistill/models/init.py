"""Seeded (re-)initialisation of a network: inner networks of distillation are sampled from p(θ) with this.

Using an explicit ``torch.Generator`` (never the global RNG) makes every sampled network a pure function
of its seed, so multi-GPU ranks, resumed runs and tests draw exactly the same weights.
"""

from __future__ import annotations

import torch
from torch import nn

SCHEMES = ("xavier", "kaiming")

_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.InstanceNorm2d, nn.LayerNorm)


def check_scheme(scheme: str) -> str:
    """``scheme`` when it is one of :data:`SCHEMES`; raises ``ValueError`` naming them otherwise."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    return scheme


@torch.no_grad()
def initialize(model: nn.Module, scheme: str, generator: torch.Generator) -> nn.Module:
    """Re-initialise ``model`` in place (conv/linear weights Xavier- or Kaiming-normal, biases 0, norms 1/0).

    Modules are visited in registration order, so the result depends only on the generator's state.
    A weight on another device than ``generator`` (a CUDA network, a CPU generator) is drawn on the
    generator's device and copied, so a network gets the same weights on every device. A network built on
    the ``meta`` device (shapes only, to count parameters without allocating them) is left as it is.
    """
    check_scheme(scheme)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            w = m.weight
            if w.is_meta:  # no values to draw; drawing them on the generator's device would allocate them
                continue
            if w.device != generator.device:
                w = torch.empty(w.shape, dtype=w.dtype, device=generator.device)
            if scheme == "xavier":
                nn.init.xavier_normal_(w, gain=1.0, generator=generator)
            else:
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
            if w is not m.weight:
                m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, _NORMS) and getattr(m, "weight", None) is not None:
            m.weight.fill_(1.0)
            m.bias.zero_()
    return model
