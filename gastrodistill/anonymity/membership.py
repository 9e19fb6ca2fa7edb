"""Membership inference: can an attacker tell, from a trained network, which real patches it was built from?

The attack is the standard threshold attack (Yeom et al. 2018): a network fits its training samples
better, so a low loss (or a high confidence) says "member". Members are real training patches,
non-members real test patches, in equal numbers. Its ROC AUC is 0.5 when the network carries no trace
of its members and approaches 1 for a network that memorised them. The audit runs it on networks
trained from the distilled set and, as the reference, on a network trained on the real patches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from gastrodistill.utils.seeding import numpy_rng

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
