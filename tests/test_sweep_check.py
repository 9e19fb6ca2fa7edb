"""A sweep's bad value is refused before its first job starts, naming the job (cli.sweep_check)."""

from __future__ import annotations

import itertools
import sys

import pytest
from _cli_runner import assert_nothing_written, run_main
from hydra.core.global_hydra import GlobalHydra

from gastrodistill.cli import CONF_DIR
from gastrodistill.cli.sweep_check import MAX_CHECKED_JOBS, jobs_to_check, sweep_jobs, sweep_problem
from gastrodistill.pipeline.stages import ReproduceConfigError


def test_the_jobs_are_hydras_product_in_its_order():
    """Computed here independently: the product of the swept lists, the last override varying fastest,
    a plain override in every job, a repeated key taking its last value (as Hydra's sweeper does)."""
    jobs = sweep_jobs(["distill.ipc=1,2", "seed=0", "model.width=8,16,32", "seed=5"])
    assert jobs == [
        ["distill.ipc=1", "seed=5", "model.width=8"],
        ["distill.ipc=1", "seed=5", "model.width=16"],
        ["distill.ipc=1", "seed=5", "model.width=32"],
        ["distill.ipc=2", "seed=5", "model.width=8"],
        ["distill.ipc=2", "seed=5", "model.width=16"],
        ["distill.ipc=2", "seed=5", "model.width=32"],
    ]
    assert sweep_jobs(["distill.ipc=range(1,4)"]) == [[f"distill.ipc={i}"] for i in (1, 2, 3)]
    assert sweep_jobs(["distill.ipc=3"]) is None  # nothing swept
    assert sweep_jobs(["distill=glob(*)"]) is None  # needs the config's options: not expanded here
    assert sweep_jobs(["distill.ipc=[unclosed"]) is None  # Hydra's own parse error, later


def test_a_large_sweep_is_checked_on_jobs_that_hold_every_value():
    lists = [[f"a={i}" for i in range(9)], ["b=x", "b=y"], [f"c={i}" for i in range(4)], ["d=1"]]
    jobs = [list(j) for j in itertools.product(*lists)]
    assert len(jobs) == 72 > MAX_CHECKED_JOBS
    chosen = jobs_to_check(jobs)
    assert len(chosen) == 9 == len(set(chosen))  # one per value of the longest list
    for column in lists:  # each value of each override is in a checked job
        assert {text for n in chosen for text in jobs[n]} >= set(column)
    small = jobs[:MAX_CHECKED_JOBS]
    assert jobs_to_check(small) == list(range(MAX_CHECKED_JOBS))


@pytest.fixture
def no_hydra():
    GlobalHydra.instance().clear()
    yield
    GlobalHydra.instance().clear()


def test_the_first_refused_job_is_named_with_its_swept_values(no_hydra, tmp_path):
    from gastrodistill.cli.distill import check_values

    argv = ["-m", "experiment=tiny", "distill.outer_steps=2", "distill.ipc=1,2", "model.width=8,abc"]
    text = sweep_problem(argv, CONF_DIR, "config", check_values)
    assert text == (
        "error: model.width = 'abc' must be an int (got str) [sweep job #1 of 4: distill.ipc=1 "
        "model.width=abc; no job was started]"
    )
    # A value that only jobs past the product's first 32 hold (the first override varies slowest) is found
    # in the job of the covering set that holds it: #64 = ipc's 9th value, outer_steps' 1st, seed's 1st.
    many = [
        "-m",
        "experiment=tiny",
        f"paths.root_dir={tmp_path}",  # no synthetic collection there: its seed is not checked
        "distill.ipc=1,2,3,4,5,6,7,8,0",
        "distill.outer_steps=1,2,3,4",
        "seed=0,1",
    ]
    text = sweep_problem(many, CONF_DIR, "config", check_values)
    assert text.startswith(
        "error: distill.ipc must be an integer >= 1, got 0 [sweep job #64 of 72: distill.ipc=0 "
        "distill.outer_steps=1 seed=0; no job was started"
    )
    assert (
        sweep_problem(
            [*many[:3], "distill.ipc=1,2,3,4,5,6,7,8,9", *many[4:]], CONF_DIR, "config", check_values
        )
        is None
    )
    assert sweep_problem(argv[1:], CONF_DIR, "config", check_values) is None  # no -m: one job, its own check
    assert sweep_problem(argv, CONF_DIR, "config", None) is None  # a command without value checks


def test_an_error_that_is_not_a_refusal_leaves_the_job_to_check_itself(no_hydra, capsys):
    """Only the project's own errors refuse a sweep; anything else (here a KeyError, as from a value that
    needs Hydra's runtime) means the check cannot tell, and the jobs run as before. What the check gets is
    recorded and asserted outside it (an assertion inside is an error the sweep check swallows: the mutants
    that kept the ``hydra`` node or let the check print went unseen)."""
    seen = []

    def check_values(cfg, overrides, here):
        seen.append((int(cfg.distill.ipc), list(overrides), here, "hydra" in cfg))
        print("checking")
        print("checking", file=sys.stderr)
        raise KeyError("hydra runtime")

    assert (
        sweep_problem(["-m", "experiment=tiny", "distill.ipc=1,2"], CONF_DIR, "config", check_values) is None
    )
    # the job's own overrides, the basic launcher (here), the job's own config (no hydra node)
    assert seen == [(n, ["experiment=tiny", f"distill.ipc={n}"], True, False) for n in (1, 2)]
    assert capsys.readouterr() == ("", "")  # the check's prints are the job's to show


@pytest.mark.parametrize(
    ("command", "sweep", "refusal"),
    [
        ("distill", "distill.ipc=1,0", "error: distill.ipc must be an integer >= 1, got 0"),
        ("evaluate", "eval.n_networks=1,0", "error: eval.n_networks must be an integer >= 1, got 0"),
        ("audit", "audit.nearest.top_k=2,0", "error: audit.nearest.top_k must be an integer >= 1, got 0"),
        (
            "reproduce",
            "stages=[distill],[audit,distill]",
            "error: stages ['audit', 'distill'] are out of order",
        ),
    ],
)
def test_each_command_refuses_the_sweep_before_any_job_and_writes_nothing(
    command, sweep, refusal, tmp_path, monkeypatch, capsys
):
    import importlib

    main = importlib.import_module(f"gastrodistill.cli.{command}").main
    argv = [
        f"gastrodistill-{command}",
        "-m",
        "experiment=tiny",
        f"paths.root_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        sweep,
    ]
    code, text = run_main(main, argv, monkeypatch, capsys)
    assert code == 1
    assert (
        text.strip().startswith(refusal)
        and f" [sweep job #1 of 2: {sweep.split(',')[0].split('=')[0]}=" in text
    )
    assert text.count("\n") == 1  # one line, no traceback
    assert_nothing_written(tmp_path)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a machine without a GPU")
def test_a_sweep_launched_onto_other_machines_is_not_refused_for_this_ones_devices(no_hydra):
    """A SLURM sweep of GPU jobs is launched from a login node without a GPU: the device check, which holds
    for jobs Hydra's basic launcher runs here, must not refuse it (its other value checks still run)."""
    from gastrodistill.cli.reproduce import check_values

    argv = ["-m", "experiment=tiny", "trainer.accelerator=gpu", "seed=0,1"]
    text = sweep_problem(argv, CONF_DIR, "config", check_values)
    assert text.startswith("error: trainer.accelerator=gpu but this machine has no CUDA device")
    remote = [*argv, "hydra.launcher._target_=my_cluster.SlurmLauncher"]  # as a launcher plugin sets it
    assert sweep_problem(remote, CONF_DIR, "config", check_values) is None
    text = sweep_problem([*remote, "eval.n_networks=1,0"], CONF_DIR, "config", check_values)
    assert text.startswith("error: eval.n_networks must be an integer >= 1, got 0")


def test_valid_sweeps_the_jobs_accept_are_not_refused(no_hydra, capsys):
    """A breaker's false refusals: a ``~key`` deletion was dropped from the composed job (the cpu preset's
    npz specialisation then set distill.steps=10 and refused window=20, which the job accepts), and a
    ``${hydra:job.num}`` value, which resolves only in the job, counted as a refusal."""
    from gastrodistill.cli.distill import check_values

    deleted = ["-m", "experiment=cpu", "data=npz", "data.path=x.npz", "~specialize", "~specialize_model"]
    assert sweep_problem([*deleted, "distill.window=20,30"], CONF_DIR, "config", check_values) is None
    text = sweep_problem([*deleted[:-2], "distill.window=20,30"], CONF_DIR, "config", check_values)
    assert text.startswith("error: distill.window must be an integer in [1, T=10]")  # with the specialisation
    runtime = ["-m", "experiment=tiny", "distill.ckpt_every=${hydra:job.num}", "distill.outer_steps=1,2"]
    assert sweep_problem(runtime, CONF_DIR, "config", check_values) is None
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    left = OmegaConf.create({"hydra": {"job": {"num": None}}})  # an earlier in-process run's, left set
    HydraConfig.instance().cfg = left
    try:  # it is not the job's: ${hydra:job.num} gave None there and the value was refused (CI order)
        assert sweep_problem(runtime, CONF_DIR, "config", check_values) is None
        assert HydraConfig.instance().cfg is left
    finally:
        HydraConfig.instance().cfg = None
    assert capsys.readouterr() == ("", "")  # the checks' own prints are the jobs' to show


def test_hydra_mode_multirun_and_the_reproduce_mode_choice_are_checked(no_hydra):
    from gastrodistill.cli.reproduce import check_values

    argv = ["experiment=tiny", "hydra.mode=MULTIRUN", "distill.ipc=1,0"]  # a multirun without -m
    assert sweep_problem(argv, CONF_DIR, "config", check_values).startswith(
        "error: distill.ipc must be an integer >= 1, got 0 [sweep job #1 of 2"
    )
    modes = ["-m", "experiment=tiny", "distill=soft_cpu,hard_cpu", "stages=[distill]"]
    text = sweep_problem(modes, CONF_DIR, "config", check_values)
    assert text.startswith("error: distill=hard_cpu sets distill.mode=hard") and "[sweep job #1 of 2" in text
    shuffled = ["-m", "experiment=tiny", "distill.ipc=shuffle(1,0)"]
    assert "[sweep job of 2 (shuffled): distill.ipc=0; no job was started]" in sweep_problem(
        shuffled, CONF_DIR, "config", check_values
    )


def test_a_log_handler_made_during_the_check_is_undone(no_hydra, caplog):
    """Lightning, imported first inside the check, made its StreamHandler on the redirected (then closed)
    stderr and stopped propagating: every sweep printed "--- Logging error --- ... I/O operation on closed
    file" and its job logs lost Lightning's lines. Such a handler is removed after the check and its logger
    propagates to the job's handlers again."""
    import logging

    made = logging.getLogger("gastrodistill.tests.made_during_check")

    def check_values(cfg, overrides, here):
        if not made.handlers:  # what a library does at import when the root logger has no handler
            made.addHandler(logging.StreamHandler())
            made.propagate = False

    try:
        assert (
            sweep_problem(["-m", "experiment=tiny", "distill.ipc=1,2"], CONF_DIR, "config", check_values)
            is None
        )
        assert made.handlers == [] and made.propagate
        with caplog.at_level(logging.INFO):
            made.warning("a line after the check")
        assert "a line after the check" in caplog.text  # through the root's handlers, as in a job
    finally:
        for h in list(made.handlers):
            made.removeHandler(h)
        made.propagate = True


@pytest.mark.parametrize("command", ["distill", "evaluate", "audit"])
def test_a_seed_sweep_over_one_synthetic_collection_is_refused_before_its_first_job(
    compose_cfg, tmp_path, command
):
    """``gastrodistill-distill -m seed=0,1`` without ``synthetic.seed``: job #1 was refused after job #0
    had distilled (``synthetic.seed`` follows ``seed``, and the collection on disk has seed 0's)."""
    import importlib

    from gastrodistill.cli.reproduce import Pipeline

    check_values = importlib.import_module(f"gastrodistill.cli.{command}").check_values
    Pipeline(compose_cfg(["experiment=tiny", "stages=[generate]", "synthetic.seed=0"])).run()
    GlobalHydra.instance().clear()
    base = ["-m", "experiment=tiny", f"paths.root_dir={tmp_path}"]
    text = sweep_problem([*base, "seed=0,1"], CONF_DIR, "config", check_values)
    assert text is not None and text.startswith("error: ") and "synthetic.seed=0" in text, text
    assert text.endswith("[sweep job #1 of 2: seed=1; no job was started]"), text
    assert sweep_problem([*base, "seed=0,1", "synthetic.seed=0"], CONF_DIR, "config", check_values) is None


def test_a_reproduce_seed_sweep_that_would_generate_over_its_own_collection_is_refused(compose_cfg, tmp_path):
    """``gastrodistill-reproduce -m seed=0,1`` (a docs tester's finding): each job generated its collection
    into one folder, replacing the one before, so job #0's sets no longer matched the data on disk (no
    per-job check can see it: each job's own collection is fine). Refused before any job; one collection
    (``synthetic.seed``) or one folder per job pass; jobs that generate nothing are left to their own
    check."""
    from gastrodistill.cli.reproduce import check_values
    from gastrodistill.pipeline.preflight import check_sweep_collections

    argv = ["-m", "experiment=tiny", f"paths.root_dir={tmp_path}", "seed=0,1"]
    text = sweep_problem(argv, CONF_DIR, "config", check_values, check_sweep_collections)
    assert text is not None and text.startswith("error: sweep jobs #0 (seed=0) and #1 (seed=1) generate "), (
        text
    )
    assert "add synthetic.seed=N" in text and text.endswith("[sweep of 2 jobs; no job was started]"), text
    assert (
        sweep_problem([*argv, "synthetic.seed=0"], CONF_DIR, "config", check_values, check_sweep_collections)
        is None
    )
    assert not any(tmp_path.iterdir())  # nothing generated or written by the check

    def refusal(*jobs: list[str]) -> str | None:
        configs = []
        for n, overrides in enumerate(jobs):
            configs.append(
                (f"#{n}", compose_cfg(["experiment=tiny", f"paths.root_dir={tmp_path}", *overrides]))
            )
            GlobalHydra.instance().clear()
        try:
            check_sweep_collections(configs)
        except ReproduceConfigError as exc:
            return str(exc)
        return None

    text = refusal(["synthetic.burn_in_text=true"], ["synthetic.burn_in_text=false"])  # settings, one seed
    assert text is not None and text.startswith(
        "sweep jobs #0 and #1 generate different synthetic collections"
    )
    assert "paths.data_root" in text and "synthetic.seed=N" not in text  # one seed already
    assert (
        refusal(["seed=0", "paths.data_root=a"], ["seed=1", "paths.data_root=b"]) is None
    )  # one folder each
    assert refusal(["seed=0", "stages=[distill]"], ["seed=1", "stages=[distill]"]) is None  # no generate
    assert refusal(["seed=0", "data=digits"], ["seed=1", "data=digits"]) is None  # no synthetic data at all
    assert refusal(["seed=0"], ["seed=0"], ["seed=2"]) is not None  # any two jobs, not only neighbours
    assert refusal(["seed=0", "stages=generate"], ["seed=1", "stages=generate"]) is not None  # a stage alone
    same = [f"paths.data_root={tmp_path}/d", f"paths.data_root={tmp_path}/e/../d"]  # one folder, 2 names
    assert refusal(["seed=0", same[0]], ["seed=1", same[1]]) is not None


def test_gastrodistill_reproduce_refuses_such_a_sweep_before_any_job(tmp_path, capsys, monkeypatch):
    """The command itself, not only the check: its decorator passes the check of the jobs side by side."""
    from gastrodistill.cli.reproduce import main

    argv = ["gastrodistill-reproduce", "-m", "experiment=tiny", f"paths.root_dir={tmp_path}", "seed=0,1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 1 and "Traceback" not in err
    assert err.startswith(
        "error: sweep jobs #0 (seed=0) and #1 (seed=1) generate different synthetic collections"
    )
    assert err.rstrip().endswith("[sweep of 2 jobs; no job was started]")
    assert not any(tmp_path.iterdir())


def _refusing(key, *bad):
    """A ``check_values`` that refuses (the project's CommandError) a job whose ``key`` is in ``bad``."""
    from omegaconf import OmegaConf

    from gastrodistill.cli.errors import CommandError

    def check_values(cfg, overrides, here):
        value = OmegaConf.select(cfg, key)
        if value in bad:
            raise CommandError(f"{key}={value} refused")

    return check_values


def test_a_large_sweep_names_the_first_refused_value_in_the_order_given(no_hydra):
    """Over MAX_CHECKED_JOBS, the covering jobs follow the longest list's values as given (mutant: sorted,
    which named 8 first); the job's number is its place in the product (the first override slowest)."""
    lists = [
        [f"distill.ipc={i}" for i in (1, 2, 3, 4, 5, 6, 7, 9, 8)],
        [f"distill.outer_steps={i}" for i in (1, 2, 3, 4)],
        ["seed=0", "seed=1"],
    ]
    product = [list(job) for job in itertools.product(*lists)]
    assert len(product) == 72 > MAX_CHECKED_JOBS
    job = ["distill.ipc=9", "distill.outer_steps=4", "seed=1"]  # k = 7: 7 % 4 = 3, 7 % 2 = 1
    argv = [
        "-m",
        "experiment=tiny",
        "distill.ipc=1,2,3,4,5,6,7,9,8",
        "distill.outer_steps=1,2,3,4",
        "seed=0,1",
    ]
    text = sweep_problem(argv, CONF_DIR, "config", _refusing("distill.ipc", 8, 9))
    assert text == (
        f"error: distill.ipc=9 refused [sweep job #{product.index(job)} of 72: {' '.join(job)}; no job was "
        "started]"
    )


def test_a_running_hydra_is_left_alone(no_hydra):
    """Inside a running Hydra nothing is composed or checked, and it stays initialised (mutant: composed,
    and cleared it)."""
    from hydra import initialize_config_dir

    calls = []
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        argv = ["-m", "experiment=tiny", "distill.ipc=1,9"]
        assert sweep_problem(argv, CONF_DIR, "config", lambda *a: calls.append(a)) is None
        assert GlobalHydra.instance().is_initialized() and calls == []


def test_the_primary_config_is_the_command_lines_and_a_users_own_is_left_to_the_job(no_hydra, tmp_path):
    """``-cn`` names the primary config composed (mutant: the command's default); a primary config of the
    user's ``-cd`` folder is left to the job itself, which composes it as Hydra would."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "main.yaml").write_text("x: 1\n")
    text = sweep_problem(["-m", "-cn", "main", "x=1,2"], str(conf), "config", _refusing("x", 2))
    assert text == "error: x=2 refused [sweep job #1 of 2: x=2; no job was started]"
    user = tmp_path / "user"
    user.mkdir()
    (user / "myrun.yaml").write_text("defaults:\n  - config\n  - _self_\n")
    argv = ["-m", "-cd", str(user), "-cn", "myrun", "experiment=tiny", "distill.ipc=1,9"]
    assert sweep_problem(argv, CONF_DIR, "config", _refusing("distill.ipc", 9)) is None


def test_the_jobs_side_by_side_are_those_that_compose(no_hydra):
    """``check_together`` gets the composed jobs only, labelled by their numbers, without the hydra node,
    and not for one job alone; its refusal counts every job of the sweep (mutants: a job that did not
    compose passed as None, one job compared, the compared jobs counted)."""
    from gastrodistill.cli.errors import CommandError

    seen = []

    def together(jobs):
        seen.append([(label, cfg.experiment_name, "hydra" in cfg) for label, cfg in jobs])
        raise CommandError("the jobs clash")

    argv = ["-m", "experiment=tiny,nosuch,cpu"]  # experiment=nosuch does not compose
    text = sweep_problem(argv, CONF_DIR, "config", lambda *a: None, together)
    assert text == "error: the jobs clash [sweep of 3 jobs; no job was started]"
    assert seen == [[("#0 (experiment=tiny)", "tiny", False), ("#2 (experiment=cpu)", "cpu", False)]]
    seen.clear()
    assert (
        sweep_problem(["-m", "experiment=tiny,nosuch"], CONF_DIR, "config", lambda *a: None, together) is None
    )
    assert seen == []


def test_only_the_handlers_made_on_the_redirected_stream_are_undone(no_hydra):
    """A handler made on the root logger during the check goes too (mutant: the root skipped); a logger
    that keeps a handler of its own stays as configured, not propagating (mutant: made to propagate)."""
    import logging

    root = logging.getLogger()
    own = logging.getLogger("gastrodistill.tests.own_handler")
    kept = logging.NullHandler()
    own.addHandler(kept)
    own.propagate = False
    made = []

    def check_values(cfg, overrides, here):
        if not made:  # on the redirected stderr, as a library imported inside the check does
            made.append(logging.StreamHandler())
            root.addHandler(made[0])
            own.addHandler(logging.StreamHandler())

    try:
        argv = ["-m", "experiment=tiny", "distill.ipc=1,2"]
        assert sweep_problem(argv, CONF_DIR, "config", check_values) is None
        assert made and made[0] not in root.handlers
        assert own.handlers == [kept] and own.propagate is False
    finally:
        for h in made:
            root.removeHandler(h)
        for h in list(own.handlers):
            own.removeHandler(h)
        own.propagate = True
