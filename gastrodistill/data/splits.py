"""Patient-level splits: seeded, stratified by diagnosis, independent of manifest row order.

A patient's images always share one split, so no patient leaks between training, validation
(carved from the training patients, for model selection) and test.
"""

from __future__ import annotations

from collections.abc import Mapping

from gastrodistill.utils.seeding import numpy_rng

SPLIT_ORDER = ("train", "val", "test")


def stratified_pick(patients: Mapping[str, str], fraction: float, seed: int, purpose: str) -> set[str]:
    """About ``fraction`` of the patients of each diagnosis, chosen by a seeded shuffle.

    At least one patient per diagnosis is picked (when ``fraction > 0``) and at least one left
    (when the diagnosis has two or more patients), so small data sets still get every split.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"split fraction {fraction} must be in [0, 1)")
    picked: set[str] = set()
    if fraction == 0.0:
        return picked
    for diagnosis in sorted(set(patients.values())):
        ids = sorted(p for p, d in patients.items() if d == diagnosis)
        n = int(round(fraction * len(ids)))
        if len(ids) >= 2:
            n = min(max(n, 1), len(ids) - 1)
        order = numpy_rng(seed, purpose, diagnosis).permutation(len(ids))
        picked.update(ids[i] for i in order[:n])
    return picked


def assign_splits(
    patients: Mapping[str, str],
    manifest_splits: Mapping[str, str] | None,
    test_fraction: float = 0.3,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> dict[str, str]:
    """Patient id -> ``train`` / ``val`` / ``test``.

    ``patients`` maps id -> diagnosis. The manifest's own ``train``/``test`` split wins when given;
    otherwise ``test_fraction`` of each diagnosis goes to test. ``val_fraction`` of the training
    patients of each diagnosis then becomes the validation split.
    """
    if manifest_splits is None:
        test = stratified_pick(patients, test_fraction, seed, "split-test")
        split = {p: ("test" if p in test else "train") for p in patients}
    else:
        split = {p: manifest_splits[p] for p in patients}
    train = {p: d for p, d in patients.items() if split[p] == "train"}
    for p in stratified_pick(train, val_fraction, seed, "split-val"):
        split[p] = "val"
    return split
