"""The label modes' child processes (``reproduce.parallel_modes``, :mod:`gastrodistill.pipeline.workers`) and
what the stages hand each other (:mod:`gastrodistill.pipeline.context`), with the pool, the children's work
and the data module replaced by recorders (the processes themselves:
tests/distillation/test_reproduce_parallel_modes.py)."""

from __future__ import annotations

import contextlib
from concurrent.futures import Future
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from gastrodistill.pipeline import context, workers
from gastrodistill.pipeline.context import StudyContext

TEACHER = [
    "distill.texture_matching.steps=3",
    "distill.texture_matching.features=teacher",
]


class _Pool:
    """A pool that runs each job at once in this process (its error kept in its future, as a process
    pool's); ``calls``: (function name, arguments) in the order submitted."""

    def __init__(self, calls: list, fail: dict | None = None):
        self.calls, self.fail = calls, fail or {}

    def submit(self, fn, *args):
        self.calls.append((fn.__name__, args))
        future: Future = Future()
        if fn.__name__ in self.fail:
            future.set_exception(self.fail[fn.__name__])
        else:
            future.set_result(fn.__name__)
        return future


@pytest.fixture
def pool(monkeypatch):
    """``spawn_pool`` replaced by :class:`_Pool`; returns the calls and the pool sizes asked for, and
    ``fail`` (function name -> exception) to make a job fail."""
    seen = {"calls": [], "sizes": [], "fail": {}}

    @contextlib.contextmanager
    def spawn_pool(n):
        seen["sizes"].append(n)
        yield _Pool(seen["calls"], seen["fail"])

    monkeypatch.setattr(workers, "spawn_pool", spawn_pool)
    return seen


@pytest.mark.parametrize(
    ("trainer", "one"),
    [
        (None, True),
        ({}, True),
        ({"devices": 1, "num_nodes": 1}, True),
        ({"devices": "1", "num_nodes": None}, True),
        ({"devices": 2, "num_nodes": 1}, False),
        ({"devices": "auto"}, False),
        ({"devices": 1, "num_nodes": 2}, False),
        ({"num_nodes": 2}, False),
    ],
)
def test_one_device_is_one_device_on_one_node_with_both_defaulting_to_one(trainer, one):
    """Mutants: devices defaulting to 2; ``or`` for ``and``; the node count left out or taken as >= 1."""
    cfg = OmegaConf.create({} if trainer is None else {"trainer": trainer})
    assert workers.one_device(cfg) is one


@pytest.mark.parametrize(
    ("overrides", "shared"),
    [
        (TEACHER, True),
        (["distill.texture_matching.steps=0", "distill.texture_matching.features=teacher"], False),
        (["distill.texture_matching.steps=3", "distill.texture_matching.features=random"], False),
    ],
)
def test_a_teacher_is_shared_only_when_texture_matching_runs_under_one(compose_cfg, overrides, shared):
    """Mutants: ``or`` for ``and``; the steps not looked at (matching off still trained a teacher)."""
    assert workers.shared_teacher(compose_cfg(["experiment=tiny", *overrides])) is shared


def test_the_teacher_folder_is_a_hidden_folder_in_distill_removed_when_done(tmp_path):
    """Mutants: not hidden (a ``teacher-*`` folder beside the sets); made in the run folder itself."""
    out = tmp_path / "run"
    with workers.teacher_folder(out) as tmp:
        assert Path(tmp).parent == out / "distill" and Path(tmp).name.startswith(".teacher-")
        assert Path(tmp).is_dir()
    assert list((out / "distill").iterdir()) == []


def _resolved(cfg):
    return OmegaConf.to_container(cfg, resolve=True)


def test_one_teacher_is_trained_for_every_mode_beside_the_reference_and_handed_to_each(
    compose_cfg, pool, capsys
):
    """The teacher and the evaluation's reference first, then each mode with the teacher's file; every
    child gets the resolved config and the thread count. Mutants: a config with interpolations, 1 thread
    for a child, the reference written to the run folder, the sets to the run folder, no reference."""
    from gastrodistill.distillation.run import TEACHER_FILE

    cfg = compose_cfg(["experiment=tiny", "stages=[distill,evaluate]", *TEACHER])
    out = Path(cfg.paths.output_dir)
    workers.distill_in_processes(cfg, out, ["soft", "hard"], {"soft": None, "hard": None}, 2, 3)
    resolved = _resolved(cfg)
    (_, (r0, teacher, t0)), (_, (r1, eval_dir, t1)), *modes = pool["calls"]
    assert [name for name, _ in pool["calls"]] == ["texture_teacher", "reference_job"] + ["distill_mode"] * 2
    assert r0 == r1 == resolved and (t0, t1) == (3, 3) and pool["sizes"] == [2]
    assert Path(teacher).name == TEACHER_FILE and Path(teacher).parent.parent == out / "distill"
    assert Path(teacher).parent.name.startswith(".teacher-")
    assert eval_dir == str(out / "eval")
    assert [args for _, args in modes] == [
        (resolved, str(out / "distill"), mode, None, 3, teacher) for mode in ("soft", "hard")
    ]
    said = capsys.readouterr().out
    assert "--- distillation: soft, hard labels in 2 processes\n" in said
    assert (
        "--- texture-matching teacher (once, for every mode) beside the evaluation's reference network\n"
        in (said)
    )


def test_a_resumed_mode_gets_its_checkpoint_and_no_teacher_and_without_evaluate_no_reference(
    compose_cfg, pool, capsys
):
    """One fresh mode still shares the teacher (the resumed one neither needs nor gets it); all modes
    resumed: no teacher at all; no evaluate stage: no reference. Mutants: ``all`` for ``any``, the teacher
    whatever the resumes, the teacher handed to a resumed mode, the checkpoint not passed, a reference
    without the evaluate stage."""
    cfg = compose_cfg(["experiment=tiny", "stages=[distill]", *TEACHER])
    out, ckpt = Path(cfg.paths.output_dir), Path("soft.ckpt")
    workers.distill_in_processes(cfg, out, ["soft", "hard"], {"soft": ckpt, "hard": None}, 2, 1)
    names = [name for name, _ in pool["calls"]]
    assert names == ["texture_teacher", "distill_mode", "distill_mode"]
    teacher = pool["calls"][0][1][1]
    assert [args[2:] for _, args in pool["calls"][1:]] == [
        ("soft", ckpt, 1, None),
        ("hard", None, 1, teacher),
    ]
    assert "beside the evaluation's reference network" not in capsys.readouterr().out
    pool["calls"].clear()
    both = {"soft": ckpt, "hard": Path("hard.ckpt")}
    workers.distill_in_processes(cfg, out, ["soft", "hard"], both, 2, 1)
    assert [(name, args[2:]) for name, args in pool["calls"]] == [
        ("distill_mode", ("soft", ckpt, 1, None)),
        ("distill_mode", ("hard", Path("hard.ckpt"), 1, None)),
    ]
    assert "texture-matching teacher" not in capsys.readouterr().out


@pytest.mark.parametrize("failing", ["texture_teacher", "reference_job"])
def test_a_failing_teacher_or_reference_stops_the_stage_with_its_error(compose_cfg, pool, failing):
    """The teacher's error is raised before any mode starts; the reference's after the modes (mutants: the
    teacher's result not awaited; the reference left out of the jobs awaited, its error lost)."""
    pool["fail"][failing] = RuntimeError(f"{failing} failed")
    cfg = compose_cfg(["experiment=tiny", "stages=[distill,evaluate]", *TEACHER])
    with pytest.raises(RuntimeError, match=f"^{failing} failed$"):
        workers.distill_in_processes(cfg, Path(cfg.paths.output_dir), ["soft"], {"soft": None}, 2, 1)
    assert ("distill_mode" in [name for name, _ in pool["calls"]]) == (failing == "reference_job")


class _DataModule:
    """A data module that records what was asked of it."""

    def __init__(self, calls: list):
        self.calls = calls

    def prepare_data(self):
        self.calls.append("prepare_data")

    def setup(self, *args):
        self.calls.append(("setup", *args))


@pytest.fixture
def child(monkeypatch):
    """The children's data module and torch thread count replaced by recorders: returns the calls."""
    calls: list = []
    monkeypatch.setattr(workers.hydra.utils, "instantiate", lambda node: _DataModule(calls))
    monkeypatch.setattr(workers.torch, "set_num_threads", lambda n: calls.append(("threads", n)))
    return calls


def test_each_child_sets_its_threads_and_prepares_its_data_as_its_stage_would(child, monkeypatch):
    """A mode leaves the data to run_distillation (with the teacher's file), the teacher prepares the fit
    stage, the reference every stage (``setup(None)``). Mutants: the threads not set; ``setup('')``;
    the reference's data not prepared; the teacher's for every stage; the teacher's file not passed."""
    resolved = {"data": {"_target_": "x.DataModule"}, "seed": 0}
    seen: dict = {}
    monkeypatch.setattr(
        "gastrodistill.distillation.run.run_distillation",
        lambda cfg, dm, out, **kw: seen.setdefault("distill", (OmegaConf.to_container(cfg), out, kw)),
    )
    monkeypatch.setattr(workers, "save_teacher", lambda cfg, dm, path: seen.setdefault("teacher", path))
    monkeypatch.setattr(
        "gastrodistill.evaluation.run.run_reference_job", lambda cfg, dm, out: seen.setdefault("ref", out)
    )
    assert workers.distill_mode(resolved, "o/distill", "hard", Path("c.ckpt"), 2, "t.safetensors") == "hard"
    assert seen["distill"] == (
        resolved,
        "o/distill",
        {"mode": "hard", "resume": Path("c.ckpt"), "teacher_file": "t.safetensors"},
    )
    assert child == [("threads", 2)]
    child.clear()
    assert workers.texture_teacher(resolved, "t.safetensors", 1) == "t.safetensors" == seen["teacher"]
    assert child == [("threads", 1), "prepare_data", ("setup", "fit")]
    child.clear()
    assert workers.reference_job(resolved, "o/eval", 3) == "o/eval" == seen["ref"]
    assert child == [("threads", 3), "prepare_data", ("setup", None)]


def test_the_context_builds_its_data_module_once_prepared_rank_zero_first_then_set_up(
    compose_cfg, monkeypatch
):
    """Mutants: built again on each call; not prepared; not set up."""
    calls: list = []
    monkeypatch.setattr(context.hydra.utils, "instantiate", lambda node: _DataModule(calls))
    monkeypatch.setattr(context, "prepare_data_rank_zero_first", lambda dm: dm.prepare_data())
    ctx = StudyContext(compose_cfg(["experiment=tiny"]))
    dm = ctx.datamodule()
    assert ctx.datamodule() is dm and calls == ["prepare_data", ("setup",)]


def test_the_context_reads_the_run_folder_the_modes_and_only_finished_sets(
    compose_cfg, monkeypatch, tmp_path
):
    """``out`` is paths.output_dir; modes are reproduce.distill_modes, soft and hard when the key is
    absent; a mode's folder without distilled.json holds no set; sets already in memory are not re-read.
    Mutants: the root for the run folder; reproduce ignored; a default of soft alone; any folder taken for
    a set, or the sets looked for in <run>/<mode>; the sets re-read from the folder."""
    from gastrodistill.distillation.distilled_set import META_FILE, DistilledSet

    loaded: list[Path] = []
    monkeypatch.setattr(DistilledSet, "load", staticmethod(lambda d: loaded.append(d) or f"set of {d.name}"))
    cfg = compose_cfg(
        ["experiment=tiny", f"paths.output_dir={tmp_path / 'run'}", "reproduce.distill_modes=[hard]"]
    )
    ctx = StudyContext(cfg)
    assert ctx.out == tmp_path / "run" and ctx.modes() == ["hard"]
    bare = OmegaConf.create({"paths": {"output_dir": str(tmp_path / "run")}})
    assert StudyContext(bare).modes() == ["soft", "hard"]
    for mode in ("soft", "hard"):
        (tmp_path / "run" / "distill" / mode).mkdir(parents=True)
    (tmp_path / "run" / "distill" / "soft" / META_FILE).write_text("{}")
    assert StudyContext(bare).distilled_sets() == {"soft": "set of soft"} and loaded == [
        tmp_path / "run" / "distill" / "soft"
    ]
    mine = StudyContext(bare)
    mine.sets["soft"] = "this run's set"
    assert mine.distilled_sets() == {"soft": "this run's set"} and len(loaded) == 1


def test_a_mode_given_without_brackets_is_that_one_mode(compose_cfg):
    """``reproduce.distill_modes=hard``, which the pre-flight reads as ``[hard]``, is the mode ``hard`` for
    the stages too (a bug: ``modes()`` gave its letters, and ``check_values`` refused distill.mode 'h')."""
    from gastrodistill.pipeline.preflight import PreflightChecks

    pipe = PreflightChecks(
        compose_cfg(["experiment=tiny", "stages=[distill]", "reproduce.distill_modes=hard"])
    )
    assert pipe.modes() == ["hard"]
    assert pipe.check_values() == ["distill"]
