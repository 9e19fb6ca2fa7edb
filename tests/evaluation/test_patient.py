"""Patient aggregation and threshold fitting against hand-computed examples."""

from __future__ import annotations

import numpy as np
import pytest

from gastrodistill.evaluation.patient import (
    PatientEvaluationError,
    PatientScores,
    fit_threshold,
    harmonic_mean,
    patient_scores,
)

IRR, NON, GAS = 0, 1, 2


def _scores(split, ids, scores, labels):
    return PatientScores(
        split=split,
        patient_ids=np.array(ids),
        scores=np.array(scores, dtype=float),
        labels=np.array(labels),
        n_relevant=np.ones(len(ids), dtype=np.int64),
    )


def test_share_of_gastritis_among_relevant_patches_over_all_images():
    # Patient A: 5 patches over two images, 2 irrelevant -> 2 gastritis of 3 relevant.
    # Patient B: 1 gastritis of 3 relevant. Patient C: every patch irrelevant.
    preds = np.array([GAS, GAS, NON, IRR, IRR, NON, NON, GAS, IRR, IRR, IRR])
    ids = np.array(["A", "A", "A", "A", "A", "B", "B", "B", "B", "C", "C"])
    labels = {"A": 1, "B": 0, "C": 0}
    ps = patient_scores("val", preds, ids, labels, positive_class=GAS, irrelevant_class=IRR)
    assert ps.patient_ids.tolist() == ["A", "B", "C"]
    np.testing.assert_allclose(ps.scores, [2 / 3, 1 / 3, 0.0])
    assert ps.n_relevant.tolist() == [3, 3, 0]
    assert ps.labels.tolist() == [1, 0, 0]


def test_all_irrelevant_patient_scores_zero_and_is_negative_at_any_positive_threshold():
    ps = patient_scores("test", np.array([IRR, IRR, IRR]), np.array(["Z"] * 3), {"Z": 1}, GAS, IRR)
    assert ps.scores.tolist() == [0.0] and ps.n_relevant.tolist() == [0]


def test_without_irrelevant_class_every_patch_counts():
    ps = patient_scores("val", np.array([0, 2, 2, 1]), np.array(["A"] * 4), {"A": 1}, GAS, None)
    np.testing.assert_allclose(ps.scores, [0.5])


def test_unknown_patient_and_length_mismatch_are_clear_errors():
    with pytest.raises(PatientEvaluationError, match="no diagnosis"):
        patient_scores("val", np.array([GAS]), np.array(["X"]), {"A": 1}, GAS, IRR)
    with pytest.raises(PatientEvaluationError, match="2 patch predictions but 1 patient ids"):
        patient_scores("val", np.array([GAS, GAS]), np.array(["A"]), {"A": 1}, GAS, IRR)


def test_threshold_maximises_hm_hand_computed():
    # ascending distinct scores 0.2 0.3 0.5 0.6 0.7 0.9 give HM 0, 1/2, 4/9, 2/3, 4/9, 1/2 (by hand);
    # the best is ">= 0.6", placed midway to the next lower score: 0.55.
    fit = _scores("val", list("abcdef"), [0.9, 0.6, 0.5, 0.2, 0.7, 0.3], [1, 1, 0, 0, 0, 1])
    th = fit_threshold(fit)
    assert th.value == pytest.approx(0.55)
    assert th.fit_hm == pytest.approx(2 / 3)
    assert th.decide(fit.scores).tolist() == [True, True, False, False, True, False]


def test_threshold_ties_go_to_the_lowest_threshold_and_lowest_score_is_kept_as_is():
    # Perfectly separated: ">= 0.4" and nothing else reaches HM 1; lowest candidate 0.1 gives HM 0.
    th = fit_threshold(_scores("train", list("abcd"), [0.1, 0.2, 0.4, 0.8], [0, 0, 1, 1]))
    assert th.value == pytest.approx(0.3) and th.fit_hm == 1.0
    # all positives have the lowest score -> threshold equals that score (everyone positive, HM 0 ties)
    th2 = fit_threshold(_scores("val", list("ab"), [0.5, 0.5], [0, 1]))
    assert th2.value == 0.5 and th2.fit_hm == 0.0


def test_threshold_cannot_be_fitted_on_test_or_one_class():
    with pytest.raises(PatientEvaluationError, match="not on 'test'"):
        fit_threshold(_scores("test", list("ab"), [0.1, 0.9], [0, 1]))
    with pytest.raises(PatientEvaluationError, match="one diagnosis"):
        fit_threshold(_scores("val", list("ab"), [0.1, 0.9], [1, 1]))


def test_threshold_refuses_its_own_split_and_shared_patients():
    fit = _scores("val", list("abcd"), [0.1, 0.2, 0.4, 0.8], [0, 0, 1, 1])
    th = fit_threshold(fit)
    with pytest.raises(PatientEvaluationError, match="fitted on split 'val'"):
        th.apply(fit)
    with pytest.raises(PatientEvaluationError, match="also in the fitting split"):
        th.apply(_scores("test", ["a", "x"], [0.5, 0.5], [0, 1]))
    test = _scores("test", ["x", "y", "z"], [0.29, 0.31, 1.0], [0, 1, 1])
    assert th.apply(test).tolist() == [False, True, True]


def test_threshold_depends_only_on_fitting_patients():
    fit = _scores("val", list("abcdef"), [0.9, 0.6, 0.5, 0.2, 0.7, 0.3], [1, 1, 0, 0, 0, 1])
    before = fit_threshold(fit).value
    rng = np.random.default_rng(0)
    for _ in range(3):  # whatever the test patients look like, fitting is unchanged
        test = _scores("test", [f"t{i}" for i in range(20)], rng.random(20), rng.integers(0, 2, 20))
        th = fit_threshold(fit)
        th.apply(test)
        assert th.value == before


def test_harmonic_mean():
    assert harmonic_mean(0.962, 0.983) == pytest.approx(2 * 0.962 * 0.983 / (0.962 + 0.983))
    assert harmonic_mean(0.0, 0.0) == 0.0
