"""The stage sequencing of ``gastrodistill-reproduce`` with its stages replaced by stubs: which stages run, in
what order and on which rank, what is skipped, when the data are checked, and the run record, history and
summary a run leaves (the whole study on tiny data is tests/evaluation/test_end_to_end.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gastrodistill.pipeline import pipeline as pipeline_module
from gastrodistill.pipeline.pipeline import Pipeline

ALL = ["generate", "patches", "distill", "evaluate", "audit", "artifact"]
EARLIER = {"config.yaml": "seed: 3\n", "run_info.json": '{"earlier": 1}', "SUMMARY.md": "# earlier\n"}


def _stubbed(pipe: Pipeline, calls: list[str], fail: dict | None = None, during=None) -> Pipeline:
    """``pipe`` with each stage replaced by a stub that appends its name to ``calls``, then calls
    ``during(pipe, name)`` and raises ``fail[name]`` when given."""
    fail = fail or {}
    real = Pipeline.stage_fns(pipe)

    def stub(name):
        def run():
            calls.append(name)
            if during is not None:
                during(pipe, name)
            if name in fail:
                raise fail[name]

        return run

    pipe.stage_fns = lambda: {name: (stub(name), module) for name, (_, module) in real.items()}
    return pipe


@pytest.fixture
def data_checks(monkeypatch):
    """The checks of the data made before the first logging stage, replaced by recorders (no data read)."""
    seen: list[str] = []
    monkeypatch.setattr(
        "gastrodistill.sharing.publish.check_logged_names_in_data", lambda cfg, dm: seen.append("names")
    )
    monkeypatch.setattr(
        "gastrodistill.evaluation.splits.check_evaluation_data",
        lambda cfg, dm: seen.append("evaluation data"),
    )
    monkeypatch.setattr(Pipeline, "datamodule", lambda self: None)
    monkeypatch.setattr(Pipeline, "check_random_subsets", lambda self, stages: seen.append("random subsets"))
    return seen


def test_stages_run_in_order_each_timed_and_the_data_checked_once_before_the_first_logging_stage(
    compose_cfg, data_checks, capsys
):
    """Mutants: the counter from 0, the evaluation's data checks dropped or made for the distillation alone,
    the names checked before distill only, a stage's or the total's timing not recorded."""
    calls: list[str] = []

    def during(pipe, name):  # what had been checked when each stage ran
        calls.append(f"{name}: {','.join(data_checks)}")

    pipe = _stubbed(Pipeline(compose_cfg(["experiment=tiny"])), calls, during=during)
    pipe.run_stages(ALL)
    checked = "names,evaluation data,random subsets"
    assert calls[::2] == ALL
    assert calls[1::2] == ["generate: ", "patches: "] + [f"{s}: {checked}" for s in ALL[2:]]
    assert list(pipe.timings) == [*ALL, "total"] and all(t >= 0 for t in pipe.timings.values())
    printed = [line.split(" (elapsed")[0] for line in capsys.readouterr().out.splitlines() if "==> [" in line]
    assert printed == [f"==> [{i}/6] {stage}" for i, stage in enumerate(ALL, 1)]
    # without the evaluate stage the evaluation's data are not checked; the names are, before the audit too
    for stage in ("audit", "artifact"):
        data_checks.clear()
        _stubbed(Pipeline(compose_cfg(["experiment=tiny"])), []).run_stages([stage])
        assert data_checks == ["names"], stage


def test_a_stage_of_a_missing_module_is_skipped_with_a_note_and_rank_zero_stages_wait_on_other_ranks(
    compose_cfg, data_checks, monkeypatch, capsys
):
    """Mutants: a missing module's stage run all the same; evaluate left out of the rank-0 stages."""
    assert not pipeline_module._has("gastrodistill.no_such_module")
    assert not pipeline_module._has("gastrodistill.no_such_package.module")  # its parent is missing too
    assert pipeline_module._has("gastrodistill.anonymity.audit")
    monkeypatch.setattr(pipeline_module, "_has", lambda module: module != "gastrodistill.anonymity.audit")
    calls: list[str] = []
    pipe = _stubbed(Pipeline(compose_cfg(["experiment=tiny"])), calls)
    pipe.run_stages(["distill", "audit", "artifact"])
    assert calls == ["distill", "artifact"] and "audit" not in pipe.timings
    note = "stage 'audit' skipped: gastrodistill.anonymity.audit is not part of this installation"
    assert pipe.notes == [note] and f"==> [2/3] {note}" in capsys.readouterr().out
    # global rank 1: generate, evaluate, audit and artifact are rank 0's; the patch store and distill run
    monkeypatch.setattr(pipeline_module, "_has", lambda module: True)
    monkeypatch.setattr(pipeline_module, "is_global_zero", lambda: False)
    monkeypatch.setattr(pipeline_module, "global_rank", lambda: 1)
    calls.clear()
    pipe.run_stages(ALL)
    assert calls == ["patches", "distill"]
    assert "==> [4/6] evaluate: runs on global rank 0 (this is rank 1)" in capsys.readouterr().out


def _earlier_record(out: Path) -> None:
    out.mkdir(parents=True)
    for name, text in EARLIER.items():
        (out / name).write_text(text)


def _record(out: Path) -> dict[str, str]:
    return {name: (out / name).read_text() for name in EARLIER}


def test_a_run_keeps_the_earlier_record_in_history_and_writes_its_own_with_its_timings(
    compose_cfg, monkeypatch
):
    """Mutants: reproduce.num_threads not applied; the history note left out, or given with no history;
    SUMMARY.md not in the record kept; the timings missing from timings.json or run_info.json; a summary
    without notes given a Notes heading."""
    cfg = compose_cfg(["experiment=tiny", "stages=[generate,patches]", "reproduce.num_threads=1"])
    out = Path(cfg.paths.output_dir)
    _earlier_record(out)
    threads: list[int] = []
    monkeypatch.setattr(pipeline_module.torch, "set_num_threads", threads.append)
    calls: list[str] = []
    _stubbed(Pipeline(cfg), calls).run()
    assert calls == ["generate", "patches"] and threads == [1]
    assert {p.name: p.read_text() for p in (out / "history" / "1").iterdir()} == EARLIER
    timings = json.loads((out / "timings.json").read_text())
    assert list(timings) == ["generate", "patches", "total"]
    info = json.loads((out / "run_info.json").read_text())
    assert info["stage"] == "reproduce" and info["stages"] == ["generate", "patches"]
    assert info["timings"] == timings
    summary = (out / "SUMMARY.md").read_text()
    assert "| stage | wall time (s) |\n|---|---|\n| generate | " in summary and "\n| total | " in summary
    assert (
        "## Notes\n\n- this folder's earlier run record (config.yaml, run_info.json, timings.json, "
        "SUMMARY.md) is kept in history/1/\n" in summary
    )
    # a second run keeps this one's record in history/2; a new folder keeps none and has no notes
    _stubbed(Pipeline(cfg), []).run()
    assert json.loads((out / "history" / "2" / "run_info.json").read_text())["timings"] == timings
    fresh = compose_cfg(["experiment=tiny", "stages=[generate]", f"paths.output_dir={out.parent / 'new'}"])
    _stubbed(Pipeline(fresh), []).run()
    assert not (out.parent / "new" / "history").exists()
    assert "## Notes" not in (out.parent / "new" / "SUMMARY.md").read_text()


def test_a_run_stopped_before_a_stage_finished_puts_the_earlier_record_back(compose_cfg):
    """Stopped in its first stage, the run puts the earlier record back and removes its copy (mutants: the
    copy kept, the files not copied back, the empty history/ left); what a stage retired into history/1
    stays there. Stopped after a stage finished, the run's own record stays (a mutant put the earlier
    one back whatever had finished)."""
    cfg = compose_cfg(["experiment=tiny", "stages=[generate,patches]"])
    out = Path(cfg.paths.output_dir)
    _earlier_record(out)
    with pytest.raises(KeyboardInterrupt):
        _stubbed(Pipeline(cfg), [], fail={"generate": KeyboardInterrupt()}).run()
    assert _record(out) == EARLIER and not (out / "history").exists()

    def retire(pipe, name):  # as Pipeline.retire_records moves evaluation records of replaced sets
        (pipe.history / "eval" / "records").mkdir(parents=True)
        (pipe.history / "eval" / "records" / "soft__x.npz").write_bytes(b"x")

    with pytest.raises(KeyboardInterrupt):
        _stubbed(Pipeline(cfg), [], fail={"generate": KeyboardInterrupt()}, during=retire).run()
    assert _record(out) == EARLIER
    assert (out / "history" / "1" / "eval" / "records" / "soft__x.npz").read_bytes() == b"x"
    later = out.parent / "later"
    _earlier_record(later)
    again = compose_cfg(["experiment=tiny", "stages=[generate,patches]", f"paths.output_dir={later}"])
    with pytest.raises(RuntimeError, match="stopped"):
        _stubbed(Pipeline(again), [], fail={"patches": RuntimeError("stopped")}).run()
    assert json.loads((later / "run_info.json").read_text())["stages"] == ["generate", "patches"]
    assert _record(later / "history" / "1") == EARLIER


def test_stages_out_of_order_anywhere_in_the_list_are_refused(compose_cfg):
    """Not only a first stage after the last (a mutant compared those two alone)."""
    from gastrodistill.pipeline.stages import ReproduceConfigError

    pipe = Pipeline(compose_cfg(["experiment=tiny", "stages=[generate,evaluate,distill]"]))
    with pytest.raises(
        ReproduceConfigError, match=r"stages \['generate', 'evaluate', 'distill'\] are out of order"
    ):
        pipe.check_values()


def test_a_data_module_without_gastric_patches_drops_only_the_gastric_stages_it_was_given(
    compose_cfg, capsys
):
    """Nothing dropped, nothing noted (a mutant noted 'stages [] skipped'); patches dropped are named."""
    pipe = Pipeline(compose_cfg(["data=npz", "data.path=x.npz"]))
    assert pipe.drop_gastric_stages(["distill", "evaluate"]) == ["distill", "evaluate"] and pipe.notes == []
    assert pipe.drop_gastric_stages(["patches", "distill"]) == ["distill"]
    note = "stages ['patches'] skipped: they build gastric patches, which NpzDataModule does not read"
    assert pipe.notes == [note] and capsys.readouterr().out == f"==> {note}\n"


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["stages=[distill]", "distill.image_init=zeros"], "DistillConfigError", "distill.image_init"),
        (["stages=[audit]", "audit.closest_pairs=-1"], "AuditConfigError", "audit.closest_pairs must be"),
        (["stages=[audit]", "model.width=0"], "ModelConfigError", "ConvNet needs width >= 1"),
        (
            ["stages=[evaluate]", "eval.architectures=[same,lenett]"],
            "EvaluationConfigError",
            "'lenett' is not",
        ),
    ],
)
def test_a_stages_values_are_checked_when_it_runs_without_the_stages_before_it(
    compose_cfg, overrides, error, message
):
    """The distill.*, audit.* and network values of a study that starts at that stage (mutants checked them
    only with generate, with distill, or the networks only for distill and evaluate)."""
    pipe = Pipeline(compose_cfg(["experiment=tiny", *overrides]))
    with pytest.raises(Exception, match=message) as info:
        pipe.check_values()
    assert type(info.value).__name__ == error or type(info.value.__cause__).__name__ == error


def test_values_only_a_left_out_stage_reads_are_not_refused(compose_cfg, tmp_path):
    """No test patients matter without the evaluation, no read root without a stage after generate, no
    validation split without the evaluation; a synthetic.root spelt with '..' is the data root (mutants
    refused each)."""
    for overrides in (
        ["stages=[generate]", "synthetic.test_gastritis=0"],
        ["stages=[generate]", f"synthetic.root={tmp_path / 'elsewhere'}"],
        ["stages=[generate,patches,distill]", "data.val_fraction=0"],
    ):
        Pipeline(compose_cfg(["experiment=tiny", *overrides])).check_values()
    root = Path(compose_cfg(["experiment=tiny"]).paths.data_root)
    spelt = f"synthetic.root={root.parent / 'x' / '..' / root.name}"
    Pipeline(compose_cfg(["experiment=tiny", "stages=[generate,patches]", spelt])).check_values()


def test_an_artifact_stage_alone_checks_the_experiment_name(compose_cfg):
    """The name goes into the cards the artifact stage writes (a mutant checked it for the audit only)."""
    from gastrodistill.sharing.card import CardError

    with pytest.raises(CardError, match="DOE"):
        Pipeline(compose_cfg(["experiment=tiny", "experiment_name='DOE^JOHN'"])).check_reproduce_section(
            ["artifact"]
        )


def test_the_random_subsets_are_checked_at_the_distilled_sets_size_or_n_per_class(compose_cfg, monkeypatch):
    """ipc x steps images per class when this run distils and n_per_class is null; n_per_class when set;
    nothing to check for sets read later, or without random-subset baselines (mutants: ipc alone; the
    distilled size without the distill stage)."""
    sizes: list[int] = []
    monkeypatch.setattr(
        "gastrodistill.evaluation.splits.check_random_subset_size", lambda dm, n: sizes.append(n)
    )
    monkeypatch.setattr(Pipeline, "datamodule", lambda self: None)
    sized = ["experiment=tiny", "distill.ipc=3", "distill.steps=5"]
    Pipeline(compose_cfg(sized)).check_random_subsets(["distill", "evaluate"])
    Pipeline(compose_cfg(sized)).check_random_subsets(["evaluate"])
    Pipeline(compose_cfg([*sized, "eval.baselines.n_per_class=4"])).check_random_subsets(["evaluate"])
    Pipeline(compose_cfg([*sized, "eval.baselines.methods=[full,mean]"])).check_random_subsets(
        ["distill", "evaluate"]
    )
    assert sizes == [15, 4]


def test_stages_that_read_sets_are_refused_in_a_folder_without_them_unless_sets_are_there(
    compose_cfg, monkeypatch
):
    """The evaluation with later stages needs sets whatever its baselines (a mutant let the baselines decide
    for any list starting with evaluate); sets in the folder let the audit run (a mutant ignored them)."""
    from gastrodistill.pipeline.stages import ReproduceConfigError

    pipe = Pipeline(compose_cfg(["experiment=tiny", "eval.baselines.methods=[mean]"]))
    pipe.check_sets_present(["evaluate"])
    with pytest.raises(ReproduceConfigError, match="stage 'evaluate' needs distilled sets") as info:
        pipe.check_sets_present(["evaluate", "audit"])
    assert "n_per_class" not in str(info.value)
    monkeypatch.setattr(Pipeline, "distilled_sets", lambda self: {"soft": object()})
    Pipeline(compose_cfg(["experiment=tiny"])).check_sets_present(["audit", "artifact"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reproduce.num_threads=0", "reproduce.num_threads must be an integer >= 1 or null, got 0"),
        (
            "synthetic.test_non_gastritis=0",
            "synthetic.test_non_gastritis=0: the test split would hold no patient",
        ),
        (
            "eval.patient.positive_class=tumour",
            r"eval.patient.positive_class = 'tumour' is not a class of the data \['irrelevant', "
            r"'non-gastritis', 'gastritis'\]; patient metrics need it",
        ),
    ],
)
def test_a_zero_count_a_diagnosis_without_test_patients_and_an_unknown_positive_class_are_refused(
    compose_cfg, override, message
):
    """Mutants: 0 taken for 'not set'; test_non_gastritis not checked; the positive class not required
    (a name close to none of the classes passed)."""
    from gastrodistill.pipeline.stages import ReproduceConfigError

    with pytest.raises(ReproduceConfigError, match=message):
        Pipeline(compose_cfg(["experiment=tiny", override])).check_values()


def test_the_recipe_names_the_generator_only_for_a_run_that_generates_and_counts_one_network(compose_cfg):
    """Mutants: the generator named for data the run did not generate; 'networks' for one."""
    from gastrodistill.pipeline.summary import recipe_lines

    cfg = compose_cfg(["experiment=tiny", "stages=[patches,distill]", "eval.n_networks=1"])
    data, _, _, evaluation = recipe_lines(cfg, ["soft"])
    assert data == (
        f"data: GastricPatchDataModule, {cfg.data.patch_size} px patches stored at "
        f"{cfg.data.storage_size} px; run seed {cfg.seed}"
    )
    assert evaluation.startswith("evaluation: 1 fresh network per row; schedules ")


def test_summary_paths_are_relative_inside_the_run_folder_and_named_by_their_key_outside(tmp_path):
    """Inside the folder, relative to it once resolved (a mutant kept 'a/..'); outside it, the config key,
    the store by its folder's name under its key (a mutant dropped the name), anything else unnamed."""
    from gastrodistill.pipeline.summary import shown_path

    out = tmp_path / "run"
    (out / "eval").mkdir(parents=True)
    assert shown_path(out, "results table", out / "a" / ".." / "eval" / "results.md") == "`eval/results.md`"
    assert shown_path(out, "data", tmp_path / "site" / "data") == "`paths.data_root` (config.yaml)"
    store = tmp_path / "stores" / "store_ab12"
    assert shown_path(out, "patch store", store) == "`store_ab12` under `data.store_root` (config.yaml)"
    assert shown_path(out, "plots", tmp_path / "elsewhere") == "outside the run folder (config.yaml)"


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without a GPU")
def test_a_sweep_for_other_machines_leaves_the_evaluations_device_unchecked_here(compose_cfg):
    """``check_values(here=False)`` passes on the evaluation's GPU setting; here it is refused (a mutant
    checked the evaluation's device against this machine in both cases)."""
    from gastrodistill.evaluation.jobs import EvaluationConfigError

    cfg = compose_cfg(["experiment=tiny", "eval.baselines.real.accelerator=gpu"])
    assert Pipeline(cfg).check_values(here=False) == ALL
    with pytest.raises(EvaluationConfigError, match="Lightning refuses them on this machine"):
        Pipeline(cfg).check_values()


def test_an_evaluation_re_run_checks_the_folders_finished_networks_unless_earlier_stages_remake_the_data(
    compose_cfg, monkeypatch
):
    """The finished networks are checked against the folder's sets for an evaluation alone, and, for a
    resume that evaluates, all but the resumed sets' networks; after a patches stage nothing is checked
    (mutants: patches left out of that rule; the resumed sets' networks checked too)."""
    seen: list[tuple] = []
    monkeypatch.setattr(
        "gastrodistill.evaluation.report.finished_jobs", lambda eval_dir: {"soft__replay__same"}
    )
    monkeypatch.setattr(
        "gastrodistill.evaluation.checks.check_distilled_sets",
        lambda sets, dm: seen.append(("sets", list(sets))),
    )
    monkeypatch.setattr(
        "gastrodistill.evaluation.run.check_finished_networks",
        lambda cfg, dm, sets, eval_dir, skip_methods: seen.append(("networks", list(skip_methods))),
    )
    monkeypatch.setattr(Pipeline, "datamodule", lambda self: None)
    monkeypatch.setattr(Pipeline, "distilled_sets", lambda self: {"soft": object()})
    Pipeline(compose_cfg(["experiment=tiny"])).check_evaluation_resume(["patches", "evaluate"])
    assert seen == []
    Pipeline(compose_cfg(["experiment=tiny"])).check_evaluation_resume(["evaluate"])
    assert seen == [("sets", ["soft"]), ("networks", [])]
    seen.clear()
    resume = compose_cfg(["experiment=tiny", "distill.resume=last"])
    Pipeline(resume).check_evaluation_resume(["distill", "evaluate"])
    assert seen == [("networks", ["soft", "hard"])]


def test_a_folder_without_an_earlier_run_info_has_no_record_to_keep(tmp_path):
    """config.yaml and SUMMARY.md without run_info.json are no run record: nothing is copied to history/
    (a mutant kept any of the record's files)."""
    from gastrodistill.pipeline.run_record import keep_earlier_record

    (tmp_path / "config.yaml").write_text("seed: 3\n")
    (tmp_path / "SUMMARY.md").write_text("# mine\n")
    assert keep_earlier_record(tmp_path) is None and not (tmp_path / "history").exists()
