"""The bi-level optimisation as a LightningModule (manual optimisation).

Per outer step, on every rank: fetch this rank's real batch, then for each of ``inner_nets_per_step``
networks (one after another, so memory does not multiply) sample θ₀ from p(θ) with a generator seeded by
``derive_seed(seed, "inner", step, rank, index)`` (or one fixed θ₀ with ``known_init``), unroll T SGD
steps on the distilled set, take the cross-entropy on the real batch and back-propagate it (scaled by
1/n) into the distilled tensors. Under DDP only the last backward all-reduces, so the applied gradient is
the mean over all ranks and networks. Then clip (optional: an absolute norm, and/or ``grad_clip_ema`` times
a running average of past norms), Adam step, StepLR step.

Options of the unroll (see :func:`~gastrodistill.distillation.inner_loop.meta_objective`): a random
truncated window (its end drawn from ``derive_seed(seed, "window", step, rank, index)``), a chunked outer
loss, and differentiable augmentation seeded by ``(seed, "dsa", step, rank, index)``. The inner momentum
is the distilled set's own ``inner_momentum``.

The DistilledSet is the only registered submodule (the inner networks are built inside the step), so
DDP sees exactly the distilled tensors. Every random draw is a pure function of (seed, step, rank,
index): a checkpoint (distilled tensors, Adam and scheduler state, step counter) resumes exactly.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor, nn

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.inner_loop import (
    Augment,
    MetaResult,
    check_backend,
    check_chunk,
    check_momentum,
    check_window,
    meta_objective,
    release_template,
    sample_window_end,
)
from gastrodistill.distillation.plots import grid_image, save_png
from gastrodistill.distillation.real_batches import RealBatchSource
from gastrodistill.models.init import check_scheme, initialize
from gastrodistill.utils.distributed import destroy_process_group_at_exit
from gastrodistill.utils.precision import lightning_precision, precision_autocast
from gastrodistill.utils.seeding import derive_seed, torch_generator


class NonFiniteError(RuntimeError):
    """The outer loss or the meta-gradient became NaN/inf; the message names the outer step."""


_NEVER = 2**62  # "no non-finite value seen yet" in the first-bad-step tracker


def _MIN_OP() -> Any:
    import torch.distributed as dist

    return dist.ReduceOp.MIN if dist.is_available() else "min"


def check_precision(precision: str | int) -> str:
    """``32-true`` (float32) or ``bf16-mixed`` (bfloat16 autocast), Lightning's names as the evaluation
    uses them; the short ``32`` and ``bf16`` are read as those (``utils.precision.lightning_precision``).
    Returns the Lightning name; raises :class:`DistillConfigError` naming the key otherwise."""
    try:
        return lightning_precision(precision, "distill.precision")
    except ValueError as exc:
        raise DistillConfigError(str(exc)) from None


class DistillModule(pl.LightningModule):
    """Learns a :class:`DistilledSet` by the bi-level optimisation of this module's docstring (manual
    optimisation: inner unrolls on fresh networks, outer Adam step on the distilled tensors)."""

    def __init__(
        self,
        distilled: DistilledSet,
        model_factory: Callable[[], nn.Module],
        real_batches: RealBatchSource,
        *,
        seed: int = 0,
        init_scheme: str = "xavier",
        backend: str = "func",
        checkpoint: bool = False,
        inner_nets_per_step: int = 1,
        known_init: bool = False,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., Any] | None = None,
        lr_images: float = 0.01,
        lr_labels: float = 0.01,
        lr_lrs: float = 0.01,
        grad_clip: float | None = None,
        grad_clip_ema: float | None = None,
        grad_clip_ema_decay: float = 0.9,
        window: int | None = None,
        outer_chunk: int | None = None,
        augment: Augment | None = None,
        augment_real: bool = True,
        grid_every: int = 0,
        grid_dir: str | Path | None = None,
        precision: str | int = "32-true",
        channels_last: bool = False,
        log_every: int = 1,
        check_every: int = 1,
        debug_record: bool = False,
        mode: str | None = None,
        batch_real_per_rank: bool = True,
        run_settings: dict[str, Any] | None = None,
        data_source_hash: str | None = None,
    ) -> None:
        super().__init__()
        check_backend(backend, checkpoint)
        check_scheme(init_scheme)
        if inner_nets_per_step < 1:
            raise DistillConfigError(f"distill.inner_nets_per_step must be >= 1, got {inner_nets_per_step}")
        check_momentum(getattr(distilled, "inner_momentum", 0.0))
        check_window(window, distilled.num_inner_steps)
        check_chunk(outer_chunk)
        if grad_clip_ema is not None and not grad_clip_ema > 0:
            raise DistillConfigError(f"distill.grad_clip_ema must be > 0 or null, got {grad_clip_ema!r}")
        if not 0.0 <= grad_clip_ema_decay < 1.0:
            raise DistillConfigError(
                f"distill.grad_clip_ema_decay must be in [0, 1), got {grad_clip_ema_decay!r}"
            )
        self.automatic_optimization = False
        self.distilled = distilled  # the only registered submodule
        # Plain attributes, not submodules: the factory builds unregistered inner networks.
        self.model_factory = model_factory
        self.real_batches = real_batches
        self.seed = int(seed)
        self.init_scheme = init_scheme
        self.backend = backend
        self.use_checkpoint = bool(checkpoint)
        self.inner_nets_per_step = int(inner_nets_per_step)
        self.known_init = bool(known_init)
        self.optimizer_factory = optimizer or functools.partial(torch.optim.Adam, betas=(0.5, 0.999))
        self.scheduler_factory = scheduler
        self.group_lrs = {"images": lr_images, "label_logits": lr_labels, "raw_lrs": lr_lrs}
        self.grad_clip = grad_clip
        self.grad_clip_ema = float(grad_clip_ema) if grad_clip_ema is not None else None
        self.grad_clip_ema_decay = float(grad_clip_ema_decay)
        #: Running average of the meta-gradient norm (None before the first step); saved in checkpoints.
        self.grad_norm_ema: float | None = None
        self.window = window
        self.outer_chunk = outer_chunk
        self.augment = augment
        self.augment_real = bool(augment_real)
        self.grid_every = int(grid_every or 0)
        self.grid_dir = Path(grid_dir) if grid_dir is not None else None
        self.precision = check_precision(precision)
        self.channels_last = bool(channels_last)
        for key, value in (("log_every", log_every), ("check_every", check_every)):
            if int(value) < 1:
                raise DistillConfigError(f"distill.{key} must be >= 1 (outer steps), got {value}")
        self.log_every, self.check_every = int(log_every), int(check_every)
        self.debug_record = bool(debug_record)
        #: False: ``batch_real`` is the global real batch, split across the ranks (ceil(batch / world)).
        self.batch_real_per_rank = bool(batch_real_per_rank)
        self._batch_real = int(real_batches.batch_size)
        #: The label mode this module distils; stored in checkpoints so soft and hard never share one.
        self.mode = mode or distilled.mode
        #: The settings that determine the run (``resume.run_settings``), recorded in checkpoints so that a
        #: resume with other settings is refused (``resume.check_resume_checkpoint``); None: not recorded.
        self.run_settings = run_settings
        #: The distilled data's ``source_hash`` (the data module's), recorded in checkpoints so that a
        #: resume on another collection is refused (``resume.check_resume_data``); None: not recorded.
        self.data_source_hash = data_source_hash
        #: What the last outer step did on this rank (seeds; with ``debug_record`` also the initial-weight
        #: fingerprints of its networks, which cost a device sync per network).
        self.last_step_record: dict[str, Any] = {}
        # First outer step whose loss / meta-gradient was not finite, kept on the device (no sync per step).
        self._first_bad: Tensor | None = None

    # ---- inner networks ---------------------------------------------------------------------------
    def inner_seed(self, step: int, rank: int, index: int) -> int:
        """Seed of inner network ``index`` of ``(step, rank)``: ``derive_seed(seed, "inner", ...)``, or
        one fixed seed with ``known_init``."""
        if self.known_init:
            return derive_seed(self.seed, "inner-fixed")
        return derive_seed(self.seed, "inner", step, rank, index)

    def sample_inner_net(self, step: int, rank: int, index: int) -> nn.Module:
        """A fresh network θ₀ ~ p(θ), a pure function of (seed, step, rank, index); never registered here."""
        net = self.model_factory()
        initialize(net, self.init_scheme, torch_generator(self.inner_seed(step, rank, index)))
        return net.to(device=self.distilled.images.device, dtype=self.distilled.images.dtype)

    def window_end(self, step: int, rank: int, index: int) -> int:
        """The number of inner steps before the outer loss: T, or RaT-BPTT's draw from [W, T]."""
        gen = torch_generator(self.seed, "window", step, rank, index)
        return sample_window_end(self.distilled.num_inner_steps, self.window, gen)

    def inner_net_objective(
        self, x: Tensor, y: Tensor, step: int, rank: int, index: int, outer_chunk: int | None | bool = True
    ) -> tuple[MetaResult, nn.Module]:
        """(outer loss, accuracy and meta-gradient surrogate; the sampled network) for one inner network.

        ``outer_chunk``: True uses ``self.outer_chunk``; None forces the unchunked loss (with logits).
        With ``precision="bf16-mixed"`` it runs under bfloat16 autocast (float32 master tensors).
        """
        net = self.sample_inner_net(step, rank, index)
        with self._autocast():
            result = self._meta_objective(net, x, y, step, rank, index, outer_chunk)
        return result, net

    def _meta_objective(
        self, net: nn.Module, x: Tensor, y: Tensor, step: int, rank: int, index: int, outer_chunk: Any
    ) -> MetaResult:
        return meta_objective(
            net,
            self.distilled,
            x,
            y,
            self.backend,
            self.use_checkpoint,
            window=self.window,
            window_end=self.window_end(step, rank, index),
            outer_chunk=self.outer_chunk if outer_chunk is True else outer_chunk,
            augment=self.augment,
            augment_real=self.augment_real,
            seed_parts=(self.seed, "dsa", step, rank, index),
        )

    def inner_net_loss(
        self, x: Tensor, y: Tensor, step: int, rank: int, index: int
    ) -> tuple[Tensor, Tensor, nn.Module]:
        """(unchunked outer loss with its graph, logits on the real batch, the sampled network)."""
        result, net = self.inner_net_objective(x, y, step, rank, index, outer_chunk=None)
        return result.surrogate, result.logits, net

    def _autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast over the unroll and the real forward when ``precision="bf16-mixed"`` (else
        disabled)."""
        return precision_autocast(self.precision, self.distilled.images.device)

    def real_batch(self, step: int, rank: int) -> tuple[Tensor, Tensor]:
        """This rank's real batch of outer step ``step`` on the module's device: ``[B, C, H, W]``, ``[B]``."""
        device = self.distilled.images.device
        x, y = self.real_batches.get(step, rank, device=device)
        x = x.to(device, self.distilled.images.dtype, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y.to(device, non_blocking=True)

    # ---- optimisation -------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        """Lightning hook: one parameter group per distilled tensor (own lr), and the per-step scheduler."""
        groups = [
            {"params": [p], "lr": self.group_lrs[name], "name": name}
            for name, p in self.distilled.named_parameters()
            if p.requires_grad
        ]
        opt = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return opt
        return {
            "optimizer": opt,
            "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "step"},
        }

    def _no_sync(self) -> contextlib.AbstractContextManager:
        block = getattr(self.trainer.strategy, "block_backward_sync", None)
        return block() if block is not None else contextlib.nullcontext()

    def _fail(self, step: int, what: str) -> None:
        raise NonFiniteError(
            f"outer step {step}: {what}. Check the real data for NaN/inf values, or lower distill.lr_init, "
            f"the outer learning rates or set distill.grad_clip."
        )

    def _due(self, step: int, every: int) -> bool:
        """Whether outer step ``step`` is a logging/checking step (every ``every`` steps and the last one)."""
        last = self.trainer.max_steps is not None and step + 1 >= self.trainer.max_steps
        return (step + 1) % every == 0 or last

    def _track_finite(self, step: int, slot: int, finite: Tensor) -> None:
        """Keep on the device the first step at which slot ``slot`` (0: loss, 1+: params) was not finite."""
        if self._first_bad is None or self._first_bad.device != finite.device:
            n = 1 + len(list(self.distilled.parameters()))
            self._first_bad = torch.full((n,), _NEVER, dtype=torch.int64, device=finite.device)
        here = torch.where(finite, _NEVER, step)
        self._first_bad[slot] = torch.minimum(self._first_bad[slot], here)

    def _check_finite(self, rank: int) -> None:
        """One all-reduce (min over ranks) and one host sync: raise on the first non-finite step seen."""
        if self._first_bad is None:
            return
        local = self._first_bad.clone()
        first = self.trainer.strategy.reduce(self._first_bad.clone(), reduce_op=_MIN_OP())
        first = first.cpu().tolist()
        if min(first) >= _NEVER:
            return
        if first[0] <= min(first[1:], default=_NEVER):
            where = f"on rank {rank}" if int(local[0]) == first[0] else "on another rank"
            self._fail(int(first[0]), f"the outer loss is not finite ({where})")
        names = [n for n, _ in self.distilled.named_parameters()]
        j = min(range(1, len(first)), key=lambda i: first[i])
        self._fail(int(first[j]), f"the meta-gradient of {names[j - 1]!r} is not finite")

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        """Lightning hook: one outer step (inner unrolls, backward, clip, Adam step); returns mean loss."""
        step, rank = int(self.global_step), int(self.global_rank)
        x, y = self.real_batch(step, rank)
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        n = self.inner_nets_per_step
        losses, accs, seeds, fingerprints = [], [], [], []
        for i in range(n):
            result, net = self.inner_net_objective(x, y, step, rank, i)
            loss = result.loss.float()
            seeds.append(self.inner_seed(step, rank, i))
            if self.debug_record:  # a host sync per network: only where a test asks for it
                fingerprints.append(float(sum(p.detach().double().sum() for p in net.parameters())))
            self._track_finite(step, 0, torch.isfinite(loss.detach()))
            with self._no_sync() if i < n - 1 else contextlib.nullcontext():
                self.manual_backward(result.surrogate / n)
            release_template(net)
            losses.append(loss.detach())
            accs.append(result.acc.float())
        for j, p in enumerate(self.distilled.parameters(), start=1):
            if p.grad is not None:
                self._track_finite(step, j, torch.isfinite(p.grad).all())
        if self._due(step, self.check_every):
            self._check_finite(rank)
        if self.grad_clip:
            self.clip_gradients(opt, gradient_clip_val=float(self.grad_clip), gradient_clip_algorithm="norm")
        if self.grad_clip_ema is not None:
            self._clip_to_running_norm()
        opt.step()
        sched = self.lr_schedulers()
        if sched is not None:
            sched.step()
        self.last_step_record = {"step": step, "rank": rank, "seeds": seeds}
        if self.debug_record:
            self.last_step_record["init_fingerprints"] = fingerprints
        mean_loss = torch.stack(losses).mean()
        if self._due(step, self.log_every):
            self._log_step(step, mean_loss, torch.stack(accs).mean())
        elif self.grid_every and (step + 1) % self.grid_every == 0 and self.trainer.is_global_zero:
            self.log_grid(step + 1)
        return mean_loss

    def on_fit_start(self) -> None:
        """Lightning hook: split the global real batch over the ranks (unless ``batch_real_per_rank``)."""
        if not self.batch_real_per_rank:  # each rank's share of the global real batch
            world = max(int(self.trainer.world_size), 1)
            self.real_batches.batch_size = -(-self._batch_real // world)

    def on_fit_end(self) -> None:
        """Lightning hook: tear the process group down at exit, after a successful fit only."""
        # After a successful fit only (a failed rank could wait on a collective in flight when it exits).
        destroy_process_group_at_exit()

    # ---- checkpoints --------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning hook: record the label mode, run settings, data hash and gradient-norm average."""
        checkpoint["gastrodistill"] = {"mode": self.mode}
        if self.run_settings is not None:
            checkpoint["gastrodistill"]["settings"] = self.run_settings
        if self.data_source_hash is not None:
            checkpoint["gastrodistill"]["data_source_hash"] = self.data_source_hash
        checkpoint["grad_norm_ema"] = self.grad_norm_ema

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Lightning hook: restore the gradient-norm average; ``ResumeError`` for another label mode."""
        self.grad_norm_ema = checkpoint.get("grad_norm_ema")
        saved = (checkpoint.get("gastrodistill") or {}).get("mode")
        if saved is not None and saved != self.mode:
            from gastrodistill.distillation.resume import ResumeError

            raise ResumeError(
                f"the checkpoint was written by a {saved!r}-label run; this is the {self.mode!r}-label run. "
                f"Soft and hard runs never share a checkpoint: pass a checkpoint of the {self.mode} run, or "
                f"set distill.mode={saved} to continue that run"
            )
        self._check_checkpoint_fits(checkpoint.get("state_dict") or {})

    def _check_checkpoint_fits(self, saved: dict[str, Tensor]) -> None:
        """Refuse (ResumeError) a checkpoint whose tensors are not this run's: another ipc, image size,
        number of classes or inner-step count, e.g. one of another preset or data set. Called before Lightning
        loads the weights, whose own error would be a traceback of every mismatched tensor."""
        from gastrodistill.distillation.resume import ResumeError

        ours = self.state_dict()
        problems = [
            f"{k} is {list(saved[k].shape)} there but {list(v.shape)} here"
            for k, v in ours.items()
            if k in saved and hasattr(saved[k], "shape") and tuple(saved[k].shape) != tuple(v.shape)
        ]
        missing, unexpected = sorted(set(ours) - set(saved)), sorted(set(saved) - set(ours))
        if missing:
            problems.append(f"it lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            problems.append(f"it has {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}, unknown here")
        if problems:
            raise ResumeError(
                "the checkpoint does not fit this run (" + "; ".join(problems[:4]) + "): it was written with "
                "other settings (distill.ipc, distill.steps, distill.epochs) or other data (image size, "
                "classes). Resume with the config and data that wrote it, or pass a checkpoint of this "
                "experiment"
            )

    @torch.no_grad()
    def _clip_to_running_norm(self) -> None:
        """Scale the meta-gradient to norm <= grad_clip_ema x EMA of past (clipped) norms; update the EMA.

        The first step sets the EMA to its own norm (nothing clipped). The norm is that of the all-reduced
        gradient, so every rank computes the same value and keeps the same EMA.
        """
        grads = [p.grad for p in self.distilled.parameters() if p.grad is not None]
        if not grads:
            return
        norm = float(torch.nn.utils.get_total_norm(grads))  # the global L2 norm, as clip_grad_norm_'s
        if self.grad_norm_ema is None:
            self.grad_norm_ema = norm
            return
        limit = self.grad_clip_ema * self.grad_norm_ema
        if norm > limit:
            for g in grads:
                g.mul_(limit / norm)
            norm = limit
        d = self.grad_clip_ema_decay
        self.grad_norm_ema = d * self.grad_norm_ema + (1.0 - d) * norm

    # ---- logging ------------------------------------------------------------------------------------
    def _log_step(self, step: int, loss: Tensor, acc: Tensor) -> None:
        self.log("outer/loss", loss, on_step=True, prog_bar=True, sync_dist=True)
        self.log("outer/acc", acc, on_step=True, prog_bar=True, sync_dist=True)
        ds = self.distilled
        metrics = {f"lr/{t:03d}": v for t, v in enumerate(ds.lrs().detach().float().cpu().tolist())}
        metrics["labels/entropy"] = float(ds.label_entropy().detach())
        for g in self.optimizers().param_groups:
            metrics[f"opt/lr_{g['name']}"] = float(g["lr"])
        self.log_dict(metrics, on_step=True)
        if self.grid_every and (step + 1) % self.grid_every == 0 and self.trainer.is_global_zero:
            self.log_grid(step + 1)

    def log_grid(self, step: int) -> None:
        """Draw the distilled images with their soft labels: PNG in ``grid_dir``, W&B image (uint8)."""
        image = grid_image(self.distilled, title=f"outer step {step}")
        if self.grid_dir is not None:
            save_png(self.grid_dir / f"step_{step:06d}.png", image)
        for lg in self.loggers:
            if hasattr(lg, "log_image"):
                lg.log_image(key="distilled/grid", images=[image], step=step)
