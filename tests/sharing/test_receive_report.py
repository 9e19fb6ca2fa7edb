"""The receiving site's numbers without training: its statistics over networks, the comparison with the
card's figures, the workload limits a card is held to, and the notes of ``receive.md``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gastrodistill.sharing.artifact import ArtifactError
from gastrodistill.sharing.train_from_artifact import (
    _resize_note,
    _stats,
    card_network_parameters,
    card_training_steps,
    check_card_workload,
    compare_published,
    render,
    reported_metrics,
)


def _card(steps: int = 2, epochs: int = 3) -> dict:
    """The fields of a received card that the workload checks read: a LeNet on 1 x 16 x 16 images,
    3 classes."""
    return {
        "architecture": {"_target_": "gastrodistill.models.LeNet", "act": "relu", "init": "xavier"},
        "distilled": {
            "image_shape": [1, 16, 16],
            "num_classes": 3,
            "steps": steps,
            "epochs": epochs,
            "ipc": 2,
            "n_images": steps * 3 * 2,
        },
        "training_recipe": {},
    }


def test_the_sites_statistics_are_over_the_networks_with_a_finite_value():
    """A network without a patient AUC (NaN: one diagnosis among its test patients) is left out of that
    mean and its population std; a metric no network has gets no entry."""
    records = [
        {"patient_hm": 0.6, "patient_auc": 0.7},
        {"patient_hm": 0.8, "patient_auc": math.nan},
        {"patient_hm": 0.9, "patient_auc": 0.9},
    ]
    out = _stats(records, ("patient_hm", "patient_auc", "patch_auc"))
    assert out["patient_hm_mean"] == pytest.approx(np.mean([0.6, 0.8, 0.9]))
    assert out["patient_hm_std"] == pytest.approx(np.std([0.6, 0.8, 0.9]))
    assert out["patient_auc_mean"] == pytest.approx(0.8) and out["patient_auc_std"] == pytest.approx(0.1)
    assert "patch_auc_mean" not in out and "patch_auc_std" not in out


def test_a_card_without_a_network_count_lends_its_std():
    """The card's n_networks is read "when it gives one": without it, its std counts, so one network at the
    site is judged against it (0.05 <= 2 x 0.03 + 0.01), not "cannot tell"."""
    site = {"patient_hm_mean": 0.70, "patient_hm_std": 0.0}
    card = {"patient_hm_mean": 0.75, "patient_hm_std": 0.03}
    assert compare_published(site, card, site_networks=1)["patient_hm"]["within_noise"] is True
    card["patient_hm_std"] = 0.015  # 0.05 > 2 x 0.015 + 0.01
    assert compare_published(site, card, site_networks=1)["patient_hm"]["within_noise"] is False


def test_replay_steps_are_the_learned_schedule_steps_times_epochs():
    assert card_training_steps(_card(steps=2, epochs=3), "replay") == (6, "2 steps x 3 epochs")
    check_card_workload(_card(steps=2, epochs=3), "replay", None, 6)  # exactly the limit: allowed
    with pytest.raises(
        ArtifactError, match=r"trains each network for 6 optimiser steps \(2 steps x 3 epochs"
    ):
        check_card_workload(_card(steps=2, epochs=3), "replay", None, 5)


def test_standard_steps_are_epochs_times_batches():
    """12 images in batches of 5: 3 batches an epoch, 7 epochs."""
    card = _card()
    card["training_recipe"] = {"standard": {"epochs": 7, "batch_size": 5}}
    assert card_training_steps(card, "standard") == (21, "7 epochs of 3 batches")
    check_card_workload(card, "standard", None, 21)
    with pytest.raises(ArtifactError, match="21 optimiser steps"):
        check_card_workload(card, "standard", None, 20)


def test_the_parameter_limit_is_the_networks_own_count():
    """Counted on the meta device, the count is that of the network built for the card's shape; a limit of
    exactly that passes, one less is refused naming the limit."""
    from gastrodistill.models import LeNet

    n = sum(p.numel() for p in LeNet(in_channels=1, num_classes=3, image_size=(16, 16)).parameters())
    card = _card()
    assert card_network_parameters(card) == n
    check_card_workload(card, "replay", n, None)
    with pytest.raises(ArtifactError, match=rf"has {n:,} parameters .*max_network_parameters={n - 1:,}\)"):
        check_card_workload(card, "replay", n - 1, None)


def test_a_site_image_of_the_same_aspect_ratio_is_scaled_not_stretched():
    """24 x 12 px patches for 16 x 8 px images: scaled (the storage-size advice), not an aspect change."""
    note = "".join(_resize_note({"site_image_size": [24, 12], "artifact_image_size": [16, 8]}))
    assert "aspect ratio" not in note and "Store the site's patches at 16 px" in note
    note = "".join(_resize_note({"site_image_size": [24, 24], "artifact_image_size": [16, 8]}))
    assert "which changed their aspect ratio" in note


def test_the_report_names_the_zca_filters_side_and_lists_class_recalls_in_class_order():
    """A [C, k, k] = [3, 5, 5] filter is 5 px; the recalls follow the card's classes, not the alphabet."""
    from gastrodistill.sharing.train_from_artifact import _zca_side

    kernel = torch.zeros(3, 5, 5).tolist()
    assert _zca_side({"architecture": {"zca_kernel": kernel}}) == 5
    assert _zca_side({"architecture": {}}) is None
    assert reported_metrics(["zeta", "alpha"])[-2:] == ("recall_zeta", "recall_alpha")
    result = {
        "artifact": {"name": "soft"},
        "schedule": "replay",
        "precision": "32-true",
        "n_networks": 2,
        "zca_filter_px": 5,
        "metrics": {"patch_accuracy_mean": 0.5, "patch_accuracy_std": 0.1},
        "published": {},
    }
    assert "The networks start with the card's 5 px ZCA whitening filter." in render(result)


def test_the_noise_rule_holds_at_its_edge_and_its_slack_is_one_hundredth():
    """|difference| <= 2 x the larger std + 0.01: a difference of exactly 2 x 0.125 + 0.01 is within noise,
    and with no spread on either side 0.015 is not (a slack of 0.02 would read it as noise)."""
    site = {"patient_hm_mean": 0.5, "patient_hm_std": 0.125}
    card = {"patient_hm_mean": 0.24, "patient_hm_std": 0.0, "n_networks": 2}
    assert 0.5 - 0.24 == 2 * 0.125 + 0.01  # exact in binary
    assert compare_published(site, card, site_networks=2)["patient_hm"]["within_noise"] is True
    site, card = {"patient_hm_mean": 0.5, "patient_hm_std": 0.0}, {**card, "patient_hm_mean": 0.485}
    assert compare_published(site, card, site_networks=2)["patient_hm"]["within_noise"] is False
