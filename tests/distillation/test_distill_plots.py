"""What the distiller draws, read back from the figures (matplotlib axes) and the renderer's arguments:
``grid.png``'s images in class order, ``lrs.png``'s schedule and epoch marks, ``curves.png``'s panels and
``zca.png``'s filter, plain and whitened panels, each against an independent computation."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from gastrodistill.distillation import plots
from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.models.zca import ZCA_KEY
from gastrodistill.utils.images import render_grid
from gastrodistill.utils.seeding import torch_generator


@pytest.fixture
def figures(monkeypatch):
    """Every figure the module turns into an array, kept for reading back."""
    kept, real = [], plots._figure_to_array
    monkeypatch.setattr(plots, "_figure_to_array", lambda fig: kept.append(fig) or real(fig))
    return kept


def a_set(k: int, ipc: int, steps: int, epochs: int = 1, channels: int = 1, seed: int = 0) -> DistilledSet:
    """Noise images and random learned labels (every image's target its own)."""
    ds = DistilledSet(
        k,
        ipc,
        steps,
        epochs,
        (channels, 5, 4),
        class_names=[f"class{c}" for c in range(k)],
        mean=[0.5] * channels,
        std=[0.25] * channels,
    ).init_noise(torch_generator(seed, "plots"))
    with torch.no_grad():
        ds.label_logits.normal_(generator=torch_generator(seed, "plots-labels"))
        ds.raw_lrs.normal_(generator=torch_generator(seed, "plots-lrs"))
    return ds


def rendered(monkeypatch, ds, **kw) -> dict:
    """The arguments grid_image gives the renderer, by name."""
    calls = []
    monkeypatch.setattr(plots, "render_grid", lambda *a, **k: calls.append((a, k)) or np.zeros((1, 1, 3)))
    plots.grid_image(ds, **kw)
    ((args, kwargs),) = calls
    return inspect.signature(render_grid).bind(*args, **kwargs).arguments


def class_indices(ds) -> list[list[int]]:
    """For each class, its images' indices in the set (by hard_labels), in order."""
    labels = ds.hard_labels()
    return [torch.nonzero(labels == c).flatten().tolist() for c in range(ds.num_classes)]


@pytest.mark.parametrize("max_per_class", [4, 3])  # 3 == the number of classes: still one row per class
def test_the_grid_shows_each_classs_first_images_in_a_row_of_its_own(monkeypatch, max_per_class):
    """Kills: max_per_class ignored, n > k for rows, the index of (class, j) by steps or transposed,
    the targets not in the images' order, no row labels, one label per caption."""
    ds = a_set(3, 2, 3)
    seen = rendered(monkeypatch, ds, max_per_class=max_per_class, title="t")
    order = [i for per_class in class_indices(ds) for i in per_class[:max_per_class]]
    assert torch.equal(seen["images"], ds.images.detach()[order])
    assert torch.equal(seen["targets"], ds.soft_targets().detach()[order])
    assert seen["per_row"] == max_per_class and seen["row_labels"] == ["class0", "class1", "class2"]
    assert seen["top_k"] == 2 and seen["title"] == "t" and seen["class_names"] == ds.class_names
    assert (seen["mean"], seen["std"]) == ([0.5], [0.25])


def test_with_fewer_images_per_class_than_classes_each_class_is_a_column(monkeypatch):
    ds = a_set(4, 1, 2)  # 2 images per class, 4 classes
    seen = rendered(monkeypatch, ds)
    first, second = zip(*class_indices(ds), strict=True)
    order = [*first, *second]  # a row of every class's first image, then of every class's second
    assert torch.equal(seen["images"], ds.images.detach()[order])
    assert torch.equal(seen["targets"], ds.soft_targets().detach()[order])
    assert seen["per_row"] == 4 and seen["row_labels"] is None


def test_the_lr_picture_draws_the_softplus_of_the_raw_lrs_with_a_mark_at_each_epochs_start(figures):
    ds = a_set(2, 1, 3, epochs=3)
    plots.lr_schedule_image(ds)
    (fig,) = figures
    (ax,) = fig.axes
    curve, *marks = ax.lines
    raw = ds.raw_lrs.detach().double().numpy()
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(9))
    np.testing.assert_allclose(curve.get_ydata(), np.log1p(np.exp(raw)), rtol=1e-6)
    assert [list(mark.get_xdata()) for mark in marks] == [[2.5, 2.5], [5.5, 5.5]]  # between t=2|3 and 5|6
    assert ax.get_title() == "learned lr schedule (3 steps x 3 epochs)"
    ds = a_set(2, 1, 4, epochs=2)
    plots.lr_schedule_image(ds)
    assert figures[-1].axes[0].get_title() == "learned lr schedule (4 steps x 2 epochs)"


def test_the_returned_picture_is_the_figure_as_saved_in_rgb(figures):
    """The array is the figure's RGB pixels (what savefig writes), not another three of its RGBA bytes."""
    picture = plots.lr_schedule_image(a_set(2, 1, 2, epochs=2))
    buf = io.BytesIO()
    figures[0].savefig(buf, format="png", dpi=figures[0].dpi)
    saved = np.asarray(Image.open(buf).convert("RGB"))
    assert picture.dtype == np.uint8 and picture.shape == saved.shape
    assert np.array_equal(picture, saved)


OUTER = {"step": [1.0, 2.0, 3.0], "loss": [1.5, 1.2, 0.9], "accuracy": [0.3, 0.5, 0.6]}


def test_the_curves_are_the_outer_loss_and_accuracy_by_step(figures):
    plots.curves_image(OUTER)
    loss_ax, acc_ax = figures[0].axes  # no image start here: two panels
    for ax, name in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        (line,) = ax.lines
        assert list(line.get_xdata()) == OUTER["step"] and list(line.get_ydata()) == OUTER[name]
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("outer step", name)
        assert ax.get_title() == f"outer {name} on the real batch" and not ax.texts
    plots.curves_image(OUTER, start=[])  # an empty start draws no panel
    assert len(figures[1].axes) == 2


def test_an_image_start_is_a_first_panel_of_its_losses_from_step_1(figures):
    plots.curves_image(OUTER, start=[4.0, 2.0, 1.0, 0.5], start_name="texture matching")
    start_ax, loss_ax, acc_ax = figures[0].axes
    (line,) = start_ax.lines
    assert list(line.get_xdata()) == [1, 2, 3, 4] and list(line.get_ydata()) == [4.0, 2.0, 1.0, 0.5]
    assert (start_ax.get_xlabel(), start_ax.get_ylabel()) == ("texture matching step", "loss")
    assert start_ax.get_title() == "texture matching"
    assert list(acc_ax.lines[0].get_ydata()) == OUTER["accuracy"]


def test_no_outer_step_is_said_in_each_outer_panel(figures):
    plots.curves_image({"step": [], "loss": [], "accuracy": []}, start=[1.0, 0.5])
    start_ax, *outer_axes = figures[0].axes
    assert not start_ax.texts
    assert [[t.get_text() for t in ax.texts] for ax in outer_axes] == [["no outer step ran here"]] * 2


def a_zca_set(kernel: torch.Tensor, k: int = 3) -> DistilledSet:
    channels = kernel.shape[0]
    ds = DistilledSet(
        k,
        2,
        1,
        1,
        (channels, 6, 7),
        class_names=[f"c{i}" for i in range(k)],
        mean=[0.4] * channels,
        std=[0.3] * channels,
        model_config={"_target_": "gastrodistill.models.ConvNet", ZCA_KEY: kernel.tolist()},
    )
    return ds.init_noise(torch_generator(1, "zca-plot"))


def panels(fig) -> dict:
    """The picture's image panels by (row, column) of its 3-row grid (colour bars left out)."""
    out = {}
    for ax in fig.axes:
        if ax.images and ax.get_subplotspec() is not None and ax.get_title():
            spec = ax.get_subplotspec().get_topmost_subplotspec()  # a colour bar nests its panel's
            out[(spec.rowspan.start, spec.colspan.start)] = ax
    return out


def pixels(ax) -> np.ndarray:
    """The panel's image data, with anything matplotlib masks (nan, inf) as nan: an assertion sees it."""
    return np.ma.filled(ax.images[0].get_array().astype(float), np.nan)


def test_the_zca_picture_shows_the_filter_on_a_symmetric_scale_and_each_class_before_and_after(figures):
    """Two channels (neither grey nor RGB: each panel the channels' mean). Kills: the filter's scale from
    max not |max|, or from 0; the rows swapped; the plain images not de-normalised; the whitened row
    unwhitened or not centred on mid-grey; a 2-channel image not averaged; a class panel misnamed."""
    kernel = torch.randn(2, 3, 3, generator=torch.Generator().manual_seed(5))
    kernel[0, 0, 0] = -5.0  # the filter's largest magnitude is negative: its scale is [-5, 5]
    ds = a_zca_set(kernel)
    plots.zca_image(ds)
    by_place = panels(figures[0])
    assert sorted(by_place) == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (2, 0), (2, 1), (2, 2)]
    for c in range(2):
        ax = by_place[(0, c)]
        np.testing.assert_array_equal(pixels(ax), kernel[c].numpy())
        bound = float(kernel[c].abs().max())
        assert ax.images[0].get_clim() == pytest.approx((-bound, bound))
        assert ax.get_title() == f"filter, channel {c} (3 px)"
    images = ds.images.detach().double().numpy()
    for i, first in enumerate(idx[0] for idx in class_indices(ds)):
        plain = np.clip(images[first] * 0.3 + 0.4, 0, 1).mean(0)
        white = np.stack(
            [
                ndimage.correlate(images[first, ch], kernel[ch].double().numpy(), mode="mirror")
                for ch in (0, 1)
            ]
        ).mean(0)
        before, after = by_place[(1, i)], by_place[(2, i)]
        assert before.get_title() == f"c{i}" and after.get_title() == "as the networks see it"
        np.testing.assert_allclose(pixels(before), plain, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pixels(after), (white / np.abs(white).max() + 1) / 2, rtol=1e-4, atol=1e-5)
        assert before.images[0].get_clim() == after.images[0].get_clim() == (0, 1)


def test_a_blank_whitened_image_is_mid_grey(figures):
    """An all-zero image whitens to zeros: drawn at 0.5 everywhere (its scale falls back to 1, no 0/0)."""
    ds = a_zca_set(torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(6)))
    with torch.no_grad():
        ds.images[0].zero_()  # the first image of class 0
    plots.zca_image(ds)
    np.testing.assert_array_equal(pixels(panels(figures[0])[(2, 0)]), np.full((6, 7), 0.5))
