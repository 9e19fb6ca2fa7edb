"""Differentiable, label-preserving augmentation for the unroll and the outer loss (DSA).

Differentiable Siamese Augmentation (Zhao & Bilen, ICML 2021) augments the synthetic images inside the
distillation objective with transformations that gradients pass through, so the learned images must stay
informative under them. Here, with pure torch ops:

* ``flip``: horizontal flip with probability 1/2 (never vertical: X-rays are upright);
* ``shift_px``: an integer shift by up to ``shift_px`` pixels on each axis, the uncovered border filled by
  reflection: a random crop of the reflect-padded image at the original size (the CIFAR recipe's crop).
  Exact, with no interpolation, so a texture's finest detail is kept where ``translate`` (bilinear) blurs it;
* ``rotate``: a rotation by an angle uniform in ``[-rotate, rotate]`` degrees;
* ``scale``: zoom by a factor uniform in ``[1 - scale, 1 + scale]`` (a random crop when > 1);
* ``translate``: a shift uniform in ``[-translate, translate]`` of the image size on each axis;
* ``brightness``: add a value uniform in ``[-brightness, brightness]`` (normalised units);
* ``contrast``: scale each image's deviation from its mean by a factor uniform in
  ``[1 - contrast, 1 + contrast]``.

Rotation, scale and translation form one affine map per image applied by ``affine_grid``/``grid_sample``
(bilinear); the flip is an exact mirror. Every parameter is drawn per image from the ``torch.Generator``
given to the call (CPU draws, moved to the images' device), so the same generator state gives the same
output, and :meth:`DSA.sample` / :meth:`DSA.apply` let a Siamese pair share parameters. The output is
linear in the input (for fixed parameters), so gradients reach the images; labels are never touched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from gastrodistill.distillation.errors import DistillConfigError

PADDING_MODES = ("zeros", "border", "reflection")


@dataclass
class DSAParams:
    """Per-image parameters ``[B]`` (``flip`` boolean) of one draw."""

    flip: Tensor
    angle: Tensor  # radians
    scale: Tensor
    shift_x: Tensor  # fraction of the half-width (affine_grid's [-1, 1] units)
    shift_y: Tensor
    brightness: Tensor
    contrast: Tensor
    shift_px_x: Tensor | None = None  # integer pixels, [-shift_px, shift_px]; None when shift_px is 0
    shift_px_y: Tensor | None = None


class DSA:
    """A random, differentiable augmentation of an image batch ``[B, C, H, W]`` (see the module docstring).

    ``real``: whether the outer loss's real batch is augmented too (the distilled batch of every inner step
    always is). ``padding_mode``: how ``grid_sample`` fills outside the image (``zeros`` is the mean of
    the normalised space). Raises ``ValueError`` for negative strengths, ``scale >= 1`` or an unknown
    padding mode.
    """

    def __init__(
        self,
        flip: bool = True,
        rotate: float = 0.0,
        scale: float = 0.0,
        translate: float = 0.0,
        brightness: float = 0.0,
        contrast: float = 0.0,
        real: bool = True,
        padding_mode: str = "zeros",
        shift_px: int = 0,
    ) -> None:
        for name, v in (
            ("rotate", rotate),
            ("scale", scale),
            ("translate", translate),
            ("brightness", brightness),
            ("contrast", contrast),
        ):
            if not (float(v) >= 0 and math.isfinite(float(v))):
                raise DistillConfigError(f"distill.dsa.{name} must be a finite number >= 0, got {v!r}")
        if scale >= 1 or contrast >= 1:
            raise DistillConfigError(
                f"distill.dsa.scale and .contrast must be < 1, got {scale!r} and {contrast!r}"
            )
        if isinstance(shift_px, bool) or int(shift_px) != shift_px or shift_px < 0:
            raise DistillConfigError(
                f"distill.dsa.shift_px must be an integer >= 0 (pixels), got {shift_px!r}"
            )
        if padding_mode not in PADDING_MODES:
            raise DistillConfigError(
                f"distill.dsa.padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}"
            )
        self.flip, self.rotate, self.scale = bool(flip), float(rotate), float(scale)
        self.translate, self.brightness, self.contrast = float(translate), float(brightness), float(contrast)
        self.real = bool(real)
        self.padding_mode = padding_mode
        self.shift_px = int(shift_px)

    @property
    def geometric(self) -> bool:
        """Whether any geometric transform (rotation, scaling, translation) is switched on."""
        return bool(self.rotate or self.scale or self.translate)

    def sample(self, n: int, generator: torch.Generator) -> DSAParams:
        """Draw the parameters of ``n`` images from ``generator`` (the same number of draws for a given
        configuration; the integer shifts are drawn last and only when ``shift_px`` > 0, so settings without
        them draw what they drew before the option existed)."""

        def uniform(half_width: float) -> Tensor:
            return (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * half_width

        params = DSAParams(
            flip=(torch.rand(n, generator=generator) < 0.5) & self.flip,
            angle=uniform(math.radians(self.rotate)),
            scale=1 + uniform(self.scale),
            shift_x=2 * uniform(self.translate),
            shift_y=2 * uniform(self.translate),
            brightness=uniform(self.brightness),
            contrast=1 + uniform(self.contrast),
        )
        if self.shift_px:
            s = self.shift_px
            params.shift_px_x = torch.randint(-s, s + 1, (n,), generator=generator)
            params.shift_px_y = torch.randint(-s, s + 1, (n,), generator=generator)
        return params

    def apply(self, x: Tensor, p: DSAParams) -> Tensor:
        """``x`` ``[B, C, H, W]`` transformed with the parameters ``p`` (differentiable w.r.t. ``x``)."""
        if x.ndim != 4:
            raise ValueError(f"DSA expects images [B, C, H, W], got shape {tuple(x.shape)}")
        dev, dt = x.device, x.dtype
        if self.flip:
            x = torch.where(p.flip.to(dev).view(-1, 1, 1, 1), x.flip(-1), x)
        if self.shift_px:
            x = self._shift(x, p)
        if self.geometric:
            cos, sin = torch.cos(p.angle), torch.sin(p.angle)
            # Output pixel -> input location: rotate, then divide by the zoom, then shift.
            theta = torch.stack(
                [
                    torch.stack([cos / p.scale, -sin / p.scale, p.shift_x], 1),
                    torch.stack([sin / p.scale, cos / p.scale, p.shift_y], 1),
                ],
                1,
            ).to(dev, dt)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=False)
        if self.contrast:
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * p.contrast.to(dev, dt).view(-1, 1, 1, 1) + mean
        if self.brightness:
            x = x + p.brightness.to(dev, dt).view(-1, 1, 1, 1)
        return x

    def _shift(self, x: Tensor, p: DSAParams) -> Tensor:
        """Output pixel (i, j) of image b is input pixel (i - dy_b, j - dx_b), mirrored at the border."""
        s, (b, c, h, w) = self.shift_px, x.shape
        if s >= min(h, w):
            raise ValueError(f"DSA shift_px={s} needs images larger than {s} px, got {h}x{w}")
        if p.shift_px_x is None or p.shift_px_y is None:
            raise ValueError("DSAParams drawn without shift_px: draw them with this DSA's sample()")
        padded = F.pad(x, (s, s, s, s), mode="reflect")
        dev = x.device
        rows = (s - p.shift_px_y).to(dev).view(b, 1, 1, 1) + torch.arange(h, device=dev).view(1, 1, h, 1)
        cols = (s - p.shift_px_x).to(dev).view(b, 1, 1, 1) + torch.arange(w, device=dev).view(1, 1, 1, w)
        # Every index advanced, so the result comes out [B, C, H, W] in the default memory format (a
        # permuted gather came out channels-last, which made bfloat16 convolutions 2-3x slower here).
        batch = torch.arange(b, device=dev).view(b, 1, 1, 1)
        return padded[batch, torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Draw parameters for ``len(x)`` images from ``generator`` and apply them."""
        return self.apply(x, self.sample(len(x), generator))

    def __repr__(self) -> str:
        return (
            f"DSA(flip={self.flip}, rotate={self.rotate}, scale={self.scale}, translate={self.translate}, "
            f"brightness={self.brightness}, contrast={self.contrast}, shift_px={self.shift_px}, "
            f"real={self.real})"
        )
