"""What the anonymity audit writes: ``audit.md`` (:func:`render_report`), ``audit_per_image.csv``, the
figures, and the content of ``audit.json`` (:func:`write_outputs`; the audit writes that file last, into the
staging folder that becomes ``audit/`` once complete)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig

from gastrodistill.anonymity import figures
from gastrodistill.anonymity.membership import BEST_OF, TargetAttack
from gastrodistill.anonymity.nearest import InformativeSelection, NearestReport
from gastrodistill.anonymity.text_check import (
    MIN_NAME_ID_LENGTH,
    PrivateStrings,
    TextRegionReport,
    text_corners,
)
from gastrodistill.anonymity.verdict import anonymity_verdict
from gastrodistill.sharing.artifact import leak_advice
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.images import denormalise

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule
    from gastrodistill.distillation.distilled_set import DistilledSet

#: Rows of the positive controls in the audit's results.
CONTROL_ROWS = ("control_copy", "control_noisy")


def _per_image_table(
    dm: ImageDataModule,
    distilled_sets: Mapping[str, DistilledSet],
    nearest: NearestReport,
    text_report: TextRegionReport | None,
) -> pd.DataFrame:
    rows = []
    for name, ds in distilled_sets.items():
        targets = ds.soft_targets().detach().cpu()
        sets = nearest.sets[name]
        for i in range(len(targets)):
            c = int(targets[i].argmax())
            row = {
                "set": name,
                "image": i,
                "step": i // (ds.num_classes * ds.ipc),
                "class": dm.class_names[c],
                "target_prob": float(targets[i, c]),
            }
            for space in nearest.spaces:
                row[space] = float(sets[space][i])
                row[f"{space}_real_index"] = int(sets[f"{space}_index"][i])
                row[f"{space}_flagged"] = bool(sets[space][i] >= nearest.threshold(space))
            if text_report is not None:
                row["text_corner_ncc"] = float(text_report.sets[name][i])
            rows.append(row)
    return pd.DataFrame(rows)


def _closest_pairs(
    out: Path, dm: ImageDataModule, distilled_sets: Mapping[str, DistilledSet], nearest: NearestReport, n: int
) -> Path:
    cands = [
        (float(nearest.sets[name]["ncc"][i]), name, i)
        for name in distilled_sets
        for i in range(len(nearest.sets[name]["ncc"]))
    ]
    cands.sort(reverse=True)
    top = cands[:n]
    if not top:  # audit.closest_pairs=0: the figure without pairs (torch.stack refuses an empty list)
        none = torch.zeros(0, *dm.image_shape)
        return figures.plot_closest_pairs(
            none, none, [], [], out / "closest_pairs.png", nearest.threshold("ncc")
        )
    real_idx = [int(nearest.sets[name]["ncc_index"][i]) for _, name, i in top]
    real_x, _ = dm.load_split("train", real_idx)
    dist_x = torch.stack([distilled_sets[name].images[i].detach().cpu() for _, name, i in top])
    dist_unit = denormalise(
        torch.nn.functional.interpolate(dist_x, size=tuple(dm.image_size), mode="bilinear")
        if tuple(dist_x.shape[2:]) != tuple(dm.image_size)
        else dist_x,
        dm.mean,
        dm.std,
    )
    captions = [f"{name} #{i}" for _, name, i in top]
    return figures.plot_closest_pairs(
        dist_unit,
        denormalise(real_x, dm.mean, dm.std),
        [s for s, _, _ in top],
        captions,
        out / "closest_pairs.png",
        nearest.threshold("ncc"),
    )


def _roc_for_plot(mia: Mapping[str, list[TargetAttack]], attack: str):
    """``{row: [(fpr, tpr, auc), ...]}`` of the patch-level ``attack`` (``best``: per row) for the figure."""
    out = {}
    for row, runs in mia.items():
        a = attack
        if attack == "best":
            a = max(BEST_OF, key=lambda k: np.mean([r.patch[k].auc for r in runs]))
        out[f"{row} ({a})" if attack == "best" else row] = [
            (r.patch[a].roc[0], r.patch[a].roc[1], r.patch[a].auc) for r in runs
        ]
    return out


def write_outputs(
    out: Path,
    cfg: DictConfig,
    dm: ImageDataModule,
    distilled_sets: Mapping[str, DistilledSet],
    nearest: NearestReport,
    text_report: TextRegionReport | None,
    mia: dict[str, list[TargetAttack]],
    results: dict[str, dict[str, float]],
    leaks: dict[str, list[dict[str, str]]],
    strings: PrivateStrings,
    informative: InformativeSelection,
    spaces: list[str],
    notes: list[str] | None = None,
) -> tuple[dict[str, Path], dict[str, Any]]:
    """The figures, ``audit_per_image.csv`` and ``audit.md`` (``spaces``: the spaces in which an image is
    flagged; ``notes``: :func:`~gastrodistill.anonymity.audit.architecture_notes`, in the report only);
    returns their paths and the content of ``audit.json``, which the caller writes last."""
    primary = str(cfg.audit.membership.primary)
    paths = {
        "similarity": figures.plot_similarity_histograms(nearest, out / "similarity_histograms.png"),
        "membership_roc": figures.plot_membership_roc(
            _roc_for_plot(mia, primary), out / "membership_roc.png", attack=primary
        ),
        "closest_pairs": _closest_pairs(out, dm, distilled_sets, nearest, int(cfg.audit.closest_pairs)),
    }
    table = _per_image_table(dm, distilled_sets, nearest, text_report)
    with atomic_path(out / "audit_per_image.csv", suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    verdicts = {name: anonymity_verdict(results[name]) for name in distilled_sets}
    payload = {
        "results": results,
        "verdicts": verdicts,
        "sample_sizes": {**informative.counts(), **nearest.sample_sizes()},
        "informative": informative.describe(),
        "private_strings_checked": strings.counts(),
        "private_strings_too_short": strings.too_short,
        "n_real_searched": nearest.n_real,
        "reference_by_patient": nearest.by_patient,
        "leaks": {
            k: [{"file": x["file"], "kind": x["kind"].split(":")[0]} for x in v] for k, v in leaks.items()
        },
    }
    report = render_report(
        cfg, nearest, text_report, results, leaks, strings, informative, verdicts, spaces, notes
    )
    write_text_atomic(out / "audit.md", report)
    return paths, payload


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def _pct(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.0%}"


def _best_name(r: Mapping[str, float], key: str, primary: str) -> str:
    if primary != "best" or f"{key}_best_attack_index" not in r:
        return ""
    return f" ({BEST_OF[int(r[f'{key}_best_attack_index'])]})"


def text_region_lines(
    tcfg: DictConfig, text_report: TextRegionReport | None, results: dict, names: list[str]
) -> list[str]:
    """audit.md's text-region paragraph and table (``tcfg``: ``audit.text``), naming each corner searched."""
    corners = ", ".join(text_corners(tcfg.corner))
    lines: list[str] = []
    if text_report is None:
        lines.append(
            "Text-corner check: not run (audit.text.region_check is false, the data module exposes no "
            f"patch positions, or the configured text corners, {corners}, overlap none or all of the "
            "training patches)."
        )
    else:
        lines += [
            f"Text corners searched: {corners} (box {list(tcfg.box)} of the image at each): "
            f"{text_report.n_text_patches} training patches overlap them. Each distilled image's highest "
            "NCC with them, against ordinary real patches (p99) and text patches of other patients (median):",
            "",
            "| set | max | ordinary p99 | text-vs-text median | > ordinary p99 |",
            "|---|---|---|---|---|",
        ]
        for name in names:
            r = results[name]
            lines.append(
                f"| {name} | {_fmt(r['text_nearest_max'])} | {_fmt(r['text_ordinary_p99'])} | "
                f"{_fmt(r['text_text_median'])} | {r['text_frac_above_ordinary_p99']:.0%} |"
            )
    return lines


def private_string_lines(
    strings: PrivateStrings, min_length: int, leaks: Mapping[str, list[dict[str, str]]], names: list[str]
) -> list[str]:
    """The report's lines on the private-string search: what was searched (counts per kind, never a value),
    the patient ids too short to search, and per set its leaks (kind and file) with what to do."""
    lines: list[str] = []
    counts = ", ".join(f"{v} {k}" for k, v in sorted(strings.counts().items())) or "none found"
    lines.append(
        f"Private strings searched in every artifact byte (UTF-8/UTF-16, any case, zip members "
        f"decompressed): {counts}; {strings.too_short} shorter than {min_length} characters "
        "were not searched."
    )
    if short_ids := strings.short_patient_ids():
        lines.append(
            f"**Among them, {len(short_ids)} distinct patient id(s) were not searched** (ids this short "
            "match the numbers every card holds); a name a run is shared under that holds one of "
            f"{MIN_NAME_ID_LENGTH} characters or more is warned about. Give patients longer pseudonyms "
            "(e.g. P0001) in the manifest for this search to cover them."
        )
    for name in names:
        n = len(leaks[name])
        kinds = ", ".join(sorted({f"{row['kind']} in {row['file']}" for row in leaks[name]}))
        lines.append(f"- {name}: {'no private string found' if n == 0 else f'**{n} LEAK(S)**: {kinds}'}")
    if any(leaks[name] for name in names):
        lines += ["", leak_advice(row["kind"] for name in names for row in leaks[name])]
    return lines


def render_report(
    cfg: DictConfig,
    nearest: NearestReport,
    text_report: TextRegionReport | None,
    results: dict[str, dict[str, float]],
    leaks: dict[str, list[dict[str, str]]],
    strings: PrivateStrings,
    informative: InformativeSelection,
    verdicts: dict[str, str],
    spaces: list[str],
    notes: list[str] | None = None,
) -> str:
    """The Markdown report: verdicts, sample sizes (with ``notes``,
    :func:`~gastrodistill.anonymity.audit.architecture_notes`), the controls (an image is flagged in
    ``spaces``), the numbers, and the pictures."""
    names = list(verdicts)
    acfg = cfg.audit
    primary = str(acfg.membership.primary)
    q = nearest.flag_quantile
    ref_word = (
        "a different patient" if nearest.by_patient else "a different sample (the data have no patients)"
    )
    certified = results["real"]["controls_certified"] == 1.0
    detected = results["real"]["mia_control_detected"] == 1.0
    lines = [f"# Anonymity audit: {cfg.experiment_name}", ""]
    if not nearest.by_patient:  # class folders, an npz: the report's patients and patches are its images
        lines += [
            "These data have no patient ids: below, each image counts as its own patient, and its training "
            'images are the "training patches".',
            "",
        ]
    lines += ["## Verdict", ""]
    lines += [f"- **{name}**: {verdicts[name]}" for name in names]
    if not (certified and detected):
        lines += [
            "",
            "**This audit cannot certify anonymity on these data**: "
            + (
                "its positive controls (real patches, and real patches with small noise) were not flagged. "
                if not certified
                else ""
            )
            + ("Its membership attack did not detect its overfitted control. " if not detected else ""),
        ]
    n_ref_used = int(len(nearest.ref("ncc")))
    lines += [
        "",
        "## Sample sizes",
        "",
        f"- {informative.describe()}",
        f"- Reference: {len(nearest.reference_indices)} informative patches, each with its nearest "
        f"informative patch of {ref_word}; {nearest.n_duplicates} of them have a near-duplicate in another "
        f"patient (pixel NCC >= {nearest.duplicate_ncc}; {nearest.n_exact_duplicates} exact) and are left "
        "out "
        f"of the quantile, which rests on {n_ref_used} patches.",
        f"- Membership: pool of {int(results['real']['mia_patch_n_members'])} training and "
        f"{int(results['real']['mia_patch_n_nonmembers'])} test patches "
        f"({'informative only, ' if acfg.membership.get('informative_only', True) else ''}"
        "the same number of each class on both sides) from "
        f"{int(results['real']['mia_pool_patients'])} patients "
        f"({int(results['real']['mia_patient_n_members'])} training and "
        f"{int(results['real']['mia_patient_n_nonmembers'])} test patients); "
        f"{int(results['real']['mia_n_shadows'])} shadow networks on complementary random halves of the "
        "patients.",
        *(f"- Architecture: {note}." for note in notes or []),
        "",
        "## Nearest real patch",
        "",
        f"Searched over {nearest.n_real} informative real patches. A distilled image is **flagged** when it "
        f"is at or above the reference's {q:.0%} quantile in {', '.join(spaces)}: "
        "then it is at least as close to a real patch as the closest real patches of different patients "
        "are to each other. Positive controls: `control_copy` (real training patches, as many as the "
        f"largest set) and `control_noisy` (the same plus Gaussian noise of std {acfg.controls.noise_std} "
        "in [0, 1] intensity units) must be flagged "
        f"(at least {float(acfg.controls.required_copy):.0%} and {float(acfg.controls.required_noisy):.0%}).",
        "",
        f"| set | images | space | nearest mean | nearest max | ref median | ref q{q * 100:g} | flagged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in [*names, *CONTROL_ROWS]:
        r = results[name]
        for s in nearest.spaces:
            lines.append(
                f"| {name} | {int(r['n_images'])} | {figures.SPACE_TITLES[s]} | "
                f"{_fmt(r[f'{s}_nearest_mean'])} | "
                f"{_fmt(r[f'{s}_nearest_max'])} | {_fmt(r[f'{s}_ref_median'])} | {_fmt(r[f'{s}_ref_q'])} | "
                f"{_pct(r[f'{s}_frac_flagged'])} |"
            )
    lines += [
        "",
        "![similarity](similarity_histograms.png)",
        "",
        "Closest pairs (distilled above, nearest real below; private: shows real patches):",
        "",
        "![closest pairs](closest_pairs.png)",
        "",
        "## Membership inference",
        "",
        "Members: the pool's training patches (patients); non-members: its test patches (patients). "
        "`loss` is the uncalibrated threshold attack; `calibrated_loss` subtracts each patch's mean loss "
        "under shadow networks that did not see it (Watson et al. 2022); `lira` is the likelihood-ratio "
        "attack (Carlini et al. 2022); `best`: the strongest calibrated attack on that network (named). "
        "Patient level: a patient's score is the mean of its patches'. "
        "TPR at an FPR needs at least 1/FPR non-members, else n/a. The overfitted control is a network "
        f"trained for {acfg.membership.overfit_control.epochs} epochs on the pool patches of "
        f"{int(results['control_overfit']['mia_patient_n_members'])} of its "
        f"{int(results['real']['mia_patient_n_members'])} training patients "
        f"({int(results['control_overfit']['mia_patch_n_members'])} patches); the attack has power when it "
        f"detects it (patch {primary} AUC >= {acfg.membership.overfit_control.detect_auc} or TPR >= "
        f"{float(acfg.membership.overfit_control.detect_tpr_at_1pct):.0%} at 1 % FPR).",
        "",
        f"| network | level | members / non-members | loss AUC | calibrated AUC | LiRA AUC | {primary} AUC | "
        f"{primary} TPR@0.1% | {primary} TPR@1% | {primary} advantage |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in ["real", "control_overfit", *names]:
        r = results[row]
        n = int(r["mia_n_networks"])
        label = {
            "real": "trained on all real patches",
            "control_overfit": "positive control: overfitted on some training patients",
        }.get(row, f"{row}: {n} fresh networks ({acfg.membership.schedule})")
        for level in ("patch", "patient"):
            k = f"mia_{level}"
            lines.append(
                f"| {label} | {level} | {int(r[f'{k}_n_members'])} / {int(r[f'{k}_n_nonmembers'])} | "
                f"{_fmt(r[f'{k}_loss_auc'])} | {_fmt(r[f'{k}_calibrated_loss_auc'])} | "
                f"{_fmt(r[f'{k}_lira_auc'])} | {_fmt(r[f'{k}_{primary}_auc'])} ± "
                f"{_fmt(r[f'{k}_{primary}_auc_std'])}{_best_name(r, k, primary)} | "
                f"{_pct(r[f'{k}_{primary}_tpr_at_0p1pct'])} | {_pct(r[f'{k}_{primary}_tpr_at_1pct'])} | "
                f"{_fmt(r[f'{k}_{primary}_advantage'])} |"
            )
    flag_auc = float(acfg.membership.flag_auc)
    lines += [""] + [
        f"- {name}: flagged at patch {primary} AUC >= "
        f"{max(flag_auc, 0.5 + 3 * results[name]['mia_auc_null_sd']):.3f} (the larger of {flag_auc:g} and "
        f"0.5 + 3 × {_fmt(results[name]['mia_auc_null_sd'])}, the larger chance sd of: membership redrawn "
        f"over the patients {_fmt(results[name].get(f'mia_patch_{primary}_null_sd', float('nan')))}, "
        f"patches taken as independent {_fmt(results[name]['mia_auc_null_sd_patches'])}); "
        + ("**flagged**" if results[name].get("membership_flagged") == 1.0 else "below it")
        for name in names
    ]
    lines += ["", "![membership ROC](membership_roc.png)", "", "## Burned-in text and header data", ""]
    lines += private_string_lines(strings, int(acfg.text.min_length), leaks, names)
    lines.append("")
    lines += text_region_lines(acfg.text, text_report, results, names)
    lines += ["", "Per-image numbers: `audit_per_image.csv`; all numbers: `audit.json`.", ""]
    return "\n".join(lines)
