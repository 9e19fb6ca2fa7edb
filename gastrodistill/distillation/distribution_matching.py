"""Distribution matching of the distilled images before the bi-level loop (an image initialisation).

Zhao & Bilen, "Dataset Condensation with Distribution Matching" (WACV 2023), Algorithm 1: at every
step a freshly initialised network embeds a class-balanced real batch and the distilled images, and
the images move so that each class's mean embedding matches the real one,

    L = sum_c || mean_i f(aug(x_real_{c,i})) - mean_j f(aug(x_syn_{c,j})) ||^2,

with ``f`` the network's penultimate activation (the input of its last ``nn.Linear``) and ``aug``
the distiller's DSA drawn per image on both sides (the means of the augmented distributions are
matched; the paper shares one draw between the sides, which a mean over each side does not need).
No unroll and no second-order terms: one forward of each side per step, a fraction of an outer step.

Why it is here (docs/cpu_study.md, "Fifth round"): on the gastric patches the bi-level
meta-gradient has no common direction between steps (pixel cosine 0.001), while the class means of a
random network's features are a stable target that the mucosal texture enters through the network's
nonlinearity. The matched images start the bi-level loop, which then learns the soft labels and the
learning-rate schedule (``distill.distribution_matching.steps: 0`` keeps the earlier behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.image_start import check_section_keys, optimise_pixels, section_number
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.models.features import penultimate_features
from gastrodistill.models.init import initialize
from gastrodistill.utils.seeding import torch_generator
from gastrodistill.utils.values import check_switch

#: The matching's defaults when a key is absent (Zhao & Bilen 2023: SGD at lr 1 with momentum 0.5); the one
#: place they are written in code (conf/distill/soft.yaml spells them out for readers of the config).
MATCHING_DEFAULTS: dict[str, Any] = {"steps": 0, "lr": 1.0, "momentum": 0.5, "batch_per_class": 64}


def check_matching_config(section: Any) -> dict[str, Any]:
    """The ``distill.distribution_matching`` section as checked values: ``steps`` (>= 0; 0 = off), ``lr``
    (> 0), ``momentum`` (in [0, 1)), ``batch_per_class`` (>= 1), ``augment``, ``progress``.

    Checked whether or not the matching is on, so a bad value is refused before any stage runs (the
    reproduce pre-flight calls this) rather than lying unnoticed until someone turns the matching on.
    An absent section is the default: off. Raises ``DistillConfigError`` naming the key and the fix.
    """
    section = section or {}
    key = "distill.distribution_matching"
    if not isinstance(section, Mapping):
        raise DistillConfigError(
            f"{key} must be a section (steps, lr, momentum, batch_per_class, ...), got {section!r}; "
            f"set its keys, e.g. {key}.steps=1000"
        )

    check_section_keys(section, key, [*MATCHING_DEFAULTS, "augment", "progress"])

    def number(name: str, default: float, cast: type) -> Any:
        return section_number(section, key, name, default, cast)

    values = {
        "steps": number("steps", MATCHING_DEFAULTS["steps"], int),
        "lr": number("lr", MATCHING_DEFAULTS["lr"], float),
        "momentum": number("momentum", MATCHING_DEFAULTS["momentum"], float),
        "batch_per_class": number("batch_per_class", MATCHING_DEFAULTS["batch_per_class"], int),
        "augment": section.get("augment", True),
        "progress": section.get("progress", True),
    }
    for name in ("augment", "progress"):
        check_switch(values[name], f"{key}.{name}", DistillConfigError)
    if values["steps"] < 0:
        raise DistillConfigError(f"{key}.steps must be >= 0 (0 = off), got {values['steps']}")
    if not values["lr"] > 0:
        raise DistillConfigError(f"{key}.lr must be > 0, got {values['lr']!r}")
    if not 0 <= values["momentum"] < 1:
        raise DistillConfigError(f"{key}.momentum must be in [0, 1), got {values['momentum']!r}")
    if values["batch_per_class"] < 1:
        raise DistillConfigError(f"{key}.batch_per_class must be >= 1, got {values['batch_per_class']}")
    return values


def mean_embedding_loss(
    real_features: Tensor, real_labels: Tensor, syn_features: Tensor, syn_labels: Tensor, num_classes: int
) -> Tensor:
    """``sum_c ||mean real_c - mean syn_c||^2`` over the classes present on both sides (a scalar).

    ``*_features``: ``[N, D]``; ``*_labels``: ``[N]`` integer classes in ``[0, num_classes)``.
    """
    loss = syn_features.new_zeros(())
    for c in range(num_classes):
        r, s = real_features[real_labels == c], syn_features[syn_labels == c]
        if len(r) and len(s):
            loss = loss + (r.mean(0) - s.mean(0)).pow(2).sum()
    return loss


def match_distributions(
    distilled: DistilledSet,
    network_factory: Callable[[], nn.Module],
    real: RealBatchSource,
    *,
    steps: int,
    lr: float,
    momentum: float = MATCHING_DEFAULTS["momentum"],
    init_scheme: str = "xavier",
    augment: Any = None,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str | None = None,
) -> list[float]:
    """Move ``distilled.images`` ``[N, C, H, W]`` (in place) by ``steps`` steps of distribution matching.

    ``network_factory()`` builds a network that is re-initialised with ``init_scheme`` from a generator of
    (``seed``, step) at every step; ``real.get(step, 0)`` gives that step's real batch (use a balanced
    source); ``augment``: a :class:`gastrodistill.distillation.augment.DSA` (or None) drawn per image on
    both sides. Optimiser: SGD with ``momentum`` at rate ``lr`` on the pixels (the paper's: lr 1,
    momentum 0.5). ``device``: where the matching runs (default: the images' device); the result is
    copied back. Returns the loss of every step.
    Raises ``DistillConfigError`` for ``steps < 0``, ``lr <= 0`` or ``momentum`` outside [0, 1)
    (:func:`check_matching_config`, the one check of these values).
    """
    check_matching_config({"steps": steps, "lr": lr, "momentum": momentum})
    if steps == 0:
        return []
    device = torch.device(device) if device is not None else distilled.images.device
    net = network_factory().to(device)
    for p in net.parameters():
        p.requires_grad_(False)

    def loss_at(step: int, images: Tensor, syn_labels: Tensor) -> Tensor:
        initialize(net, init_scheme, torch_generator(seed, "distribution-matching", step))
        x_real, y_real = real.get(step, 0, images.device)
        x_real, y_real = x_real.to(images.device), y_real.to(images.device)
        x_syn = images
        if augment is not None:
            gen = torch_generator(seed, "distribution-matching-augment", step)
            x_real, x_syn = augment(x_real, gen), augment(images, gen)
        with torch.no_grad():
            f_real = penultimate_features(net, x_real)
        f_syn = penultimate_features(net, x_syn)
        return mean_embedding_loss(f_real, y_real, f_syn, syn_labels, distilled.num_classes)

    return optimise_pixels(
        distilled,
        loss_at,
        lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum),
        steps,
        device,
        "distribution matching",
        progress,
    )
