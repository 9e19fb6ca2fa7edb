"""A received card names code only where the receiver allows it: nothing nested, no interpolation.

The card's seal is a checksum, not a signature, so each test edits a card and seals it again, as anyone
could. Every consumer of an artifact (``gastrodistill-train-from-artifact``, ``gastrodistill-evaluate`` and
``gastrodistill-audit``) loads it through ``load_artifact``, which must refuse such a card before Hydra
builds anything: the tests check that the file the planted node would write does not appear."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gastrodistill.sharing.artifact import ArtifactError, load_artifact, save_artifact
from gastrodistill.sharing.card import seal
from gastrodistill.utils.safe_config import UnsafeNodeError, check_plain, check_received_node

DSA = {"_target_": "gastrodistill.distillation.augment.DSA", "flip": True, "shift_px": 8}


def _writer(target: Path) -> dict:
    """A node that writes a file when Hydra instantiates it (a project function, past Hydra's blocklist)."""
    return {"_target_": "gastrodistill.utils.atomic.write_text_atomic", "target": str(target), "text": "x"}


def _resealed(artifact: Path, edit) -> Path:
    card = json.loads((artifact / "card.json").read_text())
    edit(card)
    (artifact / "card.json").write_text(
        json.dumps(seal({k: v for k, v in card.items() if k != "card_sha256"}))
    )
    return artifact


@pytest.fixture
def artifact(tmp_path, soft_set, card_fields):
    recipe = {"distill": {"steps": 2, "epochs": 1}, "replay_augment": DSA, "standard": {"epochs": 3}}
    return save_artifact(tmp_path / "art", soft_set, {**card_fields, "training_recipe": recipe})


def test_the_unedited_card_loads(artifact):
    _, card = load_artifact(artifact)
    assert card["training_recipe"]["replay_augment"] == DSA


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda c, w: c["architecture"].update(act=w), "architecture.act._target_"),
        (lambda c, w: c["training_recipe"]["replay_augment"].update(flip=w), "replay_augment.flip._target_"),
        (
            lambda c, w: c["training_recipe"]["standard"].update(optimizer=w),
            "training_recipe.standard.optimizer",
        ),
        (
            lambda c, w: c["training_recipe"]["standard"].update(augment={**DSA, "shift_px": [w]}),
            r"standard.augment.shift_px\[0\]._target_",
        ),
        (
            lambda c, w: c.update(architecture={**w, "_partial_": True}),
            "architecture._target_ .*write_text_atomic",
        ),
        (
            lambda c, w: c["training_recipe"].update(replay_augment=w),
            "replay_augment._target_ .*write_text_atomic",
        ),
    ],
)
def test_a_card_that_names_other_code_is_refused_before_anything_is_built(tmp_path, artifact, edit, field):
    planted = tmp_path / "planted.txt"
    _resealed(artifact, lambda card: edit(card, _writer(planted)))
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)
    assert not planted.exists()


@pytest.mark.parametrize(
    "target",
    [
        # Hydra follows a dotted name through attributes: each of these starts like a model and reached a
        # library function through a module the model files import (a prefix check let them all pass)
        "gastrodistill.models.init.torch.hub.load",
        "gastrodistill.models.preflight.hydra.utils.logging.basicConfig",
        "gastrodistill.models.alexnet.nn.functional.np.savez",
        "gastrodistill.models.ConvNet.__init__",
        "gastrodistill.models.initialize",
    ],
)
def test_only_the_exact_network_classes_may_be_named(tmp_path, artifact, target):
    planted = tmp_path / "planted.npz"
    arch = {"_target_": target, "_partial_": True, "file": str(planted)}
    _resealed(artifact, lambda card: card.update(architecture=arch))
    with pytest.raises(
        ArtifactError, match="is not one of the project's networks .*gastrodistill.models.ConvNet"
    ):
        load_artifact(artifact)
    assert not planted.exists()


def test_an_interpolation_on_a_card_is_refused(artifact):
    _resealed(artifact, lambda card: card["architecture"].update(act="${oc.env:HOME}"))
    with pytest.raises(ArtifactError, match=r"architecture.act = '\$\{oc.env:HOME\}' is an interpolation"):
        load_artifact(artifact)


def test_the_evaluation_and_the_audit_refuse_it_too(tmp_path, artifact):
    """``gastrodistill-evaluate`` and ``gastrodistill-audit`` take artifacts through ``load_sets``; the
    architecture of a received set used to be built whatever its target."""
    from gastrodistill.cli.audit import load_sets

    planted = tmp_path / "planted.txt"
    _resealed(artifact, lambda card: card.update(architecture={**_writer(planted), "_partial_": True}))
    with pytest.raises(ArtifactError, match="is not one of the project's networks"):
        load_sets({"soft": str(artifact)}, key="eval.distilled_dirs")
    assert not planted.exists()


def test_a_card_argument_this_version_does_not_know_is_a_message(artifact):
    from gastrodistill.sharing.train_from_artifact import model_factory

    _, card = load_artifact(_resealed(artifact, lambda card: card["architecture"].update(dropout=0.1)))
    with pytest.raises(
        ArtifactError, match="card architecture cannot be built .*dropout.*newer gastrodistill"
    ) as info:
        model_factory(card)
    # named by the constructor's signature, not by the wording of Python's TypeError
    assert "dropout: not an argument of this version's LeNet" in str(info.value)
    # a value no network takes is no newer card: the message says the card is malformed
    _, card = load_artifact(
        _resealed(
            artifact,
            lambda card: card["architecture"].pop("dropout") and card["architecture"].update(act="nope"),
        )
    )
    with pytest.raises(ArtifactError) as info:
        model_factory(card)
    assert "a malformed card" in str(info.value) and "newer gastrodistill" not in str(info.value)


def test_check_plain_and_check_received_node():
    check_plain({"a": [1, 2.5, None, True, "relu"], "b": {"c": "x"}}, "node")
    for bad, where in (
        ({"a": {"_partial_": True}}, "node.a._partial_"),
        ({"a": [{"_args_": [1]}]}, r"node.a\[0\]._args_"),
        ({"a": "${now:%H}"}, "node.a = "),
        ({"a": object()}, "node.a holds a object"),
    ):
        with pytest.raises(UnsafeNodeError, match=where):
            check_plain(bad, "node")
    ok = check_received_node({"_target_": "pkg.A", "_partial_": True, "w": 3}, "n", lambda t: t == "pkg.A")
    assert ok == {"_target_": "pkg.A", "_partial_": True, "w": 3}
    with pytest.raises(UnsafeNodeError, match="n._target_ 'pkg.B' is not pkg.A"):
        check_received_node({"_target_": "pkg.B"}, "n", lambda t: t == "pkg.A", "pkg.A")
    with pytest.raises(UnsafeNodeError, match="may not name code"):
        check_received_node({"_target_": "pkg.A", "epochs": 3}, "n", None)
    with pytest.raises(UnsafeNodeError, match="must be a mapping"):
        check_received_node(["x"], "n", None)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        # no path in it for the writer's checks to catch: the code check alone refuses it
        (
            lambda c: c["training_recipe"]["standard"].update(optimizer={"_target_": "builtins.print"}),
            r"training_recipe.standard.optimizer._target_",
        ),
        (
            lambda c: c["training_recipe"]["replay_augment"].update(_partial_="no"),
            r"training_recipe.replay_augment._partial_ must be true or false",
        ),
    ],
)
def test_code_or_a_hydra_switch_without_a_path_in_it_is_refused(artifact, edit, field):
    _resealed(artifact, edit)
    with pytest.raises(ArtifactError, match=field):
        load_artifact(artifact)


@pytest.mark.parametrize("key", ["_target_", "_partial_", "_args_", "_recursive_", "_convert_"])
def test_each_key_hydra_acts_on_is_refused_below_the_top(key):
    """Every one of Hydra's keys, not only the three the card tests plant (kills a key left out)."""
    with pytest.raises(UnsafeNodeError, match=rf"node\.a\.{key}: a nested {key} would make Hydra"):
        check_plain({"a": {key: "x"}}, "node")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"act": "relu ${oc.env:HOME}"}, "node.act = 'relu "),  # an interpolation inside the text
        ({"act": "${oc.env:HOME}/x"}, "node.act = "),  # one that does not end the text
        ((1, {"_args_": [2]}), r"node\[1\]._args_"),  # a tuple, as a caller's Python value may be
        ({"blob": b"\x00"}, "node.blob holds a bytes"),
    ],
)
def test_interpolations_anywhere_in_a_text_tuples_and_bytes_are_checked(value, field):
    with pytest.raises(UnsafeNodeError, match=field):
        check_plain(value, "node")


def test_a_node_that_must_name_allowed_code_may_not_leave_it_out_or_name_an_empty_one():
    """With a rule for targets, a node without ``_target_`` is refused (None is no allowed target); without
    one, even an empty ``_target_`` is refused (kills the checks read as 'a target given', 'a true
    target')."""
    allowed = lambda t: t == "pkg.A"  # noqa: E731
    with pytest.raises(UnsafeNodeError, match="n._target_ None is not pkg.A; refusing to build it"):
        check_received_node({"w": 3}, "n", allowed, "pkg.A")
    with pytest.raises(UnsafeNodeError, match="n._target_ '': this node may not name code to build"):
        check_received_node({"_target_": "", "w": 3}, "n", None)
    assert check_received_node({"w": 3}, "n", None) == {"w": 3}
