"""Pre-flight check of the ``audit`` config section: every value that can be checked without data.

The audit reads most of its values where it uses them, after the reference network, the shadow networks
or (in ``gastrodistill-reproduce``) the whole distillation and evaluation have run. A typo there used
to cost those minutes, and some values (an unknown ``membership.primary``) failed with a ``KeyError``.
:func:`check_audit_config` checks them on the config alone; ``run_audit`` calls it first, and
``gastrodistill-reproduce`` before any stage runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gastrodistill.anonymity.membership import CALIBRATED_ATTACKS
from gastrodistill.anonymity.nearest import SPACES
from gastrodistill.anonymity.text_check import TextCheckError, check_ignored_attributes, text_corners
from gastrodistill.evaluation.fresh_training import OPTIMIZERS
from gastrodistill.utils.precision import lightning_precision
from gastrodistill.utils.values import check_switch, is_count, is_finite_number, listed

#: ``audit.membership.primary``: the strongest calibrated attack (``best``) or one attack by name.
PRIMARY_ATTACKS = ("best", "loss", *CALIBRATED_ATTACKS)
#: ``audit.membership.schedule`` and ``audit.receive.schedule``: how fresh networks train on a set.
MIA_SCHEDULES = ("replay", "standard")


class AuditConfigError(ValueError):
    """A bad ``audit`` config entry; the message names the key."""


def _get(section: Mapping[str, Any] | None, key: str) -> Any:
    return None if section is None else section.get(key)


def _integer(section: Mapping[str, Any], path: str, key: str, low: int, null_ok: bool = False) -> None:
    raw = _get(section, key)
    if raw is None and (null_ok or key not in (section or {})):
        return  # null where it means a default, or a key this config does not set (its code default)
    if not is_count(raw, low):
        hint = " or null" if null_ok else ""
        raise AuditConfigError(f"audit.{path}{key} must be an integer >= {low}{hint}, got {raw!r}")


def _fraction(
    section: Mapping[str, Any],
    path: str,
    key: str,
    low: float,
    high: float,
    *,
    open_low: bool = False,
    open_high: bool = False,
    null_ok: bool = False,
) -> None:
    raw = _get(section, key)
    if raw is None and (null_ok or key not in (section or {})):
        return
    if (
        not is_finite_number(raw)
        or not (low < raw if open_low else low <= raw)
        or not (raw < high if open_high else raw <= high)
    ):
        bound = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        hint = " or null" if null_ok else ""
        raise AuditConfigError(f"audit.{path}{key} must be a number in {bound}{hint}, got {raw!r}")


def _positive(section: Mapping[str, Any], path: str, key: str, null_ok: bool = False) -> None:
    raw = _get(section, key)
    if raw is None and (null_ok or key not in (section or {})):
        return
    if not (is_finite_number(raw) and raw > 0):
        hint = " or null" if null_ok else ""
        raise AuditConfigError(f"audit.{path}{key} must be a finite number > 0{hint}, got {raw!r}")


def _flag(section: Mapping[str, Any], path: str, key: str) -> None:
    raw = _get(section, key)
    if key in (section or {}):
        check_switch(raw, f"audit.{path}{key}", AuditConfigError)


def _choice(
    section: Mapping[str, Any], path: str, key: str, choices: tuple[str, ...], null_ok: bool = False
) -> None:
    raw = _get(section, key)
    if raw is None and (null_ok or key not in (section or {})):
        return
    if raw not in choices:
        raise AuditConfigError(f"audit.{path}{key} = {raw!r}; use one of {', '.join(choices)}")


def _nearest(n: Mapping[str, Any]) -> None:
    p = "nearest."
    for key in ("reference_size", "top_k"):
        _integer(n, p, key, 1)
    _integer(n, p, "max_real", 1, null_ok=True)
    _flag(n, p, "feature_space")
    _fraction(n, p, "flag_quantile", 0.0, 1.0, open_low=True, open_high=True)
    _fraction(n, p, "duplicate_ncc", 0.0, 1.0, open_low=True)
    spaces = n.get("flag_spaces")
    if spaces is not None:
        names = listed(spaces, str)
        unknown = [s for s in names if s not in SPACES]
        if not names or unknown:
            raise AuditConfigError(
                f"audit.nearest.flag_spaces = {names}; list some of {', '.join(SPACES)}, e.g. [ncc, ssim]"
            )
        if "feature" in names and n.get("feature_space") is False:
            raise AuditConfigError(
                "audit.nearest.flag_spaces lists 'feature' but audit.nearest.feature_space is false; "
                "set audit.nearest.feature_space=true or drop 'feature'"
            )
    informative = n.get("informative") or {}
    texture = informative.get("min_texture")
    if texture is not None and not (is_finite_number(texture) and texture >= 0):
        raise AuditConfigError(
            f"audit.nearest.informative.min_texture must be a number >= 0 or null, got {texture!r}"
        )


def null_permutations(mcfg: Mapping[str, Any]) -> int:
    """``audit.membership.null_permutations`` checked: an integer, 0 (chance from the patches alone) or at
    least 2 (a standard deviation needs two draws). Raises ``AuditConfigError`` naming the key."""
    raw = mcfg.get("null_permutations", 1000)
    if not is_count(raw, 0) or raw == 1:
        raise AuditConfigError(
            f"audit.membership.null_permutations must be 0 (off) or an integer >= 2, got {raw!r}; "
            "e.g. audit.membership.null_permutations=1000"
        )
    return raw


def _membership(m: Mapping[str, Any]) -> None:
    p = "membership."
    _integer(m, p, "n_networks", 1)
    _choice(m, p, "schedule", MIA_SCHEDULES)
    _integer(m, p, "max_per_side", 2)
    _flag(m, p, "informative_only")
    shadows = m.get("shadows")
    if shadows is not None and (not is_count(shadows, 2) or shadows % 2):
        raise AuditConfigError(
            f"audit.membership.shadows must be an even integer >= 2 (complementary halves of the patients), "
            f"got {shadows!r}"
        )
    _integer(m, p, "shadow_epochs", 1, null_ok=True)
    _integer(m, p, "processes", 1, null_ok=True)
    _choice(m, p, "primary", PRIMARY_ATTACKS)
    fprs = m.get("fprs")
    if fprs is not None:
        for f in listed(fprs, (int, float)):
            if not (is_finite_number(f) and 0.0 < f < 1.0):
                raise AuditConfigError(
                    f"audit.membership.fprs entries must be false-positive rates in (0, 1), got {f!r}"
                )
    _fraction(m, p, "flag_auc", 0.5, 1.0, open_low=True)
    null_permutations(m)
    o, po = m.get("overfit_control") or {}, "membership.overfit_control."
    patients = o.get("patients", 1)  # a config without the key: the code's default
    fraction = isinstance(patients, float) and is_finite_number(patients) and 0.0 < patients < 1.0
    if not (is_count(patients, 1) or fraction):
        raise AuditConfigError(
            f"audit.{po}patients must be an integer >= 1 (patients) or a fraction in (0, 1) of the pool's "
            f"training patients, got {patients!r}"
        )
    _integer(o, po, "max_patches", 1, null_ok=True)
    for key in ("epochs", "batch_size"):
        _integer(o, po, key, 1)
    _positive(o, po, "lr", null_ok=True)
    _choice(o, po, "optimizer", tuple(sorted(OPTIMIZERS)), null_ok=True)
    _fraction(o, po, "detect_auc", 0.5, 1.0, open_low=True)
    _fraction(o, po, "detect_tpr_at_1pct", 0.0, 1.0, open_low=True)


def shows_progress(acfg: Mapping[str, Any]) -> bool:
    """``audit.progress`` (default true): whether the audit's reference and membership networks and a
    receiving site's fresh networks train under progress bars."""
    return bool(acfg.get("progress", True))


def check_audit_config(acfg: Mapping[str, Any]) -> None:
    """Refuse a bad value in the ``audit`` section before any network trains.

    Checks counts (integers in range), fractions and rates, switches (true/false, ``artifact.write`` and
    ``artifact.archive`` included), and names
    (``nearest.flag_spaces``, ``membership.schedule``, ``membership.primary``, ``text.corner``: one
    corner or a non-empty list of corners).
    Keys a config does not set are left to the code's defaults. Raises :class:`AuditConfigError`
    naming the key and what to write instead.
    """
    _integer(acfg, "", "closest_pairs", 0)
    _integer(acfg, "", "real_epochs", 1, null_ok=True)
    _flag(acfg, "", "progress")
    _nearest(acfg.get("nearest") or {})
    c = acfg.get("controls") or {}
    _integer(c, "controls.", "size", 1, null_ok=True)
    _positive(c, "controls.", "noise_std")  # [0, 1] intensity units; > 1 is a (strong) test of the controls
    for key in ("required_copy", "required_noisy"):
        _fraction(c, "controls.", key, 0.0, 1.0)
    _membership(acfg.get("membership") or {})
    a = acfg.get("artifact") or {}  # gastrodistill-audit's shareable artifacts: 'no' was read as true
    _flag(a, "artifact.", "write")
    _flag(a, "artifact.", "archive")
    _integer(a, "artifact.", "grid_max", 1)
    t = acfg.get("text") or {}
    _flag(t, "text.", "region_check")
    if "corner" in t:  # one corner name or a non-empty list of them (the generator stamps in two)
        try:
            text_corners(t.get("corner"))
        except TextCheckError as exc:
            raise AuditConfigError(str(exc)) from None
    ignored = t.get("ignore_attributes")
    if ignored is not None:
        if isinstance(ignored, str) or not isinstance(ignored, Sequence):
            raise AuditConfigError(
                f"audit.text.ignore_attributes must be a list of DICOM keywords, got {ignored!r}; e.g. "
                "audit.text.ignore_attributes=[ConvolutionKernel]"
            )
        try:
            check_ignored_attributes(ignored)
        except TextCheckError as exc:
            raise AuditConfigError(str(exc)) from None
    box = t.get("box")
    if box is not None:
        values = list(box) if not isinstance(box, str | int | float) else [box]
        if len(values) != 2 or not all(is_finite_number(v) and 0 < v <= 1 for v in values):
            raise AuditConfigError(
                f"audit.text.box must be two fractions in (0, 1] (height, width of the image), got {values}"
            )
    for key in ("reference_size", "min_length"):
        _integer(t, "text.", key, 1)
    _integer(t, "text.", "max_dicom_files", 1, null_ok=True)
    r = acfg.get("receive") or {}  # gastrodistill-train-from-artifact
    _integer(r, "receive.", "n_networks", 1)
    _choice(r, "receive.", "schedule", MIA_SCHEDULES)
    for key in ("max_network_parameters", "max_training_steps"):  # what a received card may ask
        _integer(r, "receive.", key, 1, null_ok=True)
    precision = _get(r, "standard_precision")
    if precision is not None:
        try:
            lightning_precision(precision, "audit.receive.standard_precision")
        except ValueError as exc:
            raise AuditConfigError(f"{exc}; or null for the card's") from None
