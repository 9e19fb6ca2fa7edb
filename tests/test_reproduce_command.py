"""``gastrodistill-reproduce``'s own code around the pipeline (cli/reproduce.py): what ``run`` prints after
the stages and on another rank, and what ``check_values`` passes on, with the pipeline stubbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gastrodistill.cli import reproduce


class _FakePipeline:
    """What ``run`` reads of a finished Pipeline: its folder, stale outputs, notes, state, timings."""

    out: Path
    stale: set = set()
    notes: list = []
    state: dict = {}

    def __init__(self, cfg):
        self.cfg = cfg
        self.timings = {"total": 12.6}

    def run(self):
        return {"run folder": self.out, "results table": self.out / "eval" / "results.md"}


@pytest.fixture
def fake_pipeline(tmp_path, monkeypatch):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "results.md").write_text("| method | accuracy |\n| soft | 0.9 |\n")
    fake = type("Fake", (_FakePipeline,), {"out": tmp_path, "stale": set(), "notes": [], "state": {}})
    monkeypatch.setattr(reproduce, "Pipeline", fake)
    monkeypatch.setattr(reproduce, "is_global_zero", lambda: True)
    monkeypatch.setattr(reproduce, "target_lines", lambda df: [f"target: {df}"])
    return fake


def test_run_prints_the_table_the_notes_the_targets_the_stages_time_and_the_paths_aligned(
    fake_pipeline, tmp_path, capsys
):
    fake_pipeline.notes = ["first note", "second note"]
    fake_pipeline.state = {"results": "TABLE"}
    paths = reproduce.run("cfg")
    assert paths == {"run folder": tmp_path, "results table": tmp_path / "eval" / "results.md"}
    assert capsys.readouterr().out.split("\n") == [
        "| method | accuracy |",
        "| soft | 0.9 |",
        "",  # print() after the file's own last newline
        "note: first note",
        "note: second note",
        "target: TABLE",
        "stages: 13 s in all (start-up and the checks before them not counted)",
        f"  run folder     {tmp_path}",  # the keys padded to the longest, "results table"
        f"  results table  {tmp_path / 'eval' / 'results.md'}",
        "",
    ]


def test_run_leaves_out_a_stale_table_and_targets_without_results(fake_pipeline, tmp_path, capsys):
    """A re-run whose evaluation is stale (its sets replaced) does not show the old table as this run's;
    no targets without an evaluation's results (mutants: the stale check dropped or inverted)."""
    fake_pipeline.stale = {"evaluate"}
    reproduce.run("cfg")
    out = capsys.readouterr().out
    assert out.startswith("stages: 13 s in all") and "| method |" not in out and "target:" not in out
    fake_pipeline.stale = {"audit"}  # another stage's staleness keeps the table
    reproduce.run("cfg")
    assert capsys.readouterr().out.startswith("| method | accuracy |\n")


def test_another_rank_says_it_is_done_and_prints_nothing_of_rank_zeros(fake_pipeline, monkeypatch, capsys):
    fake_pipeline.state = {"results": "TABLE"}
    monkeypatch.setattr(reproduce, "is_global_zero", lambda: False)
    monkeypatch.setattr(reproduce, "global_rank", lambda: 3)
    paths = reproduce.run("cfg")
    assert set(paths) == {"run folder", "results table"}
    assert capsys.readouterr().out == "rank 3: done (evaluation, audit and outputs are global rank 0's)\n"


def test_check_values_passes_here_on_and_checks_the_jobs_mode_overrides(monkeypatch):
    """A sweep job's check: the pipeline's value check with ``here`` as given (a sweep for other machines
    is not checked against this one's devices), then the job's overrides against its modes."""
    seen = []

    class Pipe:
        def __init__(self, cfg):
            self.cfg = cfg

        def check_values(self, here):
            seen.append(("values", here))

        def modes(self):
            return ["soft", "hard"]

    monkeypatch.setattr(reproduce, "Pipeline", Pipe)
    monkeypatch.setattr(reproduce, "check_mode_override", lambda *a: seen.append(("modes", *a)))
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"distill": {"mode": "hard"}})
    reproduce.check_values(cfg, ["seed=1"], here=False)
    assert seen == [("values", False), ("modes", ["seed=1"], ["soft", "hard"], "hard")]


def test_a_tilde_deletion_of_distill_mode_is_refused_with_the_general_advice():
    """``~distill.mode`` has no value to advise on: the message names the three choices of
    reproduce.distill_modes (mutant: a deletion let through)."""
    with pytest.raises(reproduce.ReproduceConfigError) as info:
        reproduce.check_mode_override(["~distill.mode"], ["soft", "hard"], "soft")
    assert str(info.value) == (
        "distill.mode does not choose what gastrodistill-reproduce distils: it runs one set per "
        "reproduce.distill_modes (here ['soft', 'hard']). Drop distill.mode and set reproduce.distill_modes "
        "to [soft], [hard] or [soft,hard] (or run the distill stage alone: gastrodistill-distill "
        "distill.mode=...)"
    )


def test_a_hard_distill_option_is_refused_unless_the_modes_are_hard_alone():
    """distill=hard_cpu with modes [soft] or [soft, hard] would distil soft labels with a hard recipe; with
    [hard] it is what was asked (mutants: only [soft, hard] refused, or every hard option)."""
    for modes in (["soft"], ["soft", "hard"], ["hard", "soft"]):
        with pytest.raises(reproduce.ReproduceConfigError) as info:
            reproduce.check_mode_override(["distill=hard_cpu"], modes, "hard")
        assert str(info.value).startswith(
            "distill=hard_cpu sets distill.mode=hard, which gastrodistill-reproduce does not use: it "
            f"distils one set per reproduce.distill_modes (here {modes}) with that config's other values. "
            "Keep distill=hard_cpu and set reproduce.distill_modes=[hard] to distil only hard labels"
        )
    reproduce.check_mode_override(["distill=hard_cpu"], ["hard"], "hard")
    reproduce.check_mode_override(["distill=soft_cpu"], ["soft"], "soft")


def test_the_command_checks_the_mode_overrides_as_typed_without_resolving_them(tmp_path, monkeypatch):
    """An interpolation in an override's value is the job's to resolve where it reads it: the mode check
    parses the typed text (mutant: the overrides read resolved, so an unset variable in a value this run
    never reads stopped the command before its stages)."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    ran = []
    monkeypatch.setattr(reproduce, "run", lambda cfg: ran.append(list(cfg.stages)))
    monkeypatch.delenv("GASTRODISTILL_TEST_UNSET", raising=False)
    argv = ["gastrodistill-reproduce", "experiment=tiny", "stages=[distill]", f"paths.root_dir={tmp_path}"]
    value = "${oc.env:GASTRODISTILL_TEST_UNSET}"  # unset: only an audit would read it
    monkeypatch.setattr(
        sys, "argv", [*argv, f"hydra.run.dir={tmp_path / 'run'}", f"audit.closest_pairs={value}"]
    )
    GlobalHydra.instance().clear()
    try:
        reproduce.main()
    finally:
        GlobalHydra.instance().clear()
    assert ran == [["distill"]]


def test_the_studys_config_error_is_a_value_error_as_the_other_config_errors_are():
    """Python callers catch a config that cannot run as ValueError, whichever section it is in (mutant: an
    Exception)."""
    from gastrodistill.distillation.config_check import DistillConfigError
    from gastrodistill.models.layers import ModelConfigError

    for error in (reproduce.ReproduceConfigError, DistillConfigError, ModelConfigError):
        assert issubclass(error, ValueError), error
