"""``validate(cfg.eval)`` refuses, before any network trains, the values that used to fail only when a
network was built or trained (with a traceback, after minutes of work and with records left behind)."""

from __future__ import annotations

import pytest
import torch
from _eval_sets import small_npz

from gastrodistill.evaluation.jobs import EvaluationConfigError, validate

NOPE = "{_target_: gastrodistill.distillation.augment.Nope}"

REFUSED = [
    ("eval.init=foo", r"eval\.init = 'foo' is not an init scheme; use one of xavier, kaiming"),
    ("eval.replay_augment=foo", r"eval\.replay_augment = 'foo' cannot be built .*null or a node"),
    ("eval.lr_grid=[-0.1]", r"eval\.lr_grid entry -0\.1 refused .*lr > 0"),
    ("eval.lr_grid=[0.01,abc]", r"eval\.lr_grid entry 'abc' refused"),
    ("eval.lr_grid=0.01", r"eval\.lr_grid = 0\.01 is not a list; .*'eval\.lr_grid=\[0\.01\]'"),
    ("eval.baselines.teacher_temperature=0", r"eval\.baselines\.teacher_temperature must be .* > 0, got 0"),
    ("eval.baselines.real.epochs=0", r"eval\.baselines\.real\.epochs must be an integer >= 1, got 0"),
    ("eval.baselines.real.batch_size=0", r"eval\.baselines\.real\.batch_size must be an integer >= 1, got 0"),
    ("eval.baselines.real.lr=-1", r"eval\.baselines\.real\.lr must be a finite number > 0, got -1"),
    ("eval.baselines.real.optimizer=lbfgs", r"eval\.baselines\.real\.optimizer = 'lbfgs' unknown; use"),
    ("eval.baselines.real.weight_decay=-1", r"eval\.baselines\.real\.optimizer = 'adam' .*weight_decay"),
    ("eval.baselines.real.scheduler=cosinee", r"eval\.baselines\.real\.scheduler 'cosinee' unknown"),
    ("eval.baselines.real.accelerator=tpu", r"eval\.baselines\.real\.accelerator .* = 'tpu' /"),
    ("eval.baselines.real.devices=0", r"eval\.baselines\.real\.accelerator / devices .* / 0 / "),
    ("eval.baselines.real.strategy=foo", r"eval\.baselines\.real\.accelerator / devices / strategy .*'foo'"),
    (f"eval.standard.augment={NOPE}", r"eval\.standard\.augment = .*Nope.* cannot be built"),
    (f"eval.replay_augment={NOPE}", r"eval\.replay_augment = .*Nope.* cannot be built"),
    (f"eval.baselines.real.augment={NOPE}", r"eval\.baselines\.real\.augment = .*Nope.* cannot be built"),
    ("eval.schedules=[]", r"eval\.schedules = \[\] lists no schedule, .*=\[replay,standard\]'"),
    ("eval.architectures=[]", r"eval\.architectures = \[\] lists no architecture; .*\[same\]"),
    ("eval.baselines.architectures=[]", r"eval\.baselines\.architectures = \[\] lists no architecture"),
    (
        "eval.standard.momentum=1",
        r"eval\.standard: eval standard momentum must be a number in \[0, 1\), got 1",
    ),
    ("eval.standard.batch_size=-1", r"eval\.standard: eval standard batch_size must be an integer >= 0"),
]


@pytest.mark.parametrize(("override", "match"), REFUSED, ids=[o for o, _ in REFUSED])
def test_validate_refuses_before_any_network_trains(compose_cfg, override, match):
    with pytest.raises(EvaluationConfigError, match=match) as info:
        validate(compose_cfg(["experiment=tiny", override]).eval)
    assert "\n" not in str(info.value)  # one line


def test_validate_refuses_a_gpu_accelerator_on_a_machine_without_one(compose_cfg):
    cfg = compose_cfg(["experiment=tiny", "eval.baselines.real.accelerator=gpu"])
    if torch.cuda.is_available():
        validate(cfg.eval)
        return
    with pytest.raises(EvaluationConfigError, match=r"Lightning refuses them on this machine"):
        validate(cfg.eval)
    validate(cfg.eval, here=False)  # a sweep launched onto other machines: their devices are theirs


def test_validate_elsewhere_checks_the_trainer_names(compose_cfg):
    for override, match in (
        ("eval.baselines.real.accelerator=tpuu", r"eval\.baselines\.real\.accelerator = 'tpuu' unknown"),
        ("eval.baselines.real.strategy=foo", r"eval\.baselines\.real\.strategy = 'foo' unknown"),
    ):
        with pytest.raises(EvaluationConfigError, match=match):
            validate(compose_cfg(["experiment=tiny", override]).eval, here=False)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        [
            "eval.init=null",
            "eval.lr_grid=null",
            "eval.baselines.methods=[]",
            "eval.baselines.architectures=null",
        ],
        ["eval.init=kaiming", "eval.lr_grid=[]", "eval.baselines.real.scheduler=cosine"],
        ["eval.replay_augment={_target_: gastrodistill.distillation.augment.DSA, flip: true}"],
        ["eval.baselines.real.optimizer={_target_: torch.optim.SGD, nesterov: true}"],
        ["eval.baselines.real.accelerator=cpu", "eval.baselines.real.strategy=ddp"],
    ],
)
def test_validate_accepts_good_values(compose_cfg, overrides):
    validate(compose_cfg(["experiment=tiny", *overrides]).eval)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("eval.init=foo", "eval.init"),
        ("eval.lr_grid=[-0.1]", "eval.lr_grid"),
        ("eval.baselines.real.strategy=foo", "eval.baselines.real.accelerator / devices / strategy"),
        (f"eval.standard.augment={NOPE}", "eval.standard.augment"),
        ("eval.schedules=[]", "eval.schedules"),
    ],
    ids=["init", "lr_grid", "strategy", "augment", "schedules"],
)
def test_the_evaluate_command_refuses_with_one_line_and_leaves_nothing(
    tmp_path, monkeypatch, capsys, override, key
):
    """``gastrodistill-evaluate`` on a good distilled set and data with one bad value: exit 1, one ``error:``
    line naming the key, no traceback, no run folder (the value used to fail after networks trained)."""
    from _cli_runner import assert_nothing_written, run_main

    from gastrodistill.cli import evaluate
    from gastrodistill.distillation.distilled_set import DistilledSet

    arrays = small_npz(tmp_path / "small.npz")
    train = arrays["train_images"] / 255.0  # the set matches the data (else the command stops at that)
    DistilledSet(2, 1, 1, 1, (1, 16, 16), mean=[float(train.mean())], std=[float(train.std())]).save(
        tmp_path / "set"
    )
    argv = [
        "gastrodistill-evaluate",
        "experiment=tiny",
        "data=npz",
        f"data.path={tmp_path / 'small.npz'}",
        f"paths.root_dir={tmp_path / 'work'}",
        "logger=csv",
        f"eval.distilled_dirs={{soft: {tmp_path / 'set'}}}",
        override,
    ]
    code, text = run_main(evaluate.main, argv, monkeypatch, capsys)
    assert code == 1 and "Traceback" not in text and "HYDRA_FULL_ERROR" not in text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), text
    assert_nothing_written(tmp_path / "work")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval.score_autocast=maybe", "eval.score_autocast must be true or false, got 'maybe'"),
        ("eval.progress=no", "eval.progress must be true or false, got 'no'"),
        ("eval.baselines.real.balanced=2", "eval.baselines.real.balanced must be true or false, got 2"),
    ],
)
def test_switches_that_were_read_as_true_are_refused(compose_cfg, override, message):
    """Hydra keeps `maybe` and `no` as strings, and `2` as a number: each was true to `bool()`."""
    with pytest.raises(EvaluationConfigError, match=message):
        validate(compose_cfg([override]).eval)
