"""Builders for small labelled collections (npz files and class folders) in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def class_images(rng: np.random.Generator, labels: np.ndarray, size: int, channels: int) -> np.ndarray:
    """uint8 ``[N, H, W(, C)]`` images whose class is visible: brightness and a stripe pattern per class."""
    n = len(labels)
    base = rng.integers(0, 60, (n, size, size, channels)).astype(np.int64)
    for i, c in enumerate(labels):
        pattern = ((np.arange(size)[:, None] // (2 + int(c))) % 2) * 80  # horizontal stripes, period by class
        base[i] += 40 * int(c) + pattern[:, :, None]
    out = np.clip(base, 0, 255).astype(np.uint8)
    return out[..., 0] if channels == 1 else out


@pytest.fixture
def make_npz(tmp_path) -> Callable[..., Path]:
    """Write a MedMNIST-layout npz (``counts`` per split, ``k`` classes); keyword arrays replace keys."""

    def _make(
        name: str = "data.npz",
        k: int = 3,
        channels: int = 1,
        size: int = 12,
        counts: tuple[int, int, int] = (60, 15, 30),
        label_shape: str = "column",
        seed: int = 0,
        **extra: np.ndarray,
    ) -> Path:
        rng = np.random.default_rng(seed)
        arrays: dict[str, np.ndarray] = {}
        for split, n in zip(("train", "val", "test"), counts, strict=True):
            y = np.arange(n) % k
            rng.shuffle(y)
            arrays[f"{split}_images"] = class_images(rng, y, size, channels)
            arrays[f"{split}_labels"] = y.reshape(-1, 1).astype(np.uint8) if label_shape == "column" else y
        arrays.update(extra)
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return _make


@pytest.fixture
def make_folder(tmp_path) -> Callable[..., Path]:
    """Write ``root/<class>/<i>.png`` (or ``root/<split>/<class>/...``) with ``n`` images per class."""

    def _make(
        name: str = "folder",
        classes: tuple[str, ...] = ("benign", "malignant"),
        n: int = 10,
        channels: int = 1,
        size: int = 12,
        splits: tuple[str, ...] | None = None,
        seed: int = 0,
    ) -> Path:
        rng = np.random.default_rng(seed)
        root = tmp_path / name
        for split in splits or (None,):
            for c, cls in enumerate(classes):
                d = root / cls if split is None else root / split / cls
                d.mkdir(parents=True, exist_ok=True)
                imgs = class_images(rng, np.full(n, c), size, channels)
                for i, img in enumerate(imgs):
                    Image.fromarray(img).save(d / f"{cls}_{i:03d}.png")
        return root

    return _make
