"""Fixtures of the sharing tests; the patient data builders are shared with tests/anonymity."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "anonymity"))

from _anon_data import make_dm, noise_set  # noqa: E402


@pytest.fixture(scope="module")
def dm():
    return make_dm(patients=(12, 4, 12), per_patient=6)


@pytest.fixture
def soft_set(dm):
    ds = noise_set(dm, steps=2, ipc=2, seed=3)
    import torch

    with torch.no_grad():
        ds.label_logits.add_(torch.randn(ds.label_logits.shape, generator=torch.Generator().manual_seed(4)))
        ds.raw_lrs.copy_(torch.linspace(-3, -2, ds.raw_lrs.numel()))
    return ds


@pytest.fixture
def card_fields(dm):
    return {
        "name": "soft",
        "architecture": {
            "_target_": "gastrodistill.models.LeNet",
            "_partial_": True,
            "act": "relu",
            "init": "xavier",
        },
        "training_recipe": {"distill": {"steps": 2, "epochs": 1}},
        "source_hash": dm.source_hash(),
        "evaluation": {"patch_accuracy_mean": 0.5},
        "positive_class": "gastritis",
    }


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks run fastest on one thread; two threads on a shared 2-core machine thrash."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def artifact_zip(tmp_path, soft_set, card_fields):
    """``soft_set`` saved as a shared artifact's zip (``<tmp>/art/soft.zip``), as a receiving site gets it."""
    from gastrodistill.sharing.artifact import save_artifact

    return save_artifact(tmp_path / "art" / "soft", soft_set, card_fields, archive=True).with_suffix(".zip")
