"""Same seed -> byte-identical files (whatever the worker count); another seed -> other images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gastrodistill.data.synthetic.config import SyntheticConfig
from gastrodistill.data.synthetic.generator import generate_dataset, plan_patients, render_image

SMALL = dict(
    name="small",
    train_gastritis=1,
    train_non_gastritis=1,
    test_gastritis=1,
    test_non_gastritis=0,
    images_per_patient=2,
    image_size=320,
    progress=False,
)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_different_seed_different_images(tmp_path):
    a = _files(generate_dataset(tmp_path / "a", seed=5, **SMALL))
    b = _files(generate_dataset(tmp_path / "b", seed=5, num_workers=2, **SMALL))
    c = _files(generate_dataset(tmp_path / "c", seed=6, **SMALL))
    assert len(a) == 6 * 2 + 2  # 6 images + 6 masks + manifest + info
    assert a == b
    images_a = {k: v for k, v in a.items() if k.startswith("images/")}
    images_c = {k: v for k, v in c.items() if k.startswith("images/")}
    assert len(images_c) == len(images_a)
    assert set(images_a.values()).isdisjoint(images_c.values())
    assert a["manifest.csv"] != c["manifest.csv"]  # new made-up patients too


#: Two training gastritis patients at 128 px without text (the training non-gastritis count is the test's).
TWO_TRAINING_PATIENTS = dict(
    train_gastritis=2, test_gastritis=0, test_non_gastritis=0, image_size=128, burn_in_text=False
)


def test_each_random_stream_is_keyed_by_the_seed_the_patient_and_the_image(monkeypatch):
    """Anatomy and mucosa belong to the patient, the view, texture and exposure to one image: every stream of
    ``render_image`` is derived from (seed, name, patient index[, image index])."""
    from gastrodistill.data.synthetic import generator as gen

    cfg = SyntheticConfig(**TWO_TRAINING_PATIENTS, train_non_gastritis=2)
    patient = plan_patients(cfg, 7)[3]
    calls = []
    real = gen.numpy_rng

    def spy(*parts):
        calls.append(parts)
        return real(*parts)

    monkeypatch.setattr(gen, "numpy_rng", spy)
    gen.render_image(cfg, 7, patient, 1)
    assert sorted(calls) == sorted(
        [
            (7, "synthetic/anatomy", 3),
            (7, "synthetic/mucosa", 3),
            (7, "synthetic/view", 3, 1),
            (7, "synthetic/texture", 3, 1),
            (7, "synthetic/acquisition", 3, 1),
        ]
    )


def test_a_patient_keeps_its_severity_across_images_and_views_change():
    """Severity is the patient's (the same in both images, another for another patient of the same diagnosis
    or another seed); the stomach's outline changes from one image to the next."""
    cfg = SyntheticConfig(**TWO_TRAINING_PATIENTS, train_non_gastritis=0)
    first, second = plan_patients(cfg, 7)
    a0, a1 = render_image(cfg, 7, first, 0), render_image(cfg, 7, first, 1)
    assert a0.severity == a1.severity
    assert render_image(cfg, 7, second, 0).severity != a0.severity
    assert render_image(cfg, 8, first, 0).severity != a0.severity
    assert not np.array_equal(a0.mask, a1.mask)
