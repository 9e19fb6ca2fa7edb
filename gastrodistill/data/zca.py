"""Local ZCA whitening: a k x k filter per channel, estimated from the training split's images.

ZCA whitening (Bell & Sejnowski, Vision Research 1997; Krizhevsky, 2009, appendix) maps images through
``C^-1/2``, the inverse square root of their pixel covariance ``C``; for textures its rows are local,
centre-surround filters that remove the correlation between neighbouring pixels and keep the fine grain.
Dataset distillation has used it since KIP (Nguyen, Chen & Lee, ICLR 2021), whose regularisation this
follows: ``eps`` times the mean eigenvalue is added before the inverse square root. Here the covariance
is that of k x k windows (of stationary images, the same statistics a full-image ZCA sees near each
pixel) and the filter is the row of ``C^-1/2`` at the window's centre: a k^2 x k^2 matrix, whatever the
image size, where a full-image ZCA of a 299 px patch would need one of 89,401^2 entries. The images it is
estimated from are read batch by batch and only their windows are kept (``max_windows`` x C x k^2 numbers,
65 MB of float32 for the default 200,000 grey 9 px windows), once per process.

The filter is a fixed first layer of every network of a study (:class:`gastrodistill.models.zca.ZCAWhitening`,
``model.zca_kernel``), so the distilled images stay in the data's normalised pixel space: their pictures,
the anonymity audit and the artifact need nothing undone. Each channel gets its own filter (no
cross-channel terms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor


class ZCAError(ValueError):
    """A ``data.zca`` setting that cannot give a whitening filter (the message names the key)."""


class LocalZCA:
    """``data.zca``: how the local ZCA filter is estimated (``conf/data/*.yaml``; ``null`` = no whitening).

    ``kernel_size`` (px, odd) is the filter's side; ``eps`` the regularisation (times the mean
    eigenvalue, KIP's ``zca_reg``); ``max_images`` training images (a seeded draw) and ``max_windows``
    windows of them (at random positions) estimate the covariance. Raises :class:`ZCAError` naming the key
    for a value out of range.
    """

    def __init__(
        self, kernel_size: int = 9, eps: float = 0.1, max_images: int = 2000, max_windows: int = 200_000
    ) -> None:
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
            raise ZCAError(f"data.zca.kernel_size must be an odd integer >= 1 (px), got {kernel_size!r}")
        if kernel_size % 2 == 0:
            raise ZCAError(
                f"data.zca.kernel_size must be odd, so that the filter has a centre pixel, got {kernel_size} "
                f"(use {kernel_size + 1})"
            )
        if isinstance(eps, bool) or not isinstance(eps, int | float) or not eps > 0:
            raise ZCAError(f"data.zca.eps must be a number > 0, got {eps!r}")
        for key, value in (("max_images", max_images), ("max_windows", max_windows)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ZCAError(f"data.zca.{key} must be an integer >= 2, got {value!r}")
        self.kernel_size = kernel_size
        self.eps = float(eps)
        self.max_images = max_images
        self.max_windows = max_windows

    def settings(self) -> dict[str, Any]:
        """Every setting, defaults written out (what records and checkpoints compare)."""
        return {
            "kernel_size": self.kernel_size,
            "eps": self.eps,
            "max_images": self.max_images,
            "max_windows": self.max_windows,
        }

    def record(self, seed: Any) -> dict[str, Any]:
        """:meth:`settings` and ``seed``, the seed of the draw of training images (``data.seed``): what the
        evaluation's records and a distillation's resume compare (``data.zca.*``)."""
        return {**self.settings(), "seed": seed}

    def __repr__(self) -> str:
        return (
            f"LocalZCA(kernel_size={self.kernel_size}, eps={self.eps}, max_images={self.max_images}, "
            f"max_windows={self.max_windows})"
        )

    def kernel(
        self,
        count: int,
        read: Callable[[list[int]], Iterable[Tensor]],
        generator: torch.Generator,
        shape: tuple[int, int, int],
    ) -> Tensor:
        """The filter ``[C, k, k]`` (float32) of ``count`` training images of shape ``shape`` = ``(C, H, W)``
        px; at most ``max_images`` of them, drawn with ``generator``. ``read(indices)`` gives those images,
        normalised, as consecutive batches ``[n_i, C, H, W]`` in the order asked (a data loader: memory
        holds the batches it reads ahead, the one in use and the windows); the filter is the one
        :func:`zca_kernel` gives for all of them at once. Raises :class:`ZCAError` when the images are
        smaller than the filter, none, or fewer than asked."""
        picks = torch.randperm(count, generator=generator)[: self.max_images].sort().values.tolist()
        windows = gather_windows(
            len(picks), shape, read(picks), self.kernel_size, generator, self.max_windows
        )
        return filter_from_windows(windows, self.kernel_size, self.eps)


def check_filter_fits(kernel_size: int, size: tuple[int, int], size_key: str | None = None) -> None:
    """Refuse a ``kernel_size`` px filter for ``(H, W)`` px images it does not fit (``size_key``: the setting
    that fixes their size, named in the message). Raises :class:`ZCAError`."""
    if kernel_size > min(size):
        where = f" ({size_key})" if size_key else ""
        raise ZCAError(
            f"data.zca.kernel_size = {kernel_size} px is larger than the {size[0]}x{size[1]} px "
            f"images{where}: use at most {largest_odd(min(size))}"
        )


def checked_zca(value: Any) -> LocalZCA | None:
    """``data.zca`` as the data modules take it: ``None`` or a :class:`LocalZCA` (instantiated by Hydra).
    Raises :class:`ZCAError` for anything else."""
    if value is not None and not isinstance(value, LocalZCA):
        raise ZCAError(f"data.zca must be null or a node with _target_: {__name__}.LocalZCA, got {value!r}")
    return value


def largest_odd(side: int) -> int:
    """The largest odd filter size (px) that fits ``side`` px."""
    return side if side % 2 else side - 1


def zca_kernel(
    images: Tensor,
    kernel_size: int,
    eps: float,
    generator: torch.Generator,
    max_windows: int = 200_000,
) -> Tensor:
    """The local ZCA filter ``[C, k, k]`` (float32) of ``images`` ``[N, C, H, W]``: per channel, the centre
    row of ``(C_w + eps * mean(eig C_w) I)^-1/2``, where ``C_w`` is the covariance of ``max_windows``
    k x k windows at positions drawn with ``generator`` (float64 throughout). Convolving an image with it
    (:class:`gastrodistill.models.zca.ZCAWhitening`) makes neighbouring pixels nearly uncorrelated.
    A constant channel (all its window variance 0) gets the identity filter (a 1 at the centre): there is
    nothing to whiten and an inverse square root of 0 would be infinite. Raises :class:`ZCAError` when an
    image side is smaller than ``kernel_size`` or there are no images."""
    if images.ndim != 4 or len(images) == 0:
        raise ZCAError(f"data.zca needs training images [N, C, H, W], got shape {tuple(images.shape)}")
    windows = gather_windows(
        len(images), tuple(images.shape[1:]), [images], kernel_size, generator, max_windows
    )
    return filter_from_windows(windows, kernel_size, eps)


def gather_windows(
    count: int,
    shape: tuple[int, int, int],
    batches: Iterable[Tensor],
    kernel_size: int,
    generator: torch.Generator,
    max_windows: int,
) -> Tensor:
    """``max_windows`` k x k windows ``[max_windows, C, k * k]`` (the images' dtype) of ``count`` images of
    shape ``shape`` = ``(C, H, W)``: window i is cut from image ``which[i]`` at ``(top[i], left[i])``, all
    three drawn with ``generator`` (in that order) before any image is read. ``batches`` gives the images
    as consecutive batches ``[n_i, C, H, W]`` (image 0 first); this function holds one batch at a time. Raises
    :class:`ZCAError` when an image side is smaller than ``kernel_size``, when ``count`` is 0, or when the
    batches hold another shape or another number of images than ``count``."""
    channels, h, w = (int(v) for v in shape)
    k = int(kernel_size)
    check_filter_fits(k, (h, w))
    if count < 1:
        raise ZCAError(
            "data.zca needs training images to estimate its filter from; the training split has none"
        )
    n_windows = int(max_windows)
    which = torch.randint(0, count, (n_windows,), generator=generator)
    top = torch.randint(0, h - k + 1, (n_windows,), generator=generator)
    left = torch.randint(0, w - k + 1, (n_windows,), generator=generator)
    offsets = torch.arange(k)
    out: Tensor | None = None  # in the images' dtype, known at the first batch
    start = 0
    for images in batches:
        if images.ndim != 4 or tuple(images.shape[1:]) != (channels, h, w):
            raise ZCAError(
                f"data.zca needs training images [N, {channels}, {h}, {w}], got a batch of shape "
                f"{tuple(images.shape)}"
            )
        stop = start + len(images)
        here = torch.nonzero((which >= start) & (which < stop)).flatten()
        if out is None:
            out = torch.empty(n_windows, channels, k * k, dtype=images.dtype)
        rows = (top[here, None] + offsets)[:, :, None]  # [n, k, 1]
        cols = (left[here, None] + offsets)[:, None, :]  # [n, 1, k]
        for c in range(channels):
            cut = images[(which[here] - start)[:, None, None], c, rows, cols]
            out[here, c] = cut.reshape(len(here), k * k)
        start = stop
        del images  # let the batch go before the next one is read
    if out is None or start != count:
        raise ZCAError(f"data.zca asked for {count} training images and was given {start}")
    return out


def filter_from_windows(windows: Tensor, kernel_size: int, eps: float) -> Tensor:
    """The filter ``[C, k, k]`` (float32) of windows ``[N, C, k * k]`` (:func:`gather_windows`): per channel
    the centre row of the regularised inverse square root of their covariance (:func:`zca_kernel`)."""
    n_windows, channels, _ = windows.shape
    k = int(kernel_size)
    filters = []
    for c in range(channels):
        patch = windows[:, c].double()
        patch = patch - patch.mean(0)
        cov = patch.T @ patch / max(n_windows - 1, 1)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        eigvals = eigvals.clamp_min(0)
        if not eigvals.mean() > 0:  # a constant channel carries nothing to whiten: pass it through
            identity = torch.zeros(k, k, dtype=torch.float64)
            identity[k // 2, k // 2] = 1.0
            filters.append(identity)
            continue
        inv_sqrt = eigvecs @ torch.diag((eigvals + eps * eigvals.mean()).rsqrt()) @ eigvecs.T
        filters.append(inv_sqrt[(k * k) // 2].reshape(k, k))
    return torch.stack(filters).float()


def zca_of_node(node: Any) -> LocalZCA | None:
    """``data.zca`` (``None`` or its config node) instantiated: ``None`` when off. Raises :class:`ZCAError`
    for a value out of range."""
    if node is None:
        return None
    from hydra.utils import instantiate

    return checked_zca(instantiate(node))


def zca_settings(node: Any) -> dict[str, Any] | None:
    """``data.zca`` (``None`` or its config node) as every setting with the defaults written out
    (:meth:`LocalZCA.settings`), or ``None`` when off: ``kernel_size: 9`` and ``kernel_size: 9, eps: 0.1``
    are one setting. Raises :class:`ZCAError` for a value out of range."""
    zca = zca_of_node(node)
    return zca.settings() if zca is not None else None
