"""``data.zca`` through the whole tiny study: the filter of the training split reaches every network the
study trains (the distillation's, the reference, each evaluation architecture's), the set records it,
and the artifact carries it to a receiving site's networks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from gastrodistill.evaluation.checks import DistilledSetMismatch
from gastrodistill.evaluation.fresh_training import NetSpec
from gastrodistill.models.zca import ZCA_KEY

ZCA = "data.zca={_target_: gastrodistill.data.zca.LocalZCA, kernel_size: 3, eps: 0.1, max_windows: 2000}"


def test_the_tiny_study_whitens_every_network_with_the_training_splits_filter(compose_cfg, monkeypatch):
    from gastrodistill.cli.reproduce import run
    from gastrodistill.sharing.artifact import load_artifact
    from gastrodistill.sharing.train_from_artifact import model_factory, render, train_from_artifact

    built: list[torch.nn.Module] = []
    build = NetSpec.build

    def spy(self, generator):
        net = build(self, generator)
        built.append(net)
        return net

    monkeypatch.setattr(NetSpec, "build", spy)
    cfg = compose_cfg(["experiment=tiny", ZCA])
    paths = run(cfg)
    out = Path(cfg.paths.output_dir)

    dm = instantiate(cfg.data)  # the filter computed again, by a fresh data module of the same data
    dm.prepare_data()
    dm.setup()
    kernel = dm.zca_kernel()
    assert kernel is not None and kernel.shape == (1, 3, 3)
    assert not torch.allclose(kernel, torch.zeros_like(kernel))

    summary = (out / "SUMMARY.md").read_text()
    filter_line = "), behind a 3 px local ZCA filter of the training split (eps 0.1, 2000 windows of at most"
    assert f"{filter_line} 2000 images)" in summary

    for mode in ("soft", "hard"):
        recorded = json.loads((out / "distill" / mode / "distilled.json").read_text())["model"]
        assert torch.equal(torch.tensor(recorded[ZCA_KEY]), kernel), mode
        assert (out / "distill" / mode / "zca.png").stat().st_size > 0, (
            mode
        )  # the filter, images before/after
    # every network the evaluation and the audit built (the set's ConvNets, the LeNet of the cross-
    # architecture rows, the baselines) starts with this filter
    assert {type(n).__name__ for n in built} >= {"ConvNet", "LeNet"}
    for net in built:
        assert torch.equal(net.zca.kernel[:, 0].cpu(), kernel), type(net).__name__
    reference = load_file(str(out / "eval" / "reference.safetensors"))  # the all-data network
    assert torch.equal(reference["zca.kernel"][:, 0], kernel)

    # the artifact's card carries the filter, and a receiving site's networks are built behind it
    _, card = load_artifact(paths["artifact (soft)"])
    factory, _, _ = model_factory(card)
    received = factory(in_channels=1, num_classes=3, image_size=(16, 16))
    assert torch.equal(received.zca.kernel[:, 0], kernel)
    # the same run folder's sets audited, evaluated or published without data.zca: refused before any work
    audit_before = (out / "audit" / "audit.json").read_bytes()
    for stage in ("audit", "evaluate", "artifact"):
        plain = compose_cfg(["experiment=tiny", f"stages=[{stage}]"])  # the same paths.output_dir
        with pytest.raises(DistilledSetMismatch, match="distilled behind a filter .* and data.zca is null"):
            run(plain)
    assert (out / "audit" / "audit.json").read_bytes() == audit_before

    built.clear()
    result = train_from_artifact(paths["artifact (soft)"], cfg, dm, out / "receive", n_networks=1)
    assert result["zca_filter_px"] == 3
    assert "The networks start with the card's 3 px ZCA whitening filter." in render(result)


def test_a_filter_larger_than_the_patches_stops_reproduce_before_any_data(tmp_path, monkeypatch, capsys):
    from _cli_runner import assert_nothing_written, run_main

    from gastrodistill.cli.reproduce import main

    big = ZCA.replace("kernel_size: 3", "kernel_size: 17")  # the tiny preset stores 16 px patches
    code, text = run_main(
        main,
        ["gastrodistill-reproduce", "experiment=tiny", big, f"paths.root_dir={tmp_path / 'root'}"],
        monkeypatch,
        capsys,
    )
    assert code == 1 and "Traceback" not in text
    assert "data.zca.kernel_size = 17 px is larger than the 16x16 px images (data.storage_size)" in text
    assert "use at most 15" in text
    assert_nothing_written(tmp_path / "root")
