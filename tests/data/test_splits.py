"""Patient splits: seeded, stratified by diagnosis, no patient in two splits, manifest split respected."""

from __future__ import annotations

from collections import Counter

from gastrodistill.data.splits import assign_splits, stratified_pick

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
