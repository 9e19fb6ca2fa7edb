"""A lower bound of the memory a distillation needs, checked before anything is allocated.

A huge ``distill.ipc`` (100,000 on the tiny preset) grew to 24 GB and was killed by the kernel's
out-of-memory killer without a word, on a shared host possibly taking other processes with it (a
breaker's finding). Two terms bound the need from below, whatever the backend:

- the distilled tensors with their gradient and Adam's two moments: ``4 x steps x K x ipc x C x H x W x
  4`` bytes;
- the unroll's saved activations: each differentiable inner step (``distill.window``, else T = ``steps x
  epochs``) keeps, for its ``K x ipc`` images, what autograd saves in the network's forward pass and in
  the backward pass the meta-gradient differentiates again, measured per image on a real network
  (``torch.autograd.graph.saved_tensors_hooks``), and what ``distill.dsa`` saves and makes (its output, a
  new tensor unless it changes nothing), measured the same way; halved for bfloat16. With
  ``distill.checkpoint`` a step keeps its inputs only (the weights, left out, and its distilled batch: a
  slice of the set, counted above, or the augmentation's tensors), plus one step's activations,
  recomputed in the backward pass.

Weight copies, the real batch and the optimiser's temporaries are left out, so the bound never refuses a
run that fits; a run refused by it would not have fitted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import hydra
import torch
from omegaconf import DictConfig

from gastrodistill.data.sizes import FLOAT_BYTES, available_memory
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.module import check_precision
from gastrodistill.utils.values import human_bytes


def _growth_per_image(
    step: Callable[[torch.Tensor, int], torch.Tensor | None], image_shape: tuple[int, int, int]
) -> int:
    """Bytes that ``step(x, n)`` keeps per image of a random float32 batch ``x`` ``[n, C, H, W]``: the
    storages autograd saves while it runs, and its output when it returns a new tensor, each storage
    counted once (a view saved by the next layer shares it) and ``x``'s not at all; the difference between
    2 and 1 images, so what does not grow with the batch (weights, their gradients) drops out. On the CPU."""
    gen = torch.Generator().manual_seed(0)

    def kept(n: int) -> int:
        x = torch.randn(n, *image_shape, generator=gen).requires_grad_()
        seen, total = {x.untyped_storage().data_ptr()}, 0

        def pack(t: torch.Tensor) -> torch.Tensor:
            nonlocal total
            if t.untyped_storage().data_ptr() not in seen:
                seen.add(t.untyped_storage().data_ptr())
                total += t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = step(x, n)
        if out is not None:
            pack(out)
        return total

    return max(0, kept(2) - kept(1))


def saved_bytes_per_image(network: torch.nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Bytes one inner step keeps for the meta-gradient per image ``[C, H, W]``: what autograd saves in a
    forward pass of ``network`` and in the backward pass that the unroll differentiates again
    (``create_graph=True``, as every differentiable inner step), float32 (:func:`_growth_per_image`); the
    input not at all (the distilled images are counted apart)."""
    params = [p for p in network.parameters() if p.requires_grad]
    network = network.train()

    def step(x: torch.Tensor, _n: int) -> None:
        loss = network(x).logsumexp(dim=1).sum()
        torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)  # as the inner step

    return _growth_per_image(step, image_shape)


def augment_bytes_per_image(augment: Callable[..., torch.Tensor], image_shape: tuple[int, int, int]) -> int:
    """Bytes an inner step keeps per image ``[C, H, W]`` for ``augment`` (``distill.dsa``): what autograd
    saves in it and its output when that is a new tensor (the step's input: saved by the network's first
    layer, or kept by the checkpoint; 0 for an augmentation that changes nothing and returns its input),
    float32 (:func:`_growth_per_image`)."""
    return _growth_per_image(lambda x, n: augment(x, torch.Generator().manual_seed(n)), image_shape)


def distill_memory_lower_bound(
    d: DictConfig,
    num_classes: int,
    image_shape: tuple[int, int, int],
    per_image: int,
    augment_per_image: int = 0,
) -> tuple[int, int, int]:
    """``(total, set, unroll)`` bytes: a lower bound of what distilling with ``d`` (``cfg.distill``) needs
    for ``num_classes`` classes of images ``[C, H, W]`` whose forward pass saves ``per_image`` bytes each
    (:func:`saved_bytes_per_image`) and whose augmentation keeps ``augment_per_image``
    (:func:`augment_bytes_per_image`; 0 without ``distill.dsa``); see the module docstring for the terms."""
    per_step = num_classes * int(d.ipc)
    image_bytes = FLOAT_BYTES * int(torch.Size(image_shape).numel())
    set_bytes = 4 * int(d.steps) * per_step * image_bytes
    kept = int(d.get("window") or int(d.steps) * int(d.epochs))
    bf16 = check_precision(d.get("precision", "32-true")) == "bf16-mixed"
    activations, augmented = (
        (per_image // 2, augment_per_image // 2) if bf16 else (per_image, augment_per_image)
    )
    if d.get("checkpoint"):  # each step keeps its augmented batch; the activations of one step at a time
        unroll = kept * per_step * augmented + per_step * activations
    else:
        unroll = kept * per_step * (activations + augmented)
    return set_bytes + unroll, set_bytes, unroll


def device_memory(trainer_cfg: DictConfig) -> tuple[int | None, str]:
    """Free bytes of the device the trainer will use and its name: a CUDA device's free memory when the
    trainer asks for one (``accelerator`` gpu/cuda, or auto with CUDA present), else the process's
    available CPU memory (:func:`~gastrodistill.data.sizes.available_memory`); None when unknown."""
    accelerator = str(trainer_cfg.get("accelerator", "cpu")).lower()
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            return None, "GPU memory"
        index = _cuda_index(trainer_cfg.get("devices"))
        return int(torch.cuda.mem_get_info(index)[0]), f"free memory of GPU {index}"
    return available_memory(), "available CPU memory"


def _cuda_index(devices: object) -> int:
    """The CUDA device this process will use: its local rank's entry of ``trainer.devices`` when that is a
    list (``[1]``: GPU 1), else its local rank (Lightning gives rank k device k), before Lightning selects
    it (the default device is GPU 0 for every rank until then)."""
    from gastrodistill.utils.distributed import local_rank

    rank = local_rank()
    if isinstance(devices, str) and "," in devices:
        devices = [d for d in devices.split(",") if d.strip()]
    if isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) > rank:
        return int(devices[rank])
    return rank


def check_distill_memory(
    d: DictConfig,
    network: Callable[[], torch.nn.Module],
    num_classes: int,
    image_shape: tuple[int, int, int],
    trainer_cfg: DictConfig,
) -> None:
    """Refuse, before the distilled set is allocated, a distillation whose lower bound
    (:func:`distill_memory_lower_bound`) exceeds the device's free memory (:func:`device_memory`);
    nothing is refused when the system does not say. ``network`` builds one network of the run.

    Raises:
        DistillConfigError: naming the settings, both terms, the memory available and what to lower.
    """
    have, where = device_memory(trainer_cfg)
    if have is None:
        return
    with torch.random.fork_rng(devices=[]):  # the probe network's init leaves the run's random streams alone
        per_image = saved_bytes_per_image(network(), image_shape)
    augment = hydra.utils.instantiate(d.dsa) if d.get("dsa") else None  # as the distillation builds it
    augment_per_image = augment_bytes_per_image(augment, image_shape) if augment is not None else 0
    need, set_bytes, unroll = distill_memory_lower_bound(
        d, num_classes, image_shape, per_image, augment_per_image
    )
    if need <= have:
        return
    c, h, w = image_shape
    kept = [] if d.get("window") else ["distill.window=N"]
    kept += [] if d.get("checkpoint") else ["distill.checkpoint=true"]
    fewer = f", or keep fewer inner steps differentiable ({' or '.join(kept)})" if kept and unroll > 0 else ""
    raise DistillConfigError(
        f"distill.ipc={int(d.ipc)}, distill.steps={int(d.steps)}, distill.epochs={int(d.epochs)} on "
        f"{num_classes} classes of {c}x{h}x{w} images need at least {human_bytes(need, iec=True)} (the "
        f"distilled set with its gradient and Adam state {human_bytes(set_bytes, iec=True)}, the unroll's "
        f"saved activations {human_bytes(unroll, iec=True)}), more than the {human_bytes(have, iec=True)} of "
        f"{where}; lower distill.ipc or distill.steps{fewer}"
    )
