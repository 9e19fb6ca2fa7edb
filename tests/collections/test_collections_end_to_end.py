"""npz and folder collections through distillation, evaluation and the artifact, unchanged (issue 6).

Small on purpose (a few outer steps, one fresh network): these check that the stages accept any
number of classes, any channel count and data without patients, not how good the result is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.run import run_distillation
from gastrodistill.evaluation.run import run_evaluation

SMALL = [
    "distill=soft_cpu",
    "distill.outer_steps=2",
    "distill.steps=2",
    "distill.epochs=1",
    "distill.ipc=1",
    "distill.batch_real=32",
    "distill.grid_every=0",
    "distill.ckpt_every=0",
    "model.width=8",
    "model.depth=2",
    "trainer.enable_progress_bar=false",
    "eval.n_networks=1",
    "eval.architectures=[same]",
    "eval.schedules=[replay,standard]",
    "eval.lr_grid=[0.01]",
    "eval.standard.epochs=3",
    "eval.baselines.methods=[random]",
    "eval.bootstrap=10",
    "eval.progress=false",
]


def _image_level_checks(df: pd.DataFrame, out, test_labels: np.ndarray) -> None:
    """Accuracy, balanced accuracy and macro F1 of every row equal scikit-learn's on each of its networks'
    recorded test predictions, averaged; the patient-level part skipped, not failed."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    from gastrodistill.evaluation.report import load_record, record_path

    nets = pd.read_csv(out / "networks.csv")
    for row in df.itertuples():
        jobs = nets.job[nets.job.str.startswith(f"{row.method}__{row.schedule}__same__")]
        assert len(jobs) == row.n_networks > 0, (row.method, row.schedule)
        preds = [load_record(record_path(out, j))["image_probs"].argmax(1) for j in jobs]
        assert all(len(p) == len(test_labels) for p in preds)
        expected = {
            "patch_accuracy_mean": np.mean([accuracy_score(test_labels, p) for p in preds]),
            "patch_balanced_accuracy_mean": np.mean([balanced_accuracy_score(test_labels, p) for p in preds]),
            "patch_macro_f1_mean": np.mean(
                [f1_score(test_labels, p, average="macro", labels=np.unique(test_labels)) for p in preds]
            ),
        }
        for col, value in expected.items():
            assert getattr(row, col) == pytest.approx(value, abs=1e-6), (row.method, row.schedule, col)
    patient_cols = [c for c in df.columns if c.startswith("patient_") or c.startswith("threshold")]
    assert all(df[c].isna().all() for c in patient_cols)  # no patient ids -> no patient numbers
    assert not (out / "plots" / "roc_curves.png").exists()
    assert (out / "plots" / "confusion_matrices.png").is_file()
    assert (out / "results.csv").is_file() and (out / "results.md").is_file()


def test_npz_rgb_two_classes_distil_and_evaluate(compose_cfg, make_npz, tmp_path):
    path = make_npz(k=2, channels=3, size=12, counts=(40, 12, 23), class_names=np.array(["normal", "tumour"]))
    cfg = compose_cfg(["data=npz", f"data.path={path}", "data.batch_size=16", *SMALL])
    dm = instantiate(cfg.data)
    ds = run_distillation(cfg, dm, tmp_path / "distill")
    assert ds.num_classes == 2 and ds.mode == "soft"
    assert tuple(ds.images.shape) == (2 * 2 * 1, 3, 12, 12)
    assert tuple(ds.label_logits.shape) == (4, 2)
    loaded = DistilledSet.load(tmp_path / "distill" / "soft")
    assert loaded.class_names == ["normal", "tumour"] and loaded.num_classes == 2

    out = tmp_path / "eval"
    df = run_evaluation(cfg, dm, {"soft": ds}, out)
    assert set(zip(df.method, df.schedule, strict=True)) == {
        ("soft", "replay"),
        ("soft", "standard"),
        ("random", "standard"),
    }
    assert {"recall_normal_mean", "recall_tumour_mean"} <= set(df.columns)
    _image_level_checks(df, out, np.load(path)["test_labels"])


def test_results_report_image_level_auc(compose_cfg, make_npz, tmp_path):
    path = make_npz(k=2, channels=1, size=8, counts=(20, 8, 10))
    cfg = compose_cfg(
        ["data=npz", f"data.path={path}", *SMALL, "eval.schedules=[replay]", "eval.baselines.methods=[]"]
    )
    dm = instantiate(cfg.data)
    dm.setup()
    ds = DistilledSet(2, 1, 2, 1, dm.image_shape, class_names=dm.class_names, mean=dm.mean, std=dm.std)
    df = run_evaluation(cfg, dm, {"soft": ds}, tmp_path / "eval")
    auc = [
        c for c in df.columns if "auc" in c.lower() and not c.startswith("patient_") and c.endswith("_mean")
    ]
    assert auc == ["patch_auc_mean"] and np.isfinite(df[auc[0]]).all()


def test_folder_grayscale_three_classes_hard_labels_and_artifact(compose_cfg, make_folder, tmp_path):
    from gastrodistill.sharing.artifact import load_artifact
    from gastrodistill.sharing.publish import publish_artifact

    root = make_folder(classes=("cyst", "normal", "stone"), n=12, channels=1, size=10)
    cfg = compose_cfg(
        ["data=folder", f"data.root={root}", "data.balanced_sampler=true", *SMALL, "distill.mode=hard"]
        + ["eval.schedules=[replay]", "eval.baselines.methods=[mean]"]
    )
    dm = instantiate(cfg.data)
    ds = run_distillation(cfg, dm, tmp_path / "distill")
    assert ds.mode == "hard" and ds.num_classes == 3 and tuple(ds.images.shape[1:]) == (1, 10, 10)
    assert ds.hard_labels().tolist() == [0, 1, 2, 0, 1, 2]

    out = tmp_path / "eval"
    df = run_evaluation(cfg, dm, {"hard": ds}, out)
    assert {"recall_cyst_mean", "recall_normal_mean", "recall_stone_mean"} <= set(df.columns)
    _image_level_checks(df, out, dm.labels("test"))

    art = publish_artifact(cfg, dm, "hard", ds, tmp_path / "artifact", archive=False)
    loaded, card = load_artifact(art)
    assert card["class_names"] == ["cyst", "normal", "stone"] and loaded.num_classes == 3
    text = json.dumps(card)
    assert str(root) not in text and str(tmp_path) not in text
    assert card["source_hash"] == dm.source_hash()


@pytest.mark.slow
def test_npz_anonymity_audit_without_patients(compose_cfg, make_npz, tmp_path):
    """The audit's nearest-patch, membership and artifact checks on data with no patient ids."""
    from gastrodistill.anonymity.audit import run_audit

    path = make_npz(k=2, channels=3, size=12, counts=(40, 12, 20))
    cfg = compose_cfg(
        ["data=npz", f"data.path={path}", *SMALL]
        + ["eval.baselines.real.epochs=1", "audit.membership.n_networks=1", "audit.nearest.reference_size=32"]
    )
    dm = instantiate(cfg.data)
    ds = run_distillation(cfg, dm, tmp_path / "distill")
    report = run_audit(cfg, dm, {"soft": ds}, tmp_path / "audit")
    soft = report["soft"]
    assert soft["artifact_leaks"] == 0
    for key in ("ncc_nearest_max", "ncc_ref_p95", "mia_loss_auc"):
        assert np.isfinite(soft[key]), key


def test_reproduce_refuses_a_misspelt_positive_class_before_distilling(compose_cfg, make_npz):
    """The class names of npz data come from the file, so the config check before the run cannot know
    them; once the data are read, a near-miss positive class stops the study before any outer step."""
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    path = make_npz(k=2, size=12, counts=(40, 12, 20), class_names=np.array(["normal", "tumour"]))
    overrides = ["data=npz", f"data.path={path}", *SMALL, "stages=[distill,evaluate]"]
    pipe = Pipeline(compose_cfg([*overrides, "eval.patient.positive_class=tumor"]))
    with pytest.raises(EvaluationConfigError, match="positive_class = 'tumor' .* did you mean 'tumour'"):
        pipe.run()
    assert not (pipe.out / "distill").exists() and not (pipe.out / "logs").exists()


def _rare_class_npz(make_npz) -> Path:
    """Two classes, the second with 3 training images (40 in all)."""
    train = np.array([0] * 37 + [1] * 3, dtype=np.uint8).reshape(-1, 1)
    return make_npz(k=2, size=12, counts=(40, 12, 20), train_labels=train)


def test_reproduce_refuses_a_random_subset_larger_than_a_class_before_distilling(compose_cfg, make_npz):
    """A class with fewer training images than the random-subset baseline draws (the distilled set's
    ipc x steps) failed with the draw's traceback after the distillation and the full-data network (a
    newcomer's 5-image class at the cpu preset); it is refused before the first outer step, naming the
    class, its count and the keys. Within the counts the same run is not refused."""
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    overrides = ["data=npz", f"data.path={_rare_class_npz(make_npz)}", *SMALL, "stages=[distill,evaluate]"]
    pipe = Pipeline(compose_cfg([*overrides, "distill.ipc=2"]))  # 2 x 2 steps = 4 > 3
    with pytest.raises(EvaluationConfigError) as info:
        pipe.run()
    assert str(info.value).startswith(
        "the random-subset baselines draw 4 training images of each class (the distilled set's images per "
        "class, or eval.baselines.n_per_class), more than these classes have: '1' (3); set "
        "eval.baselines.n_per_class to at most the smallest count, lower distill.ipc or distill.steps"
    )
    assert not (pipe.out / "distill").exists() and not (pipe.out / "logs").exists()
    ok = Pipeline(compose_cfg([*overrides, "distill.ipc=2", "eval.baselines.n_per_class=3"]))
    ok.check_random_subsets(["distill", "evaluate"])  # the keys the message names: not refused


def test_the_evaluation_refuses_a_random_subset_larger_than_a_class_before_training(
    compose_cfg, make_npz, tmp_path
):
    """``gastrodistill-evaluate eval.baselines.n_per_class=10`` on such data trained the full-data network
    first, then failed with a traceback naming the first short class only."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    path = _rare_class_npz(make_npz)
    cfg = compose_cfg(["data=npz", f"data.path={path}", *SMALL, "eval.baselines.n_per_class=10"])
    dm = instantiate(cfg.data)
    dm.setup()
    with pytest.raises(EvaluationConfigError, match=r"draw 10 training images .* have: '1' \(3\); set"):
        run_evaluation(cfg, dm, {}, tmp_path / "eval")
    assert not (tmp_path / "eval" / "records").exists()  # no network trained


def test_a_real_image_start_larger_than_a_class_is_refused_naming_it(compose_cfg, make_npz, tmp_path):
    """``distill.image_init=real`` with ipc x steps above a class's training images ended in the draw's
    ValueError traceback."""
    from gastrodistill.data.collections import NpzDataModule
    from gastrodistill.distillation.errors import DistillConfigError
    from gastrodistill.distillation.run import build_distilled_set

    dm = NpzDataModule(_rare_class_npz(make_npz), storage_size=None)
    dm.setup()
    assert dm.classes_short_of(4) == ["'1' (3)"] and dm.classes_short_of(3) == []
    cfg = compose_cfg(
        ["data=npz", "data.path=unused.npz", *SMALL, "distill.ipc=2", "distill.image_init=real"]
    )
    with pytest.raises(
        DistillConfigError, match=r"takes distill.ipc x distill.steps = 4 .* '1' \(3\); lower"
    ):
        build_distilled_set(cfg.distill, dm, "soft", 0)
    cfg = compose_cfg(["data=npz", "data.path=unused.npz", *SMALL, "distill.image_init=real"])  # 1 x 2 = 2
    assert build_distilled_set(cfg.distill, dm, "soft", 0).images.shape[0] == 2 * 2


def test_a_class_mean_start_of_a_class_with_few_images_is_warned_about(compose_cfg, make_npz, caplog):
    """A class with one training image gave a class-mean start that was that image, without a word (the
    audit flagged it afterwards: NCC 0.93-0.95, a newcomer's finding). Classes of 5 images or more: silent."""
    import logging

    from gastrodistill.data.collections import NpzDataModule
    from gastrodistill.distillation.run import build_distilled_set

    dm = NpzDataModule(_rare_class_npz(make_npz), storage_size=None)
    dm.setup()
    cfg = compose_cfg(["data=npz", "data.path=unused.npz", *SMALL, "distill.image_init=class_mean"])
    with caplog.at_level(logging.WARNING, logger="gastrodistill.distillation.run"):
        build_distilled_set(cfg.distill, dm, "soft", 0)
    assert (
        "class-mean start: '1' (3) has fewer than 5 training images, so its mean is close to a copy"
        in caplog.text
    )
    assert "'0'" not in caplog.text  # 37 images: no warning
