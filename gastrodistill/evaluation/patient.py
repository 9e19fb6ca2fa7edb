"""From patch predictions to a diagnosis per patient, as in the paper's whole-image classification.

A patient's score is the share of their patches predicted *gastritis* among those not predicted
*irrelevant*, pooled over all of the patient's images. A patient with no relevant patch at all
(every patch predicted irrelevant) has no evidence of gastritis: score 0.0, and ``n_relevant`` 0
records the case.

The decision threshold maximises the harmonic mean (HM) of sensitivity and specificity on the
patients it is fitted on: over their observed scores (``rule="empirical"``), or under a binormal model
of them (``rule="binormal"``: a normal distribution per diagnosis, fitted by mean and standard deviation;
the classical binormal ROC model, Metz 1978), which moves the threshold less from one fitting draw to the
next (docs/evaluation.md, "The patient threshold").

:func:`fit_threshold` accepts only scores of a fitting split (``train`` or
``val``), and :meth:`FittedThreshold.apply` refuses the split and the patients it was fitted on, so
a threshold can never be chosen on test patients nor evaluated on its own fitting patients.

A threshold fitted on a handful of patients is noise. :func:`choose_threshold` refuses a fitting
split with fewer than ``min_patients_per_class`` patients of either diagnosis
(:class:`ThresholdRefused`), or, when configured (``fallback="cv"``), pools the training and
validation patients and fits the threshold by stratified k-fold cross-validation over them
(:func:`fit_threshold_cv`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Ways to place the threshold on the fitting patients' scores (``eval.patient.threshold_rule``).
THRESHOLD_RULES = ("empirical", "binormal")
#: A diagnosis whose scores spread less than this (standard deviation; scores are shares in [0, 1], 0.02 is
#: one patch in 50) is no normal distribution: the binormal rule then falls back to the empirical one
#: (:func:`fit_threshold`), and :func:`binormal_threshold` floors the standard deviation here.
BINORMAL_MIN_SD = 0.02
#: Grid points over the score range before the binormal optimum is refined (bounded Brent, scipy).
BINORMAL_GRID = 1001

#: Splits a threshold may be fitted on. ``test`` is deliberately absent.
FIT_SPLITS = ("train", "val")
SPLITS = ("train", "val", "test")


class PatientEvaluationError(ValueError):
    """Bad input to patient-level evaluation (unknown patient, one-class fitting set, wrong split...)."""


class ThresholdRefused(PatientEvaluationError):
    """Too few patients of a diagnosis to fit a threshold on; the message gives the counts and the fix."""


@dataclass(frozen=True)
class PatientScores:
    """Per-patient scores of one split. ``patient_ids`` are private: never log or write them."""

    split: str
    patient_ids: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    n_relevant: np.ndarray

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise PatientEvaluationError(f"unknown split {self.split!r}; use one of {SPLITS}")
        n = len(self.patient_ids)
        if not (len(self.scores) == len(self.labels) == len(self.n_relevant) == n):
            raise PatientEvaluationError("patient_ids, scores, labels and n_relevant must have equal lengths")

    def __len__(self) -> int:
        return len(self.patient_ids)


def patient_scores(
    split: str,
    predictions: np.ndarray,
    patient_ids: np.ndarray,
    patient_labels: Mapping[str, int],
    positive_class: int,
    irrelevant_class: int | None,
) -> PatientScores:
    """Aggregate predicted patch classes into one score per patient (sorted by patient id).

    ``positive_class`` is the patch class that counts as disease (gastritis); patches predicted
    ``irrelevant_class`` are left out of the share (``None``: every patch counts).
    """
    predictions = np.asarray(predictions).reshape(-1)
    patient_ids = np.asarray(patient_ids).astype(str).reshape(-1)
    if len(predictions) != len(patient_ids):
        raise PatientEvaluationError(
            f"{len(predictions)} patch predictions but {len(patient_ids)} patient ids for split {split!r}"
        )
    uniq, inverse = np.unique(patient_ids, return_inverse=True)
    missing = [p for p in uniq if str(p) not in patient_labels]
    if missing:
        raise PatientEvaluationError(
            f"{len(missing)} patient(s) of split {split!r} have patches but no diagnosis in patient_labels; "
            "check that patient_labels(split) and patient_ids(split) come from the same data module"
        )
    relevant = (
        np.ones_like(predictions, dtype=bool) if irrelevant_class is None else predictions != irrelevant_class
    )
    positive = predictions == positive_class
    n_rel = np.bincount(inverse, weights=relevant, minlength=len(uniq)).astype(np.int64)
    n_pos = np.bincount(inverse, weights=positive & relevant, minlength=len(uniq))
    scores = np.divide(n_pos, n_rel, out=np.zeros(len(uniq)), where=n_rel > 0)
    labels = np.array([int(patient_labels[str(p)]) for p in uniq], dtype=np.int64)
    return PatientScores(split=split, patient_ids=uniq, scores=scores, labels=labels, n_relevant=n_rel)


def sensitivity_specificity(labels: np.ndarray, decisions: np.ndarray) -> tuple[float, float]:
    """(sensitivity, specificity) of binary decisions; NaN where a class is absent."""
    labels = np.asarray(labels).astype(bool)
    decisions = np.asarray(decisions).astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    sens = float((decisions & labels).sum() / n_pos) if n_pos else float("nan")
    spec = float((~decisions & ~labels).sum() / n_neg) if n_neg else float("nan")
    return sens, spec


def harmonic_mean(sens: float, spec: float) -> float:
    """HM of sensitivity and specificity (0 when both are 0)."""
    return 0.0 if sens + spec == 0 else 2.0 * sens * spec / (sens + spec)


@dataclass(frozen=True)
class FittedThreshold:
    """A threshold on patient scores (gastritis when ``score >= value``) and where it came from."""

    value: float
    fit_split: str
    fit_hm: float
    fit_patients: frozenset = field(repr=False)
    #: ``fit`` (argmax HM on one split) or ``cv`` (cross-validated over training and validation patients).
    method: str = "fit"
    #: How the HM maximum was placed: ``empirical`` or ``binormal`` (:data:`THRESHOLD_RULES`).
    rule: str = "empirical"
    #: Patients of each diagnosis the threshold rests on: (gastritis, not gastritis).
    n_positive: int = 0
    n_negative: int = 0
    #: Cross-validation only: HM of the out-of-fold decisions, and the per-fold thresholds.
    cv_hm: float = math.nan
    fold_values: tuple[float, ...] = ()

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Gastritis decisions (bool, same shape as ``scores``): ``score >= value``."""
        return np.asarray(scores) >= self.value

    def apply(self, scores: PatientScores) -> np.ndarray:
        """Binary decisions for patients of another split; refuses the fitting split and its patients."""
        if scores.split == self.fit_split:
            raise PatientEvaluationError(
                f"threshold was fitted on split {self.fit_split!r}; apply it to another split (e.g. 'test')"
            )
        overlap = self.fit_patients.intersection(scores.patient_ids.tolist())
        if overlap:
            raise PatientEvaluationError(
                f"{len(overlap)} patient(s) of split {scores.split!r} were also in the fitting split "
                f"{self.fit_split!r}; the splits must be disjoint by patient"
            )
        return self.decide(scores.scores)


def fit_threshold(fit: PatientScores, rule: str = "empirical") -> FittedThreshold:
    """The threshold maximising HM on ``fit`` (a ``train`` or ``val`` split only).

    ``rule="empirical"``: candidates are the distinct scores; between the chosen score and the next
    lower distinct score the midpoint is used (same decisions on the fitting patients, a margin for new
    ones). Ties in HM go to the lowest threshold (the most sensitive rule, as a screening test prefers).
    ``rule="binormal"``: the maximum of the HM a binormal model of the scores predicts
    (:func:`binormal_threshold`), or the empirical rule where that model is degenerate (a diagnosis with
    fewer than 2 patients, or scores spread less than :data:`BINORMAL_MIN_SD`); ``rule`` of the result
    says which was used. ``fit_hm`` is the HM of the threshold's decisions on ``fit`` either way.
    Raises :class:`PatientEvaluationError` for a test split, one diagnosis only or an unknown rule.
    """
    if fit.split not in FIT_SPLITS:
        raise PatientEvaluationError(
            f"a threshold may only be fitted on {FIT_SPLITS} patients, not on {fit.split!r}; "
            "set eval.threshold_source to 'val' or 'train'"
        )
    labels = fit.labels.astype(bool)
    if labels.all() or not labels.any():
        raise PatientEvaluationError(
            f"split {fit.split!r} has patients of one diagnosis only ({len(labels)} patients); "
            "the threshold needs both gastritis and non-gastritis patients"
        )
    value, used = _place_threshold(fit.scores, labels, rule)
    return FittedThreshold(
        value=value,
        fit_split=fit.split,
        fit_hm=harmonic_mean(*sensitivity_specificity(labels, fit.scores >= value)),
        fit_patients=frozenset(fit.patient_ids.tolist()),
        rule=used,
        n_positive=int(labels.sum()),
        n_negative=int((~labels).sum()),
    )


def _check_rule(rule: str) -> None:
    """Raise :class:`PatientEvaluationError` naming ``eval.patient.threshold_rule`` for an unknown rule."""
    if rule not in THRESHOLD_RULES:
        raise PatientEvaluationError(f"eval.patient.threshold_rule = {rule!r}; use one of {THRESHOLD_RULES}")


def _place_threshold(scores: np.ndarray, labels: np.ndarray, rule: str) -> tuple[float, str]:
    """(threshold, the rule used): ``binormal`` falls back to ``empirical`` where its model is degenerate."""
    _check_rule(rule)
    if rule == "binormal" and not _binormal_degenerate(scores, labels):
        return binormal_threshold(scores, labels), "binormal"
    return _argmax_hm(scores, labels)[0], "empirical"


def _binormal_degenerate(scores: np.ndarray, labels: np.ndarray) -> bool:
    """True when a diagnosis has fewer than 2 patients or its scores spread less than BINORMAL_MIN_SD."""
    for part in (scores[labels], scores[~labels]):
        if len(part) < 2 or float(np.std(part, ddof=1)) < BINORMAL_MIN_SD:
            return True
    return False


def binormal_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold maximising HM under a binormal model of patient scores ``[n]`` (labels ``[n]``, bool).

    Each diagnosis's scores are modelled as normal with their sample mean and standard deviation
    (``ddof=1``, floored at :data:`BINORMAL_MIN_SD`); the model's sensitivity at ``t`` is
    ``P(score >= t | gastritis)`` and its specificity ``P(score < t | not)`` (scipy.stats.norm). Their HM
    is maximised over ``[min(scores), max(scores)]`` on a grid of :data:`BINORMAL_GRID` points, then by
    bounded Brent (scipy.optimize) between the best point's neighbours. The binormal ROC model: Metz,
    "Basic principles of ROC analysis", Semin. Nucl. Med. 1978. Raises :class:`PatientEvaluationError`
    when a diagnosis has fewer than 2 patients (no standard deviation).
    """
    from scipy.optimize import minimize_scalar
    from scipy.stats import norm

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) < 2 or len(neg) < 2:
        raise PatientEvaluationError(
            f"the binormal threshold needs at least 2 patients of each diagnosis ({len(pos)} gastritis, "
            f"{len(neg)} not); give the fitting split more patients or set "
            "eval.patient.threshold_rule=empirical"
        )
    mp, sp = float(pos.mean()), max(float(pos.std(ddof=1)), BINORMAL_MIN_SD)
    mn, sn = float(neg.mean()), max(float(neg.std(ddof=1)), BINORMAL_MIN_SD)

    def model_hm(t: np.ndarray | float) -> np.ndarray:
        sens, spec = norm.sf(t, mp, sp), norm.cdf(t, mn, sn)
        return np.divide(2 * sens * spec, sens + spec, out=np.zeros_like(sens), where=(sens + spec) > 0)

    lo, hi = float(scores.min()), float(scores.max())
    if hi <= lo:
        return lo
    grid = np.linspace(lo, hi, BINORMAL_GRID)
    k = int(np.argmax(model_hm(grid)))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best = minimize_scalar(lambda t: -float(model_hm(np.asarray(t))), bounds=(a, b), method="bounded")
    return float(best.x) if -best.fun >= model_hm(grid[k]) else float(grid[k])


def _argmax_hm(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(threshold, HM) of the HM-maximising rule ``score >= threshold`` (see :func:`fit_threshold`)."""
    distinct = np.unique(scores)  # ascending
    hms = np.array([harmonic_mean(*sensitivity_specificity(labels, scores >= t)) for t in distinct])
    k = int(np.argmax(hms))  # first maximum = lowest threshold
    value = float(distinct[k]) if k == 0 else float((distinct[k] + distinct[k - 1]) / 2.0)
    return value, float(hms[k])


def diagnosis_counts(scores: PatientScores) -> tuple[int, int]:
    """(gastritis, not gastritis) patients of one split."""
    labels = scores.labels.astype(bool)
    return int(labels.sum()), int((~labels).sum())


@dataclass(frozen=True)
class ThresholdPolicy:
    """When a patient threshold may be fitted, and what to do when the fitting split is too small.

    ``min_patients_per_class``: fewest patients of each diagnosis a threshold may rest on (0: no
    check). ``fallback``: ``refuse`` (raise :class:`ThresholdRefused`) or ``cv`` (cross-validate over
    training and validation patients pooled, ``cv_folds`` stratified folds, seeded by ``seed``).
    ``rule``: how the HM maximum is placed (:data:`THRESHOLD_RULES`, see :func:`fit_threshold`).
    """

    min_patients_per_class: int = 5
    fallback: str = "refuse"
    cv_folds: int = 5
    seed: int = 0
    rule: str = "empirical"

    def __post_init__(self) -> None:
        if self.fallback not in ("refuse", "cv"):
            raise PatientEvaluationError(
                f"eval.patient.threshold_fallback = {self.fallback!r}; use 'refuse' or 'cv'"
            )
        if self.min_patients_per_class < 0 or self.cv_folds < 2:
            raise PatientEvaluationError(
                "eval.patient.min_patients_per_class must be >= 0 and eval.patient.cv_folds >= 2"
            )
        _check_rule(self.rule)


def _pool(parts: Sequence[PatientScores]) -> PatientScores:
    ids = np.concatenate([p.patient_ids for p in parts])
    if len(np.unique(ids)) != len(ids):
        raise PatientEvaluationError(
            "the splits pooled for threshold cross-validation share patients; they must be disjoint"
        )
    return PatientScores(
        split="train",  # a fitting split; the pooled threshold records its true origin in fit_split
        patient_ids=ids,
        scores=np.concatenate([p.scores for p in parts]),
        labels=np.concatenate([p.labels for p in parts]),
        n_relevant=np.concatenate([p.n_relevant for p in parts]),
    )


def fit_threshold_cv(
    parts: Sequence[PatientScores], folds: int = 5, seed: int = 0, rule: str = "empirical"
) -> FittedThreshold:
    """A threshold cross-validated over the patients of ``parts`` (``train`` and/or ``val`` splits).

    Patients are split into ``folds`` stratified folds (seeded). On each fold's complement the
    HM-maximising threshold is fitted (:func:`fit_threshold`'s ``rule``) and applied to the held-out
    fold; ``cv_hm`` is the HM of all out-of-fold decisions (an honest estimate of the rule's
    quality), and the threshold is the median of the fold thresholds (stabler than one fit on all).
    The number of folds is capped by the smaller diagnosis count. ``rule`` of the result is ``binormal``
    only when that model placed every fold's threshold (none fell back to the empirical rule).
    """
    for p in parts:
        if p.split not in FIT_SPLITS:
            raise PatientEvaluationError(
                f"threshold cross-validation pools {FIT_SPLITS} patients only, not {p.split!r}"
            )
    pooled = _pool(parts)
    labels = pooled.labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if min(n_pos, n_neg) < 2:
        raise ThresholdRefused(
            f"threshold cross-validation needs at least 2 patients of each diagnosis; the pooled "
            f"{'+'.join(p.split for p in parts)} patients have {n_pos} gastritis and {n_neg} not"
        )
    k = min(int(folds), n_pos, n_neg)
    # numpy takes no negative entropy: a negative run seed (valid everywhere else) wraps to 64 bits
    rng = np.random.default_rng([int(seed) % 2**64, 0x7C5])
    fold = np.empty(len(labels), dtype=np.int64)
    for cls in (True, False):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        fold[idx] = np.arange(len(idx)) % k
    decisions = np.zeros(len(labels), dtype=bool)
    values, used = [], set()
    for f in range(k):
        train = fold != f
        value, placed = _place_threshold(pooled.scores[train], labels[train], rule)
        values.append(value)
        used.add(placed)
        decisions[~train] = pooled.scores[~train] >= value
    value = float(np.median(values))
    return FittedThreshold(
        value=value,
        fit_split="+".join(p.split for p in parts),
        fit_hm=harmonic_mean(*sensitivity_specificity(labels, pooled.scores >= value)),
        fit_patients=frozenset(pooled.patient_ids.tolist()),
        method="cv",
        rule="binormal" if used == {"binormal"} else "empirical",  # binormal only if every fold was
        n_positive=n_pos,
        n_negative=n_neg,
        cv_hm=harmonic_mean(*sensitivity_specificity(labels, decisions)),
        fold_values=tuple(float(v) for v in values),
    )


def choose_threshold(
    policy: ThresholdPolicy,
    fit: PatientScores,
    other: PatientScores | Callable[[], PatientScores] | None = None,
) -> FittedThreshold:
    """The patient threshold under ``policy``: fitted on ``fit`` when it has enough patients per diagnosis.

    Otherwise, with ``policy.fallback == "cv"``, cross-validated over ``fit`` and ``other`` (the other
    fitting split, or a callable computing it only when needed); else :class:`ThresholdRefused`,
    whose message names the counts and the config keys that change the decision.
    """
    n_pos, n_neg = diagnosis_counts(fit)
    need = int(policy.min_patients_per_class)
    if min(n_pos, n_neg) >= need:
        return fit_threshold(fit, policy.rule)
    short = (
        f"the patient threshold would be fitted on {n_pos} gastritis and {n_neg} non-gastritis "
        f"{fit.split!r} patients, fewer than eval.patient.min_patients_per_class = {need} per diagnosis"
    )
    if policy.fallback != "cv":
        raise ThresholdRefused(
            f"{short}; refused. Set eval.patient.threshold_fallback=cv to cross-validate it over training "
            "and validation patients, give the split more patients, or lower the minimum (the interval "
            "of every patient-level number will then be wide)"
        )
    if other is None:
        raise ThresholdRefused(f"{short}, and no other fitting split was given to cross-validate over")
    other_scores = other() if callable(other) else other
    th = fit_threshold_cv([fit, other_scores], policy.cv_folds, policy.seed, policy.rule)
    if min(th.n_positive, th.n_negative) < need:
        raise ThresholdRefused(
            f"{short}, and training and validation patients together have only {th.n_positive} and "
            f"{th.n_negative}; refused (lower eval.patient.min_patients_per_class only knowingly)"
        )
    return th


def threshold_policy(patient_cfg: Mapping | None, seed: int = 0) -> ThresholdPolicy:
    """The :class:`ThresholdPolicy` of an ``eval.patient`` config node (missing keys: the defaults)."""
    c = patient_cfg or {}
    return ThresholdPolicy(
        min_patients_per_class=int(c.get("min_patients_per_class", 5)),
        fallback=str(c.get("threshold_fallback", "refuse")),
        cv_folds=int(c.get("cv_folds", 5)),
        seed=int(seed),
        rule=str(c.get("threshold_rule", "empirical")),
    )
