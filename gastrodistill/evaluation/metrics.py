"""Patch- and patient-level metrics (torchmetrics where it has them) and bootstrap intervals over patients."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata
from torchmetrics.functional.classification import (
    binary_auroc,
    binary_roc,
    multiclass_accuracy,
    multiclass_auroc,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_recall,
)

from gastrodistill.evaluation.patient import harmonic_mean, sensitivity_specificity


def patch_metrics(
    preds: np.ndarray | torch.Tensor,
    target: np.ndarray | torch.Tensor,
    num_classes: int,
    class_names: list[str] | None = None,
    probs: np.ndarray | torch.Tensor | None = None,
) -> dict[str, object]:
    """Accuracy, balanced accuracy, macro F1, per-class recall, the confusion matrix (rows = truth) and,
    given class probabilities ``[N, K]``, the image-level ROC AUC (macro one-vs-rest; the binary AUC
    when K = 2; NaN when a class is missing from the targets)."""
    p = torch.as_tensor(np.asarray(preds), dtype=torch.long)
    t = torch.as_tensor(np.array(target), dtype=torch.long)  # a copy: store labels are read-only
    if p.shape != t.shape or p.ndim != 1:
        raise ValueError(
            f"predictions {tuple(p.shape)} and targets {tuple(t.shape)} must be equal 1-D shapes"
        )
    names = class_names or [str(i) for i in range(num_classes)]
    recall = multiclass_recall(p, t, num_classes=num_classes, average=None)
    out: dict[str, object] = {
        "patch_accuracy": float(multiclass_accuracy(p, t, num_classes=num_classes, average="micro")),
        "patch_balanced_accuracy": float(multiclass_recall(p, t, num_classes=num_classes, average="macro")),
        "patch_macro_f1": float(multiclass_f1_score(p, t, num_classes=num_classes, average="macro")),
        "confusion_matrix": multiclass_confusion_matrix(p, t, num_classes=num_classes).numpy(),
    }
    for name, r in zip(names, recall.tolist(), strict=True):
        out[f"recall_{name}"] = float(r)
    if probs is not None:
        pr = torch.as_tensor(np.asarray(probs), dtype=torch.float32)
        if pr.shape != (len(t), num_classes):
            raise ValueError(f"probabilities {tuple(pr.shape)} must be [{len(t)}, {num_classes}]")
        present = torch.bincount(t, minlength=num_classes) > 0
        out["patch_auc"] = (
            float(multiclass_auroc(pr, t, num_classes=num_classes, average="macro"))
            if bool(present.all())
            else float("nan")
        )
    return out


def patient_metrics(labels: np.ndarray, decisions: np.ndarray, scores: np.ndarray) -> dict[str, object]:
    """Sensitivity, specificity, their HM, accuracy, ROC AUC and the ROC curve of one set of patients."""
    labels = np.asarray(labels).astype(np.int64)
    decisions = np.asarray(decisions).astype(bool)
    sens, spec = sensitivity_specificity(labels, decisions)
    s = torch.as_tensor(np.asarray(scores, dtype=np.float64))
    y = torch.as_tensor(labels)
    both = 0 < labels.sum() < len(labels)
    auc = float(binary_auroc(s, y)) if both else float("nan")
    fpr, tpr, _ = binary_roc(s, y) if both else (torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), None)
    return {
        "patient_sensitivity": sens,
        "patient_specificity": spec,
        "patient_hm": harmonic_mean(sens, spec),
        "patient_accuracy": float((decisions == labels.astype(bool)).mean()) if len(labels) else float("nan"),
        "patient_auc": auc,
        "roc_fpr": fpr.numpy().astype(np.float64),
        "roc_tpr": tpr.numpy().astype(np.float64),
    }


def _auc_rows(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney with mid-ranks for ties); NaN where a row has one class."""
    ranks = rankdata(scores, axis=-1)
    n_pos = labels.sum(-1)
    n_neg = labels.shape[-1] - n_pos
    u = (ranks * labels).sum(-1) - n_pos * (n_pos + 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), u / (n_pos * n_neg), np.nan)


def _hm_rows(decisions: np.ndarray, labels: np.ndarray) -> np.ndarray:
    n_pos = labels.sum(-1)
    n_neg = labels.shape[-1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (decisions & labels).sum(-1) / n_pos
        spec = (~decisions & ~labels).sum(-1) / n_neg
        hm = np.where(sens + spec > 0, 2 * sens * spec / (sens + spec), 0.0)
    return np.where((n_pos > 0) & (n_neg > 0), hm, np.nan)


def bootstrap_patient_ci(
    labels: np.ndarray,
    decisions: np.ndarray,
    scores: np.ndarray,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile bootstrap intervals over patients for HM and ROC AUC.

    ``decisions`` and ``scores`` are ``[n_patients]`` or ``[n_networks, n_patients]``; with several
    networks each resample uses the same patients for all of them and the statistic is the mean over
    networks, so the interval is that of the table's mean. Resamples with one diagnosis only are
    drawn again (stratified by diagnosis), so every resample keeps the positive/negative counts.
    """
    labels = np.asarray(labels).astype(bool)
    decisions = np.atleast_2d(np.asarray(decisions).astype(bool))
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if decisions.shape != scores.shape or decisions.shape[1] != len(labels):
        raise ValueError(
            f"decisions {decisions.shape}, scores {scores.shape} and labels {labels.shape} disagree"
        )
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    if len(pos) == 0 or len(neg) == 0 or n_boot <= 0:
        nan = float("nan")
        return {
            "patient_hm_ci_low": nan,
            "patient_hm_ci_high": nan,
            "patient_auc_ci_low": nan,
            "patient_auc_ci_high": nan,
        }
    idx = np.concatenate(
        [rng.choice(pos, size=(n_boot, len(pos))), rng.choice(neg, size=(n_boot, len(neg)))], 1
    )
    lab = labels[idx]  # [B, P]
    hm = np.stack([_hm_rows(d[idx], lab) for d in decisions]).mean(0)  # [B]
    auc = np.stack([_auc_rows(s[idx], lab) for s in scores]).mean(0)
    a = (1.0 - level) / 2.0
    return {
        "patient_hm_ci_low": float(np.quantile(hm, a)),
        "patient_hm_ci_high": float(np.quantile(hm, 1 - a)),
        "patient_auc_ci_low": float(np.quantile(auc, a)),
        "patient_auc_ci_high": float(np.quantile(auc, 1 - a)),
    }


def mean_roc(
    fprs: list[np.ndarray], tprs: list[np.ndarray], grid: int = 101
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertical average of several ROC curves on a common FPR grid: (fpr, mean tpr, std tpr)."""
    x = np.linspace(0.0, 1.0, grid)
    ys = []
    for f, t in zip(fprs, tprs, strict=True):
        f, t = np.asarray(f, dtype=np.float64), np.asarray(t, dtype=np.float64)
        uf = np.unique(f)  # at a repeated FPR the curve jumps vertically: keep its top
        ut = np.array([t[f == v].max() for v in uf])
        ys.append(np.interp(x, uf, ut))
    ys_arr = np.stack(ys) if ys else np.zeros((1, grid))
    return x, ys_arr.mean(0), ys_arr.std(0)


def stratified_resamples(labels: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap indices ``[n_boot, N]`` drawn with replacement within each label value.

    Classes are drawn in descending label order (positives before negatives for patient labels, as
    :func:`bootstrap_patient_ci`), so every resample keeps the class counts of ``labels``.
    """
    labels = np.asarray(labels)
    parts = [
        rng.choice(np.flatnonzero(labels == c), size=(n_boot, int((labels == c).sum())))
        for c in np.unique(labels)[::-1]
    ]
    return np.concatenate(parts, 1)


def _macro_auc_rows(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Image-level AUC of each resample: binary AUC of class 1 for K = 2, else macro one-vs-rest.

    ``probs`` ``[R, N, K]`` and ``labels`` ``[R, N]`` (integer classes).
    """
    k = probs.shape[-1]
    if k == 2:
        return _auc_rows(probs[..., 1], labels == 1)
    return np.mean([_auc_rows(probs[..., c], labels == c) for c in range(k)], axis=0)


def statistic_rows(kind: str, arrays: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """One metric of one network on every resample ``idx`` ``[R, P]``: returns ``[R]``.

    ``kind``: ``patient_hm`` / ``patient_auc`` (arrays ``labels``, ``decisions``, ``scores`` per patient)
    or ``image_accuracy`` / ``image_auc`` (arrays ``labels``, ``correct``, ``probs`` per image).
    """
    lab = arrays["labels"][idx]
    if kind == "patient_hm":
        return _hm_rows(arrays["decisions"].astype(bool)[idx], lab.astype(bool))
    if kind == "patient_auc":
        return _auc_rows(arrays["scores"].astype(np.float64)[idx], lab.astype(bool))
    if kind == "image_accuracy":
        return arrays["correct"].astype(np.float64)[idx].mean(-1)
    if kind == "image_auc":
        return _macro_auc_rows(arrays["probs"].astype(np.float64)[idx], lab)
    raise ValueError(f"unknown bootstrap statistic {kind!r}")


def paired_bootstrap(
    kind: str,
    a: list[dict[str, np.ndarray]],
    b: list[dict[str, np.ndarray]] | None,
    rng: np.random.Generator,
    n_boot: int = 1000,
    level: float = 0.95,
    chunk: int = 100,
) -> tuple[float, float, float]:
    """(estimate, low, high): the mean over A's networks of a statistic, minus B's mean when B is given.

    A and B are the networks of two rows on the same test units (patients or images, same order and
    labels); every resample draws the same units for both (a paired, class-stratified percentile
    bootstrap, Efron & Tibshirani 1993, ch. 13). NaN when a class is missing or ``n_boot`` is 0.
    """
    labels = a[0]["labels"]
    for other in [*a, *(b or [])]:
        if not np.array_equal(other["labels"], labels):
            raise ValueError("paired rows must share their test units (same labels in the same order)")
    full = np.arange(len(labels))[None]

    def stat(idx: np.ndarray) -> np.ndarray:
        s = np.mean([statistic_rows(kind, r, idx) for r in a], axis=0)
        if b is not None:
            s = s - np.mean([statistic_rows(kind, r, idx) for r in b], axis=0)
        return s

    est = float(stat(full)[0])
    if n_boot <= 0 or len(np.unique(labels)) < 2:
        return est, float("nan"), float("nan")
    idx = stratified_resamples(labels, rng, n_boot)
    vals = np.concatenate([stat(idx[i : i + chunk]) for i in range(0, n_boot, chunk)])
    q = (1.0 - level) / 2.0
    return est, float(np.nanquantile(vals, q)), float(np.nanquantile(vals, 1 - q))
