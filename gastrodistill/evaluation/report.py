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
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from gastrodistill.evaluation import plots
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.metrics import mean_roc
from gastrodistill.evaluation.results import row_id
from gastrodistill.utils.atomic import atomic_path, write_text_atomic
from gastrodistill.utils.hashing import sha256_file

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule

RECORDS = "records"
NETWORKS_CSV = "networks.csv"
_SCALARS = "__scalars__"


def record_path(out: Path, key: str) -> Path:
    """The record file of job ``key``: ``<out>/records/<key>.npz``."""
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


class UnreadableSources(ValueError):
    """:data:`RESULTS_SOURCES` exists but is not the list :func:`write_results_sources` writes."""


def _results_sources(out: Path) -> dict[str, str] | None:
    """The digests of :data:`RESULTS_SOURCES`, or None when the folder has none (written before the list
    existed: the table is then judged by file times). Raises :class:`UnreadableSources` saying why for a
    list that exists and cannot be read (truncated, edited, a folder): never a silent fallback."""
    path = Path(out) / RESULTS_SOURCES
    if not path.exists() and not path.is_symlink():
        return None
    malformed = UnreadableSources(f"{RESULTS_SOURCES} is not the list of records the table was computed from")
    try:
        sources = json.loads(path.read_text())["records"]
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableSources(f"{RESULTS_SOURCES} cannot be read ({type(exc).__name__})") from None
    except (ValueError, KeyError, TypeError):
        raise malformed from None
    if not isinstance(sources, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in sources.items()
    ):
        raise malformed
    return sources


def table_records(out: Path) -> list[Path]:
    """The records in ``out`` that its table (``results.csv``) was computed from, as the tools that pool
    runs read them: those :data:`RESULTS_SOURCES` lists that are still there, or every record of a folder
    without the list (or with one that cannot be read: :func:`unfinished_evaluation` refuses it). Records
    the list does not name (an earlier evaluation's networks beyond the current ``eval.n_networks``, or
    the first networks of a larger evaluation stopped part way) are not the table's and are left out."""
    out = Path(out)
    every = sorted((out / RECORDS).glob("*.npz"))
    try:
        sources = _results_sources(out)
    except UnreadableSources:
        return every
    return every if sources is None else [p for p in every if p.name in sources]


def unfinished_evaluation(out: Path, keys: Iterable[str] | None = None) -> str | None:
    """Why the evaluation in ``out`` is not finished, or None when it is: its table (``results.csv``) exists
    and was computed from the records of ``keys`` as they are (default: the records the table lists). The
    table is written once every job has its record, so a folder without it, or whose records changed or
    went after the table was computed from them (a network trained again, networks moved to ``history/``
    by a resume), holds an unfinished evaluation. :func:`~gastrodistill.evaluation.run.current_results`
    asks this for its jobs (besides their settings, which need the config); the tools that pool run
    folders (``paired_over_runs``, ``check_experiment``) ask it alone and pool :func:`table_records`.

    The records are compared by content with the list written beside the table (:data:`RESULTS_SOURCES`),
    so a folder copied without its files' times (``cp -r``, ``scp -r`` without ``-p``) still reads as
    finished, and records the list does not name are not the table's (an evaluation with fewer networks
    than an earlier one leaves the earlier one's extra records). A list that cannot be read makes the
    evaluation unfinished (evaluating again writes it). A folder written before the list existed is
    judged by file times: the table must be newer than the newest record."""
    out = Path(out)
    table = out / RESULTS_CSV
    if not table.is_file():
        return f"no {RESULTS_CSV}"
    try:
        sources = _results_sources(out)
    except UnreadableSources as exc:
        return str(exc)
    if sources is not None:
        paths = (
            [record_path(out, k) for k in keys]
            if keys is not None
            else [out / RECORDS / n for n in sorted(sources)]
        )
        for path in paths:
            name = path.name
            if name not in sources:
                return f"{RECORDS}/{name} is not among the records {RESULTS_CSV} was computed from"
            if not path.is_file():
                return f"{RECORDS}/{name} is gone, and {RESULTS_CSV} was computed from it"
            if sha256_file(path) != sources[name]:
                return f"{RECORDS}/{name} changed after {RESULTS_CSV} was computed from it"
        return None
    paths = [record_path(out, k) for k in keys] if keys is not None else sorted((out / RECORDS).glob("*.npz"))
    times = [(p.stat().st_mtime_ns, p) for p in paths if p.is_file()]
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
    dm: ImageDataModule,
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
        mats, list(dm.class_names), out / "confusion_matrices.png", "patches" if patients else "images"
    )
    return paths
