"""The full-data upper bound: a fresh network trained on every real training patch by a Lightning Trainer.

One recipe whatever the memory: the training images come either from memory (the split cached as
tensors) or streamed from the data module, always unaugmented, in the order of one sampler
(:class:`EpochSampler`: a permutation, or class-balanced draws with replacement, seeded by
``(seed, network, epoch)``), in batches of ``batch_size``; the augmentation (``augment``: the project's
DSA node, or null) runs on the batch inside the module with a generator seeded by
``(seed, network, epoch)``. So the streamed and the in-memory runs see the same batches, and every
epoch and every network its own order and augmentations. The weights of the epoch with the best
validation balanced accuracy are kept (:class:`BestOnValidation`, in memory: no checkpoint file).
Mixed precision (``precision``), the accelerator and DDP (``strategy``, ``devices``) come from
``eval.baselines.real``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler, TensorDataset

from gastrodistill.evaluation.fresh_training import (
    StandardSchedule,
    augment_small,
    make_optimizer,
)
from gastrodistill.utils.distributed import destroy_process_group_at_exit
from gastrodistill.utils.lightning_output import lightning_output
from gastrodistill.utils.precision import precision_autocast
from gastrodistill.utils.progress import lightning_progress_bar
from gastrodistill.utils.seeding import torch_generator
from gastrodistill.utils.values import is_count, is_finite_number


class RealTrainingDivergedError(FloatingPointError):
    """The all-data recipe's loss turned non-finite (the message names the epoch and the key to lower)."""


@dataclass(frozen=True)
class RealRecipe:
    """``eval.baselines.real``: the full-data recipe (the same in memory and streamed)."""

    epochs: int = 5
    lr: float = 0.001
    optimizer: Any = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 128
    balanced: bool = False  # class-balanced draws with replacement instead of a permutation
    augment: Any = None  # None or {_target_: gastrodistill.distillation.augment.DSA, ...}
    scheduler: str = "none"  # none | cosine (per step)
    precision: str = "32-true"
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"

    def __post_init__(self) -> None:
        for key, value, ok, wanted in (
            ("epochs", self.epochs, is_count(self.epochs), "an integer >= 1"),
            ("lr", self.lr, is_finite_number(self.lr) and self.lr > 0, "a finite number > 0"),
            ("batch_size", self.batch_size, is_count(self.batch_size), "an integer >= 1"),
        ):
            if not ok:
                raise ValueError(f"eval.baselines.real.{key} must be {wanted}, got {value!r}")
        if self.scheduler not in ("none", "cosine"):
            raise ValueError(f"eval.baselines.real.scheduler {self.scheduler!r} unknown; use none or cosine")

    @property
    def augmentation(self) -> StandardSchedule:
        """The recipe's ``augment`` as a :class:`StandardSchedule` (what :func:`augment_small` reads)."""
        return StandardSchedule(epochs=1, lr=1.0, augment=self.augment)

    def autocast(self, device: torch.device) -> torch.autocast:
        """Autocast matching ``precision`` for code that trains by this recipe outside Lightning (the
        audit's shadow networks; :func:`~gastrodistill.utils.precision.precision_autocast`)."""
        return precision_autocast(self.precision, device)


class EpochSampler(Sampler[int]):
    """Indices of one epoch, seeded by ``(*seed_parts, epoch)``: a permutation, or (``balanced``) N draws
    with replacement weighted 1 / class count; rank ``r`` of ``world`` keeps every ``world``-th index."""

    def __init__(
        self, labels: np.ndarray, balanced: bool, seed_parts: Sequence[Any], rank: int = 0, world: int = 1
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.balanced, self.seed_parts = balanced, tuple(seed_parts)
        self.rank, self.world, self.epoch = rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration draw epoch ``epoch``'s indices (Lightning calls it each epoch)."""
        self.epoch = int(epoch)

    def indices(self) -> torch.Tensor:
        """This rank's indices ``[ceil((N - rank) / world)]`` of the current epoch (int64)."""
        g = torch_generator(*self.seed_parts, "epoch", self.epoch)
        n = len(self.labels)
        if self.balanced:
            counts = np.bincount(self.labels).astype(np.float64)
            w = torch.as_tensor(1.0 / counts[self.labels])
            idx = torch.multinomial(w, n, replacement=True, generator=g)
        else:
            idx = torch.randperm(n, generator=g)
        return idx[self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return math.ceil((len(self.labels) - self.rank) / self.world)


class EpochBatchSampler(BatchSampler):
    """Batches of an :class:`EpochSampler`; forwards ``set_epoch`` (Lightning calls it on the sampler)."""

    def set_epoch(self, epoch: int) -> None:
        """Forward ``epoch`` to the :class:`EpochSampler`."""
        self.sampler.set_epoch(epoch)


class FullDataNet(pl.LightningModule):
    """Cross-entropy training of ``net`` with the recipe's optimiser; validation balanced accuracy logged
    as ``val_balanced_accuracy`` (macro recall over the validation patches)."""

    def __init__(
        self, net: nn.Module, recipe: RealRecipe, num_classes: int, seed_parts: Sequence[Any]
    ) -> None:
        super().__init__()
        self.net, self.recipe, self.num_classes = net, recipe, int(num_classes)
        self.seed_parts = tuple(seed_parts)
        self._aug_gen: torch.Generator | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[N, K]`` of ``net`` for images ``x`` ``[N, C, H, W]``."""
        return self.net(x)

    def on_train_epoch_start(self) -> None:
        """Lightning hook: seed this epoch's augmentation draws by ``(*seed_parts, "augment", epoch)``."""
        self._aug_gen = torch_generator(*self.seed_parts, "augment", self.current_epoch)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Lightning hook: cross-entropy of the augmented batch; raises :class:`RealTrainingDivergedError`
        on a non-finite loss."""
        x, y = batch
        x = augment_small(x, self.recipe.augmentation, self._aug_gen)
        loss = F.cross_entropy(self.net(x), y.long())
        if not torch.isfinite(loss):
            raise RealTrainingDivergedError(
                f"real training epoch {self.current_epoch}: loss {loss.item()}; lower eval.baselines.real.lr"
            )
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        """Lightning hook: keep the batch's predictions and labels for the epoch's balanced accuracy."""
        x, y = batch
        self._val.append((self.net(x).argmax(1).cpu(), y.long().cpu()))

    def on_validation_epoch_end(self) -> None:
        """Lightning hook: log ``val_balanced_accuracy`` (mean recall over the classes present)."""
        pred = torch.cat([p for p, _ in self._val])
        y = torch.cat([t for _, t in self._val])
        self._val.clear()
        recalls = [(pred[y == c] == c).float().mean() for c in range(self.num_classes) if (y == c).any()]
        self.log("val_balanced_accuracy", torch.stack(recalls).mean(), prog_bar=False, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        """Lightning hook: the recipe's optimiser, with a per-step cosine schedule when it asks for one."""
        r = self.recipe
        opt = make_optimizer(self.net.parameters(), r.optimizer, r.lr, r.momentum, r.weight_decay)
        if r.scheduler == "cosine":
            total = int(self.trainer.estimated_stepping_batches)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
        return opt

    def on_fit_end(self) -> None:
        """Lightning hook: tear the process group down at exit, after a successful fit only."""
        # As the distillation's ranks do: a gloo group is destroyed at exit (after a successful fit only).
        destroy_process_group_at_exit()


class BestOnValidation(pl.Callback):
    """Keeps (in memory) the weights of the epoch with the highest ``val_balanced_accuracy``."""

    def __init__(self) -> None:
        self.best_score, self.best_epoch, self.best_state = -math.inf, 0, None

    def on_validation_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        """Lightning hook: copy the weights when this epoch's ``val_balanced_accuracy`` is the best so far."""
        if trainer.sanity_checking:
            return
        score = float(trainer.callback_metrics["val_balanced_accuracy"])
        if score > self.best_score:
            self.best_score, self.best_epoch = score, trainer.current_epoch + 1
            self.best_state = copy.deepcopy(module.net.state_dict())


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Lightning's output without its noise (:func:`~gastrodistill.utils.lightning_output.lightning_output`);
    while ``enabled`` also without its per-fit info lines (device summary) and the few-workers warning."""
    with lightning_output(quiet=enabled), warnings.catch_warnings():
        if enabled:
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        yield


def real_trainer(recipe: RealRecipe, progress: bool = False, callbacks: Sequence[Any] = ()) -> pl.Trainer:
    """The Lightning Trainer of the recipe (``accelerator``, ``devices``, ``strategy``, ``precision``);
    building it trains nothing, so :func:`~gastrodistill.evaluation.jobs.validate` builds one to check
    those keys. Raises Lightning's errors (``MisconfigurationException``, ``ValueError``, ``TypeError``,
    ``ImportError``) for a value it refuses or a device this machine lacks."""
    return pl.Trainer(
        max_epochs=recipe.epochs,
        accelerator=recipe.accelerator,
        devices=recipe.devices,
        strategy=recipe.strategy,
        precision=recipe.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        use_distributed_sampler=False,
    )


def train_full_data(
    net: nn.Module,
    train_data: Dataset,
    train_labels: np.ndarray,
    val_data: Dataset,
    recipe: RealRecipe,
    num_classes: int,
    seed_parts: Sequence[Any],
    progress: bool = False,
    num_workers: int = 0,
    callbacks: Sequence[pl.Callback] = (),
) -> tuple[nn.Module, dict[str, float]]:
    """Train ``net`` on ``train_data`` (unaugmented normalised ``(image, label)`` pairs, in memory or
    streamed) with the recipe; returns the network at its best validation epoch and
    ``{"best_epoch", "val_score"}``. Never sees test data. ``progress``: Lightning's bar, redrawn about
    :data:`~gastrodistill.utils.progress.LOG_UPDATES` times over the run when the output is a log file
    (:func:`~gastrodistill.utils.progress.lightning_progress_bar`; it redrew every batch there).
    ``callbacks``: more Lightning callbacks for the fit (the module's network is ``module.net``)."""
    sampler = EpochSampler(train_labels, recipe.balanced, seed_parts)
    if isinstance(train_data, TensorDataset):  # in memory: gather each batch at once (the same batches)
        batches = EpochBatchSampler(sampler, recipe.batch_size, drop_last=False)
        train = DataLoader(train_data, sampler=batches, batch_size=None)
    else:
        train = DataLoader(train_data, batch_size=recipe.batch_size, sampler=sampler, num_workers=num_workers)
    val = DataLoader(val_data, batch_size=1024, shuffle=False, num_workers=num_workers)
    best = BestOnValidation()
    log_bar = lightning_progress_bar(recipe.epochs * len(train)) if progress else None
    with _quiet(not progress):
        trainer = real_trainer(
            recipe, progress, [best, *callbacks, *([log_bar] if log_bar is not None else [])]
        )
    sampler.rank, sampler.world = trainer.global_rank, trainer.world_size  # DDP: each rank its share
    module = FullDataNet(net, recipe, num_classes, seed_parts)
    with _quiet(not progress):
        trainer.fit(module, train, val)
    if best.best_state is not None:
        net.load_state_dict(best.best_state)
    net.eval()
    return net, {"best_epoch": float(best.best_epoch), "val_score": float(best.best_score)}


def in_memory(x: torch.Tensor, y: torch.Tensor) -> TensorDataset:
    """A training set held in memory (normalised float images ``[N, C, H, W]``, labels ``[N]``)."""
    return TensorDataset(x.cpu(), y.cpu())
