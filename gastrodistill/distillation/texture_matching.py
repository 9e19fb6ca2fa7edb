"""Texture matching of the distilled images before the bi-level loop (an image initialisation).

Each distilled image is moved until its *own* texture statistics under a feature network equal its
class's exaggerated mean statistics over all training patches. The statistics of one image at one level
(the input, and the output of every ``nn.ReLU`` of the network) are the Gram matrix of the feature maps,

    G_l(x) = F_l(x) F_l(x)^T / (H_l W_l)      (F_l: [C_l, H_l W_l]; Gatys, Ecker & Bethge,
                                               "Texture Synthesis Using Convolutional Neural Networks",
                                               NeurIPS 2015, eq. 1)

and the channel means of ``F_l``. With ``m_{c,l}`` the mean of these over the training patches of class
``c``, the targets and the loss are

    t_{c,l} = m_{c,l} + alpha (m_{c,l} - mean_k m_{k,l})
    L = sum_nets mean_i sum_l ||s_l(x_i) - t_{y_i,l}||^2 / mean_c ||t_{c,l}||^2  [+ ce * CE(teacher(x), y)]

``alpha`` (``exaggeration``) pushes each class's target away from the average of the classes, a
caricature of its texture; ``alpha = 0`` matches the class mean. With ``exaggeration_spread`` s > 0 the
images of a class get their own alpha, evenly spaced over ``[alpha - s, alpha + s]`` in index order
(:func:`exaggeration_offsets`): a ladder from the class mean toward its caricature instead of ten copies
of one target (docs/cpu_study.md, "Thirteenth round"). Unlike distribution matching
(:mod:`.distribution_matching`), where only the *mean* embedding of a class's images is matched and one
image may carry what another lacks, every image here must show the whole class texture by itself, and
the Gram matrices keep which features occur together while discarding where they are (no patient's
layout is copied). Feature networks: ``teacher``, one network of the distillation's architecture trained
on all training patches by the evaluation's full-data recipe (``eval.baselines.real``), or ``random``,
fixed fresh networks of that architecture. With the teacher an optional cross-entropy term
(``teacher_ce``) also asks that the teacher classify each image as its class (as in DeepInversion, Yin
et al., CVPR 2020).

Why it is here (docs/cpu_study.md, "Twelfth round"): with a pooled-head network ten clean class
textures per class carry the diagnoses (the eleventh round's prototypes), and matching exaggerated class
textures is the first distiller of this project whose images teach that network more than a random real
subset of the same size does, on validation patients.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.image_start import check_section_keys, optimise_pixels, section_number
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.utils.seeding import torch_generator
from gastrodistill.utils.values import check_switch

#: The matching's defaults when a key is absent (chosen on validation patients: docs/cpu_study.md,
#: "Twelfth round"); conf/distill/soft.yaml spells them out for readers of the config.
TEXTURE_DEFAULTS: dict[str, Any] = {
    "steps": 0,
    "lr": 0.05,
    "features": "teacher",
    "exaggeration": 1.0,
    "exaggeration_spread": 0.0,
    "teacher_ce": 0.1,
    "random_networks": 4,
    "teacher_labels": None,
    "bridges": 0,
    "bridge_weight": 0.3,
    "bridge_partner": "texture",
    "augment": False,
    "cluster_classes": (),
    "cluster_max_patches": 2000,
}
FEATURES = ("teacher", "random")
#: How a bridge image's partner class is chosen: the nearest class texture (:func:`nearest_classes`) or the
#: class the teacher confuses most with the image's own on training patches (:func:`confused_classes`).
BRIDGE_PARTNERS = ("texture", "teacher")
#: The overrides that turn texture matching off (its teacher labels need the matching's teacher).
MATCHING_OFF = "distill.texture_matching.steps=0 distill.texture_matching.teacher_labels=null"


def check_texture_config(section: Any) -> dict[str, Any]:
    """The ``distill.texture_matching`` section as checked values: ``steps`` (>= 0; 0 = off), ``lr`` (> 0,
    Adam on the pixels), ``features`` (teacher | random), ``exaggeration`` (alpha >= 0),
    ``exaggeration_spread`` (0 <= s <= alpha), ``teacher_ce`` (>= 0), ``random_networks`` (>= 1),
    ``teacher_labels`` (null = off, or a temperature > 0; only with ``features: teacher``), ``bridges``
    (>= 0 images per class; only with ``teacher_labels``), ``bridge_weight`` (0 < beta < 1),
    ``bridge_partner`` (texture | teacher), ``augment`` (the distiller's DSA on the images at every step),
    ``cluster_classes`` (distinct class names, returned as a list; :mod:`.texture_clusters`),
    ``cluster_max_patches`` (>= 1), ``progress``.

    Checked whether or not the matching is on, so a bad value is refused before any stage runs. An absent
    section is the default: off. Raises ``DistillConfigError`` naming the key and the fix.
    """
    section = section or {}
    key = "distill.texture_matching"
    if not isinstance(section, Mapping):
        raise DistillConfigError(
            f"{key} must be a section (steps, lr, features, exaggeration, ...), got {section!r}; "
            f"set its keys, e.g. {key}.steps=400"
        )

    check_section_keys(section, key, [*TEXTURE_DEFAULTS, "progress"])

    def number(name: str, cast: type) -> Any:
        return section_number(section, key, name, TEXTURE_DEFAULTS[name], cast)

    values = {
        "steps": number("steps", int),
        "lr": number("lr", float),
        "features": str(section.get("features", TEXTURE_DEFAULTS["features"])),
        "exaggeration": number("exaggeration", float),
        "exaggeration_spread": number("exaggeration_spread", float),
        "teacher_ce": number("teacher_ce", float),
        "random_networks": number("random_networks", int),
        "teacher_labels": (
            None if section.get("teacher_labels") is None else number("teacher_labels", float)
        ),
        "bridges": number("bridges", int),
        "bridge_weight": number("bridge_weight", float),
        "bridge_partner": str(section.get("bridge_partner", TEXTURE_DEFAULTS["bridge_partner"])),
        "augment": section.get("augment", TEXTURE_DEFAULTS["augment"]),
        "cluster_classes": _class_names(section.get("cluster_classes", TEXTURE_DEFAULTS["cluster_classes"])),
        "cluster_max_patches": number("cluster_max_patches", int),
        "progress": section.get("progress", True),
    }
    for name in ("augment", "progress"):
        check_switch(values[name], f"{key}.{name}", DistillConfigError)
    if values["steps"] < 0:
        raise DistillConfigError(f"{key}.steps must be >= 0 (0 = off), got {values['steps']}")
    for name in ("lr", "exaggeration", "exaggeration_spread", "teacher_ce", "bridge_weight"):
        if not math.isfinite(values[name]):
            raise DistillConfigError(f"{key}.{name} must be a finite number, got {values[name]!r}")
    if not values["lr"] > 0:
        raise DistillConfigError(f"{key}.lr must be > 0, got {values['lr']!r}")
    if values["features"] not in FEATURES:
        raise DistillConfigError(
            f"{key}.features must be one of {', '.join(FEATURES)}, got {values['features']!r}"
        )
    if not values["exaggeration"] >= 0:
        raise DistillConfigError(
            f"{key}.exaggeration must be >= 0 (0 = the class mean), got {values['exaggeration']!r}"
        )
    if not 0 <= values["exaggeration_spread"] <= values["exaggeration"]:
        raise DistillConfigError(
            f"{key}.exaggeration_spread must be between 0 and {key}.exaggeration "
            f"({values['exaggeration']!r}: no image's alpha below 0), got {values['exaggeration_spread']!r}"
        )
    if not values["teacher_ce"] >= 0:
        raise DistillConfigError(f"{key}.teacher_ce must be >= 0 (0 = off), got {values['teacher_ce']!r}")
    if values["random_networks"] < 1:
        raise DistillConfigError(f"{key}.random_networks must be >= 1, got {values['random_networks']}")
    if values["cluster_max_patches"] < 1:
        raise DistillConfigError(
            f"{key}.cluster_max_patches must be >= 1 (patches per clustered class), "
            f"got {values['cluster_max_patches']}"
        )
    tau = values["teacher_labels"]
    if tau is not None and not (math.isfinite(tau) and tau > 0):
        raise DistillConfigError(
            f"{key}.teacher_labels must be a temperature > 0 (or null: off), "
            f"got {section.get('teacher_labels')!r}"
        )
    if tau is not None and values["features"] != "teacher":
        raise DistillConfigError(
            f"{key}.teacher_labels needs the teacher: set {key}.features=teacher, "
            f"or set {key}.teacher_labels=null"
        )
    if tau is not None and values["steps"] == 0:
        raise DistillConfigError(
            f"{key}.teacher_labels needs the teacher that texture matching trains, which is off "
            f"({key}.steps=0): set {key}.steps (e.g. 400), or set {key}.teacher_labels=null"
        )
    if values["bridges"] < 0:
        raise DistillConfigError(
            f"{key}.bridges must be >= 0 images per class (0 = off), got {values['bridges']}"
        )
    if not 0 < values["bridge_weight"] < 1:
        raise DistillConfigError(
            f"{key}.bridge_weight must be strictly between 0 and 1 (the partner class's share of a bridge "
            f"image's target), got {values['bridge_weight']!r}; {key}.bridges=0 turns the bridges off"
        )
    if values["bridge_partner"] not in BRIDGE_PARTNERS:
        raise DistillConfigError(
            f"{key}.bridge_partner must be one of {', '.join(BRIDGE_PARTNERS)}, "
            f"got {values['bridge_partner']!r}"
        )
    if values["bridges"] and tau is None:
        raise DistillConfigError(
            f"{key}.bridges needs soft labels that say what a bridge image shows: set {key}.teacher_labels "
            f"(e.g. 1.0, with {key}.features=teacher), or set {key}.bridges=0"
        )
    return values


def inert_keys(values: Mapping[str, Any]) -> list[str]:
    """The keys of a checked section (:func:`check_texture_config`) whose values change nothing given the
    others: ``random_networks`` with the teacher's features, ``teacher_ce`` with random ones, the bridges'
    weight and partner without bridges, ``cluster_max_patches`` without clustered classes. A resume
    compares sections with these at their defaults, so that a run started with ``bridge_weight: 0.5`` and
    no bridges continues one started with 0.3."""
    out = []
    if values["features"] == "teacher":
        out.append("random_networks")
    else:
        out.append("teacher_ce")
    if not values["bridges"]:
        out += ["bridge_weight", "bridge_partner"]
    if not values["cluster_classes"]:
        out.append("cluster_max_patches")
    return out


def _class_names(raw: Any) -> list[str]:
    """``distill.texture_matching.cluster_classes`` as a list of distinct class names (``[]``: none).
    Raises ``DistillConfigError`` for anything else."""
    key = "distill.texture_matching.cluster_classes"
    if raw is None:
        return []
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
        raise DistillConfigError(
            f"{key} must be a list of class names (e.g. [irrelevant]; [] = none), got {raw!r}"
        )
    names = list(raw)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise DistillConfigError(
            f"{key} must list class names as strings, got {bad[0]!r} in {names!r}; quote a name that reads "
            f"as a number: '{key}=[\"{bad[0]}\"]'"
        )
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DistillConfigError(f"{key} names {twice[0]!r} more than once; list each class once")
    return names


@torch.no_grad()
def teacher_label_logits(teacher: nn.Module, images: Tensor, temperature: float, batch: int = 256) -> Tensor:
    """The teacher's logits on ``images`` ``[N, C, H, W]`` divided by ``temperature``: ``[N, K]`` label
    logits whose softmax is the teacher's prediction softened (> 1) or sharpened (< 1), the knowledge-
    distillation targets of Hinton, Vinyals & Dean (2015), used as the learned labels' start (soft mode).
    The teacher runs in eval mode on its own device; the result is float32 on ``images``' device."""
    teacher.eval()
    device = next(teacher.parameters()).device
    out = [
        teacher(images[i : i + batch].to(device, torch.float32)).float() for i in range(0, len(images), batch)
    ]
    return (torch.cat(out) / float(temperature)).to(images.device)


def relu_modules(net: nn.Module) -> list[nn.ReLU]:
    """The ``nn.ReLU`` modules of ``net`` in registration order, whose outputs texture matching reads.
    Raises ``ModelConfigError`` when there are none (before any training, so the refusal comes early)."""
    relus = [m for m in net.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ModelConfigError(
            f"{type(net).__name__} has no nn.ReLU module: texture matching reads the feature maps after "
            "them; use model.act=relu (ConvNet) or a network built from nn.ReLU layers, or turn the "
            f"matching off ({MATCHING_OFF})"
        )
    return relus


def texture_statistics(net: nn.Module, x: Tensor) -> list[Tensor]:
    """The texture statistics of each image of ``x`` ``[B, C, H, W]`` under ``net``.

    For the input and for the output of every ``nn.ReLU`` module of ``net`` that is a feature map (4-d;
    in the order they run): the Gram matrix ``F F^T / (H_l W_l)`` flattened to ``[B, C_l * C_l]`` (Gatys
    et al. 2015, eq. 1) and the channel means ``[B, C_l]``; 2 entries per level. Differentiable with
    respect to ``x``; the caller sets no_grad and the network's mode. Raises ``ModelConfigError`` when
    ``net`` has no ``nn.ReLU`` module (texture matching reads the feature maps after them).
    """
    relus = relu_modules(net)
    maps: list[Tensor] = []
    # A copy: an in-place op after the ReLU (or an in-place ReLU) would change the kept output.
    handles = [m.register_forward_hook(lambda _m, _args, out: maps.append(out.clone())) for m in relus]
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    stats: list[Tensor] = []
    for f in (x, *maps):
        if f.dim() != 4:  # after flattening (a classifier MLP): no spatial texture
            continue
        flat = f.flatten(2)  # [B, C_l, H_l W_l]
        stats.append((flat @ flat.transpose(1, 2)).flatten(1) / flat.shape[-1])
        stats.append(flat.mean(-1))
    return stats


def exaggerate(means: Tensor, alpha: float) -> Tensor:
    """``means + alpha * (means - means.mean(0))`` for class means ``[K, D]``: each class pushed away from
    the average of the classes by ``alpha`` times its distance (``alpha = 0``: unchanged)."""
    return means + alpha * (means - means.mean(0, keepdim=True))


def exaggeration_offsets(labels: Tensor, num_classes: int, alpha: float, spread: float) -> Tensor:
    """Per image ``[N]`` (``labels``: ``[N]`` integer classes): the offset
    ``o_i = (alpha_i - alpha) / (1 + alpha)`` that turns the class target ``exaggerate(m, alpha)``
    into ``exaggerate(m, alpha_i)`` (see :func:`texture_loss`), with ``alpha_i`` evenly spaced over
    ``[alpha - spread, alpha + spread]`` across the images of each class in index order (``alpha``
    itself for a class's only image). All 0 when ``spread`` is 0.
    Raises ``DistillConfigError`` unless ``0 <= spread <= alpha``."""
    if not 0 <= spread <= alpha:
        raise DistillConfigError(
            f"distill.texture_matching.exaggeration_spread must be between 0 and exaggeration ({alpha!r}), "
            f"got {spread!r}"
        )
    labels = labels.long()
    alphas = torch.full(labels.shape, float(alpha), dtype=torch.float64)
    for c in range(num_classes):
        idx = torch.nonzero(labels.cpu() == c).flatten()
        if len(idx) > 1:
            alphas[idx] = torch.linspace(alpha - spread, alpha + spread, len(idx), dtype=torch.float64)
    return ((alphas - alpha) / (1.0 + alpha)).float().to(labels.device)


class Bridges(NamedTuple):
    """Images whose texture target lies between two classes (soft mode): per image ``[N]``, the
    ``partner`` class and the ``weight`` beta of its target (0 for every other image)."""

    partner: Tensor
    weight: Tensor


def nearest_classes(targets: Sequence[Tensor]) -> Tensor:
    """For each class ``[K]``: the other class whose texture target is nearest, by the distance of
    :func:`texture_loss` (``sum_l ||t_c,l - t_d,l||^2 / mean_k ||t_k,l||^2``; ``targets``: ``[K, D_l]``
    per statistic of one network)."""
    dist = sum(
        torch.cdist(t.double(), t.double()).pow(2) / t.double().pow(2).sum(1).mean().clamp_min(1e-12)
        for t in targets
    )
    dist.fill_diagonal_(math.inf)
    return dist.argmin(1)


@torch.no_grad()
def confused_classes(
    teacher: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], num_classes: int
) -> Tensor:
    """For each class ``[K]``: the other class on which the teacher puts the most probability, on average
    over the training patches of that class (``batches`` yields ``(images [B, C, H, W], labels [B])``
    once). Raises ``DistillConfigError`` naming a class with no training patch."""
    teacher.eval()
    device = next(teacher.parameters()).device
    mass = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for x, y in batches:
        p = torch.softmax(teacher(x.to(device)).double(), 1).cpu()
        mass.index_add_(0, y.long().cpu(), p)
        counts += torch.bincount(y.long().cpu(), minlength=num_classes).double()
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if missing:
        raise DistillConfigError(
            f"bridge images need training patches of every class; class {missing[0]} has none: check the "
            f"data's labels or set distill.texture_matching.bridges=0"
        )
    mass.fill_diagonal_(-math.inf)
    return mass.argmax(1)


def bridge_images(labels: Tensor, partners: Tensor, per_class: int, weight: float) -> Bridges:
    """The first ``per_class`` images of each class (index order, the low end of the exaggeration
    ladder) made bridges toward their class's ``partners`` (``[K]``, :func:`nearest_classes` or
    :func:`confused_classes`) with
    weight ``weight``. ``labels``: ``[N]`` integer classes. Raises ``DistillConfigError`` when a class
    would keep no image of its own texture."""
    labels = labels.long()
    partner = partners.to(labels.device)[labels]
    beta = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    for c in range(len(partners)):
        idx = torch.nonzero(labels == c).flatten()
        if per_class >= len(idx):
            raise DistillConfigError(
                f"distill.texture_matching.bridges={per_class} would leave class {c} ({len(idx)} images) no "
                f"image of its own texture: set it below {len(idx)}"
            )
        beta[idx[:per_class]] = float(weight)
    return Bridges(partner, beta)


def class_texture_targets(
    nets: Sequence[nn.Module], batches: Iterable[tuple[Tensor, Tensor]], num_classes: int, alpha: float
) -> list[list[Tensor]]:
    """Per network, per statistic of :func:`texture_statistics`: the exaggerated class means ``[K, D_l]``.

    ``batches`` yields ``(images [B, C, H, W], labels [B])`` once over the training patches (streamed;
    summed in float64). Raises ``DistillConfigError`` naming a class with no training patch.
    """
    sums: list[list[Tensor]] | None = None
    counts = torch.zeros(num_classes, dtype=torch.float64)
    device = next(nets[0].parameters()).device
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(device), y.to(device).long()
            counts += torch.bincount(y.cpu(), minlength=num_classes).double()
            per_net = [texture_statistics(net, x) for net in nets]
            if sums is None:
                sums = [
                    [torch.zeros(num_classes, s.shape[1], dtype=torch.float64, device=device) for s in stats]
                    for stats in per_net
                ]
            for net_sums, stats in zip(sums, per_net, strict=True):
                for total, s in zip(net_sums, stats, strict=True):
                    total.index_add_(0, y, s.double())
    missing = [c for c in range(num_classes) if counts[c] == 0]
    if sums is None or missing:
        raise DistillConfigError(
            f"texture matching needs training patches of every class; class {missing[0] if missing else 0} "
            f"has none: check the data's labels or turn the matching off ({MATCHING_OFF})"
        )
    n = counts.to(device)[:, None]
    return [[exaggerate(total / n, alpha).float() for total in net_sums] for net_sums in sums]


def texture_loss(
    stats: Sequence[Tensor],
    targets: Sequence[Tensor],
    labels: Tensor,
    offsets: Tensor | None = None,
    bridges: Bridges | None = None,
    deviations: Sequence[Tensor] | None = None,
) -> Tensor:
    """``mean_i sum_l ||s_l(x_i) - t_{i, l}||^2 / mean_c ||t_{c, l}||^2`` (a scalar), where image ``i``'s
    target is its class's, ``t_{i,l} = t_{y_i,l} + o_i (t_{y_i,l} - mean_k t_{k,l}) + d_{i,l}``, and for
    a bridge image ``(1 - beta_i) t_{i,l} + beta_i t_{p_i,l}`` (partner class ``p_i``).

    ``stats``: ``[N, D_l]`` per statistic (:func:`texture_statistics`); ``targets``: ``[K, D_l]`` per
    statistic; ``labels``: ``[N]`` integer classes; ``offsets``: ``[N]`` (:func:`exaggeration_offsets`;
    ``None``: all 0, every image of a class has the class target); ``bridges``: :func:`bridge_images`
    (``None``: none); ``deviations``: ``[N, D_l]`` per statistic, each image's cluster deviation
    (:func:`~.texture_clusters.cluster_deviations`; ``None``: all 0). Each statistic is weighted by the
    inverse of its class targets' mean square, so that no level dominates by its scale.
    """
    loss = stats[0].new_zeros(())
    for level, (s, t) in enumerate(zip(stats, targets, strict=True)):
        target = t[labels]
        if offsets is not None:
            target = target + offsets[:, None].to(t.dtype) * (t - t.mean(0, keepdim=True))[labels]
        if deviations is not None:
            target = target + deviations[level].to(device=s.device, dtype=t.dtype)
        if bridges is not None:
            target = target + bridges.weight[:, None].to(t.dtype) * (t[bridges.partner] - target)
        loss = loss + (s - target).pow(2).sum(1).mean() / t.pow(2).sum(1).mean().clamp_min(1e-12)
    return loss


def match_textures(
    distilled: DistilledSet,
    nets: Sequence[nn.Module],
    targets: Sequence[Sequence[Tensor]],
    *,
    steps: int,
    lr: float,
    teacher: nn.Module | None = None,
    teacher_ce: float = 0.0,
    offsets: Tensor | None = None,
    bridges: Bridges | None = None,
    augment: Any = None,
    seed: int = 0,
    deviations: Sequence[Sequence[Tensor]] | None = None,
    progress: bool = True,
) -> list[float]:
    """Move ``distilled.images`` ``[N, C, H, W]`` (in place) by ``steps`` Adam steps at rate ``lr`` on
    the texture loss (summed over ``nets``, each against its ``targets`` from
    :func:`class_texture_targets`) plus ``teacher_ce`` times the teacher's cross-entropy toward each
    image's class; ``offsets`` ``[N]`` give each image its own exaggeration and ``bridges`` some images a
    target between two classes (:func:`texture_loss`; their cross-entropy is toward the same mix).
    ``augment``: a :class:`gastrodistill.distillation.augment.DSA` (or None) through which both terms see
    the images at every step, drawn per image from a generator of (``seed``, step), so that the images
    hold what survives the flips and shifts the unroll and the replay apply (as SRe2L, Yin, Xing & Shen,
    NeurIPS 2023, synthesises under random crops; docs/cpu_study.md, "Twenty-seventh round").
    ``deviations``: per network, per statistic, each image's cluster deviation ``[N, D_l]``
    (:func:`~.texture_clusters.cluster_deviations`; ``None``: none). The networks are frozen and in eval
    mode; the matching runs on their device and the result is copied back. Returns the loss of every step.
    Raises ``DistillConfigError`` for ``steps < 0`` or ``lr <= 0`` (:func:`check_texture_config`).
    """
    check_texture_config({"steps": steps, "lr": lr, "teacher_ce": teacher_ce})
    if steps == 0:
        return []
    device = next(nets[0].parameters()).device
    for net in [*nets, *([teacher] if teacher is not None else [])]:
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)

    def loss_at(step: int, images: Tensor, labels: Tensor) -> Tensor:
        if augment is not None:
            images = augment(images, torch_generator(seed, "texture-matching-augment", step))
        loss = images.new_zeros(())
        for k, (net, net_targets) in enumerate(zip(nets, targets, strict=True)):
            devs = None if deviations is None else deviations[k]
            stats = texture_statistics(net, images)
            loss = loss + texture_loss(stats, net_targets, labels, offsets, bridges, devs)
        if teacher is not None and teacher_ce > 0:
            logits = teacher(images)
            if bridges is None:
                loss = loss + teacher_ce * F.cross_entropy(logits, labels)
            else:  # toward (1 - beta) on the image's class and beta on its partner
                own, other = (F.one_hot(y, logits.shape[1]).to(logits) for y in (labels, bridges.partner))
                beta = bridges.weight.to(logits)[:, None]
                mix = (1 - beta) * own + beta * other
                loss = loss + teacher_ce * F.cross_entropy(logits, mix)
        return loss

    return optimise_pixels(
        distilled,
        loss_at,
        lambda params: torch.optim.Adam(params, lr=lr),
        steps,
        device,
        "texture matching",
        progress,
    )
