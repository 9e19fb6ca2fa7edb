"""The network pre-flight: every shipped preset's networks build; a value a network refuses stops
``gastrodistill-reproduce`` before any data is generated, naming the key and the data's size."""

from __future__ import annotations

import pytest

from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.models.layers import ModelConfigError, ModelSizeError
from gastrodistill.models.preflight import check_model_config, data_shape


@pytest.mark.parametrize("experiment", ["tiny", "cpu", "full"])
def test_every_preset_passes_and_knows_its_gastric_shape(compose_cfg, experiment) -> None:
    from gastrodistill.cli.reproduce import Pipeline

    cfg = compose_cfg([f"experiment={experiment}"])
    side = int(cfg.data.storage_size or cfg.data.patch_size)
    assert data_shape(cfg.data) == (1, 3, (side, side))
    Pipeline(cfg).check_networks(["distill", "evaluate"])


def test_collections_have_no_shape_before_setup(compose_cfg) -> None:
    assert data_shape(compose_cfg(["experiment=cpu", "data=npz", "data.path=/nowhere.npz"]).data) is None


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        ("model.norm=foo", "unknown norm 'foo'"),
        ("model.act=gelu", "unknown activation 'gelu'"),
        ("model.pool=mean", "unknown pooling 'mean'"),
        ("model.depth=9", "layer 7 would normalise a 1x1 feature map"),  # 64 px: 64 / 2**6 = 1
        ("model.width=0", "ConvNet needs width >= 1, got model.width=0"),
        ("model.depth=0", "ConvNet needs depth >= 1, got model.depth=0"),
        # a docs tester's finding: these were a ZeroDivisionError and a "negative dimension" of torch
        ("model=resnet18 model.width=0", "ResNet18 needs width >= 1, got model.width=0"),
        ("model=resnet18 model.blocks=[2,-1]", "ResNet18 needs model.blocks as counts >= 0, got [2, -1]"),
        ("model=alexnet model.width=0", "AlexNet needs width >= 1, got model.width=0"),
        ("model=alexnet model.hidden=-1", "AlexNet needs hidden >= 1, got model.hidden=-1"),
        ("+model.dropout=0.5", "unexpected keyword argument 'dropout'"),
    ],
)
def test_refused_values_name_the_key_and_size(compose_cfg, override, expect) -> None:
    cfg = compose_cfg(["experiment=cpu", *override.split()])
    with pytest.raises(ModelConfigError, match="model cannot be built for 64x64 px images") as info:
        check_model_config(cfg.model, data_shape(cfg.data))
    assert expect in str(info.value)


def test_unknown_size_checks_size_free_values_only(compose_cfg) -> None:
    cfg = compose_cfg(["experiment=cpu", "model.depth=8"])  # too deep for 64 px, not for the probe size
    with pytest.raises(ModelConfigError, match="64x64 px images: ConvNet depth 8"):
        check_model_config(cfg.model, data_shape(cfg.data))
    check_model_config(cfg.model, None)  # the probe size: size-dependent checks wait for the data
    with pytest.raises(ModelConfigError, match="cannot be built for any image size: unknown norm"):
        check_model_config(compose_cfg(["experiment=cpu", "model.norm=foo"]).model, None)


@pytest.mark.parametrize(
    ("override", "error", "expect"),
    [
        ("model.norm=foo", ModelConfigError, "model cannot be built"),
        ("eval.architectures=[same,lenett]", EvaluationConfigError, "'lenett' is not in the model config"),
        ("eval.baselines.architectures=[same,resnet18]", None, ""),
    ],
)
def test_reproduce_refuses_before_generating_anything(compose_cfg, tmp_path, override, error, expect) -> None:
    from gastrodistill.cli.reproduce import Pipeline

    pipe = Pipeline(compose_cfg(["experiment=tiny", override]))
    if error is None:
        pipe.check_networks(["distill", "evaluate"])
        return
    with pytest.raises(error, match=expect):
        pipe.run()
    assert not pipe.out.exists()
    assert not any(tmp_path.rglob("*.png")) and not any(tmp_path.rglob("*.npy"))


def test_size_refusals_wait_for_the_data_when_the_size_is_in_the_files(compose_cfg, tmp_path) -> None:
    """A 300 px npz file builds a depth-9 ConvNet (300 / 2**8 > 1); the probe at 256 px must not refuse it."""
    cfg = compose_cfg(["experiment=cpu", "data=npz", f"data.path={tmp_path}/big.npz", "model.depth=9"])
    assert data_shape(cfg.data) is None
    check_model_config(cfg.model, None)
    # the advice names the keys that set the size; for npz under experiment=cpu that is the 64 px cap
    with pytest.raises(ModelConfigError, match=r"data.storage_size: .* the cap on npz/folder images"):
        check_model_config(cfg.model, (1, 3, (64, 64)))


@pytest.mark.parametrize(
    ("overrides", "expect"),
    [
        (["model=resnet18", "model.width=0"], "resnet18"),  # a ZeroDivisionError in the constructor
        (["model=alexnet", "model.hidden=-2"], "alexnet"),  # a RuntimeError from torch
        (["+model.bogus=1"], "convnet"),  # a TypeError: an unexpected keyword argument
    ],
)
def test_any_constructor_failure_is_a_config_error(compose_cfg, overrides, expect) -> None:
    cfg = compose_cfg(["experiment=tiny", *overrides])
    assert expect in str(cfg.model._target_).lower()
    with pytest.raises(ModelConfigError, match=r"model cannot be built for 16x16 px images: \S"):
        check_model_config(cfg.model, data_shape(cfg.data))


@pytest.mark.parametrize(
    ("overrides", "error", "expect"),
    [
        (
            ["eval.architectures=[same,convnet]"],
            EvaluationConfigError,
            "'same' and 'convnet' are both convnet",
        ),
        (["eval.baselines.architectures=[convnet,same]"], EvaluationConfigError, "for the baselines"),
        (["stages=[audit]", "model.norm=foo"], ModelConfigError, "unknown norm 'foo'"),
    ],
)
def test_refused_before_anything_runs(compose_cfg, tmp_path, overrides, error, expect) -> None:
    """Used to stop the study after the distillation (two architectures naming one network) or with a
    traceback in the audit (stages=[audit] trains cfg.model)."""
    from gastrodistill.cli.reproduce import Pipeline

    pipe = Pipeline(compose_cfg(["experiment=tiny", *overrides]))
    with pytest.raises(error, match=expect):
        pipe.run()
    assert not pipe.out.exists()


def test_earlier_sets_may_record_another_model(compose_cfg) -> None:
    """stages=[evaluate] evaluates sets of an earlier run, whose `same` may be another network than
    cfg.model: the duplicate check is left to the evaluation, which reads the recorded model."""
    from gastrodistill.cli.reproduce import Pipeline

    pipe = Pipeline(compose_cfg(["experiment=tiny", "eval.architectures=[same,convnet]"]))
    pipe.check_networks(["evaluate"])
    with pytest.raises(EvaluationConfigError, match="are both convnet"):
        pipe.check_networks(["distill", "evaluate"])


@pytest.mark.parametrize("override", ["model.norm=foo", "model.width=0"])
def test_distill_and_evaluate_commands_refuse_without_a_traceback(tmp_path, monkeypatch, capsys, override):
    """gastrodistill-distill and -evaluate build their networks through the same check (a ValueError or
    ZeroDivisionError traceback before), so a bad value is a message alone and leaves no folder."""
    import sys

    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli import distill, evaluate

    data = ["data=digits", "model.depth=1", f"paths.root_dir={tmp_path / 'work'}", "logger=csv"]
    for main, name in ((distill.main, "gastrodistill-distill"), (evaluate.main, "gastrodistill-evaluate")):
        monkeypatch.setattr(sys, "argv", [name, *data, override])
        GlobalHydra.instance().clear()
        with pytest.raises(SystemExit) as info:
            main()
        GlobalHydra.instance().clear()
        text = capsys.readouterr()
        assert info.value.code == 1, text
        assert text.err.strip().startswith("error: model cannot be built for 8x8 px images"), text.err
        assert "Traceback" not in text.out + text.err
    assert not [p for p in (tmp_path / "work").rglob("*") if p.is_file()]


def test_a_size_refusal_of_an_evaluation_architecture_says_model_settings_do_not_apply(compose_cfg) -> None:
    """The depth advice names model.depth; for an evaluation architecture (composed from its own config)
    that key changes nothing, so the message says to leave the architecture out instead."""
    cfg = compose_cfg(["model=convnet"])
    with pytest.raises(ModelSizeError, match=r"model\.\* settings do not change eval architecture 'convnet'"):
        check_model_config(cfg.model, (1, 3, (4, 4)), "eval architecture 'convnet'")
    with pytest.raises(ModelSizeError) as info:
        check_model_config(cfg.model, (1, 3, (4, 4)))
    assert "do not change" not in str(info.value)  # the distillation model's own advice stays as it was


@pytest.mark.parametrize(
    "error",
    [
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:121] DefaultCPUAllocator: can't allocate memory"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    ],
)
def test_a_size_free_probe_out_of_memory_is_not_a_refusal(compose_cfg, monkeypatch, error) -> None:
    """A flatten head at the 256 px probe can need gigabytes the real (smaller) images never ask for: the
    probe then returns the factory unchecked; at the data's own size the same failure is still refused."""
    import hydra

    from gastrodistill.models import preflight

    sizes: list[tuple[int, int, tuple[int, int]]] = []

    def factory(in_channels: int, num_classes: int, image_size: tuple[int, int]):
        sizes.append((in_channels, num_classes, image_size))
        raise error

    monkeypatch.setattr(hydra.utils, "instantiate", lambda cfg: factory)
    cfg = compose_cfg([])
    assert check_model_config(cfg.model, None) is factory
    assert sizes == [(1, 2, preflight.PROBE_SIZE)]  # the probe: 1 channel, 2 classes
    with pytest.raises(ModelConfigError, match="model cannot be built for 64x64 px images"):
        check_model_config(cfg.model, (1, 3, (64, 64)))
    monkeypatch.setattr(hydra.utils, "instantiate", lambda cfg: _raises(ValueError("unknown norm 'foo'")))
    with pytest.raises(ModelConfigError, match="unknown norm 'foo'"):  # other errors still refuse
        check_model_config(cfg.model, None)


def _raises(error: Exception):
    def factory(**_: object):
        raise error

    return factory


@pytest.mark.parametrize(
    ("override", "expect"),
    [
        ("model.width=abc", "model.width = 'abc' must be an int (got str)"),
        ("model.depth=2.5", "model.depth = 2.5 must be an int (got float)"),
        ("model.width=true", "model.width = True must be an int (got bool)"),
        ("model.norm=3", "model.norm = 3 must be a str (got int)"),
        ("model.width=null", "model.width = None must be an int (got NoneType)"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_key(compose_cfg, override, expect) -> None:
    """The constructor's annotations say which type each key takes; a wrong one used to surface as the
    constructor's own TypeError ('<' not supported between 'str' and 'int'), blamed on the whole model."""
    cfg = compose_cfg(["experiment=cpu", override])
    with pytest.raises(ModelConfigError) as info:
        check_model_config(cfg.model, data_shape(cfg.data))
    assert str(info.value) == expect
    ok = compose_cfg(["experiment=cpu", "model.width=16", "model=convnet_cpu"])
    check_model_config(ok.model, data_shape(ok.data))  # ints, strs and the preset's values pass


def test_evaluation_architecture_type_refusals_name_the_architecture(compose_cfg) -> None:
    from gastrodistill.models.preflight import check_value_types

    cfg = compose_cfg(["model=lenet"])
    bad = cfg.model.copy()
    bad.act = 2
    with pytest.raises(ModelConfigError, match=r"^eval architecture 'lenet': act = 2 must be a str"):
        check_value_types(bad, "eval architecture 'lenet'")


@pytest.mark.parametrize("network", ["ConvNet", "AlexNet", "ResNet18"])
def test_a_size_of_the_wrong_type_is_refused_from_python_too(network):
    """The command line's type check does not guard the Python API: ``width=True`` (an int to Python) and
    ``width=2.5`` are refused by the constructor itself, naming the key."""
    import torch

    import gastrodistill.models as models

    build = getattr(models, network)
    for value in (True, 2.5):
        with pytest.raises(ModelConfigError, match=rf"{network} needs width >= 1, got model.width={value!r}"):
            build(1, 3, (16, 16), width=value)
    assert isinstance(build(1, 3, (16, 16), width=4), torch.nn.Module)


def test_the_check_leaves_the_global_random_stream_as_it_was(compose_cfg) -> None:
    """torch's layers draw their default weights from the global stream before ``initialize`` replaces
    them: building the network directly moves it, the check (under ``fork_rng``) does not."""
    import torch

    cfg = compose_cfg(["experiment=tiny"])
    shape = data_shape(cfg.data)
    state = torch.random.get_rng_state()
    factory = check_model_config(cfg.model, shape)
    assert torch.equal(torch.random.get_rng_state(), state)
    factory(in_channels=shape[0], num_classes=shape[1], image_size=shape[2])
    assert not torch.equal(torch.random.get_rng_state(), state)


@pytest.mark.parametrize(
    ("error", "prefix"), [(RuntimeError("boom"), "RuntimeError: "), (TypeError("boom"), "")]
)
def test_a_constructor_error_other_than_a_value_or_type_error_is_named(
    compose_cfg, monkeypatch, error, prefix
):
    import hydra

    monkeypatch.setattr(hydra.utils, "instantiate", lambda cfg: _raises(error))
    with pytest.raises(ModelConfigError) as info:
        check_model_config(compose_cfg([]).model, (1, 3, (64, 64)))
    assert str(info.value) == f"model cannot be built for 64x64 px images: {prefix}boom"


def test_a_refusal_names_the_height_then_the_width_of_non_square_images(compose_cfg) -> None:
    """Mutant: the height given twice (every shipped preset is square)."""
    cfg = compose_cfg(["experiment=cpu", "model.norm=foo"])
    with pytest.raises(ModelConfigError, match=r"^model cannot be built for 32x48 px images: unknown norm"):
        check_model_config(cfg.model, (1, 3, (32, 48)))


def test_the_commands_check_builds_the_network_for_the_shape_the_data_config_fixes(compose_cfg) -> None:
    """check_configured_model (gastrodistill-distill and -evaluate): the tiny preset's 16 px patches refuse
    a depth the 256 px probe would let through, naming the size; data whose shape is in its files is left
    to the loaded data (mutants: the probe used for all data, or for the gastric patches too)."""
    from gastrodistill.models.preflight import check_configured_model

    with pytest.raises(ModelSizeError, match=r"^model cannot be built for 16x16 px images: ConvNet depth 5"):
        check_configured_model(compose_cfg(["experiment=tiny", "model.depth=5"]))
    # digits: 8 px known from the files only; the distillation refuses it there, naming 8x8 px
    check_configured_model(compose_cfg(["experiment=tiny", "data=digits", "model.norm=foo"]))


def test_an_int_is_a_float_to_the_type_check_and_a_bool_is_not(compose_cfg) -> None:
    """No shipped network takes a float, but a model config may name any constructor (here torch's Dropout,
    ``p: float``): ``p=1`` is a float to Python, ``p=true`` is not (mutant: floats alone accepted)."""
    from omegaconf import OmegaConf

    from gastrodistill.models.preflight import check_value_types

    for p in (1, 0.5):
        check_value_types(OmegaConf.create({"_target_": "torch.nn.Dropout", "p": p}))
    with pytest.raises(ModelConfigError, match=r"^model\.p = True must be a float \(got bool\)$"):
        check_value_types(OmegaConf.create({"_target_": "torch.nn.Dropout", "p": True}))


def test_a_value_given_as_an_interpolation_is_type_checked_as_it_resolves(compose_cfg) -> None:
    """``model.width=${seed}`` is the int 16 to the network, not the text '${seed}' (mutant: values read
    unresolved, refused as a str)."""
    cfg = compose_cfg(["experiment=cpu", "seed=16", "model.width=${seed}"])
    check_model_config(cfg.model, data_shape(cfg.data))


def test_a_constructor_whose_annotations_cannot_be_resolved_is_left_to_the_build(monkeypatch) -> None:
    """Annotations naming a type imported only for type checkers raise NameError in get_type_hints: the type
    check then leaves the values to the constructor (mutant: only an unknown target was passed over)."""
    import sys
    import types

    from omegaconf import OmegaConf

    from gastrodistill.models.preflight import check_value_types

    module = types.ModuleType("gd_unresolvable_net")

    def build(width: int = 8):
        return width

    build.__annotations__ = {"width": "OnlyForTypeCheckers"}
    module.build = build
    monkeypatch.setitem(sys.modules, module.__name__, module)
    check_value_types(OmegaConf.create({"_target_": "gd_unresolvable_net.build", "width": "abc"}))
