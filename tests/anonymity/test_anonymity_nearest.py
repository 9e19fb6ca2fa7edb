"""Nearest real neighbour: copies are found, noise is far, patients are excluded from their own reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _anon_data import make_dm

from gastrodistill.anonymity.nearest import NearestInputError, nearest_real
from gastrodistill.data.base import TensorImageDataModule
from gastrodistill.models import LeNet


def test_planted_copy_is_found_and_noise_is_far(dm, noise):
    planted = [5, 77]
    real, _ = dm.load_split("train", planted)
    images = torch.cat([real, noise.images.detach()[:4]])
    net = LeNet(in_channels=1, num_classes=3, image_size=(16, 16))
    rep = nearest_real(dm, {"s": images}, feature_model=net, reference_size=64, seed=0)
    sets, summary = rep.sets["s"], rep.summary("s")
    for space in ("ncc", "ssim", "feature"):
        assert sets[space][:2] == pytest.approx(1.0, abs=1e-4), space
        assert list(sets[f"{space}_index"][:2]) == planted, space
    # Noise is further from every real patch than real patients are from each other.
    assert sets["ncc"][2:].max() < np.percentile(rep.ref("ncc"), 5)
    assert sets["ssim"][2:].max() < np.percentile(rep.ref("ssim"), 5)
    assert summary["ncc_frac_above_p99"] == pytest.approx(2 / 6)
    assert summary["ncc_nearest_max"] == pytest.approx(1.0, abs=1e-4)
    assert 0.3 < summary["ncc_ref_median"] < 0.999


def test_own_patient_is_excluded_from_the_reference():
    """Patients whose patches are duplicated: the reference must not find the duplicate (same patient)."""
    base = make_dm(patients=(10, 3, 5), per_patient=4)
    x, y = base._splits["train"]
    dup = {**base._splits, "train": (np.concatenate([x, x]), np.concatenate([y, y]))}
    pids = {**base._pids, "train": np.concatenate([base._pids["train"]] * 2)}
    with_patients = type(base)(dup, pids, batch_size=32, eval_batch_size=16)
    rep = nearest_real(with_patients, {"s": torch.zeros(1, 1, 16, 16)}, reference_size=40, ssim=False)
    assert rep.by_patient and rep.ref("ncc").max() < 0.999
    # Without patients only the sample itself is excluded, so every duplicate is found.
    plain = TensorImageDataModule(splits=dup, batch_size=32, eval_batch_size=16)
    rep = nearest_real(plain, {"s": torch.zeros(1, 1, 16, 16)}, reference_size=40, ssim=False)
    assert not rep.by_patient and rep.reference["ncc"].min() == pytest.approx(1.0, abs=1e-4)
    assert rep.n_exact_duplicates == 40 and len(rep.ref("ncc")) == 0  # all duplicates: no quantile left
    with pytest.raises(NearestInputError, match="every reference patch has a near-duplicate"):
        rep.threshold("ncc")
    # the audit's summary reached np.percentile of the empty reference first (an IndexError traceback)
    with pytest.raises(NearestInputError, match="every reference patch has a near-duplicate"):
        rep.summary("s")


def test_streaming_in_small_chunks_gives_the_same_answer(dm, noise):
    a = nearest_real(dm, {"s": noise.images.detach()}, reference_size=32, batch_size=7, top_k=3)
    b = nearest_real(dm, {"s": noise.images.detach()}, reference_size=32, batch_size=1000, top_k=3)
    for key in ("ncc", "ncc_index", "ssim", "ssim_index"):
        np.testing.assert_allclose(a.sets["s"][key], b.sets["s"][key], atol=1e-5)
        np.testing.assert_allclose(a.reference[key], b.reference[key], atol=1e-5)


def test_other_sizes_are_resized_and_wrong_channels_refused(dm):
    real, _ = dm.load_split("train", [3])
    small = torch.nn.functional.interpolate(real, size=(8, 8), mode="area")
    rep = nearest_real(dm, {"s": small}, reference_size=16, ssim=False)
    assert rep.sets["s"]["ncc_index"][0] == 3 and rep.sets["s"]["ncc"][0] > 0.8
    with pytest.raises(NearestInputError, match="3 channels but the real patches have 1"):
        nearest_real(dm, {"s": torch.zeros(1, 3, 16, 16)})


# ---- informative patches and duplicates (issue 13) ----------------------------------------------
def test_reference_excludes_uniform_patches_and_then_flags_noisy_copies():
    """Half of every patient's patches are near-uniform background. Over all patches the reference is
    degenerate (its q99 near 1, noisy copies not flagged); over informative patches it is not."""
    from _anon_data import make_background_dm

    from gastrodistill.anonymity.audit import control_images
    from gastrodistill.anonymity.nearest import select_informative, texture_strength
    from gastrodistill.utils.images import denormalise

    dm = make_background_dm()
    labels = dm.labels("train")
    x, _ = dm.load_split("train")
    tex = texture_strength(denormalise(x, dm.mean, dm.std)).numpy()
    assert tex[labels == 0].max() < 0.003 < tex[labels != 0].min()  # the store is what it claims

    # Texture alone (no class information) excludes exactly the uniform half ...
    sel = select_informative(dm, classes=None, min_texture=0.003)
    assert (
        sel.n_excluded_texture == int((labels == 0).sum()) == len(labels) // 2 and sel.n_excluded_class == 0
    )
    assert set(sel.indices.tolist()) == set(np.flatnonzero(labels != 0).tolist())
    # ... and so do the relevant classes alone.
    by_class = select_informative(dm, classes=["non-gastritis", "gastritis"])
    assert by_class.n_excluded_class == len(labels) // 2 and by_class.indices.tolist() == sel.indices.tolist()
    assert "excluded: 0 by class, 96 more as near-uniform" in sel.describe()

    controls, idx = control_images(dm, sel.indices, size=24, noise_std=0.01, seed=0)
    assert set(idx.tolist()) <= set(sel.indices.tolist())
    informative = nearest_real(dm, controls, real_indices=sel.indices, reference_size=96, ssim=False)
    # The old reference: every patch, no duplicate handling.
    everything = nearest_real(dm, controls, reference_size=192, ssim=False, duplicate_ncc=1.01)
    assert informative.threshold("ncc") < 0.98 < everything.threshold("ncc")
    assert informative.flagged("control_copy", "ncc").all()
    assert informative.flagged("control_noisy", "ncc").mean() >= 0.9
    # Background pairs of different patients sit at NCC ~1: the old quantile left almost no room above it.
    assert everything.threshold("ncc") > 0.99


def test_cross_patient_duplicates_are_counted_and_left_out_of_the_quantile():
    base = make_dm(patients=(10, 3, 5), per_patient=4)
    x, y = base._splits["train"]
    x = x.copy()
    x[4:8] = x[0:4]  # patient 1 holds exact copies of patient 0's patches (the same image under two ids)
    pids = base._pids
    dm = type(base)({**base._splits, "train": (x, y)}, pids, batch_size=32, eval_batch_size=16)
    rep = nearest_real(dm, {"s": torch.as_tensor(x[:1])}, reference_indices=np.arange(40), ssim=False)
    assert rep.n_exact_duplicates == rep.n_duplicates == 8  # both directions of the four pairs
    assert rep.ref("ncc").max() < 0.99 and len(rep.ref("ncc")) == 32
    assert rep.sample_sizes()["n_reference_duplicates"] == 8
    # The copy is flagged (at or above the quantile), even though duplicates exist in the data.
    assert rep.flagged("s", "ncc").all()
