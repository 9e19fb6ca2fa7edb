"""evaluation/full_data.py: the epoch sampler (permutations, class-balanced draws, ranks), the batches and
augmentation seeds each epoch of a fit sees, the best-epoch weights and score, the optimiser and cosine
schedule of the recipe (gaps a mutation review found)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from torch import nn
from torch.utils.data import Dataset, TensorDataset

import gastrodistill.evaluation.full_data as full_data
from gastrodistill.evaluation.full_data import (
    BestOnValidation,
    EpochBatchSampler,
    EpochSampler,
    FullDataNet,
    RealRecipe,
    RealTrainingDivergedError,
    in_memory,
    train_full_data,
)
from gastrodistill.utils.seeding import torch_generator


def test_the_sampler_draws_a_permutation_per_epoch_and_network_and_ranks_take_every_worlds_index():
    """Each epoch a permutation (not storage order), another one for another epoch or network index, the
    same for the same ones; rank r of w keeps indices r, r + w, ... of it, ceil((7 - r) / w) of them
    (mutants: storage order, the epoch ignored, set_epoch ignored, every rank all indices, len N // w);
    the batch sampler forwards set_epoch and keeps the short last batch."""
    labels = np.array([0, 0, 0, 0, 0, 1, 1])
    sampler = EpochSampler(labels, False, (3, "full", 0))
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert sorted(first) == sorted(second) == list(range(7))
    assert first != list(range(7)) and second != first
    assert list(EpochSampler(labels, False, (3, "full", 0))) == first
    assert list(EpochSampler(labels, False, (3, "full", 1))) != first
    for world, lengths in ((2, [4, 3]), (3, [3, 2, 2])):
        for rank in range(world):
            part = EpochSampler(labels, False, (3, "full", 0), rank=rank, world=world)
            part.set_epoch(1)
            assert len(part) == lengths[rank] and list(part) == second[rank::world]
    batches = EpochBatchSampler(EpochSampler(labels, False, (3, "full", 0)), 3, drop_last=False)
    batches.set_epoch(1)
    assert [len(b) for b in batches] == [3, 3, 1] and sum(batches, []) == second


def test_balanced_draws_take_each_class_about_equally_often_with_replacement():
    """1800 images of class 0 and 200 of class 1: 2000 draws weighted 1 / class count take class 1 with
    probability 1/2, so 1000 +- 22 (binomial sd); by count weights (mutant) about 24, as a permutation
    (mutant: without replacement) exactly 200. With replacement some images come twice."""
    labels = np.array([0] * 1800 + [1] * 200)
    idx = EpochSampler(labels, True, (0, "full", 0)).indices()
    assert len(idx) == 2000
    ones = int((torch.as_tensor(labels)[idx] == 1).sum())
    assert abs(ones - 1000) < 6 * math.sqrt(2000 * 0.25)
    assert len(set(idx.tolist())) < 2000


class _Recorded(TensorDataset):
    """In memory, noting the indices of each batch it is asked for."""

    def __init__(self, *tensors) -> None:
        super().__init__(*tensors)
        self.asked: list[list[int]] = []

    def __getitem__(self, index):
        self.asked.append(list(index))
        return super().__getitem__(index)


class _RecordedStream(Dataset):
    """Streamed one image at a time, noting each index."""

    def __init__(self, x, y) -> None:
        self.x, self.y, self.asked = x, y, []

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        self.asked.append(int(i))
        return self.x[i], int(self.y[i])


DSA = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": True}


def _tiny(generator_seed: int = 0) -> nn.Module:
    torch.manual_seed(generator_seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 3))


@pytest.mark.parametrize("streamed", [False, True])
def test_each_epoch_trains_on_its_own_sampler_order_and_augmentation_seed(patient_dm, monkeypatch, streamed):
    """Two epochs of 120 images in batches of 16 (seven full, one of 8): epoch e sees the sampler's epoch-e
    indices (a permutation in memory; class-balanced draws streamed, as the recipe asks) and augments
    each batch with a generator seeded by (seed parts, 'augment', e). Mutants: set_epoch not forwarded or
    ignored, one epoch more, the short last batch dropped, the streamed batches shuffled by the loader, the
    recipe's balance ignored, no augmentation, the augmentation seeded by epoch 0."""
    x, y = patient_dm.load_split("train")
    vx, vy = patient_dm.load_split("val")
    seen_seeds: list[int] = []

    def recording(batch, schedule, generator):
        assert schedule.augment == DSA
        seen_seeds.append(generator.initial_seed())
        return batch

    monkeypatch.setattr(full_data, "augment_small", recording)
    recipe = RealRecipe(epochs=2, batch_size=16, balanced=streamed, augment=DSA)
    data = _RecordedStream(x, y) if streamed else _Recorded(x, y)
    parts = (4, "eval", "full", "real", "same", 0)
    train_full_data(_tiny(), data, y.numpy(), in_memory(vx, vy), recipe, 3, parts)
    asked = data.asked if streamed else sum(data.asked, [])
    sizes = [16] * 7 + [8]
    if not streamed:
        assert [len(b) for b in data.asked] == sizes * 2
    want = []
    for epoch in (0, 1):
        sampler = EpochSampler(y.numpy(), streamed, parts)
        sampler.set_epoch(epoch)
        want += sampler.indices().tolist()
    assert asked == want and asked[:120] != asked[120:]  # each epoch its own order
    seeds = [torch_generator(*parts, "augment", e).initial_seed() for e in (0, 1)]
    assert seen_seeds == [seeds[0]] * 8 + [seeds[1]] * 8 and seeds[0] != seeds[1]


def test_the_network_comes_back_in_eval_mode_with_its_best_epochs_weights_and_score(patient_dm):
    """The returned network's balanced accuracy on the validation images (scikit-learn) is the reported
    score; with this seed an epoch before the third is the best, so the weights were reloaded (mutants:
    argmin, accuracy instead of balanced accuracy, a class left out of the mean, no reload, no eval())."""
    x, y = patient_dm.load_split("train")
    vx, vy = patient_dm.load_split("val")
    recipe = RealRecipe(epochs=3, lr=0.05, batch_size=8, optimizer="sgd", momentum=0.9)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(144, 3), nn.Dropout(0.5))
    net, info = train_full_data(net, in_memory(x, y), y.numpy(), in_memory(vx, vy), recipe, 3, (0, "full", 0))
    assert not net.training
    with torch.no_grad():
        pred = net(vx).argmax(1).numpy()
    assert info["val_score"] == pytest.approx(balanced_accuracy_score(vy.numpy(), pred), abs=1e-6)
    assert info["best_epoch"] < recipe.epochs  # so the last epoch's weights were replaced


def test_the_best_epoch_is_the_first_with_the_highest_score_and_its_weights_are_a_copy():
    """Scores 0.5, 0.7, 0.7, 0.6 over epochs 1-4 keep epoch 2 and the weights it had, not the later ones;
    the sanity check's validation is never a candidate (mutants: >=, a 0-based epoch, no copy, the sanity
    check counted)."""
    net = nn.Linear(2, 1)
    best = BestOnValidation()

    def validate(epoch, score, sanity=False):
        metrics = {"val_balanced_accuracy": torch.tensor(score)}
        trainer = SimpleNamespace(sanity_checking=sanity, current_epoch=epoch, callback_metrics=metrics)
        best.on_validation_end(trainer, SimpleNamespace(net=net))

    validate(0, 0.9, sanity=True)
    for epoch, score in enumerate([0.5, 0.7, 0.7, 0.6]):
        with torch.no_grad():
            net.weight.fill_(float(epoch))
        validate(epoch, score)
    assert best.best_epoch == 2 and best.best_score == pytest.approx(0.7)
    assert torch.equal(best.best_state["weight"], torch.ones(1, 2))


def test_the_recipes_optimiser_and_per_step_cosine_schedule():
    """AdamW at the recipe's rate and weight decay; cosine: lr * (1 + cos(pi t / T)) / 2 after step t of
    the trainer's T = 10 steps, stepped per step (mutants: T doubled, per epoch, weight decay dropped);
    no scheduler: the optimiser alone."""
    recipe = RealRecipe(optimizer="adamw", lr=0.02, weight_decay=0.1, scheduler="cosine")
    module = FullDataNet(nn.Linear(2, 2), recipe, 2, (0,))
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]
    assert isinstance(opt, torch.optim.AdamW) and sched["interval"] == "step"
    assert (opt.defaults["lr"], opt.defaults["weight_decay"]) == (0.02, 0.1)
    for t in range(1, 11):
        opt.step()
        sched["scheduler"].step()
        want = 0.02 * (1 + math.cos(math.pi * t / 10)) / 2
        assert opt.param_groups[0]["lr"] == pytest.approx(want, abs=1e-12)
    plain = FullDataNet(nn.Linear(2, 2), RealRecipe(optimizer="sgd", lr=0.1), 2, (0,)).configure_optimizers()
    assert isinstance(plain, torch.optim.SGD) and plain.defaults["lr"] == 0.1


def test_a_zero_rate_is_refused_and_a_non_finite_loss_stops_the_fit_naming_the_epoch(patient_dm):
    """eval.baselines.real.lr must be > 0 (mutant: 0 accepted); a NaN loss raises the project's error with
    the epoch and the key to lower (mutant: the check dropped, the fit goes on)."""
    with pytest.raises(ValueError, match=r"eval.baselines.real.lr must be a finite number > 0, got 0"):
        RealRecipe(lr=0)
    x, y = patient_dm.load_split("train")
    x = x.clone()
    x[0] = float("nan")
    recipe = RealRecipe(epochs=1, batch_size=200)
    with pytest.raises(RealTrainingDivergedError, match=r"real training epoch 0: loss nan; lower eval"):
        train_full_data(_tiny(), in_memory(x, y), y.numpy(), in_memory(x, y), recipe, 3, (0, "full", 0))
