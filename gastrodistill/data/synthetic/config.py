"""The generator's knobs in one validated dataclass, and the hash that decides whether a folder is current."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gastrodistill.utils.hashing import sha256_json
from gastrodistill.utils.values import check_switch

#: Bumped whenever the rendering changes, so that cached folders from older code are regenerated.
GENERATOR_VERSION = "4"

FORMATS = ("png", "dicom")


class SyntheticConfigError(ValueError):
    """A generator setting that is out of range; the message names the key and what to use instead."""


def _range(value: Sequence[float], key: str, lo: float = 0.0, hi: float | None = None) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise SyntheticConfigError(
            f"synthetic.{key} must be a pair [low, high] of numbers, got {value!r}"
        ) from exc
    if not (lo <= a <= b) or (hi is not None and b > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise SyntheticConfigError(f"synthetic.{key} = [{a}, {b}] must satisfy low <= high within {bound}")
    return a, b


@dataclass(frozen=True)
class SyntheticConfig:
    """Counts, geometry and appearance of a synthetic gastric X-ray collection (SPEC §1.3).

    Pixel-unit settings (cell sizes, blur) are in pixels of the written image: the patch grid is in
    pixels too (299/50), so the texture scale per patch does not depend on ``image_size``.
    """

    name: str = "default"
    train_gastritis: int = 24
    train_non_gastritis: int = 24
    test_gastritis: int = 12
    test_non_gastritis: int = 28
    images_per_patient: int = 2
    image_size: int = 1280
    format: str = "png"
    burn_in_text: bool = True
    # Disease: per-patient severity in [0, 1] (0 = normal fine mucosa, 1 = fully coarse); ranges overlap.
    gastritis_severity: tuple[float, float] = (0.3, 1.0)
    non_gastritis_severity: tuple[float, float] = (0.0, 0.4)
    # Within-stomach patchiness of the severity (std of a smooth field added to the patient's severity).
    patchiness: float = 0.2
    # Mucosal texture (areae gastricae) cell sizes in pixels: fine/regular vs coarse/irregular.
    fine_cell_px: tuple[float, float] = (9.0, 13.0)
    coarse_cell_px: tuple[float, float] = (22.0, 36.0)
    # Contrast of the barium-coated mucosa (attenuation units), varies with coating quality per image.
    mucosa_contrast: tuple[float, float] = (0.10, 0.22)
    # Share of the stomach covered by pooled barium, per image.
    pool_fraction: tuple[float, float] = (0.0, 0.2)
    # Acquisition: photon counts per unattenuated pixel, focal/detector blur (px).
    dose: tuple[float, float] = (3000.0, 20000.0)
    blur_px: tuple[float, float] = (0.6, 1.8)
    # Stomach size relative to the default anatomy (1.0 covers roughly half of the image).
    stomach_scale: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        counts = {
            k: getattr(self, k)
            for k in ("train_gastritis", "train_non_gastritis", "test_gastritis", "test_non_gastritis")
        }
        for key, n in counts.items():
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                raise SyntheticConfigError(f"synthetic.{key} must be a non-negative integer, got {n!r}")
        if counts["train_gastritis"] + counts["train_non_gastritis"] == 0:
            raise SyntheticConfigError("synthetic: the training split needs at least one patient")
        if (
            not isinstance(self.images_per_patient, int)
            or isinstance(self.images_per_patient, bool)
            or self.images_per_patient < 1
        ):
            raise SyntheticConfigError(
                f"synthetic.images_per_patient must be an integer >= 1, got {self.images_per_patient!r}"
            )
        if (
            not isinstance(self.image_size, int)
            or isinstance(self.image_size, bool)
            or not 128 <= self.image_size <= 8192
        ):
            raise SyntheticConfigError(
                f"synthetic.image_size must be an integer in [128, 8192] pixels, got {self.image_size!r}"
            )
        check_switch(self.burn_in_text, "synthetic.burn_in_text", SyntheticConfigError)
        if self.format not in FORMATS:
            raise SyntheticConfigError(f"synthetic.format must be one of {FORMATS}, got {self.format!r}")
        if not self.name or "/" in self.name or "\\" in self.name:
            raise SyntheticConfigError(f"synthetic.name must be a plain non-empty name, got {self.name!r}")
        if isinstance(self.patchiness, bool) or not 0.0 <= float(self.patchiness) <= 1.0:
            raise SyntheticConfigError(f"synthetic.patchiness must lie in [0, 1], got {self.patchiness!r}")
        ranges = {
            "gastritis_severity": (0.0, 1.0),
            "non_gastritis_severity": (0.0, 1.0),
            "fine_cell_px": (3.0, 256.0),
            "coarse_cell_px": (3.0, 256.0),
            "mucosa_contrast": (0.0, 2.0),
            "pool_fraction": (0.0, 0.9),
            "dose": (10.0, 1e7),
            "blur_px": (0.0, 20.0),
            "stomach_scale": (0.3, 1.5),
        }
        for key, (lo, hi) in ranges.items():
            object.__setattr__(self, key, _range(getattr(self, key), key, lo, hi))
        object.__setattr__(self, "patchiness", float(self.patchiness))

    @classmethod
    def from_params(cls, **params: Any) -> SyntheticConfig:
        """Build from keyword settings (e.g. a Hydra node), rejecting unknown keys by name."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise SyntheticConfigError(
                f"unknown synthetic setting(s) {unknown}; valid keys are {sorted(known)}"
            )
        return cls(**params)

    @property
    def patients(self) -> dict[tuple[str, str], int]:
        """Number of patients per (split, diagnosis)."""
        return {
            ("train", "gastritis"): self.train_gastritis,
            ("train", "non-gastritis"): self.train_non_gastritis,
            ("test", "gastritis"): self.test_gastritis,
            ("test", "non-gastritis"): self.test_non_gastritis,
        }

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (tuples as lists)."""
        d = dataclasses.asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    def content_hash(self, seed: int) -> str:
        """Everything that determines the written bytes: settings, seed and generator version."""
        return sha256_json({"config": self.to_dict(), "seed": int(seed), "version": GENERATOR_VERSION})
