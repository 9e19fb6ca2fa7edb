"""The whitening picture of a set distilled behind ``data.zca`` (``zca.png``): the images it shows as the
networks see them are the set's first image of each class convolved with the set's own filter (checked
against scipy's correlation with a mirrored border), and a set without a filter gets no picture."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.plots import whitened_examples, zca_filter, zca_image
from gastrodistill.models.zca import ZCA_KEY


def a_set(channels: int, kernel: torch.Tensor | None) -> DistilledSet:
    model = {"_target_": "gastrodistill.models.ConvNet", "width": 4}
    if kernel is not None:
        model[ZCA_KEY] = kernel.tolist()
    ds = DistilledSet(
        3,
        2,
        1,
        1,
        (channels, 12, 10),
        class_names=["a", "b", "c"],
        mean=[0.5] * channels,
        std=[0.2] * channels,
        model_config=model,
    )
    return ds.init_noise(torch.Generator().manual_seed(1))


@pytest.mark.parametrize("channels", [1, 2, 3])
def test_the_pictured_images_are_the_first_of_each_class_through_the_sets_filter(channels):
    kernel = torch.randn(channels, 5, 5, generator=torch.Generator().manual_seed(2))
    ds = a_set(channels, kernel)
    images, white = whitened_examples(ds)
    labels = ds.hard_labels()
    for c in range(3):
        first = int(torch.nonzero(labels == c)[0])
        assert torch.equal(images[c], ds.images.detach()[first])
        for ch in range(channels):
            expected = ndimage.correlate(
                images[c, ch].double().numpy(), kernel[ch].double().numpy(), mode="mirror"
            )
            np.testing.assert_allclose(white[c, ch].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(zca_filter(ds), kernel)
    picture = zca_image(ds)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert picture.std() > 0  # something is drawn


def test_a_set_without_a_filter_has_no_whitening_picture():
    ds = a_set(1, None)
    assert zca_filter(ds) is None and whitened_examples(ds) is None and zca_image(ds) is None
