"""A receiving site trains the card's standard schedule in the precision its own CPU computes well.

A card records the producing site's ``eval.standard.precision``; a card from a bfloat16 machine made each
standard-schedule step about 5x slower on a CPU without bfloat16 units. ``audit.receive.standard_precision``
(default: the card's where this CPU computes bfloat16, else float32) replaces it.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import parameters_to_vector

from gastrodistill.sharing.artifact import save_artifact
from gastrodistill.sharing.train_from_artifact import received_schedule, train_from_artifact, train_networks

BF16_CARD = {"training_recipe": {"standard": {"epochs": 3, "lr": 0.05, "precision": "bf16-mixed"}}}


def _pretend_cpu(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


@pytest.mark.parametrize(("native", "expected"), [(True, None), (False, "32-true")])
def test_the_default_keeps_the_cards_precision_only_where_the_cpu_computes_bfloat16(
    compose_cfg, monkeypatch, native, expected
):
    _pretend_cpu(monkeypatch, native)
    cfg = compose_cfg([])
    assert cfg.audit.receive.standard_precision == expected
    cfg = compose_cfg(["audit.receive.standard_precision=bf16-mixed"])  # the command line wins
    assert cfg.audit.receive.standard_precision == "bf16-mixed"


def test_an_override_replaces_only_the_precision_of_the_cards_recipe():
    card_recipe = received_schedule(BF16_CARD)
    assert card_recipe.precision == "bf16-mixed"
    for given, name in (("32-true", "32-true"), ("32", "32-true"), ("bf16", "bf16-mixed")):
        sched = received_schedule(BF16_CARD, given)
        assert sched.precision == name
        assert (sched.epochs, sched.lr) == (card_recipe.epochs, card_recipe.lr) == (3, 0.05)
    with pytest.raises(ValueError, match=r"audit.receive.standard_precision must be one of .*'fp8'"):
        received_schedule(BF16_CARD, "fp8")


def test_networks_train_in_the_precision_given(tmp_path, soft_set, card_fields):
    """float32 given for a bfloat16 card: the weights of a float32 card, bit for bit, and not those of the
    bfloat16 recipe (so the value reaches the training loop, not only the report)."""
    from gastrodistill.sharing.artifact import load_artifact

    def card(precision):
        recipe = {"standard": {**BF16_CARD["training_recipe"]["standard"], "precision": precision}}
        folder = save_artifact(tmp_path / precision, soft_set, {**card_fields, "training_recipe": recipe})
        return load_artifact(folder)

    (distilled, bf16_card), (_, fp32_card) = card("bf16-mixed"), card("32-true")

    def weights(card, precision):
        ((net, diverged),) = train_networks(
            distilled, card, 1, "standard", seed=5, standard_precision=precision
        )
        assert diverged is None
        return parameters_to_vector(net.parameters()).detach()

    overridden, fp32, bf16 = weights(bf16_card, "32-true"), weights(fp32_card, None), weights(bf16_card, None)
    assert torch.equal(overridden, fp32)
    assert not torch.equal(overridden, bf16)


def test_the_report_names_the_precision_trained_in(tmp_path, compose_cfg, dm, soft_set, card_fields):
    card = {**card_fields, "training_recipe": BF16_CARD["training_recipe"]}
    art = save_artifact(tmp_path / "soft", soft_set, card, archive=False)
    site = ["model=lenet", "eval.patient.threshold_fallback=cv"]
    cfg = compose_cfg([*site, "audit.receive.standard_precision=32"])
    result = train_from_artifact(art, cfg, dm, tmp_path / "site", n_networks=1, schedule="standard")
    assert result["precision"] == "32-true"
    assert json.loads((tmp_path / "site" / "receive.json").read_text())["precision"] == "32-true"
    assert "schedule `standard` (precision `32-true`)" in (tmp_path / "site" / "receive.md").read_text()
    cfg = compose_cfg([*site, "audit.receive.standard_precision=null"])
    result = train_from_artifact(art, cfg, dm, None, n_networks=1, schedule="replay")
    assert result["precision"] == "32-true"  # the replay trains in float32 whatever the card says
