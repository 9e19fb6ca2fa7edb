"""The learned set: distilled images, their soft-label logits and one learning rate per inner step.

Layout (as in SsnL/dataset-distillation): the images of inner step ``t`` are rows
``[t*K*ipc, (t+1)*K*ipc)``, class-major inside a step (``ipc`` images of class 0, then class 1, ...).
Learning rates are ``softplus(raw_lrs)``, so they stay positive while the raw values move freely; the raw
values start at ``softplus^-1(lr_init)``. Images live in the data module's normalised space.

Saved as ``distilled.safetensors`` (tensors) + ``distilled.json`` (shapes and metadata): no pickle.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from gastrodistill.distillation.inner_loop import is_integer
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.values import is_finite_number

MODES = ("soft", "hard")
TENSOR_FILE = "distilled.safetensors"
META_FILE = "distilled.json"
FORMAT = "gastrodistill.distilled_set/1"
TENSOR_NAMES = ("images", "label_logits", "raw_lrs")


class DistilledSetError(ValueError):
    """A distilled set on disk (or its arguments) is malformed; the message says which file/key and why."""


def inverse_softplus(y: float) -> float:
    """x with softplus(x) == y (y > 0), computed stably."""
    if not y > 0 or not math.isfinite(y):
        raise DistilledSetError(f"lr_init must be a positive finite number, got {y!r}")
    return y + math.log(-math.expm1(-y))


class DistilledSet(nn.Module):
    """Images ``[steps*K*ipc, C, H, W]``, label logits ``[steps*K*ipc, K]``, raw lrs ``[steps*epochs]``.

    ``inner_momentum`` (metadata, not learned) is the momentum of the inner SGD that the set was distilled
    with; :func:`gastrodistill.distillation.inner_loop.replay` uses it. Sets saved before it existed load
    with 0 (plain SGD).
    """

    def __init__(
        self,
        num_classes: int,
        ipc: int,
        steps: int,
        epochs: int,
        image_shape: Sequence[int],
        mode: str = "soft",
        temperature: float = 1.0,
        lr_init: float = 0.02,
        label_init_scale: float = 1.0,
        class_names: Sequence[str] | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        model_config: dict[str, Any] | None = None,
        inner_momentum: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise DistilledSetError(f"mode must be 'soft' or 'hard', got {mode!r}")
        for name, v in (("num_classes", num_classes), ("ipc", ipc), ("steps", steps), ("epochs", epochs)):
            low = 2 if name == "num_classes" else 1
            if not is_integer(v) or v < low:
                raise DistilledSetError(f"{name} must be an integer >= {low}, got {v!r}")
        if (
            isinstance(image_shape, str | bytes)
            or len(image_shape) != 3
            or not all(is_integer(v) and v >= 1 for v in image_shape)
        ):
            raise DistilledSetError(f"image_shape must be 3 positive integers (C, H, W), got {image_shape!r}")
        if not is_finite_number(temperature) or not temperature > 0:
            raise DistilledSetError(f"temperature must be a number > 0, got {temperature!r}")
        if not is_finite_number(inner_momentum) or not 0.0 <= float(inner_momentum) < 1.0:
            raise DistilledSetError(f"inner_momentum must be a number in [0, 1), got {inner_momentum!r}")
        if class_names is not None and (
            isinstance(class_names, str | bytes) or not all(isinstance(c, str) for c in class_names)
        ):
            raise DistilledSetError(f"class_names must be a list of strings, got {class_names!r}")
        for name, v in (("mean", mean), ("std", std)):
            if v is not None and (
                isinstance(v, str | bytes)
                or len(v) != image_shape[0]
                or not all(is_finite_number(x) for x in v)
            ):
                raise DistilledSetError(
                    f"{name} must be a list of {image_shape[0]} numbers (one per channel), got {v!r}"
                )
        self.num_classes, self.ipc, self.steps, self.epochs = (
            int(num_classes),
            int(ipc),
            int(steps),
            int(epochs),
        )
        self.image_shape = tuple(int(s) for s in image_shape)
        self.mode = mode
        self.temperature = float(temperature)
        #: SGD momentum of the inner loop (Deng & Russakovsky 2022); a receiving site replays with it.
        self.inner_momentum = float(inner_momentum)
        self.class_names = (
            list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
        )
        if len(self.class_names) != self.num_classes:
            raise DistilledSetError(f"{len(self.class_names)} class names for {self.num_classes} classes")
        self.mean = list(mean) if mean is not None else None
        self.std = list(std) if std is not None else None
        # The architecture the set was distilled with (``_target_`` and kwargs, path-free); evaluation's
        # "same" architecture is this one.
        self.model_config = dict(model_config) if model_config else None
        #: The ``source_hash()`` of the data module the set was distilled from (recorded by the distillation;
        #: None for a set made otherwise or saved before it was recorded): evaluation and audit refuse a set
        #: of other data (:func:`~gastrodistill.evaluation.checks.check_distilled_set`).
        self.data_source_hash: str | None = None
        n = self.steps * self.num_classes * self.ipc
        self.images = nn.Parameter(torch.zeros(n, *self.image_shape))
        self.label_logits = nn.Parameter(
            F.one_hot(self.hard_labels(), self.num_classes).float() * float(label_init_scale),
            requires_grad=mode == "soft",
        )
        self.raw_lrs = nn.Parameter(torch.full((self.steps * self.epochs,), inverse_softplus(float(lr_init))))

    # ---- views -----------------------------------------------------------------------------------
    @property
    def num_inner_steps(self) -> int:
        """T = steps * epochs: the number of SGD steps a network takes on the set."""
        return self.steps * self.epochs

    @property
    def per_step(self) -> int:
        """Images per inner step: ``num_classes * ipc``."""
        return self.num_classes * self.ipc

    def hard_labels(self) -> Tensor:
        """The class of every image: ``arange(K).repeat_interleave(ipc)``, repeated for each step."""
        return torch.arange(self.num_classes).repeat_interleave(self.ipc).repeat(self.steps)

    def soft_targets(self) -> Tensor:
        """Target distributions: softmax(logits / T) in soft mode, exact one-hot in hard mode."""
        if self.mode == "hard":
            return F.one_hot(self.hard_labels().to(self.images.device), self.num_classes).to(
                self.images.dtype
            )
        return torch.softmax(self.label_logits / self.temperature, dim=1)

    def lrs(self) -> Tensor:
        """The positive per-step learning rates ``softplus(raw_lrs)``, ``[steps*epochs]``."""
        return F.softplus(self.raw_lrs)

    def batch(self, step_index: int) -> tuple[Tensor, Tensor]:
        """(images, target distributions) of inner step ``t`` (the set cycles every ``steps``)."""
        s = int(step_index) % self.steps
        sl = slice(s * self.per_step, (s + 1) * self.per_step)
        return self.images[sl], self.soft_targets()[sl]

    def label_entropy(self) -> Tensor:
        """Mean entropy (nats) of the target distributions: 0 for one-hot, log K for uniform."""
        p = self.soft_targets().detach()
        return -(p * torch.log(p.clamp_min(1e-12))).sum(1).mean()

    # ---- initialisation --------------------------------------------------------------------------
    @torch.no_grad()
    def init_noise(self, generator: torch.Generator) -> DistilledSet:
        """Standard-normal images (the normalised space has unit variance per channel)."""
        self.images.copy_(torch.randn(self.images.shape, generator=generator, dtype=self.images.dtype))
        return self

    @torch.no_grad()
    def init_real(self, datamodule: Any, generator: torch.Generator, split: str = "train") -> DistilledSet:
        """Real training samples of the right class in every slot (``datamodule.sample_per_class``)."""
        x, y = datamodule.sample_per_class(self.steps * self.ipc, generator, split=split)
        k, s, i = self.num_classes, self.steps, self.ipc
        if tuple(x.shape[1:]) != self.image_shape or len(x) != k * s * i:
            raise DistilledSetError(
                f"data module returned {tuple(x.shape)} samples; "
                f"expected {k * s * i} of shape {self.image_shape}"
            )
        expected = torch.arange(k).repeat_interleave(s * i)
        if not torch.equal(y.long().cpu(), expected):
            raise DistilledSetError("sample_per_class must return the samples grouped by class (0, 1, ...)")
        # [K, steps, ipc, ...] -> [steps, K, ipc, ...]: step-major, class-major within a step.
        x = x.reshape(k, s, i, *self.image_shape).transpose(0, 1).reshape(-1, *self.image_shape)
        self.images.copy_(x.to(self.images.dtype))
        return self

    @torch.no_grad()
    def init_class_mean(self, means: Tensor, generator: torch.Generator, noise_std: float) -> DistilledSet:
        """Every image of class c = ``means[c]`` plus N(0, noise_std²) noise; ``means``: ``[K, C, H, W]``."""
        if tuple(means.shape) != (self.num_classes, *self.image_shape):
            raise DistilledSetError(
                f"class means have shape {tuple(means.shape)}; "
                f"expected {(self.num_classes, *self.image_shape)}"
            )
        if not noise_std >= 0:
            raise DistilledSetError(f"distill.class_mean_noise_std must be >= 0, got {noise_std!r}")
        base = means.to(self.images.dtype)[self.hard_labels()]
        noise = torch.randn(self.images.shape, generator=generator, dtype=self.images.dtype)
        self.images.copy_(base + float(noise_std) * noise)
        return self

    # ---- persistence -----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """The set's format and settings (classes, ipc, steps, epochs, ...) as saved beside its tensors."""
        return {
            "format": FORMAT,
            "num_classes": self.num_classes,
            "ipc": self.ipc,
            "steps": self.steps,
            "epochs": self.epochs,
            "image_shape": list(self.image_shape),
            "mode": self.mode,
            "temperature": self.temperature,
            "class_names": self.class_names,
            "mean": self.mean,
            "std": self.std,
            "model": self.model_config,
            "lrs": [float(v) for v in self.lrs().detach().cpu()],
            "inner_momentum": self.inner_momentum,
        } | ({"data_source_hash": self.data_source_hash} if self.data_source_hash is not None else {})

    def save(self, directory: str | os.PathLike) -> Path:
        """Write ``distilled.safetensors`` and ``distilled.json`` into ``directory`` (each atomically)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {n: getattr(self, n).detach().cpu().float().contiguous() for n in TENSOR_NAMES}
        with atomic_path(out / TENSOR_FILE) as tmp:
            save_file(tensors, str(tmp), metadata={"format": FORMAT})
        write_text_atomic(out / META_FILE, json.dumps(self.metadata(), indent=2))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike) -> DistilledSet:
        """Read a set written by :meth:`save`; refuses pickles and malformed or inconsistent files."""
        d = Path(directory)
        tfile, mfile = d / TENSOR_FILE, d / META_FILE
        if not d.is_dir():
            raise DistilledSetError(
                f"{d} is not a folder; pass the folder that holds {TENSOR_FILE} and {META_FILE}"
            )
        if not tfile.is_file() or not mfile.is_file():
            pickles = sorted(
                p.name for p in d.iterdir() if p.suffix in {".pt", ".pth", ".pkl", ".ckpt", ".bin"}
            )
            hint = f" (found {pickles}: pickled files are never loaded)" if pickles else ""
            raise DistilledSetError(f"{d} must contain {TENSOR_FILE} and {META_FILE}{hint}")
        try:
            meta = json.loads(mfile.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DistilledSetError(f"{mfile} is not valid JSON: {e}") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DistilledSetError(f"{mfile}: 'format' must be {FORMAT!r}; this is not a distilled set card")
        try:
            tensors = load_file(str(tfile))
        except (SafetensorError, OSError, ValueError) as e:
            raise DistilledSetError(f"{tfile} is not a valid safetensors file: {e}") from e
        required = ("num_classes", "ipc", "steps", "epochs", "image_shape", "mode", "temperature")
        missing = [k for k in required if k not in meta]
        if missing:
            raise DistilledSetError(f"{mfile} lacks the keys {missing}")
        try:
            ds = cls(
                meta["num_classes"],
                meta["ipc"],
                meta["steps"],
                meta["epochs"],
                meta["image_shape"],
                mode=meta["mode"],
                temperature=meta["temperature"],
                class_names=meta.get("class_names"),
                mean=meta.get("mean"),
                std=meta.get("std"),
                model_config=meta.get("model") if isinstance(meta.get("model"), dict) else None,
                inner_momentum=meta.get("inner_momentum", 0.0),
            )
        except (TypeError, DistilledSetError) as e:
            raise DistilledSetError(f"{mfile}: invalid metadata: {e}") from e
        source = meta.get("data_source_hash")
        if source is not None and not (isinstance(source, str) and re.fullmatch(r"[0-9a-f]{8,64}", source)):
            raise DistilledSetError(
                f"{mfile}: 'data_source_hash' must be the hex digest of the data the set was distilled from, "
                f"got {source!r}; remove the key if the set's data is unknown"
            )
        ds.data_source_hash = source
        if set(tensors) != set(TENSOR_NAMES):
            raise DistilledSetError(
                f"{tfile} must hold exactly {list(TENSOR_NAMES)}, found {sorted(tensors)}"
            )
        with torch.no_grad():
            for name in TENSOR_NAMES:
                param, t = getattr(ds, name), tensors[name]
                if tuple(t.shape) != tuple(param.shape):
                    raise DistilledSetError(
                        f"{tfile}: {name!r} has shape {tuple(t.shape)}, "
                        f"but {META_FILE} implies {tuple(param.shape)}"
                    )
                if not t.is_floating_point() or not torch.isfinite(t).all():
                    raise DistilledSetError(f"{tfile}: {name!r} must be finite floating-point values")
                param.copy_(t)
        return ds
