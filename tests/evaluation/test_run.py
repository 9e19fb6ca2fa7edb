"""run_evaluation on a small in-memory patient data set: table, logs, plots, and the threshold's isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_sets import small_distilled

from gastrodistill.evaluation.fresh_training import train_replay
from gastrodistill.evaluation.run import build_context, evaluate_network, net_spec, run_evaluation
from gastrodistill.evaluation.study import Study
from gastrodistill.utils.seeding import torch_generator

SMALL = [
    "model.width=8",
    "model.depth=2",
    "eval.n_networks=2",
    "eval.architectures=[same,lenet]",
    "eval.baselines.n_networks_full=1",
    "eval.baselines.real.epochs=2",
    "eval.lr_grid=[0.01,0.03]",
    "eval.standard.epochs=20",
    "eval.bootstrap=100",
    "eval.progress=false",
    "eval.patient.threshold_fallback=cv",  # 4 + 4 validation patients: knowingly cross-validated
]


def test_results_table_equals_logged_numbers_and_outputs_exist(compose_cfg, patient_dm, tmp_path):
    cfg = compose_cfg(SMALL)
    dm = patient_dm
    sets = {"soft": small_distilled(dm, "soft"), "hard": small_distilled(dm, "hard", 1)}
    out = tmp_path / "eval"
    df = run_evaluation(cfg, dm, sets, out)
    # one row per method x schedule x architecture
    keys = set(zip(df.method, df.schedule, df.architecture, strict=True))
    assert keys == {
        (m, s, a) for m in ("soft", "hard") for s in ("replay", "standard") for a in ("convnet", "lenet")
    } | {
        ("full", "real", "convnet"),
        ("random", "standard", "convnet"),
        ("mean", "standard", "convnet"),
        ("random_soft", "standard", "convnet"),
    }
    table = pd.read_csv(out / "results.csv")
    assert len(table) == len(df)
    assert (table.n_networks == np.where(table.method == "full", 1, 2)).all()
    # compression: real patch bytes (uint8 + label byte) over each method's bytes
    n_train = len(dm.labels("train"))
    full_bytes = n_train * (12 * 12 + 1)
    soft = table[(table.method == "soft")].iloc[0]
    assert soft.bytes == (12 * 144 + 12 * 3 + 2 * 2) * 4  # 12 images, 12x3 logits, 4 lrs; float32
    assert soft.compression == pytest.approx(full_bytes / soft.bytes)
    assert table[table.method == "random"].n_images.iloc[0] == 12
    assert table[table.method == "random_soft"].n_images.iloc[0] == 12
    # paired differences: soft minus random / random_soft / hard, each with an interval
    for col in ("vs_random_patient_hm", "vs_random_soft_patient_auc", "vs_hard_patient_hm"):
        assert np.isfinite(soft[f"{col}_diff"]) and soft[f"{col}_ci_low"] <= soft[f"{col}_ci_high"]

    def row(method, schedule):
        pick = (table.method == method) & (table.schedule == schedule) & (table.architecture == "convnet")
        return table[pick].iloc[0]

    # on the same test patients the paired estimate is the difference of the rows' means
    replayed = row("soft", "replay")
    for col, other, metric in (
        ("vs_random_patient_hm", row("random", "standard"), "patient_hm_mean"),
        ("vs_random_soft_patient_auc", row("random_soft", "standard"), "patient_auc_mean"),
        ("vs_hard_patient_hm", row("hard", "replay"), "patient_hm_mean"),
    ):
        assert replayed[f"{col}_diff"] == pytest.approx(replayed[metric] - other[metric], abs=1e-9), col
    # every number logged through the CSV logger equals the table's
    logged = pd.read_csv(out.parent / "out" / "logs" / "csv" / "evaluation" / "metrics.csv")
    checked = 0
    for i, row in table.iterrows():
        rid = f"{row.method}/{row.schedule}/{row.architecture}"
        step = logged[logged.step == i]
        for col in (
            "patch_accuracy_mean",
            "patient_hm_mean",
            "patient_auc_std",
            "compression",
            "bytes",
            "patient_hm_ci_low",
        ):
            key = f"results/{rid}/{col}"
            if np.isfinite(row[col]):
                vals = step[key].dropna()
                assert len(vals) == 1 and vals.iloc[0] == pytest.approx(row[col], rel=1e-6), key
                checked += 1
    assert checked >= 5 * len(table)
    # per-network records agree with the table's means
    nets = pd.read_csv(out / "networks.csv")
    sel = nets[(nets.method == "soft") & (nets.schedule == "replay") & (nets.architecture == "convnet")]
    assert sel.patient_hm.mean() == pytest.approx(soft.patient_hm_mean)
    assert "patient" not in " ".join(c for c in nets.columns if not c.startswith("patient_"))
    for name in (
        "distilled_soft.png",
        "distilled_hard.png",
        "lr_schedule.png",
        "roc_curves.png",
        "roc_curves_all_architectures.png",
        "confusion_matrices.png",
    ):
        assert (out / "plots" / name).stat().st_size > 1000
    md = (out / "results.md").read_text()
    assert "| soft | replay | convnet |" in md and " ± " in md
    # no patient id anywhere in what the evaluation wrote
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in {".csv", ".md", ".json", ".yaml"}:
            assert "-P0" not in f.read_text(), f


def test_threshold_never_sees_test_patients(compose_cfg, patient_dm_factory):
    """Flipping every test diagnosis changes test metrics but not one threshold."""
    cfg = compose_cfg(SMALL + ["eval.threshold_source=val"])
    dm, flipped = patient_dm_factory(3), patient_dm_factory(3, flip_test_labels=True)
    ds = small_distilled(dm)
    ctx, ctx_flipped = build_context(cfg, dm), build_context(cfg, flipped)
    spec = net_spec(cfg, "same", dm)
    for i in range(3):
        net = train_replay(spec.build(torch_generator(i)), ds)
        a, b = evaluate_network(net, ctx), evaluate_network(net, ctx_flipped)
        assert a["threshold"] == b["threshold"]
        np.testing.assert_array_equal(a["test_decisions"], b["test_decisions"])
        np.testing.assert_array_equal(a["test_labels"], 1 - b["test_labels"])
        assert a["patient_specificity"] == pytest.approx(1 - b["patient_sensitivity"])


def test_bad_eval_config_is_a_clear_error(compose_cfg, patient_dm):
    with pytest.raises(ValueError, match="never 'test'"):
        build_context(compose_cfg(SMALL + ["eval.threshold_source=test"]), patient_dm)
    with pytest.raises(ValueError, match="conf/model/nonet.yaml"):
        net_spec(compose_cfg(SMALL), "nonet", patient_dm)
    study = Study(compose_cfg(SMALL + ["eval.schedules=[replay,sgd]"]), patient_dm, {})
    with pytest.raises(ValueError, match="eval.schedules entry 'sgd'"):
        study.run()
    study = Study(compose_cfg(SMALL + ["eval.baselines.architectures=[same,convnet]"]), patient_dm, {})
    with pytest.raises(ValueError, match="are both convnet"):
        study.run()


def test_data_the_evaluation_cannot_score_is_refused_from_labels_alone(compose_cfg, patient_dm_factory):
    """check_evaluation_data (which reproduce runs before distilling) reads labels and patient ids, not
    pixels: an empty validation or test split and a misspelt positive class are refused by it."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError
    from gastrodistill.evaluation.splits import check_evaluation_data

    def no_pixels(*args, **kwargs):
        raise AssertionError("pixels read")

    cfg = compose_cfg(SMALL)
    for patients, split in (((12, 0, 16), "val"), ((12, 8, 0), "test")):
        dm = patient_dm_factory(patients=patients)
        dm.dataset = dm.load_split = no_pixels
        with pytest.raises(EvaluationConfigError, match=f"the {split} split is empty"):
            check_evaluation_data(cfg, dm)
    dm = patient_dm_factory()
    dm.dataset = dm.load_split = no_pixels
    names = dm.class_names
    assert check_evaluation_data(cfg, dm) == (names.index("gastritis"), names.index("irrelevant"))
    with pytest.raises(EvaluationConfigError, match="'gastritiss' is not a class of the data"):
        check_evaluation_data(compose_cfg(SMALL + ["eval.patient.positive_class=gastritiss"]), dm)


def test_a_network_whose_outputs_overflow_is_scored_as_one_that_learned_nothing(compose_cfg, patient_dm):
    """Finite weights, non-finite logits (a steep learned schedule): the evaluate stage had scored the NaN
    probabilities as they came; now such a network's record is that of a network that learned nothing
    (uniform probabilities), marked diverged, as a receiving site scores it."""
    import copy

    from gastrodistill.evaluation.fresh_training import learned_nothing
    from gastrodistill.evaluation.scoring import score_networks

    cfg = compose_cfg(SMALL)
    ds = small_distilled(patient_dm)
    ctx = build_context(cfg, patient_dm)
    net = train_replay(net_spec(cfg, "same", patient_dm).build(torch_generator(0)), ds)
    overflowing = copy.deepcopy(net)
    with torch.no_grad():
        last = [m for m in overflowing.modules() if isinstance(m, torch.nn.Linear)][-1]
        last.weight.fill_(3e38)  # finite weights; every logit +inf, so softmax NaN
    assert all(torch.isfinite(p).all() for p in overflowing.parameters())
    good, bad = score_networks([net, overflowing], ctx)
    nothing = evaluate_network(learned_nothing(copy.deepcopy(net)), ctx)
    assert bad.pop("diverged") is True and "diverged" not in good and "diverged" not in nothing
    assert bad.keys() == nothing.keys()
    for key, value in nothing.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(bad[key], value, err_msg=key)
        elif isinstance(value, float) and np.isnan(value):
            assert np.isnan(bad[key]), key
        else:
            assert bad[key] == value, key
    assert np.isfinite(good["patch_accuracy"])


def test_fresh_networks_learn_from_the_distilled_set(compose_cfg, patient_dm):
    """Replay of real-init images beats chance; differently seeded networks differ."""
    cfg = compose_cfg(SMALL)
    ds = small_distilled(patient_dm)
    spec = net_spec(cfg, "same", patient_dm)
    ctx = build_context(cfg, patient_dm)
    accs = [
        evaluate_network(train_replay(spec.build(torch_generator(i)), ds), ctx)["patch_accuracy"]
        for i in range(3)
    ]
    assert np.mean(accs) > 0.45
    n0, n1 = spec.build(torch_generator(0)), spec.build(torch_generator(1))
    assert not torch.equal(next(n0.parameters()), next(n1.parameters()))
