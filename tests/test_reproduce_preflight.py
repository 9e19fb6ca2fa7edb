"""The checks ``gastrodistill-reproduce`` makes before any stage runs
(:mod:`gastrodistill.pipeline.preflight`), each called directly with small configs: which check runs for
which stages, and what it says (the whole command's refusals: tests/distillation/test_config_check.py and
tests/test_reproduce_stages.py)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from gastrodistill.pipeline.preflight import PreflightChecks, check_sweep_collections
from gastrodistill.pipeline.stages import ReproduceConfigError


def _recorder(monkeypatch, target: str) -> list:
    """``target`` (a dotted path) replaced by a function recording its arguments."""
    calls: list = []
    monkeypatch.setattr(target, lambda *args, **kw: calls.append(args))
    return calls


def test_a_sweep_refusal_names_the_first_job_of_the_folder_and_not_the_one_before(compose_cfg):
    """Three jobs, the first two alike: the third is refused against job #0 (a mutant compared each job
    with the one before it, naming #1), and the seed hint is given only when the seeds differ."""
    jobs = [(f"#{n}", compose_cfg(["experiment=tiny", f"seed={s}"])) for n, s in enumerate((0, 0, 2))]
    with pytest.raises(ReproduceConfigError, match=r"^sweep jobs #0 and #2 generate different") as info:
        check_sweep_collections(jobs)
    assert str(info.value).endswith(
        " (seeds differ), or add synthetic.seed=N to sweep the network seeds on one collection"
    )


def test_a_stage_given_without_brackets_becomes_a_list_of_that_stage(compose_cfg):
    """``stages=distill`` is ``[distill]`` in the config the stages read afterwards (the workers test
    ``'evaluate' in cfg.stages``); a mutant left the string, whose letters the stages would read."""
    pipe = PreflightChecks(compose_cfg(["experiment=tiny", "stages=distill"]))
    assert pipe.check_values() == ["distill"]
    assert list(pipe.cfg.stages) == ["distill"]


def test_data_without_a_target_drop_the_gastric_stages_as_this_data(tmp_path):
    """Mutants: ``'?'`` for a data section without ``_target_``."""
    pipe = PreflightChecks(OmegaConf.create({"data": {"path": "x"}, "paths": {"output_dir": str(tmp_path)}}))
    assert pipe.drop_gastric_stages(["generate", "distill"]) == ["distill"]
    assert pipe.notes == [
        "stages ['generate'] skipped: they build gastric patches, which this data does not read"
    ]


def test_the_device_and_launch_are_checked_here_only(compose_cfg, monkeypatch):
    """A sweep's jobs for other machines (``here`` False) leave the trainer's device and launch unchecked
    (a mutant checked them on this machine in both cases)."""
    accel = _recorder(monkeypatch, "gastrodistill.utils.distributed.check_accelerator_here")
    launch = _recorder(monkeypatch, "gastrodistill.utils.distributed.check_launch")
    cfg = compose_cfg(["experiment=tiny"])
    PreflightChecks(cfg).check_reproduce_section(["distill"], here=False)
    assert accel == launch == []
    PreflightChecks(cfg).check_reproduce_section(["distill"])
    assert accel == launch == [(cfg.trainer,)]


def test_test_patients_are_required_only_when_the_run_generates_and_evaluates(compose_cfg, monkeypatch):
    """A collection already on disk is the patches stage's to judge (a mutant refused test_gastritis=0
    for an evaluation of data the run did not generate)."""
    _recorder(monkeypatch, "gastrodistill.data.synthetic.generator.check_synthetic_collection")
    cfg = compose_cfg(["experiment=tiny", "synthetic.test_gastritis=0"])
    PreflightChecks(cfg).check_reproduce_section(["patches", "distill", "evaluate"])
    with pytest.raises(ReproduceConfigError, match=r"^synthetic.test_gastritis=0: the test split"):
        PreflightChecks(cfg).check_reproduce_section(["generate", "patches", "distill", "evaluate"])


def test_the_patch_size_is_checked_against_the_images_only_when_patches_are_cut_from_them(compose_cfg):
    """generate alone writes images a later run may tile otherwise (a mutant refused it too)."""
    cfg = compose_cfg(["experiment=tiny", "synthetic.image_size=200"])
    PreflightChecks(cfg).check_reproduce_section(["generate"])
    with pytest.raises(
        ReproduceConfigError, match=r"^synthetic.image_size=200 px is smaller than data.patch"
    ):
        PreflightChecks(cfg).check_reproduce_section(["generate", "patches"])


def test_the_collection_on_disk_is_checked_only_when_the_run_does_not_generate_it(compose_cfg, monkeypatch):
    """Mutants: checked when generate rewrites it (and not when the stages read it as it is)."""
    seen = _recorder(monkeypatch, "gastrodistill.data.synthetic.generator.check_synthetic_collection")
    cfg = compose_cfg(["experiment=tiny"])
    PreflightChecks(cfg).check_reproduce_section(["generate", "patches"])
    assert seen == []
    PreflightChecks(cfg).check_reproduce_section(["patches", "distill"])
    assert seen == [(cfg,)]
    digits = compose_cfg(["experiment=tiny", "data=digits"])  # other data: no collection to check
    PreflightChecks(digits).check_reproduce_section(["distill"])
    assert len(seen) == 1


def test_the_audit_values_are_checked_when_the_audit_comes_after_other_stages(compose_cfg):
    """Not only for an audit that is the first stage (a mutant looked at the first stage alone)."""
    from gastrodistill.anonymity.config_check import AuditConfigError

    pipe = PreflightChecks(
        compose_cfg(["experiment=tiny", "stages=[distill,audit]", "audit.closest_pairs=-1"])
    )
    with pytest.raises(AuditConfigError, match="audit.closest_pairs must be"):
        pipe.check_values()


def test_every_network_the_stages_build_is_checked_and_the_evaluations_only_when_it_runs(
    compose_cfg, monkeypatch
):
    """cfg.model, then each named architecture of the sets' and of the baselines' lists once, under its
    own key; an audit alone builds cfg.model only (mutants: the baselines' list skipped, a named
    architecture not built, the evaluation's networks built without the evaluate stage)."""
    built = _recorder(monkeypatch, "gastrodistill.models.preflight.check_model_config")
    cfg = compose_cfg(
        ["experiment=tiny", "eval.architectures=[same,lenet]", "eval.baselines.architectures=[same,alexnet]"]
    )
    PreflightChecks(cfg).check_networks(["evaluate"])
    assert [args[2:] for args in built] == [
        (),
        ("eval architecture 'lenet' (model/lenet.yaml)",),
        ("eval architecture 'alexnet' (model/alexnet.yaml)",),
    ]
    assert built[0][0] == cfg.model and built[1][0]._target_ == "gastrodistill.models.LeNet"
    built.clear()
    bad = compose_cfg(["experiment=tiny", "eval.architectures=[same,lenett]"])
    PreflightChecks(bad).check_networks(["audit"])
    assert len(built) == 1 and built[0][0] == bad.model


def test_two_names_of_one_network_are_refused_only_when_this_run_distils(compose_cfg):
    """``same`` is cfg.model only for sets distilled now (mutant: never refused)."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    cfg = compose_cfg(["experiment=tiny", "eval.architectures=[same,convnet]"])
    PreflightChecks(cfg).check_networks(["evaluate"])
    with pytest.raises(
        EvaluationConfigError, match=r"^eval architectures 'same' and 'convnet' are both convnet"
    ):
        PreflightChecks(cfg).check_networks(["distill", "evaluate"])


def test_stages_after_a_distill_stage_need_no_sets_in_the_folder(compose_cfg):
    """The distill stage makes them (a mutant refused the default stages in a new folder)."""
    PreflightChecks(compose_cfg(["experiment=tiny"])).check_sets_present(
        ["distill", "evaluate", "audit", "artifact"]
    )


def test_an_evaluation_re_run_checks_nothing_without_finished_networks_or_sets_to_resume(
    compose_cfg, monkeypatch
):
    """No finished network in eval/: nothing to compare; a resume with no sets in the folder: nothing to
    resume; a distill stage with ``distill.resume=''``: a fresh distillation (mutants checked each)."""
    seen = _recorder(monkeypatch, "gastrodistill.evaluation.run.check_finished_networks")
    _recorder(monkeypatch, "gastrodistill.evaluation.checks.check_distilled_sets")
    monkeypatch.setattr(PreflightChecks, "datamodule", lambda self: None)
    finished: set = set()
    monkeypatch.setattr("gastrodistill.evaluation.report.finished_jobs", lambda eval_dir: finished)
    monkeypatch.setattr(PreflightChecks, "distilled_sets", lambda self: {})
    PreflightChecks(compose_cfg(["experiment=tiny"])).check_evaluation_resume(["evaluate"])
    assert seen == []
    finished.add("full__real__same__0")
    PreflightChecks(compose_cfg(["experiment=tiny", "distill.resume=last"])).check_evaluation_resume(
        ["distill", "evaluate"]
    )
    assert seen == []
    monkeypatch.setattr(PreflightChecks, "distilled_sets", lambda self: {"soft": object()})
    PreflightChecks(compose_cfg(["experiment=tiny", "distill.resume=''"])).check_evaluation_resume(
        ["distill", "evaluate"]
    )
    assert seen == []
    PreflightChecks(compose_cfg(["experiment=tiny"])).check_evaluation_resume(["evaluate"])
    assert len(seen) == 1


def test_the_stages_checked_and_returned_leave_out_those_the_data_do_not_read(compose_cfg):
    """``check_values`` returns the stages without generate and patches for npz data, with the note (a
    mutant checked and returned them all)."""
    pipe = PreflightChecks(
        compose_cfg(["experiment=tiny", "data=npz", "data.path=x.npz", "stages=[patches,distill]"])
    )
    assert pipe.check_values() == ["distill"]
    assert pipe.notes == [
        "stages ['patches'] skipped: they build gastric patches, which NpzDataModule does not read"
    ]
