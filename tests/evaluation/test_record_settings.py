"""A re-run in an evaluation folder resumes only under the settings its finished records were made with.

Before ``records/settings.json``, a re-run with another recipe (or on a machine whose CPU preset chose
another precision) skipped the finished jobs and put their records in one table with the new ones.
"""

from __future__ import annotations

import json

import pytest
import torch
from _eval_sets import small_distilled

from gastrodistill.evaluation import report
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.record_settings import SETTINGS_FILE, record_settings, set_digest
from gastrodistill.evaluation.run import run_jobs

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


def _records(out):
    return {p.name: p.stat().st_mtime_ns for p in (out / report.RECORDS).glob("*.npz")}


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
    before = _records(out)
    with pytest.raises(EvaluationConfigError) as info:
        run_jobs(compose_cfg([*BASE, override, "eval.n_networks=2"]), patient_dm, sets, out)
    message = str(info.value)
    assert needle in message
    assert "paths.output_dir" in message and f"remove {out / report.RECORDS}" in message
    assert _records(out) == before  # nothing trained, nothing rewritten


def test_another_distilled_set_under_the_same_name_is_named(compose_cfg, patient_dm, finished):
    out, _ = finished
    other = {"soft": small_distilled(patient_dm, seed=1)}
    with pytest.raises(EvaluationConfigError, match="distilled set soft: other content"):
        run_jobs(compose_cfg(BASE), patient_dm, other, out)


def test_more_jobs_and_other_execution_settings_resume(compose_cfg, patient_dm, finished):
    """More networks and another process count, bootstrap or batch size keep the finished records."""
    out, sets = finished
    before = _records(out)
    more = [*BASE, "eval.n_networks=2", "eval.bootstrap=20", "eval.batch_size=64", "eval.processes=1"]
    run_jobs(compose_cfg(more), patient_dm, sets, out)
    after = _records(out)
    assert {k: after[k] for k in before} == before  # the finished records were not trained again
    assert len(after) == 2 * len(before)


def test_a_folder_without_settings_is_trusted_and_then_guarded(compose_cfg, patient_dm, finished):
    """Records of a version that kept no settings: resumed as before, and the settings written then."""
    out, sets = finished
    path = out / report.RECORDS / SETTINGS_FILE
    path.unlink()
    run_jobs(compose_cfg(BASE), patient_dm, sets, out)
    assert json.loads(path.read_text()) == record_settings(compose_cfg(BASE), patient_dm, sets)
    with pytest.raises(EvaluationConfigError, match="eval.standard.lr was 0.01, now 0.02"):
        run_jobs(compose_cfg([*BASE, "eval.lr_grid=[0.02]", "eval.standard.lr=0.02"]), patient_dm, sets, out)


def test_the_settings_hold_no_path_and_the_cpu_presets_choice_resolved(compose_cfg, patient_dm, tmp_path):
    sets = {"soft": small_distilled(patient_dm)}
    cfg = compose_cfg([*BASE, f"eval.distilled_dirs={{soft: {tmp_path}/secret_site/soft}}"])
    settings = record_settings(cfg, patient_dm, sets)
    text = json.dumps(settings)
    assert str(tmp_path) not in text and "secret_site" not in text
    assert settings["distilled set soft"] == set_digest(sets["soft"])
    assert settings["data.source_hash"] == patient_dm.source_hash()
    assert "${" not in text


def test_the_set_digest_follows_every_tensor(patient_dm):
    ds = small_distilled(patient_dm)
    digest = set_digest(ds)
    assert set_digest(small_distilled(patient_dm)) == digest  # the same content, another object
    for name in ("images", "label_logits", "raw_lrs"):
        changed = small_distilled(patient_dm)
        with torch.no_grad():
            getattr(changed, name).view(-1)[0] += 1e-3
        assert set_digest(changed) != digest, name
