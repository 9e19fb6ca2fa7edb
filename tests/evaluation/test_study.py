"""The study's own rules, checked without training where possible: what each network trains on and is
seeded by, what its record and ``networks.csv`` hold, the sizes behind the compression column, and the
memory budget of the training split."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from _eval_sets import small_distilled
from omegaconf import OmegaConf
from torch.nn.utils import parameters_to_vector

from gastrodistill.evaluation import report, study
from gastrodistill.evaluation.baselines import distilled_bytes
from gastrodistill.evaluation.jobs import EvaluationConfigError, Job
from gastrodistill.evaluation.study import Study, ensemble_mode, random_per_class

SMALL = [
    "model.width=8",
    "model.depth=2",
    "eval.n_networks=2",
    "eval.architectures=[same]",
    "eval.baselines.n_networks_full=1",
    "eval.lr_grid=[0.01]",
    "eval.standard.epochs=2",
    "eval.progress=false",
    "eval.patient.threshold_fallback=cv",  # 4 + 4 validation patients: knowingly cross-validated
    "eval.ensemble=false",
]


def test_eval_ensemble_is_auto_on_cuda_only_true_or_false_and_nothing_else():
    """Kills ``auto`` read as always true and an unknown word read as false."""
    assert ensemble_mode("auto", torch.device("cpu")) is False
    assert ensemble_mode("AUTO", torch.device("cuda")) is True
    assert ensemble_mode("True", "cpu") is True and ensemble_mode(False, "cuda") is False
    assert ensemble_mode("false", "cuda") is False
    with pytest.raises(EvaluationConfigError, match="eval.ensemble = 'yes'; use auto, true or false"):
        ensemble_mode("yes", "cpu")


def test_the_random_subsets_size_is_the_given_one_else_the_first_sets_per_class_and_at_least_1():
    """Images per class of ``random``/``random_soft``: ``eval.baselines.n_per_class`` when given, else the
    first set's images // classes, never 0 (kills the last set in place of the first, and no floor)."""

    def images(n):
        return SimpleNamespace(images=torch.zeros(n, 1, 2, 2))

    ev = OmegaConf.create({"baselines": {"n_per_class": None}})
    assert random_per_class(ev, {"a": images(2), "b": images(12)}, 3) == 1  # 2 // 3 = 0 -> 1
    assert random_per_class(ev, {"b": images(12), "a": images(2)}, 3) == 4
    assert random_per_class(OmegaConf.create({"baselines": {"n_per_class": 5}}), {"b": images(12)}, 3) == 5
    with pytest.raises(EvaluationConfigError, match="eval.baselines.n_per_class is needed"):
        random_per_class(ev, {}, 3)


@pytest.mark.parametrize(("patients", "patches", "in_memory"), [(64, 16, True), (41, 25, False)])
def test_the_training_split_is_held_in_memory_up_to_eval_max_in_memory_mb_as_float32(
    compose_cfg, patient_dm_factory, patients, patches, in_memory
):
    """1024 patches of 16 x 16 float32 are exactly 1 MiB: held with ``eval.max_in_memory_mb=1``; 1025 are
    over it and stream (kills > read as >=, and 1 byte per pixel in place of 4)."""
    dm = patient_dm_factory(patients=(patients, 8, 8), patches=patches, size=16)
    s = Study(compose_cfg([*SMALL, "eval.max_in_memory_mb=1"]), dm, {}, None, progress=False)
    held = s.train_tensors()
    assert (held is not None) is in_memory
    if in_memory:
        x, y = dm.load_split("train")
        torch.testing.assert_close(held[0], x, rtol=0, atol=0)
        assert torch.equal(held[1], y)


def test_streamed_class_means_are_the_unaugmented_training_splits_class_means(compose_cfg, patient_dm):
    """The ``mean`` baseline streamed (the split over ``eval.max_in_memory_mb``) averages the normalised
    training images as stored, never augmented: numpy's per-class means of the split (kills augment=True)."""
    patient_dm.augment = lambda image: {"image": 1.0 - image}  # what an augmented draw would look like
    s = Study(compose_cfg([*SMALL, "eval.max_in_memory_mb=0"]), patient_dm, {}, None, progress=False)
    assert s.train_tensors() is None
    means, labels = s.mean_images()
    x, y = (t.numpy() for t in patient_dm.load_split("train"))
    expected = np.stack([x[y == k].astype(np.float64).mean(0) for k in range(3)])
    np.testing.assert_allclose(means.numpy(), expected, rtol=1e-5, atol=1e-5)
    assert labels.tolist() == [0, 1, 2]


def test_each_random_subset_network_trains_on_its_own_draw(compose_cfg, patient_dm):
    """A fresh random subset per network (docs/evaluation.md): network 1's differs from network 0's, each
    is the same on a second call, with ``n_per_class`` images of each class (kills one draw for all)."""
    s = Study(compose_cfg([*SMALL, "+eval.baselines.n_per_class=3"]), patient_dm, {}, None, progress=False)
    (x0, y0), (x1, y1) = s.small_set("random", 0), s.small_set("random", 1)
    again, _ = s.small_set("random", 0)
    assert torch.equal(x0, again) and not torch.equal(x0, x1)
    assert np.bincount(y0.numpy()).tolist() == np.bincount(y1.numpy()).tolist() == [3, 3, 3]


def test_the_teacher_labels_with_the_reference_network_in_eval_mode(compose_cfg, patient_dm):
    """Dropout or batch statistics must not move the ``random_soft`` labels (kills the missing .eval())."""
    s = Study(compose_cfg(SMALL), patient_dm, {}, None, progress=False)
    s.reference_net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(144, 3))
    assert s.reference_net.training
    assert s.teacher() is s.reference_net and not s.teacher().training


@pytest.fixture
def full_data_calls(monkeypatch):
    """``train_full_data`` replaced by a recorder that trains nothing (best epoch 3 + the network index)."""
    calls = []

    def fake(net, train, train_labels, val_data, recipe, num_classes, seed_parts, **kw):
        calls.append(SimpleNamespace(net=net, val=val_data, labels=train_labels, seed_parts=seed_parts))
        return net, {"best_epoch": 3 + int(seed_parts[-1]), "val_score": 0.5}

    monkeypatch.setattr(study, "train_full_data", fake)
    return calls


def test_full_data_networks_select_on_validation_seeded_by_seed_and_job(
    compose_cfg, patient_dm, full_data_calls, tmp_path
):
    """The full-data recipe's early stopping sees the validation split, never test (kills ctx.test), its
    batches are seeded by (seed, 'eval', 'full', 'real', arch, index) (kills seed 0 and 'same' for every
    architecture), and only job full__real__same__0 becomes the reference network (kills any network 0)."""
    cfg = compose_cfg([*SMALL, "seed=7", "eval.baselines.architectures=[same,lenet]"])
    (tmp_path / "eval").mkdir()
    s = Study(cfg, patient_dm, {}, tmp_path / "eval", progress=False)
    jobs = [Job("full", "real", "lenet", 0), Job("full", "real", "lenet", 1)]
    nets, extra = s.train_setting(("full", "real", "lenet"), jobs)
    assert extra == {"per_net": [{"best_epoch": 3}, {"best_epoch": 4}]}
    seeds = [c.seed_parts for c in full_data_calls]
    assert seeds == [(7, "eval", "full", "real", "lenet", i) for i in (0, 1)]
    val_x, val_y = patient_dm.load_split("val")
    for call in full_data_calls:
        assert torch.equal(call.val.tensors[0], val_x) and torch.equal(call.val.tensors[1], val_y)
        np.testing.assert_array_equal(call.labels, patient_dm.labels("train"))
    assert s.reference_net is None and not (tmp_path / "eval" / Study.REFERENCE_FILE).exists()
    nets, _ = s.train_setting(("full", "real", "same"), [Study.REFERENCE_JOB])
    assert s.reference_net is nets[0] and (tmp_path / "eval" / Study.REFERENCE_FILE).is_file()
    assert (tmp_path / "eval" / Study.REFERENCE_SETTINGS).is_file()


def test_a_record_names_its_job_network_index_architecture_and_what_training_chose(
    compose_cfg, patient_dm, tmp_path, monkeypatch
):
    """Networks 1 and 3 of a setting are recorded as networks 1 and 3 of the architecture's name (not
    'same'), with the setting's learning rate or each full-data network's best epoch, and saved (kills
    the position as index, the key as name, and the lr or best epoch left out)."""
    s = Study(compose_cfg([*SMALL, "eval.baselines.architectures=[same,lenet]"]), patient_dm, {}, tmp_path)
    jobs = [Job("mean", "standard", "same", 1), Job("mean", "standard", "same", 3)]
    built = lambda setting, jobs: ([s.build(j)[0] for j in jobs], {"lr": 0.03})  # noqa: E731
    monkeypatch.setattr(s, "train_setting", built)
    recs = s.run_setting(("mean", "standard", "same"), jobs)
    assert [(r["job"], r["network"], r["architecture"], r["lr"]) for r in recs] == [
        ("mean__standard__same__1", 1, "convnet", 0.03),
        ("mean__standard__same__3", 3, "convnet", 0.03),
    ]
    assert "diverged" not in recs[0] and "best_epoch" not in recs[0]
    monkeypatch.undo()  # the study's own train_setting again, with a full-data recipe that trains nothing
    monkeypatch.setattr(study, "train_full_data", lambda net, *a, **k: (net, {"best_epoch": 3 + a[-1][-1]}))
    full = s.run_setting(("full", "real", "lenet"), [Job("full", "real", "lenet", 2)])
    assert full[0]["best_epoch"] == 5 and full[0]["architecture"] == "lenet" and "lr" not in full[0]
    saved = report.load_record(report.record_path(tmp_path, "full__real__lenet__2"))
    assert {k: saved[k] for k in ("job", "method", "schedule", "architecture", "network", "best_epoch")} == {
        k: full[0][k] for k in ("job", "method", "schedule", "architecture", "network", "best_epoch")
    }


def test_networks_csv_is_rewritten_after_every_setting_with_the_earlier_runs_networks_once(
    compose_cfg, patient_dm, tmp_path, monkeypatch
):
    """A run stopped in its second setting leaves networks.csv with the first setting's networks and the
    earlier run's, a network trained again listed once (kills the write after the last setting only,
    the earlier records left out, and an earlier record of a job being trained again kept)."""
    cfg = compose_cfg([*SMALL, "+eval.baselines.n_per_class=3"])
    for key in ("full__real__same__0", "mean__standard__same__0"):
        method, schedule, arch, i = key.split("__")
        report.save_record(tmp_path, {"job": key, "method": method, "network": int(i), "patient_hm": 0.25})

    def fake(self, setting, jobs):
        if setting[0] == "random":
            raise RuntimeError("stopped")
        recs = [{"job": j.key, "method": j.method, "network": j.index, "patient_hm": 0.75} for j in jobs]
        self.records += recs
        return recs

    monkeypatch.setattr(Study, "run_setting", fake)
    s = Study(cfg, patient_dm, {}, tmp_path, progress=False)
    jobs = [Job("mean", "standard", "same", i) for i in (0, 1)] + [Job("random", "standard", "same", 0)]
    with pytest.raises(RuntimeError, match="stopped"):
        s.run(jobs)
    table = pd.read_csv(tmp_path / report.NETWORKS_CSV)
    assert table.job.tolist() == ["full__real__same__0", "mean__standard__same__0", "mean__standard__same__1"]
    assert table.patient_hm.tolist() == [0.25, 0.75, 0.75]


def test_jobs_of_an_unknown_method_or_a_random_soft_subset_larger_than_a_class_are_refused(
    compose_cfg, patient_dm
):
    """Checked before anything trains, ``random_soft`` alone as ``random`` (kills the check of 'random'
    only and the dropped method check)."""
    s = Study(compose_cfg([*SMALL, "+eval.baselines.n_per_class=100"]), patient_dm, {}, None, progress=False)
    with pytest.raises(EvaluationConfigError, match="draw 100 training images of each class"):
        s.check_jobs([Job("random_soft", "standard", "same", 0)])
    s.check_jobs([Job("mean", "standard", "same", 0)])
    with pytest.raises(EvaluationConfigError, match="'nope' is neither a distilled set nor a baseline"):
        s.check_jobs([Job("nope", "standard", "same", 0)])


def test_the_sizes_behind_the_compression_column_by_hand(compose_cfg, patient_dm):
    """Per method, images and bytes (docs/evaluation.md): real patches at eval.real_bytes_per_pixel plus a
    label byte, a set's float32 tensors, random_soft's pixels plus K float32 labels per image, the class
    means in float32 plus a label byte; with random_soft listed without random (kills each changed term)."""
    cfg = compose_cfg(
        [*SMALL, "eval.baselines.methods=[full,random_soft,mean]", "eval.real_bytes_per_pixel=2"]
        + ["+eval.baselines.n_per_class=3"]
    )
    ds = small_distilled(patient_dm)
    sizes = Study(cfg, patient_dm, {"soft": ds}, None, progress=False).sizes()
    n_train, pixels, k = 12 * 10, 12 * 12, 3  # 12 training patients of 10 patches, 12 x 12 px, 3 classes
    assert len(patient_dm.labels("train")) == n_train
    assert sizes == {
        "full": {"n_images": n_train, "bytes": n_train * (pixels * 2 + 1)},
        "soft": {"n_images": 12, "bytes": (12 * pixels + 12 * k + 4) * 4},
        "random": {"n_images": 9, "bytes": 9 * (pixels * 2 + 1)},
        "random_soft": {"n_images": 9, "bytes": 9 * (pixels * 2 + 4 * k)},
        "mean": {"n_images": k, "bytes": k * (pixels * 4 + 1)},
    }
    assert sizes["soft"]["bytes"] == distilled_bytes(ds)


def _shapes(net) -> list[tuple[int, ...]]:
    return [tuple(p.shape) for p in net.parameters()]


def test_the_baselines_same_networks_are_the_first_sets_recorded_architecture(compose_cfg, patient_dm):
    """A set distilled with another network than ``model.*`` (width 16 here, 12 for the second set): the
    baselines' ``same`` networks are built as the first set's (docs: one table, one network), the
    architecture their records' settings name; a first set of ``model.*`` keeps ``model.*`` (kills the
    last set in place of the first, and a baseline without an owner set built from ``model.*``)."""
    from gastrodistill.evaluation.run import net_spec
    from gastrodistill.evaluation.study import baseline_model
    from gastrodistill.utils.privacy import public_config

    cfg = compose_cfg(SMALL)
    sets = {}
    for name, width in (("w16", 16), ("w12", 12), ("w8", 8)):
        sets[name] = small_distilled(patient_dm)
        sets[name].model_config = {**public_config(cfg.model), "width": width}
    assert baseline_model(cfg, {k: sets[k] for k in ("w16", "w12")})["width"] == 16
    assert baseline_model(cfg, {k: sets[k] for k in ("w12", "w16")})["width"] == 12
    assert baseline_model(cfg, {k: sets[k] for k in ("w8", "w16")}) is None  # the first is model.*
    s = Study(cfg, patient_dm, {k: sets[k] for k in ("w16", "w12")}, None, progress=False)
    assert s.owner("mean") == "w16" and s.owner("w12") == "w12"
    wide = net_spec(compose_cfg([*SMALL, "model.width=16"]), "same", patient_dm).build(torch.Generator())
    narrow = net_spec(cfg, "same", patient_dm).build(torch.Generator())
    assert _shapes(wide) != _shapes(narrow)
    for method in ("mean", "random", "full", "w16"):
        assert _shapes(s.spec("same", method).build(torch.Generator())) == _shapes(wide), method
    baseline, _ = s.build(Job("mean", "standard", "same", 0))
    assert _shapes(baseline) == _shapes(wide)


def test_an_ensemble_that_diverges_is_trained_again_one_by_one_from_each_networks_own_seeds(
    compose_cfg, patient_dm
):
    """The ensemble wrote its weights back before a non-finite weight was found: the loop then starts from
    freshly built networks, not from the ensemble's partly trained ones (kills the networks not rebuilt)."""
    s = Study(compose_cfg(SMALL), patient_dm, {}, None, progress=False)
    jobs = [Job("mean", "standard", "same", i) for i in range(3)]

    def together(nets, gens):
        with torch.no_grad():
            for net in nets:
                for p in net.parameters():
                    p.add_(1.0)
            next(nets[1].parameters()).fill_(float("nan"))
        return nets

    started = []

    def one(k, net, g):
        started.append(parameters_to_vector(net.parameters()).detach())
        return net

    trained = s.train_each(jobs, one, together)
    assert len(trained) == 3 and len(started) == 3
    for job, weights in zip(jobs, started, strict=True):
        torch.testing.assert_close(
            weights, parameters_to_vector(s.build(job)[0].parameters()).detach(), rtol=0, atol=0
        )


def test_the_saved_reference_is_dropped_with_its_settings_when_retrained_or_stale_and_kept_otherwise(
    compose_cfg, patient_dm, tmp_path
):
    """``reference.safetensors`` and its settings file go together when the reference job is to be trained
    again or the file was trained with other settings; a current one not retrained stays (kills `and` for
    `or`, and the settings file left behind)."""
    weights, settings = tmp_path / Study.REFERENCE_FILE, tmp_path / Study.REFERENCE_SETTINGS

    def saved(overrides):
        s = Study(compose_cfg([*SMALL, *overrides]), patient_dm, {}, tmp_path, progress=False)
        s.save_reference(s.spec("same").build(torch.Generator()))
        return s

    s = saved([])
    s.drop_stale_reference(retrain=False)
    assert weights.is_file() and settings.is_file() and s.reference_is_current()
    s.drop_stale_reference(retrain=True)
    assert not weights.exists() and not settings.exists()
    saved(["eval.baselines.real.epochs=3"])
    other = Study(compose_cfg(SMALL), patient_dm, {}, tmp_path, progress=False)
    assert not other.reference_is_current()
    other.drop_stale_reference(retrain=False)
    assert not weights.exists() and not settings.exists()


@pytest.mark.parametrize(
    ("setting", "extra"),
    [
        (("random", "standard", "same"), ["eval.lr_grid=[0.01,0.05]"]),  # network 0 from the lr selection
        (("random", "standard", "same"), ["eval.ensemble=true"]),  # the networks trained together
        (("full", "real", "same"), ["eval.baselines.real.epochs=1"]),
        (("soft", "replay", "same"), []),
    ],
)
def test_each_network_is_reported_as_trained_before_its_setting_is_scored(
    compose_cfg, patient_dm, monkeypatch, setting, extra
):
    """``Study.network_trained`` gets every job of a setting once, in job order, as its network is trained:
    all of them before the setting's networks are scored (the evaluation's bar counts networks, not
    settings; mutants: a job reported twice, or not until the scoring)."""
    cfg = compose_cfg([*SMALL, "+eval.baselines.n_per_class=3", *extra])
    sets = {"soft": small_distilled(patient_dm)} if setting[0] == "soft" else {}
    s = Study(cfg, patient_dm, sets, None, progress=False)
    jobs = [Job(*setting, i) for i in range(3)]
    seen, at_scoring = [], []
    s.network_trained = lambda job: seen.append(job.key)
    real_score = study.score_networks
    monkeypatch.setattr(
        study, "score_networks", lambda nets, ctx: at_scoring.append(len(seen)) or real_score(nets, ctx)
    )
    s.run_setting(setting, jobs)
    assert seen == [j.key for j in jobs]
    assert at_scoring and at_scoring[0] == len(jobs)


def test_the_network_bar_counts_each_job_once_and_in_the_run(compose_cfg, patient_dm, capsys):
    """:class:`~study.NetworkBar` counts a job once however often it is reported (a worker's message can
    arrive after its task's end was counted); ``Study.run``'s bar ends at its job count."""
    bar = study.NetworkBar(3, "networks")
    bar.trained("a")
    bar.trained("a", "b")
    bar.trained("b", "c", "a")
    bar.trained("c")
    bar.close()
    err = capsys.readouterr().err
    assert "networks: 100%" in err and "3/3" in err and "4/3" not in err
    assert bar.counted == {"a", "b", "c"}
    cfg = compose_cfg(
        [*SMALL, "eval.progress=true", "eval.baselines.methods=[mean]", "eval.schedules=[standard]"]
    )
    s = Study(cfg, patient_dm, {"soft": small_distilled(patient_dm)}, None, progress=True)
    n = len(s.run())  # the setting's networks (2 soft, 2 mean)
    err = capsys.readouterr().err
    assert n == 4 and "evaluation: fresh networks" in err and f"{n}/{n}" in err and f"{n + 1}/{n}" not in err
    assert s.network_trained is study._nothing  # the bar's hook is removed after the run
