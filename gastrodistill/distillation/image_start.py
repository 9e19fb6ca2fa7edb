"""What the image starts before the bi-level loop share (distribution matching, texture matching): their
config sections' checked numbers, and the loop that moves the distilled pixels by a loss."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError


def check_section_keys(section: Mapping[str, Any], key: str, known: Iterable[str]) -> None:
    """Refuse a key of ``section`` (the config section ``key``) that is not one of ``known``: a misspelt
    key added with ``+`` (``+distill.texture_matching.bridgs=1``) would otherwise be recorded and read by
    nothing. Raises ``DistillConfigError`` naming it and the nearest option."""
    options = sorted(known)
    for name in sorted(map(str, section.keys())):
        if name not in options:
            near = difflib.get_close_matches(name, options, n=1)
            hint = f" (did you mean {key}.{near[0]}?)" if near else ""
            raise DistillConfigError(
                f"{key}.{name} is not an option of {key}{hint}: nothing would read it. Its options are "
                f"{', '.join(options)}; set one without '+'."
            )


def section_number(section: Mapping[str, Any], key: str, name: str, default: Any, cast: type) -> Any:
    """``section[name]`` (``default`` when absent) as ``cast`` (``int`` or ``float``). Raises
    ``DistillConfigError`` naming ``key.name`` for a value that is not one: text, ``true``, 1.5 steps."""
    raw = section.get(name, default)
    kind = "an integer" if cast is int else "a number"
    try:
        value = cast(raw)
    except (TypeError, ValueError):
        raise DistillConfigError(f"{key}.{name} must be {kind}, got {raw!r}") from None
    if isinstance(raw, bool) or (cast is int and value != raw):  # 1.5 steps, or true, are not counts
        raise DistillConfigError(f"{key}.{name} must be {kind}, got {raw!r}")
    return value


def optimise_pixels(
    distilled: DistilledSet,
    loss_at: Callable[[int, Tensor, Tensor], Tensor],
    make_optimizer: Callable[[list[Tensor]], torch.optim.Optimizer],
    steps: int,
    device: torch.device | str,
    desc: str,
    progress: bool = True,
) -> list[float]:
    """Move ``distilled.images`` ``[N, C, H, W]`` in place by ``steps`` optimiser steps on
    ``loss_at(step, images, hard_labels)`` (a scalar), on ``device`` in float32; the result is copied
    back in the set's device and dtype. Returns the loss of every step (a progress bar named ``desc``)."""
    images = distilled.images.detach().to(device, torch.float32).clone().requires_grad_(True)
    labels = distilled.hard_labels().to(device)
    opt = make_optimizer([images])
    losses: list[float] = []
    bar = tqdm(range(steps), desc=f"{desc} ({distilled.mode})", disable=not progress)
    for step in bar:
        loss = loss_at(step, images, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(loss=f"{losses[-1]:.3g}", refresh=False)
    bar.close()
    with torch.no_grad():
        distilled.images.copy_(images.detach().to(distilled.images.device, distilled.images.dtype))
    return losses
