"""Bad settings and unsafe targets fail clearly, and nothing half-written is left behind."""

from __future__ import annotations

import json
import re

import pytest
from synthetic_testparams import ONE_PATIENT_EACH as ONE  # noqa: E402

from gastrodistill.data.synthetic import (
    SyntheticConfig,
    SyntheticConfigError,
    SyntheticOutputError,
    generate_dataset,
)
from gastrodistill.data.synthetic import generator as gen_mod


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ({"imagesize": 512}, "imagesize"),
        ({"image_size": 64}, "image_size"),
        ({"format": "jpeg"}, "format"),
        ({"gastritis_severity": [0.9, 0.2]}, "gastritis_severity"),
        ({"train_gastritis": -1}, "train_gastritis"),
        ({"train_gastritis": 0, "train_non_gastritis": 0}, "training split"),
        # "no" reaches the generator as a string, which is true: the patient text used to be stamped
        ({"burn_in_text": "no"}, "synthetic.burn_in_text must be true or false, got 'no'"),
        (
            {"gastritis_severity": [0.5, 1.2]},
            "synthetic.gastritis_severity = [0.5, 1.2] must satisfy low <= high within [0.0, 1.0]",
        ),
        ({"fine_cell_px": [2, 8]}, "fine_cell_px = [2.0, 8.0] must satisfy low <= high within [3.0, 256.0]"),
        ({"dose": [5, 100]}, "synthetic.dose = [5.0, 100.0] must satisfy low <= high within [10.0, "),
        ({"dose": "high"}, "synthetic.dose must be a pair [low, high] of numbers, got 'high'"),
        ({"train_gastritis": True}, "synthetic.train_gastritis must be a non-negative integer, got True"),
        ({"images_per_patient": 0}, "synthetic.images_per_patient must be an integer >= 1, got 0"),
        ({"image_size": 127}, "synthetic.image_size must be an integer in [128, 8192] pixels, got 127"),
        ({"image_size": 8193}, "synthetic.image_size must be an integer in [128, 8192] pixels, got 8193"),
        ({"name": "a/b"}, "synthetic.name must be a plain non-empty name, got 'a/b'"),
        ({"name": ""}, "synthetic.name must be a plain non-empty name, got ''"),
        ({"patchiness": 1.5}, "synthetic.patchiness must lie in [0, 1], got 1.5"),
        # bool is an int in Python: True was read as 1 and gave a collection of another content hash
        ({"images_per_patient": True}, "synthetic.images_per_patient must be an integer >= 1, got True"),
        ({"image_size": True}, "synthetic.image_size must be an integer in [128, 8192] pixels, got True"),
        ({"patchiness": True}, "synthetic.patchiness must lie in [0, 1], got True"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, override, needle):
    with pytest.raises(SyntheticConfigError, match=re.escape(needle)) as err:
        generate_dataset(tmp_path / "d", **{**ONE, **override})
    assert isinstance(err.value, ValueError)
    assert not (tmp_path / "d").exists()


def test_refuses_to_replace_a_foreign_folder(tmp_path):
    root = tmp_path / "real_data"
    root.mkdir()
    (root / "manifest.csv").write_text("image,patient_id,diagnosis\n")
    with pytest.raises(SyntheticOutputError, match="refusing to overwrite"):
        generate_dataset(root, **ONE)
    assert (root / "manifest.csv").read_text() == "image,patient_id,diagnosis\n"


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = gen_mod.write_mask_png

    def failing(path, mask):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated kill")
        real(path, mask)

    monkeypatch.setattr(gen_mod, "write_mask_png", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(tmp_path / "d", **ONE)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a staging folder remains


def test_replacing_a_collection_of_another_seed_warns_and_says_how_to_keep_it(tmp_path, caplog):
    """``seed`` also seeds the data (``synthetic.seed: ${seed}``): a second run with another seed rewrites
    the collection that earlier runs' sets were distilled from, so the generator says so and how to
    keep it; an identical collection is reused silently."""
    root = tmp_path / "d"
    generate_dataset(root, seed=0, **ONE)
    with caplog.at_level("WARNING", logger=gen_mod.__name__):
        generate_dataset(root, seed=0, **ONE)
        assert caplog.records == []
        generate_dataset(root, seed=1, **ONE)
    (record,) = caplog.records
    text = record.getMessage()
    assert "replacing the synthetic collection in synthetic.root (seed 0) by seed 1" in text
    assert str(tmp_path) not in text  # a job log names no local folder (its name may name the site)
    assert "synthetic.seed=0" in text
    caplog.clear()
    with caplog.at_level("WARNING", logger=gen_mod.__name__):
        generate_dataset(root, seed=1, **{**ONE, "images_per_patient": 2})
    (record,) = caplog.records
    assert "(written with other settings) by seed 1" in record.getMessage()
    assert "synthetic.seed=" not in record.getMessage()


def test_limits_of_the_ranges_are_accepted():
    """The documented limits themselves are valid: 128 and 8192 px, a pair with low == high (one fixed
    value), one training diagnosis without the other (the training split needs one patient, of either)."""
    assert SyntheticConfig(image_size=128).image_size == 128
    assert SyntheticConfig(image_size=8192).image_size == 8192
    assert SyntheticConfig(gastritis_severity=[1.0, 1.0], dose=[10, 10]).dose == (10.0, 10.0)
    only = SyntheticConfig(train_gastritis=0, train_non_gastritis=1, test_gastritis=0, test_non_gastritis=0)
    assert sum(only.patients.values()) == 1


def test_mismatch_names_each_setting_the_seed_and_the_generator_version_that_differ(tmp_path):
    """A collection written with other settings, another seed and by an older generator: the refusal names
    all three."""
    settings = {k: v for k, v in ONE.items() if k != "progress"}
    root = generate_dataset(tmp_path / "d", seed=0, **ONE)
    info = json.loads((root / "synthetic_info.json").read_text())
    info["generator_version"] = "3"
    (root / "synthetic_info.json").write_text(json.dumps(info))
    text = gen_mod.collection_mismatch(root, 1, **{**settings, "images_per_patient": 2})
    assert text.startswith(f"{root} holds a synthetic collection written with other settings than this run's")
    assert (
        "(synthetic.images_per_patient is 1 there but 2 here; generator version 3 there but "
        f"{gen_mod.GENERATOR_VERSION} here; synthetic.seed is 0 there but 1 here)" in text
    )
    assert gen_mod.collection_mismatch(tmp_path / "elsewhere", 1, **settings) is None  # nothing there


def test_an_incomplete_collection_is_rewritten(tmp_path, caplog):
    """A collection missing an image, or a manifest row, is not current: the next request writes it anew,
    and says so without the warning that the sets distilled from it no longer match (the same settings and
    seed write the same bytes)."""
    from gastrodistill.data.synthetic.writer import is_current

    root = generate_dataset(tmp_path / "d", seed=0, **ONE)
    digest = SyntheticConfig.from_params(**{k: v for k, v in ONE.items() if k != "progress"}).content_hash(0)
    assert is_current(root, digest) and not is_current(root, "other")
    manifest = (root / "manifest.csv").read_text()
    first_image = manifest.splitlines()[1].split(",")[0]
    (root / first_image).unlink()
    assert not is_current(root, digest)
    with caplog.at_level("WARNING", logger=gen_mod.__name__):
        generate_dataset(root, seed=0, **ONE)
    (record,) = caplog.records
    assert "synthetic collection in synthetic.root (seed 0) is incomplete" in record.getMessage()
    assert "no longer match" not in record.getMessage()
    assert (root / first_image).is_file() and is_current(root, digest)
    (root / "manifest.csv").write_text("".join(manifest.splitlines(keepends=True)[:-1]))  # a row short
    assert not is_current(root, digest)
    generate_dataset(root, seed=0, **ONE)
    assert (root / "manifest.csv").read_text() == manifest


def test_refuses_a_root_that_is_a_file(tmp_path):
    root = tmp_path / "data"
    root.write_text("not a folder")
    with pytest.raises(
        SyntheticOutputError, match=f"data root {re.escape(str(root))} exists and is not a folder"
    ):
        generate_dataset(root, **ONE)
    assert root.read_text() == "not a folder"
