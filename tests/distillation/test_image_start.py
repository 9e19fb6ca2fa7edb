"""The loop both image starts share (``image_start.optimise_pixels``) against SGD with momentum by hand on a
quadratic loss, and ``section_number``'s refusals of values that are not numbers of its kind."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.errors import DistillConfigError
from gastrodistill.distillation.image_start import optimise_pixels, section_number
from gastrodistill.utils.seeding import torch_generator


def a_double_set_whose_learned_labels_disagree_with_its_classes() -> DistilledSet:
    """3 classes x 2 images x 2 steps, float64; the learned labels say class c + 1 for an image of class c
    (as a teacher's labels may, before distribution matching)."""
    ds = DistilledSet(3, 2, 2, 1, (1, 2, 3)).double().init_noise(torch_generator(0, "image-start"))
    with torch.no_grad():
        ds.label_logits.copy_(3.0 * F.one_hot((ds.hard_labels() + 1) % 3, 3).double())
    return ds


def test_the_pixels_take_sgd_steps_in_float32_on_the_classes_and_return_in_the_sets_dtype(capsys):
    """Kills: the images kept in float64, the soft labels' argmax passed for the classes, a step index off
    by one, a missing zero_grad (momentum would see summed gradients), the result not copied back."""
    ds = a_double_set_whose_learned_labels_disagree_with_its_classes()
    before = ds.images.detach().numpy().copy()
    target = np.linspace(-1.0, 1.0, before.size).reshape(before.shape)
    seen = []

    def loss_at(step, images, labels):
        seen.append((step, images.dtype, labels.clone()))
        return ((images - torch.as_tensor(target, dtype=images.dtype)) ** 2).sum()

    lr, m = 0.1, 0.5
    losses = optimise_pixels(
        ds, loss_at, lambda p: torch.optim.SGD(p, lr=lr, momentum=m), 3, "cpu", "a quadratic", progress=False
    )
    x, buf, want = before.astype(np.float32).astype(np.float64), None, []
    for _ in range(3):  # torch's SGD: buf = g on the first step, then m * buf + g; x -= lr * buf
        want.append(float(((x - target) ** 2).sum()))
        g = 2.0 * (x - target)
        buf = g if buf is None else m * buf + g
        x = x - lr * buf
    assert [s for s, _, _ in seen] == [0, 1, 2]
    assert all(dtype == torch.float32 for _, dtype, _ in seen)
    assert all(torch.equal(labels, torch.tensor([0, 0, 1, 1, 2, 2] * 2)) for _, _, labels in seen)
    assert losses == pytest.approx(want, rel=1e-5)
    assert ds.images.dtype == torch.float64
    np.testing.assert_allclose(ds.images.detach().numpy(), x, rtol=1e-5, atol=1e-6)
    assert capsys.readouterr().err == ""  # progress=False: no bar


def test_the_progress_bar_is_named_with_the_sets_mode(capsys):
    ds = DistilledSet(3, 1, 1, 1, (1, 2, 2), mode="hard").init_noise(torch_generator(0, "bar"))
    optimise_pixels(
        ds, lambda s, x, y: (x**2).sum(), lambda p: torch.optim.SGD(p, lr=0.1), 2, "cpu", "a start"
    )
    assert "a start (hard)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "cast", "message"),
    [
        (None, int, "sec.n must be an integer, got None"),  # int(None) is a TypeError, not a ValueError
        ([2], float, "sec.n must be a number, got [2]"),
        (True, float, "sec.n must be a number, got True"),  # a flag is not a rate, though float(True) == 1.0
        (False, int, "sec.n must be an integer, got False"),
        (2.5, int, "sec.n must be an integer, got 2.5"),
        ("3", int, "sec.n must be an integer, got '3'"),
    ],
)
def test_a_section_value_that_is_not_a_number_of_its_kind_is_refused_naming_its_key(raw, cast, message):
    with pytest.raises(DistillConfigError, match=f"^{re.escape(message)}$"):
        section_number({"n": raw}, "sec", "n", 1, cast)


def test_a_section_number_is_the_value_or_the_default_as_its_type():
    assert section_number({}, "sec", "n", 5, int) == 5
    value = section_number({"n": 2.0}, "sec", "n", 5, int)
    assert value == 2 and type(value) is int
    value = section_number({"n": 1}, "sec", "n", 0.5, float)
    assert value == 1.0 and type(value) is float


def test_a_null_count_in_the_matching_section_is_refused_naming_it():
    from gastrodistill.distillation.distribution_matching import check_matching_config

    with pytest.raises(
        DistillConfigError, match=r"distill.distribution_matching.steps must be an integer, got None"
    ):
        check_matching_config({"steps": None})
