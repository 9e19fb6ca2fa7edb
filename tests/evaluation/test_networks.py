"""evaluation/networks.py: the device ``eval.device`` names, the init scheme and shape each network is built
with, and the refusal of an architecture the model group does not hold (gaps a mutation review found)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.data.zca import LocalZCA
from gastrodistill.evaluation.jobs import EvaluationConfigError
from gastrodistill.evaluation.networks import architecture_config, eval_device, net_spec
from gastrodistill.models.layers import ModelSizeError
from gastrodistill.models.zca import ZCA_KEY
from gastrodistill.utils.config_tree import CONF_DIR
from gastrodistill.utils.seeding import torch_generator

SMALL = ["model.width=8", "model.depth=2"]


def test_eval_device_auto_and_null_follow_cuda_and_a_named_device_is_kept(
    compose_cfg, monkeypatch, patient_dm
):
    """``auto`` and null: CUDA when available; a named device as it is; the networks are built there
    (mutants: ``auto`` always the CPU, null read as the text 'None', every value but ``cpu`` read as auto,
    the spec always on the CPU)."""
    for cuda, auto in ((True, "cuda"), (False, "cpu")):
        monkeypatch.setattr(torch.cuda, "is_available", lambda cuda=cuda: cuda)
        assert eval_device(compose_cfg(["eval.device=auto"])) == auto
        assert net_spec(compose_cfg([*SMALL, "eval.device=auto"]), "same", patient_dm).device == auto
        assert eval_device(compose_cfg(["eval.device=null"])) == auto
        assert eval_device(compose_cfg(["eval.device=cpu"])) == "cpu"
        assert eval_device(compose_cfg(["eval.device=cuda:1"])) == "cuda:1"


def test_an_unknown_architecture_lists_the_model_groups_options_not_hydras_search_path(compose_cfg):
    """The message keeps Hydra's list of options (the files of ``conf/model``) and drops its search path
    (mutant: the text after the search path kept instead)."""
    with pytest.raises(EvaluationConfigError) as info:
        architecture_config(compose_cfg([]), "nonet")
    message = str(info.value)
    assert message.startswith("eval architecture 'nonet' is not in the model config group")
    assert "(no conf/model/nonet.yaml)" in message
    options = sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
    assert "lenet" in options and all(f"\t{name}" in message for name in options)
    assert "search path" not in message.lower() and "provider" not in message


def test_eval_init_overrides_the_architectures_own_scheme_and_null_falls_back_to_it(compose_cfg, patient_dm):
    """``eval.init`` wins over the model config's ``init``; null takes the architecture's own (here a set's
    recorded LeNet with kaiming), and xavier when neither names one. Mutants: eval.init ignored; the
    architecture's own scheme ignored."""
    lenet_kaiming = {"_target_": "gastrodistill.models.LeNet", "act": "relu", "init": "kaiming"}
    lenet_plain = {"_target_": "gastrodistill.models.LeNet", "act": "relu"}
    cfg = compose_cfg([*SMALL, "eval.init=xavier"])
    assert net_spec(cfg, "same", patient_dm, lenet_kaiming).init == "xavier"
    cfg = compose_cfg([*SMALL, "eval.init=null"])
    assert net_spec(cfg, "same", patient_dm, lenet_kaiming).init == "kaiming"
    assert net_spec(cfg, "same", patient_dm, lenet_plain).init == "xavier"
    assert net_spec(compose_cfg([*SMALL, "eval.init=kaiming"]), "lenet", patient_dm).init == "kaiming"


def test_networks_are_built_for_the_datas_channels_classes_and_height_by_width(compose_cfg):
    """Three channels, four classes, 8 x 12 px images: the spec carries (H, W) = (8, 12) in that order and
    its networks map such a batch to four logits (mutants: the size reversed, one channel)."""
    rng = np.random.default_rng(0)
    splits = {
        s: (rng.random((8, 3, 8, 12), dtype=np.float32), np.arange(8) % 4) for s in ("train", "val", "test")
    }
    dm = TensorImageDataModule(splits=splits, class_names=["a", "b", "c", "d"])
    for arch in ("same", "lenet"):
        spec = net_spec(compose_cfg(SMALL), arch, dm)
        assert (spec.in_channels, spec.num_classes, spec.image_size) == (3, 4, (8, 12))
        net = spec.build(torch_generator(0))
        assert net(torch.zeros(2, 3, 8, 12)).shape == (2, 4)


def test_a_set_without_a_filter_trains_without_one_and_other_networks_drop_a_recorded_filter(
    compose_cfg, patient_dm_factory
):
    """``zca_of={}`` (a set that recorded no filter) builds networks without one although ``data.zca`` is
    set (mutant: an empty record read as none, the data's filter); without ``zca_of`` the data's filter,
    or none, replaces the one ``recorded`` holds (mutant: the recorded filter kept where data has none)."""
    cfg = compose_cfg(SMALL)
    whitened, plain = patient_dm_factory(), patient_dm_factory()
    whitened.zca = LocalZCA(kernel_size=3, max_windows=2000)
    own = torch.full((1, 3, 3), 0.1)
    recorded = {"_target_": "gastrodistill.models.ConvNet", "width": 8, "depth": 2, ZCA_KEY: own.tolist()}

    def kernel(dm, arch, rec, zca_of):
        net = net_spec(cfg, arch, dm, rec, zca_of=zca_of).build(torch_generator(0))
        return None if isinstance(net.zca, torch.nn.Identity) else net.zca.kernel[:, 0]

    assert kernel(whitened, "same", None, {}) is None
    assert kernel(plain, "same", recorded, None) is None
    assert torch.equal(kernel(whitened, "same", recorded, None), whitened.zca_kernel())
    assert torch.equal(kernel(whitened, "lenet", None, recorded), own)


def test_a_network_too_deep_for_the_images_names_model_or_the_eval_architecture(compose_cfg):
    """On 2 x 2 px images a depth-3 ConvNet cannot be built: for ``same`` the refusal names ``model``, for a
    named architecture ``eval architecture 'convnet'`` and that model.* settings do not change it (mutant:
    always ``model``)."""
    cfg = compose_cfg(["model.width=8", "model.depth=3"])
    splits = {s: (np.zeros((4, 1, 2, 2), np.float32), np.arange(4) % 2) for s in ("train", "val", "test")}
    dm = TensorImageDataModule(splits=splits)
    with pytest.raises(ModelSizeError, match=r"^model cannot be built for 2x2 px images: ConvNet depth 3"):
        net_spec(cfg, "same", dm)
    with pytest.raises(ModelSizeError) as info:
        net_spec(cfg, "convnet", dm)
    assert str(info.value).startswith("eval architecture 'convnet' cannot be built for 2x2 px images")
    assert str(info.value).endswith(
        "(model.* settings do not change eval architecture 'convnet': leave it out of eval.architectures "
        "or give larger images)"
    )
