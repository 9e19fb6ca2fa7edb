"""The DistilledSet: layout, softplus learning rates, soft/hard targets, init, and safe save/load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.distillation.distilled_set import DistilledSet, DistilledSetError
from gastrodistill.utils.seeding import torch_generator


def make(**kw):
    args = dict(num_classes=3, ipc=2, steps=4, epochs=3, image_shape=(1, 5, 6), lr_init=0.02)
    args.update(kw)
    return DistilledSet(**args)


def test_shapes_and_softplus_initial_learning_rates():
    ds = make()
    assert ds.images.shape == (4 * 3 * 2, 1, 5, 6)
    assert ds.label_logits.shape == (24, 3)
    assert ds.raw_lrs.shape == (12,)
    assert ds.num_inner_steps == 12
    assert torch.allclose(ds.lrs(), torch.full((12,), 0.02), rtol=1e-6)
    assert torch.allclose(ds.lrs(), torch.log1p(torch.exp(ds.raw_lrs)))  # softplus, independently
    with pytest.raises(DistilledSetError, match="lr_init"):
        make(lr_init=0.0)


def test_batches_cycle_over_steps_class_major():
    ds = make(label_init_scale=50.0)
    ds.images.data = torch.arange(24, dtype=torch.float32).view(24, 1, 1, 1).expand(24, 1, 5, 6).clone()
    for t in range(ds.num_inner_steps):
        x, p = ds.batch(t)
        s = t % ds.steps
        assert x.shape == (6, 1, 5, 6)
        assert x[:, 0, 0, 0].tolist() == list(range(6 * s, 6 * s + 6))
        assert p.argmax(1).tolist() == [0, 0, 1, 1, 2, 2]


def test_soft_targets_use_temperature_and_hard_mode_is_exact_one_hot():
    ds = make(label_init_scale=2.0, temperature=0.5)
    expected = math.exp(4.0) / (math.exp(4.0) + 2)  # softmax([2, 0, 0] / 0.5)[0]
    assert ds.soft_targets()[0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert ds.label_logits.requires_grad
    hard = make(mode="hard", label_init_scale=2.0)
    assert not hard.label_logits.requires_grad
    assert torch.equal(hard.soft_targets(), F.one_hot(hard.hard_labels(), 3).float())
    assert hard.label_entropy().item() == pytest.approx(0.0, abs=1e-6)
    # a report, not part of any loss: no graph back to the learned logits (a float() of it warned)
    p = ds.soft_targets().detach()
    entropy = ds.label_entropy()
    assert not entropy.requires_grad
    assert entropy.item() == pytest.approx(float(-(p * p.log()).sum(1).mean()), rel=1e-6)


def test_two_classes_keep_two_logits():
    ds = make(num_classes=2, label_init_scale=3.0)
    assert ds.label_logits.shape[1] == 2
    assert ds.soft_targets()[:, 0].gt(0.5).tolist() == [True, True, False, False] * 4


def test_real_init_puts_each_class_in_its_slots():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    x = (y[:, None, None, None] + 0.1 * rng.random((60, 1, 5, 6))).astype(np.float32) / 3
    dm = TensorImageDataModule(splits={s: (x, y) for s in ("train", "val", "test")})
    ds = make().init_real(dm, torch_generator(0, "init"))
    means = ds.images.mean(dim=(1, 2, 3)).view(4, 3, 2)  # [steps, class, ipc]
    assert (means[:, 1] > means[:, 0]).all() and (means[:, 2] > means[:, 1]).all()
    real, labels = dm.load_split("train")  # normalised, as the slots are
    for slot, image in enumerate(ds.images):
        cls = (slot // 2) % 3  # step-major, class-major within a step, ipc 2
        assert any(torch.equal(image, r) for r in real[labels == cls]), slot
    rows = {tuple(r.flatten().tolist()) for r in ds.images}
    assert len(rows) == 24  # distinct real samples, no repeats
    with pytest.raises(ValueError, match="fewer than"):
        make(steps=10, ipc=3).init_real(dm, torch_generator(0))


def test_save_load_round_trip(tmp_path):
    ds = make(temperature=0.7, class_names=["a", "b", "c"], mean=[0.5], std=[0.2])
    ds.init_noise(torch_generator(1, "noise"))
    with torch.no_grad():
        ds.label_logits.add_(torch.randn(24, 3, generator=torch_generator(2)))
        ds.raw_lrs.add_(0.3)
    ds.save(tmp_path / "set")
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == ["distilled.json", "distilled.safetensors"]
    back = DistilledSet.load(tmp_path / "set")
    for name in ("images", "label_logits", "raw_lrs"):
        assert torch.equal(getattr(back, name), getattr(ds, name))
    assert (back.mode, back.temperature, back.class_names, back.mean) == ("soft", 0.7, ["a", "b", "c"], [0.5])
    meta = json.loads((tmp_path / "set" / "distilled.json").read_text())
    assert meta["lrs"] == pytest.approx(ds.lrs().tolist())
    assert "data_source_hash" not in meta and back.data_source_hash is None  # a set of unknown data


def test_the_data_a_set_was_distilled_from_round_trips_and_a_malformed_one_is_refused(tmp_path):
    ds = make(mean=[0.5], std=[0.2])
    ds.data_source_hash = "ab" * 32
    ds.save(tmp_path / "set")
    meta = json.loads((tmp_path / "set" / "distilled.json").read_text())
    assert meta["data_source_hash"] == "ab" * 32
    assert DistilledSet.load(tmp_path / "set").data_source_hash == "ab" * 32
    for bad in ("/data/StMary", 12, "ABCDEF0123"):
        meta["data_source_hash"] = bad
        (tmp_path / "set" / "distilled.json").write_text(json.dumps(meta))
        with pytest.raises(DistilledSetError, match=r"'data_source_hash' must be the hex digest") as info:
            DistilledSet.load(tmp_path / "set")
        assert "distilled.json" in str(info.value)


def test_load_refuses_pickles_and_malformed_files(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    torch.save({"images": torch.zeros(1)}, d / "set.pt")
    with pytest.raises(DistilledSetError, match="pickled files are never loaded"):
        DistilledSet.load(d)
    ds = make()
    ds.save(tmp_path / "ok")
    meta = json.loads((tmp_path / "ok" / "distilled.json").read_text())
    meta["ipc"] = 3  # inconsistent with the tensors
    (tmp_path / "ok" / "distilled.json").write_text(json.dumps(meta))
    with pytest.raises(DistilledSetError, match="'images' has shape"):
        DistilledSet.load(tmp_path / "ok")
    ds.save(tmp_path / "nan")
    save_file(
        {
            "images": torch.full_like(ds.images, float("nan")),
            "label_logits": ds.label_logits.detach(),
            "raw_lrs": ds.raw_lrs.detach(),
        },
        str(tmp_path / "nan" / "distilled.safetensors"),
    )
    with pytest.raises(DistilledSetError, match="finite"):
        DistilledSet.load(tmp_path / "nan")
    (tmp_path / "nan" / "distilled.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DistilledSetError, match="not a valid safetensors"):
        DistilledSet.load(tmp_path / "nan")
    (tmp_path / "nan" / "distilled.json").write_text("{")
    with pytest.raises(DistilledSetError, match="not valid JSON"):
        DistilledSet.load(tmp_path / "nan")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ipc", "two", "ipc must be an integer >= 1, got 'two'"),
        ("ipc", None, "ipc must be an integer"),
        ("ipc", True, "ipc must be an integer"),
        ("epochs", 2.5, "epochs must be an integer"),
        ("image_shape", ["1", "5", "6"], r"image_shape must be 3 positive integers"),
        ("temperature", "hot", "temperature must be a number > 0, got 'hot'"),
        ("inner_momentum", "x", r"inner_momentum must be a number in \[0, 1\)"),
        ("class_names", "abc", "class_names must be a list of strings, got 'abc'"),
        ("mean", "x", r"mean must be a list of 1 numbers \(one per channel\)"),
        ("std", [0.2, 0.2], r"std must be a list of 1 numbers"),
    ],
)
def test_load_names_the_field_of_a_wrongly_typed_metadata_value(tmp_path, field, value, message):
    """A distilled.json edited by hand or by another tool: the error names the file and the field and
    says what it must be, instead of a Python conversion error."""
    make(class_names=["a", "b", "c"], mean=[0.5], std=[0.2]).save(tmp_path / "set")
    meta_file = tmp_path / "set" / "distilled.json"
    meta = json.loads(meta_file.read_text())
    meta[field] = value
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DistilledSetError, match=message) as info:
        DistilledSet.load(tmp_path / "set")
    assert str(meta_file) in str(info.value)


def test_a_set_needs_at_least_two_classes():
    with pytest.raises(DistilledSetError, match="num_classes must be an integer >= 2, got 1"):
        make(num_classes=1, class_names=["only"])
    assert make(num_classes=2).label_logits.shape == (16, 2)


def test_load_refuses_extra_tensors_and_integer_tensors(tmp_path):
    """The tensor file must hold exactly the three learned tensors, as floating-point values: an extra
    tensor (another tool's file) or integer pixels of the right shape are refused, not cast or ignored."""
    ds = make()
    ds.save(tmp_path / "set")
    tfile = tmp_path / "set" / "distilled.safetensors"
    tensors = {n: getattr(ds, n).detach().clone() for n in ("images", "label_logits", "raw_lrs")}
    save_file({**tensors, "teacher_weights": torch.zeros(3)}, str(tfile))
    with pytest.raises(DistilledSetError, match=r"must hold exactly \['images', 'label_logits', 'raw_lrs'\]"):
        DistilledSet.load(tmp_path / "set")
    save_file({**tensors, "images": torch.zeros(ds.images.shape, dtype=torch.int64)}, str(tfile))
    with pytest.raises(DistilledSetError, match="'images' must be finite floating-point values"):
        DistilledSet.load(tmp_path / "set")
    save_file(tensors, str(tfile))  # the same file with float tensors loads
    assert torch.equal(DistilledSet.load(tmp_path / "set").images, ds.images)
