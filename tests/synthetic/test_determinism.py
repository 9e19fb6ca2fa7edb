"""Same seed -> byte-identical files (whatever the worker count); another seed -> other images."""

from __future__ import annotations

from pathlib import Path

from gastrodistill.data.synthetic.generator import generate_dataset

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
