"""The one-line anonymity verdict of a distilled set, from the audit's numbers (for the report and the card).

A *pass* needs more than "no image was flagged": the audit must also have shown that it can flag.
Every audit plants positive controls (real training patches, and the same with small noise) and an
overfitted network for the membership attack; if the controls are not flagged or the attack misses
its overfitted network, the audit cannot certify anything on these data and says so instead of
passing. The verdict text is card-safe: no paths, no identifiers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

NOT_AUDITED = "not audited: run gastrodistill-audit on this set before sharing it"
#: Verdict words, first word of every verdict text.
PASS, FLAGGED, NOT_CERTIFIED = "pass", "flagged", "not certified"


def _get(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key, math.nan)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def verdict_code(metrics: Mapping[str, Any]) -> str:
    """``pass``, ``flagged`` or ``not certified``: the first word(s) of :func:`anonymity_verdict`."""
    return anonymity_verdict(metrics).split(":", 1)[0]


def anonymity_verdict(metrics: Mapping[str, Any]) -> str:
    """The verdict of one distilled set from its audit numbers (``run_audit``'s row for the set).

    Order of precedence: leaks and flagged images (``flagged``), then controls that were not flagged
    or a membership attack without power (``not certified``), then ``pass``. Keys read:
    ``artifact_leaks``, ``frac_flagged``, ``n_images``, ``membership_flagged``,
    ``controls_certified``, ``mia_control_detected``, ``mia_auc_null_sd`` (the attack flags an AUC above
    0.5 + 3 such sd only: at 1 or above it cannot flag, so it certifies nothing; audits of any version
    record it).
    """
    leaks = _get(metrics, "artifact_leaks")
    if math.isfinite(leaks) and leaks > 0:
        return f"{FLAGGED}: {leaks:.0f} private string(s) found in the artifact bytes"
    frac, n = _get(metrics, "frac_flagged"), _get(metrics, "n_images")
    if math.isfinite(frac) and frac > 0:
        count = f"{round(frac * n)} of {n:.0f}" if math.isfinite(n) else f"{frac:.0%} of the"
        return (
            f"{FLAGGED}: {count} distilled images are at least as close to a real training patch as "
            "the closest real patches of different patients are to each other"
        )
    if _get(metrics, "membership_flagged") == 1.0:
        return (
            f"{FLAGGED}: the calibrated membership attack separates training from test patches on "
            "networks trained from this set"
        )
    reasons = []
    if _get(metrics, "controls_certified") != 1.0:
        reasons.append(
            "its positive controls (real training patches, and the same with small noise) were not "
            "flagged on these data"
        )
    if _get(metrics, "mia_control_detected") != 1.0:
        reasons.append("its membership attack did not detect a network overfitted on real patches")
    chance = 0.5 + 3 * _get(metrics, "mia_auc_null_sd")  # the flag's chance term (audit.py)
    if math.isfinite(chance) and chance >= 1.0:  # no AUC can pass it: too few patients
        reasons.append(
            f"its membership attack could not have flagged this set (chance on so few patients sets its "
            f"flag at AUC >= {chance:.3f}, above the largest possible AUC of 1)"
        )
    if reasons:
        return f"{NOT_CERTIFIED}: the audit cannot certify anonymity on these data, because " + " and ".join(
            reasons
        )
    return (
        f"{PASS}: no distilled image reaches the real between-patient similarity quantile, the "
        "membership attack stays below its flag, and the audit's positive controls were flagged"
    )
