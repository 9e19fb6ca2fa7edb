"""``check_distilled_set`` field by field on stand-ins of a set and a data module: each difference named with
both values, every difference in one message, the normalisation's tolerance, the recorded data source and
the ZCA filter's size. (Real sets and data modules: ``test_engine.py``, ``test_zca_consistency.py``.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from _eval_sets import CLASSES

from gastrodistill.evaluation.checks import DistilledSetMismatch, check_distilled_set, check_distilled_sets
from gastrodistill.models.zca import ZCA_KEY

MEAN, STD = [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]


def data(**kw):
    def source_hash():
        return "d" * 64

    fields = dict(image_shape=(3, 12, 12), num_classes=3, class_names=CLASSES, mean=MEAN, std=STD, zca=None)
    return SimpleNamespace(**{**fields, "source_hash": source_hash, "seed": 0, **kw})


def distilled(**kw):
    fields = dict(image_shape=(3, 12, 12), num_classes=3, class_names=CLASSES, mean=MEAN, std=STD)
    return SimpleNamespace(**{**fields, "data_source_hash": None, "model_config": {}, **kw})


def problems(ds, dm) -> list[str]:
    """The named differences, the message's text between its opening and its advice."""
    with pytest.raises(DistilledSetMismatch) as info:
        check_distilled_set("soft", ds, dm)
    text = str(info.value)
    head = "distilled set 'soft' does not match the data module: "
    assert text.startswith(head) and ". Evaluate or audit it with the data it was distilled from" in text
    return text[len(head) : text.index(". Evaluate or audit")].split("; ")


def test_each_difference_is_named_with_both_values():
    """Mutants: channels compared by '>', the image size by its width alone, the number of classes left to
    the names' check, the std not compared, a set without mean and std not refused."""
    check_distilled_set("soft", distilled(), data())
    assert problems(distilled(image_shape=(1, 12, 12)), data()) == ["channels: set 1, data 3"]
    assert problems(distilled(image_shape=(3, 16, 12)), data()) == ["image size: set (16, 12), data (12, 12)"]
    two = distilled(num_classes=2, class_names=CLASSES[:2])
    assert problems(two, data()) == ["number of classes: set 2, data 3"]
    assert problems(distilled(class_names=["a", "b", "c"]), data()) == [
        f"class names: set ['a', 'b', 'c'], data {CLASSES}"
    ]
    assert problems(distilled(std=[0.2, 0.25, 0.31]), data()) == [
        "normalisation std: set [0.2, 0.25, 0.31], data [0.2, 0.25, 0.3]"
    ]
    assert problems(distilled(mean=None, std=None), data()) == [
        "normalisation mean: the set records none (data [0.5, 0.4, 0.3])",
        "normalisation std: the set records none (data [0.2, 0.25, 0.3])",
    ]


def test_every_difference_is_in_one_message():
    """Mutant: the first difference alone."""
    ds = distilled(image_shape=(1, 16, 16), num_classes=2, class_names=CLASSES[:2], mean=[0.1])
    assert problems(ds, data()) == [
        "channels: set 1, data 3",
        "image size: set (16, 16), data (12, 12)",
        "number of classes: set 2, data 3",
        "normalisation mean: set [0.1], data [0.5, 0.4, 0.3]",
    ]


def test_the_normalisation_is_compared_per_channel_within_its_tolerance():
    """One channel's mean equal to every channel of the data's is still another normalisation (mutant: the
    lengths not compared, numpy broadcasts); 1e-3 relative is another normalisation, 1e-8 rounding
    (mutant: rtol 1e-2)."""
    flat = data(mean=[0.5, 0.5, 0.5])
    assert problems(distilled(mean=[0.5]), flat) == ["normalisation mean: set [0.5], data [0.5, 0.5, 0.5]"]
    assert problems(distilled(mean=[0.5 * 1.001, 0.4, 0.3]), data()) == [
        "normalisation mean: set [0.5005, 0.4, 0.3], data [0.5, 0.4, 0.3]"
    ]
    check_distilled_set("soft", distilled(mean=[v + 1e-8 for v in MEAN]), data())


def test_the_data_source_is_compared_only_when_the_set_records_one():
    """The data's hash is not computed for a set that records none (it reads the whole store; mutant: always
    computed), equal hashes pass, other ones are refused."""

    def never():
        raise AssertionError("source_hash computed for a set that records no source")

    check_distilled_set("soft", distilled(), data(source_hash=never))
    check_distilled_set("soft", distilled(data_source_hash="d" * 64), data())
    with pytest.raises(DistilledSetMismatch) as info:
        check_distilled_set("soft", distilled(data_source_hash="e" * 64), data())
    assert (
        f"match the data module: data: the set was distilled from other data (data source hash {'e' * 12}..."
        in (str(info.value))
    )


def test_a_filter_of_another_size_than_the_datas_is_refused_by_its_size():
    """A 5 px filter against the data's 3 px: named with both sizes (mutant: shapes not compared, numpy's
    broadcasting error instead); the data's own filter passes."""
    kernel = torch.rand(3, 3, 3, generator=torch.Generator().manual_seed(0))
    dm = data(zca="LocalZCA(kernel_size=3)", zca_kernel=lambda: kernel)
    check_distilled_set("soft", distilled(model_config={ZCA_KEY: kernel.tolist()}), dm)
    wide = distilled(model_config={ZCA_KEY: torch.zeros(3, 5, 5).tolist()})
    assert problems(wide, dm) == [
        "ZCA whitening: the set's filter (5 px) is not the one data.zca gives (3 px, from "
        "'LocalZCA(kernel_size=3)' and data.seed 0)"
    ]


def test_every_set_of_a_study_is_checked():
    """Mutant: the first set alone."""
    with pytest.raises(DistilledSetMismatch, match="distilled set 'hard' does not match"):
        check_distilled_sets({"soft": distilled(), "hard": distilled(std=[1.0, 1.0, 1.0])}, data())
