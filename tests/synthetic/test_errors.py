"""Bad settings and unsafe targets fail clearly, and nothing half-written is left behind."""

from __future__ import annotations

import pytest
from synthetic_testparams import ONE_PATIENT_EACH as ONE  # noqa: E402

from gastrodistill.data.synthetic import SyntheticConfigError, SyntheticOutputError, generate_dataset
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
    ],
)
def test_bad_settings_name_the_key(tmp_path, override, needle):
    with pytest.raises(SyntheticConfigError, match=needle) as err:
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
