"""Paired differences and per-row bootstrap streams of the results table, against a plain numpy loop."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from _run_folders import config, write_run

from gastrodistill.cli import paired_over_runs
from gastrodistill.evaluation.metrics import paired_bootstrap
from gastrodistill.evaluation.results import summarise, target_lines, to_markdown
from gastrodistill.utils.seeding import numpy_rng

SIZES = {
    m: {"n_images": 10, "bytes": 1000} for m in ("soft", "hard", "random", "random_soft", "full", "mean")
}


def _patient_records(method, schedule, n_nets, labels, quality, rng):
    recs = []
    for i in range(n_nets):
        scores = np.clip(quality * labels + rng.normal(0.4, 0.25, len(labels)), 0, 1)
        dec = scores >= 0.5
        recs.append(
            {
                "method": method,
                "schedule": schedule,
                "architecture": "convnet",
                "network": i,
                "patch_accuracy": float(rng.random()),
                "patient_hm": 0.5,
                "patient_auc": 0.5,
                "test_labels": labels,
                "test_decisions": dec,
                "test_scores": scores,
            }
        )
    return recs


def _hm(dec, lab):
    sens = (dec & lab).sum() / lab.sum()
    spec = (~dec & ~lab).sum() / (~lab).sum()
    return 0.0 if sens + spec == 0 else 2 * sens * spec / (sens + spec)


def _auc(s, lab):
    pos, neg = s[lab], s[~lab]
    return ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (
        len(pos) * len(neg)
    )


def test_paired_interval_equals_a_plain_loop():
    rng = np.random.default_rng(0)
    labels = (np.arange(30) % 3 == 0).astype(np.int64)
    a = _patient_records("soft", "replay", 3, labels, 0.4, rng)
    b = _patient_records("random", "standard", 2, labels, 0.1, rng)
    arr = lambda r: {"labels": r["test_labels"], "decisions": r["test_decisions"], "scores": r["test_scores"]}  # noqa: E731
    n_boot, level = 300, 0.9
    est, lo, hi = paired_bootstrap(
        "patient_hm", [arr(r) for r in a], [arr(r) for r in b], numpy_rng(1), n_boot, level
    )
    # independent: draw the same resamples one by one (positives first, then negatives), plain formulas
    rng2 = numpy_rng(1)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    idx = np.concatenate(
        [rng2.choice(pos, size=(n_boot, len(pos))), rng2.choice(neg, size=(n_boot, len(neg)))], 1
    )
    lab = labels.astype(bool)
    diffs = []
    for row in idx:
        ma = np.mean([_hm(r["test_decisions"][row], lab[row]) for r in a])
        mb = np.mean([_hm(r["test_decisions"][row], lab[row]) for r in b])
        diffs.append(ma - mb)
    assert lo == pytest.approx(np.quantile(diffs, 0.05)) and hi == pytest.approx(np.quantile(diffs, 0.95))
    full_a = np.mean([_hm(r["test_decisions"], lab) for r in a])
    full_b = np.mean([_hm(r["test_decisions"], lab) for r in b])
    assert est == pytest.approx(full_a - full_b)
    # AUC the same way
    est, lo, hi = paired_bootstrap(
        "patient_auc", [arr(r) for r in a], [arr(r) for r in b], numpy_rng(2), n_boot, level
    )
    rng2 = numpy_rng(2)
    idx = np.concatenate(
        [rng2.choice(pos, size=(n_boot, len(pos))), rng2.choice(neg, size=(n_boot, len(neg)))], 1
    )
    diffs = [
        np.mean([_auc(r["test_scores"][row], lab[row]) for r in a])
        - np.mean([_auc(r["test_scores"][row], lab[row]) for r in b])
        for row in idx
    ]
    assert lo == pytest.approx(np.quantile(diffs, 0.05)) and hi == pytest.approx(np.quantile(diffs, 0.95))


def test_image_level_paired_accuracy_equals_a_loop():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60)

    def mk(p):
        return {
            "labels": y,
            "correct": (rng.random(60) < p).astype(np.uint8),
            "probs": rng.dirichlet([1, 1], 60),
        }

    a, b = [mk(0.8), mk(0.7)], [mk(0.6)]
    est, lo, hi = paired_bootstrap("image_accuracy", a, b, numpy_rng(4), 200, 0.95)
    rng2 = numpy_rng(4)
    idx = np.concatenate([rng2.choice(np.flatnonzero(y == c), size=(200, (y == c).sum())) for c in (1, 0)], 1)
    diffs = [np.mean([r["correct"][i].mean() for r in a]) - b[0]["correct"][i].mean() for i in idx]
    assert (lo, hi) == pytest.approx((np.quantile(diffs, 0.025), np.quantile(diffs, 0.975)))
    assert est == pytest.approx(np.mean([r["correct"].mean() for r in a]) - b[0]["correct"].mean())


def test_image_level_paired_auc_of_three_classes_is_scikit_learns_macro_one_vs_rest():
    """Each resample (classes drawn 2, 1, 0 in turn) scored by scikit-learn's macro one-vs-rest AUC."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 45)

    def mk(sharp):
        logits = rng.normal(size=(45, 3))
        logits[np.arange(45), y] += sharp
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return {"labels": y, "correct": (p.argmax(1) == y).astype(np.uint8), "probs": p}

    def auc(r, i):
        return roc_auc_score(y[i], r["probs"][i], multi_class="ovr", average="macro")

    a, b = [mk(1.5), mk(1.0)], [mk(0.3)]
    est, lo, hi = paired_bootstrap("image_auc", a, b, numpy_rng(5), 150, 0.9)
    draw = numpy_rng(5)
    idx = np.concatenate(
        [draw.choice(np.flatnonzero(y == c), size=(150, (y == c).sum())) for c in (2, 1, 0)], 1
    )
    diffs = [np.mean([auc(r, i) for r in a]) - auc(b[0], i) for i in idx]
    assert (lo, hi) == pytest.approx((np.quantile(diffs, 0.05), np.quantile(diffs, 0.95)))
    every = np.arange(45)
    assert est == pytest.approx(np.mean([auc(r, every) for r in a]) - auc(b[0], every))


def test_adding_a_method_leaves_other_rows_intervals_unchanged():
    rng = np.random.default_rng(5)
    labels = (np.arange(24) % 2).astype(np.int64)
    soft = _patient_records("soft", "replay", 3, labels, 0.4, rng)
    rand = _patient_records("random", "standard", 3, labels, 0.1, rng)
    hard = _patient_records("hard", "replay", 3, labels, 0.3, rng)
    before = summarise(soft + rand, SIZES, 10_000, seed=7, n_boot=200)
    after = summarise(hard + soft + rand, SIZES, 10_000, seed=7, n_boot=200)
    for method in ("soft", "random"):
        b = before[before.method == method].iloc[0]
        a = after[after.method == method].iloc[0]
        for col in ("patient_hm_ci_low", "patient_hm_ci_high", "patient_auc_ci_low", "patient_auc_ci_high"):
            assert a[col] == b[col], (method, col)
    s_b, s_a = before[before.method == "soft"].iloc[0], after[after.method == "soft"].iloc[0]
    for col in ("vs_random_patient_hm_diff", "vs_random_patient_hm_ci_low", "vs_random_patient_auc_ci_high"):
        assert s_a[col] == s_b[col]
    assert np.isfinite(s_a["vs_hard_patient_hm_diff"]) and "vs_hard_patient_hm_diff" not in before
    md = to_markdown(after)
    assert "### Paired differences" in md and "| soft − random | replay | convnet |" in md


def test_summary_without_patients_is_image_level_and_never_prints_nan():
    rng = np.random.default_rng(6)
    y = rng.integers(0, 3, 50)

    def rec(method, schedule, acc):
        correct = (rng.random(50) < acc).astype(np.uint8)
        return {
            "method": method,
            "schedule": schedule,
            "architecture": "convnet",
            "patch_accuracy": float(correct.mean()),
            "patch_balanced_accuracy": float(correct.mean()),
            "patch_auc": 0.7,
            "image_labels": y,
            "image_correct": correct,
            "image_probs": rng.dirichlet([1, 1, 1], 50).astype(np.float16),
        }

    recs = [rec("soft", "replay", 0.8), rec("random", "standard", 0.6), rec("full", "real", 0.9)]
    df = summarise(recs, SIZES, 10_000, seed=0, n_boot=100)
    soft = df[df.method == "soft"].iloc[0]
    assert np.isfinite(soft.image_accuracy_ci_low) and np.isfinite(soft.vs_random_image_auc_ci_high)
    md = to_markdown(df)
    assert "HM" not in md.split("###")[0] and "Accuracy [95% CI]" in md
    lines = target_lines(df)
    assert all("nan" not in line for line in lines)
    assert lines[0].startswith("soft balanced accuracy / full-data balanced accuracy")
    only_full = summarise([rec("full", "real", 0.9)], SIZES, 10_000, seed=0, n_boot=10)
    assert "not measured" in target_lines(only_full)[0]
    # both rows there, the full-data networks at 0: said as such, not "no ... row"
    zero_full = summarise(
        [rec("soft", "replay", 0.8), rec("full", "real", 0.0)], SIZES, 10_000, seed=0, n_boot=10
    )
    assert "no ratio (full-data balanced accuracy is 0; target >= 0.9: NOT met)" in target_lines(zero_full)[0]


def _patient_table(soft_auc: float, full_auc: float, diff: float, low: float) -> pd.DataFrame:
    rows = [
        {
            "method": "soft",
            "schedule": "replay",
            "patient_hm_mean": 0.70,
            "patient_auc_mean": soft_auc,
            "vs_random_patient_hm_diff": diff,
            "vs_random_patient_hm_ci_low": low,
            "vs_random_patient_hm_ci_high": diff + 0.1,
        },
        {"method": "hard", "schedule": "replay", "patient_hm_mean": 0.65, "patient_auc_mean": 0.8},
        {"method": "full", "schedule": "real", "patient_hm_mean": 0.75, "patient_auc_mean": full_auc},
        {"method": "random", "schedule": "standard", "patient_hm_mean": 0.58, "patient_auc_mean": 0.6},
    ]
    return pd.DataFrame([{**r, "architecture": "convnet", "cross_architecture": False} for r in rows])


@pytest.mark.parametrize(
    "soft_auc, full_auc, diff, low, verdicts",
    [
        (0.85, 0.90, 0.10, 0.001, ["met", "met", "met", "met", "met"]),
        (0.849, 0.899, 0.12, -0.01, ["met", "NOT met", "NOT met", "met", "NOT met"]),
        (0.90, 0.95, 0.099, 0.02, ["met", "met", "met", "met", "NOT met"]),
    ],
)
def test_target_lines_are_the_issues_targets(soft_auc, full_auc, diff, low, verdicts):
    """soft/full HM >= 0.9, soft AUC >= 0.85, full AUC >= 0.90, soft > hard, soft - random >= 0.10 with
    its paired interval above 0 (issue 9); each verdict flips at its own bound."""
    lines = target_lines(_patient_table(soft_auc, full_auc, diff, low))
    assert len(lines) == 5
    assert lines[0].startswith("soft HM / full-data HM = 0.700 / 0.750 = 0.933")
    assert lines[1].startswith(f"soft patient AUC = {soft_auc:.3f}")
    assert lines[2].startswith(f"full-data patient AUC = {full_auc:.3f}")
    assert lines[3].startswith("soft HM - hard HM = +0.050")
    assert lines[4].startswith(f"soft HM - random-subset HM = {diff:+.3f} [{low:+.3f}, {diff + 0.1:+.3f}]")
    assert "(hard - random HM = +0.070)" in lines[4]
    assert ["NOT met" if "NOT met" in line else "met" for line in lines] == verdicts


def test_every_target_has_a_line_when_the_soft_rows_are_missing():
    """reproduce.distill_modes=[hard]: each soft target says 'not measured' instead of vanishing."""
    df = _patient_table(0.9, 0.95, 0.2, 0.1)
    lines = target_lines(df[df.method != "soft"])
    assert len(lines) == 5
    assert [line.split(":")[0] for line in lines] == [
        "soft HM / full-data HM",
        "soft patient AUC",
        "full-data patient AUC = 0.950 (target >= 0.90",
        "soft HM - hard HM",
        "soft HM - random-subset HM",
    ]
    assert sum("not measured" in line for line in lines) == 4


def test_the_soft_above_hard_line_says_whether_its_interval_shows_it():
    """A tiny run printed "soft HM - hard HM = +0.500 (target > 0: met)" beside an interval of
    [+0.000, +0.842]; the line now gives the interval and says whether it shows the difference ("met; not
    shown" read as two verdicts to a newcomer: now "met by the mean only; ... not shown")."""
    df = _patient_table(0.9, 0.95, 0.2, 0.1)
    soft = df.method == "soft"
    df.loc[soft, "vs_hard_patient_hm_ci_low"], df.loc[soft, "vs_hard_patient_hm_ci_high"] = -0.02, 0.12
    line = target_lines(df)[3]
    assert line == (
        "soft HM - hard HM = +0.050 [-0.020, +0.120], paired over test units (target > 0: met by the mean "
        "only; the interval reaches 0, so the difference is not shown)"
    )
    df.loc[soft, "vs_hard_patient_hm_ci_low"] = 0.01
    assert target_lines(df)[3].endswith("(target > 0: met; shown: the interval is above 0)")
    # the mean below 0: NOT met says it all, with no word on the interval
    df.loc[df.method == "hard", "patient_hm_mean"] = 0.95
    df.loc[soft, "vs_hard_patient_hm_ci_low"] = -0.2
    assert target_lines(df)[3].endswith("paired over test units (target > 0: NOT met)")


def test_the_tables_paired_columns_are_the_documented_stream_and_a_plain_estimate():
    """Each paired difference draws from derive_seed(seed, 'bootstrap', row, 'minus', partner), not from
    the row's own stream; its estimate is the plain mean-over-networks difference on every test patient."""
    rng = np.random.default_rng(11)
    labels = (np.arange(20) % 2).astype(np.int64)
    soft = _patient_records("soft", "replay", 2, labels, 0.4, rng)
    rand = _patient_records("random", "standard", 3, labels, 0.1, rng)
    full = _patient_records("full", "real", 1, labels, 0.6, rng)
    df = summarise(soft + rand + full, SIZES, 10_000, seed=4, n_boot=150, level=0.9)
    row = df[df.method == "soft"].iloc[0]
    arr = lambda r: {"labels": r["test_labels"], "decisions": r["test_decisions"], "scores": r["test_scores"]}  # noqa: E731
    stream = numpy_rng(4, "bootstrap", "soft/replay/convnet", "minus", "random/standard/convnet")
    for kind in ("patient_hm", "patient_auc"):
        want = paired_bootstrap(kind, [arr(r) for r in soft], [arr(r) for r in rand], stream, 150, 0.9)
        got = tuple(row[f"vs_random_{kind}_{end}"] for end in ("diff", "ci_low", "ci_high"))
        assert got == pytest.approx(want, abs=1e-12), kind
    lab = labels.astype(bool)
    plain = np.mean([_hm(r["test_decisions"], lab) for r in soft]) - np.mean(
        [_hm(r["test_decisions"], lab) for r in rand]
    )
    assert row["vs_random_patient_hm_diff"] == pytest.approx(plain, abs=1e-12)
    # baselines are never paired as the first row: the full-data row carries no difference columns
    full_row = df[df.method == "full"].iloc[0]
    assert all(not np.isfinite(v) for c, v in full_row.items() if str(c).startswith("vs_"))
    assert "| full − " not in to_markdown(df)


def test_a_partner_without_the_same_arrays_is_not_paired():
    """A random-subset row scored on images (no per-patient arrays) beside a soft row on patients: the two
    statistics differ, so no soft − random difference is taken (and nothing fails)."""
    rng = np.random.default_rng(12)
    labels = (np.arange(12) % 2).astype(np.int64)
    soft = _patient_records("soft", "replay", 2, labels, 0.4, rng)
    rand = _patient_records("random", "standard", 2, labels, 0.1, rng)
    for r in rand:
        del r["test_labels"], r["test_decisions"], r["test_scores"]
        r.update(image_labels=labels, image_correct=np.ones(12, np.uint8), image_probs=np.eye(2)[labels])
    df = summarise(soft + rand, SIZES, 10_000, seed=0, n_boot=20)
    assert not any(c.startswith("vs_random_") for c in df.columns)
    assert np.isfinite(df[df.method == "soft"].iloc[0].patient_hm_ci_low)


@pytest.mark.parametrize(
    "soft, full, verdict",
    [(0.9, 1.0, "met"), (0.8999, 1.0, "NOT met")],
)
def test_the_soft_over_full_target_is_met_at_exactly_nine_tenths(soft, full, verdict):
    df = _patient_table(0.9, 0.95, 0.2, 0.1)
    df.loc[df.method == "soft", "patient_hm_mean"] = soft
    df.loc[df.method == "full", "patient_hm_mean"] = full
    assert target_lines(df)[0].endswith(f"(target >= 0.9: {verdict})")


def test_an_interval_that_touches_zero_shows_nothing():
    """'above 0' is strict: a paired interval whose low end is exactly 0 does not show a difference."""
    df = _patient_table(0.9, 0.95, 0.2, 0.0)
    soft = df.method == "soft"
    df.loc[soft, "vs_hard_patient_hm_ci_low"], df.loc[soft, "vs_hard_patient_hm_ci_high"] = 0.0, 0.12
    lines = target_lines(df)
    assert lines[3].endswith(
        "(target > 0: met by the mean only; the interval reaches 0, so the difference is not shown)"
    )
    assert lines[4].endswith("target >= 0.10 with the interval above 0: NOT met")


def test_image_level_soft_minus_random_must_be_above_zero():
    """Without patients the soft − random target is an image-AUC difference strictly above 0."""
    rows = [
        {"method": "soft", "schedule": "replay", "patch_balanced_accuracy_mean": 0.8},
        {"method": "random", "schedule": "standard", "patch_balanced_accuracy_mean": 0.7},
    ]
    df = pd.DataFrame([{**r, "architecture": "convnet"} for r in rows])
    soft = df.method == "soft"
    df.loc[soft, "vs_random_image_auc_ci_low"], df.loc[soft, "vs_random_image_auc_ci_high"] = 0.01, 0.2
    df.loc[soft, "vs_random_image_auc_diff"] = 0.0
    assert target_lines(df)[-1].endswith("target > 0 with the interval above 0: NOT met")
    df.loc[soft, "vs_random_image_auc_diff"] = 0.05
    assert target_lines(df)[-1].endswith("target > 0 with the interval above 0: met")


def _two_runs(tmp_path) -> list[str]:
    """Two finished runs of one recipe (seeds 0 and 1), as ``paired_over_runs`` arguments."""
    args = []
    for seed in (0, 1):
        write_run(tmp_path / f"seed{seed}", seed, config(run_seed=seed))
        args += ["--run-dir", str(tmp_path / f"seed{seed}")]
    return [*args, "--n-boot", "100"]


def test_paired_over_runs_writes_its_file_whole_for_a_reader_that_has_left(tmp_path, capsys) -> None:
    """``paired_over_runs ... --out pooled.md | head``, the reader gone before the table is printed (its end
    of the pipe closed before the command starts): ``--out`` holds the whole table, the exit status is 0
    and nothing is said (the table printed first ended the command with a traceback and no file)."""
    args = _two_runs(tmp_path)
    assert paired_over_runs.main([*args, "--out", str(tmp_path / "here.md")]) == 0
    table = capsys.readouterr().out
    assert "| soft/replay/convnet | random/standard/convnet | patient_hm |" in table
    out = tmp_path / "pooled.md"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "gastrodistill.cli.paired_over_runs", *args, "--out", str(out)],
            stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert out.read_text() == table


def test_paired_over_runs_prints_nothing_when_its_file_cannot_be_written(tmp_path, capsys, monkeypatch):
    """A full disk behind ``--out``: one line of error and no table, as for any refused input (the table
    was printed before the file was tried)."""
    args = _two_runs(tmp_path)

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(paired_over_runs, "write_text_atomic", full_disk)
    out = tmp_path / "pooled.md"
    assert paired_over_runs.main([*args, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert captured.err == f"error: --out {out}: cannot write (No space left on device)\n"
