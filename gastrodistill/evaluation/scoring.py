"""Scoring trained networks: every network of a setting in one pass over each split, then one record each.

A record holds the patch metrics on test patches, the validation balanced accuracy and, for data with
patients, the patient diagnosis (threshold fitted on the fitting split, never on test). Records also
keep what the table's paired intervals need: per test patient (labels, scores, decisions) or, for data
without patients, per test image (correct or not, and the class probabilities).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from gastrodistill.evaluation.ensemble import Ensemble
from gastrodistill.evaluation.metrics import patch_metrics, patient_metrics
from gastrodistill.evaluation.patient import choose_threshold, patient_scores
from gastrodistill.evaluation.splits import Context, SplitCache


@torch.no_grad()
def predict_split(
    models: Ensemble | Sequence[nn.Module],
    split: SplitCache,
    autocast: bool = False,
    channels_last: bool = False,
) -> np.ndarray:
    """Class probabilities ``[E, N, K]`` (float32) of E networks on a split, read once.

    ``autocast``: bfloat16 autocast on the networks' device (``eval.score_autocast``; CUDA or CPU; on the
    CPU it does not reach inside an :class:`Ensemble`'s vmap, so ensembles score in float32 there).
    ``channels_last``: networks (not ensembles) and batches in channels-last memory format
    (``eval.score_channels_last``; measured 2-4× faster on one CPU thread for the CPU preset's ConvNet
    together with small batches, docs/evaluation.md; outputs equal up to float rounding, ~1e-5).
    """
    ens = models if isinstance(models, Ensemble) else None
    nets = list(models.nets) if ens is not None else list(models)
    fmt = torch.channels_last if channels_last and ens is None else torch.contiguous_format
    for n in nets:
        n.eval()
        if fmt is torch.channels_last:
            n.to(memory_format=fmt)
    dev = next(nets[0].parameters()).device
    use_amp = bool(autocast) and dev.type in ("cuda", "cpu")
    out: list[torch.Tensor] = []
    for x in split.batches():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            if ens is not None:
                logits = ens.forward(x)
            else:
                x = x.contiguous(memory_format=fmt) if x.dim() == 4 else x
                logits = torch.stack([n(x.to(next(n.parameters()).device)) for n in nets])
        out.append(torch.softmax(logits.float(), dim=-1).cpu())
    if fmt is torch.channels_last:  # hand the networks back as they came (the same values)
        for n in nets:
            n.to(memory_format=torch.contiguous_format)
    if not out:
        return np.empty((len(nets), 0, 0), dtype=np.float32)
    return torch.cat(out, dim=1).numpy()


def record_from_probs(
    ctx: Context,
    test_probs: np.ndarray,
    val_pred: np.ndarray,
    fit_pred: np.ndarray | None,
    other_pred: Callable[[], np.ndarray] | None = None,
) -> dict[str, Any]:
    """One network's record from its test probabilities ``[N_test, K]`` and val/fit predicted classes.

    ``other_pred``: the network's predicted classes on the other fitting split, computed only when the
    threshold policy cross-validates (issue 13's ``choose_threshold``).
    """
    dm = ctx.dm
    rec: dict[str, Any] = {}
    test_pred = test_probs.argmax(1)
    rec.update(patch_metrics(test_pred, ctx.test.labels, dm.num_classes, list(dm.class_names), test_probs))
    rec["val_balanced_accuracy"] = patch_metrics(val_pred, ctx.val.labels, dm.num_classes)[
        "patch_balanced_accuracy"
    ]
    if ctx.patients:
        fit_scores = patient_scores(
            ctx.fit.split,
            val_pred if fit_pred is None else fit_pred,
            ctx.fit.patient_ids,
            ctx.fit.patient_labels,
            ctx.positive_class,
            ctx.irrelevant_class,
        )
        other = None
        if ctx.other_fit is not None and other_pred is not None:

            def other() -> Any:
                split = ctx.other_split()
                return patient_scores(
                    split.split,
                    other_pred(),
                    split.patient_ids,
                    split.patient_labels,
                    ctx.positive_class,
                    ctx.irrelevant_class,
                )

        threshold = choose_threshold(ctx.policy, fit_scores, other)
        test_scores = patient_scores(
            "test",
            test_pred,
            ctx.test.patient_ids,
            ctx.test.patient_labels,
            ctx.positive_class,
            ctx.irrelevant_class,
        )
        decisions = threshold.apply(test_scores)
        rec.update(patient_metrics(test_scores.labels, decisions, test_scores.scores))
        rec.update(
            threshold=threshold.value,
            fit_hm=threshold.fit_hm,
            threshold_cv=float(threshold.method == "cv"),
            threshold_binormal=float(threshold.rule == "binormal"),
            threshold_fit_count=float(threshold.n_positive + threshold.n_negative),
            test_labels=test_scores.labels,
            test_scores=test_scores.scores,
            test_decisions=decisions,
        )
    else:
        rec.update(
            image_labels=ctx.test.labels.astype(np.int64),
            image_correct=(test_pred == ctx.test.labels).astype(np.uint8),
            image_probs=test_probs.astype(np.float32),  # float16 tied confident scores: the AUC intervals
        )
    return rec


def scoring_options(ctx: Context) -> dict[str, bool]:
    """:func:`predict_split`'s options from the config: ``eval.score_autocast`` (bfloat16 autocast) and
    ``eval.score_channels_last`` (channels-last memory format), both off by default."""
    ev = ctx.cfg.eval
    return {
        "autocast": bool(ev.get("score_autocast", False)),
        "channels_last": bool(ev.get("score_channels_last", False)),
    }


def score_networks(models: Ensemble | Sequence[nn.Module], ctx: Context) -> list[dict[str, Any]]:
    """Records of E networks (an :class:`Ensemble` or a list): one pass over test, val and fit splits."""
    opts = scoring_options(ctx)
    test = predict_split(models, ctx.test, **opts)
    # Weights can stay finite while the outputs overflow (a steep learned schedule: NaN logits). Such a
    # network is scored as one whose training diverged (fresh_training.learned_nothing: uniform
    # probabilities, class 0 predicted), with diverged: true, as at a receiving site.
    overflowed = ~np.isfinite(test).all(axis=(1, 2))
    test[overflowed] = 1.0 / test.shape[-1]
    val = predict_split(models, ctx.val, **opts).argmax(-1)
    val[overflowed] = 0
    fit = None
    if ctx.patients and ctx.fit is not ctx.val:
        fit = predict_split(models, ctx.fit, **opts).argmax(-1)
        fit[overflowed] = 0
    other: list[np.ndarray] = []

    def other_pred(i: int) -> Callable[[], np.ndarray]:
        def get() -> np.ndarray:  # the other fitting split, predicted once for all networks when needed
            if not other:
                other.append(predict_split(models, ctx.other_split(), **opts).argmax(-1))
                other[0][overflowed] = 0
            return other[0][i]

        return get

    records = [
        record_from_probs(ctx, test[i], val[i], None if fit is None else fit[i], other_pred(i))
        for i in range(len(test))
    ]
    for i in np.flatnonzero(overflowed):
        records[i]["diverged"] = True
    return records


def evaluate_network(net: nn.Module, ctx: Context) -> dict[str, Any]:
    """The record of one network (patch metrics, validation balanced accuracy, patient diagnosis)."""
    return score_networks([net], ctx)[0]


def val_selector(ctx: Context) -> Callable[[nn.Module], float]:
    """Model selection score: balanced patch accuracy on validation patients (never test)."""

    def score(net: nn.Module) -> float:
        pred = predict_split([net], ctx.val, **scoring_options(ctx))[0].argmax(-1)
        return float(patch_metrics(pred, ctx.val.labels, ctx.dm.num_classes)["patch_balanced_accuracy"])

    return score


def val_scores(models: Ensemble | Sequence[nn.Module], ctx: Context) -> list[float]:
    """Validation balanced accuracy of each of E networks (one pass over the validation split)."""
    pred = predict_split(models, ctx.val, **scoring_options(ctx)).argmax(-1)
    return [
        float(patch_metrics(p, ctx.val.labels, ctx.dm.num_classes)["patch_balanced_accuracy"]) for p in pred
    ]
