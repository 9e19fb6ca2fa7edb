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
    sensitivity_specificity,
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


def _overlapping(rng, n, gap, base, sd):
    """Alternating diagnoses ``[0, 1] * (n / 2)`` and scores ``clip(gap * label + base + sd * N(0, 1))``:
    two overlapping classes of patient scores."""
    labels = np.array([0, 1] * (n // 2))
    return labels, np.clip(gap * labels + base + sd * rng.standard_normal(n), 0, 1)


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
    import dataclasses

    ps = patient_scores("test", np.array([IRR, IRR, IRR]), np.array(["Z"] * 3), {"Z": 1}, GAS, IRR)
    assert ps.scores.tolist() == [0.0] and ps.n_relevant.tolist() == [0]
    th = fit_threshold(_scores("val", ["a", "b"], [0.2, 0.8], [0, 1]))
    for value in (th.value, 1e-12):  # a fitted threshold and the smallest positive one
        assert dataclasses.replace(th, value=value).apply(ps).tolist() == [False]


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


# ---- issue 13: refusal of thresholds on too few patients, and the cross-validated fallback ----------
def test_a_two_patient_threshold_is_refused_with_counts_and_the_fix():
    from gastrodistill.evaluation.patient import ThresholdPolicy, ThresholdRefused, choose_threshold

    two = _scores("val", ["a", "b"], [0.2, 0.7], [0, 1])
    with pytest.raises(ThresholdRefused, match=r"1 gastritis and 1 non-gastritis 'val' patients.*fewer than"):
        choose_threshold(ThresholdPolicy(min_patients_per_class=5, fallback="refuse"), two)
    with pytest.raises(ThresholdRefused, match="threshold_fallback=cv"):
        choose_threshold(ThresholdPolicy(min_patients_per_class=5), two)
    # Enough patients: the ordinary fit, same value as fit_threshold.
    ok = _scores("val", list("abcdefghij"), np.linspace(0, 1, 10), [0] * 5 + [1] * 5)
    th = choose_threshold(ThresholdPolicy(min_patients_per_class=5), ok)
    assert th.method == "fit" and th.value == fit_threshold(ok).value
    assert (th.n_positive, th.n_negative) == (5, 5)


def _out_of_fold_hm(parts, folds, seed, fold_values, rule="empirical"):
    """The HM of out-of-fold decisions, recomputed: the stratified folds drawn as documented (seeded with
    ``[seed, 0x7C5]``), each fold decided by ``fit_threshold`` on the other folds' patients (which must
    equal that fold's recorded threshold), sensitivity and specificity counted here."""
    scores = np.concatenate([p.scores for p in parts])
    labels = np.concatenate([p.labels for p in parts]).astype(bool)
    k = min(folds, int(labels.sum()), int((~labels).sum()))
    draw = np.random.default_rng([seed, 0x7C5])
    fold = np.empty(len(labels), dtype=np.int64)
    for cls in (True, False):
        idx = draw.permutation(np.flatnonzero(labels == cls))
        fold[idx] = np.arange(len(idx)) % k
    decisions = np.zeros(len(labels), dtype=bool)
    for f in range(k):
        held = fold == f
        ids = [f"p{i}" for i in np.flatnonzero(~held)]
        value = fit_threshold(_scores("train", ids, scores[~held], labels[~held]), rule).value
        assert value == pytest.approx(fold_values[f], abs=1e-12)
        decisions[held] = scores[held] >= value
    sens = (decisions & labels).sum() / labels.sum()
    spec = (~decisions & ~labels).sum() / (~labels).sum()
    return 0.0 if sens + spec == 0 else 2 * sens * spec / (sens + spec)


def test_cross_validated_threshold_pools_train_and_val_and_is_honest():
    from gastrodistill.evaluation.patient import (
        ThresholdPolicy,
        ThresholdRefused,
        choose_threshold,
        fit_threshold_cv,
    )

    rng = np.random.default_rng(0)
    labels, scores = _overlapping(rng, 20, gap=0.5, base=0.25, sd=0.2)
    train = _scores("train", [f"t{i}" for i in range(16)], scores[:16], labels[:16])
    val = _scores("val", [f"v{i}" for i in range(4)], scores[16:], labels[16:])
    calls = []
    policy = ThresholdPolicy(min_patients_per_class=5, fallback="cv", cv_folds=5, seed=1)
    th = choose_threshold(policy, val, lambda: calls.append(1) or train)
    assert calls == [1] and th.method == "cv" and th.fit_split == "val+train"
    assert (th.n_positive, th.n_negative) == (10, 10) and len(th.fold_values) == 5
    assert th.value == pytest.approx(np.median(th.fold_values))
    assert th.cv_hm == pytest.approx(_out_of_fold_hm([val, train], 5, 1, th.fold_values), abs=1e-12)
    # On scores that carry no information the in-sample optimum is flattering, the out-of-fold HM is not.
    noise = rng.random(20)
    half = [_scores("train", [f"n{i}" for i in range(10)], noise[:10], labels[:10])]
    half.append(_scores("val", [f"m{i}" for i in range(10)], noise[10:], labels[10:]))
    cv = fit_threshold_cv(half, folds=5, seed=0)
    assert cv.cv_hm == pytest.approx(_out_of_fold_hm(half, 5, 0, cv.fold_values), abs=1e-12)
    # Scores far below 0.5, with the binormal rule and 4 folds: each fold's own threshold decides it.
    low_labels, low = _overlapping(rng, 24, gap=0.2, base=0.05, sd=0.08)
    parts = [_scores("val", [f"w{i}" for i in range(24)], low, low_labels)]
    low_cv = fit_threshold_cv(parts, folds=4, seed=3, rule="binormal")
    assert low_cv.cv_hm > 0.5 and max(low_cv.fold_values) < 0.5
    expect = _out_of_fold_hm(parts, 4, 3, low_cv.fold_values, "binormal")
    assert low_cv.cv_hm == pytest.approx(expect, abs=1e-12)
    assert (
        cv.cv_hm < cv.fit_hm
        or cv.cv_hm < fit_threshold(_scores("train", list("abcdefghijklmnopqrst"), noise, labels)).fit_hm
    )
    # The pooled patients are its fitting patients: applying it to them is refused; test patients are fine.
    with pytest.raises(PatientEvaluationError, match="were also in the fitting split"):
        th.apply(_scores("test", ["t0"], [0.5], [1]))
    assert th.apply(_scores("test", ["x"], [th.value], [1])).tolist() == [True]
    # Still too few after pooling: refused; the callable is not needed when the split suffices.
    tiny = _scores("train", ["q", "r"], [0.1, 0.9], [0, 1])
    with pytest.raises(ThresholdRefused, match="together have only"):
        choose_threshold(policy, val, tiny)
    # a negative run seed (seed=-1 is valid for every stage) folds as its 64-bit wrap, not a numpy error
    negative = fit_threshold_cv([val, train], folds=5, seed=-1)
    assert negative.fold_values == fit_threshold_cv([val, train], folds=5, seed=2**64 - 1).fold_values
    enough = _scores("val", [f"e{i}" for i in range(10)], np.linspace(0, 1, 10), [0, 1] * 5)
    assert choose_threshold(policy, enough, lambda: pytest.fail("not needed")).method == "fit"


def test_threshold_policy_from_config_and_bad_values():
    from gastrodistill.evaluation.patient import ThresholdPolicy, threshold_policy

    p = threshold_policy({"min_patients_per_class": 3, "threshold_fallback": "cv", "cv_folds": 4}, seed=7)
    assert (p.min_patients_per_class, p.fallback, p.cv_folds, p.seed) == (3, "cv", 4, 7)
    with pytest.raises(PatientEvaluationError, match="'refuse' or 'cv'"):
        ThresholdPolicy(fallback="guess")


def test_binormal_threshold_is_the_model_hm_maximum_found_independently():
    """The binormal rule against a brute-force maximum of the same model's HM on a fine grid (scipy.stats)."""
    from scipy.stats import norm

    from gastrodistill.evaluation.patient import binormal_threshold

    rng = np.random.default_rng(5)
    labels = np.array([1] * 9 + [0] * 14, dtype=bool)
    scores = np.where(labels, 0.55 + 0.2 * rng.standard_normal(23), 0.25 + 0.08 * rng.standard_normal(23))
    t = binormal_threshold(scores, labels)
    mp, sp = scores[labels].mean(), scores[labels].std(ddof=1)
    mn, sn = scores[~labels].mean(), scores[~labels].std(ddof=1)
    grid = np.linspace(scores.min(), scores.max(), 2_000_001)
    sens, spec = norm.sf(grid, mp, sp), norm.cdf(grid, mn, sn)
    brute = grid[np.argmax(2 * sens * spec / (sens + spec))]
    assert t == pytest.approx(brute, abs=2e-6)
    # Unequal spreads pull it away from the midpoint of the means, toward the tighter diagnosis.
    assert t < (mp + mn) / 2
    # Equal spreads: by symmetry the maximum is the midpoint of the two means.
    sym = np.array([0.1, 0.2, 0.3, 0.5, 0.6, 0.7])
    assert binormal_threshold(sym, np.array([0, 0, 0, 1, 1, 1], bool)) == pytest.approx(0.4, abs=1e-7)
    with pytest.raises(PatientEvaluationError, match="at least 2 patients of each diagnosis"):
        binormal_threshold(np.array([0.1, 0.2, 0.9]), np.array([0, 0, 1], bool))


def test_binormal_threshold_moves_less_between_fitting_draws_than_the_empirical_one():
    """Why the CPU preset uses it: on draws of 10 + 10 patients from one population the binormal threshold
    varies less than the observed-score argmax, and the held-out HM it gives is not lower on average."""
    rng = np.random.default_rng(11)
    values, held_out = {"empirical": [], "binormal": []}, {"empirical": [], "binormal": []}
    big_y = np.array([1] * 500 + [0] * 500, bool)

    def draw(y):
        return np.clip(
            np.where(y, 0.5 + 0.15 * rng.standard_normal(len(y)), 0.25 + 0.12 * rng.standard_normal(len(y))),
            0,
            1,
        )

    big_s = draw(big_y)
    for _ in range(200):
        y = np.array([1] * 10 + [0] * 10)
        s = draw(y == 1)
        fit = _scores("val", [f"p{i}" for i in range(20)], s, y)
        for rule in values:
            th = fit_threshold(fit, rule)
            assert th.rule == rule
            values[rule].append(th.value)
            held_out[rule].append(harmonic_mean(*sensitivity_specificity(big_y, big_s >= th.value)))
    assert np.std(values["binormal"]) < 0.75 * np.std(values["empirical"])
    assert np.mean(held_out["binormal"]) >= np.mean(held_out["empirical"])


def test_threshold_rule_reaches_cross_validation_and_the_policy():
    from gastrodistill.evaluation.patient import (
        ThresholdPolicy,
        binormal_threshold,
        choose_threshold,
        fit_threshold_cv,
        threshold_policy,
    )

    rng = np.random.default_rng(2)
    labels, scores = _overlapping(rng, 24, gap=0.3, base=0.3, sd=0.15)
    val = _scores("val", [f"v{i}" for i in range(24)], scores, labels)
    th = choose_threshold(threshold_policy({"threshold_rule": "binormal"}), val)
    assert (th.rule, th.method) == ("binormal", "fit")
    assert th.value == pytest.approx(binormal_threshold(scores, labels.astype(bool)))
    assert th.fit_hm == pytest.approx(harmonic_mean(*sensitivity_specificity(labels, scores >= th.value)))
    cv = fit_threshold_cv([val], folds=3, seed=0, rule="binormal")
    assert cv.rule == "binormal" and len(cv.fold_values) == 3
    assert cv.value == pytest.approx(np.median(cv.fold_values))
    assert threshold_policy({}).rule == "empirical"
    with pytest.raises(PatientEvaluationError, match="threshold_rule = 'guess'; use one of"):
        ThresholdPolicy(rule="guess")
    with pytest.raises(PatientEvaluationError, match="threshold_rule = 'guess'"):
        fit_threshold(val, "guess")


def test_binormal_falls_back_to_the_empirical_rule_where_its_model_is_degenerate(monkeypatch):
    """All-zero non-gastritis scores are no normal distribution: the empirical maximum (the middle of the
    gap) is used and recorded; fewer than 2 patients of a diagnosis likewise, in a fit and in every fold."""
    import gastrodistill.evaluation.patient as patient
    from gastrodistill.evaluation.patient import ThresholdPolicy, choose_threshold, fit_threshold_cv

    zeros = _scores("val", list("abcdefgh"), [0, 0, 0, 0, 0, 0.5, 0.6, 0.7], [0, 0, 0, 0, 0, 1, 1, 1])
    th = fit_threshold(zeros, "binormal")
    assert th.rule == "empirical" and th.value == pytest.approx(0.25)
    assert th.value == fit_threshold(zeros, "empirical").value
    one = _scores("val", list("abcd"), [0.1, 0.2, 0.3, 0.9], [0, 0, 0, 1])
    policy = ThresholdPolicy(min_patients_per_class=1, rule="binormal")
    assert choose_threshold(policy, one).rule == "empirical"
    # in cross-validation the binormal model places every fold's threshold, each on its fold's complement
    calls = []
    real = patient.binormal_threshold
    monkeypatch.setattr(patient, "binormal_threshold", lambda s, y: calls.append(real(s, y)) or calls[-1])
    rng = np.random.default_rng(4)
    labels, scores = _overlapping(rng, 18, gap=0.3, base=0.3, sd=0.15)
    cv = fit_threshold_cv([_scores("val", [f"v{i}" for i in range(18)], scores, labels)], 3, 0, "binormal")
    assert list(cv.fold_values) == pytest.approx(calls) and len(calls) == 3
    # one fold's model degenerate: that fold falls back, and the record no longer claims the model
    folds = iter([False, True, False])
    monkeypatch.setattr(patient, "_binormal_degenerate", lambda s, y: next(folds))
    mixed = fit_threshold_cv([_scores("val", [f"v{i}" for i in range(18)], scores, labels)], 3, 0, "binormal")
    assert mixed.rule == "empirical" and len(mixed.fold_values) == 3


# ---- mutation review: behaviour the tests above left open ----------------------------------------------
def test_sensitivity_and_specificity_are_sklearn_recalls_of_each_diagnosis():
    """Sensitivity is the recall of gastritis, specificity that of non-gastritis (not swapped: the HM is
    symmetric and would not notice); a diagnosis absent from the labels gives NaN, not 0."""
    from sklearn.metrics import recall_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 40)
    decisions = np.where(rng.random(40) < 0.8, labels, 1 - labels) & (rng.random(40) < 0.7)
    sens, spec = sensitivity_specificity(labels, decisions)
    assert sens != pytest.approx(spec)  # the draw tells the two apart
    assert sens == pytest.approx(recall_score(labels, decisions, pos_label=1))
    assert spec == pytest.approx(recall_score(labels, decisions, pos_label=0))
    no_pos = sensitivity_specificity(np.zeros(3, int), np.array([1, 0, 0]))
    assert np.isnan(no_pos[0]) and no_pos[1] == pytest.approx(2 / 3)
    no_neg = sensitivity_specificity(np.ones(4, int), np.array([1, 0, 0, 0]))
    assert no_neg[0] == pytest.approx(1 / 4) and np.isnan(no_neg[1])


def test_equal_hm_at_two_separate_thresholds_goes_to_the_lower_one():
    """Ties in HM between distinct candidate thresholds go to the lowest (the most sensitive rule), checked
    against a plain loop over the candidates; the chosen rule is placed midway to the next lower score."""
    scores = np.array([0.1, 0.3, 0.5, 0.7])
    labels = np.array([0, 1, 0, 1])
    hms = []
    for t in sorted(set(scores.tolist())):
        tp = sum(1 for s, y in zip(scores, labels, strict=True) if s >= t and y == 1)
        tn = sum(1 for s, y in zip(scores, labels, strict=True) if s < t and y == 0)
        se, sp = tp / 2, tn / 2
        hms.append((0.0 if se + sp == 0 else 2 * se * sp / (se + sp), t))
    best = max(h for h, _ in hms)
    ties = [t for h, t in hms if h == pytest.approx(best)]
    assert len(ties) == 2  # the example has a real tie: ">= 0.3" and ">= 0.7"
    th = fit_threshold(_scores("val", list("abcd"), scores, labels))
    below = max(s for s in scores if s < min(ties))
    assert th.value == pytest.approx((min(ties) + below) / 2) and th.fit_hm == pytest.approx(best)


def test_fit_records_each_diagnosis_count_and_refuses_a_split_without_gastritis():
    """``n_positive``/``n_negative`` are the split's own counts (unequal here), and a split of
    non-gastritis patients only is refused like one of gastritis patients only."""
    labels = np.array([1, 0, 0, 1, 0, 0, 0])
    th = fit_threshold(_scores("val", list("abcdefg"), np.linspace(0, 1, 7), labels))
    assert (th.n_positive, th.n_negative) == (int((labels == 1).sum()), int((labels == 0).sum()))
    with pytest.raises(PatientEvaluationError, match="one diagnosis"):
        fit_threshold(_scores("train", list("abc"), [0.1, 0.5, 0.9], [0, 0, 0]))


def test_binormal_model_needs_two_patients_per_diagnosis_spread_by_the_sample_sd():
    """Two patients of a diagnosis suffice for the binormal model when their sample standard deviation
    (``ddof=1``, as :func:`binormal_threshold` uses) reaches BINORMAL_MIN_SD: scores 0 and 0.03 have
    0.0212 (0.015 with ``ddof=0``); 0 and 0.02 (0.0141) fall back to the empirical rule."""
    from gastrodistill.evaluation.patient import BINORMAL_MIN_SD, binormal_threshold

    pos = [0.4, 0.55, 0.7, 0.85]
    for neg, rule in (([0.0, 0.03], "binormal"), ([0.0, 0.02], "empirical")):
        assert (np.std(neg, ddof=1) >= BINORMAL_MIN_SD) == (rule == "binormal")
        scores, labels = np.array(neg + pos), np.array([0] * len(neg) + [1] * len(pos))
        th = fit_threshold(_scores("val", list("abcdef"), scores, labels), "binormal")
        assert th.rule == rule
        if rule == "binormal":
            assert th.value == pytest.approx(binormal_threshold(scores, labels.astype(bool)))
        else:
            assert th.value == fit_threshold(_scores("val", list("abcdef"), scores, labels)).value


def test_binormal_threshold_floors_a_tight_diagnosis_standard_deviation():
    """A diagnosis whose scores are all equal (sd 0) is modelled with sd BINORMAL_MIN_SD, not 0 (a
    degenerate normal): the threshold is the brute-force maximum of that floored model's HM."""
    from scipy.stats import norm

    from gastrodistill.evaluation.patient import BINORMAL_MIN_SD, binormal_threshold

    def brute(scores, labels):
        sds = [max(scores[y].std(ddof=1), BINORMAL_MIN_SD) for y in (labels, ~labels)]
        grid = np.linspace(scores.min(), scores.max(), 2_000_001)
        sens = norm.sf(grid, scores[labels].mean(), sds[0])
        spec = norm.cdf(grid, scores[~labels].mean(), sds[1])
        hm = np.divide(2 * sens * spec, sens + spec, out=np.zeros_like(sens), where=(sens + spec) > 0)
        return grid[np.argmax(hm)]

    tight_negatives = np.array([0.1, 0.1, 0.1, 0.3, 0.45, 0.6, 0.8])
    tight_positives = np.array([0.1, 0.2, 0.35, 0.5, 0.7, 0.7, 0.7])
    for scores, labels in (
        (tight_negatives, [0, 0, 0, 1, 1, 1, 1]),
        (tight_positives, [0, 0, 0, 0, 1, 1, 1]),
    ):
        labels = np.array(labels, bool)
        assert min(scores[labels].std(), scores[~labels].std()) < 1e-12  # one diagnosis does not spread
        assert binormal_threshold(scores, labels) == pytest.approx(brute(scores, labels), abs=2e-6)


def test_a_held_out_patient_scoring_exactly_its_fold_threshold_is_decided_gastritis():
    """Patient scores are shares of few patches, so a held-out score can equal a fold's threshold (a
    midpoint of two other shares): it is decided ``score >= threshold``, as everywhere else."""
    from gastrodistill.evaluation.patient import fit_threshold_cv

    quarters = [0.25, 0.75, 0.25, 0.25, 0.5, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75]
    part = _scores("val", [f"p{i}" for i in range(12)], quarters, [0, 1] * 6)
    cv = fit_threshold_cv([part], folds=3, seed=0)
    assert 0.5 in cv.fold_values  # the share 0.5 is held out in a fold whose threshold is 0.5
    assert cv.cv_hm == pytest.approx(_out_of_fold_hm([part], 3, 0, cv.fold_values), abs=1e-12)


def test_cross_validation_refuses_test_patients_shared_patients_and_too_few_folds():
    """What the fallback refuses with a clear error, never a numpy error or a silent fit: a ``test`` split,
    a patient in both pooled splits, a diagnosis with one patient, fewer than 2 folds, and ``cv`` with no
    other fitting split to pool."""
    from gastrodistill.evaluation.patient import (
        ThresholdPolicy,
        ThresholdRefused,
        choose_threshold,
        fit_threshold_cv,
    )

    train = _scores("train", [f"t{i}" for i in range(8)], np.linspace(0, 1, 8), [0, 1] * 4)
    val = _scores("val", ["v0", "v1", "v2", "v3"], [0.2, 0.4, 0.6, 0.8], [0, 1, 0, 1])
    with pytest.raises(PatientEvaluationError, match="not 'test'"):
        fit_threshold_cv([train, _scores("test", ["x0", "x1"], [0.1, 0.9], [0, 1])])
    with pytest.raises(PatientEvaluationError, match="share patients"):
        fit_threshold_cv([train, _scores("val", ["t0", "v1"], [0.1, 0.9], [0, 1])])
    with pytest.raises(ThresholdRefused, match="at least 2 patients of each diagnosis"):
        fit_threshold_cv([_scores("val", list("abcd"), [0.1, 0.2, 0.3, 0.9], [0, 0, 0, 1])])
    with pytest.raises(PatientEvaluationError, match="cv_folds >= 2"):
        ThresholdPolicy(fallback="cv", cv_folds=1)
    with pytest.raises(ThresholdRefused, match="no other fitting split"):
        choose_threshold(ThresholdPolicy(min_patients_per_class=5, fallback="cv"), val, None)


def test_threshold_policy_defaults_are_the_config_defaults():
    """A missing key of ``eval.patient`` means what conf/eval/default.yaml says, not another number."""
    from pathlib import Path

    from omegaconf import OmegaConf

    from gastrodistill.evaluation.patient import threshold_policy

    node = OmegaConf.load(Path(__file__).parents[2] / "conf" / "eval" / "default.yaml").patient
    p = threshold_policy({})
    assert p.min_patients_per_class == node.min_patients_per_class
    assert (p.fallback, p.cv_folds, p.rule) == (node.threshold_fallback, node.cv_folds, node.threshold_rule)
