"""The study's figures read back: each figure's drawn data from its axes (caught on its way to the file),
and the PNG it writes (decoded, its size or resolution). The confusion matrices' names and growth:
``test_confusion_plot.py``; the runs compared from the command: ``test_compare_runs.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from gastrodistill.evaluation import plots


@pytest.fixture
def drawn(monkeypatch):
    """The figures that reach ``plots.save_figure``, kept open for reading (they are still written)."""
    figures: list = []
    save = plots.save_figure

    def keep(fig, path, **options):
        figures.append(fig)
        fig.canvas.draw()  # lay out before the file closes the figure (tick labels, limits)
        return save(fig, path, **options)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def _png(path) -> tuple[tuple[int, int], tuple[float, float]]:
    """The PNG's size and resolution; it decodes whole."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        return im.size, im.info.get("dpi")


def test_the_distilled_grid_shows_at_most_max_images_in_rows_of_the_classes_or_six(tmp_path, monkeypatch):
    """10 images, 3 classes, max_images=4: one row of 4 cells of 1.9 x 2.2 inches at 100 dpi under a
    title (0.4 inch), each captioned with its top 3 labels (mutants: max_images ignored, another row
    length, another top-k)."""
    seen: dict = {}
    render = plots.render_grid

    def spy(images, targets, *args, **kw):
        seen.update(n=len(images), n_targets=len(targets), top_k=kw["top_k"], per_row=args[3])
        return render(images, targets, *args, **kw)

    monkeypatch.setattr(plots, "render_grid", spy)
    g = torch.Generator().manual_seed(0)
    images, soft = torch.rand(10, 3, 8, 8, generator=g), torch.softmax(torch.randn(10, 3, generator=g), 1)
    args = (soft, ["a", "b", "c"], [0.5] * 3, [0.2] * 3)
    path = plots.plot_distilled_grid(images, *args, tmp_path / "grid.png", title="soft", max_images=4)
    assert seen == {"n": 4, "n_targets": 4, "top_k": 3, "per_row": 4}
    assert _png(path)[0] == (4 * 190, 220 + 40)
    nine = plots.plot_distilled_grid(images, *args, tmp_path / "nine.png", max_images=9)  # 6 a row, untitled
    assert _png(nine)[0] == (6 * 190, 2 * 220)


def test_the_lr_schedules_are_drawn_per_step_from_1_with_the_epoch_boundaries(tmp_path, drawn):
    """Each set's rates at steps 1..n; dotted lines between its epochs (steps per epoch 2: after steps 2
    and 4 of 6), none for a set without its step count (mutants: steps from 0, boundaries shifted)."""
    soft, hard = np.array([0.01, 0.02, 0.03, 0.02, 0.01, 0.005]), np.array([0.1, 0.2, 0.3])
    path = plots.plot_lr_schedules({"soft": soft, "hard": hard}, tmp_path / "lrs.png", steps={"soft": 2})
    ax = drawn[0].axes[0]
    curves = {line.get_label(): line for line in ax.lines if not line.get_label().startswith("_")}
    assert set(curves) == {"soft", "hard"}
    np.testing.assert_array_equal(curves["soft"].get_xdata(), np.arange(1, 7))
    np.testing.assert_array_equal(curves["soft"].get_ydata(), soft)
    np.testing.assert_array_equal(curves["hard"].get_xdata(), [1, 2, 3])
    boundaries = sorted(line.get_xdata()[0] for line in ax.lines if line.get_label().startswith("_"))
    assert boundaries == [2.5, 4.5]
    assert _png(path)[1] == pytest.approx((110, 110), abs=0.01)


def test_the_roc_curves_carry_their_auc_and_a_band_clipped_to_the_unit_square(tmp_path, drawn):
    """The mean curve, a label with the AUC to 3 digits, the +-1 sd band clipped to [0, 1] (mutant: not
    clipped) and the chance diagonal; both axes from 0 to 1."""
    fpr = np.array([0.0, 0.2, 0.5, 1.0])
    tpr, sd = np.array([0.0, 0.7, 0.9, 1.0]), np.array([0.1, 0.4, 0.2, 0.1])
    path = plots.plot_roc_curves({"soft": (fpr, tpr, sd, 0.8456)}, tmp_path / "roc.png")
    ax = drawn[0].axes[0]
    curve, chance = ax.lines
    assert curve.get_label() == "soft (AUC 0.846)"
    np.testing.assert_array_equal(curve.get_xydata(), np.column_stack([fpr, tpr]))
    np.testing.assert_array_equal(chance.get_xydata(), [[0, 0], [1, 1]])
    (band,) = ax.collections
    y = band.get_paths()[0].vertices[:, 1]
    assert y.min() == 0.0 and y.max() == 1.0  # 0 - 0.1 and 0.9 + 0.2 clipped
    np.testing.assert_allclose(sorted(set(np.round(y, 9))), [0.0, 0.1, 0.3, 0.7, 0.9, 1.0])
    assert ax.get_xlim() == (0, 1) and ax.get_ylim() == (0, 1.01)
    assert _png(path)[1] == pytest.approx((110, 110), abs=0.01)


def test_confusion_matrices_are_row_normalised_one_panel_each_in_rows_of_four(tmp_path, drawn):
    """Five panels: two rows of four, the three spare axes hidden (mutants: rows rounded down dropped the
    fifth, spare axes shown); each panel the row-normalised matrix (an empty row all 0) with its values
    written, white on cells above 0.6, the class names whole on both axes."""
    names = ["a", "Ulcer (benign)", "c"]
    cm = np.array([[6, 3, 1], [0, 0, 0], [2, 2, 6]])
    mats = {f"m{i}": cm + i * np.eye(3, dtype=int) for i in range(5)}
    path = plots.plot_confusion_matrices(mats, names, tmp_path / "cm.png", unit="images")
    fig = drawn[0]
    assert len(fig.axes) == 8 and fig._suptitle.get_text() == "Test images, row-normalised"
    shown = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in shown] == list(mats)
    for ax, m in zip(shown, mats.values(), strict=True):
        m = m.astype(float)
        want = np.divide(m, m.sum(1, keepdims=True), out=np.zeros_like(m), where=m.sum(1, keepdims=True) > 0)
        np.testing.assert_allclose(ax.images[0].get_array(), want)
        assert [t.get_text() for t in ax.texts] == [f"{v:.2f}" for v in want.flat]
        colours = [t.get_color() for t in ax.texts]
        assert colours == ["white" if v > 0.6 else "black" for v in want.flat]
    first = shown[0].texts[0]
    assert (first.get_text(), first.get_color()) == ("0.60", "black")  # 0.6 itself: black
    wrapped = ["a", "Ulcer\n(benign)", "c"]  # whole, wrapped (mutant: names cut to 9 characters)
    assert [t.get_text() for t in shown[0].get_xticklabels()] == wrapped
    assert [t.get_text() for t in shown[0].get_yticklabels()] == wrapped
    assert _png(path)[1] == pytest.approx((110, 110), abs=0.01)


def test_cells_carry_numbers_up_to_20_classes_and_the_panel_stays_within_12_inches(tmp_path, monkeypatch):
    """20 classes: 400 numbers; 21: colour alone (mutant: '<' for '<='); 40 classes: the panel is capped
    at 12 inches (a breaker's 40 classes made a 10368 px wide figure)."""
    figures: list = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **options: figures.append(fig))
    for k in (20, 21, 40):
        plots.plot_confusion_matrices({"m": np.eye(k)}, [f"c{i}" for i in range(k)], tmp_path / "x.png")
    assert [len(f.axes[0].texts) for f in figures] == [400, 0, 0]
    assert figures[2].get_size_inches()[0] == pytest.approx(12.0)
    plots.plt.close("all")


def test_the_runs_compared_are_points_with_their_intervals_first_run_on_top(tmp_path, drawn):
    """Each run's mean at its line with the interval as the error bar (mutant: the bar's sides swapped, a
    negative error), run a at the top (mutant: the axis not inverted), a run's long label wrapped whole;
    an interval without bounds is drawn without a bar."""
    from gastrodistill.cli.compare_runs import Comparison

    long = "x" * 30
    comparison = Comparison(
        keys=["distill.ipc", "distill.note"],
        rows=[("soft", "replay")],
        metric="patient HM",
        names=["soft replay"],
        header=[],
        lines=[["a", "1", long], ["b", "2", long]],
        values=[
            {"soft replay mean": 0.8, "soft replay low": 0.7, "soft replay high": 0.85},
            {"soft replay mean": 0.6, "soft replay low": float("nan"), "soft replay high": float("nan")},
        ],
        notes=[],
    )
    path = plots.plot_runs_compared(comparison, tmp_path / "runs.png")
    ax = drawn[0].axes[0]
    points = ax.lines[0]
    np.testing.assert_array_equal(points.get_xydata(), [[0.8, 0], [0.6, 1]])
    (bars,) = [c for c in ax.collections if len(c.get_segments())]
    segments = [np.asarray(s) for s in bars.get_segments()]
    np.testing.assert_allclose(segments[0], [[0.7, 0], [0.85, 0]])
    np.testing.assert_allclose(segments[1], [[0.6, 1], [0.6, 1]])  # no interval: no bar
    assert ax.get_ylim() == (1.5, -0.5)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    whole = [f"{run}, distill.ipc={ipc}, distill.note={long}" for run, ipc in (("a", 1), ("b", 2))]
    assert [t.replace("\n", " ") for t in labels] == whole
    assert all(len(line) <= 48 for t in labels for line in t.split("\n"))
    assert [t.get_text() for t in drawn[0].legends[0].get_texts()] == ["soft replay"]
    assert _png(path)[1] == pytest.approx((110, 110), abs=0.01)
