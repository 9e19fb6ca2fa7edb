"""Metrics against scikit-learn computed in the test."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from gastrodistill.evaluation.metrics import (
    _auc_rows,
    _hm_rows,
    bootstrap_patient_ci,
    mean_roc,
    patch_metrics,
    patient_metrics,
)


def test_patch_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 400)
    p = np.where(rng.random(400) < 0.6, y, rng.integers(0, 3, 400))
    m = patch_metrics(p, y, 3, ["irrelevant", "non-gastritis", "gastritis"])
    assert m["patch_accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["patch_balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p))
    assert m["patch_macro_f1"] == pytest.approx(skm.f1_score(y, p, average="macro"))
    rec = skm.recall_score(y, p, average=None)
    assert [m["recall_irrelevant"], m["recall_non-gastritis"], m["recall_gastritis"]] == pytest.approx(rec)
    np.testing.assert_array_equal(m["confusion_matrix"], skm.confusion_matrix(y, p))


def test_patient_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 80)
    s = np.clip(0.3 * y + rng.normal(0.35, 0.2, 80), 0, 1)
    d = s >= 0.5
    m = patient_metrics(y, d, s)
    tn, fp, fn, tp = skm.confusion_matrix(y, d).ravel()
    sens, spec = tp / (tp + fn), tn / (tn + fp)
    assert m["patient_sensitivity"] == pytest.approx(sens)
    assert m["patient_specificity"] == pytest.approx(spec)
    assert m["patient_hm"] == pytest.approx(2 * sens * spec / (sens + spec))
    assert m["patient_accuracy"] == pytest.approx(skm.accuracy_score(y, d))
    assert m["patient_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    # same curve: the area under torchmetrics' points equals sklearn's AUC
    assert np.trapezoid(m["roc_tpr"], m["roc_fpr"]) == pytest.approx(skm.auc(fpr, tpr))


def test_vectorised_bootstrap_statistics_match_sklearn_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, (6, 30)).astype(bool)
    labels[:, 0], labels[:, 1] = True, False
    scores = np.round(rng.random((6, 30)), 1)  # many ties
    dec = scores >= 0.5
    auc = _auc_rows(scores, labels)
    hm = _hm_rows(dec, labels)
    for i in range(6):
        assert auc[i] == pytest.approx(skm.roc_auc_score(labels[i], scores[i]))
        sens = skm.recall_score(labels[i], dec[i])
        spec = skm.recall_score(~labels[i], ~dec[i])
        assert hm[i] == pytest.approx(0 if sens + spec == 0 else 2 * sens * spec / (sens + spec))


def test_bootstrap_ci_is_seeded_contains_estimate_and_is_degenerate_for_a_perfect_rule():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    s = np.clip(0.25 * y + rng.normal(0.4, 0.2, 120), 0, 1)
    d = s >= 0.5
    a = bootstrap_patient_ci(y, d, s, np.random.default_rng(7), n_boot=400)
    b = bootstrap_patient_ci(y, d, s, np.random.default_rng(7), n_boot=400)
    assert a == b
    point = patient_metrics(y, d, s)
    assert a["patient_hm_ci_low"] < point["patient_hm"] < a["patient_hm_ci_high"]
    assert a["patient_auc_ci_low"] < point["patient_auc"] < a["patient_auc_ci_high"]
    perfect = bootstrap_patient_ci(y, y.astype(bool), y.astype(float), np.random.default_rng(7), n_boot=50)
    assert perfect["patient_hm_ci_low"] == perfect["patient_hm_ci_high"] == 1.0
    assert perfect["patient_auc_ci_low"] == 1.0


@pytest.mark.parametrize("level", [0.95, 0.8])
def test_bootstrap_ci_is_the_percentile_interval_of_stratified_resamples(level):
    """The interval's ends are the (1 - level) / 2 and (1 + level) / 2 quantiles of HM and AUC over the same
    stratified resamples (positives first, then negatives), each computed here with scikit-learn."""
    rng = np.random.default_rng(8)
    y = np.arange(40) % 3 == 0
    s = np.clip(0.3 * y + rng.normal(0.4, 0.2, 40), 0, 1)
    d = s >= 0.5
    got = bootstrap_patient_ci(y, d, s, np.random.default_rng(3), n_boot=300, level=level)
    draw = np.random.default_rng(3)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    idx = np.concatenate([draw.choice(pos, (300, len(pos))), draw.choice(neg, (300, len(neg)))], 1)
    hm, auc = [], []
    for i in idx:
        sens, spec = skm.recall_score(y[i], d[i]), skm.recall_score(~y[i], ~d[i])
        hm.append(0.0 if sens + spec == 0 else 2 * sens * spec / (sens + spec))
        auc.append(skm.roc_auc_score(y[i], s[i]))
    a = (1 - level) / 2
    assert got["patient_hm_ci_low"] == pytest.approx(np.quantile(hm, a), abs=1e-12)
    assert got["patient_hm_ci_high"] == pytest.approx(np.quantile(hm, 1 - a), abs=1e-12)
    assert got["patient_auc_ci_low"] == pytest.approx(np.quantile(auc, a), abs=1e-12)
    assert got["patient_auc_ci_high"] == pytest.approx(np.quantile(auc, 1 - a), abs=1e-12)


def test_bootstrap_of_several_networks_is_the_mean_over_networks():
    rng = np.random.default_rng(5)
    y = np.array([0, 1] * 20)
    s1, s2 = rng.random(40), rng.random(40)
    # two identical networks give the same interval as one of them
    one = bootstrap_patient_ci(y, s1 >= 0.5, s1, np.random.default_rng(1), 200)
    two = bootstrap_patient_ci(
        y, np.stack([s1, s1]) >= 0.5, np.stack([s1, s1]), np.random.default_rng(1), 200
    )
    assert one == pytest.approx(two)
    mixed = bootstrap_patient_ci(
        y, np.stack([s1, s2]) >= 0.5, np.stack([s1, s2]), np.random.default_rng(1), 200
    )
    assert mixed != pytest.approx(one)


def test_mean_roc_of_identical_curves_is_that_curve():
    fpr = np.array([0.0, 0.0, 0.5, 1.0])
    tpr = np.array([0.0, 0.5, 1.0, 1.0])
    x, m, sd = mean_roc([fpr, fpr], [tpr, tpr], grid=5)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(m, [0.5, 0.75, 1, 1, 1])
    np.testing.assert_allclose(sd, 0)


def test_mean_roc_is_the_pointwise_mean_and_sd_of_two_different_curves():
    """By hand on the grid 0, 0.25, ..., 1: curve 1 (the top of its jump at FPR 0) is 0.5, 0.75, 1, 1, 1;
    curve 2 (the diagonal) 0, 0.25, 0.5, 0.75, 1; the sd of two values is half their distance."""
    x, m, sd = mean_roc(
        [np.array([0.0, 0.0, 0.5, 1.0]), np.array([0.0, 0.25, 1.0])],
        [np.array([0.0, 0.5, 1.0, 1.0]), np.array([0.0, 0.25, 1.0])],
        grid=5,
    )
    np.testing.assert_allclose(m, [0.25, 0.5, 0.75, 0.875, 1.0])
    np.testing.assert_allclose(sd, [0.25, 0.25, 0.25, 0.125, 0.0])


def test_image_level_auc_matches_scikit_learn_one_vs_rest():
    from sklearn.metrics import roc_auc_score

    from gastrodistill.evaluation.metrics import patch_metrics

    rng = np.random.default_rng(3)
    for k in (2, 4):
        t = np.tile(np.arange(k), 25)
        logits = rng.normal(size=(len(t), k)) + 1.5 * np.eye(k)[t]
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        got = patch_metrics(probs.argmax(1), t, k, probs=probs)["patch_auc"]
        want = roc_auc_score(t, probs[:, 1]) if k == 2 else roc_auc_score(t, probs, multi_class="ovr")
        assert got == pytest.approx(want, abs=1e-6)


def test_bootstrap_ci_of_two_networks_is_the_percentile_interval_of_their_mean():
    """Each resample (positives first, then negatives) scores both networks on the same patients; the
    statistic is the mean of the two networks' HM and AUC, each computed here with scikit-learn."""
    rng = np.random.default_rng(11)
    y = np.arange(36) % 3 == 0
    s = np.clip(np.stack([0.3 * y, 0.05 * y]) + rng.normal(0.4, 0.2, (2, 36)), 0, 1)
    d = s >= 0.5
    got = bootstrap_patient_ci(y, d, s, np.random.default_rng(2), n_boot=200, level=0.9)
    draw = np.random.default_rng(2)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    idx = np.concatenate([draw.choice(pos, (200, len(pos))), draw.choice(neg, (200, len(neg)))], 1)
    hm, auc = [], []
    for i in idx:
        hms = []
        for n in range(2):
            sens, spec = skm.recall_score(y[i], d[n, i]), skm.recall_score(~y[i], ~d[n, i])
            hms.append(0.0 if sens + spec == 0 else 2 * sens * spec / (sens + spec))
        hm.append(np.mean(hms))
        auc.append(np.mean([skm.roc_auc_score(y[i], s[n, i]) for n in range(2)]))
    assert got["patient_hm_ci_low"] == pytest.approx(np.quantile(hm, 0.05), abs=1e-12)
    assert got["patient_hm_ci_high"] == pytest.approx(np.quantile(hm, 0.95), abs=1e-12)
    assert got["patient_auc_ci_low"] == pytest.approx(np.quantile(auc, 0.05), abs=1e-12)
    assert got["patient_auc_ci_high"] == pytest.approx(np.quantile(auc, 0.95), abs=1e-12)


def test_bootstrap_ci_is_nan_without_resamples_or_with_one_diagnosis():
    y = np.array([0, 1] * 10)
    s = np.linspace(0, 1, 20)
    none = bootstrap_patient_ci(y, s >= 0.5, s, np.random.default_rng(0), n_boot=0)
    negatives = bootstrap_patient_ci(np.zeros(20), s >= 0.5, s, np.random.default_rng(0), n_boot=50)
    positives = bootstrap_patient_ci(np.ones(20), s >= 0.5, s, np.random.default_rng(0), n_boot=50)
    for got in (none, negatives, positives):
        assert len(got) == 4 and all(np.isnan(v) for v in got.values())


def test_patient_metrics_of_one_diagnosis_have_no_auc_and_the_diagonal_roc():
    """Negatives only: sensitivity (so HM) and the AUC are undefined; the ROC is the chance diagonal."""
    s = np.array([0.1, 0.6, 0.3, 0.8])
    m = patient_metrics(np.zeros(4), s >= 0.5, s)
    assert m["patient_specificity"] == pytest.approx(0.5)
    assert m["patient_accuracy"] == pytest.approx(0.5)
    assert np.isnan(m["patient_auc"])
    np.testing.assert_array_equal(m["roc_fpr"], [0.0, 1.0])
    np.testing.assert_array_equal(m["roc_tpr"], [0.0, 1.0])


def test_image_level_auc_is_nan_when_a_class_is_missing_from_the_targets():
    rng = np.random.default_rng(4)
    t = np.array([0, 2] * 10)  # class 1 never occurs
    probs = rng.dirichlet([1, 1, 1], len(t))
    assert np.isnan(patch_metrics(probs.argmax(1), t, 3, probs=probs)["patch_auc"])


def test_hm_rows_is_nan_for_a_row_with_one_diagnosis():
    labels = np.array([[True, False, True, False], [False, False, False, False]])
    dec = np.array([[True, False, False, False], [True, False, False, False]])
    hm = _hm_rows(dec, labels)
    assert hm[0] == pytest.approx(2 * 0.5 * 1.0 / 1.5)  # sensitivity 1/2, specificity 2/2
    assert np.isnan(hm[1])


def test_paired_bootstrap_has_no_interval_with_one_class_and_refuses_different_test_units():
    from gastrodistill.evaluation.metrics import paired_bootstrap

    rng = np.random.default_rng(5)
    y = np.ones(30, dtype=np.int64)
    one = {"labels": y, "correct": (rng.random(30) < 0.7).astype(np.uint8)}
    est, lo, hi = paired_bootstrap("image_accuracy", [one], None, np.random.default_rng(1), 100)
    assert est == pytest.approx(one["correct"].mean())
    assert np.isnan(lo) and np.isnan(hi)
    # the HM of patients of one diagnosis is undefined, not 0
    pat = {"labels": y, "decisions": rng.random(30) < 0.5, "scores": rng.random(30)}
    assert np.isnan(paired_bootstrap("patient_hm", [pat], None, np.random.default_rng(1), 0)[0])
    other = {**one, "labels": np.r_[y[:-1], 0]}
    with pytest.raises(ValueError, match="share their test units"):
        paired_bootstrap("image_accuracy", [one], [other], np.random.default_rng(1), 100)
