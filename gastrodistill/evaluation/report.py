"""What the evaluation writes: per-job records, ``networks.csv``, ``selection.json`` and the figures.

Each finished job leaves ``records/<job key>.npz`` (its scalars as JSON text plus its numeric arrays,
no pickle, no patient id, written atomically) and a row of ``networks.csv``. A job counts as finished
when its record exists, so an interrupted run resumes where it stopped, and the records of all ranks
of a sharded run are merged by reading the folder.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from gastrodistill.evaluation import plots
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.metrics import mean_roc
from gastrodistill.evaluation.results import row_id
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.hashing import sha256_file

RECORDS = "records"
NETWORKS_CSV = "networks.csv"
_SCALARS = "__scalars__"


def record_path(out: Path, key: str) -> Path:
    return Path(out) / RECORDS / f"{key}.npz"


def save_record(out: Path, rec: Mapping[str, Any]) -> Path:
    """Write one job's record (scalars as JSON, arrays as arrays) atomically; returns its path."""
    scalars = {k: v for k, v in rec.items() if not isinstance(v, np.ndarray)}
    arrays = {k: v for k, v in rec.items() if isinstance(v, np.ndarray)}
    path = record_path(out, str(rec["job"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, **{_SCALARS: np.array(json.dumps(scalars, default=float))}, **arrays)
    return path


#: What reading a damaged record raises (a truncated or foreign ``.npz``, bad JSON, a missing member);
#: anything else (e.g. ``MemoryError``) is not the file's fault and is not reported as such.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def load_record(path: Path) -> dict[str, Any]:
    """A record written by :func:`save_record` (``allow_pickle=False``). Raises one of :data:`UNREADABLE`
    for a file that is not such a record (``ValueError`` for a lone ``.npy`` array or scalars that are not
    a JSON object)."""
    loaded = np.load(path, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError("a single numpy array, not an .npz record")
    with loaded as z:
        rec = json.loads(str(z[_SCALARS]))
        if not isinstance(rec, dict):
            raise ValueError(f"its scalars are a JSON {type(rec).__name__}, not an object")
        for k in z.files:
            if k != _SCALARS:
                rec[k] = z[k]
    return rec


def finished_jobs(out: Path) -> set[str]:
    """Keys of the jobs whose record was written (atomically, after scoring): what a re-run skips.

    ``networks.csv`` mirrors these records (rewritten after every setting of a single-process run and by
    rank 0 at the end), so its ``job`` column lists the same jobs once a run has written it.
    """
    folder = Path(out) / RECORDS
    if not folder.is_dir():
        return set()
    return {p.name.removesuffix(".npz") for p in folder.glob("*.npz")}


#: The evaluation's table, which :func:`~gastrodistill.evaluation.run.finalize` writes once every job has
#: its record.
RESULTS_CSV = "results.csv"
#: What the table was computed from: ``{"records": {<record file name>: <sha256>}}``, written by
#: :func:`write_results_sources` just after the table (a folder copied without its files' times keeps it).
RESULTS_SOURCES = "results.sources.json"


def record_digests(out: Path, keys: Iterable[str]) -> dict[str, str]:
    """``{<key>.npz: sha256 of its bytes}`` for the records of ``keys`` in ``out`` (each must exist)."""
    return {record_path(out, k).name: sha256_file(record_path(out, k)) for k in keys}


def write_results_sources(out: Path, digests: Mapping[str, str]) -> Path:
    """Write :data:`RESULTS_SOURCES` (atomically) after ``results.csv``: the records the table summarises,
    by content, so :func:`unfinished_evaluation` does not depend on file times. Written after the table,
    so a run stopped between the two leaves an older list, which reads as unfinished (safe: re-running
    ``stages=[evaluate]`` trains nothing and writes both again)."""
    path = Path(out) / RESULTS_SOURCES
    write_text_atomic(path, json.dumps({"records": dict(sorted(digests.items()))}, indent=1) + "\n")
    return path


def _results_sources(out: Path) -> dict[str, str] | None:
    """The digests of :data:`RESULTS_SOURCES`, or None when the folder has none (written before the list
    existed) or it cannot be read (then the table is judged by file times, as before)."""
    try:
        sources = json.loads((Path(out) / RESULTS_SOURCES).read_text())["records"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        return None
    return sources


def unfinished_evaluation(out: Path, keys: Iterable[str] | None = None) -> str | None:
    """Why the evaluation in ``out`` is not finished, or None when it is: its table (``results.csv``) exists
    and was computed from the records of ``keys`` (default: every record in ``records/``) as they are. The
    table is written once every job has its record, so a folder without it, or with records the table was
    not computed from (an evaluation stopped part way after an earlier one wrote the table), holds the
    records of an unfinished evaluation. :func:`~gastrodistill.evaluation.run.current_results` asks this
    (besides the jobs and their settings, which need the config); the tools that pool run folders
    (``paired_over_runs``, ``check_experiment``) ask it alone. Without ``keys``, a record the table was
    computed from that is no longer there (moved to ``history/`` by a resume, or removed to be trained
    again) also makes it unfinished: the table still holds that network's rows.

    The records are compared by content with the list written beside the table
    (:data:`RESULTS_SOURCES`), so a folder copied without its files' times (``cp -r``, ``scp -r`` without
    ``-p``) still reads as finished. A folder written before that list existed is judged by file times: the
    table must be newer than the newest record."""
    out = Path(out)
    table = out / RESULTS_CSV
    if not table.is_file():
        return f"no {RESULTS_CSV}"
    paths = [record_path(out, k) for k in keys] if keys is not None else sorted((out / RECORDS).glob("*.npz"))
    paths = [p for p in paths if p.is_file()]
    sources = _results_sources(out)
    if sources is not None:
        for p in paths:
            if sources.get(p.name) != sha256_file(p):
                if p.name not in sources:
                    return f"{RECORDS}/{p.name} is not among the records {RESULTS_CSV} was computed from"
                return f"{RECORDS}/{p.name} changed after {RESULTS_CSV} was computed from it"
        gone = sorted(set(sources) - {p.name for p in paths}) if keys is None else []
        if gone:  # retired by a resume, or removed to be trained again: the table still holds its rows
            return f"{RECORDS}/{gone[0]} is gone, and {RESULTS_CSV} was computed from it"
        return None
    times = [(p.stat().st_mtime_ns, p) for p in paths]
    if times:
        newest, path = max(times)
        if table.stat().st_mtime_ns < newest:
            return f"{RESULTS_CSV} is older than {RECORDS}/{path.name}"
    return None


def load_records(out: Path, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The records of ``keys`` in that order; raises ``FileNotFoundError`` naming a missing job and
    :class:`~gastrodistill.evaluation.jobs.EvaluationConfigError` naming a record that cannot be read
    (truncated, empty or not written by :func:`save_record`), with what to remove to train it again."""
    recs = []
    for k in keys:
        p = record_path(out, k)
        if not p.is_file():
            raise FileNotFoundError(
                f"{p}: job {k} has no record; run its rank again (or delete networks.csv)"
            )
        try:
            recs.append(load_record(p))
        except UNREADABLE as exc:  # truncated zip, foreign npz, bad JSON: one message
            raise EvaluationConfigError(
                f"{p} cannot be read ({type(exc).__name__}: {exc}); it is the record of the finished network "
                f"{k}. Remove it and run again: that network is trained again, the others are kept"
            ) from None
    return recs


def write_network_records(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Per-network scalars (no arrays, no patient data) for inspection and resuming."""
    rows = [{k: v for k, v in r.items() if np.isscalar(v) or v is None} for r in records]
    with atomic_path(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False, float_format="%.10g")
    return path


def make_plots(
    records: Sequence[Mapping[str, Any]],
    sets: Mapping[str, Any],
    dm,
    primary: str,
    patients: bool,
    out: Path,
) -> dict[str, Path]:
    """Distilled grids, learned lrs, mean ROC curves (patients) and summed confusion matrices per row."""
    paths: dict[str, Path] = {}
    for name, ds in sets.items():
        with torch.no_grad():
            paths[f"grid_{name}"] = plots.plot_distilled_grid(
                ds.images,
                ds.soft_targets(),
                list(dm.class_names),
                dm.mean,
                dm.std,
                out / f"distilled_{name}.png",
                title=f"{name}: distilled images and their labels",
            )
    if sets:
        paths["lr_schedule"] = plots.plot_lr_schedules(
            {n: ds.lrs().detach().cpu().numpy() for n, ds in sets.items()},
            out / "lr_schedule.png",
            steps={n: int(ds.steps) for n, ds in sets.items()},
        )
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault(row_id(r), []).append(r)
    if patients:
        curves, curves_all = {}, {}
        for label, recs in groups.items():
            fpr, tpr, sd = mean_roc([r["roc_fpr"] for r in recs], [r["roc_tpr"] for r in recs])
            auc = float(np.nanmean([r["patient_auc"] for r in recs]))
            curves_all[label] = (fpr, tpr, sd, auc)
            if recs[0]["architecture"] == primary:
                curves[label] = curves_all[label]
        paths["roc"] = plots.plot_roc_curves(curves, out / "roc_curves.png")
        if len(curves_all) > len(curves):
            paths["roc_all"] = plots.plot_roc_curves(curves_all, out / "roc_curves_all_architectures.png")
    mats = {label: np.sum([r["confusion_matrix"] for r in recs], axis=0) for label, recs in groups.items()}
    paths["confusion"] = plots.plot_confusion_matrices(
        mats, list(dm.class_names), out / "confusion_matrices.png"
    )
    return paths
