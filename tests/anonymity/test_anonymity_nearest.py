"""Nearest real neighbour: copies are found, noise is far, patients are excluded from their own reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _anon_data import make_dm, ncc_matrix

from gastrodistill.anonymity.nearest import NearestInputError, match_size, nearest_real, ssim_pairs
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


# ---- gaps a mutation review found: each test fails on one plausible slip in nearest ------------------
def test_larger_images_are_downsampled_as_pil_resizes_them():
    """A distilled set at a larger size than the store is compared after an antialiased bilinear resize,
    the one PIL's ``Image.resize(BILINEAR)`` does (without antialiasing, fine detail aliases)."""
    from PIL import Image

    x = np.random.default_rng(0).random((64, 48)).astype(np.float32)
    got = match_size(torch.from_numpy(x)[None, None], (1, 16, 12))[0, 0].numpy()
    expected = np.asarray(Image.fromarray(x, mode="F").resize((12, 16), Image.BILINEAR))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _ssim(a: np.ndarray, b: np.ndarray, k: int, sigma: float) -> float:
    """SSIM (Wang et al. 2004; C1 = 0.01^2, C2 = 0.03^2, data range 1) with a k-tap Gaussian window of
    ``sigma``, mirrored borders, averaged over the whole map: scipy, for reference."""
    from scipy.ndimage import correlate1d

    t = np.arange(k) - (k - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    g /= g.sum()

    def blur(im):
        return correlate1d(correlate1d(im, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim.mean())


@pytest.mark.parametrize("size,k", [(16, 11), (8, 7), (6, 5)])
def test_ssim_is_the_gaussian_window_ssim_on_values_clamped_to_the_unit_range(size, k):
    """The standard 11-tap, sigma 1.5 window, shrunk for tiny images with its sigma in proportion; a
    distilled image's values outside [0, 1] count as 0 or 1, as a real patch's can be no darker or
    brighter."""
    rng = np.random.default_rng(size)
    a = rng.uniform(-0.3, 1.3, (size, size))  # a distilled image: outside the unit range here and there
    b = np.clip(a + 0.2 * rng.standard_normal((size, size)), 0, 1)
    got = ssim_pairs(torch.tensor(a)[None, None], torch.tensor(b)[None, None]).item()
    assert got == pytest.approx(_ssim(np.clip(a, 0, 1), b, k, 1.5 * k / 11), abs=1e-5)


def test_the_feature_model_is_read_in_eval_mode_and_given_back_unchanged_in_its_mode(dm, noise):
    """The search reads a network's features in eval mode (a batch-norm network in training mode would
    mix each image's features with its batch's and update its running statistics) and restores its mode."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(256, 8),
        torch.nn.BatchNorm1d(8),
        torch.nn.ReLU(),
        torch.nn.Linear(8, 3),
    )
    for training in (True, False):
        net.train(training)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        nearest_real(dm, {"s": noise.images.detach()[:2]}, feature_model=net, reference_size=8, ssim=False)
        assert net.training is training
        for key, value in net.state_dict().items():
            assert torch.equal(value, before[key]), key


def test_the_reports_quantiles_flags_and_duplicates_follow_their_definitions():
    """A report built by hand: duplicates are reference values at or above ``duplicate_ncc``, exact ones
    at 1 (up to float rounding), and both are left out of the reference with the unmatched (-inf) ones;
    an image is flagged at or above the reference's ``flag_quantile`` (numpy's linear quantile), and the
    summary's shares count images at or above each percentile."""
    from gastrodistill.anonymity.nearest import NearestReport

    finite = np.linspace(0.1, 0.9, 41) ** 2  # the reference that counts (its mean is not its median)
    reference = np.concatenate([finite, [-np.inf, 0.99, 0.9995, 1.0]])
    q93, p95, p99 = (float(np.quantile(finite, q)) for q in (0.93, 0.95, 0.99))
    sims = np.array([q93, p95, p99, 0.5, q93 - 1e-9])  # three exactly at a quantile
    rep = NearestReport(
        sets={"s": {"ncc": sims}},
        reference={"ncc": reference},
        reference_indices=np.arange(len(reference)),
        spaces=("ncc",),
        n_real=100,
        by_patient=True,
        flag_quantile=0.93,
        duplicate_ncc=0.99,
    )
    assert (rep.n_duplicates, rep.n_exact_duplicates) == (3, 1)
    np.testing.assert_array_equal(rep.ref("ncc"), finite)
    assert rep.threshold("ncc") == pytest.approx(q93, abs=1e-12)
    np.testing.assert_array_equal(rep.flagged("s", "ncc"), [True, True, True, False, False])
    summary = rep.summary("s")
    assert summary["ncc_ref_q"] == pytest.approx(q93, abs=1e-12)
    assert summary["ncc_ref_p95"] == pytest.approx(p95, abs=1e-12)
    assert summary["ncc_ref_p99"] == pytest.approx(p99, abs=1e-12)
    assert summary["ncc_ref_median"] == pytest.approx(0.25, abs=1e-12)  # 0.5 ** 2, the middle value
    assert summary["ncc_frac_flagged"] == pytest.approx(3 / 5)
    assert summary["ncc_frac_above_p95"] == pytest.approx(2 / 5)
    assert summary["ncc_frac_above_p99"] == pytest.approx(1 / 5)
    assert summary["ncc_nearest_mean"] == pytest.approx(sims.mean())
    assert summary["ncc_nearest_max"] == pytest.approx(sims.max())
    assert rep.sample_sizes()["n_reference_used"] == len(finite)
    assert rep.sample_sizes()["n_reference_duplicates"] == 3


def test_texture_strength_is_the_std_of_the_residual_of_a_3x3_box_blur_with_reflected_borders():
    """Worked out with scipy (``mirror`` is the border PyTorch calls ``reflect``; std with n - 1)."""
    from scipy.ndimage import uniform_filter

    from gastrodistill.anonymity.nearest import texture_strength

    x = np.random.default_rng(4).random((3, 1, 12, 10))
    expected = [np.std(im[0] - uniform_filter(im[0], size=3, mode="mirror"), ddof=1) for im in x]
    np.testing.assert_allclose(texture_strength(torch.tensor(x)).numpy(), expected, rtol=1e-5)


def test_select_informative_keeps_texture_at_or_above_the_minimum_and_counts_what_it_left_out():
    """Patches of the classes asked with texture >= ``min_texture`` (a patch exactly at it is kept); the
    counts and medians describe exactly what was kept and left out (numpy on the same textures)."""
    from gastrodistill.anonymity.nearest import select_informative, texture_strength
    from gastrodistill.utils.images import denormalise

    dm = make_dm(patients=(6, 1, 1), per_patient=4)
    x, labels = dm.load_split("train")
    labels = np.asarray(labels)
    tex = texture_strength(denormalise(x, dm.mean, dm.std)).numpy()
    classes = ["non-gastritis", "gastritis"]
    in_class = np.isin(labels, [1, 2])
    threshold = float(np.sort(tex[in_class])[len(tex[in_class]) // 2])  # one patch's own texture
    sel = select_informative(dm, classes=classes, min_texture=threshold)
    keep = in_class & (tex >= threshold)
    assert (tex[in_class] == threshold).sum() == 1 and keep[tex == threshold].all()
    np.testing.assert_array_equal(sel.indices, np.flatnonzero(keep))
    assert sel.n_excluded_class == int((~in_class).sum()) > 0
    assert sel.n_excluded_texture == int((in_class & (tex < threshold)).sum()) > 0
    assert sel.texture_median_kept == pytest.approx(float(np.median(tex[keep])))
    assert sel.texture_median_excluded == pytest.approx(float(np.median(tex[~keep])))
    with pytest.raises(NearestInputError, match=r"\['Gastritis'\] are not classes of the data"):
        select_informative(dm, classes=["gastritis", "Gastritis"])


def test_nearest_real_refuses_what_it_cannot_search(dm):
    """Each refusal names its cause: a flag quantile outside (0, 1), fewer than two training samples,
    indices outside the training split, patient ids that do not match the training samples."""
    q = {"s": torch.zeros(1, 1, 16, 16)}
    for quantile in (0.0, 1.0):
        with pytest.raises(NearestInputError, match=r"flag_quantile must be in \(0, 1\)"):
            nearest_real(dm, q, flag_quantile=quantile, ssim=False)
    n = len(dm.labels("train"))
    for bad in ([0, n], [-1, 3]):
        with pytest.raises(NearestInputError, match=rf"real_indices must be non-empty indices into the {n}"):
            nearest_real(dm, q, real_indices=np.array(bad), ssim=False)
    x, y = dm._splits["train"]
    one = type(dm)({**dm._splits, "train": (x[:1], y[:1])}, {**dm._pids, "train": dm._pids["train"][:1]})
    with pytest.raises(NearestInputError, match="the training split has 1 samples"):
        nearest_real(one, q, ssim=False)
    short = type(dm)(dm._splits, {**dm._pids, "train": dm._pids["train"][:-1]})
    with pytest.raises(NearestInputError, match=rf"patient_ids\('train'\) has {n - 1} entries for {n}"):
        nearest_real(short, q, ssim=False)


def test_the_reference_is_drawn_once_each_from_the_searched_patches(dm):
    """``max_real`` subsamples distinct patches, and the reference is drawn from the searched ones only
    (never a patch the search left out, never one patch twice)."""
    q = {"s": torch.zeros(1, 1, 16, 16)}
    n = len(dm.labels("train"))
    rep = nearest_real(dm, q, max_real=n - 1, reference_size=n - 1, ssim=False)
    assert rep.n_real == n - 1 and len(np.unique(rep.reference_indices)) == n - 1
    searched = np.arange(0, n, 3)
    rep = nearest_real(dm, q, real_indices=searched, reference_size=10, ssim=False)
    assert len(rep.reference_indices) == 10 and set(rep.reference_indices) <= set(searched)


def test_a_reference_patch_without_another_patients_patch_to_compare_is_left_out_not_refused(dm):
    """Searching only patient 0's patches: its own reference patch has no one to compare with (-inf, left
    out of the quantiles), another patient's has; only when no reference patch has one is it refused."""
    pids = dm.patient_ids("train")
    own = np.flatnonzero(pids == pids[0])
    other = int(np.flatnonzero(pids != pids[0])[0])
    q = {"s": torch.zeros(1, 1, 16, 16)}
    rep = nearest_real(dm, q, real_indices=own, reference_indices=np.array([own[0], other]), ssim=False)
    assert rep.reference["ncc"][0] == -np.inf and np.isfinite(rep.reference["ncc"][1])
    assert len(rep.ref("ncc")) == 1
    with pytest.raises(NearestInputError, match="no reference patch has a patch of another patient"):
        nearest_real(dm, q, real_indices=own, reference_indices=own[:2], ssim=False)
    # one candidate of another patient among top_k = 5: the SSIM step picks it, not an excluded own patch
    searched = np.append(own, other)
    rep = nearest_real(dm, q, real_indices=searched, reference_indices=own[:1], top_k=5)
    assert rep.reference["ssim_index"][0] == rep.reference["ncc_index"][0] == other


def test_every_spaces_nearest_reference_patch_is_of_another_patient():
    """Each patient's patches twice (a duplicated series): in every space the reference's nearest patch
    is another patient's, never the patch's own duplicate."""
    base = make_dm(patients=(6, 1, 1), per_patient=3)
    x, y = base._splits["train"]
    pids = np.concatenate([base._pids["train"]] * 2)
    dup = type(base)(
        {**base._splits, "train": (np.concatenate([x, x]), np.concatenate([y, y]))},
        {**base._pids, "train": pids},
    )
    net = LeNet(in_channels=1, num_classes=3, image_size=(16, 16))
    rep = nearest_real(dup, {"s": torch.zeros(1, 1, 16, 16)}, feature_model=net, reference_size=36)
    for space in ("ncc", "ssim", "feature"):
        found = rep.reference[f"{space}_index"]
        assert (pids[found] != pids[rep.reference_indices]).all(), space


def test_copies_are_found_in_multichannel_data_whose_channels_differ():
    """Three channels of different brightness (per-channel mean and std): a copied patch is found with
    NCC 1, the NCC of the images as stored (numpy)."""
    from gastrodistill.data.base import TensorImageDataModule

    rng = np.random.default_rng(5)
    scale = np.array([0.2, 0.5, 0.1])[None, :, None, None]
    offset = np.array([0.0, 0.5, 0.8])[None, :, None, None]
    x = (offset + scale * rng.random((30, 3, 8, 8))).astype(np.float32)
    y = np.arange(30) % 2
    splits = {"train": (x, y), "val": (x[:4], y[:4]), "test": (x[:4], y[:4])}
    dm3 = TensorImageDataModule(splits=splits, batch_size=8, eval_batch_size=8)
    real, _ = dm3.load_split("train", [7, 11])
    rep = nearest_real(dm3, {"s": real}, reference_size=8, ssim=False)
    assert list(rep.sets["s"]["ncc_index"]) == [7, 11]
    np.testing.assert_allclose(rep.sets["s"]["ncc"], 1.0, atol=1e-5)


def test_the_ssim_nearest_patch_is_the_best_by_ssim_among_the_top_k_by_ncc(dm, noise):
    """SSIM is computed for each query's ``top_k`` NCC candidates, and the best of them is its SSIM
    nearest: worked out with numpy NCC and the scipy SSIM above."""
    queries = noise.images.detach()[:4]
    k = 5
    rep = nearest_real(dm, {"s": queries}, reference_size=8, top_k=k)
    x, _ = dm.load_split("train")
    mean, std = np.asarray(dm.mean)[None, :, None, None], np.asarray(dm.std)[None, :, None, None]
    q_unit, x_unit = queries.numpy() * std + mean, x.numpy() * std + mean
    ncc = ncc_matrix(q_unit, x_unit)
    differs = 0
    for i in range(len(queries)):
        top = np.argsort(-ncc[i])[:k]
        scores = [_ssim(np.clip(q_unit[i, 0], 0, 1), np.clip(x_unit[j, 0], 0, 1), 11, 1.5) for j in top]
        assert rep.sets["s"]["ssim"][i] == pytest.approx(max(scores), abs=1e-4)
        assert rep.sets["s"]["ssim_index"][i] == top[int(np.argmax(scores))]
        differs += int(top[int(np.argmax(scores))] != top[0])
    assert differs > 0  # some query's best SSIM candidate is not its best NCC one
