"""Membership inference: can an attacker tell, from a trained network, which real patches it was built from?

Two families of attacks, members being real training patches (and patients), non-members real test
patches (and patients):

* **Uncalibrated thresholds** (Yeom et al. 2018): a low loss or a high confidence says "member". On
  real data these are weak: easy patches have a low loss whether seen or not, so the attack mostly
  measures difficulty.
* **Calibrated attacks with shadow networks.** Shadow networks are trained on random halves of the
  attack pool's *patients* (complementary pairs, so each patient is "in" for exactly half of them).
  Per example they give the loss and the logit-scaled confidence ``phi = log(p_y / (1 - p_y))`` with
  and without it in training. *Difficulty calibration* (Watson et al., "On the importance of
  difficulty calibration in membership inference attacks", ICLR 2022, §3) scores
  ``mean_out_loss(x) - target_loss(x)``; *LiRA* (Carlini et al., "Membership inference attacks from
  first principles", S&P 2022, §IV, online variant with a global variance as in their few-shadow
  setting, here one pooled variance ``s`` for both sides) scores
  ``log N(phi; mu_in, s) - log N(phi; mu_out, s)``; its offline variant
  (§VI-C) scores ``log Phi((phi - mu_out) / s_out)``.

Each attack is reported at the patch level and at the patient level (a patient's score is the mean of
its patches' scores), as ROC AUC, the advantage ``max(TPR - FPR)`` and the TPR at 0.1 % and 1 % FPR
(``NaN`` when there are fewer than ``1 / FPR`` non-members to measure it on), always with the member
and non-member counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from gastrodistill.utils.seeding import numpy_rng, torch_generator

if TYPE_CHECKING:
    from gastrodistill.data.base import ImageDataModule

#: Attack scores (higher = "member"): negative true-label loss; label-free maximum softmax probability.
ATTACKS = ("loss", "confidence")


@dataclass
class MembershipResult:
    """AUC and best-threshold advantage (max TPR - FPR) of each attack, with its ROC curve for plotting."""

    auc: dict[str, float]
    advantage: dict[str, float]
    roc: dict[str, tuple[np.ndarray, np.ndarray]]
    n_members: int
    n_nonmembers: int


@torch.no_grad()
def attack_scores(model: nn.Module, dataset: Dataset, batch_size: int = 512) -> dict[str, np.ndarray]:
    """Per-sample attack scores of ``model`` on ``(x, y)`` pairs; higher means more member-like."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    scores: dict[str, list[torch.Tensor]] = {a: [] for a in ATTACKS}
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        logits = model(x.to(device)).float().cpu()
        y = torch.as_tensor(y).long()
        scores["loss"].append(-F.cross_entropy(logits, y, reduction="none"))
        scores["confidence"].append(logits.softmax(dim=1).max(dim=1).values)
    model.train(was_training)
    return {a: torch.cat(v).double().numpy() for a, v in scores.items()}


def balanced_subsets(
    members: Dataset, nonmembers: Dataset, max_per_side: int, seed: int
) -> tuple[Subset, Subset]:
    """Equal, seeded random subsets of both sides, so that AUC 0.5 means chance."""
    n = min(len(members), len(nonmembers), max_per_side)
    if n < 2:
        raise ValueError(
            f"membership inference needs at least 2 members and 2 non-members (have {len(members)} train and "
            f"{len(nonmembers)} test samples)"
        )
    rng = numpy_rng(seed, "audit", "membership")
    pick = lambda ds: Subset(ds, np.sort(rng.choice(len(ds), size=n, replace=False)).tolist())  # noqa: E731
    return pick(members), pick(nonmembers)


def membership_attack(
    model: nn.Module, members: Dataset, nonmembers: Dataset, batch_size: int = 512
) -> MembershipResult:
    """Threshold attacks on ``model``: AUC of separating ``members`` from ``nonmembers`` by each score."""
    s_in, s_out = attack_scores(model, members, batch_size), attack_scores(model, nonmembers, batch_size)
    truth = np.concatenate([np.ones(len(members)), np.zeros(len(nonmembers))])
    auc, adv, roc = {}, {}, {}
    for a in ATTACKS:
        score = np.concatenate([s_in[a], s_out[a]])
        auc[a] = float(roc_auc_score(truth, score))
        fpr, tpr, _ = roc_curve(truth, score)
        adv[a] = float(np.max(tpr - fpr))
        roc[a] = (fpr, tpr)
    return MembershipResult(
        auc=auc, advantage=adv, roc=roc, n_members=len(members), n_nonmembers=len(nonmembers)
    )


def summarise(results: list[MembershipResult]) -> dict[str, float]:
    """Mean and std over networks of every attack's AUC and advantage (flat keys for tables and W&B)."""
    out: dict[str, float] = {}
    for a in ATTACKS:
        aucs = np.array([r.auc[a] for r in results])
        advs = np.array([r.advantage[a] for r in results])
        out[f"mia_{a}_auc"] = float(aucs.mean())
        out[f"mia_{a}_auc_std"] = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
        out[f"mia_{a}_advantage"] = float(advs.mean())
    return out


# ---- calibrated attacks with shadow networks -------------------------------------------------------
#: Calibrated attack scores (higher = "member"), beside the uncalibrated ``loss``.
CALIBRATED_ATTACKS = ("calibrated_loss", "lira", "lira_offline")
#: ``membership.primary: best``: the strongest of these per target (the audit's attack is the best it has).
BEST_OF = CALIBRATED_ATTACKS
#: False-positive rates at which the true-positive rate is reported.
DEFAULT_FPRS = (0.001, 0.01)


class MembershipInputError(ValueError):
    """An attack pool or shadow set-up the attack cannot work with (too few patients, odd shadows...)."""


@dataclass
class AttackPool:
    """The examples attacked: images ``x [N, C, H, W]``, labels ``y [N]`` and integer patient codes ``[N]``.

    ``groups`` are codes, never patient ids. ``is_train`` marks examples from the training split (the
    members of a network trained on all real training patches).
    """

    x: torch.Tensor
    y: torch.Tensor
    groups: np.ndarray
    is_train: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.x)
        if not (len(self.y) == len(self.groups) == len(self.is_train) == n):
            raise MembershipInputError("x, y, groups and is_train of an attack pool must have equal lengths")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def n_patients(self) -> int:
        """Distinct patient codes in the pool (members and non-members together)."""
        return len(np.unique(self.groups))


def _codes(pids: np.ndarray | None, n: int, offset: int) -> np.ndarray:
    if pids is None:  # no patients: every sample is its own "patient"
        return np.arange(n, dtype=np.int64) + offset
    _, codes = np.unique(np.asarray(pids).astype(str), return_inverse=True)
    return codes.astype(np.int64) + offset


def build_pool(
    datamodule: ImageDataModule,
    max_per_side: int,
    seed: int,
    train_indices: np.ndarray | None = None,
    test_indices: np.ndarray | None = None,
) -> AttackPool:
    """Equal seeded samples of training and test patches, class by class, in memory, with patient codes.

    Each class contributes the same number of training and test patches (``min`` of the two, scaled
    so that each side holds at most ``max_per_side``): with the splits' class mixes left as they are,
    an attack would partly measure "which class mix does this patch come from" (test splits often
    hold another share of diseased patients). Patient codes of the two splits never collide (test
    codes are offset); the ids themselves never leave this function. ``train_indices`` /
    ``test_indices`` restrict the candidates (the audit passes the informative patches: nothing can
    tell whether a uniform background patch was trained on).
    """
    y_tr_all, y_te_all = np.asarray(datamodule.labels("train")), np.asarray(datamodule.labels("test"))
    cand_tr = np.arange(len(y_tr_all)) if train_indices is None else np.asarray(train_indices)
    cand_te = np.arange(len(y_te_all)) if test_indices is None else np.asarray(test_indices)
    y_tr, y_te = y_tr_all[cand_tr], y_te_all[cand_te]
    classes = np.union1d(y_tr, y_te)
    per_class = np.array([min((y_tr == c).sum(), (y_te == c).sum()) for c in classes], dtype=np.float64)
    total = per_class.sum()
    if total < 2:
        raise MembershipInputError(
            f"membership inference needs at least 2 training and 2 test samples of shared classes (have "
            f"{len(y_tr)} and {len(y_te)} samples); the pool holds informative patches only by default: set "
            "audit.membership.informative_only=false, or give the test split more patients"
        )
    if total > max_per_side:
        cap = per_class.copy()
        per_class = np.floor(per_class * float(max_per_side) / total)
        for i in np.argsort(-(cap - per_class)):  # hand the rounding remainder to classes with room
            if per_class.sum() >= max_per_side:
                break
            per_class[i] += min(cap[i] - per_class[i], max_per_side - per_class.sum())
    rng = numpy_rng(seed, "audit", "membership", "pool")
    pick_tr, pick_te = [], []
    for c, n in zip(classes, per_class.astype(int), strict=True):
        pick_tr.append(rng.choice(np.flatnonzero(y_tr == c), size=n, replace=False))
        pick_te.append(rng.choice(np.flatnonzero(y_te == c), size=n, replace=False))
    idx_tr = np.sort(cand_tr[np.concatenate(pick_tr)])
    idx_te = np.sort(cand_te[np.concatenate(pick_te)])
    n = len(idx_tr)
    x_tr, yy_tr = datamodule.load_split("train", idx_tr.tolist())
    x_te, yy_te = datamodule.load_split("test", idx_te.tolist())
    g_tr_all = _codes(datamodule.patient_ids("train"), len(y_tr_all), 0)
    g_te_all = _codes(datamodule.patient_ids("test"), len(y_te_all), int(g_tr_all.max()) + 1)
    return AttackPool(
        x=torch.cat([x_tr, x_te]).float(),
        y=torch.cat([yy_tr, yy_te]).long(),
        groups=np.concatenate([g_tr_all[idx_tr], g_te_all[idx_te]]),
        is_train=np.concatenate([np.ones(n, dtype=bool), np.zeros(len(idx_te), dtype=bool)]),
    )


@torch.no_grad()
def example_scores(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ``(loss, phi)`` of ``model``: cross-entropy and logit-scaled true-class confidence.

    Both are arrays ``[N]`` for images ``x [N, C, H, W]`` and labels ``y [N]``.

    ``phi = log p_y - log(1 - p_y)`` computed from log-softmax (stable when ``p_y`` is close to 1).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    losses, phis = [], []
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size].to(device)).double().cpu()
        yy = y[start : start + batch_size].long()
        logp = logits.log_softmax(dim=1)
        lp_y = logp.gather(1, yy.view(-1, 1)).squeeze(1)
        others = logp.clone()
        others.scatter_(1, yy.view(-1, 1), -math.inf)
        losses.append(-lp_y)
        phis.append(lp_y - others.logsumexp(dim=1))
    model.train(was_training)
    return torch.cat(losses).numpy(), torch.cat(phis).numpy()


@dataclass
class ShadowScores:
    """Per shadow network and pool example: loss, ``phi`` and whether the example was in its training set.

    Arrays are ``[n_shadows, N]``.
    """

    loss: np.ndarray
    phi: np.ndarray
    inside: np.ndarray

    @property
    def n_shadows(self) -> int:
        """Number of shadow networks (rows of the ``[n_shadows, N]`` arrays)."""
        return self.loss.shape[0]


def shadow_halves(groups: np.ndarray, n_shadows: int, seed: int) -> np.ndarray:
    """``[n_shadows, N]`` bool: complementary random halves of the patients, one pair per two shadows.

    Every patient is "in" for exactly half of the shadows (Carlini et al. 2022, §IV-B).
    """
    if n_shadows < 2 or n_shadows % 2:
        raise MembershipInputError(
            f"audit.membership.shadows = {n_shadows}; use an even number >= 2 (complementary halves)"
        )
    patients = np.unique(groups)
    if len(patients) < 2:
        raise MembershipInputError(
            f"shadow networks need at least 2 patients in the attack pool (have {len(patients)}); give the "
            "data more patients, or set audit.membership.informative_only=false"
        )
    rng = numpy_rng(seed, "audit", "membership", "halves")
    inside = np.zeros((n_shadows, len(groups)), dtype=bool)
    for pair in range(n_shadows // 2):
        chosen = rng.permutation(patients)[: len(patients) // 2]
        half = np.isin(groups, chosen)
        inside[2 * pair], inside[2 * pair + 1] = half, ~half
    return inside


def train_shadows(
    pool: AttackPool,
    fit: Callable[[torch.Tensor, torch.Tensor, torch.Generator], nn.Module],
    n_shadows: int,
    seed: int,
    processes: int = 1,
) -> ShadowScores:
    """Train ``n_shadows`` networks with ``fit(x, y, generator)`` on halves of the pool's patients.

    Every shadow scores every pool example; raises :class:`MembershipInputError` for an odd count. With
    ``processes`` > 1 the shadows train in that many spawned worker processes (``fit`` must then be
    picklable, e.g. :class:`gastrodistill.anonymity.audit.RealFit`; one torch thread each); each shadow
    keeps its own generator ``(seed, 'audit', 'shadow', k)``, so the scores equal a single process's.
    """
    return train_shadows_and(pool, fit, n_shadows, seed, processes)[0]


def train_shadows_and(
    pool: AttackPool,
    fit: Callable[[torch.Tensor, torch.Tensor, torch.Generator], nn.Module],
    n_shadows: int,
    seed: int,
    processes: int = 1,
    targets: Sequence[Callable[[], nn.Module]] = (),
    progress: bool = False,
) -> tuple[ShadowScores, list[tuple[np.ndarray, np.ndarray]]]:
    """:func:`train_shadows`, and the target networks the zero-argument ``targets`` make (trained there,
    each by its own seeds, or handed over), each scored on every pool example like the shadows
    (:func:`example_scores`); the same worker processes take them after the shadows, so that neither
    waits for the other. Returns the shadows' scores and each target's ``(loss, phi)`` ``[N]`` in order,
    for :func:`attack_target`'s ``example``. With ``processes`` > 1 the makers must be picklable
    (module-level functions under ``functools.partial``) and run with one torch thread, as the shadows
    do; in one process they run here, after the shadows. ``progress``: a tqdm bar on standard error that
    counts the networks trained and scored, shadows and targets together (the audit's longest part: about
    two minutes of the CPU preset's reproduce, which showed nothing while it ran).
    """
    inside = shadow_halves(pool.groups, n_shadows, seed)
    shared = (fit, pool.x, pool.y, seed)
    sels = [np.flatnonzero(m) for m in inside]
    total = n_shadows + len(targets)
    parallel = processes > 1 and total > 1
    workers = min(processes, total) if parallel else 1
    desc = f"audit: membership networks ({workers} process{'es' if workers > 1 else ''})"
    with tqdm(total=total, desc=desc, unit="net", disable=not progress) as bar:
        if parallel:
            from concurrent.futures import as_completed

            from gastrodistill.utils.worker_pool import spawn_pool

            # the pool and `fit` reach each worker once, not once per shadow; an error stops every worker
            with spawn_pool(workers, initializer=_start_shadow_worker, initargs=shared) as ex:
                shadow_jobs = [ex.submit(_worker_shadow, sel, k) for k, sel in enumerate(sels)]
                target_jobs = [ex.submit(_worker_target, make) for make in targets]
                for job in as_completed(shadow_jobs + target_jobs):
                    job.result()  # the first worker's error, at once
                    bar.update()
                scores = [job.result() for job in shadow_jobs]
                target_scores = [job.result() for job in target_jobs]
        else:
            scores, target_scores = [], []
            for k, sel in enumerate(sels):
                scores.append(_shadow_scores(*shared, sel, k))
                bar.update()
            for make in targets:
                target_scores.append(example_scores(make(), pool.x, pool.y))
                bar.update()
    shadows = ShadowScores(
        loss=np.stack([s[0] for s in scores]), phi=np.stack([s[1] for s in scores]), inside=inside
    )
    return shadows, target_scores


#: What a shadow worker keeps from :func:`_start_shadow_worker` (fit, pool images, labels, seed).
_SHADOW_WORKER: dict[str, tuple] = {}


def _start_shadow_worker(
    fit: Callable[[torch.Tensor, torch.Tensor, torch.Generator], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
) -> None:
    torch.set_num_threads(1)  # one torch thread per worker: the workers share the cores
    _SHADOW_WORKER["shared"] = (fit, x, y, seed)


def _worker_shadow(sel: np.ndarray, k: int):
    return _shadow_scores(*_SHADOW_WORKER["shared"], sel, k)


def _worker_target(make: Callable[[], nn.Module]) -> tuple[np.ndarray, np.ndarray]:
    _, x, y, _ = _SHADOW_WORKER["shared"]
    return example_scores(make(), x, y)


def _shadow_scores(
    fit: Callable[[torch.Tensor, torch.Tensor, torch.Generator], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    seed: int,
    sel: np.ndarray,
    k: int,
):
    """Shadow ``k``: trained by ``fit`` on ``x[sel]``, its (loss, phi) on every example of the pool."""
    idx = torch.as_tensor(sel)
    net = fit(x[idx], y[idx], torch_generator(seed, "audit", "shadow", k))
    return example_scores(net, x, y)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    count = mask.sum(axis=0)
    total = np.where(mask, values, 0.0).sum(axis=0)
    return np.divide(total, count, out=np.full(values.shape[1], np.nan), where=count > 0)


def _global_std(values: np.ndarray, mask: np.ndarray, means: np.ndarray) -> float:
    resid = np.where(mask, values - means[None, :], np.nan)
    resid = resid[np.isfinite(resid)]
    return float(max(np.sqrt(np.mean(resid**2)) if len(resid) else 1.0, 1e-3))


def calibrated_scores(loss: np.ndarray, phi: np.ndarray, shadows: ShadowScores) -> dict[str, np.ndarray]:
    """Attack scores ``[N]`` of one target network from its per-example ``loss`` and ``phi``.

    ``loss``: uncalibrated (negative loss); ``calibrated_loss``: Watson et al. 2022 (mean OUT-shadow
    loss minus the target's loss); ``lira`` / ``lira_offline``: Carlini et al. 2022 with global
    variances (per-example variances need many more shadows than a CPU audit trains).
    """
    out_mask, in_mask = ~shadows.inside, shadows.inside
    mu_out_loss = _masked_mean(shadows.loss, out_mask)
    mu_in, mu_out = _masked_mean(shadows.phi, in_mask), _masked_mean(shadows.phi, out_mask)
    s_in = _global_std(shadows.phi, in_mask, mu_in)
    s_out = _global_std(shadows.phi, out_mask, mu_out)
    # One pooled variance for "in" and "out": with unequal variances the ratio is quadratic in phi, and a
    # target trained unlike the shadows (overfitted, or on a distilled set) lands far in a tail where
    # the narrower Gaussian wins whatever the side; with a shared one the score is monotone in phi.
    s = math.sqrt((s_in**2 + s_out**2) / 2.0)
    lira = norm.logpdf(phi, mu_in, s) - norm.logpdf(phi, mu_out, s)
    return {
        "loss": -loss,
        "calibrated_loss": mu_out_loss - loss,
        "lira": lira,
        "lira_offline": norm.logcdf((phi - mu_out) / s_out),
    }


@dataclass
class AttackMetrics:
    """One attack's figures at one level.

    ``tpr_at`` maps an FPR to the TPR there (NaN: too few non-members to measure it).
    """

    auc: float
    advantage: float
    tpr_at: dict[float, float]
    n_members: int
    n_nonmembers: int
    roc: tuple[np.ndarray, np.ndarray] = field(repr=False)
    #: std of the AUC under membership redrawn over the patients (:func:`patient_permutation_aucs`);
    #: NaN where not computed (patient level: one unit per patient, the Mann-Whitney null holds there).
    null_sd: float = float("nan")


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float, n_nonmembers: int) -> float:
    """Highest TPR with FPR <= ``target``; NaN when ``n_nonmembers < 1 / target`` (not measurable)."""
    if n_nonmembers < math.ceil(1.0 / target - 1e-9):
        return float("nan")
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max()) if ok.any() else 0.0


def attack_metrics(
    scores: np.ndarray, is_member: np.ndarray, fprs: Sequence[float] = DEFAULT_FPRS
) -> AttackMetrics:
    """AUC, advantage and TPR at each FPR of ``scores`` (higher = member) against the truth ``is_member``."""
    is_member = np.asarray(is_member, dtype=bool)
    n_in, n_out = int(is_member.sum()), int((~is_member).sum())
    if n_in == 0 or n_out == 0:
        raise MembershipInputError(f"an attack needs members and non-members (have {n_in} and {n_out})")
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    scores = np.where(np.isneginf(scores), np.finfo(np.float64).min, scores)
    fpr, tpr, _ = roc_curve(is_member, scores)
    return AttackMetrics(
        auc=float(roc_auc_score(is_member, scores)),
        advantage=float(np.max(tpr - fpr)),
        tpr_at={float(f): tpr_at_fpr(fpr, tpr, float(f), n_out) for f in fprs},
        n_members=n_in,
        n_nonmembers=n_out,
        roc=(fpr, tpr),
    )


def permuted_patient_labels(member_of: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """``[n_permutations, P]`` membership labellings of the ``P`` patients, each with as many members as
    ``member_of`` ``[P]`` (a random permutation of it per row, from ``numpy_rng(seed, "patient-null")``)."""
    member_of = np.asarray(member_of, dtype=bool)
    rng = numpy_rng(seed, "patient-null")
    return rng.permuted(np.tile(member_of, (n_permutations, 1)), axis=1)


def patch_aucs(scores: np.ndarray, groups: np.ndarray, patient_labels: np.ndarray) -> np.ndarray:
    """Patch-level AUC of ``scores`` ``[N]`` for each row of ``patient_labels`` ``[R, P]`` (patient codes of
    ``groups`` ``[N]`` in sorted order, as :func:`patient_level`): ``[R]``, by the rank-sum formula
    (ties get average ranks, as ``roc_auc_score``). Raises ``MembershipInputError`` for a row without
    members or non-members."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    scores = np.where(np.isneginf(scores), np.finfo(np.float64).min, scores)
    ranks = rankdata(scores)
    _, inv = np.unique(groups, return_inverse=True)
    labels = np.asarray(patient_labels, dtype=bool)[:, inv]  # [R, N]
    n1 = labels.sum(1).astype(np.float64)
    n0 = len(scores) - n1
    if (n1 == 0).any() or (n0 == 0).any():
        raise MembershipInputError("a labelling without members or non-members has no AUC")
    return (labels @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0)


def patient_permutation_aucs(
    scores: np.ndarray, groups: np.ndarray, is_member: np.ndarray, n_permutations: int = 1000, seed: int = 0
) -> np.ndarray:
    """The null distribution ``[n_permutations]`` of the patch-level AUC of ``scores`` ``[N]`` when
    membership is drawn again over the patients (``groups`` ``[N]``): each patient's patches keep one
    label and as many patients as in ``is_member`` ``[N]`` are members.

    Membership is a property of patients, and a patient's patches resemble each other, so the
    Mann-Whitney null of N independent patches understates chance (by about the square root of the
    patches per patient when scores cluster by patient); this permutation test is exact when the
    patients are exchangeable under the null. Raises ``MembershipInputError`` when a patient's patches
    disagree on membership.
    """
    return patch_aucs(scores, groups, patient_null_labellings(groups, is_member, n_permutations, seed))


def patient_null_labellings(
    groups: np.ndarray, is_member: np.ndarray, n_permutations: int, seed: int
) -> np.ndarray:
    """``[n_permutations, P]`` membership labellings of the patients of ``groups`` ``[N]`` (sorted codes),
    each a permutation of their true membership (:func:`permuted_patient_labels`); they depend only on
    the pool, so one draw serves every attack on it. Raises ``MembershipInputError`` when a patient's
    patches disagree on membership."""
    is_member = np.asarray(is_member, dtype=bool)
    uniq, inv = np.unique(groups, return_inverse=True)
    member_of = np.zeros(len(uniq), dtype=bool)
    member_of[inv[is_member]] = True
    if (member_of[inv] != is_member).any():
        raise MembershipInputError("a patient's patches disagree on membership: the pool is malformed")
    return permuted_patient_labels(member_of, n_permutations, seed)


def patient_level(
    scores: np.ndarray, groups: np.ndarray, is_member: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean score per patient ``[P]`` and whether the patient is a member ``[P]`` (codes sorted).

    A NaN score (a calibrated attack on an example that no shadow left out, or none took in) is not
    measured and left out of its patient's mean; a patient without any measured score gets ``-inf``, the
    least member-like, as a NaN is at the patch level (:func:`attack_metrics`). Infinite scores count as
    ``±1e6``. Before, a NaN counted as 0.0, the highest possible ``lira_offline`` score (a log-CDF)."""
    uniq, inv = np.unique(groups, return_inverse=True)
    scores = np.asarray(scores, dtype=np.float64)
    measured = ~np.isnan(scores)
    values = np.nan_to_num(np.where(measured, scores, 0.0), posinf=1e6, neginf=-1e6)
    sums = np.bincount(inv, weights=values, minlength=len(uniq))
    counts = np.bincount(inv, weights=measured.astype(np.float64), minlength=len(uniq))
    member = np.bincount(inv, weights=is_member.astype(float), minlength=len(uniq)) > 0
    return np.divide(sums, counts, out=np.full(len(uniq), -np.inf), where=counts > 0), member


@dataclass
class TargetAttack:
    """Every attack on one target network at the patch and the patient level."""

    patch: dict[str, AttackMetrics]
    patient: dict[str, AttackMetrics]


def attack_target(
    model: nn.Module | None,
    pool: AttackPool,
    shadows: ShadowScores,
    is_member: np.ndarray,
    keep: np.ndarray | None = None,
    fprs: Sequence[float] = DEFAULT_FPRS,
    n_permutations: int = 1000,
    seed: int = 0,
    example: tuple[np.ndarray, np.ndarray] | None = None,
) -> TargetAttack:
    """Attack ``model`` on the pool; ``is_member [N]`` is the truth, ``keep [N]`` the examples evaluated.

    ``example``: the model's ``(loss, phi)`` on the pool when already computed (:func:`example_scores`,
    e.g. by :func:`train_shadows_and`'s workers); ``model`` may then be None.
    Each patch-level attack also gets the std of its AUC under membership redrawn over the patients
    (``n_permutations`` draws from ``seed``; :func:`patient_permutation_aucs`; 0 draws: NaN)."""
    loss, phi = example if example is not None else example_scores(model, pool.x, pool.y)
    scores = calibrated_scores(loss, phi, shadows)
    keep = np.ones(len(pool), dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    truth = np.asarray(is_member, dtype=bool)[keep]
    patch, patient = {}, {}
    labellings = (
        patient_null_labellings(pool.groups[keep], truth, n_permutations, seed)
        if n_permutations > 0
        else None
    )
    for name, sc in scores.items():
        patch[name] = attack_metrics(sc[keep], truth, fprs)
        if labellings is not None:  # the same redrawn memberships for every attack
            patch[name].null_sd = float(patch_aucs(sc[keep], pool.groups[keep], labellings).std(ddof=1))
        p_scores, p_truth = patient_level(sc[keep], pool.groups[keep], truth)
        patient[name] = attack_metrics(p_scores, p_truth, fprs)
    return TargetAttack(patch=patch, patient=patient)


def _fpr_key(f: float) -> str:
    return f"{f * 100:g}".replace(".", "p")


def summarise_targets(results: Sequence[TargetAttack], prefix: str = "mia") -> dict[str, float]:
    """Flat figures over the networks of one setting: mean AUC (+ std), advantage, TPR@FPR, counts.

    Keys: ``<prefix>_<level>_<attack>_{auc,auc_std,advantage,tpr_at_<fpr %>}`` (patch level also
    ``null_sd``, the mean patient-permutation null std, when computed) and
    ``<prefix>_<level>_n_members`` / ``_n_nonmembers`` (level: ``patch`` or ``patient``). Attack
    ``best`` is the calibrated attack with the highest mean AUC at that level (its position in
    :data:`BEST_OF` under ``<prefix>_<level>_best_attack_index``).
    """
    out: dict[str, float] = {}
    for level in ("patch", "patient"):
        first = getattr(results[0], level)
        best = max(BEST_OF, key=lambda a: np.mean([getattr(r, level)[a].auc for r in results]))
        out[f"{prefix}_{level}_best_attack_index"] = float(BEST_OF.index(best))
        for attack in [*first, "best"]:
            source = best if attack == "best" else attack
            ms = [getattr(r, level)[source] for r in results]
            aucs = np.array([m.auc for m in ms])
            key = f"{prefix}_{level}_{attack}"
            out[f"{key}_auc"] = float(aucs.mean())
            out[f"{key}_auc_std"] = float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0
            out[f"{key}_advantage"] = float(np.mean([m.advantage for m in ms]))
            null_sds = [m.null_sd for m in ms if math.isfinite(m.null_sd)]
            if null_sds:  # the patient-permutation null (patch level)
                out[f"{key}_null_sd"] = float(np.mean(null_sds))
            for f in first[source].tpr_at:
                out[f"{key}_tpr_at_{_fpr_key(f)}pct"] = float(np.mean([m.tpr_at[f] for m in ms]))
        m0 = next(iter(first.values()))
        out[f"{prefix}_{level}_n_members"] = float(m0.n_members)
        out[f"{prefix}_{level}_n_nonmembers"] = float(m0.n_nonmembers)
    return out
