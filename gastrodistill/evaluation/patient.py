"""From patch predictions to a diagnosis per patient, as in the paper's whole-image classification.

A patient's score is the share of their patches predicted *gastritis* among those not predicted
*irrelevant*, pooled over all of the patient's images. A patient with no relevant patch at all
(every patch predicted irrelevant) has no evidence of gastritis: score 0.0, and ``n_relevant`` 0
records the case.

The decision threshold maximises the harmonic mean (HM) of sensitivity and specificity on the
patients it is fitted on. :func:`fit_threshold` accepts only scores of a fitting split (``train`` or
``val``), and :meth:`FittedThreshold.apply` refuses the split and the patients it was fitted on, so
a threshold can never be chosen on test patients nor evaluated on its own fitting patients.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

#: Splits a threshold may be fitted on. ``test`` is deliberately absent.
FIT_SPLITS = ("train", "val")
SPLITS = ("train", "val", "test")


class PatientEvaluationError(ValueError):
    """Bad input to patient-level evaluation (unknown patient, one-class fitting set, wrong split...)."""


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

    def decide(self, scores: np.ndarray) -> np.ndarray:
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


def fit_threshold(fit: PatientScores) -> FittedThreshold:
    """The threshold maximising HM on ``fit`` (a ``train`` or ``val`` split only).

    Candidates are the distinct scores; between the chosen score and the next lower distinct score
    the midpoint is used (same decisions on the fitting patients, a margin for new ones). Ties in HM
    go to the lowest threshold (the most sensitive rule, as a screening test prefers).
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
    distinct = np.unique(fit.scores)  # ascending
    hms = np.array([harmonic_mean(*sensitivity_specificity(labels, fit.scores >= t)) for t in distinct])
    k = int(np.argmax(hms))  # first maximum = lowest threshold
    value = float(distinct[k]) if k == 0 else float((distinct[k] + distinct[k - 1]) / 2.0)
    return FittedThreshold(
        value=value,
        fit_split=fit.split,
        fit_hm=float(hms[k]),
        fit_patients=frozenset(fit.patient_ids.tolist()),
    )
