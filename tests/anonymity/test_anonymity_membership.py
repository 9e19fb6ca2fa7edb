"""Membership inference: chance on identically distributed members and non-members, ~1 on a memorising net."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from gastrodistill.anonymity.membership import balanced_subsets, membership_attack, summarise
from gastrodistill.models import LeNet


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return LeNet(in_channels=1, num_classes=3, image_size=(16, 16))


def _draw(rng: np.random.Generator, n: int) -> TensorDataset:
    x = torch.as_tensor(rng.standard_normal((n, 1, 16, 16)), dtype=torch.float32)
    return TensorDataset(x, torch.as_tensor(rng.integers(0, 3, n)))


def _fit(net: torch.nn.Module, data: TensorDataset, steps: int) -> torch.nn.Module:
    x, y = data.tensors
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return net


def test_identically_distributed_members_and_nonmembers_give_chance():
    """A network that saw neither side: members and non-members are the same distribution -> AUC ~ 0.5."""
    rng = np.random.default_rng(0)
    net = _fit(_net(0), _draw(rng, 64), steps=60)  # trained on a third, unrelated sample
    result = membership_attack(net, _draw(rng, 600), _draw(rng, 600))
    for attack in ("loss", "confidence"):
        assert result.auc[attack] == pytest.approx(0.5, abs=0.06), attack  # null std of the AUC ~ 0.017


def test_memorising_network_is_detected():
    """A network overfit to a handful of random-label patches: its members are found (AUC near 1)."""
    rng = np.random.default_rng(1)
    members, nonmembers = _draw(rng, 24), _draw(rng, 24)
    net = _fit(_net(1), members, steps=150)
    result = membership_attack(net, members, nonmembers)
    assert result.auc["loss"] > 0.95
    assert result.advantage["loss"] > 0.8
    summary = summarise([result, result])
    assert summary["mia_loss_auc"] == pytest.approx(result.auc["loss"]) and summary["mia_loss_auc_std"] == 0.0


def test_balanced_subsets_are_equal_seeded_and_refuse_tiny_splits():
    rng = np.random.default_rng(2)
    a, b = balanced_subsets(_draw(rng, 50), _draw(rng, 30), max_per_side=100, seed=3)
    assert len(a) == len(b) == 30
    a2, _ = balanced_subsets(a.dataset, b.dataset, max_per_side=100, seed=3)
    assert a.indices == a2.indices
    with pytest.raises(ValueError, match="at least 2 members"):
        balanced_subsets(_draw(rng, 1), _draw(rng, 5), max_per_side=10, seed=0)


# ---- calibrated attacks (issue 13) ----------------------------------------------------------------
def _patients(rng: np.random.Generator, n_patients: int, per_patient: int):
    """Random-label patches grouped by patient: only memorisation links a patch to its label."""
    x = torch.as_tensor(rng.standard_normal((n_patients * per_patient, 1, 16, 16)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, n_patients * per_patient))
    groups = np.repeat(np.arange(n_patients), per_patient)
    return x, y, groups


def _fit_fn(steps: int):
    def fit(x, y, g):
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        return _fit(LeNet(in_channels=1, num_classes=3, image_size=(16, 16)), TensorDataset(x, y), steps)

    return fit


def test_shadow_halves_are_complementary_by_patient():
    from gastrodistill.anonymity.membership import MembershipInputError, shadow_halves

    groups = np.repeat(np.arange(10), 3)
    inside = shadow_halves(groups, 4, seed=0)
    assert inside.shape == (4, 30) and (inside.sum(0) == 2).all()  # each example "in" for half the shadows
    for k in range(4):  # a patient is wholly in or out
        assert all(len(set(inside[k, groups == p])) == 1 for p in range(10))
    with pytest.raises(MembershipInputError, match="even number"):
        shadow_halves(groups, 3, seed=0)


def test_calibrated_attack_finds_known_members_at_patch_and_patient_level():
    """A target trained on a known half of the patients; shadows on other random halves."""
    from gastrodistill.anonymity.membership import (
        AttackPool,
        attack_target,
        summarise_targets,
        train_shadows,
    )

    rng = np.random.default_rng(4)
    x, y, groups = _patients(rng, n_patients=16, per_patient=6)
    member_patients = np.arange(0, 16, 2)
    is_member = np.isin(groups, member_patients)
    pool = AttackPool(x=x, y=y, groups=groups, is_train=is_member)
    fit = _fit_fn(steps=120)
    shadows = train_shadows(pool, fit, n_shadows=4, seed=0)
    assert shadows.phi.shape == (4, 96) and np.isfinite(shadows.phi).all()
    sel = torch.as_tensor(np.flatnonzero(is_member))
    target = fit(x[sel], y[sel], torch.Generator().manual_seed(99))
    res = attack_target(target, pool, shadows, is_member, fprs=(0.01, 0.1))
    print({a: (round(m.auc, 3), round(res.patient[a].auc, 3)) for a, m in res.patch.items()})
    for attack in ("lira", "lira_offline"):
        assert res.patch[attack].auc > 0.9, attack
        assert res.patient[attack].auc > 0.9, attack
    # With two "out" shadows per example, the calibration term is noisy on random labels, but it works.
    assert res.patch["calibrated_loss"].auc > 0.7 and res.patient["calibrated_loss"].auc > 0.8
    assert (res.patch["lira"].n_members, res.patch["lira"].n_nonmembers) == (48, 48)
    assert (res.patient["lira"].n_members, res.patient["lira"].n_nonmembers) == (8, 8)
    # 48 non-members cannot measure a 1 % FPR (needs 100); 10 % can be measured and is high.
    assert np.isnan(res.patch["lira"].tpr_at[0.01]) and res.patch["lira"].tpr_at[0.1] > 0.5
    flat = summarise_targets([res])
    assert flat["mia_patient_n_members"] == 8 and flat["mia_patch_lira_auc"] == pytest.approx(
        res.patch["lira"].auc
    )
    assert np.isnan(flat["mia_patch_lira_tpr_at_1pct"]) and flat["mia_patch_lira_tpr_at_10pct"] > 0.5


def test_calibration_removes_difficulty_that_fools_the_plain_loss_attack():
    """Non-members are easy (constant-label, clean) and members hard; a network that saw neither gives
    the plain loss attack an AUC far from 0.5, the calibrated attacks stay near chance."""
    from gastrodistill.anonymity.membership import AttackPool, attack_target, train_shadows

    rng = np.random.default_rng(5)
    x, y, groups = _patients(rng, n_patients=16, per_patient=6)
    easy = groups >= 8
    x[easy] = 0.05 * x[easy] + 2.0  # near-constant images ...
    y[torch.as_tensor(easy)] = 0  # ... all labelled 0: easy for any network
    is_member = ~easy  # the "members" are the hard half, but the target sees neither half
    pool = AttackPool(x=x, y=y, groups=groups, is_train=is_member)
    fit = _fit_fn(steps=60)
    shadows = train_shadows(pool, fit, n_shadows=4, seed=1)
    xo, yo, _ = _patients(np.random.default_rng(6), 16, 6)
    xo[48:] = 0.05 * xo[48:] + 2.0
    yo[48:] = 0
    outsider = fit(xo, yo, torch.Generator().manual_seed(7))  # trained on a third sample of both kinds
    res = attack_target(outsider, pool, shadows, is_member)
    assert abs(res.patch["loss"].auc - 0.5) > 0.3
    for attack in ("calibrated_loss", "lira", "lira_offline"):
        assert abs(res.patch[attack].auc - 0.5) < abs(res.patch["loss"].auc - 0.5), attack


def test_calibrated_scores_are_carlini_and_watson_computed_example_by_example():
    """LiRA online (one pooled variance) and offline (Carlini et al. 2022) and the calibrated loss (Watson
    et al. 2022) of a hand-made shadow table, against scipy's normal computed one example at a time."""
    from scipy.stats import norm

    from gastrodistill.anonymity.membership import ShadowScores, calibrated_scores

    rng = np.random.default_rng(11)
    n_shadows, n = 6, 7
    inside = np.zeros((n_shadows, n), dtype=bool)
    for j in range(n):
        inside[rng.permutation(n_shadows)[: n_shadows // 2], j] = True
    shadow_loss = rng.gamma(2.0, 0.5, (n_shadows, n))
    shadow_phi = rng.normal(0.0, 2.0, (n_shadows, n)) + 1.5 * inside
    loss, phi = rng.gamma(2.0, 0.5, n), rng.normal(0.5, 2.0, n)
    got = calibrated_scores(loss, phi, ShadowScores(loss=shadow_loss, phi=shadow_phi, inside=inside))

    mu_in = [shadow_phi[inside[:, j], j].mean() for j in range(n)]
    mu_out = [shadow_phi[~inside[:, j], j].mean() for j in range(n)]
    cells = [(i, j) for i in range(n_shadows) for j in range(n)]
    s_in = np.sqrt(np.mean([(shadow_phi[i, j] - mu_in[j]) ** 2 for i, j in cells if inside[i, j]]))
    s_out = np.sqrt(np.mean([(shadow_phi[i, j] - mu_out[j]) ** 2 for i, j in cells if not inside[i, j]]))
    s = np.sqrt((s_in**2 + s_out**2) / 2)
    lira = [norm.logpdf(phi[j], mu_in[j], s) - norm.logpdf(phi[j], mu_out[j], s) for j in range(n)]
    offline = [norm.logcdf((phi[j] - mu_out[j]) / s_out) for j in range(n)]
    calibrated = [shadow_loss[~inside[:, j], j].mean() - loss[j] for j in range(n)]
    np.testing.assert_allclose(got["lira"], lira, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["lira_offline"], offline, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got["calibrated_loss"], calibrated, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(got["loss"], -loss)


def test_tpr_at_fpr_needs_enough_nonmembers():
    from gastrodistill.anonymity.membership import tpr_at_fpr

    fpr, tpr = np.array([0.0, 0.0005, 0.01, 1.0]), np.array([0.0, 0.2, 0.5, 1.0])
    assert tpr_at_fpr(fpr, tpr, 0.001, 1000) == 0.2 and tpr_at_fpr(fpr, tpr, 0.01, 100) == 0.5
    assert np.isnan(tpr_at_fpr(fpr, tpr, 0.001, 999))


def test_pool_is_balanced_class_by_class(dm):
    from gastrodistill.anonymity.membership import build_pool

    pool = build_pool(dm, max_per_side=50, seed=0)
    assert pool.is_train.sum() == (~pool.is_train).sum() == 50
    for c in range(3):
        assert (pool.y[pool.is_train] == c).sum() == (pool.y[~pool.is_train] == c).sum()
    tr_groups, te_groups = set(pool.groups[pool.is_train]), set(pool.groups[~pool.is_train])
    assert not tr_groups & te_groups  # patient codes of the two splits never collide


def test_shadows_in_worker_processes_equal_one_process(dm, compose_cfg):
    """The audit's shadow networks (the real-data recipe, ``RealFit``) trained in two spawned workers give
    the single process's losses and scores, example by example."""
    from gastrodistill.anonymity.audit import RealFit
    from gastrodistill.anonymity.membership import build_pool, train_shadows

    cfg = compose_cfg(["model.width=8", "model.depth=2", "eval.baselines.real.batch_size=16"])
    pool = build_pool(dm, max_per_side=40, seed=0)
    fit = RealFit(cfg, dm, epochs=2)
    one = train_shadows(pool, fit, n_shadows=2, seed=0)
    two = train_shadows(pool, fit, n_shadows=2, seed=0, processes=2)
    np.testing.assert_array_equal(one.inside, two.inside)
    np.testing.assert_allclose(one.loss, two.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.phi, two.phi, rtol=1e-5, atol=1e-6)
    assert not np.allclose(one.loss[0], one.loss[1])  # two different shadows


def test_target_networks_train_beside_the_shadows_as_in_one_process(dm, compose_cfg):
    """``train_shadows_and``: the audit's target networks (here two overfit-style fits, each by its own
    seeds) train and are scored in the shadows' workers; their ``(loss, phi)`` come back in order, equal to
    one process's and to ``example_scores`` of the same network trained here; the shadows' scores are
    those of ``train_shadows``; an attack given those scores equals the attack on the network itself."""
    from functools import partial

    from gastrodistill.anonymity.audit import RealFit, _seeded_fit
    from gastrodistill.anonymity.membership import (
        attack_target,
        build_pool,
        example_scores,
        train_shadows,
        train_shadows_and,
    )

    cfg = compose_cfg(["model.width=8", "model.depth=2", "eval.baselines.real.batch_size=16"])
    pool = build_pool(dm, max_per_side=40, seed=0)
    fit = RealFit(cfg, dm, epochs=2)
    makers = [partial(_seeded_fit, fit, pool.x[:24], pool.y[:24], (0, "target", k)) for k in range(2)]
    one, scores_one = train_shadows_and(pool, fit, 2, 0, 1, makers)
    two, scores_two = train_shadows_and(pool, fit, 2, 0, 2, makers)
    alone = train_shadows(pool, fit, n_shadows=2, seed=0)
    np.testing.assert_allclose(two.loss, alone.loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.loss, two.loss, rtol=1e-5, atol=1e-6)
    assert len(scores_one) == len(scores_two) == 2
    for k, make in enumerate(makers):
        here = example_scores(make(), pool.x, pool.y)
        for got in (scores_one[k], scores_two[k]):
            np.testing.assert_allclose(got[0], here[0], rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(got[1], here[1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(scores_two[0][0], scores_two[1][0])  # each maker its own seeds, in order
    net = makers[0]()
    direct = attack_target(net, pool, one, pool.is_train, n_permutations=20, seed=0)
    given = attack_target(None, pool, one, pool.is_train, n_permutations=20, seed=0, example=scores_one[0])
    assert direct.patch.keys() == given.patch.keys()
    for name in direct.patch:
        assert direct.patch[name].auc == pytest.approx(given.patch[name].auc, abs=1e-9)


def test_shadow_networks_train_in_the_recipes_precision(dm, compose_cfg, monkeypatch):
    """``RealFit`` trains in ``eval.baselines.real.precision``: bfloat16 logits under ``bf16-mixed`` (as
    the Lightning-trained network the shadows stand for), float32 under ``32-true``; float32 weights."""
    from gastrodistill.anonymity.audit import RealFit

    seen: list[torch.dtype] = []
    cross_entropy = F.cross_entropy

    def recording(logits, *args, **kwargs):
        seen.append(logits.dtype)
        return cross_entropy(logits, *args, **kwargs)

    monkeypatch.setattr(F, "cross_entropy", recording)
    x, y = dm.load_split("train")
    for precision, dtype in (("bf16-mixed", torch.bfloat16), ("32-true", torch.float32)):
        cfg = compose_cfg(["model.width=8", "model.depth=2", f"eval.baselines.real.precision={precision}"])
        seen.clear()
        net = RealFit(cfg, dm, epochs=1, batch_size=16)(x[:32], y[:32], torch.Generator().manual_seed(0))
        assert seen and set(seen) == {dtype}
        assert all(p.dtype == torch.float32 for p in net.parameters())


def test_patch_aucs_by_rank_sums_equal_sklearn_per_labelling():
    from sklearn.metrics import roc_auc_score

    from gastrodistill.anonymity.membership import patch_aucs, permuted_patient_labels

    rng = np.random.default_rng(0)
    groups = rng.integers(0, 12, 200) * 7 + 3  # patient codes, not 0..P-1
    scores = np.round(rng.normal(size=200), 1)  # ties, as loss scores have
    scores[:5] = np.nan  # a failed score ranks lowest, as in attack_metrics
    member_of = np.arange(12) % 3 == 0
    labels = permuted_patient_labels(member_of, 25, seed=4)
    assert labels.shape == (25, 12) and (labels.sum(1) == 4).all()
    assert len({tuple(r) for r in labels}) > 5  # the draws differ
    assert np.array_equal(labels, permuted_patient_labels(member_of, 25, seed=4))  # and are seeded
    got = patch_aucs(scores, groups, labels)
    _, inv = np.unique(groups, return_inverse=True)
    clean = np.where(np.isnan(scores), np.finfo(np.float64).min, scores)
    want = [roc_auc_score(row[inv], clean) for row in labels]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_patient_permutation_null_is_wider_when_scores_cluster_by_patient():
    """Scores that carry a patient effect and nothing of membership: the patient-level null is several
    times the independent-patch Mann-Whitney one; with one patch per patient the two agree."""
    from gastrodistill.anonymity.membership import MembershipInputError, patient_permutation_aucs

    rng = np.random.default_rng(1)
    patients, per = 80, 20
    groups = np.repeat(np.arange(patients), per)
    member = np.repeat(np.arange(patients) < 40, per)
    scores = np.repeat(rng.normal(size=patients), per) + 0.3 * rng.normal(size=patients * per)
    null = patient_permutation_aucs(scores, groups, member, n_permutations=2000, seed=0)
    n_in = n_out = patients * per // 2
    independent = np.sqrt((n_in + n_out + 1) / (12.0 * n_in * n_out))
    assert abs(null.mean() - 0.5) < 0.01
    assert null.std() > 3 * independent
    one = patient_permutation_aucs(rng.normal(size=400), np.arange(400), np.arange(400) < 200, 2000, 0)
    sd1 = np.sqrt(401 / (12.0 * 200 * 200))
    assert abs(one.std() - sd1) < 0.15 * sd1
    with pytest.raises(MembershipInputError, match="disagree on membership"):
        patient_permutation_aucs(scores, groups, np.arange(patients * per) % 2 == 0)


def test_patient_level_leaves_unmeasured_scores_out_of_the_mean():
    """A NaN score (no shadow left the example out) counted as 0.0 in its patient's mean: above every
    log-CDF score of ``lira_offline``, so a patient with one unmeasured patch looked the most member-like."""
    from gastrodistill.anonymity.membership import patient_level

    scores = np.array([-3.0, np.nan, -1.0, -2.0, np.nan, np.nan, -np.inf, -5.0])
    groups = np.array(["b", "b", "a", "a", "c", "c", "d", "d"])
    is_member = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=bool)
    means, member = patient_level(scores, groups, is_member)
    # patients in sorted order a, b, c, d; written out by hand
    np.testing.assert_array_equal(means, [-1.5, -3.0, -np.inf, (-1e6 - 5.0) / 2])
    np.testing.assert_array_equal(member, [False, True, True, False])
