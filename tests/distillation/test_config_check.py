"""The distill pre-flight: every shipped preset passes, each bad value is refused naming its key,
and ``gastrodistill-reproduce`` refuses it before generating any data."""

from __future__ import annotations

import pytest
import torch
from _cli_runner import reproduce_refusal

from gastrodistill.distillation.config_check import check_distill_config
from gastrodistill.distillation.errors import DistillConfigError

DSA = "{_target_: gastrodistill.distillation.augment.DSA, rotate: -3}"


class Crop:
    """An augmentation that returns a smaller batch than it was given (for the check of its output)."""

    def __call__(self, x, generator):
        return x[..., 1:, 1:]


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=cpu"],
        ["experiment=tiny"],
        ["experiment=full"],
        ["distill=hard"],
        ["distill=soft_cpu"],
        ["experiment=cpu", "data=npz", "data.path=x.npz"],
    ],
)
def test_shipped_presets_pass(compose_cfg, overrides) -> None:
    cfg = compose_cfg(overrides)
    for mode in ("soft", "hard"):
        check_distill_config(cfg.distill, mode)


@pytest.mark.parametrize(
    "override, message",
    [
        ("distill.mode=soft_labels", "distill.mode must be one of"),
        # values that were silently clamped or read as true (a fuzzer's findings)
        ("distill.resident_max_bytes=-1", "distill.resident_max_bytes must be a finite number >= 0, got -1"),
        ("distill.prefetch=-1", "distill.prefetch must be an integer >= 1, got -1"),
        (
            "distill.distribution_matching.augment=maybe",
            "distill.distribution_matching.augment must be true or false, got 'maybe'",
        ),
        (
            "distill.texture_matching.progress=no",
            "distill.texture_matching.progress must be true or false, got 'no'",
        ),
        ("distill.image_init=zeros", "distill.image_init must be one of"),
        ("distill.ipc=0", "distill.ipc must be an integer >= 1, got 0"),
        ("distill.steps=2.5", "distill.steps must be an integer >= 1, got 2.5"),
        ("distill.outer_steps=many", "distill.outer_steps must be an integer >= 1"),
        ("distill.inner_nets_per_step=0", "distill.inner_nets_per_step must be an integer >= 1"),
        ("distill.lr_init=0", "distill.lr_init must be a finite number > 0"),
        ("distill.temperature=-1", "distill.temperature must be a finite number > 0"),
        ("distill.class_mean_noise_std=-0.1", "distill.class_mean_noise_std must be a finite number >= 0"),
        ("distill.init=he", r"distill.init \(model.init unless set\): unknown init scheme 'he'"),
        ("model.init=he", r"distill.init \(model.init unless set\): unknown init scheme 'he'"),
        ("distill.backend=jax", "unknown inner-loop backend 'jax'"),
        ("distill.inner_momentum=1.0", r"distill.inner_momentum must be in \[0, 1\)"),
        ("distill.window=31", r"distill.window must be an integer in \[1, T=30\]"),
        ("distill.outer_chunk=0", "distill.outer_chunk must be a positive integer or null"),
        ("distill.grad_clip_ema=0", "distill.grad_clip_ema must be a finite number > 0"),
        ("distill.grad_clip_ema_decay=1", r"distill.grad_clip_ema_decay must be in \[0, 1\)"),
        ("distill.precision=fp8", "distill.precision"),
        ("distill.real_data=ram", "distill.real_data must be one of"),
        ("distill.distribution_matching.momentum=1", "distill.distribution_matching.momentum"),
        (f"distill.dsa={DSA}", "distill.dsa.rotate must be a finite number >= 0"),
        # found by a newcomer trial: tracebacks, late failures and silent acceptances before
        ("distill.inner_momentum=abc", r"distill.inner_momentum must be in \[0, 1\), got 'abc'"),
        ("distill.window=abc", "distill.window must be an integer"),
        ("distill.window=true", "distill.window must be an integer"),
        ("distill.outer_chunk=abc", "distill.outer_chunk must be a positive integer or null"),
        ("distill.distribution_matching=5", "distill.distribution_matching must be a section"),
        # Hydra suggests '+' for a misspelt key; with it the key was added and silently never read
        ("+distill.ipcc=3", r"distill.ipcc is not an option of the distiller \(did you mean distill.ipc\?\)"),
        ("+distill.zca=true", "distill.zca is not an option of the distiller: nothing would read it"),
        ("distill.distribution_matching.steps=1.5", "distill.distribution_matching.steps must be an integer"),
        ("distill.scheduler.step_size=0", "distill.scheduler cannot run"),
        ("distill.scheduler.gamma=-1", "distill.scheduler.gamma must be a number > 0"),
        ("distill.ckpt_every=-1", "distill.ckpt_every must be an integer >= 0"),
        ("distill.grid_every=-1", "distill.grid_every must be an integer >= 0"),
        ("distill.lr_images=abc", "distill.lr_images must be a finite number >= 0"),
        ("distill.lr_images=-1", "distill.lr_images must be a finite number >= 0"),
        ("distill.optimizer._target_=foo.Bar", "distill.optimizer cannot be built"),
        ("distill.ipc=true", "distill.ipc must be an integer >= 1, got True"),
        ("distill.checkpoint=abc", "distill.checkpoint must be true or false"),
        ("distill.backend=foo", "distill.backend: unknown inner-loop backend 'foo'"),
        (
            "distill.dsa={_target_: torch.nn.Identity}",
            r"distill.dsa must augment a batch as augment\(x, generator\)",
        ),
        ("distill.dsa={rotate: 10}", r"distill.dsa must be a \{_target_: ...\} node"),
        ("distill.dsa=5", r"distill.dsa must be a \{_target_: ...\} node"),
        # null turns these two off, and the message says so; false is not read as null (mutant: no hint)
        ("distill.dsa=false", r"distill.dsa must be .* node \(see .*\) or null for none, got False"),
        ("distill.scheduler=steps", r"distill.scheduler must be .* or null for none, got 'steps'"),
        ("distill.optimizer=adam", r"distill.optimizer must be a \{_target_: ...\} node \(.*\), got 'adam'"),
        (
            "distill.dsa={_target_: gastrodistill.distillation.augment.DSA, shift_px: -2}",
            "distill.dsa.shift_px must be an integer >= 0",
        ),
        # boundaries and kinds the first list left open (a mutation review)
        ("distill.epochs=0", "distill.epochs must be an integer >= 1, got 0"),
        ("distill.batch_real=0", "distill.batch_real must be an integer >= 1, got 0"),
        ("distill.log_every=0", "distill.log_every must be an integer >= 1, got 0"),
        ("distill.check_every=0", "distill.check_every must be an integer >= 1, got 0"),
        ("distill.prefetch=0", "distill.prefetch must be an integer >= 1, got 0"),
        ("distill.temperature=0", "distill.temperature must be a finite number > 0, got 0"),
        ("distill.grad_clip=0", "distill.grad_clip must be a finite number > 0, got 0"),
        ("distill.lr_lrs=-0.5", "distill.lr_lrs must be a finite number >= 0, got -0.5"),
        ("distill.label_init_scale=-1", "distill.label_init_scale must be a finite number >= 0, got -1"),
        ("distill.lr_images=inf", "distill.lr_images must be a finite number >= 0, got inf"),
        ("distill.lr_labels=true", "distill.lr_labels must be a finite number >= 0, got True"),
        ("distill.known_init=maybe", "distill.known_init must be true or false, got 'maybe'"),
        ("distill.channels_last=1", "distill.channels_last must be true or false, got 1"),
        ("distill.debug_record=yes", "distill.debug_record must be true or false, got 'yes'"),
        ("distill.batch_real_per_rank=abc", "distill.batch_real_per_rank must be true or false, got 'abc'"),
        ("distill.scheduler.gamma=0", "distill.scheduler.gamma must be a number > 0, got 0"),
        ("distill.scheduler.gamma=true", "distill.scheduler.gamma must be a number > 0, got True"),
        (
            "distill.optimizer.betas=[2,0.999]",
            "distill.optimizer cannot build an optimiser: Invalid beta parameter at index 0: 2",
        ),
        (
            f"distill.dsa={{_target_: {__name__}.Crop}}",
            "distill.dsa must return a batch of the shape it was given",
        ),
    ],
)
def test_bad_values_are_refused_with_their_key(compose_cfg, override, message) -> None:
    cfg = compose_cfg(["distill=soft", "distill.steps=10", "distill.epochs=3", override])
    with pytest.raises(DistillConfigError, match=message):
        check_distill_config(cfg.distill)


def test_of_two_unknown_keys_the_first_is_named_with_its_own_nearest_option(compose_cfg) -> None:
    cfg = compose_cfg(["distill=soft", "+distill.zca=true", "+distill.ipcc=3"])
    with pytest.raises(
        DistillConfigError,
        match=r"^distill.ipcc is not an option of the distiller \(did you mean distill.ipc\?\)",
    ):
        check_distill_config(cfg.distill)


def test_checkpointing_with_the_higher_backend_is_refused(compose_cfg) -> None:
    cfg = compose_cfg(["distill=soft", "distill.backend=higher", "distill.checkpoint=true"])
    with pytest.raises(DistillConfigError, match="distill.checkpoint: activation checkpointing needs"):
        check_distill_config(cfg.distill)


def test_an_augmentations_own_refusal_is_passed_on_as_it_is(compose_cfg) -> None:
    """The DSA's own error, not Hydra's instantiation error wrapped in 'distill.dsa cannot be built'."""
    from gastrodistill.distillation.augment import DSA as Augment

    with pytest.raises(DistillConfigError) as own:
        Augment(rotate=-3)
    with pytest.raises(DistillConfigError) as seen:
        check_distill_config(compose_cfg(["distill=soft", f"distill.dsa={DSA}"]).distill)
    assert str(seen.value) == str(own.value)


def test_a_shift_wider_than_the_probe_batch_is_accepted(compose_cfg) -> None:
    """The check augments a probe batch wide enough for ``shift_px`` (a shift of 8 px on 64-px patches
    was refused with an 8 x 8 probe)."""
    node = "{_target_: gastrodistill.distillation.augment.DSA, flip: true, shift_px: 8}"
    check_distill_config(compose_cfg(["distill=soft", f"distill.dsa={node}"]).distill)


def test_mode_argument_overrides_the_section(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=tiny"])
    check_distill_config(cfg.distill, "hard")
    with pytest.raises(DistillConfigError, match="distill.mode must be one of"):
        check_distill_config(cfg.distill, "medium")


@pytest.mark.parametrize(
    "override",
    ["distill.image_init=zeros", "distill.window=1000", f"distill.dsa={DSA}", "distill.dsa={rotate: 10}"],
)
def test_reproduce_refuses_before_generating_anything(compose_cfg, tmp_path, override) -> None:
    error = reproduce_refusal(compose_cfg(["experiment=tiny", override]), tmp_path)
    assert any(isinstance(e, DistillConfigError) for e in (error, error.__cause__)), error


@pytest.mark.parametrize(
    "overrides",
    [
        ["distill.window=null", "distill.outer_chunk=null", "distill.grad_clip=null"],
        ["distill.inner_momentum=0", "distill.lr_labels=0", "distill.scheduler=null"],
        ["distill.backend=higher", "distill.mode=hard", "distill.precision=bf16-mixed"],
        ["distill.checkpoint=true", "distill.window=1", "distill.outer_chunk=7", "distill.grad_clip_ema=2"],
        ["distill.dsa={_target_: gastrodistill.distillation.augment.DSA, rotate: 10, scale: 0.1}"],
        # the lowest values each bound allows
        ["distill.grid_every=0", "distill.ckpt_every=0", "distill.lr_images=0", "distill.lr_lrs=0"],
        ["distill.label_init_scale=0", "distill.class_mean_noise_std=0", "distill.image_init=class_mean"],
        ["distill.grad_clip_ema_decay=0", "distill.resident_max_bytes=0", "distill.prefetch=1"],
        ["distill.scheduler=false"],  # the stage reads a false scheduler as none, as null
        ["distill.epochs=1", "distill.log_every=1", "distill.check_every=1", "distill.temperature=0.01"],
    ],
)
def test_unusual_valid_values_pass(compose_cfg, overrides) -> None:
    check_distill_config(compose_cfg(["experiment=tiny", *overrides]).distill)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("reproduce.num_threads=abc", "reproduce.num_threads must be an integer >= 1 or null, got 'abc'"),
        (
            "reproduce.parallel_modes=two",
            "reproduce.parallel_modes must be an integer >= 1 or null, got 'two'",
        ),
        ("reproduce.distill_modes=[sfot]", r"reproduce.distill_modes = \['sfot'\]; list label modes"),
        ("reproduce.distill_modes=[]", r"reproduce.distill_modes = \[\]; list label modes"),
        # it generated, built the patches and distilled soft, then refused the second soft set
        ("reproduce.distill_modes=[soft,soft]", r"lists soft twice; .* list each once, e.g. \[soft\]"),
        # the study ran to the end and exited 0 with blank patient HM and AUC cells
        ("synthetic.test_gastritis=0", "synthetic.test_gastritis=0: the test split would hold no patient"),
        ("data.val_fraction=0", "data.val_fraction=0 leaves no validation patients"),
        # generate wrote one folder and the patches were cut from another (a newcomer's own data)
        (
            "synthetic.root=/nowhere/syn",
            "synthetic.root=/nowhere/syn is where generate writes, but the later",
        ),
        # the gastric classes are known before any data: these failed at the evaluation, after distilling
        ("eval.patient.positive_class=Gastritis", "eval.patient.positive_class = 'Gastritis' is not a class"),
        ("eval.patient.irrelevant_class=irrelevent", "did you mean 'irrelevant'"),
    ],
)
def test_the_reproduce_section_is_checked_before_anything_runs(compose_cfg, tmp_path, override, message):
    """A word for a count was a traceback (num_threads before any stage, parallel_modes at the distillation);
    a misspelt mode was reported as distill.mode, which the user had not set."""
    from gastrodistill.cli.reproduce import Pipeline, ReproduceConfigError

    pipe = Pipeline(compose_cfg(["experiment=tiny", override]))
    with pytest.raises(ReproduceConfigError, match=message):
        pipe.run()
    assert not pipe.out.exists()


def test_generating_over_ones_own_data_names_the_stages_that_study_it(compose_cfg, tmp_path):
    """A newcomer's own data folder as paths.data_root with the default stages: the generator's refusal to
    overwrite it said only 'set paths.data_root to another folder', which generated a collection nobody
    wanted; it now names the stages without generate, which study the data in that folder."""
    from gastrodistill.cli.reproduce import Pipeline
    from gastrodistill.data.synthetic.writer import SyntheticOutputError

    own = tmp_path / "own"
    own.mkdir()
    (own / "manifest.csv").write_text("image,patient_id,diagnosis\n")
    pipe = Pipeline(compose_cfg(["experiment=tiny", f"paths.data_root={own}", f"paths.root_dir={tmp_path}"]))
    with pytest.raises(SyntheticOutputError) as info:
        pipe.run()
    text = str(info.value)
    assert text.startswith(f"refusing to overwrite {own}: it is not empty and has no synthetic_info.json")
    assert text.endswith(
        "leave generate out of the stages: 'stages=[patches,distill,evaluate,audit,artifact]'"
    )
    assert [p.name for p in own.iterdir()] == ["manifest.csv"]
    alone = Pipeline(
        compose_cfg(
            ["experiment=tiny", f"paths.data_root={own}", f"paths.root_dir={tmp_path}", "stages=[generate]"]
        )
    )
    with pytest.raises(SyntheticOutputError) as info:  # 'stages=[]' would run nothing: the study's stages
        alone.run()
    assert str(info.value).endswith("'stages=[patches,distill,evaluate,audit,artifact]'")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine may ask for its GPU")
@pytest.mark.parametrize("command", ["reproduce", "distill"])
def test_a_gpu_asked_of_a_machine_without_one_is_one_line_before_anything_runs(
    tmp_path, monkeypatch, capsys, command
):
    """``gastrodistill-distill trainer=gpu`` ended in Lightning's instantiation error naming ``trainer``
    (``reproduce`` said it in one line): both now refuse it in one line before any data."""
    import importlib

    from _cli_runner import assert_nothing_written, run_main

    main = importlib.import_module(f"gastrodistill.cli.{command}").main
    argv = [f"gastrodistill-{command}", "experiment=tiny", "trainer=gpu", f"paths.root_dir={tmp_path}"]
    code, text = run_main(main, [*argv, f"hydra.run.dir={tmp_path / 'run'}"], monkeypatch, capsys)
    assert code == 1
    assert (
        text.strip() == "error: trainer.accelerator=gpu but this machine has no CUDA device; use trainer=cpu"
    )
    assert_nothing_written(tmp_path)
