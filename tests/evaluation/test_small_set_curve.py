"""benchmarks/small_set_curve.py: its figures against an independent computation, strict JSON without
patients, and its argument errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _benchmarks import load_benchmark

SMALL = ["data=digits", "model.depth=1", "model.width=8", "eval.standard.epochs=3", "eval.lr_grid=[0.03]"]


def _curve():
    return load_benchmark("small_set_curve")


def test_renormalise_keeps_the_raw_pixels_per_channel() -> None:
    curve = _curve()
    raw = torch.rand(4, 3, 8, 8, dtype=torch.float64)
    m1, s1 = torch.tensor([0.3, 0.4, 0.5]).view(3, 1, 1), torch.tensor([0.2, 0.1, 0.3]).view(3, 1, 1)
    m2, s2 = torch.tensor([0.5, 0.1, 0.2]).view(3, 1, 1), torch.tensor([0.25, 0.5, 0.1]).view(3, 1, 1)
    y = curve.renormalise((raw - m1) / s1, (m1, s1), (m2, s2))
    for c in range(3):  # channel by channel, by hand
        torch.testing.assert_close(y[:, c] * float(s2[c]) + float(m2[c]), raw[:, c])


def test_the_curve_equals_an_independent_computation(compose_cfg, tmp_path) -> None:
    """One network at 2 patches per class: rebuilt from the benchmark's seeds and scored with scikit-learn,
    it gives the balanced accuracy the JSON holds; digits have no patients, so the AUC is null."""
    from hydra.utils import instantiate
    from sklearn.metrics import balanced_accuracy_score

    from gastrodistill.evaluation.fresh_training import standard_schedule, train_small_set
    from gastrodistill.evaluation.networks import net_spec
    from gastrodistill.utils.seeding import torch_generator

    out = tmp_path / "curve.json"
    curve = _curve()
    argv = ["--ipc", "2", "--draws", "1", "--networks", "1", "--json", str(out), "--", *SMALL]
    assert curve.main(argv) == 0
    text = out.read_text()
    row = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))["rows"][0]
    assert row["ipc"] == 2 and row["networks"] == 1 and row["val_patient_auc"] is None

    cfg = compose_cfg(SMALL)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    x, y = dm.sample_per_class(2, torch_generator(int(cfg.seed), "small-set-curve", 2, 0))
    g = torch_generator(int(cfg.seed), "small-set-curve", 2, 0, 0)
    net = train_small_set(net_spec(cfg, "same", dm).build(g), x, y, standard_schedule(cfg.eval, 0.03), g)
    xv, yv = dm.load_split("val")
    with torch.no_grad():
        pred = net.eval()(xv).argmax(-1).numpy()
    expected = balanced_accuracy_score(yv.numpy(), pred)
    assert row["val_balanced_accuracy"] == pytest.approx(expected, abs=1e-6)  # float32 metric
    assert expected > 1.5 / dm.num_classes  # trained: above chance, so a wrong seed or set would show
    assert np.isclose(sum(row["val_recall"].values()) / dm.num_classes, expected, atol=2e-3)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ipc", "2", "data=digits"], "is a Hydra override: put overrides after --"),
        (["--ipc", "0", "--", "data=digits"], "0 must be >= 1"),
        (["--networks", "x", "--", "data=digits"], "'x' is not an integer"),
    ],
)
def test_arguments_are_refused_with_what_to_do(capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as info:
        _curve().main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
