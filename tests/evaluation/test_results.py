"""The results table: aggregation by hand, Markdown, and the numbers W&B receives."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from gastrodistill.evaluation.results import (
    attach_audit,
    audit_markdown,
    log_results,
    method_metrics,
    per_class_markdown,
    summarise,
    to_markdown,
    write_results,
)


def _rec(method, hm, acc, labels, dec, scores):
    return {
        "method": method,
        "schedule": "replay",
        "architecture": "convnet",
        "patch_accuracy": acc,
        "patch_balanced_accuracy": acc,
        "patch_macro_f1": acc,
        "recall_a": acc,
        "patient_sensitivity": hm,
        "patient_specificity": hm,
        "patient_hm": hm,
        "patient_accuracy": hm,
        "patient_auc": hm,
        "threshold": 0.5,
        "test_labels": labels,
        "test_decisions": dec,
        "test_scores": scores,
    }


def test_summarise_by_hand():
    y = np.array([0, 1, 0, 1])
    recs = [
        _rec("soft", 0.6, 0.7, y, y.astype(bool), y * 1.0),
        _rec("soft", 0.8, 0.9, y, y.astype(bool), y * 1.0),
        _rec("full", 0.9, 0.95, y, y.astype(bool), y * 1.0),
    ]
    sizes = {"soft": {"n_images": 30, "bytes": 1000}, "full": {"n_images": 500, "bytes": 50_000}}
    df = summarise(recs, sizes, 50_000, 0, n_boot=20)
    soft = df[df.method == "soft"].iloc[0]
    assert soft.n_networks == 2 and soft.compression == 50.0
    assert soft.patient_hm_mean == pytest.approx(0.7) and soft.patient_hm_std == pytest.approx(0.1)  # ddof=0
    assert soft.patch_accuracy_mean == pytest.approx(0.8)
    assert soft.patient_hm_ci_low == soft.patient_hm_ci_high == 1.0  # perfect decisions in every resample
    md = to_markdown(df, "T")
    assert "| soft | replay | convnet | 2 | 30 | 1000 B | 50× | 0.800 ± 0.100 |" in md
    # a set larger than the real data (tiny presets): the ratio keeps two figures, not "1×"
    small = to_markdown(summarise(recs, sizes, 743, 0, n_boot=20), "T")
    assert "| 1000 B | 0.74× |" in small
    with pytest.raises(ValueError, match="no evaluated networks"):
        summarise([], sizes, 1, 0)


def test_audit_columns_join_the_right_rows(tmp_path):
    df = pd.DataFrame(
        {
            "method": ["soft", "full", "random"],
            "schedule": ["replay", "real", "standard"],
            "architecture": ["convnet"] * 3,
            "n_networks": [1] * 3,
            "n_images": [3, 9, 3],
            "bytes": [10, 90, 3],
            "compression": [9.0, 1.0, 30.0],
        }
    )
    out = attach_audit(
        df,
        {
            "soft": {"mia_loss_auc": 0.52, "ncc_nearest_max": 0.4, "artifact_leaks": 0.0},
            "real": {"mia_loss_auc": 0.61},
        },
    )
    assert out.audit_mia_loss_auc.tolist()[:2] == [0.52, 0.61] and np.isnan(out.audit_mia_loss_auc[2])
    _, md = write_results(out, tmp_path)
    assert "### Anonymity audit" in md.read_text() and "| soft | 0.400 |" in md.read_text()


def test_wandb_receives_the_table_numbers(tmp_path, monkeypatch):
    import wandb

    from gastrodistill.utils.loggers import private_wandb_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    df = pd.DataFrame(
        {
            "method": ["soft", "full"],
            "schedule": ["replay", "real"],
            "architecture": ["convnet"] * 2,
            "patient_hm_mean": [0.8125, 0.9],
            "n_images": [30, 1900],
        }
    )
    lg = private_wandb_logger(save_dir=tmp_path, offline=True, name="results-test")
    try:
        log_results([lg], df)
    finally:
        wandb.finish()
    # an HTML panel, not a W&B Table (whose artifact record names the home folder: test_wandb_privacy.py)
    assert not list(tmp_path.rglob("*.table.json"))
    (html_file,) = tmp_path.rglob("media/html/results/table*.html")
    html = html_file.read_text()
    headers = re.findall(r"<th>(.*?)</th>", html)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", html, re.S)[1:]]
    assert headers == list(df.columns)
    assert [row[3] for row in cells] == ["0.8125", "0.9"] and [row[0] for row in cells] == ["soft", "full"]


def test_wide_intervals_are_flagged_and_patient_counts_printed():
    """Issue 13: an interval wider than max_ci_width carries a flag; the counts stand under the table."""
    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 4)  # 8 test patients: intervals are wide
    noisy = [_rec("soft", 0.5, 0.5, y, rng.random(8) > 0.5, rng.random(8)) for _ in range(2)]
    for r in noisy:
        r.update(threshold_fit_count=6.0, threshold_cv=1.0)
    sizes = {"soft": {"n_images": 30, "bytes": 1000}}
    df = summarise(noisy, sizes, 50_000, 0, n_boot=200)
    row = df.iloc[0]
    assert (row.n_test_patients, row.n_test_gastritis, row.n_threshold_patients) == (8, 4, 6)
    width = row.patient_auc_ci_high - row.patient_auc_ci_low
    assert width > 0.3
    md = to_markdown(df, "T", max_ci_width=0.3)
    assert md.count("⚠ wide") == 3  # HM and AUC cells, and the legend line
    assert "rest on 8 test patients (4 gastritis, 4 not); thresholds on 6 patients (cross-validated" in md
    assert "⚠ few: only 4 with gastritis and 4 without gastritis among the test patients (fewer than 5)" in md
    assert "binormal" not in md
    for r in noisy:
        r.update(threshold_cv=0.0, threshold_binormal=1.0)
    md = to_markdown(summarise(noisy, sizes, 50_000, 0, n_boot=200), "T", max_ci_width=0.3)
    assert "thresholds on 6 patients, at the HM maximum of a binormal model of their scores." in md
    noisy[0]["threshold_binormal"] = 0.0  # one network's scores were too concentrated: empirical
    md = to_markdown(summarise(noisy, sizes, 50_000, 0, n_boot=200), "T", max_ci_width=0.3)
    assert "binormal model of their scores (the empirical maximum where a diagnosis's scores were" in md
    assert "⚠ wide" not in to_markdown(df, "T", max_ci_width=width + 0.01).split("| soft")[1].split("\n")[0]


def test_per_class_recall_has_its_own_table_and_the_auc_is_defined(tmp_path):
    """With five imbalanced classes the rare class's recall is the number to read, and it stood in
    results.csv only; the multi-class AUC was defined nowhere a user looks (a newcomer's findings)."""
    recs = []
    for method, rare in (("soft", 0.25), ("full", 0.75)):
        for k in range(2):
            r = {"method": method, "schedule": "replay", "architecture": "convnet", "patch_accuracy": 0.8}
            r.update({"recall_common": 0.9, "recall_rare one": rare + 0.1 * k})
            r.update(image_labels=np.array([0, 1, 0, 1]), image_probs=np.eye(2)[[0, 1, 0, 1]])
            r["image_correct"] = np.ones(4, dtype=bool)
            recs.append(r)
    sizes = {"soft": {"n_images": 2, "bytes": 100}, "full": {"n_images": 50, "bytes": 5000}}
    df = summarise(recs, sizes, 5000, 0, n_boot=20)
    _, md_path = write_results(df, tmp_path)
    md = md_path.read_text()
    assert "### Recall (sensitivity) per class, test images" in md
    assert "| Method | Schedule | Arch | common | rare one |" in md
    renamed = df.rename(columns=lambda c: c.replace("rare one", "a|b\nc"))  # a breaker's class names
    assert "| Method | Schedule | Arch | common | a\\|b c |" in per_class_markdown(renamed)
    assert "| soft | replay | convnet | 0.900 ± 0.000 | 0.300 ± 0.050 |" in md
    assert "| full | replay | convnet | 0.900 ± 0.000 | 0.800 ± 0.050 |" in md
    assert "Image AUC: binary for two classes, else the mean of the one-vs-rest AUCs of the classes" in md


def test_a_networks_missing_or_non_finite_metric_is_left_out_of_its_mean_and_std():
    """A network without a patient AUC (NaN) or without a metric at all does not turn the row into NaN:
    the mean and the population std are over the networks that have a finite value."""
    y = np.array([0, 1, 0, 1])
    recs = [_rec("soft", h, 0.5, y, y.astype(bool), y * 1.0) for h in (0.6, 0.7, 0.9)]
    recs[1]["patient_auc"] = float("nan")
    del recs[2]["recall_a"]
    df = summarise(recs, {"soft": {"n_images": 3, "bytes": 30}}, 300, 0, n_boot=10)
    row = df.iloc[0]
    assert row.patient_auc_mean == pytest.approx(np.mean([0.6, 0.9]))
    assert row.patient_auc_std == pytest.approx(np.std([0.6, 0.9]))
    assert row.recall_a_mean == pytest.approx(0.5) and row.recall_a_std == 0.0
    assert row.patient_hm_mean == pytest.approx(np.mean([0.6, 0.7, 0.9]))


def test_patient_counts_name_the_gastritis_side_and_average_the_threshold_patients():
    """3 of 8 test patients with gastritis (label 1); networks whose thresholds rest on 6 and 9 patients
    (one unknown): the note gives 3 with, 5 without, and the mean 7.5."""
    y = np.array([1, 0, 0, 1, 0, 0, 1, 0])
    recs = [_rec("soft", 0.5, 0.5, y, y.astype(bool), y * 1.0) for _ in range(3)]
    for r, fit in zip(recs, (6.0, 9.0, float("nan")), strict=True):
        r["threshold_fit_count"] = fit
    df = summarise(recs, {"soft": {"n_images": 3, "bytes": 30}}, 300, 0, n_boot=10)
    row = df.iloc[0]
    assert (row.n_test_patients, row.n_test_gastritis, row.n_threshold_patients) == (8, 3, 7.5)
    md = to_markdown(df, "T")
    assert "rest on 8 test patients (3 gastritis, 5 not); thresholds on 8 patients." in md  # 7.5 -> 8
    assert "only 3 with gastritis among the test patients (fewer than 5)" in md


def test_five_test_patients_on_a_side_are_not_few():
    y = np.array([1] * 5 + [0] * 4)
    recs = [_rec("soft", 0.5, 0.5, y, y.astype(bool), y * 1.0)]
    md = to_markdown(summarise(recs, {"soft": {"n_images": 3, "bytes": 30}}, 300, 0, n_boot=10), "T")
    assert "⚠ few: only 4 without gastritis among the test patients" in md
    assert "5 with gastritis" not in md


def _row_with_interval(low: float, high: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "method": "soft",
                "schedule": "replay",
                "architecture": "convnet",
                "n_networks": 2,
                "n_images": 3,
                "bytes": 30,
                "compression": 10.0,
                "patient_hm_mean": 0.5,
                "patient_hm_std": 0.0,
                "patient_hm_ci_low": low,
                "patient_hm_ci_high": high,
                "patient_sensitivity_mean": 0.25,
                "patient_sensitivity_std": 0.0,
                "patient_specificity_mean": 0.75,
                "patient_specificity_std": 0.0,
            }
        ]
    )


def test_an_interval_exactly_as_wide_as_the_limit_is_not_flagged():
    """'wider than max_ci_width': a width equal to it carries no flag, one a little wider does."""
    row = lambda md: md.split("| soft")[1].split("\n")[0]  # noqa: E731
    assert "⚠ wide" not in row(to_markdown(_row_with_interval(0.25, 0.75), "T", max_ci_width=0.5))
    assert "⚠ wide" in row(to_markdown(_row_with_interval(0.25, 0.7501), "T", max_ci_width=0.5))


def test_sensitivity_and_specificity_stand_under_their_own_headers():
    md = to_markdown(_row_with_interval(0.25, 0.75), "T")
    lines = md.splitlines()
    head = [c.strip() for c in next(x for x in lines if x.startswith("| Method")).split("|")[1:-1]]
    cells = [c.strip() for c in next(x for x in lines if x.startswith("| soft")).split("|")[1:-1]]
    table = dict(zip(head, cells, strict=True))
    assert table["Sensitivity"] == "0.250 ± 0.000" and table["Specificity"] == "0.750 ± 0.000"


def test_results_csv_keeps_every_number_to_ten_figures(tmp_path):
    y = np.array([0, 1, 0, 1])
    recs = [_rec("soft", h, a, y, y.astype(bool), y * 1.0) for h, a in ((0.6123456789, 0.7), (0.7, 0.81234))]
    df = summarise(recs, {"soft": {"n_images": 3, "bytes": 7}}, 1000, 0, n_boot=10)
    csv, _ = write_results(df, tmp_path)
    back = pd.read_csv(csv)
    assert list(back.columns) == list(df.columns)
    for col in ("patient_hm_mean", "patient_hm_std", "patch_accuracy_std", "compression"):
        assert back[col].iloc[0] == pytest.approx(df[col].iloc[0], rel=1e-9), col
    assert back.compression.iloc[0] == pytest.approx(1000 / 7, rel=1e-9)


def test_the_audit_table_has_one_line_per_method():
    """A method evaluated on two schedules has two result rows but one audit: it is listed once."""
    df = pd.DataFrame(
        {
            "method": ["soft", "soft", "full"],
            "schedule": ["replay", "standard", "real"],
            "architecture": ["convnet"] * 3,
        }
    )
    md = audit_markdown(attach_audit(df, {"soft": {"mia_loss_auc": 0.52}, "real": {"mia_loss_auc": 0.6}}))
    rows = [line for line in md.splitlines() if line.startswith("| soft") or line.startswith("| full")]
    assert rows == [
        "| soft | – | – | – | – | 0.520 | – | – |",
        "| full | – | – | – | – | 0.600 | – | – |",
    ]


def test_the_artifact_cards_numbers_are_the_replay_row_on_the_distilling_architecture():
    df = pd.DataFrame(
        {
            "method": ["soft", "soft", "soft"],
            "schedule": ["standard", "replay", "replay"],
            "architecture": ["convnet", "resnet", "convnet"],
            "cross_architecture": [False, True, False],
            "patient_hm_mean": [0.5, 0.6, 0.7],
        }
    )
    assert method_metrics(df, "soft") == {"patient_hm_mean": 0.7}
    assert method_metrics(df, "soft", "standard") == {"patient_hm_mean": 0.5}
    assert method_metrics(df, "hard") == {} and method_metrics(None, "soft") == {}


def test_the_cards_numbers_are_the_same_from_the_table_in_memory_and_from_results_csv(tmp_path):
    """A card written in the run that evaluated took the table's full-precision numbers, one written later
    by ``stages=[artifact]`` those of ``results.csv`` (10 significant digits): the zips differed (a breaker's
    finding). Both now take the numbers as the file holds them."""
    rng = np.random.default_rng(0)
    values = [*rng.random(50), 0.7432519280205655, 1 / 3, 12.0, 123456.789012345678, 1e-7 / 3]
    y = np.array([0, 1, 0, 1])
    recs = [_rec("soft", h, a, y, y.astype(bool), y * 1.0) for h, a in ((0.6123456789, 0.7), (0.7, 0.81234))]
    df = summarise(recs, {"soft": {"n_images": 3, "bytes": 7}}, 1000, 0, n_boot=10)
    df = df.assign(**{f"m{i}": v for i, v in enumerate(values)})  # awkward numbers beside the real ones
    csv, _ = write_results(df, tmp_path)
    from_file = method_metrics(pd.read_csv(csv), "soft")
    in_memory = method_metrics(df, "soft")
    np.testing.assert_equal(from_file, in_memory)  # exactly, NaN (no figure) as NaN
    assert len(in_memory) > len(values)
    assert in_memory["m50"] == 0.743251928 and in_memory["m52"] == 12.0
