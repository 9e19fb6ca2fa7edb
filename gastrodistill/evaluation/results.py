"""The results table: one row per (method, schedule, architecture), mean ± std over fresh networks.

Written as CSV (every number) and Markdown (the readable subset), and logged to the experiment
loggers (scalars to CSV/W&B, the whole table as a W&B table). Rows carry no patient data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pytorch_lightning.loggers import Logger, WandbLogger

from gastrodistill.evaluation.metrics import bootstrap_patient_ci
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.values import human_bytes

KEY_COLUMNS = ("method", "schedule", "architecture")
PATCH_METRICS = ("patch_accuracy", "patch_balanced_accuracy", "patch_macro_f1", "patch_auc")
PATIENT_METRICS = (
    "patient_sensitivity",
    "patient_specificity",
    "patient_hm",
    "patient_accuracy",
    "patient_auc",
)


def row_id(row: Mapping[str, Any]) -> str:
    """The row's key columns joined by ``/`` (e.g. ``soft/replay/same``): its name in messages and logs."""
    return "/".join(str(row[k]) for k in KEY_COLUMNS)


def scalar_metric_names(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Metrics averaged over networks: patch, per-class recall, patient metrics and the threshold."""
    recalls = sorted({k for r in records for k in r if k.startswith("recall_")})
    return [*PATCH_METRICS, *recalls, *PATIENT_METRICS, "threshold"]


#: Rows a distilled set's row is paired with (same test units): (partner method, same schedule?).
PARTNERS = (("random", False), ("random_soft", False), ("hard", True))
#: Baseline methods (never paired as the first row).
BASELINE_METHODS = ("full", "random", "mean", "random_soft")


def _arrays(rec: Mapping[str, Any]) -> dict[str, np.ndarray] | None:
    """What the bootstrap resamples: per test patient, else per test image; ``None`` if neither."""
    if rec.get("test_labels") is not None:
        return {
            "labels": np.asarray(rec["test_labels"]),
            "decisions": np.asarray(rec["test_decisions"]),
            "scores": np.asarray(rec["test_scores"]),
        }
    if rec.get("image_labels") is not None:
        return {
            "labels": np.asarray(rec["image_labels"]),
            "correct": np.asarray(rec["image_correct"]),
            "probs": np.asarray(rec["image_probs"]),
        }
    return None


def bootstrap_kinds(nets: Sequence[Mapping[str, np.ndarray] | None]) -> tuple[str, ...]:
    """The statistics with intervals of one row's networks (their :func:`_arrays`): patient HM and AUC
    when every network has per-patient arrays, image accuracy and AUC when every one has per-image
    arrays; ``()`` otherwise (no network, or one without either)."""
    if nets and all(n is not None and "decisions" in n for n in nets):
        return ("patient_hm", "patient_auc")
    if nets and all(n is not None and "correct" in n for n in nets):
        return ("image_accuracy", "image_auc")
    return ()


def partner_key(key: tuple[str, str, str], partner: str, same_schedule: bool) -> tuple[str, str, str]:
    """The row a distilled set's row is compared with: ``partner`` on the same architecture (and schedule)."""
    method, schedule, arch = key
    return (partner, schedule if same_schedule else "standard", arch)


def summarise(
    records: Sequence[Mapping[str, Any]],
    sizes: Mapping[str, Mapping[str, int]],
    real_bytes: int,
    seed: int,
    n_boot: int = 1000,
    level: float = 0.95,
) -> pd.DataFrame:
    """Aggregate per-network records into the table.

    ``sizes[method]`` gives ``n_images`` and ``bytes`` of what the method trains from; compression
    is ``real_bytes`` (the whole real training patch set) over those bytes. Standard deviations are
    over fresh networks (population std, ``ddof=0``). Intervals are bootstraps over test patients (or
    test images for data without patients) of the mean over networks; every row draws from its own
    stream ``derive_seed(seed, 'bootstrap', row_id)`` and every paired difference from
    ``derive_seed(seed, 'bootstrap', row_id, 'minus', partner_row_id)``, so adding a method never moves
    another row's interval. Paired differences (``vs_<partner>_<metric>_diff`` with ``_ci_low`` and
    ``_ci_high``): each distilled set minus the random subset, the random-images-with-soft-labels control
    and (same schedule) the hard-label set, on the same architecture.
    """
    from gastrodistill.evaluation.metrics import paired_bootstrap
    from gastrodistill.utils.seeding import numpy_rng

    if not records:
        raise ValueError("no evaluated networks: check eval.n_networks, eval.schedules and eval.baselines")
    metrics = scalar_metric_names(records)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in KEY_COLUMNS), []).append(r)
    rows = []
    for key, recs in groups.items():
        row: dict[str, Any] = dict(zip(KEY_COLUMNS, key, strict=True))
        rid = row_id(row)
        size = sizes[row["method"]]
        row.update(
            n_networks=len(recs),
            n_images=int(size["n_images"]),
            bytes=int(size["bytes"]),
            compression=real_bytes / max(int(size["bytes"]), 1),
            n_diverged=sum(bool(r.get("diverged", False)) for r in recs),
        )
        for m in metrics:
            vals = np.array([float(r.get(m, math.nan)) for r in recs], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            row[f"{m}_mean"] = float(finite.mean()) if len(finite) else math.nan
            row[f"{m}_std"] = float(finite.std()) if len(finite) else math.nan
        mine = [_arrays(r) for r in recs]
        kinds = bootstrap_kinds(mine)
        if kinds == ("patient_hm", "patient_auc"):
            row.update(
                bootstrap_patient_ci(
                    recs[0]["test_labels"],
                    np.stack([r["test_decisions"] for r in recs]),
                    np.stack([r["test_scores"] for r in recs]),
                    numpy_rng(int(seed), "bootstrap", rid),
                    n_boot,
                    level,
                )
            )
            row.update(patient_counts(recs))
        elif kinds:
            rng = numpy_rng(int(seed), "bootstrap", rid)
            for kind in kinds:
                _, lo, hi = paired_bootstrap(kind, mine, None, rng, n_boot, level)
                row[f"{kind}_ci_low"], row[f"{kind}_ci_high"] = lo, hi
        if row["method"] not in BASELINE_METHODS and kinds:
            for partner, same_schedule in PARTNERS:
                other = partner_key(key, partner, same_schedule)
                if partner == row["method"] or other not in groups:
                    continue
                theirs = [_arrays(r) for r in groups[other]]
                if bootstrap_kinds(theirs) != kinds:
                    continue
                prid = "/".join(other)
                rng = numpy_rng(int(seed), "bootstrap", rid, "minus", prid)
                for kind in kinds:
                    est, lo, hi = paired_bootstrap(kind, mine, theirs, rng, n_boot, level)
                    row[f"vs_{partner}_{kind}_diff"] = est
                    row[f"vs_{partner}_{kind}_ci_low"] = lo
                    row[f"vs_{partner}_{kind}_ci_high"] = hi
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(row: Mapping[str, Any], m: str, digits: int = 3) -> str:
    mean, std = row.get(f"{m}_mean", math.nan), row.get(f"{m}_std", math.nan)
    if mean is None or not np.isfinite(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _ci(row: Mapping[str, Any], m: str) -> str:
    lo, hi = row.get(f"{m}_ci_low", math.nan), row.get(f"{m}_ci_high", math.nan)
    return "" if lo is None or not np.isfinite(lo) else f" [{lo:.3f}, {hi:.3f}]"


def has_patients(df: pd.DataFrame) -> bool:
    """Whether the table holds patient-level numbers (else its headline is image-level)."""
    return "patient_hm_mean" in df and bool(np.isfinite(df["patient_hm_mean"].astype(float)).any())


def _diff(row: Mapping[str, Any], partner: str, kind: str) -> str:
    est = row.get(f"vs_{partner}_{kind}_diff", math.nan)
    if est is None or not np.isfinite(est):
        return ""
    lo, hi = (
        row.get(f"vs_{partner}_{kind}_ci_low", math.nan),
        row.get(f"vs_{partner}_{kind}_ci_high", math.nan),
    )
    ci = f" [{lo:+.3f}, {hi:+.3f}]" if lo is not None and np.isfinite(lo) else ""
    return f"{est:+.3f}{ci}"


def to_markdown(
    df: pd.DataFrame, title: str = "Results", level: float = 0.95, max_ci_width: float | None = None
) -> str:
    """A readable Markdown table (mean ± std over fresh networks, bootstrap CIs) and the paired differences.

    With patients: patch accuracy, balanced accuracy, macro F1, image AUC, and the patient sensitivity,
    specificity, HM and AUC. Without patients the headline is image-level: accuracy, balanced accuracy,
    macro F1 and AUC, accuracy and AUC with intervals over test images.
    """
    patients = has_patients(df)
    header = ["Method", "Schedule", "Arch", "Nets", "Images", "Size", "Compression"]
    if patients:
        header += ["Patch acc", "Bal. acc", "Macro F1", "Image AUC", "Sensitivity", "Specificity"]
        header += [f"HM [{level:.0%} CI]", f"AUC [{level:.0%} CI]"]
    else:
        header += [f"Accuracy [{level:.0%} CI]", "Bal. acc", "Macro F1", f"AUC [{level:.0%} CI]"]
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, r in df.iterrows():
        cells = [
            str(r["method"]),
            str(r["schedule"]),
            str(r["architecture"]),
            str(int(r["n_networks"])),
            str(int(r["n_images"])),
            human_bytes(float(r["bytes"])),
            _compression(float(r["compression"])),
        ]
        if patients:
            cells += [
                _pm(r, "patch_accuracy"),
                _pm(r, "patch_balanced_accuracy"),
                _pm(r, "patch_macro_f1"),
                _pm(r, "patch_auc"),
                _pm(r, "patient_sensitivity"),
                _pm(r, "patient_specificity"),
                _pm(r, "patient_hm") + _ci(r, "patient_hm") + wide_flag(r, "patient_hm", max_ci_width),
                _pm(r, "patient_auc") + _ci(r, "patient_auc") + wide_flag(r, "patient_auc", max_ci_width),
            ]
        else:
            cells += [
                _pm(r, "patch_accuracy") + _ci(r, "image_accuracy"),
                _pm(r, "patch_balanced_accuracy"),
                _pm(r, "patch_macro_f1"),
                _pm(r, "patch_auc") + _ci(r, "image_auc"),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    unit = "test patients" if patients else "test images"
    lines += [
        "",
        "Mean ± std over fresh networks; "
        + (
            "patient metrics on test patients with the threshold fitted on validation (or training) "
            "patients; "
            if patients
            else ""
        )
        + f"intervals: bootstrap over {unit} of the mean over networks. "
        + f"{'Image' if not patients else 'Patch'} AUC: binary for two classes, else the mean of the "
        "one-vs-rest AUCs of the classes (macro); recall per class in the table below.",
        "",
        *patient_notes(df, max_ci_width),
        *diverged_notes(df),
    ]
    kinds = ("patient_hm", "patient_auc") if patients else ("image_accuracy", "image_auc")
    diff_rows = []
    for _, r in df.iterrows():
        for partner, _same in PARTNERS:
            cells = [_diff(r, partner, k) for k in kinds]
            if any(cells):
                diff_rows.append(
                    [f"{r['method']} − {partner}", str(r["schedule"]), str(r["architecture"]), *cells]
                )
    if diff_rows:
        names = ("HM", "AUC") if patients else ("accuracy", "AUC")
        head = ["Difference", "Schedule", "Arch", *(f"{n} [{level:.0%} CI]" for n in names)]
        lines += [
            f"### Paired differences over the same {unit}",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
        ]
        lines += ["| " + " | ".join(c) + " |" for c in diff_rows]
        lines += [
            "",
            f"Mean over networks of the first row minus the second; paired bootstrap over {unit}.",
            "",
        ]
    return "\n".join(lines)


# ---- issue 13: patient counts beside every patient-level number, and intervals too wide to carry one ----
WIDE = " ⚠ wide"


def patient_counts(records: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Test patients (all, gastritis) and the patients the threshold rests on (mean over networks)."""
    labels = np.asarray(records[0]["test_labels"]).astype(bool)
    fit = [float(r.get("threshold_fit_count", math.nan)) for r in records]
    cv = [float(r.get("threshold_cv", 0.0)) for r in records]
    binormal = [float(r.get("threshold_binormal", 0.0)) for r in records]
    return {
        "n_test_patients": float(len(labels)),
        "n_test_gastritis": float(labels.sum()),
        "n_threshold_patients": float(np.nanmean(fit)) if np.isfinite(fit).any() else math.nan,
        "threshold_cv_share": float(np.mean(cv)),
        "threshold_binormal_share": float(np.mean(binormal)),
    }


def wide_flag(row: Mapping[str, Any], m: str, max_width: float | None) -> str:
    """``WIDE`` when the interval of ``m`` is wider than ``max_width`` (``None``: never)."""
    lo, hi = row.get(f"{m}_ci_low", math.nan), row.get(f"{m}_ci_high", math.nan)
    if max_width is None or lo is None or not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    return WIDE if hi - lo > float(max_width) else ""


def patient_notes(df: pd.DataFrame, max_ci_width: float | None) -> list[str]:
    """Lines under the table: the patient counts behind the patient metrics, and what a wide flag means."""
    if "n_test_patients" not in df or not df["n_test_patients"].notna().any():
        return []
    r = df[df["n_test_patients"].notna()].iloc[0]
    n, pos = int(r["n_test_patients"]), int(r["n_test_gastritis"])
    fit = r.get("n_threshold_patients", math.nan)
    cv = float(df["threshold_cv_share"].max()) if "threshold_cv_share" in df else 0.0
    shares = df["threshold_binormal_share"].dropna() if "threshold_binormal_share" in df else pd.Series([0.0])
    lines = [
        f"Patient-level numbers rest on {n} test patients ({pos} gastritis, {n - pos} not)"
        + (f"; thresholds on {fit:.0f} patients" if np.isfinite(fit) else "")
        + (" (cross-validated over training and validation patients)" if cv > 0 else "")
        + _binormal_note(float(shares.max()), float(shares.min()), cv > 0)
        + ".",
    ]
    few = [
        f"{k} {side} gastritis" for k, side in ((pos, "with"), (n - pos, "without")) if k < FEW_TEST_PATIENTS
    ]
    if few:  # one positive gave AUC 1.000 [1.000, 1.000] unflagged
        lines.append(
            f"⚠ few: only {' and '.join(few)} among the test patients (fewer than {FEW_TEST_PATIENTS}): "
            "patient sensitivity, specificity and AUC can take few values, and their intervals (even of zero "
            "width) say little."
        )
    if max_ci_width is not None:
        lines.append(
            f"{WIDE.strip()}: the interval is wider than {max_ci_width:g}; the data cannot carry that number."
        )
    return [*lines, ""]


#: Fewer test patients than this on either side of the diagnosis get a line under the table.
FEW_TEST_PATIENTS = 5


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table: the header ``head``, its rule and one line per row of cells."""
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def md_cell(text: object) -> str:
    """``text`` as one Markdown table cell: ``|`` escaped and line breaks made spaces (a class named
    ``a|b`` split the per-class table's header into one column too many; a breaker's finding)."""
    return " ".join(str(text).split("\n")).replace("|", "\\|")


def per_class_markdown(df: pd.DataFrame) -> str:
    """The per-class recall (sensitivity) table of every row, mean ± std over networks, when the table
    has ``recall_<class>_mean`` columns: with imbalanced classes the rare class's recall is the number to
    look at, and it stood in ``results.csv`` only (a newcomer's finding)."""
    names = [
        c[len("recall_") : -len("_mean")]
        for c in df.columns
        if c.startswith("recall_") and c.endswith("_mean")
    ]
    if not names:
        return ""
    unit = "patches" if has_patients(df) else "images"
    head = ["Method", "Schedule", "Arch", *(md_cell(n) for n in names)]
    cells = [
        [
            str(r["method"]),
            str(r["schedule"]),
            str(r["architecture"]),
            *(_pm(r, f"recall_{n}") for n in names),
        ]
        for _, r in df.iterrows()
    ]
    return (
        "\n".join([f"### Recall (sensitivity) per class, test {unit}", "", *md_table(head, cells), ""]) + "\n"
    )


def _binormal_note(most: float, least: float, cross_validated: bool) -> str:
    """The words on the binormal threshold rule for :func:`patient_notes`; ``most`` / ``least``: the largest
    and smallest share over rows of networks whose threshold it placed (the others fell back to the
    empirical rule, their scores being too concentrated for a normal model)."""
    if most <= 0:
        return ""
    where = "in every fold " if cross_validated else ""
    text = f", {where}at the HM maximum of a binormal model of their scores"
    if least < 1:
        text += " (the empirical maximum where a diagnosis's scores were too concentrated for that model)"
    return text


def diverged_notes(df: pd.DataFrame) -> list[str]:
    """A line under the table naming the rows with networks whose training loss turned non-finite (scored
    as networks that learned nothing: uniform predictions), if any."""
    if "n_diverged" not in df or not (df["n_diverged"] > 0).any():
        return []
    rows = df[df["n_diverged"] > 0]
    named = ", ".join(
        f"{r['method']}/{r['schedule']}/{r['architecture']} {int(r['n_diverged'])} of {int(r['n_networks'])}"
        for _, r in rows.iterrows()
    )
    return [
        f"Diverged (training loss not finite; scored as networks that learned nothing, uniform predictions): "
        f"{named}.",
        "",
    ]


#: Anonymity-audit numbers copied into the table (per distilled set; ``real`` -> the ``full`` rows).
AUDIT_COLUMNS = (
    "ncc_nearest_max",
    "ncc_ref_q",
    "frac_flagged",
    "feature_nearest_max",
    "mia_loss_auc",
    "mia_patch_best_auc",
    "artifact_leaks",
)


def attach_audit(df: pd.DataFrame, audit: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The table with the audit's summary numbers as ``audit_<metric>`` columns (NaN where not audited)."""
    out = df.copy()
    for col in AUDIT_COLUMNS:
        out[f"audit_{col}"] = math.nan
    for name, metrics in audit.items():
        method = "full" if name == "real" else name
        for col in AUDIT_COLUMNS:
            if col in metrics:
                out.loc[out["method"] == method, f"audit_{col}"] = float(metrics[col])
    return out


def audit_markdown(df: pd.DataFrame) -> str:
    """A short anonymity table (one row per audited method) when the audit columns are present."""
    if "audit_mia_loss_auc" not in df:
        return ""
    rows = df.drop_duplicates("method")
    rows = rows[rows[[f"audit_{c}" for c in AUDIT_COLUMNS]].notna().any(axis=1)]
    if not len(rows):
        return ""
    head = [
        "Method",
        "Nearest real NCC (max)",
        "Flag threshold (between-patient NCC quantile)",
        "Images flagged",
        "Nearest feature cos (max)",
        "Membership AUC (loss)",
        "Membership AUC (best calibrated, patches)",
        "Artifact leaks",
    ]
    cells = [
        [str(r["method"])]
        + [
            "–"
            if not np.isfinite(r[f"audit_{c}"])
            else (f"{r[f'audit_{c}']:.0f}" if c == "artifact_leaks" else f"{r[f'audit_{c}']:.3f}")
            for c in AUDIT_COLUMNS
        ]
        for _, r in rows.iterrows()
    ]
    return "\n".join(["### Anonymity audit", "", *md_table(head, cells), ""])


#: Significant digits of the numbers in ``results.csv``; the artifact cards take a table's numbers so
#: rounded (:func:`method_metrics`), whether the table is in memory or read back from the file.
CSV_DIGITS = 10


def write_results(
    df: pd.DataFrame, output_dir: str | Path, title: str = "Results", max_ci_width: float | None = 0.3
) -> tuple[Path, Path]:
    """``results.csv`` (every column, numbers to :data:`CSV_DIGITS` significant digits) and ``results.md`` in
    ``output_dir``, atomically."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / "results.csv", out / "results.md"
    with atomic_path(csv_path) as tmp:
        df.to_csv(tmp, index=False, float_format=f"%.{CSV_DIGITS}g")
    md = to_markdown(df, title, max_ci_width=max_ci_width) + per_class_markdown(df) + audit_markdown(df)
    write_text_atomic(md_path, md)
    return csv_path, md_path


def numeric_columns(df: pd.DataFrame) -> list[str]:
    """The metric columns of ``df``: numeric, not boolean and not a key column."""
    return [
        c
        for c in df.columns
        if c not in KEY_COLUMNS
        and pd.api.types.is_numeric_dtype(df[c])
        and not pd.api.types.is_bool_dtype(df[c])
    ]


def log_results(loggers: Sequence[Logger], df: pd.DataFrame, prefix: str = "results") -> None:
    """Each numeric cell as ``<prefix>/<method>/<schedule>/<arch>/<column>`` (step = row); for W&B also the
    whole table as an HTML panel ``<prefix>/table``.

    Not a ``wandb.Table``: W&B stores every Table as an artifact whose manifest records the file's local
    staging path (``~/.local/share/wandb/artifacts/staging/...``), which names the user's home folder.
    """
    cols = numeric_columns(df)
    for i, (_, r) in enumerate(df.iterrows()):
        metrics = {f"{prefix}/{row_id(r)}/{c}": float(r[c]) for c in cols if np.isfinite(float(r[c]))}
        for lg in loggers:
            lg.log_metrics(metrics, step=i)
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            import wandb

            html = df.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="")
            lg.experiment.log({f"{prefix}/table": wandb.Html(html, inject=False)})
        lg.save()


# ---- what the pipeline and the artifact card read from the table ---------------------------------------
def primary_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows on the distillation architecture (not the cross-architecture ones)."""
    return df[~df["cross_architecture"].astype(bool)] if "cross_architecture" in df else df


def method_metrics(df: pd.DataFrame | None, method: str, schedule: str = "replay") -> dict[str, float]:
    """A method's numbers on the distillation architecture (for the artifact card): means, stds and CIs, to
    :data:`CSV_DIGITS` significant digits as ``results.csv`` holds them, so that a card written in the run
    that evaluated and one written later from the file (``stages=[artifact]``) are the same bytes (they
    differed in the last digits: a breaker's finding)."""
    if df is None or not len(df):
        return {}
    sel = primary_rows(df)
    sel = sel[(sel.method == method) & (sel.schedule == schedule)]
    if not len(sel):
        return {}
    row = sel.iloc[0]
    return {
        k: float(f"{float(row[k]):.{CSV_DIGITS}g}")
        for k in df.columns
        if k not in ("method", "schedule", "architecture", "cross_architecture")
        and pd.api.types.is_number(row[k])
    }


def chosen_standard_lr(df: pd.DataFrame | None, eval_dir: str | Path, method: str) -> float | None:
    """The standard-schedule learning rate the evaluation chose (on validation patients) for ``method`` on
    its own architecture, from ``eval_dir/selection.json`` (written by ``finalize``); ``None`` when there
    is no such row or file (e.g. a single-value ``eval.lr_grid`` still records its value)."""
    path = Path(eval_dir) / "selection.json"
    if df is None or not len(df) or not path.is_file():
        return None
    rows = primary_rows(df)
    rows = rows[rows.method == method]
    if not len(rows):
        return None
    lr = json.loads(path.read_text()).get("standard_lr", {}).get(f"{method}/{rows.iloc[0].architecture}")
    return None if lr is None else float(lr)


def primary_value(df: pd.DataFrame, method: str, schedule: str, column: str) -> float:
    """One cell of a method's row on the distillation architecture; NaN when the row or column is missing."""
    sel = primary_rows(df)
    sel = sel[(sel.method == method) & (sel.schedule == schedule)]
    return float(sel[column].iloc[0]) if len(sel) and column in sel else math.nan


def headline(df: pd.DataFrame) -> dict[str, float]:
    """The headline metric (patient HM with patients, image balanced accuracy without) of soft/hard replay,
    full data and the random subset, on the distillation architecture; NaN where a row is missing."""
    col = "patient_hm_mean" if has_patients(df) else "patch_balanced_accuracy_mean"

    def value(method: str, schedule: str) -> float:
        return primary_value(df, method, schedule, col)

    return {
        "metric": col.removesuffix("_mean"),
        "soft_replay": value("soft", "replay"),
        "hard_replay": value("hard", "replay"),
        "full": value("full", "real"),
        "random": value("random", "standard"),
        # names kept for callers of the patient-level headline
        "soft_replay_hm": value("soft", "replay"),
        "hard_replay_hm": value("hard", "replay"),
        "full_hm": value("full", "real"),
        "random_hm": value("random", "standard"),
    }


def _compression(ratio: float) -> str:
    """Compression of a set against the real patch set: whole numbers from 10× up, two figures below
    (a set larger than the real data, as on tiny presets, reads 0.74×, not 1×)."""
    return f"{ratio:,.0f}×" if ratio >= 10 else f"{ratio:.2g}×"


#: Issue 9's targets for the study (patient data): soft / full HM, soft and full patient AUC, soft − random.
TARGET_SOFT_OVER_FULL = 0.9
TARGET_SOFT_AUC = 0.85
TARGET_FULL_AUC = 0.90
TARGET_SOFT_MINUS_RANDOM = 0.10


def target_lines(df: pd.DataFrame) -> list[str]:
    """The study's targets as measured, one line each; a target whose rows are missing is said to be
    not measured (never "nan / nan NOT met").

    With patients (issue 9): soft replay HM >= 0.9 x the full-data HM; soft replay patient AUC >= 0.85;
    full-data patient AUC >= 0.90; soft − random-subset HM >= 0.10 with its paired interval above 0;
    soft HM above hard HM. Without patients: soft / full balanced accuracy >= 0.9, soft above hard, and
    soft − random on image AUC above 0 with its paired interval above 0 (the npz target).
    """
    h = headline(df)
    patients = h["metric"] == "patient_hm"
    name = {"patient_hm": "HM", "patch_balanced_accuracy": "balanced accuracy"}[str(h["metric"])]
    soft, hard, full, rand = h["soft_replay"], h["hard_replay"], h["full"], h["random"]

    def ok(*vals: float) -> bool:
        return all(v is not None and np.isfinite(v) for v in vals)

    def verdict(good: bool) -> str:
        return "met" if good else "NOT met"

    def cell(method: str, schedule: str, column: str) -> float:
        return primary_value(df, method, schedule, column)

    lines = []
    if ok(soft, full) and full > 0:
        lines.append(
            f"soft {name} / full-data {name} = {soft:.3f} / {full:.3f} = {soft / full:.3f} "
            f"(target >= {TARGET_SOFT_OVER_FULL}: {verdict(soft >= TARGET_SOFT_OVER_FULL * full)})"
        )
    elif ok(soft, full):  # both rows are there; the full-data networks scored 0: no ratio to take
        lines.append(
            f"soft {name} / full-data {name} = {soft:.3f} / {full:.3f}: no ratio (full-data {name} is 0; "
            f"target >= {TARGET_SOFT_OVER_FULL}: NOT met)"
        )
    else:
        lines.append(f"soft {name} / full-data {name}: not measured (no soft replay or full-data row)")
    if patients:
        for label, method, schedule, target in (
            ("soft patient AUC", "soft", "replay", TARGET_SOFT_AUC),
            ("full-data patient AUC", "full", "real", TARGET_FULL_AUC),
        ):
            auc = cell(method, schedule, "patient_auc_mean")
            if ok(auc):
                lines.append(f"{label} = {auc:.3f} (target >= {target:.2f}: {verdict(auc >= target)})")
            else:
                lines.append(f"{label}: not measured (no {method} {schedule} row)")
    if ok(soft, hard):
        text = f"soft {name} - hard {name} = {soft - hard:+.3f}"
        lo, hi = (
            cell("soft", "replay", "vs_hard_patient_hm_ci_low"),
            cell("soft", "replay", "vs_hard_patient_hm_ci_high"),
        )
        shown = ""
        if patients and ok(lo, hi):  # the paired interval says whether the difference is shown
            text += f" [{lo:+.3f}, {hi:+.3f}], paired over test units"
            if lo > 0:
                shown = "; shown: the interval is above 0"
            elif soft > hard:  # the mean is above 0, which the paired interval does not show
                shown = " by the mean only; the interval reaches 0, so the difference is not shown"
        lines.append(f"{text} (target > 0: {verdict(soft > hard)}{shown})")
    else:
        lines.append(f"soft {name} - hard {name}: not measured (no soft or hard replay row)")
    kind = "patient_hm" if patients else "image_auc"
    diff = cell("soft", "replay", f"vs_random_{kind}_diff")
    low, high = (
        cell("soft", "replay", f"vs_random_{kind}_ci_low"),
        cell("soft", "replay", f"vs_random_{kind}_ci_high"),
    )
    if ok(diff):
        what = "HM" if patients else "image AUC"
        need = TARGET_SOFT_MINUS_RANDOM if patients else 0.0
        ci = f" [{low:+.3f}, {high:+.3f}]" if ok(low, high) else ""
        text = f"soft {what} - random-subset {what} = {diff:+.3f}{ci}, paired over test units"
        if ok(hard, rand) and patients:
            text += f" (hard - random {name} = {hard - rand:+.3f})"
        good = (diff >= need if patients else diff > need) and ok(low) and low > 0
        bound = f">= {need:.2f}" if patients else "> 0"
        lines.append(f"{text}; target {bound} with the interval above 0: {verdict(good)}")
    elif ok(soft, rand):
        lines.append(f"soft {name} - random-subset {name} = {soft - rand:+.3f} (no paired interval; NOT met)")
    else:
        lines.append(
            f"soft {name} - random-subset {name}: not measured (no soft replay or random-subset row)"
        )
    return lines
