"""Patient splits: seeded, stratified by diagnosis, no patient in two splits, manifest split respected."""

from __future__ import annotations

import inspect
from collections import Counter

import pytest

from gastrodistill.data.splits import assign_splits, stratified_pick
from gastrodistill.utils.seeding import numpy_rng

PATIENTS = {f"g{i:02d}": "gastritis" for i in range(20)} | {f"n{i:02d}": "non-gastritis" for i in range(40)}


def test_seeded_stratified_split_by_patient():
    split = assign_splits(PATIENTS, None, test_fraction=0.25, val_fraction=0.2, seed=3)
    assert set(split) == set(PATIENTS)  # every patient exactly once
    per = Counter((PATIENTS[p], s) for p, s in split.items())
    assert per[("gastritis", "test")] == 5 and per[("non-gastritis", "test")] == 10
    assert (
        per[("gastritis", "val")] == 3 and per[("non-gastritis", "val")] == 6
    )  # round(0.2 * 15), round(0.2 * 30)
    assert per[("gastritis", "train")] == 12 and per[("non-gastritis", "train")] == 24
    assert assign_splits(PATIENTS, None, 0.25, 0.2, seed=3) == split
    assert assign_splits(PATIENTS, None, 0.25, 0.2, seed=4) != split
    # independent of the order patients come in
    reordered = dict(sorted(PATIENTS.items(), reverse=True))
    assert assign_splits(reordered, None, 0.25, 0.2, seed=3) == split


def test_manifest_split_kept_and_val_carved_from_train():
    given = {p: ("test" if p.endswith(("0", "1")) else "train") for p in PATIENTS}
    split = assign_splits(PATIENTS, given, val_fraction=0.25, seed=0)
    for p, s in split.items():
        assert (s == "test") == (given[p] == "test")
    assert {p for p, s in split.items() if s == "val"} <= {p for p, s in given.items() if s == "train"}
    assert Counter(PATIENTS[p] for p, s in split.items() if s == "val") == {
        "gastritis": 4,
        "non-gastritis": 8,
    }


def test_small_groups_still_get_every_split():
    tiny = {"a": "gastritis", "b": "gastritis", "c": "non-gastritis", "d": "non-gastritis"}
    picked = stratified_pick(tiny, 0.1, seed=0, purpose="x")
    assert Counter(tiny[p] for p in picked) == {"gastritis": 1, "non-gastritis": 1}
    assert stratified_pick({"a": "gastritis"}, 0.5, 0, "x") == set()  # never empties a diagnosis
    assert stratified_pick(tiny, 0.0, 0, "x") == set()
    # round(0.9 x 2) = 2 would take every patient of a diagnosis: one is always left for the other split
    assert Counter(tiny[p] for p in stratified_pick(tiny, 0.9, 0, "x")) == {
        "gastritis": 1,
        "non-gastritis": 1,
    }


def test_a_fraction_of_one_or_below_zero_is_refused():
    """The documented range is [0, 1): 1.0 would ask for every patient (mutant: ``<= 1.0`` accepted it)."""
    for fraction in (1.0, -0.1):
        with pytest.raises(ValueError, match=rf"split fraction {fraction} must be in \[0, 1\)"):
            stratified_pick(PATIENTS, fraction, seed=0, purpose="x")


def test_each_diagnosis_count_is_the_fraction_rounded_to_the_nearest():
    """0.3 x 9 = 2.7 rounds to 3 (truncating gives 2); 0.3 x 8 = 2.4 rounds to 2."""
    nine = {f"g{i}": "gastritis" for i in range(9)} | {f"n{i}": "non-gastritis" for i in range(8)}
    picked = stratified_pick(nine, 0.3, seed=0, purpose="x")
    assert Counter(nine[p] for p in picked) == {"gastritis": 3, "non-gastritis": 2}


def test_the_picked_patients_are_the_first_of_each_diagnosis_seeded_permutation():
    """A recorded split can be recomputed: per diagnosis, the sorted ids permuted by
    numpy_rng(seed, purpose, diagnosis), the first round(fraction x n) taken; test then val ("split-test",
    "split-val"). Kills mutants taking the last n, one generator for all diagnoses, one purpose for both."""

    def pick(patients, fraction, seed, purpose):
        out = set()
        for diagnosis in ("gastritis", "non-gastritis"):
            ids = sorted(p for p, d in patients.items() if d == diagnosis)
            order = numpy_rng(seed, purpose, diagnosis).permutation(len(ids))
            out |= {ids[i] for i in order[: round(fraction * len(ids))]}
        return out

    for seed in (0, 7):
        test = pick(PATIENTS, 0.25, seed, "split-test")
        val = pick({p: d for p, d in PATIENTS.items() if p not in test}, 0.2, seed, "split-val")
        expected = {p: "test" if p in test else "val" if p in val else "train" for p in PATIENTS}
        assert assign_splits(PATIENTS, None, 0.25, 0.2, seed=seed) == expected
        assert stratified_pick(PATIENTS, 0.25, seed, "split-test") == test


def test_the_validation_pick_follows_the_seed_when_the_manifest_gives_the_split():
    """With the manifest's train/test, only the validation pick is seeded: another seed, other val patients
    (mutant: the val pick ignored the seed, and only the test pick, unused here, followed it)."""
    given = {p: ("test" if p.endswith("0") else "train") for p in PATIENTS}
    vals = {
        seed: frozenset(p for p, s in assign_splits(PATIENTS, given, seed=seed).items() if s == "val")
        for seed in range(3)
    }
    assert len(set(vals.values())) == 3


def test_the_default_fractions_and_seed_are_the_gastric_configs():
    """A caller leaving them out splits as data=gastric does (test_fraction 0.3, val_fraction 0.2, seed 0)."""
    from omegaconf import OmegaConf

    from gastrodistill.cli import CONF_DIR

    conf = OmegaConf.load(f"{CONF_DIR}/data/gastric.yaml")
    default = inspect.signature(assign_splits).parameters
    assert {k: default[k].default for k in ("test_fraction", "val_fraction", "seed")} == {
        "test_fraction": conf.test_fraction,
        "val_fraction": conf.val_fraction,
        "seed": conf.split_seed,
    }
