"""Checks that a loaded distilled set belongs to the data it is evaluated, audited or published with.

A set records its image shape, class names and the normalisation of the data it was distilled from
(``distilled.json``); a set whose shape, channels, classes or normalisation differ from the data
module's would be trained and scored in the wrong space, silently. :func:`check_distilled_set` refuses
it with a message that names what differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from gastrodistill.models.zca import ZCA_KEY

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet


class DistilledSetMismatch(ValueError):
    """A distilled set does not match the data module (shape, channels, classes or normalisation)."""


def check_distilled_set(
    name: str, ds: DistilledSet, dm: ImageDataModule, rtol: float = 1e-4, atol: float = 1e-6
) -> None:
    """Raise :class:`DistilledSetMismatch` naming every field where ``ds`` differs from ``dm``.

    Compared: channels and image size (``ds.image_shape`` against ``dm.image_shape``), number and names
    of the classes, the per-channel mean and std (``np.allclose`` with ``rtol``/``atol``), the data's
    ``source_hash()`` when the set records the one it was distilled from (``data_source_hash``: other
    images, labels or splits would audit it against data it never saw, and may test it on patients it was
    distilled from), and whether both whiten (a ZCA filter recorded with the set, ``data.zca`` set) by one
    filter (the same tolerance). A set without recorded mean and std is refused too: its space is unknown.
    """
    problems: list[str] = []
    shape = tuple(int(v) for v in ds.image_shape)
    want = tuple(int(v) for v in dm.image_shape)
    if shape[0] != want[0]:
        problems.append(f"channels: set {shape[0]}, data {want[0]}")
    if shape[1:] != want[1:]:
        problems.append(f"image size: set {shape[1:]}, data {want[1:]}")
    if int(ds.num_classes) != int(dm.num_classes):
        problems.append(f"number of classes: set {ds.num_classes}, data {dm.num_classes}")
    elif list(ds.class_names) != list(dm.class_names):
        problems.append(f"class names: set {list(ds.class_names)}, data {list(dm.class_names)}")
    for key in ("mean", "std"):
        mine, theirs = getattr(ds, key, None), getattr(dm, key, None)
        if mine is None:
            problems.append(f"normalisation {key}: the set records none (data {list(theirs)})")
        elif len(mine) != len(theirs) or not np.allclose(mine, theirs, rtol=rtol, atol=atol):
            problems.append(
                f"normalisation {key}: set {[round(float(v), 6) for v in mine]}, "
                f"data {[round(float(v), 6) for v in theirs]}"
            )
    source = getattr(ds, "data_source_hash", None)
    here = dm.source_hash() if source is not None else None
    if source is not None and source != here:
        problems.append(
            f"data: the set was distilled from other data (data source hash {source[:12]}... in its "
            f"distilled.json, {here[:12]}... here: other images, labels, masks, splits or patch "
            "settings such as data.mask_threshold; for the same files on another machine, other versions of "
            "the image readers: compare the packages in the two runs' run_info.json)"
        )
    recorded = getattr(ds, "model_config", None) or {}
    if (ZCA_KEY in recorded) != (getattr(dm, "zca", None) is not None):
        problems.append(
            "ZCA whitening: the set was distilled behind a filter (model.zca_kernel in its distilled.json) "
            "and data.zca is null"
            if ZCA_KEY in recorded
            else "ZCA whitening: the set was distilled without a filter and data.zca is set (its baselines "
            "would see other inputs than its networks)"
        )
    elif ZCA_KEY in recorded:  # both whiten: by one filter, or the baselines would see other inputs
        theirs = dm.zca_kernel()
        mine = np.asarray(recorded[ZCA_KEY], dtype=np.float64)
        if mine.shape != tuple(theirs.shape) or not np.allclose(mine, theirs.double().numpy(), rtol, atol):
            problems.append(
                f"ZCA whitening: the set's filter ({mine.shape[-1]} px) is not the one data.zca gives "
                f"({theirs.shape[-1]} px, from {dm.zca!r} and data.seed {dm.seed})"
            )
    if problems:
        raise DistilledSetMismatch(
            f"distilled set {name!r} does not match the data module: "
            + "; ".join(problems)
            + ". Evaluate or audit it with the data it was distilled from: paths.data_root (or data.root / "
            "data.path), data, data.storage_size, data.zca and synthetic.seed as in the config.yaml of its "
            "run (a command without paths.data_root reads the default collection); to test it on another "
            "site's data, use "
            "gastrodistill-train-from-artifact, which maps that data to the set's normalisation and size."
        )


def check_distilled_sets(sets: Mapping[str, Any], dm: ImageDataModule) -> None:
    """:func:`check_distilled_set` for every named set."""
    for name, ds in sets.items():
        check_distilled_set(name, ds, dm)
