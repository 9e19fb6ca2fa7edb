"""A re-run in an evaluation folder resumes only under the settings its finished networks were made with.

Before ``records/<job>.settings.json``, a re-run with another recipe (or on a machine whose CPU preset chose
another precision) skipped the finished jobs and put their records in one table with the new ones.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from _eval_sets import small_distilled

from gastrodistill.evaluation import report
from gastrodistill.evaluation.jobs import EvaluationConfigError, build_jobs
from gastrodistill.evaluation.record_settings import (
    SETTINGS_SUFFIX,
    differences,
    legacy_set_digest,
    set_digest,
    settings_path,
    study_settings,
)
from gastrodistill.evaluation.run import run_evaluation, run_jobs, run_reference_job
from gastrodistill.evaluation.study import Study
from gastrodistill.utils.privacy import public_config

BASE = [
    "model.width=8",
    "model.depth=2",
    "eval.n_networks=1",
    "eval.architectures=[same]",
    "eval.schedules=[standard]",
    "eval.baselines.methods=[mean]",
    "eval.lr_grid=[0.01]",
    "eval.standard.epochs=2",
    "eval.progress=false",
    "eval.patient.threshold_fallback=cv",
]


@pytest.fixture
def finished(compose_cfg, patient_dm, tmp_path):
    """An evaluation folder with every job of BASE finished, and its sets."""
    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    run_jobs(compose_cfg(BASE), patient_dm, sets, out)
    return out, sets


def _files(out):
    """Every file of the folder with its modification time: what a refused run must leave alone."""
    return {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("eval.standard.precision=bf16-mixed", "eval.standard.precision was '32-true', now 'bf16-mixed'"),
        ("eval.standard.epochs=3", "eval.standard.epochs was 2, now 3"),
        ("model.width=16", "model.width was 8, now 16"),
        ("seed=7", "seed was 0, now 7"),
    ],
)
def test_a_rerun_with_other_settings_stops_before_training_and_names_the_key(
    compose_cfg, patient_dm, finished, override, needle
):
    out, sets = finished
    before = _files(out)
    with pytest.raises(EvaluationConfigError) as info:
        run_jobs(compose_cfg([*BASE, override, "eval.n_networks=2"]), patient_dm, sets, out)
    message = str(info.value)
    assert needle in message and "2 finished network(s)" in message
    assert "paths.output_dir" in message and f"remove {out / report.RECORDS}" in message
    assert _files(out) == before  # nothing trained, nothing rewritten


def test_another_random_subset_size_or_patch_store_stops_a_rerun(
    compose_cfg, patient_dm, patient_dm_factory, tmp_path
):
    """The random baseline's subset size and the data's content are settings of every finished network."""
    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    random = [*BASE, "eval.baselines.methods=[random]", "eval.baselines.n_per_class=2"]
    run_jobs(compose_cfg(random), patient_dm, sets, out)
    before = _files(out)
    with pytest.raises(EvaluationConfigError, match="random subset per class was 2, now 3"):
        run_jobs(compose_cfg([*random, "eval.baselines.n_per_class=3"]), patient_dm, sets, out)
    with pytest.raises(EvaluationConfigError, match="data.source_hash: other content"):
        run_jobs(compose_cfg(random), patient_dm_factory(seed=1), {}, out)  # the baselines alone
    assert _files(out) == before


def test_a_refused_evaluation_leaves_the_folders_run_record_as_it_was(compose_cfg, patient_dm, tmp_path):
    """run_evaluation used to rewrite config.yaml and run_info.json before the refusal: the folder's
    record then named settings its networks were not trained with."""
    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    run_evaluation(compose_cfg(BASE), patient_dm, sets, out, loggers=[])
    before = _files(out)
    with pytest.raises(EvaluationConfigError, match="eval.standard.epochs was 2, now 3"):
        run_evaluation(compose_cfg([*BASE, "eval.standard.epochs=3"]), patient_dm, sets, out, loggers=[])
    assert _files(out) == before


def test_another_distilled_set_under_the_same_name_is_named(compose_cfg, patient_dm, finished):
    out, _ = finished
    other = {"soft": small_distilled(patient_dm, seed=1)}
    with pytest.raises(EvaluationConfigError, match="distilled set soft: other content"):
        run_jobs(compose_cfg(BASE), patient_dm, other, out)


def test_more_jobs_another_set_and_other_execution_settings_resume(compose_cfg, patient_dm, finished):
    """More networks, a second distilled set, and another thread count, bootstrap, batch size or pixel
    depth keep the finished records (none is trained again) and add the new jobs."""
    out, sets = finished
    before = {p.name: p.stat().st_mtime_ns for p in (out / report.RECORDS).glob("*.npz")}
    more = [
        *BASE,
        "eval.n_networks=2",
        "eval.num_threads=2",
        "eval.bootstrap=20",
        "eval.batch_size=64",
        "eval.real_bytes_per_pixel=2",
    ]
    both = {**sets, "hard": small_distilled(patient_dm, "hard", 1)}
    run_jobs(compose_cfg(more), patient_dm, both, out)
    after = {p.name: p.stat().st_mtime_ns for p in (out / report.RECORDS).glob("*.npz")}
    assert {k: after[k] for k in before} == before
    assert set(after) - set(before) == {
        "soft__standard__same__1.npz",
        "hard__standard__same__0.npz",
        "hard__standard__same__1.npz",
        "mean__standard__same__1.npz",
    }
    for name in after:  # every record has its settings beside it
        assert settings_path(out, name.removesuffix(".npz")).is_file()


def test_a_run_that_finished_no_network_does_not_block_its_own_fix(compose_cfg, patient_dm, tmp_path):
    """The first run stops at its threshold (too few validation patients), finishing nothing; the run with
    the fix its message asks for goes ahead."""
    from gastrodistill.evaluation.patient import ThresholdRefused

    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    refuse = [k for k in BASE if "threshold_fallback" not in k] + ["eval.patient.threshold_fallback=refuse"]
    with pytest.raises(ThresholdRefused):
        run_jobs(compose_cfg(refuse), patient_dm, sets, out)
    assert not report.finished_jobs(out)
    run_jobs(compose_cfg(BASE), patient_dm, sets, out)
    assert report.finished_jobs(out)


def test_the_reference_network_trained_ahead_is_guarded_both_ways(compose_cfg, patient_dm, tmp_path):
    """reproduce trains job full__real__same__0 before the evaluation: its record carries its settings, so a
    run with another full-data recipe is refused, and a reference of other settings is not trained into a
    folder whose networks were made otherwise."""
    full = [*BASE, "eval.baselines.methods=[full]", "eval.baselines.real.epochs=1"]
    out = tmp_path / "eval"
    assert run_reference_job(compose_cfg(full), patient_dm, out)
    other = [*full, "eval.baselines.real.epochs=2"]
    with pytest.raises(EvaluationConfigError, match="eval.baselines.real.epochs was 1, now 2"):
        run_jobs(compose_cfg(other), patient_dm, {}, out)
    second = tmp_path / "eval2"
    run_jobs(compose_cfg([*BASE, "eval.baselines.real.epochs=1"]), patient_dm, {}, second)
    before = _files(second)
    with pytest.raises(EvaluationConfigError, match="eval.baselines.real.epochs was 1, now 2"):
        run_reference_job(compose_cfg(other), patient_dm, second)
    assert _files(second) == before


def test_records_of_an_older_version_are_trusted(compose_cfg, patient_dm, finished):
    out, sets = finished
    for path in (out / report.RECORDS).glob(f"*{SETTINGS_SUFFIX}"):
        path.unlink()
    run_jobs(compose_cfg([*BASE, "eval.standard.epochs=3", "eval.n_networks=2"]), patient_dm, sets, out)
    # the new networks' settings are kept; the old ones stay without
    assert settings_path(out, "soft__standard__same__1").is_file()
    assert not settings_path(out, "soft__standard__same__0").is_file()


@pytest.mark.parametrize("content", ["[]", "{not json", ""])
def test_a_damaged_settings_file_is_named(compose_cfg, patient_dm, finished, content):
    out, sets = finished
    path = settings_path(out, "soft__standard__same__0")
    path.write_text(content)
    with pytest.raises(EvaluationConfigError, match=f"{path} cannot be read"):
        run_jobs(compose_cfg(BASE), patient_dm, sets, out)


def test_precision_aliases_and_nan_are_one_setting(compose_cfg, patient_dm):
    a = study_settings(compose_cfg([*BASE, "eval.standard.precision=32"]), patient_dm)
    b = study_settings(compose_cfg([*BASE, "eval.standard.precision=32-true"]), patient_dm)
    assert a == b and a["eval.standard.precision"] == "32-true"
    assert differences({"x": math.nan, "y": [1, 2]}, {"x": math.nan, "y": [1, 2]}) == []
    assert differences({"x": 1}, {"x": 1, "distilled set hard": "ab"}) == ["distilled set hard: new"]
    assert differences({"distilled set hard": "ab"}, {}) == ["distilled set hard: absent"]
    assert differences({"x": 1}, {"x": 1.5}) == ["x was 1, now 1.5"]


def test_the_settings_hold_no_path_and_the_cpu_presets_choice_resolved(compose_cfg, patient_dm, tmp_path):
    sets = {"soft": small_distilled(patient_dm)}
    cfg = compose_cfg([*BASE, f"eval.distilled_dirs={{soft: {tmp_path}/secret_site/soft}}"])
    study = Study(cfg, patient_dm, sets, tmp_path / "eval", progress=False)
    job = next(j for j in build_jobs(cfg.eval, list(sets)) if j.method == "soft")
    settings = study.record_settings.of_job(job)
    text = json.dumps(settings)
    assert str(tmp_path) not in text and "secret_site" not in text and "${" not in text
    assert settings["distilled set soft"] == set_digest(sets["soft"])
    assert settings["data.source_hash"] == patient_dm.source_hash()


def test_the_state_digest_follows_shapes_dtypes_and_names():
    from gastrodistill.evaluation.record_settings import state_digest

    w = torch.arange(12, dtype=torch.float32)
    base = state_digest({"w": w.reshape(3, 4)})
    assert base == state_digest({"w": w.reshape(3, 4).clone()})
    assert base != state_digest({"w": w.reshape(4, 3)})  # the same bytes, another shape
    assert base != state_digest({"v": w.reshape(3, 4)})
    assert base != state_digest({"w": w.reshape(3, 4).double()})
    assert base != state_digest({"w": w.reshape(3, 4)}, meta={"k": 1})


def test_the_set_digest_follows_every_tensor_and_the_metadata(patient_dm):
    ds = small_distilled(patient_dm)
    digest = set_digest(ds)
    assert set_digest(small_distilled(patient_dm)) == digest  # the same content, another object
    for name in ("images", "label_logits", "raw_lrs"):
        changed = small_distilled(patient_dm)
        with torch.no_grad():
            getattr(changed, name).view(-1)[0] += 1e-3
        assert set_digest(changed) != digest, name
    for attr, value in (("temperature", 2.0), ("inner_momentum", 0.5)):
        changed = small_distilled(patient_dm)
        setattr(changed, attr, value)
        assert set_digest(changed) != digest, attr


def test_the_set_digest_leaves_out_the_learning_rates_derived_from_raw_lrs(patient_dm):
    """``lrs`` is softplus(raw_lrs), whose float32 values differ by an ulp between CPU instruction sets
    (AVX2 and AVX-512 digests of one 30-step set differed): a set moved between machines must keep its
    digest. ``raw_lrs`` itself is hashed (above)."""
    ds = small_distilled(patient_dm)
    digest, legacy = set_digest(ds), legacy_set_digest(ds)
    exact = ds.lrs
    ds.lrs = lambda: torch.nextafter(exact(), torch.tensor(math.inf))  # another CPU's softplus
    assert set_digest(ds) == digest
    assert legacy_set_digest(ds) != legacy  # the digest before this change held them


def test_settings_files_holding_the_earlier_digest_still_resume(compose_cfg, patient_dm, finished):
    """Folders written before the derived learning rates left the digest hold legacy_set_digest: on the
    machine that wrote them it still matches, and another set's content is still refused."""
    out, sets = finished
    path = settings_path(out, "soft__standard__same__0")
    settings = json.loads(path.read_text())
    settings["distilled set soft"] = legacy_set_digest(sets["soft"])
    path.write_text(json.dumps(settings))
    before = _files(out)
    run_jobs(compose_cfg(BASE), patient_dm, sets, out)  # resumes: nothing trained again
    assert {p: t for p, t in _files(out).items() if p.suffix == ".npz"} == {
        p: t for p, t in before.items() if p.suffix == ".npz"
    }
    other = {"soft": small_distilled(patient_dm, seed=1)}
    with pytest.raises(EvaluationConfigError, match="distilled set soft: other content"):
        run_jobs(compose_cfg(BASE), patient_dm, other, out)


def test_a_saved_teacher_of_other_settings_is_trained_again(compose_cfg, patient_dm, tmp_path):
    """The random_soft teacher is the saved reference network. A folder whose first run trained it and then
    stopped (no record), or whose full job is not listed, handed that teacher to a run of another full-data
    recipe; it is now trained again, and kept when the settings are the same."""
    out = tmp_path / "eval"
    out.mkdir()
    soft_only = [*BASE, "eval.baselines.methods=[random_soft]", "eval.baselines.n_per_class=2"]
    first = compose_cfg([*soft_only, "eval.baselines.real.epochs=1"])
    Study(first, patient_dm, {}, out, progress=False).reference()  # trained and saved, no record
    weights = out / Study.REFERENCE_FILE
    saved = weights.read_bytes()
    again = Study(first, patient_dm, {}, out, progress=False)
    assert again.reference_is_current()
    again.reference()
    assert weights.read_bytes() == saved  # the same settings: loaded, not trained again

    other = [*soft_only, "eval.baselines.real.epochs=1", "eval.baselines.real.lr=0.01"]
    run_jobs(compose_cfg(other), patient_dm, {}, out)
    assert weights.read_bytes() != saved  # trained again by the new recipe
    kept = json.loads((out / Study.REFERENCE_SETTINGS).read_text())
    assert kept["eval.baselines.real.lr"] == 0.01

    (out / Study.REFERENCE_SETTINGS).unlink()  # a reference of an earlier version: not trusted as a teacher
    assert not Study(compose_cfg(other), patient_dm, {}, out, progress=False).reference_is_current()


def test_a_cross_architecture_networks_config_is_compared(tmp_path):
    """Architectures other than `same` come from conf/model, which a user may edit between runs."""
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.record_settings import RecordSettings

    def settings(width):
        return RecordSettings({"seed": 0}, {}, lambda: 2, lambda arch: {"_target_": "LeNet", "width": width})

    job = Job("mean", "standard", "lenet", 0)
    assert settings(8).of_job(job)["architecture lenet.width"] == 8
    assert "architecture same.width" not in settings(8).of_job(Job("mean", "standard", "same", 0))
    out = tmp_path / "eval"
    settings(8).write(out, job)
    settings(8).check(out, {job.key}, [job])
    with pytest.raises(EvaluationConfigError, match="architecture lenet.width was 8, now 16"):
        settings(16).check(out, {job.key}, [job])


def test_baselines_are_compared_on_the_network_they_were_built_from(compose_cfg, patient_dm, tmp_path):
    """The baselines' ``same`` networks follow the first set's recorded model. A folder whose baselines
    were trained for a set distilled at width 8, run again with a set distilled at width 16 only, used to
    keep those width-8 baselines beside the new set's networks: one table, two networks. A set distilled
    from this config (its recorded model is ``model.*``) resumes over baselines trained before any set
    existed, as reproduce's reference network is."""
    cfg = compose_cfg(BASE)
    soft = small_distilled(patient_dm)
    soft.model_config = public_config(cfg.model)
    wide = small_distilled(patient_dm, seed=1)
    wide.model_config = {**public_config(cfg.model), "width": 16}
    out = tmp_path / "eval"
    run_jobs(cfg, patient_dm, {"soft": soft}, out)
    before = _files(out)
    with pytest.raises(EvaluationConfigError, match="model.width was 8, now 16") as info:
        run_jobs(cfg, patient_dm, {"w16": wide}, out)
    assert "1 finished network(s)" in str(info.value)  # the mean baseline; soft's own network is not compared
    assert _files(out) == before

    ahead = tmp_path / "ahead"
    run_jobs(cfg, patient_dm, {}, ahead)  # the baseline alone, before any set
    mean = {p.name: p.stat().st_mtime_ns for p in (ahead / report.RECORDS).glob("mean__*.npz")}
    run_jobs(cfg, patient_dm, {"soft": soft}, ahead)
    assert {p.name: p.stat().st_mtime_ns for p in (ahead / report.RECORDS).glob("mean__*.npz")} == mean
    with pytest.raises(EvaluationConfigError, match="model.width was 8, now 16"):
        run_jobs(cfg, patient_dm, {"w16": wide}, ahead)


def test_fewer_jobs_resume_over_baselines_of_a_set_distilled_with_another_network(
    compose_cfg, patient_dm, tmp_path
):
    """A baseline this run does not list is compared on the study's settings, with the model its ``same``
    network was built from (the first set's, width 16 here): a re-run with fewer networks was refused with
    "model.width was 16, now 8" although nothing had changed."""
    cfg = compose_cfg(BASE)
    wide = small_distilled(patient_dm)
    wide.model_config = {**public_config(cfg.model), "width": 16}
    out = tmp_path / "eval"
    run_jobs(compose_cfg([*BASE, "eval.n_networks=2"]), patient_dm, {"w16": wide}, out)
    before = _files(out)
    run_jobs(cfg, patient_dm, {"w16": wide}, out)  # one network per setting: all finished, none listed twice
    assert _files(out) == before
    with pytest.raises(EvaluationConfigError, match="model.width was 16, now 8"):  # the baselines' network
        run_jobs(cfg, patient_dm, {"w16": small_distilled(patient_dm)}, out)


def test_a_damaged_record_is_named_and_its_removal_trains_that_network_again(
    compose_cfg, patient_dm, tmp_path
):
    """A truncated ``records/<job>.npz`` used to end a re-run in a zipfile traceback."""
    sets = {"soft": small_distilled(patient_dm)}
    out = tmp_path / "eval"
    run_evaluation(compose_cfg(BASE), patient_dm, sets, out, loggers=[])
    path = report.record_path(out, "mean__standard__same__0")
    good = report.load_record(path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(EvaluationConfigError) as info:
        run_evaluation(compose_cfg(BASE), patient_dm, sets, out, loggers=[])
    assert f"{path} cannot be read" in str(info.value) and "Remove it and run again" in str(info.value)
    path.unlink()
    run_evaluation(compose_cfg(BASE), patient_dm, sets, out, loggers=[])
    again = report.load_record(path)
    assert again.keys() == good.keys()
    for key, value in good.items():  # the same network again: seeded by its job
        same = np.array_equal(again[key], value) if isinstance(value, np.ndarray) else again[key] == value
        assert same, key


@pytest.mark.parametrize("kind", ["npy", "list", "number", "random"])
def test_a_foreign_file_under_a_records_name_is_named(tmp_path, kind):
    """A lone ``.npy`` array saved as ``<job>.npz`` or scalars that are not a JSON object raised a bare
    TypeError (or loaded as the record ``5``) once only read errors were named."""
    out = tmp_path / "eval"
    path = report.record_path(out, "mean__standard__same__0")
    path.parent.mkdir(parents=True)
    if kind == "npy":
        with open(path, "wb") as f:
            np.save(f, np.arange(3))
    elif kind == "random":
        path.write_bytes(np.random.default_rng(0).bytes(300))
    else:
        scalars = json.dumps([1, 2] if kind == "list" else 5)
        with open(path, "wb") as f:
            np.savez(f, **{report._SCALARS: np.array(scalars)})
    with pytest.raises(EvaluationConfigError, match="cannot be read .*Remove it and run again"):
        report.load_records(out, ["mean__standard__same__0"])
