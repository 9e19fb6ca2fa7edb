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


class _Set:
    """A distilled set as the digests read it: its tensors and its metadata (``lrs`` derived)."""

    def __init__(self, value: float = 1.0) -> None:
        self.value = value

    def state_dict(self):
        return {"images": torch.full((2, 3), self.value)}

    def metadata(self):
        return {"temperature": 1.0, "lrs": [0.1, 0.2]}


@pytest.mark.parametrize(
    "override",
    [
        "eval.processes=3",
        "eval.num_threads=3",
        "eval.device=cpu",
        "eval.ensemble=false",
        "+eval.score_together=false",
        "eval.score_channels_last=true",
        "eval.max_device_mb=100",
        "eval.max_in_memory_mb=1",
        "eval.baselines.real.accelerator=cpu",
        "eval.baselines.real.devices=2",
        "eval.baselines.real.strategy=ddp",
        "eval.baselines.n_networks_full=7",
        "eval.baselines.architectures=[same,lenet]",
        "eval.ci_level=0.9",
        "eval.max_ci_width=0.5",
    ],
)
def test_how_the_work_runs_and_which_jobs_exist_are_no_setting_of_a_record(compose_cfg, patient_dm, override):
    """Execution, job-list and table keys change no finished network's record: a re-run with them resumes
    (mutants: each key dropped from NOT_COMPARED)."""
    assert study_settings(compose_cfg([*BASE, override]), patient_dm) == study_settings(
        compose_cfg(BASE), patient_dm
    )


def test_the_full_data_precision_aliases_are_one_setting_too(compose_cfg, patient_dm):
    """Every ``precision`` key takes Lightning's name, not only eval.standard's (mutant: that one alone)."""
    a = study_settings(compose_cfg([*BASE, "eval.baselines.real.precision=32"]), patient_dm)
    assert a == study_settings(compose_cfg(BASE), patient_dm)
    assert a["eval.baselines.real.precision"] == "32-true"


def test_an_empty_mapping_is_a_setting_of_its_own():
    """``{}`` is a leaf, not nothing (mutant: an empty node left out, so ``{}`` and an absent key agree)."""
    from gastrodistill.evaluation.record_settings import flat_settings

    assert flat_settings({"b": {"c": 1, "d": [2]}, "a": {}}, "eval", {}) == {
        "eval.a": {},
        "eval.b.c": 1,
        "eval.b.d": [2],
    }


def test_the_state_digest_of_float32_tensors_is_sha256_of_names_shapes_and_bytes_in_name_order():
    """Written out with hashlib: per tensor by name its name, shape and bytes (float32 without its dtype, as
    digests had it: mutant, dtype always hashed), then the metadata as sorted JSON; insertion order of the
    tensors and of the metadata's keys does not matter (mutants: unsorted)."""
    import hashlib

    from gastrodistill.evaluation.record_settings import state_digest

    a, b = torch.arange(6, dtype=torch.float32).reshape(2, 3), torch.ones(2, dtype=torch.float32)
    h = hashlib.sha256()
    for name, t in (("a", a), ("b", b)):
        h.update(name.encode() + str(tuple(t.shape)).encode() + t.numpy().tobytes())
    h.update(b'{"k": 1, "z": [2]}')
    assert state_digest({"b": b, "a": a}, {"z": [2], "k": 1}) == h.hexdigest()
    assert state_digest({"a": a, "b": b}, {"k": 1, "z": [2]}) == h.hexdigest()


def test_the_set_digest_leaves_out_where_the_set_was_distilled_from(patient_dm):
    """``data_source_hash`` is not in a set's artifact: read from its folder or its artifact, one set keeps
    one digest (mutant: it is hashed); the legacy digest, of the whole metadata, held it."""
    ds = small_distilled(patient_dm)
    digest, legacy = set_digest(ds), legacy_set_digest(ds)
    ds.data_source_hash = "ab" * 32
    assert set_digest(ds) == digest and legacy_set_digest(ds) != legacy


def test_a_job_reads_its_subset_size_and_the_baselines_their_own_network():
    """Both random baselines record the subset size (mutant: random alone); a baseline's ``same`` network
    records ``baseline_model`` in place of every ``model.*`` key (mutant: model keys kept beside it), a
    set's own network keeps ``model.*`` (mutant: the baselines' model for it too)."""
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.record_settings import RecordSettings

    study = {"seed": 0, "model.width": 8, "model.act": "relu"}
    rs = RecordSettings(study, {"soft": _Set()}, lambda: 3, lambda arch: {}, baseline_model={"width": 16})
    assert rs.of_job(Job("random_soft", "standard", "same", 0)) == {
        "seed": 0,
        "model.width": 16,
        "random subset per class": 3,
    }
    assert rs.of_job(Job("random", "standard", "same", 0))["random subset per class"] == 3
    assert "random subset per class" not in rs.of_job(Job("mean", "standard", "same", 0))
    assert rs.of_job(Job("soft", "replay", "same", 0)) == {**study, "distilled set soft": set_digest(_Set())}


def test_the_refusal_counts_networks_lists_each_difference_once_and_at_most_eight(tmp_path):
    """Two finished networks with the same ten differing keys: "2 finished network(s)" (mutant: keys
    counted), each difference once (mutant: per network), the first eight in key order and "and 2 more"."""
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.record_settings import RecordSettings

    def settings(value):
        return RecordSettings({f"k{i}": value for i in range(10)}, {}, lambda: 1, lambda arch: {})

    jobs = [Job("mean", "standard", "same", i) for i in range(2)]
    for job in jobs:
        settings(1).write(tmp_path, job)
    with pytest.raises(EvaluationConfigError) as info:
        settings(2).check(tmp_path, {j.key for j in jobs}, jobs)
    shown = "; ".join(f"k{i} was 1, now 2" for i in range(8))
    folder = tmp_path / report.RECORDS
    assert str(info.value).startswith(
        f"2 finished network(s) in {folder} were trained with other settings ({shown}; and 2 more). A re-run"
    )


def test_a_reference_settings_file_matches_under_the_earlier_digest_and_not_when_damaged(tmp_path):
    """``matches`` (the saved teacher's check) reads a set's legacy digest as its current one (mutant: not),
    and a damaged file is no match, not an error (mutant: the error raised)."""
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.record_settings import RecordSettings

    rs = RecordSettings({"seed": 0}, {"soft": _Set()}, lambda: 1, lambda arch: {})
    job, path = Job("soft", "replay", "same", 0), tmp_path / "reference.settings.json"
    rs.write_file(path, job)
    assert rs.matches(path, job)
    assert legacy_set_digest(_Set()) != set_digest(_Set())
    path.write_text(json.dumps({"seed": 0, "distilled set soft": legacy_set_digest(_Set())}))
    assert rs.matches(path, job)
    path.write_text(json.dumps({"seed": 0, "distilled set soft": set_digest(_Set(2.0))}))
    assert not rs.matches(path, job)
    path.write_text("{not json")
    assert not rs.matches(path, job)
    assert not rs.matches(tmp_path / "missing.json", job)


def test_the_sets_a_record_was_trained_on_are_read_from_its_settings_file(tmp_path):
    """trained_on: each ``distilled set`` entry with a digest (mutant: a null one kept), nothing for a
    missing or damaged file (mutant: the error raised); set_digests holds the current and the legacy digest
    (mutant: the current alone)."""
    from gastrodistill.evaluation.record_settings import set_digests, trained_on

    path = settings_path(tmp_path, "soft__replay__same__0")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"seed": 0, "distilled set soft": "ab", "distilled set hard": None}))
    assert trained_on(tmp_path, "soft__replay__same__0") == {"soft": "ab"}
    assert trained_on(tmp_path, "mean__standard__same__0") == {}
    path.write_text("[]")
    assert trained_on(tmp_path, "soft__replay__same__0") == {}
    assert set_digests(_Set()) == {set_digest(_Set()), legacy_set_digest(_Set())}


def test_a_finished_random_baseline_this_run_does_not_list_resumes(tmp_path):
    """A run with fewer networks compares a finished random baseline it does not list on the study's
    settings, without its subset size (mutant: the size kept, "random subset per class was 2, now unset")."""
    from gastrodistill.evaluation.jobs import Job
    from gastrodistill.evaluation.record_settings import RecordSettings

    def make(value):
        return RecordSettings({"seed": value}, {}, lambda: 2, lambda arch: {})

    job = Job("random", "standard", "same", 1)
    make(0).write(tmp_path, job)
    make(0).check(tmp_path, {job.key}, [])
    with pytest.raises(EvaluationConfigError, match=r"\(seed was 0, now 1\)"):
        make(1).check(tmp_path, {job.key}, [])
