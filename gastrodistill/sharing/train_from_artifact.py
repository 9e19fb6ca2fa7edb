"""A receiving site trains networks from an artifact alone and tests them on its own real patches.

Everything needed comes from the artifact: the images, soft labels and learning rates (safetensors),
the architecture and recipe (card). The site's data module only supplies its test (and validation,
for the patient threshold) patches; they are brought into the artifact's normalisation and size by
:class:`SiteAdapter`. The evaluation's trainer and metrics are used unchanged, so a site with the
source's data gets the card's published numbers back, and other sites see how well they transfer.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm.auto import tqdm

from gastrodistill.data.collections import moves_a_class
from gastrodistill.evaluation.results import md_cell
from gastrodistill.models.zca import ZCA_KEY
from gastrodistill.sharing.artifact import (
    ALLOWED_AUGMENT_TARGET,
    REPORTED,
    ArtifactError,
    check_card_code,
    load_artifact,
)
from gastrodistill.utils.atomic import write_texts_atomic
from gastrodistill.utils.run_info import RECORD_FILES, run_record_texts
from gastrodistill.utils.safe_config import UnsafeNodeError, check_received_node
from gastrodistill.utils.seeding import torch_generator
from gastrodistill.utils.values import hydra_quoted

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.fresh_training import StandardSchedule

#: The ``stage`` of a receive report's run record (``run_info.json``); ``--output`` refuses other stages.
RECEIVE_STAGE = "train-from-artifact"
#: The report's own files; with the run record (``utils.run_info.RECORD_FILES``), all it writes.
RECEIVE_JSON, RECEIVE_MD = "receive.json", "receive.md"
REPORT_FILES = (*RECORD_FILES, RECEIVE_JSON, RECEIVE_MD)

#: The schedule whose figures a card publishes (``evaluation``): a site compares only like with like.
PUBLISHED = "replay"


class SiteAdapter(nn.Module):
    """Site-normalised patches -> the artifact's normalisation and image size -> the trained network."""

    def __init__(
        self,
        net: nn.Module,
        site_mean: Sequence[float],
        site_std: Sequence[float],
        card_mean: Sequence[float],
        card_std: Sequence[float],
        size: Sequence[int],
    ) -> None:
        super().__init__()
        self.net = net
        view = lambda v: torch.as_tensor(list(v), dtype=torch.float32).view(1, -1, 1, 1)  # noqa: E731
        self.register_buffer("site_mean", view(site_mean))
        self.register_buffer("site_std", view(site_std))
        self.register_buffer("card_mean", view(card_mean))
        self.register_buffer("card_std", view(card_std))
        self.size = tuple(int(s) for s in size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's logits ``[N, K]`` for site-normalised patches ``x`` ``[N, C, H, W]``, renormalised
        to the card's mean and std and resized (bilinear, antialiased) to the card's image size."""
        x = ((x * self.site_std + self.site_mean) - self.card_mean) / self.card_std
        if tuple(x.shape[-2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return self.net(x)


def check_site_data(card: Mapping[str, Any], datamodule: ImageDataModule) -> None:
    """The site's classes (names and order) and channels must be the artifact's."""
    names = list(card["class_names"])
    site = list(datamodule.class_names)
    if site != names:
        # the same number of classes under other names: most often an npz without class_names, or a rename
        listed = ",".join(map(hydra_quoted, names))
        rename = (
            f"; if they are the same classes under other names, name them as the artifact does (npz data: "
            f"{shlex.quote(f'data.class_names=[{listed}]')}; folder data: rename the class folders)"
            if len(site) == len(names)
            else ""
        )
        if moves_a_class(site, names):  # data.class_names would only rename the stored labels
            rename = (
                "; the same classes in another order: npz data: write the labels in the artifact's order "
                "(label i is the artifact's class i; data.class_names names the stored labels and does not "
                f"reorder them); folder data: {shlex.quote(f'data.classes=[{listed}]')} reads the class "
                "folders in that order"
            )
        raise ArtifactError(
            f"the artifact's classes are {names} but the site's data has {site}; "
            "a network trained from the artifact can only be tested on data with the same classes "
            f"in the same order{rename}"
        )
    channels = int(card["distilled"]["image_shape"][0])
    if int(datamodule.in_channels) != channels:
        kind = "grayscale" if channels == 1 else f"{channels}-channel"
        raise ArtifactError(
            f"the artifact's images have {channels} channel(s), the site's data {datamodule.in_channels}: "
            f"its networks take {kind} images, so convert the site's images to {kind} first"
        )


def unknown_arguments(target: str, arch: Mapping[str, Any]) -> list[str]:
    """The keys of a card's ``architecture`` node that the class ``target`` (one of the project's networks,
    already allowed by :func:`check_card_code`) does not take, by its constructor's signature; none when
    it takes ``**kwargs``. Keys starting with ``_`` are Hydra's."""
    import inspect

    from hydra.utils import get_class

    params = inspect.signature(get_class(target)).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return []
    names = {p.name for p in params}
    return sorted(k for k in arch if not str(k).startswith("_") and k not in names)


def card_network(card: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[int, int, tuple[int, int]]]:
    """The card's ``architecture`` node as a Hydra partial, and the shape its networks are built for:
    ``(in_channels, num_classes, (H, W))`` (``models.preflight.Shape``) from the card's ``distilled``
    record. Refuses any node outside ``gastrodistill.models`` first (:func:`check_card_code`)."""
    check_card_code(card)
    c, h, w = (int(v) for v in card["distilled"]["image_shape"])
    return {**dict(card["architecture"]), "_partial_": True}, (
        c,
        int(card["distilled"]["num_classes"]),
        (h, w),
    )


def model_factory(card: Mapping[str, Any]) -> tuple[Callable[..., nn.Module], str, str]:
    """The network constructor named on the card, refusing anything outside ``gastrodistill.models``;
    returns ``(factory, init scheme, _target_)``.

    The network is built once for the card's image shape first, so an argument this version's class does
    not take (a card from a newer gastrodistill) is an :class:`ArtifactError`, not a ``TypeError``."""
    from gastrodistill.models.layers import ModelConfigError
    from gastrodistill.models.preflight import check_model_config

    arch, shape = card_network(card)
    target = str(arch.get("_target_", ""))
    try:
        factory = check_model_config(OmegaConf.create(arch), shape, key="card architecture")
    except ModelConfigError as exc:
        # an argument this version does not know: a newer card; anything else: a card no site could use
        unknown = unknown_arguments(target, arch)
        hint = (
            f"{', '.join(unknown)}: not an argument of this version's {target.rsplit('.', 1)[-1]}; a card "
            "from a newer gastrodistill? update it to train from this card"
            if unknown
            else "a malformed card, or a network larger than this machine can hold: ask the sending site "
            "for the artifact again"
        )
        raise ArtifactError(f"{exc} ({hint})") from None
    return factory, str(arch.get("init", "xavier")), target


def card_augment(node: Any, where: str) -> dict[str, Any] | None:
    """An augmentation node of a received card, refused unless it is the project's DSA (null: none).

    Raises :class:`ArtifactError` naming the card field ``where`` for any other ``_target_``."""
    if node is None:
        return None
    target = str(node.get("_target_", "")) if isinstance(node, Mapping) else ""
    if target != ALLOWED_AUGMENT_TARGET:
        raise ArtifactError(
            f"card {where} {node!r} is not gastrodistill's augmentation ({ALLOWED_AUGMENT_TARGET}); "
            "refusing to build it"
        )
    try:  # and nothing below it names code (a nested _target_ is built too)
        check_received_node(node, f"card {where}", lambda t: t == ALLOWED_AUGMENT_TARGET)
    except UnsafeNodeError as exc:
        raise ArtifactError(str(exc)) from None
    return dict(node)


def card_replay_augment(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The card's replay augmentation (``training_recipe.replay_augment``; None for cards without one)."""
    return card_augment(
        card.get("training_recipe", {}).get("replay_augment"), "training_recipe.replay_augment"
    )


def card_schedule(card: Mapping[str, Any]) -> StandardSchedule:
    """The card's standard-schedule recipe as a ``StandardSchedule`` (defaults for a card without one).

    Raises :class:`ArtifactError` naming the keys this version does not know (a card from a newer
    gastrodistill) or the recipe value it refuses."""
    from dataclasses import fields

    from gastrodistill.evaluation.fresh_training import StandardSchedule

    recipe = dict(card.get("training_recipe", {}).get("standard") or {})
    unknown = sorted(set(recipe) - {f.name for f in fields(StandardSchedule)})
    if unknown:
        raise ArtifactError(
            f"card training_recipe.standard has keys {unknown} that this gastrodistill does not know "
            "(a card from a newer version?): update gastrodistill to train from it"
        )
    try:  # no code anywhere in the recipe but its augmentation, checked next
        check_received_node(
            {k: v for k, v in recipe.items() if k != "augment"}, "card training_recipe.standard", None
        )
    except UnsafeNodeError as exc:
        raise ArtifactError(str(exc)) from None
    if "augment" in recipe:
        recipe["augment"] = card_augment(recipe["augment"], "training_recipe.standard.augment")
    try:
        return StandardSchedule(**recipe)
    except ValueError as exc:
        raise ArtifactError(f"card training_recipe.standard: {exc}") from exc


def received_schedule(card: Mapping[str, Any], precision: str | None = None) -> StandardSchedule:
    """The card's standard-schedule recipe (:func:`card_schedule`), trained in ``precision`` when given.

    ``precision`` is ``audit.receive.standard_precision``: ``None`` keeps the producing site's, any
    other value (``32-true``, ``bf16-mixed``, or the short ``32`` / ``bf16``) replaces it. Precision is a
    choice of hardware, not of recipe: the root config's default trains in float32 on a CPU without
    bfloat16 units, where a card from a bfloat16 machine would make each step about 5x slower
    (``benchmarks/bench_precision.py``). Raises ``ValueError`` naming the key for another value."""
    from dataclasses import replace

    from gastrodistill.utils.precision import lightning_precision

    standard = card_schedule(card)
    if precision is None:
        return standard
    return replace(standard, precision=lightning_precision(precision, "audit.receive.standard_precision"))


def card_network_parameters(card: Mapping[str, Any]) -> int | None:
    """The number of parameters of the card's network for its image shape, counted on the ``meta`` device
    (no memory is allocated, so a resealed card naming an enormous ``width`` is measured, not built), or
    None when the constructor refuses the card's values there (:func:`model_factory` then reports them)."""
    import hydra

    arch, (c, k, size) = card_network(card)
    try:
        factory = hydra.utils.instantiate(OmegaConf.create(arch))
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            net = factory(in_channels=c, num_classes=k, image_size=size)
    except Exception:  # noqa: BLE001 - a value the constructor refuses: model_factory names it
        return None
    return sum(p.numel() for p in net.parameters())


def card_training_steps(card: Mapping[str, Any], schedule: str) -> tuple[int, str]:
    """Optimiser steps per network that ``schedule`` trains from the card, and how they are counted:
    replay, ``distilled.steps x distilled.epochs`` (the learned schedule's T); standard, ``epochs x
    batches per epoch`` of ``training_recipe.standard`` over the ``distilled.n_images`` images
    (:func:`~gastrodistill.evaluation.fresh_training.small_set_steps`)."""
    from gastrodistill.evaluation.fresh_training import small_set_steps

    info = card["distilled"]
    if schedule == "standard":
        recipe = card_schedule(card)
        batch, total = small_set_steps(int(info["n_images"]), recipe)
        return total, f"{recipe.epochs:,} epochs of {math.ceil(int(info['n_images']) / batch):,} batches"
    return int(info["steps"]) * int(info["epochs"]), f"{info['steps']} steps x {info['epochs']} epochs"


def check_card_workload(
    card: Mapping[str, Any], schedule: str, max_parameters: int | None, max_steps: int | None
) -> None:
    """Refuse a card that asks this site for more than it allows before any network is built: a network
    of more than ``max_parameters`` parameters (``audit.receive.max_network_parameters``; counted without
    allocating, :func:`card_network_parameters`) or more than ``max_steps`` optimiser steps per network
    (``audit.receive.max_training_steps``; :func:`card_training_steps`). The seal is a checksum, not a
    signature: a resealed card with ``width: 100000`` or ``epochs: 1e12`` made a site run out of memory or
    train for ever. None: no limit. Raises :class:`ArtifactError` naming the card field and the override."""
    ask = "ask the sending site about it, or raise the limit if you expect such a recipe"
    if max_parameters is not None:
        n = card_network_parameters(card)
        if n is not None and n > int(max_parameters):
            raise ArtifactError(
                f"the card's architecture ({card['architecture'].get('_target_')}) has {n:,} parameters "
                f"({n * 4 / 2**30:.1f} GiB in float32) for its {card['distilled']['image_shape']} images, "
                f"more than this site allows (audit.receive.max_network_parameters={int(max_parameters):,}): "
                f"{ask} (audit.receive.max_network_parameters=N, or null)"
            )
    if max_steps is not None:
        steps, how = card_training_steps(card, schedule)
        if steps > int(max_steps):
            field = "training_recipe.standard" if schedule == "standard" else "distilled.steps and .epochs"
            raise ArtifactError(
                f"the card's {schedule} schedule trains each network for {steps:,} optimiser steps ({how}; "
                f"card {field}), more than this site allows (audit.receive.max_training_steps="
                f"{int(max_steps):,}): {ask} (audit.receive.max_training_steps=N, or null)"
            )


def train_networks(
    distilled: DistilledSet,
    card: Mapping[str, Any],
    n_networks: int,
    schedule: str,
    seed: int,
    standard_precision: str | None = None,
    progress: bool = False,
) -> list[tuple[nn.Module, str | None]]:
    """``n_networks`` fresh networks trained from the artifact with the evaluation's trainer; the standard
    schedule in ``standard_precision`` when given (:func:`received_schedule`), else the card's.
    ``progress``: a tqdm bar on standard error, a step per network.

    Each comes with None, or why it diverged (a non-finite training loss or weights): then it is a
    network that learned nothing, as the evaluate stage scores one (``ensemble.train_or_learned_nothing``).
    """
    from gastrodistill.evaluation.ensemble import train_or_learned_nothing
    from gastrodistill.evaluation.fresh_training import NetSpec, train_built_on_distilled

    factory, init, target = model_factory(card)
    _, (c, k, size) = card_network(card)
    spec = NetSpec(
        factory=factory,
        in_channels=c,
        num_classes=k,
        image_size=size,
        init=init,
        name=target.rsplit(".", 1)[-1].lower(),
    )
    standard, replay_augment = received_schedule(card, standard_precision), card_replay_augment(card)
    out = []
    for i in tqdm(range(n_networks), desc=f"fresh networks ({schedule})", unit="net", disable=not progress):
        generator = torch_generator(seed, "receive", schedule, i)
        train = lambda net, g=generator: train_built_on_distilled(  # noqa: E731
            net, distilled, schedule, g, standard, replay_augment
        )
        out.append(train_or_learned_nothing(train, spec.build(generator)))
    return out


def reported_metrics(class_names: Sequence[str]) -> tuple[str, ...]:
    """The figures a receiving site computes and compares: :data:`REPORTED`, then the recall
    (sensitivity) of each class, ``recall_<name>`` in class order (the rare class's number, with
    imbalanced classes; the receive report had no per-class figure, a newcomer's finding)."""
    return (*REPORTED, *(f"recall_{name}" for name in class_names))


def _stats(records: list[dict[str, Any]], metrics: Sequence[str] = REPORTED) -> dict[str, float]:
    """Mean and population std over networks of each of ``metrics`` (``<m>_mean``, ``<m>_std``)."""
    out: dict[str, float] = {}
    for m in metrics:
        vals = np.array([float(r.get(m, math.nan)) for r in records])
        vals = vals[np.isfinite(vals)]
        if len(vals):
            out[f"{m}_mean"], out[f"{m}_std"] = float(vals.mean()), float(vals.std())
    return out


def compare_published(
    site: Mapping[str, float],
    published: Mapping[str, Any],
    site_networks: int,
    metrics: Sequence[str] = REPORTED,
) -> dict[str, dict[str, Any]]:
    """Site mean vs card mean per metric; "within noise" = difference <= 2 x the larger std (+0.01).

    A std is taken only from a side whose mean rests on two networks or more (``site_networks``; the card's
    ``n_networks``, when it gives one): both sides train networks from the same artifact with the same
    recipe, so one side's spread stands for both. With one network on each side there is no spread to
    compare with: ``within_noise`` is None (cannot tell)."""
    card_networks = float(published.get("n_networks", 2))
    out: dict[str, dict[str, Any]] = {}
    for m in metrics:
        if f"{m}_mean" not in site or f"{m}_mean" not in published:
            continue
        a, b = site[f"{m}_mean"], float(published[f"{m}_mean"])
        stds = [site.get(f"{m}_std", 0.0)] if site_networks >= 2 else []
        stds += [float(published.get(f"{m}_std", 0.0))] if card_networks >= 2 else []
        within = bool(abs(a - b) <= 2 * max(stds) + 0.01) if stds else None
        out[m] = {"site": a, "published": b, "difference": a - b, "within_noise": within}
    return out


def train_from_artifact(
    artifact: str | os.PathLike,
    cfg: DictConfig,
    datamodule: ImageDataModule,
    output_dir: str | os.PathLike | None = None,
    n_networks: int | None = None,
    schedule: str | None = None,
) -> dict[str, Any]:
    """Load, train ``n_networks`` fresh networks, test on the site's data; returns metrics and comparison."""
    from gastrodistill.anonymity.config_check import shows_progress
    from gastrodistill.evaluation.scoring import evaluate_network
    from gastrodistill.evaluation.splits import build_context

    distilled, card = load_artifact(artifact)
    dm = datamodule
    if not hasattr(dm, "mean"):
        dm.prepare_data()
        dm.setup()
    check_site_data(card, dm)
    rcfg = cfg.audit.receive
    n = int(n_networks or rcfg.n_networks)
    schedule = str(schedule or rcfg.schedule)
    precision = rcfg.get("standard_precision")
    check_card_workload(card, schedule, rcfg.get("max_network_parameters"), rcfg.get("max_training_steps"))
    progress = shows_progress(cfg.audit)
    trained = train_networks(distilled, card, n, schedule, int(cfg.seed), precision, progress)
    norm = card["normalization"]
    size = card["distilled"]["image_shape"][1:]
    ctx = build_context(cfg, dm)
    metrics = reported_metrics(list(card["class_names"]))  # the site's classes are the card's (checked)
    records, diverged = [], []
    for net, why in trained:
        model = SiteAdapter(net, dm.mean, dm.std, norm["mean"], norm["std"], size)
        scored = evaluate_network(model, ctx)  # outputs that overflow: scored as learned nothing, diverged
        if why is None and scored.get("diverged"):
            why = "its outputs on this site's test split are not finite"
        rec = {k: float(v) for k, v in scored.items() if k in metrics}
        if why is not None:
            rec["diverged"] = True
            diverged.append(why)
        records.append(rec)
    if len(diverged) == n:
        raise ArtifactError(
            f"all {n} networks trained from the artifact {Path(artifact).name} diverged (network 0: "
            f"{diverged[0]}): its images or learning rates cannot train the card's network, so there is "
            "nothing to compare with its published figures; ask the sending site for the artifact again"
        )
    site = _stats(records, metrics)
    site_size = [int(v) for v in dm.image_size]
    result = {
        "artifact": {
            "name": card.get("name"),
            "source_hash": card["source_hash"],
            "card_sha256": card["card_sha256"],
        },
        "schedule": schedule,
        # the standard schedule's precision here (the card's unless audit.receive.standard_precision);
        # the replay trains in float32
        "precision": received_schedule(card, precision).precision if schedule == "standard" else "32-true",
        "n_networks": n,
        # networks whose training loss, weights or test outputs were not finite, scored as networks that
        # learned nothing (uniform predictions) and kept in the means, as the evaluate stage scores them
        "n_diverged": len(diverged),
        # the networks see the artifact's image size: site patches of another size are resized to it
        # (bilinear, antialiased; SiteAdapter), which readers of the comparison should know
        "site_image_size": site_size,
        "artifact_image_size": [int(v) for v in size],
        # the side (px) of the ZCA filter the card's networks start with (data.zca of the sending site)
        "zca_filter_px": _zca_side(card),
        "metrics": site,
        "networks": records,
        # whether the card publishes figures at all: not when the set was published without its evaluation
        # (gastrodistill-audit, or a reproduce run without the evaluate stage)
        "card_publishes_evaluation": bool(card.get("evaluation")),
        # the card's figures are those of the replay (reproduce: method_metrics(..., schedule="replay"))
        "published": compare_published(site, card.get("evaluation") or {}, n, metrics)
        if schedule == PUBLISHED
        else {},
    }
    if output_dir is not None:  # the run record and the report replace an earlier report's together
        record = run_record_texts(
            cfg, extra={"stage": RECEIVE_STAGE, "artifact_card_sha256": card["card_sha256"]}
        )
        report = {RECEIVE_JSON: json.dumps(result, indent=2, sort_keys=True), RECEIVE_MD: render(result)}
        write_texts_atomic(output_dir, {**record, **report})  # makes the folder (atomic_path)
    return result


def _resize_note(result: Mapping[str, Any]) -> list[str]:
    """A line saying the site's patches were resized to the artifact's size, when they were."""
    site, art = result.get("site_image_size"), result.get("artifact_image_size")
    if not site or not art or list(site) == list(art):
        return []
    note = (
        f"Note: this site's patches are {site[0]}x{site[1]} px and the artifact's images "
        f"{art[0]}x{art[1]} px; the patches were resized to the artifact's size (bilinear, antialiased) "
        "before testing"
    )
    if site[0] * art[1] != site[1] * art[0]:  # another aspect ratio: stretched, not only scaled
        advice = (
            ", which changed their aspect ratio (a network trained on the card's images never saw them "
            f"stretched). Crop or pad the site's images to the artifact's {art[0]}:{art[1]} shape first to "
            "test them as the card's were."
        )
    elif site[0] < art[0]:
        advice = (
            f", enlarging them {art[0] / site[0]:.3g}x: they hold less detail than the card's images, so "
            "the comparison with its figures is not like for like."
        )
    else:
        advice = (
            f". Store the site's patches at {art[0]} px (e.g. data.storage_size={art[0]}) to test them as "
            "the card's were."
        )
    return ["", note + advice]


def _diverged_note(result: Mapping[str, Any]) -> list[str]:
    """A line naming how many networks diverged, when any did."""
    k = int(result.get("n_diverged", 0))
    if not k:
        return []
    which = ", ".join(str(i) for i, r in enumerate(result.get("networks", [])) if r.get("diverged"))
    return [
        "",
        f"**Diverged: {k} of {result['n_networks']} networks** (number {which}: training loss, weights "
        "or test outputs not finite). They are scored as networks that learned nothing (uniform "
        "predictions) and kept in the means, as the evaluate stage scores them: the means below are "
        "pulled towards chance.",
    ]


#: What receive.md says when the card publishes no figures (no ``evaluation``), once.
NO_EVALUATION_NOTE = (
    "The card publishes no evaluation: the set was published without its evaluation (an artifact written by "
    "gastrodistill-audit, or by a gastrodistill-reproduce run without the evaluate stage), so there is "
    "nothing to compare this site's figures with (the published column reads n/a)."
)


#: What receive.md says under its table when the card's evaluation has some of the rows' figures, not all.
PARTLY_PUBLISHED_NOTE = (
    "n/a: the card's evaluation holds no figure for these rows (a class the sender's data lack, or a metric "
    "its evaluation did not report), so they are not compared"
)


#: The "within noise" column: a mean of one network has no spread to compare a difference with.
NOISE_WORDS = {True: "yes", False: "NO", None: "cannot tell (one network on each side)"}
#: How receive.md explains that column (:func:`compare_published`).
NOISE_RULE = (
    "Within noise: |difference| <= 2 x the larger std + 0.01, a std counting from a side of two networks or "
    "more (both sides train from the same artifact with the same recipe, so one side's spread stands for "
    "both). The card's numbers are of the sender's test patients: a NO on other patients, or on a preset as "
    "small as experiment=tiny, can be a difference of data rather than of the set."
)


def _zca_side(card: Mapping[str, Any]) -> int | None:
    """The side (px) of the ZCA filter on the card's architecture (``zca_kernel``), or ``None``."""
    kernel = (card.get("architecture") or {}).get(ZCA_KEY)
    return len(kernel[0]) if kernel else None


def render(result: Mapping[str, Any]) -> str:
    """``receive.md``: the Markdown report of :func:`train_from_artifact`'s ``result``."""
    published = result.get("card_publishes_evaluation", True)  # a result without the key: no note
    lines = [
        f"# Trained from artifact {result['artifact']['name']!s}",
        "",
        f"{result['n_networks']} fresh networks, schedule `{result['schedule']}`"
        + (f" (precision `{result['precision']}`)" if result.get("precision") else "")
        + ", tested on this site's test split (patches, or images of data without patients)."
        + (
            ""
            if result["schedule"] == PUBLISHED or not published
            else f" The card publishes the `{PUBLISHED}` schedule's figures only: nothing to compare with."
        ),
        *([] if published else ["", NO_EVALUATION_NOTE]),
        *_resize_note(result),
        *(
            [f"The networks start with the card's {result['zca_filter_px']} px ZCA whitening filter."]
            if result.get("zca_filter_px")
            else []
        ),
        *_diverged_note(result),
        "",
        "| metric | this site | published | difference | within noise |",
        "|---|---|---|---|---|",
    ]
    shown = [k[: -len("_mean")] for k in result["metrics"] if k.endswith("_mean")]  # REPORTED, then recalls
    for m in shown:
        site = f"{result['metrics'][f'{m}_mean']:.3f} ± {result['metrics'][f'{m}_std']:.3f}"
        pub = result["published"].get(m)
        tail = (
            f"{pub['published']:.3f} | {pub['difference']:+.3f} | {NOISE_WORDS[pub['within_noise']]}"
            if pub
            else "n/a | | "
        )
        name = f"recall of {md_cell(m[len('recall_') :])}" if m.startswith("recall_") else m
        lines.append(f"| {name} | {site} | {tail} |")
    missing = [m for m in shown if m not in result["published"]]
    if result["published"] and missing:  # some figures compared, these not: say why they read n/a
        names = ", ".join(f"`{md_cell(m)}`" for m in missing)
        lines += ["", f"{PARTLY_PUBLISHED_NOTE} ({names})."]
    if result["published"]:
        lines += ["", NOISE_RULE]
    return "\n".join(lines) + "\n"
