"""The small real-data baselines (random subsets, class means, teacher soft labels) and their byte counts,
against plain loops and hand-computed sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.evaluation.baselines import (
    check_temperature,
    class_means,
    distilled_bytes,
    random_subset,
    real_set_bytes,
    teacher_labels,
)


def test_random_subset_draws_distinct_training_patches_of_each_class(patient_dm):
    """Every drawn image is a training patch of the class it is labelled with (never a validation or test
    patch), without repeats; another generator draws another subset."""
    train_x, train_y = patient_dm.load_split("train")
    x, y = random_subset(patient_dm, 4, torch.Generator().manual_seed(3))
    assert torch.bincount(y, minlength=3).tolist() == [4, 4, 4]
    flat = train_x.flatten(1)
    # an image that is no training patch raises IndexError here
    rows = [int(torch.nonzero((flat == xi.flatten()).all(1)).flatten()[0]) for xi in x]
    assert len(set(rows)) == len(rows)
    assert train_y[rows].tolist() == y.tolist()
    other, _ = random_subset(patient_dm, 4, torch.Generator().manual_seed(4))
    assert not torch.equal(other, x)


def test_class_means_are_the_mean_image_of_each_class_over_all_batches():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(23, 1, 3, 3, generator=gen)
    y = torch.tensor([2, 0, 1] * 7 + [2, 2])
    means, labels = class_means([(x[:10], y[:10]), (x[10:], y[10:])], 3)
    assert labels.tolist() == [0, 1, 2]
    for c in range(3):
        want = np.mean(x[y == c].double().numpy(), axis=0)
        np.testing.assert_allclose(means[c].numpy(), want, rtol=1e-6)


def test_class_means_name_the_class_without_patches():
    x, y = torch.zeros(4, 1, 2, 2), torch.tensor([0, 2, 0, 2])
    with pytest.raises(ValueError, match=r"no training patches for class\(es\) \['non-gastritis'\]"):
        class_means([(x, y)], 3, ["irrelevant", "non-gastritis", "gastritis"])


def test_byte_counts_by_hand():
    # 5 patches of 1 x 4 x 4 at 2 bytes a pixel plus a label byte each
    assert real_set_bytes(5, (1, 4, 4), 2) == 5 * (16 * 2 + 1)
    ds = DistilledSet(3, ipc=2, steps=3, epochs=2, image_shape=(1, 4, 4))
    n_images, n_logits, n_lrs = ds.images.numel(), ds.label_logits.numel(), ds.raw_lrs.numel()
    assert n_images == 3 * 2 * 3 * 16  # steps x classes x ipc images of 16 pixels
    assert distilled_bytes(ds) == 4 * (n_images + n_logits + n_lrs)
    assert distilled_bytes(ds.double()) == 8 * (n_images + n_logits + n_lrs)


def test_teacher_labels_are_the_tempered_softmax_of_the_teacher_in_eval_mode():
    torch.manual_seed(0)
    teacher = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(9, 3), torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3)
    )
    teacher.train()
    x = torch.randn(6, 1, 3, 3)
    got = teacher_labels(teacher, x, 2.0)
    assert not teacher.training
    with torch.no_grad():
        lin, bn = teacher[1], teacher[3]
        z = (lin(x.flatten(1)) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        e = torch.exp(z.double() / 2.0)
        want = e / e.sum(1, keepdim=True)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), float("inf"), "hot", None, True])
def test_a_temperature_that_is_not_a_positive_number_is_refused(bad):
    with pytest.raises(ValueError, match="eval.baselines.teacher_temperature must be a finite number > 0"):
        check_temperature(bad)
    assert check_temperature(0.5) == 0.5
