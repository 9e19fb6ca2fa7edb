"""The evaluate command's own code (gastrodistill.cli.evaluate): no sets, the set folders its config
records, the checks a sweep defers, and what it prints, with the evaluation replaced by a stand-in."""

from __future__ import annotations

import os

import pytest
from _eval_sets import small_npz
from omegaconf import OmegaConf, open_dict

from gastrodistill.cli import evaluate


def test_no_distilled_sets_is_an_evaluation_of_the_baselines_only():
    """An absent or empty eval.distilled_dirs gives no sets (a mutant asked load_sets, which refuses an
    empty mapping)."""
    assert evaluate.load_distilled(None) == {}
    assert evaluate.load_distilled({}) == {}


def test_relative_set_folders_are_recorded_from_the_current_folder_and_others_kept(tmp_path, monkeypatch):
    """A relative entry becomes the absolute path under the current folder; an absolute one, null and a
    blank stay as they are (mutants inverted the test, made blanks absolute, or wrote the entry back
    unchanged)."""
    monkeypatch.chdir(tmp_path)
    dirs = {"a": "rel/x", "b": "/abs/y", "c": None, "d": "  "}
    cfg = OmegaConf.create({"eval": {"distilled_dirs": dirs}})
    evaluate.record_absolute_set_folders(cfg)
    assert OmegaConf.to_container(cfg.eval.distilled_dirs) == {
        "a": os.path.join(os.getcwd(), "rel", "x"),
        "b": "/abs/y",
        "c": None,
        "d": "  ",
    }


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without a GPU")
def test_check_values_leaves_the_device_to_the_machine_that_runs_the_job(compose_cfg):
    """``here=False`` (a sweep checked for other machines) passes the baselines' GPU setting; the job's
    own check refuses it (a mutant always checked as here)."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    cfg = compose_cfg(["experiment=tiny", "eval.baselines.real.accelerator=gpu"])
    evaluate.check_values(cfg, here=False)
    with pytest.raises(EvaluationConfigError, match="Lightning refuses them on this machine"):
        evaluate.check_values(cfg)


def test_the_evaluate_command_prints_the_table_and_where_the_results_are(
    tmp_path, compose_cfg, monkeypatch, capsys
):
    """run() hands the evaluation no sets when none are named, then prints results.md as written and the
    paths of results.csv and plots/ (mutants printed neither); a relative set folder reaches the
    evaluation's config as the absolute path it was read from (a mutant skipped recording it)."""
    import gastrodistill.evaluation.run as evaluation_run

    small_npz(tmp_path / "small.npz")
    seen = []

    def evaluation(cfg, dm, sets, out):
        seen.append((sets, out, cfg.eval.distilled_dirs))
        (out / "results.md").write_text("| method | accuracy |\n| real | 0.5 |\n")
        return "the table"

    monkeypatch.setattr(evaluation_run, "run_evaluation", evaluation)
    out = tmp_path / "out"
    out.mkdir()
    cfg = compose_cfg(["experiment=tiny", "data=npz", f"data.path={tmp_path / 'small.npz'}"])
    capsys.readouterr()
    assert evaluate.run(cfg) == "the table"
    assert seen == [({}, out, None)]
    assert capsys.readouterr().out == (
        f"| method | accuracy |\n| real | 0.5 |\n\nresults: {out / 'results.csv'}\nplots:   {out / 'plots'}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(evaluate, "load_distilled", lambda dirs: {})  # the set itself is not the point
    relative = compose_cfg(["experiment=tiny", "data=npz", f"data.path={tmp_path / 'small.npz'}"])
    with open_dict(relative):
        relative.eval.distilled_dirs = {"soft": "run/distill/soft"}
    evaluate.run(relative)
    assert dict(seen[-1][2]) == {"soft": str(tmp_path / "run" / "distill" / "soft")}


def test_check_values_refuses_a_network_the_model_config_cannot_build(compose_cfg):
    """The network check runs in check_values, so a sweep refuses it before its first job (a mutant left
    it to the job)."""
    from gastrodistill.models.preflight import ModelConfigError

    with pytest.raises(ModelConfigError, match="unknown norm 'foo'"):
        evaluate.check_values(compose_cfg(["experiment=tiny", "model.norm=foo"]), here=False)


def test_the_evaluate_command_checks_its_values_before_it_reads_the_data(compose_cfg):
    """run() checks eval.* first (a mutant left it to the evaluation, after the data had been prepared)."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    with pytest.raises(EvaluationConfigError, match="eval.threshold_source = 'test'; use one of"):
        evaluate.run(compose_cfg(["experiment=tiny", "eval.threshold_source=test"]))
