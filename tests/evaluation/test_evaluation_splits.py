"""evaluation/splits.py: a split cached as stored or streamed gives the dataset's normalised images in order,
the memory limits at their bounds, the patient classes and the splits a context reads (gaps a mutation
review found)."""

from __future__ import annotations

import difflib

import numpy as np
import pytest
import torch

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.splits import (
    SplitCache,
    build_context,
    check_evaluation_data,
    check_random_subset_size,
    class_index,
)

SMALL = ["model.width=8", "model.depth=2", "eval.patient.threshold_fallback=cv", "eval.progress=false"]


def _stored_dm(dtype, n_val: int = 7) -> TensorImageDataModule:
    """Two-channel 3 x 4 px images stored as ``dtype`` (full range), ``n_val`` validation images."""
    rng = np.random.default_rng(1)
    top = np.iinfo(dtype).max
    splits = {
        split: (rng.integers(0, top, (n, 2, 3, 4), endpoint=True).astype(dtype), np.arange(n) % 2)
        for split, n in (("train", 10), ("val", n_val), ("test", 5))
    }
    return TensorImageDataModule(splits=splits, class_names=["a", "b"])


def _by_hand(dm: TensorImageDataModule, split: str) -> np.ndarray:
    """``(pixels / full scale - mean) / std`` per channel, in numpy."""
    x, _ = dm._splits[split]
    unit = x.astype(np.float64) / np.iinfo(x.dtype).max
    mean = np.asarray(dm.mean).reshape(1, -1, 1, 1)
    std = np.asarray(dm.std).reshape(1, -1, 1, 1)
    return (unit - mean) / std


def test_a_uint8_split_is_cached_up_to_its_stored_size_and_streamed_above_it_with_the_same_images():
    """7 uint8 images of 2 x 3 x 4 are 168 bytes: cached at a limit of 168 (mutants: ``<``, never cached as
    stored), streamed at 167; both give the hand-normalised images in split order, batch by batch with a
    shorter last batch (mutants: 256 for 255, no scaling, shuffled or rescaled stream, a dropped row)."""
    dm = _stored_dm(np.uint8)
    want = _by_hand(dm, "val")
    for limit, cached in ((168, True), (167, False)):
        cache = SplitCache(dm, "val", limit, batch_size=3)
        assert cache.cached is cached and len(cache) == 7
        assert [len(b) for b in cache.batches()] == [3, 3, 1]
        x, y = cache.tensors()
        assert x.dtype == torch.float32
        np.testing.assert_allclose(x.numpy(), want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(y.numpy(), np.arange(7) % 2)


def test_another_depth_is_cached_as_float32_up_to_four_bytes_a_pixel():
    """uint16 images are cached normalised as float32: 7 x 24 pixels x 4 bytes = 672 bytes cached, 671
    streamed (mutants: one byte a pixel counted; ``<``); the images are the same either way."""
    dm = _stored_dm(np.uint16)
    want = _by_hand(dm, "val")
    for limit, cached in ((672, True), (671, False)):
        cache = SplitCache(dm, "val", limit, batch_size=4)
        assert cache.cached is cached
        np.testing.assert_allclose(cache.tensors()[0].numpy(), want, rtol=1e-5, atol=1e-5)


def test_patients_need_both_ids_and_labels_and_a_positive_class(compose_cfg, patient_dm):
    """A split with patient ids but no patient labels has no patients; a context without a positive class
    (``eval.patient.positive_class=null``) or without patients in its fitting split computes no patient
    metrics (mutants: any of the three checks dropped)."""

    class IdsOnly(type(patient_dm)):
        def patient_labels(self, split):
            return None

    ids_only = IdsOnly(patient_dm._splits, patient_dm._pids, patient_dm._plabels)
    assert not SplitCache(ids_only, "val", 2**20, 64).has_patients
    assert SplitCache(patient_dm, "val", 2**20, 64).has_patients
    assert build_context(compose_cfg(SMALL), patient_dm).patients
    no_positive = build_context(compose_cfg([*SMALL, "eval.patient.positive_class=null"]), patient_dm)
    assert no_positive.positive_class is None and not no_positive.patients

    class NoTrainingPatients(type(patient_dm)):
        def patient_ids(self, split):
            return None if split == "train" else super().patient_ids(split)

    no_fit = NoTrainingPatients(patient_dm._splits, patient_dm._pids, patient_dm._plabels)
    ctx = build_context(compose_cfg([*SMALL, "eval.threshold_source=train"]), no_fit)
    assert ctx.test.has_patients and not ctx.fit.has_patients and not ctx.patients


@pytest.mark.parametrize("source", ["val", "train"])
def test_the_context_fits_on_the_threshold_source_and_pools_the_other_fitting_split_once(
    compose_cfg, patient_dm, source
):
    """``eval.threshold_source`` names the fitting split and cross-validation pools the other one, read on
    first use and kept (mutants: fit always on val, the other split named after the source); the policy
    is seeded by ``seed``; ``eval.max_in_memory_mb`` counts mebibytes (the 45 KiB validation split is
    cached at 1 MiB, streamed at 0)."""
    cfg = compose_cfg([*SMALL, f"eval.threshold_source={source}", "seed=7", "eval.max_in_memory_mb=1"])
    ctx = build_context(cfg, patient_dm)
    other = {"val": "train", "train": "val"}[source]
    assert (ctx.fit.split, ctx.val.split, ctx.test.split, ctx.other_fit) == (source, "val", "test", other)
    assert (ctx.fit is ctx.val) == (source == "val")
    pooled = ctx.other_split()
    assert pooled.split == other and ctx.other_split() is pooled
    np.testing.assert_array_equal(pooled.labels, patient_dm.labels(other))
    assert ctx.policy.seed == 7 and ctx.policy.fallback == "cv"
    assert ctx.val.cached and len(patient_dm.labels("val")) * 144 * 4 < 2**20
    streamed = build_context(compose_cfg([*SMALL, "eval.max_in_memory_mb=0"]), patient_dm)
    assert not streamed.val.cached


def test_a_positive_class_far_from_every_class_is_refused_and_a_far_irrelevant_class_is_none(
    compose_cfg, patient_dm
):
    """With patients the positive class must be a class of the data, near a class name or not (mutant:
    only a near miss refused); without patients in the test split it is not needed (mutant: the fitting
    split's patients enough); an irrelevant class far from every name is no class (mutant: required)."""
    with pytest.raises(EvaluationConfigError, match=r"positive_class = 'cancer' is not a class .*need it"):
        check_evaluation_data(compose_cfg([*SMALL, "eval.patient.positive_class=cancer"]), patient_dm)
    cfg = compose_cfg([*SMALL, "eval.patient.irrelevant_class=background"])
    assert check_evaluation_data(cfg, patient_dm) == (patient_dm.class_names.index("gastritis"), None)

    class NoTestPatients(type(patient_dm)):
        def patient_labels(self, split):
            return None if split == "test" else super().patient_labels(split)

    no_test = NoTestPatients(patient_dm._splits, patient_dm._pids, patient_dm._plabels)
    cfg = compose_cfg([*SMALL, "eval.patient.positive_class=cancer"])
    assert check_evaluation_data(cfg, no_test) == (None, patient_dm.class_names.index("irrelevant"))


def test_a_validation_split_of_one_patch_is_not_empty(compose_cfg, patient_dm_factory):
    """Only an empty validation or test split is refused here (mutant: one patch refused as empty)."""
    dm = patient_dm_factory(patients=(4, 1, 4), patches=1)
    assert len(dm.labels("val")) == 1
    check_evaluation_data(compose_cfg(SMALL), dm)


def test_random_subsets_may_draw_every_training_image_of_the_smallest_class(patient_dm):
    """The smallest training class has n images: n per class passes, n + 1 is refused naming each short
    class with its count (mutant: n - 1 compared)."""
    counts = np.bincount(patient_dm.labels("train"), minlength=3)
    n = int(counts.min())
    check_random_subset_size(patient_dm, n)
    short = [f"'{c}' ({k})" for c, k in zip(patient_dm.class_names, counts, strict=True) if k < n + 1]
    with pytest.raises(EvaluationConfigError, match=f"draw {n + 1} training images") as info:
        check_random_subset_size(patient_dm, n + 1)
    assert f"more than these classes have: {', '.join(short)};" in str(info.value)


def test_only_a_name_within_the_close_match_cutoff_is_refused_as_a_misspelling():
    """difflib's ratio of 'gastric' to 'gastritis' is 0.75, below the 0.8 cutoff: another word, so no class
    (mutant: a cutoff of 0.4 refuses it); 'gastritus' (0.89) is refused naming 'gastritis'."""
    names = ["irrelevant", "non-gastritis", "gastritis"]
    assert difflib.SequenceMatcher(None, "gastric", "gastritis").ratio() == pytest.approx(0.75)
    assert class_index(names, "gastric", "irrelevant_class", required=False) is None
    with pytest.raises(EvaluationConfigError, match="did you mean 'gastritis'"):
        class_index(names, "gastritus", "irrelevant_class", required=False)
