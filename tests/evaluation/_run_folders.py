"""Run folders as the evaluate stage leaves them (per-network records, config, results table), for the
tests of the tools that pool runs (``paired_over_runs``, ``check_experiment``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from gastrodistill.evaluation.report import load_record, record_digests, save_record, write_results_sources

LABELS = np.array([1, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0])


def net(rng: np.random.Generator, labels: np.ndarray = LABELS, skill: float = 0.0) -> dict[str, np.ndarray]:
    """One network's per-patient arrays: scores that lean towards the label by ``skill``."""
    scores = rng.random(len(labels)) + skill * labels
    return {"labels": labels, "decisions": scores > 0.5 + skill / 2, "scores": scores}


def config(split_seed: int = 0, run_seed: int = 0) -> dict:
    return {
        "paths": {"data_root": "./data/synthetic/cpu"},
        "synthetic": {"seed": 0},
        "data": {"split_seed": split_seed, "seed": run_seed, "test_fraction": 0.3},
    }


def finish(folder: Path) -> Path:
    """Write ``eval/results.csv`` of run ``folder`` (or of an evaluation folder) after its records, and the
    list of records it was computed from (``results.sources.json``), as the evaluate stage does once every
    job has its record: one row per results row, with its networks' count and mean patient HM (the
    columns ``check_experiment`` reads). Returns the table's path."""
    out = folder / "eval" if (folder / "eval" / "records").is_dir() else folder
    rows: dict[tuple[str, str, str], list[float]] = {}
    for path in sorted((out / "records").glob("*.npz")):
        rec = load_record(path)
        key = (str(rec["method"]), str(rec["schedule"]), str(rec["architecture"]))
        rows.setdefault(key, []).append(float(rec.get("patient_hm", np.nan)))
    table = pd.DataFrame(
        [
            {
                "method": m,
                "schedule": s,
                "architecture": a,
                "cross_architecture": False,
                "n_networks": len(v),
                "patient_hm_mean": float(np.mean(v)),
            }
            for (m, s, a), v in rows.items()
        ]
    )
    table.to_csv(out / "results.csv", index=False)
    write_results_sources(out, record_digests(out, [p.stem for p in (out / "records").glob("*.npz")]))
    return out / "results.csv"


def write_run(folder: Path, seed: int, cfg: dict) -> None:
    """A run folder as the evaluate stage leaves it: eval/records/*.npz, eval/config.yaml and, written
    last, eval/results.csv (:func:`finish`)."""
    rng = np.random.default_rng(seed)
    out = folder / "eval"
    for method, schedule, skill in (
        ("soft", "replay", 0.4),
        ("hard", "replay", 0.2),
        ("random", "standard", 0.0),
    ):
        for i in range(2):
            n = net(rng, skill=skill)
            save_record(
                out,
                {
                    "job": f"{method}__{schedule}__same__{i}",
                    "method": method,
                    "schedule": schedule,
                    "architecture": "convnet",
                    "network": i,
                    "patient_hm": 0.5,
                    "test_labels": n["labels"],
                    "test_decisions": n["decisions"],
                    "test_scores": n["scores"],
                },
            )
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    finish(folder)


def write_image_run(folder: Path, seed: int, cfg: dict, classes: int = 2) -> None:
    """A run folder of data without patients (``data=folder`` / ``data=npz``): per-image records."""
    rng = np.random.default_rng(seed)
    labels = np.arange(12) % classes
    for method, schedule in (("soft", "replay"), ("random", "standard")):
        probs = rng.dirichlet(np.ones(classes), size=len(labels))
        save_record(
            folder / "eval",
            {
                "job": f"{method}__{schedule}__same__0",
                "method": method,
                "schedule": schedule,
                "architecture": "convnet",
                "network": 0,
                "image_labels": labels,
                "image_correct": probs.argmax(1) == labels,
                "image_probs": probs,
            },
        )
    (folder / "eval" / "config.yaml").write_text(yaml.safe_dump(cfg))
    finish(folder)


def give_sets(run, outer_steps: dict[str, int], trained_on: dict[str, str] | None = None) -> dict:
    """Give run folder ``run`` real sets in distill/<mode> (config.yaml with ``outer_steps``) and settings
    files beside its records naming the digest each record was trained on (the set's own by default)."""
    import json

    from gastrodistill.distillation.distilled_set import DistilledSet
    from gastrodistill.evaluation.record_settings import set_digest

    digests = {}
    for i, (mode, steps) in enumerate(outer_steps.items()):
        ds = DistilledSet(num_classes=3, ipc=1, steps=1, epochs=1, image_shape=(1, 4, 4), lr_init=0.02)
        with torch.no_grad():
            ds.images.add_(i)
        ds.save(run / "distill" / mode)
        (run / "distill" / mode / "config.yaml").write_text(
            yaml.safe_dump({"distill": {"outer_steps": steps, "mode": mode, "resume": f"r{i}"}, "seed": 0})
        )
        digests[mode] = set_digest(ds)
    for rec in (run / "eval" / "records").glob("*.npz"):
        mode = rec.name.split("__")[0]
        if mode in digests:
            value = (trained_on or {}).get(mode, digests[mode])
            rec.with_name(rec.name.replace(".npz", ".settings.json")).write_text(
                json.dumps({f"distilled set {mode}": value})
            )
    return digests
