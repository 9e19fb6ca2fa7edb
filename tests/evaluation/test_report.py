"""What the evaluation writes per network (records, ``networks.csv``, the list of records the table was
computed from) and how a folder is judged finished, on small records made by hand."""

from __future__ import annotations

import hashlib
import json
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from gastrodistill.evaluation import report
from gastrodistill.evaluation.jobs import EvaluationConfigError


def _record(key: str) -> dict:
    method, schedule, arch, index = key.split("__")
    return {"job": key, "method": method, "schedule": schedule, "architecture": arch, "network": int(index)}


def _finished(out, keys) -> None:
    """Records of ``keys``, then results.csv and the list of records it was computed from, as finalize
    leaves them."""
    for k in keys:
        report.save_record(out, {**_record(k), "patient_hm": 0.5, "test_scores": np.arange(3.0)})
    (out / report.RESULTS_CSV).write_text("method\nmean\n")
    report.write_results_sources(out, report.record_digests(out, keys))


KEYS = ["mean__standard__same__0", "mean__standard__same__1"]


def test_a_record_reads_back_its_scalars_as_json_numbers_and_its_arrays_exactly(tmp_path):
    """numpy scalars become plain numbers (not their text), None stays None, and the loaded record has
    exactly the keys saved (kills default=str, the JSON member read back as an array, None dropped)."""
    arrays = {
        "test_scores": np.array([0.25, 0.5, 1.0]),
        "test_decisions": np.array([True, False, True]),
        "confusion_matrix": np.arange(9, dtype=np.int64).reshape(3, 3),
    }
    rec = {
        **_record("soft__replay__same__3"),
        "lr": np.float32(0.25),
        "best_epoch": np.int64(4),
        "diverged": True,
        "threshold": None,
        **arrays,
    }
    path = report.save_record(tmp_path, rec)
    assert path == tmp_path / "records" / "soft__replay__same__3.npz"
    back = report.load_record(path)
    assert set(back) == set(rec)
    assert back["lr"] == 0.25 and isinstance(back["lr"], float)
    assert back["best_epoch"] == 4 and isinstance(back["best_epoch"], float)
    assert back["threshold"] is None and back["diverged"] is True and back["network"] == 3
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)


def test_a_record_holding_an_object_array_is_refused_as_unreadable(tmp_path):
    """Records are read without pickle: an object array (what a pickle would bring in) is refused with the
    record named (kills allow_pickle=True)."""
    path = report.record_path(tmp_path, KEYS[0])
    path.parent.mkdir(parents=True)
    with open(path, "wb") as f:
        np.savez(f, __scalars__=np.array(json.dumps(_record(KEYS[0]))), ids=np.array(["P1", 2], dtype=object))
    with pytest.raises(ValueError):
        report.load_record(path)
    with pytest.raises(EvaluationConfigError, match=f"{KEYS[0]}.npz cannot be read"):
        report.load_records(tmp_path, [KEYS[0]])


def test_a_missing_record_is_named_as_missing_not_as_damaged(tmp_path):
    """A job without a record raises FileNotFoundError naming the job and what to do (kills dropping that
    check, after which the missing file would read as a damaged record to remove)."""
    _finished(tmp_path, KEYS[:1])
    assert [r["job"] for r in report.load_records(tmp_path, KEYS[:1])] == KEYS[:1]
    with pytest.raises(FileNotFoundError, match=f"job {KEYS[1]} has no record; run its rank again"):
        report.load_records(tmp_path, KEYS)


def test_the_finished_jobs_are_the_records_and_not_their_settings_files(tmp_path):
    assert report.finished_jobs(tmp_path) == set()
    _finished(tmp_path, KEYS)
    (tmp_path / "records" / f"{KEYS[0]}.settings.json").write_text("{}")
    assert report.finished_jobs(tmp_path) == set(KEYS)


def test_the_sources_list_is_every_records_sha256_sorted_by_name(tmp_path):
    """results.sources.json names each record of the table with the sha256 of its bytes, by name in order
    (kills a list in the keys' order and a digest left out)."""
    keys = ["soft__replay__same__1", "mean__standard__same__0", "soft__replay__same__0"]
    for k in keys:
        report.save_record(tmp_path, {**_record(k), "test_scores": np.arange(3.0) + len(k)})
    digests = report.record_digests(tmp_path, keys)
    expected = {
        f"{k}.npz": hashlib.sha256((tmp_path / "records" / f"{k}.npz").read_bytes()).hexdigest()
        for k in sorted(keys)
    }
    assert digests == expected
    path = report.write_results_sources(tmp_path, digests)
    assert path.read_text() == json.dumps({"records": expected}, indent=1) + "\n"
    assert list(json.loads(path.read_text())["records"]) == sorted(expected)


def test_a_finished_evaluation_reads_finished_and_each_change_to_its_records_is_named(tmp_path):
    _finished(tmp_path, KEYS)
    assert report.unfinished_evaluation(tmp_path) is None
    assert report.unfinished_evaluation(tmp_path, KEYS[:1]) is None
    # a job the table was not computed from (kills `continue` in place of the refusal)
    report.save_record(tmp_path, _record("mean__standard__same__2"))
    assert report.unfinished_evaluation(tmp_path) is None  # not asked for: not the table's
    why = report.unfinished_evaluation(tmp_path, [*KEYS, "mean__standard__same__2"])
    assert why == "records/mean__standard__same__2.npz is not among the records results.csv was computed from"
    # a record changed after the table
    report.save_record(tmp_path, {**_record(KEYS[1]), "patient_hm": 0.75})
    assert report.unfinished_evaluation(tmp_path, KEYS[:1]) is None  # asked for the other one only
    why = f"records/{KEYS[1]}.npz changed after results.csv was computed from it"
    assert report.unfinished_evaluation(tmp_path) == why
    assert report.unfinished_evaluation(tmp_path, KEYS) == why
    # a record gone (moved to history/ by a resume): named, not a FileNotFoundError
    report.record_path(tmp_path, KEYS[1]).unlink()
    gone = f"records/{KEYS[1]}.npz is gone, and results.csv was computed from it"
    assert report.unfinished_evaluation(tmp_path) == gone


def test_a_folder_where_the_table_should_be_is_no_table(tmp_path):
    _finished(tmp_path, KEYS)
    (tmp_path / report.RESULTS_CSV).unlink()
    assert report.unfinished_evaluation(tmp_path) == "no results.csv"
    (tmp_path / report.RESULTS_CSV).mkdir()
    assert report.unfinished_evaluation(tmp_path) == "no results.csv"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"records": {}}]', "is not the list of records"),  # a JSON list: indexing by a name is a TypeError
        ('{"records": {"mean__standard__same__0.npz": 1}}', "is not the list of records"),  # digest not text
        ('{"records": ["mean__standard__same__0.npz"]}', "is not the list of records"),
        ('{"record": {}}', "is not the list of records"),
        (None, "cannot be read (FileNotFoundError)"),  # a link to nothing
    ],
)
def test_a_sources_list_that_cannot_be_read_makes_the_evaluation_unfinished_and_the_table_pools_every_record(
    tmp_path, content, message
):
    """Never a silent fallback to file times (kills the symlink, TypeError and digest-type checks), and
    the pooling tools then read every record (kills an empty list in that case)."""
    _finished(tmp_path, KEYS)
    listed = tmp_path / report.RESULTS_SOURCES
    listed.unlink()
    if content is None:
        listed.symlink_to(tmp_path / "nowhere.json")
    else:
        listed.write_text(content)
    why = report.unfinished_evaluation(tmp_path)
    assert why is not None and why.startswith(report.RESULTS_SOURCES) and message in why
    assert report.table_records(tmp_path) == sorted((tmp_path / "records").glob("*.npz"))
    assert len(report.table_records(tmp_path)) == 2


def test_the_table_records_are_those_the_list_names_that_are_still_there(tmp_path):
    _finished(tmp_path, KEYS)
    report.save_record(tmp_path, _record("mean__standard__same__2"))  # an earlier, larger evaluation's
    assert report.table_records(tmp_path) == [report.record_path(tmp_path, k) for k in KEYS]
    report.record_path(tmp_path, KEYS[0]).unlink()
    assert report.table_records(tmp_path) == [report.record_path(tmp_path, KEYS[1])]
    (tmp_path / report.RESULTS_SOURCES).unlink()  # a folder of before the list: every record
    assert report.table_records(tmp_path) == [
        report.record_path(tmp_path, k) for k in (KEYS[1], "mean__standard__same__2")
    ]


def _times(tmp_path, table: int, records: dict[str, int]) -> None:
    for k, t in records.items():
        os.utime(report.record_path(tmp_path, k), ns=(t, t))
    os.utime(tmp_path / report.RESULTS_CSV, ns=(table, table))


def test_a_folder_without_the_list_is_judged_by_the_newest_record_of_the_asked_jobs(tmp_path):
    """Before results.sources.json existed: finished when the table is not older than the newest record
    (equal times, e.g. a file system of whole seconds, are finished), among the jobs asked for (kills
    <=, the oldest record in place of the newest, and every record in place of the asked ones)."""
    s = 10**9
    _finished(tmp_path, KEYS)
    (tmp_path / report.RESULTS_SOURCES).unlink()
    _times(tmp_path, 5 * s, {KEYS[0]: 5 * s, KEYS[1]: 3 * s})
    assert report.unfinished_evaluation(tmp_path) is None
    _times(tmp_path, 5 * s, {KEYS[0]: 4 * s, KEYS[1]: 6 * s})
    assert report.unfinished_evaluation(tmp_path) == f"results.csv is older than records/{KEYS[1]}.npz"
    assert report.unfinished_evaluation(tmp_path, KEYS[:1]) is None
    assert report.unfinished_evaluation(tmp_path, [KEYS[0], "mean__standard__same__9"]) is None  # absent


def test_networks_csv_is_one_row_per_record_of_its_scalars_at_ten_digits(tmp_path):
    """No index column, no arrays, None as an empty cell (its column kept), floats to 10 significant
    digits; read back against the records (kills index=True, %.6g and None dropped)."""
    records = [
        {**_record(KEYS[0]), "patient_hm": 1 / 3, "lr": 0.01, "threshold": None, "test_scores": np.ones(3)},
        {**_record(KEYS[1]), "patient_hm": 2 / 3, "lr": 0.03, "threshold": None, "diverged": True},
    ]
    path = report.write_network_records(records, tmp_path / report.NETWORKS_CSV)
    lines = path.read_text().splitlines()
    assert lines[0] == "job,method,schedule,architecture,network,patient_hm,lr,threshold,diverged"
    assert lines[1] == f"{KEYS[0]},mean,standard,same,0,0.3333333333,0.01,,"
    table = pd.read_csv(path)
    assert list(table.job) == KEYS and table.threshold.isna().all()
    np.testing.assert_allclose(table.patient_hm, [1 / 3, 2 / 3], rtol=1e-9)
    assert lines[2].endswith(",0.03,,True")


def test_the_plots_get_mean_curves_of_the_primary_rows_and_summed_confusion_matrices(tmp_path, monkeypatch):
    """The ROC chart of the distillation architecture's rows, a second chart with every row only when
    another architecture is there, each row's AUC the nanmean of its networks' and its confusion matrix
    their sum, in patches with patients and images without (kills ==/!=, >=, np.mean and the swapped
    unit)."""
    seen: dict = {}
    monkeypatch.setattr(
        report.plots, "plot_roc_curves", lambda curves, path: seen.update({path.name: curves}) or path
    )
    monkeypatch.setattr(
        report.plots,
        "plot_confusion_matrices",
        lambda mats, names, path, unit: seen.update(mats=mats, unit=unit) or path,
    )
    rng = np.random.default_rng(0)

    def net(key, arch, auc):
        fpr = np.array([0.0, 0.0, 0.5, 1.0])
        return {
            **_record(key),
            "architecture": arch,
            "patient_auc": auc,
            "roc_fpr": fpr,
            "roc_tpr": np.sort(rng.random(4)),
            "confusion_matrix": rng.integers(0, 9, (3, 3)),
        }

    records = [
        net("soft__replay__same__0", "convnet", 0.5),
        net("soft__replay__same__1", "convnet", np.nan),
        net("soft__replay__same__2", "convnet", 0.75),
        net("soft__replay__lenet__0", "lenet", 0.25),
    ]
    dm = SimpleNamespace(class_names=["a", "b", "c"])
    paths = report.make_plots(records, {}, dm, "convnet", True, tmp_path)
    assert set(paths) == {"roc", "roc_all", "confusion"}
    primary, every = seen["roc_curves.png"], seen["roc_curves_all_architectures.png"]
    assert list(primary) == ["soft/replay/convnet"]
    assert list(every) == ["soft/replay/convnet", "soft/replay/lenet"]
    fpr, tpr, sd, auc = primary["soft/replay/convnet"]
    assert auc == pytest.approx(0.625)
    grid = np.linspace(0, 1, 101)
    curves = [np.interp(grid, [0.0, 0.5, 1.0], r["roc_tpr"][[1, 2, 3]]) for r in records[:3]]
    np.testing.assert_allclose(tpr, np.mean(curves, 0))
    np.testing.assert_allclose(sd, np.std(curves, 0))
    summed = sum(r["confusion_matrix"] for r in records[:3])
    np.testing.assert_array_equal(seen["mats"]["soft/replay/convnet"], summed)
    assert seen["unit"] == "patches"

    seen.clear()
    paths = report.make_plots(records[:3], {}, dm, "convnet", True, tmp_path)
    assert set(paths) == {"roc", "confusion"} and "roc_curves_all_architectures.png" not in seen
    seen.clear()
    report.make_plots(records[:3], {}, dm, "convnet", False, tmp_path)
    assert seen["unit"] == "images" and "roc_curves.png" not in seen
