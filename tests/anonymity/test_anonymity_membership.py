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


@pytest.mark.parametrize("processes", [1, 2])
def test_membership_progress_bar_counts_every_network(dm, compose_cfg, capsys, processes):
    """``train_shadows_and(progress=True)``: one bar on standard error that names the worker processes and
    ends at the shadows and targets together (here 2 + 1); ``progress=False`` writes no bar at all."""
    from functools import partial

    from gastrodistill.anonymity.audit import RealFit, _seeded_fit
    from gastrodistill.anonymity.membership import build_pool, train_shadows_and

    cfg = compose_cfg(["model.width=8", "model.depth=2", "eval.baselines.real.batch_size=16"])
    pool = build_pool(dm, max_per_side=40, seed=0)
    fit = RealFit(cfg, dm, epochs=1)
    makers = [partial(_seeded_fit, fit, pool.x[:24], pool.y[:24], (0, "target", 0))]
    train_shadows_and(pool, fit, 2, 0, processes, makers, progress=True)
    err = capsys.readouterr().err
    named = "(1 process)" if processes == 1 else "(2 processes)"
    assert f"audit: membership networks {named}" in err
    assert "3/3" in err and "4/3" not in err
    train_shadows_and(pool, fit, 2, 0, processes, makers, progress=False)
    assert "membership networks" not in capsys.readouterr().err


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


# ---- mutation review: scores, pool, shadows and summaries against hand computations ------------------
class _DropoutNet(torch.nn.Module):
    """A linear classifier behind dropout: its scores differ between train and eval mode."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.drop, self.fc = torch.nn.Dropout(0.5), torch.nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.drop(x.flatten(1)))


def _logits_by_hand(net, x) -> np.ndarray:
    """The eval-mode logits in float64 numpy (dropout off: the linear layer alone)."""
    w, b = net.fc.weight.detach().double().numpy(), net.fc.bias.detach().double().numpy()
    return x.reshape(len(x), -1).double().numpy() @ w.T + b


def _advantage_by_hand(scores, truth) -> float:
    """max over thresholds t of TPR - FPR of the rule 'score >= t' (t = every score, and +inf)."""
    scores, truth = np.asarray(scores, float), np.asarray(truth, bool)
    best = 0.0
    for t in np.unique(scores):
        said = scores >= t
        best = max(best, said[truth].mean() - said[~truth].mean())
    return best


def test_attack_scores_are_the_negative_loss_and_top_probability_in_eval_mode_and_keep_the_mode():
    """Kills: scores in train mode (dropout on), the mode not restored, the max logit for the confidence;
    ``membership_attack``'s advantage is max(TPR - FPR), computed here threshold by threshold."""
    from gastrodistill.anonymity.membership import attack_scores

    rng = np.random.default_rng(3)
    x = torch.as_tensor(rng.standard_normal((40, 1, 4, 4)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, 40))
    net = _DropoutNet().train()
    got = attack_scores(net, TensorDataset(x, y), batch_size=7)
    assert net.training  # the mode it came in
    logits = _logits_by_hand(net, x)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(got["loss"], logp[np.arange(40), y.numpy()], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["confidence"], np.exp(logp).max(1), rtol=1e-5, atol=1e-6)

    members, nonmembers = TensorDataset(x[:20], y[:20]), TensorDataset(x[20:], y[20:])
    result = membership_attack(net, members, nonmembers)
    truth = np.r_[np.ones(20), np.zeros(20)]
    for attack in ("loss", "confidence"):
        score = np.r_[got[attack][:20], got[attack][20:]]
        assert result.advantage[attack] == pytest.approx(_advantage_by_hand(score, truth), abs=1e-12)
    assert (result.n_members, result.n_nonmembers) == (20, 20)


def test_balanced_subsets_draw_distinct_samples():
    """Kills: sampling with replacement (a subset as large as its split repeats samples)."""
    rng = np.random.default_rng(2)
    a, b = balanced_subsets(_draw(rng, 50), _draw(rng, 30), max_per_side=100, seed=3)
    assert sorted(set(b.indices)) == b.indices == list(range(30))
    assert len(set(a.indices)) == 30 and a.indices == sorted(a.indices)


def test_summarise_gives_the_sample_std_over_networks():
    """Kills: the population std (ddof 0): two networks' AUCs a, b have sample std |a - b| / sqrt(2)."""
    from gastrodistill.anonymity.membership import MembershipResult

    def result(auc, adv):
        return MembershipResult(
            auc={"loss": auc, "confidence": 0.5},
            advantage={"loss": adv, "confidence": 0.0},
            roc={},
            n_members=4,
            n_nonmembers=4,
        )

    summary = summarise([result(0.7, 0.4), result(0.6, 0.2)])
    assert summary["mia_loss_auc"] == pytest.approx(0.65)
    assert summary["mia_loss_auc_std"] == pytest.approx(0.1 / np.sqrt(2))
    assert summary["mia_loss_advantage"] == pytest.approx(0.3)
    assert summarise([result(0.7, 0.4)])["mia_loss_auc_std"] == 0.0


def test_an_attack_pool_of_unequal_lengths_is_refused():
    from gastrodistill.anonymity.membership import AttackPool, MembershipInputError

    x, y = torch.zeros(4, 1, 2, 2), torch.zeros(4, dtype=torch.long)
    with pytest.raises(MembershipInputError, match="must have equal lengths"):
        AttackPool(x=x, y=y, groups=np.arange(3), is_train=np.ones(4, dtype=bool))


def _pool_rows(dm, pool, split):
    """Indices into ``split`` of the pool's patches of that split, found by their pixels (all distinct)."""
    x, _ = dm.load_split(split)
    flat = x.reshape(len(x), -1).numpy()
    side = pool.is_train if split == "train" else ~pool.is_train
    rows = []
    for patch in pool.x[side].reshape(int(side.sum()), -1).numpy():
        (hit,) = np.flatnonzero((flat == patch).all(1))
        rows.append(hit)
    return np.array(rows)


def test_pool_patient_codes_follow_the_patients_of_its_patches(dm):
    """Two pool patches share a code exactly when they come from the same patient of the same split.
    Kills: the test side's codes taken at the training side's indices."""
    from gastrodistill.anonymity.membership import build_pool

    pool = build_pool(dm, max_per_side=50, seed=0)
    pids = np.concatenate([np.asarray(dm.patient_ids(s))[_pool_rows(dm, pool, s)] for s in ("train", "test")])
    same_code = pool.groups[:, None] == pool.groups[None, :]
    same_patient = pids[:, None] == pids[None, :]  # train and test ids differ by their split name
    np.testing.assert_array_equal(same_code, same_patient)
    assert pool.n_patients == len(set(pids))


def test_pool_draws_only_from_the_candidate_patches_it_is_given(dm):
    """``train_indices`` / ``test_indices`` (the audit's informative patches) restrict both sides; each
    class contributes min(candidates on either side) patches, capped at ``max_per_side`` in total.
    Kills: the drawn positions used as indices into the whole split."""
    from gastrodistill.anonymity.membership import MembershipInputError, build_pool

    rng = np.random.default_rng(0)
    tr = np.sort(rng.choice(len(dm.labels("train")), 60, replace=False))
    te = np.sort(rng.choice(len(dm.labels("test")), 50, replace=False))
    pool = build_pool(dm, max_per_side=1000, seed=0, train_indices=tr, test_indices=te)
    rows_tr, rows_te = _pool_rows(dm, pool, "train"), _pool_rows(dm, pool, "test")
    assert set(rows_tr) <= set(tr) and set(rows_te) <= set(te)
    y_tr, y_te = dm.labels("train")[tr], dm.labels("test")[te]
    assert len(rows_tr) == len(rows_te) == sum(min((y_tr == c).sum(), (y_te == c).sum()) for c in range(3))
    with pytest.raises(MembershipInputError, match="at least 2 training and 2 test samples"):
        build_pool(dm, max_per_side=10, seed=0, train_indices=tr[:1], test_indices=te)


def test_a_pool_too_small_for_the_attack_is_one_line_at_the_command_line_saying_what_to_change(dm):
    """An informative-only pool can be too small on a site's own data, after the networks have trained:
    the command prints the message alone (the class is one of the commands' known errors), with the
    setting to change; the shadows' halves name the patients they have."""
    from gastrodistill.anonymity.membership import MembershipInputError, build_pool, shadow_halves
    from gastrodistill.cli.errors import known_error_text

    with pytest.raises(MembershipInputError) as small_pool:
        build_pool(dm, max_per_side=10, seed=0, train_indices=np.arange(1), test_indices=np.arange(1))
    with pytest.raises(MembershipInputError) as one_patient:
        shadow_halves(np.array(["p1", "p1", "p1"]), n_shadows=2, seed=0)
    for info in (small_pool, one_patient):
        assert known_error_text(info.value) == f"error: {info.value}"
        assert "audit.membership.informative_only=false" in str(info.value)
    assert "(have 1 and 1 samples)" in str(small_pool.value)
    assert "at least 2 patients in the attack pool (have 1)" in str(one_patient.value)


def test_example_scores_are_the_loss_and_the_log_odds_of_the_true_class_in_eval_mode():
    """``phi = log(p_y / (1 - p_y))`` and the cross-entropy, against numpy over several batches; the network
    is scored in eval mode and left in the mode it came in. Kills: phi as log p_y, scores in train mode,
    the mode not restored."""
    from gastrodistill.anonymity.membership import example_scores

    rng = np.random.default_rng(4)
    x = torch.as_tensor(rng.standard_normal((30, 1, 4, 4)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 3, 30))
    net = _DropoutNet(1).train()
    loss, phi = example_scores(net, x, y, batch_size=8)
    assert net.training
    logits = _logits_by_hand(net, x)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    p_y = p[np.arange(30), y.numpy()]
    np.testing.assert_allclose(loss, -np.log(p_y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(phi, np.log(p_y / (1 - p_y)), rtol=1e-5, atol=1e-5)


def test_shadow_halves_refuse_no_shadows_and_a_single_patient_and_draw_each_pair_anew():
    """Kills: 0 shadows accepted, one patient accepted (a shadow on nothing), every pair the same halves."""
    from gastrodistill.anonymity.membership import MembershipInputError, shadow_halves

    groups = np.repeat(np.arange(12), 2)
    with pytest.raises(MembershipInputError, match="even number >= 2"):
        shadow_halves(groups, 0, seed=0)
    with pytest.raises(MembershipInputError, match="at least 2 patients"):
        shadow_halves(np.zeros(5, dtype=int), 2, seed=0)
    inside = shadow_halves(groups, 8, seed=0)
    assert (inside.sum(1) == 12).all()  # half of the 12 patients' 24 patches each
    assert len({tuple(row) for row in inside[::2]}) == 4  # four pairs, four different halves (P = 1/924 each)


def test_each_shadow_trains_on_its_half_with_its_own_generator():
    """``fit`` gets the pool patches of shadow k's half and the generator ``(seed, 'audit', 'shadow', k)``.
    Kills: one generator for every shadow, shadows trained on the whole pool."""
    from gastrodistill.anonymity.membership import AttackPool, shadow_halves, train_shadows
    from gastrodistill.utils.seeding import torch_generator

    rng = np.random.default_rng(5)
    x, y, groups = _patients(rng, n_patients=6, per_patient=2)
    pool = AttackPool(x=x, y=y, groups=groups, is_train=groups < 3)
    calls = []

    def fit(xs, ys, g):
        calls.append((xs.clone(), ys.clone(), g.initial_seed()))
        return _net(0)

    shadows = train_shadows(pool, fit, n_shadows=4, seed=7)
    inside = shadow_halves(groups, 4, seed=7)
    np.testing.assert_array_equal(shadows.inside, inside)
    assert len(calls) == 4
    for k, (xs, ys, seed) in enumerate(calls):
        assert torch.equal(xs, x[inside[k]]) and torch.equal(ys, y[inside[k]])
        assert seed == torch_generator(7, "audit", "shadow", k).initial_seed()
    assert len({seed for *_, seed in calls}) == 4


def test_shadows_and_targets_share_one_pool_of_as_many_workers_as_jobs(monkeypatch):
    """With ``processes`` > 1 the shadows and targets go to ``min(processes, jobs)`` workers of one pool
    (here threads in place of spawned processes, which cost seconds), each worker on one torch thread.
    Kills: the pool skipped at 2 processes, a pool of one worker, the worker's thread count left as is."""
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import contextmanager

    import gastrodistill.utils.worker_pool as worker_pool
    from gastrodistill.anonymity.membership import AttackPool, _start_shadow_worker, train_shadows_and

    pools = []

    @contextmanager
    def thread_pool(workers, initializer=None, initargs=()):
        pools.append(workers)
        with ThreadPoolExecutor(workers, initializer=initializer, initargs=initargs) as ex:
            yield ex

    monkeypatch.setattr(worker_pool, "spawn_pool", thread_pool)
    rng = np.random.default_rng(6)
    x, y, groups = _patients(rng, n_patients=4, per_patient=2)
    pool = AttackPool(x=x, y=y, groups=groups, is_train=groups < 2)
    fit = lambda xs, ys, g: _net(int(g.initial_seed() % 1000))  # noqa: E731
    makers = [lambda: _net(1), lambda: _net(2), lambda: _net(3)]
    shadows, targets = train_shadows_and(pool, fit, 2, 0, processes=2, targets=makers)
    assert pools == [2] and len(targets) == 3 and shadows.loss.shape == (2, 8)
    train_shadows_and(pool, fit, 2, 0, processes=9, targets=makers)
    assert pools == [2, 5]  # 2 shadows + 3 targets
    torch.set_num_threads(2)
    _start_shadow_worker(fit, x, y, 0)
    assert torch.get_num_threads() == 1


def test_calibrated_scores_leave_an_example_no_shadow_left_out_unmeasured_and_floor_the_spread():
    """Example 0 is inside every shadow: no OUT mean, so its calibrated loss, LiRA and offline LiRA are NaN
    (not 0, which would be offline LiRA's highest score). Shadows that agree exactly have a spread of 0,
    floored at 1e-3 (finite likelihoods). Kills: a missing mean read as 0; no floor."""
    from scipy.stats import norm

    from gastrodistill.anonymity.membership import ShadowScores, calibrated_scores

    inside = np.array([[True, True, False], [True, False, True]])
    phi_rows = np.array([[1.0, 2.0, -1.0], [1.0, -1.0, 2.0]])  # in: 2.0, out: -1.0, every time
    shadows = ShadowScores(loss=np.ones((2, 3)), phi=phi_rows, inside=inside)
    loss, phi = np.array([0.5, 0.25, 2.0]), np.array([0.0, 1.5, -1.0005])
    got = calibrated_scores(loss, phi, shadows)
    for name in ("calibrated_loss", "lira", "lira_offline"):
        assert np.isnan(got[name][0]), name
    np.testing.assert_allclose(got["calibrated_loss"][1:], [1.0 - 0.25, 1.0 - 2.0])
    s = 1e-3  # both spreads 0, floored
    want = [norm.logpdf(p, 2.0, s) - norm.logpdf(p, -1.0, s) for p in phi[1:]]
    np.testing.assert_allclose(got["lira"][1:], want, rtol=1e-12)
    np.testing.assert_allclose(got["lira_offline"][1:], norm.logcdf((phi[1:] + 1.0) / s), rtol=1e-12)


def test_attack_metrics_rank_unmeasured_scores_lowest_and_count_both_sides():
    """A NaN score (not measured) is the least member-like, as in ``patch_aucs``; AUC against sklearn with
    NaN replaced by the lowest float, advantage threshold by threshold, TPR at 10 % FPR by hand. Kills: a
    NaN ranked highest; the advantage as max TPR - min FPR; no refusal of a one-sided truth."""
    from sklearn.metrics import roc_auc_score

    from gastrodistill.anonymity.membership import MembershipInputError, attack_metrics

    rng = np.random.default_rng(8)
    truth = np.r_[np.ones(12, bool), np.zeros(10, bool)]
    scores = rng.normal(size=22) + truth
    scores[[0, 1, 15]] = np.nan  # two members and a non-member unmeasured
    m = attack_metrics(scores, truth, fprs=(0.1,))
    clean = np.where(np.isnan(scores), np.finfo(np.float64).min, scores)
    assert m.auc == pytest.approx(roc_auc_score(truth, clean), abs=1e-12)
    assert m.advantage == pytest.approx(_advantage_by_hand(clean, truth), abs=1e-12)
    # TPR at FPR <= 10 % of 10 non-members (one false positive): the members above the second-highest one
    second = np.sort(clean[~truth])[-2]
    assert m.tpr_at[0.1] == pytest.approx((clean[truth] > second).mean())
    assert (m.n_members, m.n_nonmembers) == (12, 10)
    with pytest.raises(MembershipInputError, match="members and non-members \\(have 3 and 0\\)"):
        attack_metrics(np.zeros(3), np.ones(3, bool))


def _metrics(auc, advantage=0.0, tpr=0.0, null_sd=float("nan"), n=(10, 10)):
    from gastrodistill.anonymity.membership import AttackMetrics

    return AttackMetrics(
        auc=auc,
        advantage=advantage,
        tpr_at={0.01: tpr},
        n_members=n[0],
        n_nonmembers=n[1],
        roc=(np.zeros(1), np.zeros(1)),
        null_sd=null_sd,
    )


def test_summarise_targets_names_the_calibrated_attack_best_on_average_and_averages_over_networks():
    """Two networks: ``best`` is the calibrated attack with the highest *mean* AUC at each level (never the
    uncalibrated loss, however high), its index in BEST_OF; means, sample std, advantage and TPR averaged;
    the patch level's null sd mean where computed, no such key at the patient level. Kills: min for max,
    the loss among the candidates, the first network's AUC deciding, ddof 0, first or last network only,
    an index off by one, a NaN null-sd key."""
    from gastrodistill.anonymity.membership import BEST_OF, TargetAttack, summarise_targets

    def target(patch_aucs, patient_aucs, k):
        patch = {
            a: _metrics(v, advantage=0.1 * k, tpr=0.2 * k, null_sd=0.05 * k) for a, v in patch_aucs.items()
        }
        patient = {a: _metrics(v, n=(3, 4)) for a, v in patient_aucs.items()}
        return TargetAttack(patch=patch, patient=patient)

    # patch: lira wins on the first network, calibrated_loss on average; patient: lira_offline
    first = target(
        {"loss": 0.95, "calibrated_loss": 0.70, "lira": 0.80, "lira_offline": 0.52},
        {"loss": 0.99, "calibrated_loss": 0.5, "lira": 0.6, "lira_offline": 0.7},
        1,
    )
    second = target(
        {"loss": 0.90, "calibrated_loss": 0.74, "lira": 0.60, "lira_offline": 0.50},
        {"loss": 0.99, "calibrated_loss": 0.5, "lira": 0.6, "lira_offline": 0.8},
        2,
    )
    out = summarise_targets([first, second])
    assert out["mia_patch_best_attack_index"] == BEST_OF.index("calibrated_loss") == 0
    assert out["mia_patient_best_attack_index"] == BEST_OF.index("lira_offline") == 2
    assert out["mia_patch_best_auc"] == pytest.approx(0.72) == out["mia_patch_calibrated_loss_auc"]
    assert out["mia_patch_best_auc_std"] == pytest.approx(0.04 / np.sqrt(2))
    assert out["mia_patch_best_advantage"] == pytest.approx(0.15)
    assert out["mia_patch_best_tpr_at_1pct"] == pytest.approx(0.3)
    assert out["mia_patch_best_null_sd"] == pytest.approx(0.075)
    assert out["mia_patient_best_auc"] == pytest.approx(0.75)
    assert out["mia_patch_loss_auc"] == pytest.approx(0.925)
    assert not any(k.startswith("mia_patient") and k.endswith("null_sd") for k in out)
    assert (out["mia_patient_n_members"], out["mia_patient_n_nonmembers"]) == (3, 4)
    assert out["mia_patch_n_members"] == 10


def test_attack_targets_null_sd_is_the_sample_std_of_the_patient_permutation_aucs():
    """Each patch-level attack's ``null_sd`` is the sample std of :func:`patient_permutation_aucs` of its
    scores with the call's seed and count. Kills: the population std, the seed ignored."""
    from gastrodistill.anonymity.membership import (
        AttackPool,
        ShadowScores,
        attack_target,
        calibrated_scores,
        patient_permutation_aucs,
    )

    rng = np.random.default_rng(9)
    groups = np.repeat(np.arange(10), 3)
    is_member = groups < 5
    pool = AttackPool(
        x=torch.zeros(30, 1, 2, 2), y=torch.zeros(30, dtype=torch.long), groups=groups, is_train=is_member
    )
    inside = np.tile(np.array([[True], [False]]), (1, 30))
    inside[:, ::2] = ~inside[:, ::2]
    shadows = ShadowScores(loss=rng.gamma(2, 0.5, (2, 30)), phi=rng.normal(size=(2, 30)), inside=inside)
    example = (rng.gamma(2, 0.5, 30), rng.normal(size=30))
    res = attack_target(None, pool, shadows, is_member, n_permutations=50, seed=3, example=example)
    scores = calibrated_scores(*example, shadows)
    for name, sc in scores.items():
        null = patient_permutation_aucs(sc, groups, is_member, n_permutations=50, seed=3)
        assert res.patch[name].null_sd == pytest.approx(null.std(ddof=1), rel=1e-12), name
        assert np.isnan(res.patient[name].null_sd)
