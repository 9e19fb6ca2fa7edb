"""Patch labels: 0 irrelevant (outside the stomach), 1 non-gastritis, 2 gastritis.

A patch whose stomach-mask fraction is below ``threshold`` is irrelevant; otherwise it takes its
patient's diagnosis. Rows of ``patch_labels.csv`` (image,row,col,label; row/col are the patch's
top-left pixel in the source image) win over the mask. An image with no mask needs a manual
label for every one of its patches.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping

import numpy as np

from gastrodistill.data.errors import PatchLabelError
from gastrodistill.data.manifest import (
    PATCH_LABELS_NAME,
    Manifest,
    manifest_path,
    raise_if,
    read_csv_text,
    separator_problem,
)
from gastrodistill.data.tiling import Geometry

CLASS_NAMES = ["irrelevant", "non-gastritis", "gastritis"]
IRRELEVANT, NON_GASTRITIS, GASTRITIS = 0, 1, 2


class ManualLabels(dict[str, dict[tuple[int, int], int]]):
    """Manual labels: image key -> {(row, col) px: label}; ``lines[(key, (row, col))]`` is the
    ``patch_labels.csv`` line each came from (the header is line 1), for the errors found later."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.lines: dict[tuple[str, tuple[int, int]], int] = {}


def image_key(rel: str) -> str:
    """The form under which an image path is compared (manifest vs patch_labels.csv; ``\\`` read as ``/``
    in both, :func:`~gastrodistill.data.manifest.manifest_path`)."""
    return os.path.normpath(manifest_path(rel.strip())).replace(os.sep, "/")


def diagnosis_label(diagnosis: str) -> int:
    """Label of a relevant patch of an image with ``diagnosis``: gastritis 2, anything else 1."""
    return GASTRITIS if diagnosis == "gastritis" else NON_GASTRITIS


def mask_fractions(mask: np.ndarray, positions: list[tuple[int, int]], size: int) -> np.ndarray:
    """Share of stomach pixels in each patch."""
    return np.array([float(mask[r : r + size, c : c + size].mean()) for r, c in positions], dtype=np.float64)


def labels_from_mask(
    mask: np.ndarray, positions: list[tuple[int, int]], size: int, threshold: float, diagnosis: str
) -> np.ndarray:
    """Label ``[P]`` (int64) per patch at ``positions`` (``size`` px): the diagnosis label when at least
    ``threshold`` of its pixels are stomach in ``mask``, else irrelevant (0)."""
    frac = mask_fractions(mask, positions, size)
    return np.where(frac >= threshold, diagnosis_label(diagnosis), IRRELEVANT).astype(np.int64)


def _parse_label(value: str) -> int | None:
    v = value.strip().lower()
    if v in CLASS_NAMES:
        return CLASS_NAMES.index(v)
    if v in ("0", "1", "2"):
        return int(v)
    return None


def load_patch_labels(manifest: Manifest) -> ManualLabels:
    """Read ``patch_labels.csv`` if present; every bad row is reported with its line."""
    path = manifest.patch_labels_path
    if path is None:
        return ManualLabels()
    known = {image_key(r.image) for r in manifest.records}
    out = ManualLabels()
    problems: list[str] = []
    with read_csv_text(path, PatchLabelError) as f:
        reader = csv.DictReader(f, skipinitialspace=True)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        need = ["image", "row", "col", "label"]
        if any(c not in columns for c in need):
            raise PatchLabelError(
                separator_problem(path, columns)
                or f"{path}: header must be image,row,col,label; found {columns}"
            )
        reader.fieldnames = columns
        for row in reader:
            where = f"{PATCH_LABELS_NAME} line {reader.line_num}"
            get = {k: (v or "").strip() for k, v in row.items() if k is not None}
            key = image_key(get["image"]) if get.get("image") else ""
            if key not in known:
                problems.append(f"{where}: image {get.get('image')!r} is not in manifest.csv; fix the path")
                continue
            try:
                rc = (int(get["row"]), int(get["col"]))
            except ValueError:
                problems.append(
                    f"{where}: row/col {get['row']!r},{get['col']!r} must be integer pixel offsets"
                )
                continue
            label = _parse_label(get["label"])
            if label is None:
                problems.append(f"{where}: label {get['label']!r} must be 0/1/2 or one of {CLASS_NAMES}")
                continue
            if rc in out.setdefault(key, {}):
                problems.append(
                    f"{where}: patch {rc} of image {get['image']!r} is labelled twice; keep one row"
                )
                continue
            out[key][rc] = label
            out.lines[key, rc] = reader.line_num
    raise_if(problems, f"{path} is invalid", PatchLabelError)
    return out


def check_coverage(
    manifest: Manifest, sizes: Mapping[str, tuple[int, int]], geometry: Geometry, manual: ManualLabels
) -> None:
    """Manual labels must sit on the patch grid (the error names the ``patch_labels.csv`` lines of those that
    do not, when ``manual`` is :func:`load_patch_labels`' answer); images without a mask need them for every
    patch. Raises :class:`PatchLabelError` listing every problem."""
    problems: list[str] = []
    lines = getattr(manual, "lines", {})
    for r in manifest.records:
        h, w = sizes[r.image]
        grid = set(geometry.grid(h, w))
        key = image_key(r.image)
        labels = manual.get(key, {})
        off = sorted(set(labels) - grid)
        if off:
            at = sorted(lines[key, rc] for rc in off if (key, rc) in lines)
            shown = ", ".join(map(str, at[:5])) + (" ..." if len(at) > 5 else "")
            where = f" line{'s' if len(at) > 1 else ''} {shown}" if at else ""
            problems.append(
                f"{PATCH_LABELS_NAME}{where}: image {r.image!r}: {len(off)} row/col pair(s) such as "
                f"{off[0]} are not patch corners (rows {geometry.positions(h)}, cols {geometry.positions(w)})"
            )
        if r.mask is None:
            missing = sorted(grid - set(labels))
            if missing:
                problems.append(
                    f"{r.where}: no mask and no manual label for {len(missing)} of its {len(grid)} patches "
                    f"(first: row/col {missing[0]}); add a mask column entry or rows to {PATCH_LABELS_NAME}"
                )
    raise_if(problems, "patch labels are incomplete", PatchLabelError)


def label_image(
    positions: list[tuple[int, int]],
    size: int,
    diagnosis: str,
    threshold: float,
    mask: np.ndarray | None,
    manual: Mapping[tuple[int, int], int] | None = None,
) -> np.ndarray:
    """Labels of one image's patches (mask-derived, then manual overrides)."""
    manual = manual or {}
    if mask is not None:
        labels = labels_from_mask(mask, positions, size, threshold, diagnosis)
    else:
        labels = np.full(len(positions), -1, dtype=np.int64)
    for i, rc in enumerate(positions):
        if rc in manual:
            labels[i] = manual[rc]
    if (labels < 0).any():
        raise PatchLabelError(f"{int((labels < 0).sum())} patch(es) have neither a mask nor a manual label")
    return labels
