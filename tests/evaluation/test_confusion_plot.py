"""The confusion-matrix figure: class names whole (they were cut to 9 characters: "Cancer fr", "Ulcer (be"),
panels that grow with the number of classes, and the test unit in its title."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gastrodistill.evaluation.plots import plot_confusion_matrices, tick_label


def test_tick_labels_wrap_class_names_without_cutting_them():
    for name in ("Cancer früh", "Ulcer (benign)", "Gastritis – atrophic", "x"):
        label = tick_label(name)
        assert label.replace("\n", " ") == name and all(len(line) <= 12 for line in label.splitlines())
    assert tick_label("Adenocarcinoma") == "Adenocarcino\nma"  # one long word: broken, not cut


def test_the_figure_grows_with_the_classes(tmp_path):
    def width(k: int) -> int:
        names = [f"class number {i}" for i in range(k)]
        mats = {"soft/replay/same": np.eye(k) * 3, "full/standard/same": np.ones((k, k))}
        path = plot_confusion_matrices(mats, names, tmp_path / f"cm{k}.png", unit="images")
        with Image.open(path) as im:
            return im.size[0]

    assert width(8) > 1.3 * width(3)
