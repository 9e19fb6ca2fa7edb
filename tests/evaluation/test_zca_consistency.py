"""Which ZCA filter each network of a study gets, and the refusals that keep a comparison fair: a set is
trained behind its own filter, the baselines behind the data's (``data.zca``), whatever the sets' order; a
set and data that disagree on whitening are refused (evaluation, audit, artifact); a resume, the records and
the filter itself treat ``data.zca`` as one setting with its defaults written out. Found by a breaker."""

from __future__ import annotations

import pytest
import torch
from _eval_sets import small_distilled

from gastrodistill.data.zca import LocalZCA, zca_kernel, zca_settings
from gastrodistill.distillation.resume import run_settings, settings_differences
from gastrodistill.evaluation.checks import DistilledSetMismatch, check_distilled_set
from gastrodistill.evaluation.record_settings import study_settings
from gastrodistill.evaluation.study import Study, baseline_model
from gastrodistill.models.layers import ModelConfigError
from gastrodistill.models.zca import ZCA_KEY, zca_layer
from gastrodistill.utils.privacy import public_config

NODE = {"_target_": "gastrodistill.data.zca.LocalZCA", "kernel_size": 3}
BASE = ["model.width=8", "model.depth=2", "eval.architectures=[same,lenet]", "eval.progress=false"]


def with_zca(dm, kernel_size: int = 3):
    """``dm`` (a fresh in-memory patient data module) whitened by ``kernel_size`` px, set up."""
    dm.zca = LocalZCA(kernel_size=kernel_size, max_windows=2000)
    dm.setup()
    return dm


def set_behind(dm, cfg, kernel: torch.Tensor | None, seed: int = 0):
    ds = small_distilled(dm, seed=seed)
    model = public_config(cfg.model)
    ds.model_config = {**model, ZCA_KEY: kernel.tolist()} if kernel is not None else model
    return ds


def test_sets_train_behind_their_own_filter_and_baselines_behind_the_datas_in_any_order(
    compose_cfg, patient_dm_factory
):
    cfg = compose_cfg(BASE)
    dm = with_zca(patient_dm_factory())
    data = dm.zca_kernel()
    other = torch.full_like(data, 0.1)  # as if distilled behind another draw of the training images
    a, b = set_behind(dm, cfg, data), set_behind(dm, cfg, other, seed=1)
    for order in ({"a": a, "b": b}, {"b": b, "a": a}):
        study = Study(cfg, dm, order)

        def kernel_of(arch, method, study=study):
            net = study.spec(arch, method).build(torch.Generator().manual_seed(0))
            return net.zca.kernel[:, 0]

        for arch in ("same", "lenet"):
            assert torch.equal(kernel_of(arch, "a"), data)
            assert torch.equal(kernel_of(arch, "b"), other)
            for baseline in ("random", "mean", "full"):
                assert torch.equal(kernel_of(arch, baseline), data), (arch, baseline)
    # the baselines' architecture is the sets' (no filter in it): not "another network" than model.*
    assert baseline_model(cfg, {"b": b}) is None


@pytest.mark.parametrize("set_whitened", [True, False])
def test_a_set_and_data_that_disagree_on_whitening_are_refused(compose_cfg, patient_dm_factory, set_whitened):
    cfg = compose_cfg(BASE)
    dm = with_zca(patient_dm_factory()) if not set_whitened else patient_dm_factory()
    dm.setup()
    ds = set_behind(dm, cfg, torch.ones(1, 3, 3) if set_whitened else None)
    want = (
        "distilled behind a filter .* and data.zca is null"
        if set_whitened
        else "distilled without a filter and data.zca is set"
    )
    with pytest.raises(DistilledSetMismatch, match=f"ZCA whitening: the set was {want}"):
        check_distilled_set("soft", ds, dm)
    agreeing = with_zca(patient_dm_factory()) if set_whitened else patient_dm_factory()
    agreeing.setup()
    if set_whitened:  # whitened on both sides, but by another filter than the data's: refused too
        with pytest.raises(DistilledSetMismatch, match=r"the set's filter \(3 px\) is not the one data.zca"):
            check_distilled_set("soft", ds, agreeing)
        ds.model_config[ZCA_KEY] = agreeing.zca_kernel().tolist()
    check_distilled_set("soft", ds, agreeing)


def test_a_resume_across_whitening_is_refused_and_defaults_are_one_setting(compose_cfg):
    plain = run_settings(compose_cfg(BASE))
    short = run_settings(compose_cfg([*BASE, f"data.zca={{_target_: {NODE['_target_']}, kernel_size: 3}}"]))
    spelled = run_settings(
        compose_cfg([*BASE, f"data.zca={{_target_: {NODE['_target_']}, kernel_size: 3, eps: 0.1}}"])
    )
    assert settings_differences(short, spelled) == []
    assert settings_differences(plain, short)[0].startswith("data.zca is null there but {")
    assert settings_differences(short, plain)[0].endswith("there but null here")
    older = {k: v for k, v in plain.items() if k != "zca"}  # a checkpoint written before the option
    assert settings_differences(older, plain) == []
    assert zca_settings(NODE) == {"kernel_size": 3, "eps": 0.1, "max_images": 2000, "max_windows": 200000}


def test_the_records_hold_every_zca_setting_and_the_seed_of_its_draw(compose_cfg, patient_dm_factory):
    dm = with_zca(patient_dm_factory())
    settings = study_settings(compose_cfg(BASE), dm)
    assert {k: v for k, v in settings.items() if k.startswith("data.zca")} == {
        "data.zca.kernel_size": 3,
        "data.zca.eps": 0.1,
        "data.zca.max_images": 2000,
        "data.zca.max_windows": 2000,
        "data.zca.seed": dm.seed,
    }
    plain = patient_dm_factory()
    assert not any(k.startswith("data.zca") for k in study_settings(compose_cfg(BASE), plain))


def test_a_constant_channel_passes_through_and_bad_filters_name_the_key():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(8, 2, 10, 10, generator=g)
    images[:, 1] = 0.25  # e.g. an unused colour channel
    kernel = zca_kernel(images, 3, 0.1, g, max_windows=1000)
    assert torch.isfinite(kernel).all()
    assert torch.equal(kernel[1], torch.tensor([[0.0, 0, 0], [0, 1, 0], [0, 0, 0]]))
    with pytest.raises(
        ModelConfigError, match=r"model.zca_kernel must be numbers \[C\]\[k\]\[k\] .* got dict"
    ):
        zca_layer({"a": 1}, 1)  # type: ignore[arg-type]
    with pytest.raises(ModelConfigError, match="a filter of zeros"):
        zca_layer([[[0.0, 0, 0], [0, 0, 0], [0, 0, 0]]], 1)
