"""The package's one renderer and its writers (``utils.images``, ``sharing.grid``), read back: pixels of the
rendered grid against the images de-normalised by numpy, the axes' captions, row labels and ticks against
the targets, the de-normalisation and the uint8 conversion against numpy (mutation review of
utils/images.py and sharing/grid.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

from gastrodistill.sharing import grid
from gastrodistill.sharing.grid import save_grid
from gastrodistill.utils.images import denormalise, render_grid, save_png, to_uint8

MEAN, STD = [0.5, 0.4, 0.3], [0.25, 0.2, 0.1]


def _normalised(values, mean, std, h=6, w=10) -> torch.Tensor:
    """Images [N, C, h, w] whose de-normalised intensity is ``values[n][c]`` everywhere."""
    v = np.asarray(values, np.float64)[:, :, None, None] * np.ones((1, 1, h, w))
    m, s = np.asarray(mean)[None, :, None, None], np.asarray(std)[None, :, None, None]
    return torch.tensor((v - m) / s, dtype=torch.float32)


def _cells(image: np.ndarray, rows: int, cols: int, top: int = 0):
    """The figure's cells (equal parts below ``top`` pixels of title), row by row."""
    h, w = (image.shape[0] - top) // rows, image.shape[1] // cols
    return [
        image[top + r * h : top + (r + 1) * h, c * w : (c + 1) * w] for r in range(rows) for c in range(cols)
    ]


def _centre(cell: np.ndarray) -> list[int]:
    return cell[cell.shape[0] // 2, cell.shape[1] // 2].tolist()


@pytest.fixture
def axes(monkeypatch):
    """Every subplot the renderer adds, kept for reading back (their figure too)."""
    kept: list = []
    real = Figure.add_subplot
    monkeypatch.setattr(
        Figure, "add_subplot", lambda fig, *a, **k: kept.append(real(fig, *a, **k)) or kept[-1]
    )
    return kept


def test_each_cell_shows_its_image_de_normalised_in_grey_and_spare_cells_are_blank():
    """Three grey images (intensities after x * std + mean) two a row: each cell's centre is the grey
    colormap's level int(v * 256) of its intensity v, on a scale from 0 to 1 (not the images' own range);
    the fourth cell is white. Intensities halfway between levels keep float error away from the edges."""
    levels = [51, 128, 204]
    values = [[(k + 0.5) / 256] for k in levels]
    x = _normalised(values, [0.5], [0.25])
    image = render_grid(x, torch.eye(2)[[0, 1, 0]], ["a", "b"], [0.5], [0.25], 2)
    assert image.dtype == np.uint8 and image.shape == (2 * 180, 2 * 160, 3)  # 1.6 x 1.8 inch cells, 100 dpi
    cells = _cells(image, 2, 2)
    assert [_centre(c) for c in cells[:3]] == [[k] * 3 for k in levels]
    assert (cells[3] == 255).all()


def test_a_colour_image_keeps_its_channels_and_its_orientation():
    """One RGB image 6 high and 10 wide, its left half (51, 128, 230) / 255 and its right half the reverse
    after de-normalising with per-channel statistics (a quarter level above each, as bytes truncate): the
    drawn image is wider than high, the left colour at its left edge, the right colour at its right."""
    left_rgb, right_rgb = [51, 128, 230], [230, 128, 51]
    left = _normalised([[(k + 0.25) / 255 for k in left_rgb]], MEAN, STD)
    right = _normalised([[(k + 0.25) / 255 for k in right_rgb]], MEAN, STD)
    x = torch.cat([left[..., :5], right[..., 5:]], dim=-1)
    image = render_grid(x, torch.tensor([[1.0, 0.0]]), ["a", "b"], MEAN, STD, 4)
    assert image.shape == (180, 160, 3)  # one image: one cell, though rows hold 4
    (cell,) = _cells(image, 1, 1)
    drawn = (cell == left_rgb).all(-1) | (cell == right_rgb).all(-1)
    rows, cols = np.nonzero(drawn)
    mid = (rows.min() + rows.max()) // 2
    assert cell[mid, cols.min()].tolist() == left_rgb
    assert cell[mid, cols.max()].tolist() == right_rgb
    assert drawn[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()  # one solid image
    assert (cols.max() - cols.min()) > 1.5 * (rows.max() - rows.min())  # 10 wide, 6 high: not transposed


def test_captions_give_the_top_k_labels_with_two_decimals_and_rows_their_labels(axes):
    names = ["gastritis_chronic", "normal", "ulcer"]
    targets = torch.tensor([[0.666, 0.2, 0.134], [0.1, 0.3, 0.6], [0.05, 0.9, 0.05]])
    render_grid(
        _normalised([[0.5]] * 3, [0.5], [0.25]),
        targets,
        names,
        [0.5],
        [0.25],
        2,
        title="soft",
        top_k=2,
        row_labels=["first row label!", "second"],
    )
    want = []
    for p in targets.numpy():
        top = np.argsort(-p, kind="stable")[:2]
        want.append("\n".join(f"{names[t][:10]} {p[t]:.2f}" for t in top))
    assert [ax.get_title() for ax in axes[:3]] == want
    assert want[0] == "gastritis_ 0.67\nnormal 0.20"
    assert [ax.get_ylabel() for ax in axes] == ["first row labe", "", "second", ""]  # 14 characters
    assert all(list(ax.get_xticks()) == list(ax.get_yticks()) == [] for ax in axes)
    assert [ax.axison for ax in axes] == [True, True, True, False]
    assert axes[0].figure._suptitle.get_text() == "soft"


def test_rows_without_a_label_and_grids_without_row_labels_are_left_unlabelled(axes):
    x, t = _normalised([[0.5]] * 3, [0.5], [0.25]), torch.eye(2)[[0, 1, 0]]
    render_grid(x, t, ["a", "b"], [0.5], [0.25], 1, row_labels=["r1"])  # three rows, one label
    render_grid(x, t, ["a", "b"], [0.5], [0.25], 1)
    assert [ax.get_ylabel() for ax in axes] == ["r1", "", "", "", "", ""]


def test_denormalise_is_x_times_std_plus_mean_per_channel_and_clamps_when_asked():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    want = x * np.array(STD, np.float32)[:, None, None] + np.array(MEAN, np.float32)[:, None, None]
    close = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(denormalise(torch.tensor(x), MEAN, STD).numpy(), want, **close)
    np.testing.assert_allclose(denormalise(torch.tensor(x[0]), MEAN, STD).numpy(), want[0], **close)
    np.testing.assert_allclose(
        denormalise(torch.tensor(x), MEAN, STD, clamp=True).numpy(), np.clip(want, 0, 1)
    )
    assert want.min() < 0 and want.max() > 1  # the clamp has work to do


def test_without_statistics_each_image_is_scaled_to_its_own_range_over_all_channels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    lo, hi = x.min(axis=(1, 2, 3), keepdims=True), x.max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(
        denormalise(torch.tensor(x), None, None).numpy(), (x - lo) / (hi - lo), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(
        denormalise(torch.tensor(x), MEAN, None).numpy(), (x - lo) / (hi - lo), rtol=1e-5, atol=1e-7
    )
    flat = denormalise(torch.full((1, 1, 3, 3), 7.0), None, None)
    assert torch.equal(flat, torch.zeros(1, 1, 3, 3))  # a constant image: zeros, not NaN


def test_to_uint8_rounds_to_the_nearest_level_and_clips():
    x = np.array([[-0.5, 0.0, 0.5], [0.999, 1.0, 1.5]])
    # by hand: 0.5 * 255 = 127.5 rounds to even 128; 0.999 * 255 = 254.7 rounds to 255
    assert to_uint8(x).tolist() == [[0, 0, 128], [255, 255, 255]]
    assert to_uint8(x).dtype == np.uint8


def test_save_png_writes_the_array_as_it_is(tmp_path):
    image = np.random.default_rng(2).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = save_png(tmp_path / "g.png", image)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), image)


def test_save_grid_draws_the_first_max_images_with_their_top_label_under_the_title(tmp_path, axes):
    """Five grey images, max_images=4, two a row, titled: a 2 x 2 grid of the first four (grey levels 25,
    51, 76 and 102 after de-normalising with the given mean and std) under 0.4 inch of title, each
    captioned with its top label."""
    levels = [25, 51, 76, 102, 230]
    values = [[(k + 0.5) / 256] for k in levels]
    targets = torch.tensor([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.45, 0.55], [1.0, 0.0]])
    path = save_grid(
        tmp_path / "grid.png",
        _normalised(values, [0.3], [0.2]),
        targets,
        ["a", "b"],
        [0.3],
        [0.2],
        per_row=2,
        max_images=4,
        title="soft",
    )
    with Image.open(path) as im:
        image = np.asarray(im.convert("RGB"))
    assert image.shape == (2 * 180 + 40, 2 * 160, 3)
    assert [_centre(c) for c in _cells(image, 2, 2, top=40)] == [[k] * 3 for k in levels[:4]]
    assert [ax.get_title() for ax in axes] == ["a 0.80", "b 0.70", "a 0.60", "b 0.55"]
    assert axes[0].figure._suptitle.get_text() == "soft"


def test_save_grid_draws_at_most_120_images_by_default(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(
        grid, "render_grid", lambda images, *a, **k: seen.append(len(images)) or np.zeros((2, 2, 3), np.uint8)
    )
    save_grid(
        tmp_path / "g.png", torch.zeros(130, 1, 2, 2), torch.ones(130, 2) / 2, ["a", "b"], [0.5], [0.25], 10
    )
    assert seen == [120]
