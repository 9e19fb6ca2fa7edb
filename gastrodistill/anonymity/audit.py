"""The anonymity audit stage: nearest real patches, membership inference and text/header leaks, in one report.

``run_audit(cfg, datamodule, distilled_sets, output_dir)`` trains one reference network on the real
patches (the evaluation's upper-bound recipe), then for every distilled set measures

* its nearest real training patch in pixel space (NCC, SSIM) and in that network's feature space,
  against real patches' nearest patch of another patient;
* a loss/confidence-threshold membership attack on fresh networks trained from the set, beside the
  same attack on the real-data network;
* that its artifact bytes hold no patient id, header value or path, and that its images are no
  closer to the burned-in text corner than ordinary real patches are.

It writes ``audit.md`` (with figures), ``audit.json``, ``audit_per_image.csv`` and returns
``{row name: {metric: float}}`` (rows: each set, and ``real``) for the results table and W&B.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import Logger, WandbLogger
from torch import nn

from gastrodistill.anonymity import figures
from gastrodistill.anonymity.membership import balanced_subsets, membership_attack, summarise
from gastrodistill.anonymity.nearest import NearestReport, nearest_real
from gastrodistill.anonymity.text_check import (
    private_strings,
    scan_for_strings,
    text_patch_mask,
    text_region_similarity,
)
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.images import denormalise
from gastrodistill.utils.loggers import finish_loggers, log_public_hyperparams, stage_loggers
from gastrodistill.utils.run_info import save_run_info
from gastrodistill.utils.seeding import torch_generator


class AuditConfigError(ValueError):
    """A bad ``audit`` config entry; the message names the key."""


# ---- networks -------------------------------------------------------------------------------------
def train_reference_network(cfg: DictConfig, datamodule) -> tuple[nn.Module, dict[str, float]]:
    """A network trained on every real training patch with the evaluation's ``baselines.real`` recipe.

    It is the membership attack's reference and defines the audit's feature space.
    """
    from gastrodistill.evaluation.run import train_full_network

    epochs = int(cfg.audit.real_epochs) if cfg.audit.get("real_epochs") else None
    return train_full_network(cfg, datamodule, ("audit", "real-network"), epochs=epochs)


def distilled_networks(
    cfg: DictConfig, datamodule, distilled, name: str, n: int, schedule: str
) -> list[nn.Module]:
    """``n`` fresh networks trained on ``distilled`` by the evaluation's trainer (seeded per index)."""
    from gastrodistill.evaluation.fresh_training import StandardSchedule, train_on_distilled
    from gastrodistill.evaluation.networks import net_spec

    spec = net_spec(cfg, "same", datamodule)
    standard = StandardSchedule(**OmegaConf.to_container(cfg.eval.standard, resolve=True))
    return [
        train_on_distilled(
            distilled,
            spec,
            schedule,
            torch_generator(int(cfg.seed), "audit", "mia", name, schedule, i),
            standard,
        ).eval()
        for i in range(n)
    ]


# ---- the stage ------------------------------------------------------------------------------------
def data_root(cfg: DictConfig) -> str | None:
    """The source data (a folder with header strings and file names, or a single file), if configured."""
    for key in ("root", "path"):
        value = cfg.data.get(key) if "data" in cfg else None
        if value not in (None, "???"):
            return str(value)
    return None


def _flags(values: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(values) > threshold


def run_audit(
    cfg: DictConfig,
    datamodule,
    distilled_sets: Mapping[str, Any],
    output_dir: str | Path,
    real_model: nn.Module | None = None,
    artifacts: Mapping[str, str | Path] | None = None,
    loggers: list[Logger] | None = None,
) -> dict[str, dict[str, float]]:
    """Audit every distilled set; write the report and return ``{set name | "real": {metric: value}}``.

    ``real_model`` reuses a network already trained on the real patches (else one is trained);
    ``artifacts`` maps set names to artifact folders/archives to scan (else a probe artifact of each
    set is written to a temporary folder and scanned).
    """
    if not distilled_sets:
        raise AuditConfigError("run_audit needs at least one distilled set (name -> DistilledSet)")
    acfg = cfg.audit
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_run_info(out, cfg, extra={"stage": "audit"})
    dm = datamodule
    if not hasattr(dm, "num_classes") or not hasattr(dm, "mean"):
        dm.prepare_data()
        dm.setup()
    seed = int(cfg.seed)
    own_loggers = loggers is None
    loggers = stage_loggers(cfg, "audit") if own_loggers else loggers
    log_public_hyperparams(loggers, cfg)

    results: dict[str, dict[str, float]] = {name: {} for name in distilled_sets}
    real_info: dict[str, float] = {}
    if real_model is None:
        real_model, real_info = train_reference_network(cfg, dm)
    real_model.eval()

    # 1. nearest real patch, pixel and feature space
    ncfg = acfg.nearest
    queries = {name: ds.images.detach() for name, ds in distilled_sets.items()}
    nearest = nearest_real(
        dm,
        queries,
        feature_model=real_model if ncfg.feature_space else None,
        reference_size=int(ncfg.reference_size),
        top_k=int(ncfg.top_k),
        max_real=ncfg.get("max_real"),
        seed=seed,
    )
    for name in distilled_sets:
        results[name].update(nearest.summary(name))

    # 2. the burned-in text corner
    tcfg = acfg.text
    mask = text_patch_mask(dm, str(tcfg.corner), list(tcfg.box)) if tcfg.region_check else None
    text_report = None
    if mask is not None and mask.any() and (~mask).any():
        text_report = text_region_similarity(
            dm, queries, mask, reference_size=int(tcfg.reference_size), seed=seed
        )
        for name in distilled_sets:
            results[name].update(text_report.summary(name))

    # 3. artifact bytes: no patient id, header value or path
    strings = private_strings(
        dm, data_root(cfg), min_length=int(tcfg.min_length), max_dicom_files=tcfg.get("max_dicom_files")
    )
    leaks = _scan_artifacts(cfg, dm, distilled_sets, artifacts, strings)
    for name in distilled_sets:
        results[name]["artifact_leaks"] = float(len(leaks[name]))

    # 4. membership inference
    mcfg = acfg.membership
    members, nonmembers = balanced_subsets(
        dm.dataset("train"), dm.dataset("test"), int(mcfg.max_per_side), seed
    )
    mia = {"real": [membership_attack(real_model, members, nonmembers)]}
    results["real"] = {
        **summarise(mia["real"]),
        "mia_n_per_side": float(len(members)),
        **{f"real_{k}": v for k, v in real_info.items()},
    }
    for name, ds in distilled_sets.items():
        nets = distilled_networks(cfg, dm, ds, name, int(mcfg.n_networks), str(mcfg.schedule))
        mia[name] = [membership_attack(net, members, nonmembers) for net in nets]
        results[name].update(summarise(mia[name]))

    # 5. files, figures, report, loggers
    paths = _write_outputs(out, cfg, dm, distilled_sets, nearest, text_report, mia, results, leaks, strings)
    for i, (row, metrics) in enumerate(results.items()):
        finite = {f"audit/{row}/{k}": float(v) for k, v in metrics.items() if math.isfinite(float(v))}
        for lg in loggers:
            lg.log_metrics(finite, step=i)
    for lg in loggers:
        if isinstance(lg, WandbLogger):  # numbers only: the closest-pairs picture shows real patches
            for key in ("similarity", "membership_roc"):
                lg.log_image(key=f"audit/{key}", images=[str(paths[key])])
        lg.save()
    if own_loggers:
        finish_loggers(loggers)
    return results


def _scan_artifacts(
    cfg: DictConfig, dm, distilled_sets: Mapping[str, Any], artifacts, strings
) -> dict[str, list[dict[str, str]]]:
    from gastrodistill.sharing.artifact import save_artifact
    from gastrodistill.sharing.publish import card_fields_from_config

    leaks: dict[str, list[dict[str, str]]] = {}
    for name, ds in distilled_sets.items():
        if artifacts and name in artifacts:
            leaks[name] = scan_for_strings([artifacts[name]], strings)
            continue
        with tempfile.TemporaryDirectory(prefix="audit-probe-") as tmp:
            probe = save_artifact(Path(tmp) / name, ds, card_fields_from_config(cfg, dm, name), archive=True)
            leaks[name] = scan_for_strings([probe, Path(f"{probe}.zip")], strings)
    return leaks


def _per_image_table(dm, distilled_sets, nearest: NearestReport, text_report) -> pd.DataFrame:
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
                p99 = float(np.percentile(nearest.ref(space), 99))
                row[space] = float(sets[space][i])
                row[f"{space}_real_index"] = int(sets[f"{space}_index"][i])
                row[f"{space}_above_p99"] = bool(sets[space][i] > p99)
            if text_report is not None:
                row["text_corner_ncc"] = float(text_report.sets[name][i])
            rows.append(row)
    return pd.DataFrame(rows)


def _closest_pairs(out: Path, dm, distilled_sets, nearest: NearestReport, n: int) -> Path:
    cands = [
        (float(nearest.sets[name]["ncc"][i]), name, i)
        for name in distilled_sets
        for i in range(len(nearest.sets[name]["ncc"]))
    ]
    cands.sort(reverse=True)
    top = cands[:n]
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
        float(np.percentile(nearest.ref("ncc"), 99)),
    )


def _write_outputs(
    out: Path, cfg, dm, distilled_sets, nearest, text_report, mia, results, leaks, strings
) -> dict[str, Path]:
    paths = {
        "similarity": figures.plot_similarity_histograms(nearest, out / "similarity_histograms.png"),
        "membership_roc": figures.plot_membership_roc(mia, out / "membership_roc.png"),
        "closest_pairs": _closest_pairs(out, dm, distilled_sets, nearest, int(cfg.audit.closest_pairs)),
    }
    table = _per_image_table(dm, distilled_sets, nearest, text_report)
    with atomic_path(out / "audit_per_image.csv", suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
    payload = {
        "results": results,
        "private_strings_checked": strings.counts(),
        "private_strings_too_short": strings.too_short,
        "n_real_searched": nearest.n_real,
        "reference_by_patient": nearest.by_patient,
        "leaks": {
            k: [{"file": x["file"], "kind": x["kind"].split(":")[0]} for x in v] for k, v in leaks.items()
        },
    }
    write_text_atomic(out / "audit.json", json.dumps(payload, indent=2, sort_keys=True))
    write_text_atomic(out / "audit.md", render_report(cfg, nearest, text_report, results, leaks, strings))
    return paths


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.3f}"


def render_report(cfg, nearest: NearestReport, text_report, results, leaks, strings) -> str:
    """The short Markdown report: verdict lines, the numbers, and the pictures."""
    names = list(nearest.sets)
    ref_word = (
        "a different patient" if nearest.by_patient else "a different sample (the data have no patients)"
    )
    lines = [
        f"# Anonymity audit: {cfg.experiment_name}",
        "",
        f"Nearest real training patch of every distilled image, searched over {nearest.n_real} real patches. "
        f"Reference: real patches' nearest patch of {ref_word}. A distilled image above the reference's "
        "99th percentile is closer to a real patch than real patients are to each other.",
        "",
        "| set | space | nearest mean | nearest max | ref median | ref p95 | ref p99 | > p95 | > p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = results[name]
        for s in nearest.spaces:
            lines.append(
                f"| {name} | {figures.SPACE_TITLES[s]} | {_fmt(r[f'{s}_nearest_mean'])} | "
                f"{_fmt(r[f'{s}_nearest_max'])} | {_fmt(r[f'{s}_ref_median'])} | {_fmt(r[f'{s}_ref_p95'])} | "
                f"{_fmt(r[f'{s}_ref_p99'])} | {r[f'{s}_frac_above_p95']:.0%} | "
                f"{r[f'{s}_frac_above_p99']:.0%} |"
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
        f"Threshold attacks, {int(results['real']['mia_n_per_side'])} members (training patches) vs as many "
        "non-members (test patches). AUC 0.5 = the network reveals nothing about its members.",
        "",
        "| network | loss AUC | confidence AUC | advantage (loss) |",
        "|---|---|---|---|",
    ]
    for row in ["real", *names]:
        r = results[row]
        label = (
            "trained on all real patches"
            if row == "real"
            else f"{row}: {cfg.audit.membership.n_networks} fresh networks ({cfg.audit.membership.schedule})"
        )
        lines.append(
            f"| {label} | {_fmt(r['mia_loss_auc'])} ± {_fmt(r['mia_loss_auc_std'])} | "
            f"{_fmt(r['mia_confidence_auc'])} | {_fmt(r['mia_loss_advantage'])} |"
        )
    lines += ["", "![membership ROC](membership_roc.png)", "", "## Burned-in text and header data", ""]
    counts = ", ".join(f"{v} {k}" for k, v in sorted(strings.counts().items())) or "none found"
    lines.append(
        f"Private strings searched in every artifact byte (UTF-8/UTF-16, any case, zip members "
        f"decompressed): {counts}; {strings.too_short} shorter than {cfg.audit.text.min_length} characters "
        "were not searched."
    )
    for name in names:
        n = len(leaks[name])
        lines.append(
            f"- {name}: {'no private string found' if n == 0 else f'**{n} LEAK(S)** (see audit.json)'}"
        )
    lines.append("")
    if text_report is None:
        lines.append(
            "Text-corner check: not run (the data module exposes no patch positions, or no patch "
            "overlaps the configured text corner)."
        )
    else:
        lines += [
            f"Text corner ({cfg.audit.text.corner}, box {list(cfg.audit.text.box)} of the image): "
            f"{text_report.n_text_patches} training patches overlap it. Each distilled image's highest NCC "
            "with "
            "them, against ordinary real patches (p99) and text patches of other patients (median):",
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
    lines += ["", "Per-image numbers: `audit_per_image.csv`; all numbers: `audit.json`.", ""]
    return "\n".join(lines)
