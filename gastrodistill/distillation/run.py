"""One distillation run from the root config: data module in, saved DistilledSet (+ pictures, info) out."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ProgressBar
from torch.utils.data import DataLoader

from gastrodistill.distillation.config_check import IMAGE_INITS, check_distill_config
from gastrodistill.distillation.curves import OuterCurves
from gastrodistill.distillation.distilled_set import META_FILE, MODES, DistilledSet
from gastrodistill.distillation.distribution_matching import check_matching_config, match_distributions
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.memory import check_distill_memory
from gastrodistill.distillation.module import DistillModule
from gastrodistill.distillation.plots import curves_image, grid_image, lr_schedule_image, save_png, zca_image
from gastrodistill.distillation.real_batches import OuterSteps, RealBatchSource
from gastrodistill.distillation.resume import (
    CKPT_FILENAME,
    ResumeError,
    check_resume_checkpoint,
    check_resume_data,
    checkpoint_run_folder,
    checkpoint_step,
    missing_message,
    resolve_resume,
    run_folder_of,
    run_settings,
    starts_when_none,
    with_checkpoint_start,
)
from gastrodistill.distillation.texture_clusters import (
    cluster_class_indices,
    cluster_deviations,
    clustered_statistics,
    patch_picks,
)
from gastrodistill.distillation.texture_matching import (
    bridge_images,
    check_texture_config,
    class_texture_targets,
    confused_classes,
    exaggeration_offsets,
    match_textures,
    nearest_classes,
    relu_modules,
    teacher_label_logits,
)
from gastrodistill.evaluation.baselines import class_means
from gastrodistill.models.init import initialize
from gastrodistill.models.preflight import check_model_config, shape_of
from gastrodistill.models.weights import load_weights
from gastrodistill.models.zca import with_zca_kernel
from gastrodistill.utils.atomic import write_text_atomic
from gastrodistill.utils.distributed import (
    is_global_zero,
    local_rank,
    prepare_data_rank_zero_first,
    world_size,
)
from gastrodistill.utils.hydra_job import new_run_folder_advice
from gastrodistill.utils.lightning_output import lightning_output
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.privacy import public_config
from gastrodistill.utils.progress import lightning_progress_bar
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import torch_generator

log = logging.getLogger(__name__)


#: A class with fewer training images than this gets a warning at a class-mean start (close to a copy).
FEW_FOR_A_MEAN = 5


def build_distilled_set(
    dcfg: DictConfig, datamodule: Any, mode: str, seed: int, resumed: bool = False
) -> DistilledSet:
    """A freshly initialised set shaped for ``datamodule``; ``distill.image_init`` picks the images.

    ``noise``: N(0, 1) in the normalised space; ``real``: real training samples of each class;
    ``class_mean``: each class's mean training image plus N(0, ``class_mean_noise_std``²) noise (the means
    streamed by :func:`gastrodistill.evaluation.baselines.class_means`). Labels: one-hot × scale logits.
    ``resumed``: the tensors will come from a checkpoint, so the images start as noise whatever
    ``image_init`` says (nothing streamed, nothing refused for a start that will not be used).
    Raises ``DistillConfigError`` naming ``distill.mode`` or ``distill.image_init`` for unknown values.
    """
    if mode not in MODES:
        raise DistillConfigError(f"distill.mode must be 'soft' or 'hard', got {mode!r}")
    ds = DistilledSet(
        datamodule.num_classes,
        dcfg.ipc,
        dcfg.steps,
        dcfg.epochs,
        datamodule.image_shape,
        mode=mode,
        temperature=dcfg.temperature,
        lr_init=dcfg.lr_init,
        label_init_scale=dcfg.label_init_scale,
        class_names=datamodule.class_names,
        mean=datamodule.mean,
        std=datamodule.std,
        inner_momentum=float(dcfg.get("inner_momentum", 0.0) or 0.0),
    )
    gen = torch_generator(seed, "distill-init", mode)
    if dcfg.image_init == "noise" or resumed:
        return ds.init_noise(gen)
    if dcfg.image_init == "real":
        short = datamodule.classes_short_of(ds.steps * ds.ipc, "train")
        if short:  # a traceback from the draw before
            raise DistillConfigError(
                f"distill.image_init=real takes distill.ipc x distill.steps = {ds.steps * ds.ipc} training "
                f"images of each class, more than these classes have: {', '.join(short)}; lower distill.ipc "
                "or distill.steps, or start from distill.image_init=class_mean or noise"
            )
        return ds.init_real(datamodule, gen)
    if dcfg.image_init == "class_mean":
        few = datamodule.classes_short_of(FEW_FOR_A_MEAN, "train")
        if few:  # a newcomer's 1-image class: its "mean" was that patient's image, flagged by the audit only
            log.warning(
                "class-mean start: %s ha%s fewer than %d training images, so %s mean is close to a copy of "
                "real images (the anonymity audit will flag it); more images of %s, or "
                "distill.image_init=noise, keeps the start anonymous",
                ", ".join(few),
                "s" if len(few) == 1 else "ve",
                FEW_FOR_A_MEAN,
                "its" if len(few) == 1 else "their",
                "it" if len(few) == 1 else "them",
            )
        batches = DataLoader(datamodule.dataset("train", augment=False), batch_size=256, shuffle=False)
        means, _ = class_means(batches, datamodule.num_classes, list(datamodule.class_names))
        return ds.init_class_mean(means, gen, float(dcfg.get("class_mean_noise_std", 0.2)))
    raise DistillConfigError(f"distill.image_init must be one of {IMAGE_INITS}, got {dcfg.image_init!r}")


def whitened_model(cfg: DictConfig, datamodule: Any) -> DictConfig:
    """``cfg.model`` behind the data's local ZCA filter (``data.zca``; ``cfg.model`` itself when off): the
    network the distillation trains and its set records."""
    return with_zca_kernel(cfg.model, datamodule.zca_kernel())  # type: ignore[return-value]


def network_factory(cfg: DictConfig, datamodule: Any) -> _BoundFactory:
    """``cfg.model`` bound to the data's shape, after one network was built by
    :func:`~gastrodistill.models.preflight.check_model_config` (global RNG untouched): a model that cannot
    run on these images raises ``ModelConfigError`` naming ``model`` before any work. With ``data.zca`` the
    networks start with the data's local ZCA filter (:func:`~gastrodistill.models.zca.with_zca_kernel`)."""
    shape = shape_of(datamodule)
    factory = check_model_config(whitened_model(cfg, datamodule), shape)
    return _BoundFactory(factory, {"in_channels": shape[0], "num_classes": shape[1], "image_size": shape[2]})


def build_module(
    cfg: DictConfig,
    datamodule: Any,
    distilled: DistilledSet,
    grid_dir: Path | None,
    networks: _BoundFactory | None = None,
    data_source_hash: str | None = None,
) -> DistillModule:
    """The LightningModule for ``cfg.distill`` with the network family of ``cfg.model`` (``networks``: its
    :func:`network_factory` when the caller has checked it already; ``data_source_hash``: the data
    module's ``source_hash()`` when the caller has it, which for npz data hashes every pixel)."""
    d = cfg.distill
    augment = hydra.utils.instantiate(d.dsa) if d.get("dsa") else None
    bound = networks or network_factory(cfg, datamodule)
    return DistillModule(
        distilled,
        bound,
        real_source(cfg, datamodule, d.batch_real),
        seed=cfg.seed,
        init_scheme=d.init,
        backend=d.backend,
        checkpoint=d.checkpoint,
        inner_nets_per_step=d.inner_nets_per_step,
        known_init=d.known_init,
        optimizer=hydra.utils.instantiate(d.optimizer),
        scheduler=hydra.utils.instantiate(d.scheduler) if d.get("scheduler") else None,
        lr_images=d.lr_images,
        lr_labels=d.lr_labels,
        lr_lrs=d.lr_lrs,
        grad_clip=d.grad_clip,
        grad_clip_ema=d.get("grad_clip_ema"),
        grad_clip_ema_decay=float(d.get("grad_clip_ema_decay", 0.9)),
        window=d.get("window"),
        outer_chunk=d.get("outer_chunk"),
        augment=augment,
        augment_real=bool(getattr(augment, "real", True)),
        grid_every=d.grid_every,
        grid_dir=grid_dir,
        precision=d.get("precision", "32-true"),
        channels_last=bool(d.get("channels_last", False)),
        log_every=int(d.get("log_every", 1)),
        check_every=int(d.get("check_every", 1)),
        debug_record=bool(d.get("debug_record", False)),
        mode=distilled.mode,
        batch_real_per_rank=bool(d.get("batch_real_per_rank", True)),
        run_settings=run_settings(cfg),
        data_source_hash=data_source_hash or datamodule.source_hash(),
    )


def real_source(
    cfg: DictConfig, datamodule: Any, batch_size: int, balanced: bool | None = None
) -> RealBatchSource:
    """Real batches of ``batch_size`` from ``datamodule``'s train split as ``cfg.distill`` says they travel
    (``real_data``, ``resident_max_bytes``, ``prefetch``); ``balanced``: the data module's flag when None."""
    d = cfg.distill
    return RealBatchSource.from_datamodule(
        datamodule,
        batch_size,
        cfg.seed,
        balanced=balanced,
        mode=d.get("real_data", "items"),
        resident_max_bytes=float(d.get("resident_max_bytes", 0) or 0),
        prefetch=int(d.get("prefetch", 2)),
    )


def run_distribution_matching(cfg: DictConfig, datamodule: Any, module: DistillModule) -> list[float]:
    """``distill.distribution_matching.steps`` steps of distribution matching on ``module.distilled``.

    The images move in place before the bi-level loop; the networks are the module's family and init
    scheme, the real batches class-balanced draws of ``batch_per_class`` per class, the augmentation the
    distiller's DSA. Returns the per-step losses (empty when the section is absent or ``steps`` is 0).
    """
    dmc = check_matching_config(cfg.distill.get("distribution_matching"))
    if not dmc["steps"]:
        return []
    per_class = dmc["batch_per_class"]
    return match_distributions(
        module.distilled,
        module.model_factory,
        real_source(cfg, datamodule, per_class * datamodule.num_classes, balanced=True),
        steps=dmc["steps"],
        lr=dmc["lr"],
        momentum=dmc["momentum"],
        init_scheme=str(cfg.distill.init),
        augment=module.augment if dmc["augment"] else None,
        seed=cfg.seed,
        progress=dmc["progress"],
        device=_matching_device(cfg),
    )


#: File name of a texture-matching teacher handed from one process to others (``reproduce`` trains it once
#: for both label modes: :func:`train_texture_teacher`, saved by ``models.weights.save_weights``).
TEACHER_FILE = "texture_teacher.safetensors"


def train_texture_teacher(
    cfg: DictConfig, datamodule: Any, model_factory: Any, callbacks: Sequence[Callback] = ()
) -> torch.nn.Module:
    """The texture-matching teacher: a network of ``model_factory()`` initialised by ``distill.init`` from
    ``(cfg.seed, 'texture-teacher')`` and trained on all training patches by ``eval.baselines.real`` (the
    evaluation's full-data recipe, best validation epoch; the same seeds). Returned in eval mode, on the CPU.
    Both label modes of one seed get the same teacher, so it can be trained once and loaded by
    :func:`load_texture_teacher` (bit-for-bit the same network at the same torch thread count).
    ``callbacks``: more Lightning callbacks for its fit (``benchmarks/teacher_epoch_labels.py`` keeps the
    weights of every epoch)."""
    from gastrodistill.evaluation.full_data import train_full_data
    from gastrodistill.evaluation.study import real_recipe

    seed = int(cfg.seed)
    net = model_factory()
    initialize(net, str(cfg.distill.init), torch_generator(seed, "texture-teacher"))
    net, _ = train_full_data(
        net,
        datamodule.dataset("train", augment=False),
        datamodule.labels("train"),
        datamodule.dataset("val", augment=False),
        real_recipe(cfg.eval),
        datamodule.num_classes,
        (seed, "texture-teacher"),
        progress=bool(check_texture_config(cfg.distill.get("texture_matching"))["progress"]),
        callbacks=callbacks,
    )
    return net.cpu().eval()


def load_texture_teacher(model_factory: Any, path: str | os.PathLike) -> torch.nn.Module:
    """A teacher saved by :func:`~gastrodistill.models.weights.save_weights`, in a fresh ``model_factory()``
    network (eval mode). Raises ``DistillConfigError`` naming the file when it does not fit that network."""
    try:
        net = load_weights(model_factory(), path)
    except (RuntimeError, OSError) as exc:
        raise DistillConfigError(
            f"{path}: the texture-matching teacher does not fit the configured network ({exc}); delete the "
            "file so that the teacher is trained again"
        ) from exc
    return net.eval()


def run_texture_matching(
    cfg: DictConfig, datamodule: Any, module: DistillModule, teacher_file: str | os.PathLike | None = None
) -> list[float]:
    """``distill.texture_matching.steps`` steps of texture matching on ``module.distilled``
    (:mod:`.texture_matching`); returns the per-step losses (empty when off).

    Feature networks of the module's family: with ``features: teacher`` one network trained on all
    training patches (:func:`train_texture_teacher`), or loaded from ``teacher_file`` when given (saved by
    :func:`~gastrodistill.models.weights.save_weights` from the same config: ``reproduce`` trains it once
    for both label modes); with ``features: random`` ``random_networks`` fresh networks initialised by
    ``distill.init`` from (seed, k). The class targets stream the training split once per network.
    Raises ``DistillConfigError`` when a teacher would be trained in each of several processes (a torchrun
    or SLURM launch: use ``features: random`` there, or match in a single-process run).
    """
    tmc = check_texture_config(cfg.distill.get("texture_matching"))
    if not tmc["steps"]:
        return []
    device = torch.device(_matching_device(cfg) or "cpu")
    seed = int(cfg.seed)
    relu_modules(module.model_factory())  # a network without nn.ReLU is refused before the teacher trains
    clustered = cluster_class_indices(tmc["cluster_classes"], datamodule.class_names)  # and a misspelt class
    if tmc["features"] == "teacher":
        if teacher_file is not None:
            net = load_texture_teacher(module.model_factory, teacher_file)
        else:
            if world_size() > 1:
                raise DistillConfigError(
                    "distill.texture_matching.features=teacher trains a teacher network, which a "
                    "multi-process launch would train once per process: set "
                    "distill.texture_matching.features=random, or run the distillation in one process"
                )
            net = train_texture_teacher(cfg, datamodule, module.model_factory)
        nets = [net.to(device).eval()]
        teacher = nets[0]
    else:
        nets = []
        for k in range(tmc["random_networks"]):
            net = module.model_factory().to(device)
            initialize(net, str(cfg.distill.init), torch_generator(seed, "texture-matching", k))
            nets.append(net.eval())
        teacher = None
    batches = DataLoader(datamodule.dataset("train", augment=False), batch_size=256, shuffle=False)
    targets = class_texture_targets(nets, batches, datamodule.num_classes, tmc["exaggeration"])
    offsets = exaggeration_offsets(
        module.distilled.hard_labels(),
        datamodule.num_classes,
        tmc["exaggeration"],
        tmc["exaggeration_spread"],
    ).to(device)
    deviations = None
    if clustered:  # heterogeneous classes: one k-means cluster of their patches per image
        deviations = cluster_deviations(
            clustered_statistics(
                nets,
                batches,
                clustered,
                patch_picks(
                    datamodule.labels("train"),
                    clustered,
                    tmc["cluster_max_patches"],
                    seed,
                    datamodule.class_names,
                ),
            ),
            targets,
            module.distilled.hard_labels(),
            seed,
            datamodule.class_names,
        )
    bridges = None
    if tmc["bridges"] and module.distilled.mode == "hard":
        log.info(
            "texture matching: no bridge images in a hard set (distill.texture_matching.bridges is soft-only)"
        )
    if tmc["bridges"] and module.distilled.mode == "soft":  # a mix only soft labels can say (hard: none)
        if tmc["bridge_partner"] == "teacher":
            partners = confused_classes(teacher, batches, datamodule.num_classes)
        else:
            partners = nearest_classes(targets[0])
        bridges = bridge_images(
            module.distilled.hard_labels().to(device), partners, tmc["bridges"], tmc["bridge_weight"]
        )
        names = list(datamodule.class_names)
        log.info(
            "texture matching: %d image(s) per class are bridges (weight %.2f) toward %s",
            tmc["bridges"],
            tmc["bridge_weight"],
            ", ".join(f"{names[c]} -> {names[int(p)]}" for c, p in enumerate(partners)),
        )
    losses = match_textures(
        module.distilled,
        nets,
        targets,
        steps=tmc["steps"],
        lr=tmc["lr"],
        teacher=teacher,
        teacher_ce=tmc["teacher_ce"],
        offsets=offsets if tmc["exaggeration_spread"] > 0 else None,
        bridges=bridges,
        augment=module.augment if tmc["augment"] else None,
        seed=seed,
        deviations=deviations,
        progress=tmc["progress"],
    )
    distilled = module.distilled
    if teacher is not None and tmc["teacher_labels"] is not None and distilled.mode == "soft":
        with torch.no_grad():
            # the targets are softmax(logits / distill.temperature): scaled so they are softmax(teacher / tau)
            tau = tmc["teacher_labels"] / distilled.temperature
            logits = teacher_label_logits(teacher, distilled.images.detach(), tau)
            distilled.label_logits.copy_(logits.to(distilled.label_logits.device))
        log.info(
            "soft labels start at the teacher's predictions: mean entropy %.3f nats",
            distilled.label_entropy(),
        )
    return losses


def _matching_device(cfg: DictConfig) -> str | None:
    """This process's GPU when the trainer runs on GPUs (``utils.distributed.local_rank``), else None."""
    if str(cfg.trainer.get("accelerator", "cpu")) in ("gpu", "cuda", "auto") and torch.cuda.is_available():
        return f"cuda:{local_rank()}"
    return None


class _BoundFactory:
    """``factory(**shape)`` as a picklable zero-argument callable (ddp_spawn pickles the module)."""

    def __init__(self, factory: Any, shape: dict[str, Any]) -> None:
        self.factory, self.shape = factory, shape

    def __call__(self) -> Any:
        return self.factory(**self.shape)


@contextmanager
def fresh_start_advice(out: Path) -> Iterator[None]:
    """Complete the advice of a :class:`ResumeError` raised inside the block when ``out`` (the ``mode``
    run's folder) already holds a finished set: "drop distill.resume to start from step 0" alone would be
    refused next by :func:`check_no_finished_set`, so the message adds that a fresh start needs a new run
    folder. The error keeps its type (``gastrodistill-reproduce`` tells :class:`OtherModeCheckpoint`
    apart)."""
    try:
        yield
    except ResumeError as e:
        if (Path(out) / META_FILE).is_file() and "drop distill.resume" in str(e):
            e.args = (
                f"{e} in a new run folder ({new_run_folder_advice()} too: {out} already holds a "
                "finished set, which a run from step 0 does not replace)",
            )
        raise


def resume_checkpoint(cfg: DictConfig, mode: str, out: Path, required: bool = True) -> Path | None:
    """The checkpoint ``distill.resume`` names for the ``mode`` run (see :mod:`.resume`), checked by
    :func:`~.resume.check_resume_checkpoint` (nothing read but the file); prints it.

    Raises :class:`ResumeError` when a resume was asked for, ``required`` is set and nothing matches
    (``distill.resume=auto`` then starts from step 0, saying so), and
    when the checkpoint is damaged or foreign, of the other mode, written with other settings or past
    ``distill.outer_steps``.
    """
    d = cfg.distill
    spec = d.get("resume")
    root = d.get("resume_root")
    with fresh_start_advice(out):
        ckpt = resolve_resume(spec, mode, out, root, run_settings(cfg), int(d.outer_steps))
        auto = starts_when_none(spec)
        if ckpt is None and spec not in (None, "") and required and not auto:
            raise ResumeError(missing_message(str(spec), [mode], out, root))
        if ckpt is None:
            if auto and required and is_global_zero():
                print(
                    f"distill.resume=auto: no checkpoint of the {mode}-label run to continue: it starts "
                    "from step 0",
                    flush=True,
                )
            return None
        step = checkpoint_step(check_resume_checkpoint(ckpt, mode, run_settings(cfg), int(d.outer_steps)))
    if is_global_zero():
        print(f"resuming the {mode}-label distillation from checkpoint {ckpt}", flush=True)
        earlier = checkpoint_run_folder(ckpt, mode)
        if earlier is not None and earlier.resolve() != run_folder_of(out).resolve():
            print(
                f"  it continues in this run folder, {run_folder_of(out)}; the first part's logs and "
                f"checkpoints stay in {earlier} (to continue in that folder instead, pass "
                f"hydra.run.dir={earlier})",
                flush=True,
            )
        if step == int(d.outer_steps):
            print(
                f"  it is at outer step {step} = distill.outer_steps: no step is left to run, so the set "
                f"is written as the checkpoint holds it (raise distill.outer_steps to continue the run)",
                flush=True,
            )
    return ckpt


def print_kept_checkpoint(out: Path, mode: str, resumed_from: Path | None = None) -> None:
    """After a stopped ``mode`` run in ``out`` (``<run>/<mode>`` or ``<run>/distill/<mode>``): say on stderr
    which checkpoint of it is kept and how to continue it: its newest in ``out``, else the one it resumed
    from (``resumed_from``, still there), else that none is (``distill.ckpt_every``)."""
    import sys

    from gastrodistill.distillation.resume import CKPT_DIR, newest

    ckpt = newest(sorted((out / CKPT_DIR).glob("*.ckpt")))
    if ckpt is None and resumed_from is not None:
        text = (
            f"the {mode}-label run wrote no checkpoint of its own before it stopped; the checkpoint it "
            f"resumed from, {resumed_from}, is still there: the same command continues from it again"
        )
    elif ckpt is None:
        text = (
            f"the {mode}-label run kept no checkpoint (written every distill.ckpt_every outer steps): it "
            "starts again from step 0"
        )
    else:
        text = (
            f"the {mode}-label run's checkpoint {ckpt} is kept: continue it with the same command and "
            f"distill.resume={run_folder_of(out)}"
        )
    print(f"note: {text}", file=sys.stderr, flush=True)


def check_no_finished_set(folder: str | os.PathLike, mode: str, in_stages: bool = False) -> None:
    """Refuse to distil the ``mode`` set afresh into ``folder`` (``<run>/<mode>`` or
    ``<run>/distill/<mode>``) when it already holds a finished set (:data:`META_FILE`): it would be replaced
    without a word, while the evaluation, audit and artifacts beside it still describe the old one; or the
    checkpoints of a stopped run (a plain re-run of a killed command started from step 0 beside them, and
    Lightning named its own ``last-v1.ckpt``). A resume continues either on purpose and is not refused.

    Raises :class:`DistillConfigError` naming the folder and the ways on: a new run folder; a resume, only
    when ``folder`` keeps a checkpoint of the set (none with ``distill.ckpt_every=0``); and, for
    ``gastrodistill-reproduce`` (``in_stages``), leaving distill out of the stages."""
    from gastrodistill.distillation.resume import CKPT_DIR, newest

    folder = Path(folder)
    checkpoints = sorted((folder / CKPT_DIR).glob("*.ckpt"))
    if not (folder / META_FILE).is_file():
        stopped = newest(checkpoints)
        if stopped is not None:
            raise DistillConfigError(
                f"{folder} holds the checkpoints of a stopped {mode}-label run (newest: {stopped.name}): "
                "distilling afresh would start from step 0 beside them (and its own last.ckpt would be "
                "another file). Continue that run with distill.resume=last in this run folder, or start a "
                f"new run folder ({new_run_folder_advice()})"
            )
        return
    ways = [f"Start a new run folder ({new_run_folder_advice()})"]
    kept = bool(checkpoints)
    if kept:
        ways.append(
            f"continue that set with distill.resume={folder.parent} and a higher distill.outer_steps"
            + (  # a study stopped between its label modes: the finished one is kept, the other continued
                " (with the same distill.outer_steps, distill.resume=last keeps it as it is and continues "
                "a set of the other label mode that stopped)"
                if in_stages
                else ""
            )
        )
    if in_stages:
        ways.append("leave distill out of the stages to evaluate, audit or publish it as it is")
    raise DistillConfigError(
        f"{folder} already holds a finished {mode}-label set ({META_FILE}): distilling afresh would "
        f"replace it, and what was evaluated, audited or published from it. "
        + (", ".join(ways[:-1]) + ", or " + ways[-1] if len(ways) > 1 else ways[0])
        + ("" if kept else f" (no checkpoint of it is in {folder / CKPT_DIR}: it cannot be continued)")
    )


def run_distillation(
    cfg: DictConfig,
    datamodule: Any,
    output_dir: str | os.PathLike,
    mode: str | None = None,
    callbacks: list[Callback] | None = None,
    resume: Path | None | bool = True,
    teacher_file: str | os.PathLike | None = None,
) -> DistilledSet:
    """Distil ``datamodule`` with ``cfg.distill`` (mode overridable); save the set to ``output_dir/<mode>/``.

    Writes ``distilled.safetensors`` + ``distilled.json``, ``grid.png``, ``lrs.png``, ``curves.png`` (the
    image start's and the outer loop's losses, :class:`~.curves.OuterCurves`), ``zca.png`` (with
    ``data.zca``: the filter and one image per class before and after it), ``summary.json``,
    the run info (config, versions, git revision), grids every ``distill.grid_every`` steps under
    ``grids/`` and Lightning checkpoints under ``checkpoints/`` (``distill.resume`` resumes from one).
    ``callbacks`` are extra Lightning callbacks (they must be picklable for ``ddp_spawn``).
    ``resume``: ``True`` resolves ``distill.resume`` here (:func:`resume_checkpoint`, an error when nothing
    matches), a path resumes from it, ``None``/``False`` starts from step 0; either checkpoint is checked
    before any data is read (:func:`~.resume.check_resume_checkpoint`). ``teacher_file``: the
    texture-matching teacher saved by :func:`~gastrodistill.models.weights.save_weights` (None: trained
    here when needed).

    Under DDP launched by torchrun/SLURM (every process runs this), global rank 0 prepares the data
    (builds the patch store) while the others wait, then every rank distils; only rank 0 writes files.
    """
    d = cfg.distill
    mode = mode or d.mode
    check_distill_config(d, mode)  # before the data: a bad value is refused before the patch store is built
    out = Path(output_dir) / mode
    if resume is True:  # checked there, before the data
        ckpt_path = resume_checkpoint(cfg, mode, out)
    else:
        ckpt_path = resume or None
        if ckpt_path is not None:  # before the data: a damaged, foreign or mismatched checkpoint is refused
            with fresh_start_advice(out):
                check_resume_checkpoint(ckpt_path, mode, run_settings(cfg), int(d.outer_steps))
    if ckpt_path is None:  # a finished set is never replaced by a fresh run (every rank: none waits)
        check_no_finished_set(out, mode)
    prepare_data_rank_zero_first(datamodule)
    datamodule.setup("fit")
    data_hash = datamodule.source_hash()  # recorded in checkpoints; computed once (npz: every pixel)
    if ckpt_path is not None:  # the data is read now: a checkpoint of another collection is refused
        with fresh_start_advice(out):
            check_resume_data(ckpt_path, data_hash, d.get("resume"))
    if ckpt_path is not None:  # what shaped the set's start is the checkpoint's: from here on the run (its
        # checkpoints, config.yaml, W&B, the card) says so
        cfg, start_said = with_checkpoint_start(cfg, ckpt_path)
        d = cfg.distill
        if start_said:
            log.warning(
                "the resumed %s-label run keeps the images, labels and rates of its checkpoint, so these "
                "settings of its start have no effect and the run records the checkpoint's: %s",
                mode,
                "; ".join(start_said),
            )
    from gastrodistill.sharing.publish import check_logged_names_in_data

    check_logged_names_in_data(cfg, datamodule)  # before the loggers name their runs after it
    networks = network_factory(cfg, datamodule)  # before the init streams the data: a bad model is refused
    channels, classes, size = shape_of(datamodule)
    check_distill_memory(d, networks, classes, (channels, *size), cfg.trainer)  # before the set is allocated
    distilled = build_distilled_set(d, datamodule, mode, cfg.seed, resumed=ckpt_path is not None)
    # the "same" architecture at evaluation, with the ZCA filter the images were distilled behind (data.zca)
    distilled.model_config = public_config(whitened_model(cfg, datamodule))
    module = build_module(cfg, datamodule, distilled, out / "grids", networks, data_hash)
    # A resumed run restores its (matched) images from the checkpoint.
    texture_losses = run_texture_matching(cfg, datamodule, module, teacher_file) if ckpt_path is None else []
    matching_losses = run_distribution_matching(cfg, datamodule, module) if ckpt_path is None else []
    loggers = stage_loggers(cfg, f"distill-{mode}")  # one CSV folder and W&B job per label mode
    failed = True
    try:
        log_public_hyperparams(loggers, cfg)
        callbacks = list(callbacks or [])
        bar = (
            lightning_progress_bar(int(d.outer_steps))
            if cfg.trainer.get("enable_progress_bar", True)
            else None
        )
        if bar is not None and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(bar)  # a log file gets a few redraws, not one per outer step
        curves = OuterCurves()  # before the checkpoint callback: each checkpoint holds the curve so far
        callbacks.append(curves)
        if d.ckpt_every:
            callbacks.append(
                ModelCheckpoint(
                    dirpath=out / "checkpoints",
                    filename=CKPT_FILENAME,
                    auto_insert_metric_name=False,
                    every_n_train_steps=d.ckpt_every,
                    save_top_k=1,
                    save_last=True,
                    # a resume in a copied or moved run folder writes last.ckpt again, not last-v1.ckpt
                    # beside the copy's older one (which "checkpoints/last.ckpt" would then continue)
                    enable_version_counter=False,
                )
            )
        # the device summary stays, Lightning's noise not; a resumed checkpoint's path shown in the run folder
        run_dir = OmegaConf.select(cfg, "paths.output_dir", default=None)
        with lightning_output(run_dir=run_dir), warnings.catch_warnings():
            trainer = hydra.utils.instantiate(
                cfg.trainer,
                max_steps=d.outer_steps,
                # Lightning converts logged tensors to numbers (a device sync) whenever it logs:
                # only every log_every.
                log_every_n_steps=int(d.get("log_every", 1)),
                max_epochs=-1,
                logger=loggers or False,
                callbacks=callbacks,
                enable_checkpointing=bool(d.ckpt_every),
                use_distributed_sampler=False,
            )
            # We checkpoint after the optimizer step on purpose (global_step counts finished steps).
            warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
            if ckpt_path:  # a resume writes on into the folder of the checkpoints it continues
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
                # ... and may change distill.ckpt_every (or turn checkpoints off): Lightning then asks for
                # the checkpoint's own ModelCheckpoint, whose state a resume does not need (only that one)
                warnings.filterwarnings(
                    "ignore",
                    message=r"Be aware that when using `ckpt_path`, callbacks used to create the checkpoint "
                    r"need to be provided .*Please add the following callbacks: "
                    r'\["ModelCheckpoint\{[^\]]*\}"\]\.$',
                )
            try:
                trainer.fit(
                    module,
                    train_dataloaders=OuterSteps(d.outer_steps),
                    ckpt_path=str(ckpt_path) if ckpt_path else None,
                )
            except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM (Lightning may turn it into an exit)
                if trainer.is_global_zero:
                    print_kept_checkpoint(out, mode, ckpt_path)
                raise
        distilled = module.distilled.cpu().float()
        if trainer.is_global_zero:
            save_png(
                out / "grid.png", grid_image(distilled, title=f"{mode} labels, {d.outer_steps} outer steps")
            )
            save_png(out / "lrs.png", lr_schedule_image(distilled))
            name, start = (
                ("texture matching", texture_losses)
                if texture_losses
                else ("distribution matching", matching_losses)
            )
            save_png(out / "curves.png", curves_image(curves.curves(), start, name))
            if (whitening := zca_image(distilled)) is not None:  # data.zca: the filter, images before / after
                save_png(out / "zca.png", whitening)
            summary = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("outer/")}
            summary.update(
                mode=mode,
                outer_steps=int(trainer.global_step),
                label_entropy=float(distilled.label_entropy().detach()),
            )
            if matching_losses:
                summary.update(
                    distribution_matching_steps=len(matching_losses),
                    distribution_matching_loss_first=matching_losses[0],
                    distribution_matching_loss_last=matching_losses[-1],
                )
            elif ckpt_path is None:  # off (a resumed run's images came from its first run's matching)
                summary.update(distribution_matching_steps=0)
            if texture_losses:
                summary.update(
                    texture_matching_steps=len(texture_losses),
                    texture_matching_loss_first=texture_losses[0],
                    texture_matching_loss_last=texture_losses[-1],
                )
            elif ckpt_path is None:
                summary.update(texture_matching_steps=0)
            write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
            save_run_info(out, cfg, extra={"stage": "distill", "mode": mode})
            # last: its META_FILE marks the set finished (a stop before it leaves a set to resume, not a
            # "finished" one without its run record, which a breaker's Ctrl-C left)
            distilled.data_source_hash = data_hash  # evaluation and audit refuse it on other data
            distilled.save(out)
        failed = False
    finally:
        finish_loggers(loggers, failed)  # also when the run fails (a sweep's next job gets its own run)
    return distilled
