"""benchmarks/teacher_epoch_labels.py: the teacher's weights after every epoch, the relabelled copies
against the same teacher trained again independently, the label summary against numpy, and refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _benchmarks import load_benchmark
from hydra.utils import instantiate

from gastrodistill.distillation.distilled_set import DistilledSet
from gastrodistill.distillation.run import network_factory, train_texture_teacher

SMALL = ["data=digits", "model.depth=1", "model.width=8", "eval.baselines.real.epochs=2"]


def _bench():
    return load_benchmark("teacher_epoch_labels")


def _soft_set(dm, folder, mode: str = "soft"):
    ds = DistilledSet(dm.num_classes, 1, 1, 2, dm.image_shape, mode=mode, temperature=2.0)
    ds.init_noise(torch.Generator().manual_seed(3))
    ds.save(folder)
    return ds


def test_label_summary_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=7)
    labels = np.array([0, 0, 1, 2, 2, 2, 1])
    entropy, means = _bench().label_summary(torch.tensor(probs), torch.tensor(labels), 3)
    assert entropy == pytest.approx(float(np.mean([-(p * np.log(p)).sum() for p in probs])))
    for c in range(3):
        assert means[c] == pytest.approx(probs[labels == c].mean(0), abs=5e-4)


def test_copies_carry_the_labels_of_the_teacher_at_that_epoch(compose_cfg, tmp_path) -> None:
    """The copy for epoch 1 holds softmax(epoch-1 teacher) as its targets, whatever the set's temperature,
    and the set's own images and rates; the teacher rebuilt here with its own callback keeps both epochs
    and returns the best one's weights."""
    bench = _bench()
    cfg = compose_cfg(SMALL)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    original = _soft_set(dm, tmp_path / "run" / "soft")
    out = tmp_path / "early"
    argv = ["--set", str(tmp_path / "run" / "soft"), "--out", str(out), "--epochs", "1", "--", *SMALL]
    assert bench.main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["e1"]

    factory = network_factory(cfg, dm)
    kept = bench.EpochWeights()
    teacher = train_texture_teacher(cfg, dm, factory, callbacks=[kept])
    assert sorted(kept.by_epoch) == [1, 2]
    best = max(kept.by_epoch, key=lambda e: kept.by_epoch[e][1])  # the first of equal scores, as kept
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, kept.by_epoch[best][0][key]), key
    early = factory()
    early.load_state_dict(kept.by_epoch[1][0])
    with torch.no_grad():
        expected = torch.softmax(early.eval()(original.images), 1)
    copy_ = DistilledSet.load(out / "e1" / "soft")
    torch.testing.assert_close(copy_.soft_targets().detach(), expected, atol=1e-5, rtol=0)
    assert torch.equal(copy_.images, original.images) and torch.equal(copy_.raw_lrs, original.raw_lrs)
    assert not torch.allclose(copy_.soft_targets(), original.soft_targets(), atol=1e-3)
    later = factory()
    later.load_state_dict(kept.by_epoch[2][0])
    with torch.no_grad():  # the copy is epoch 1's, not epoch 2's (nor the best epoch's, whichever it is)
        assert not torch.allclose(
            copy_.soft_targets(), torch.softmax(later.eval()(original.images), 1), atol=1e-3
        )


def test_the_ensemble_copy_carries_the_mean_prediction_of_teachers_of_the_following_seeds(
    compose_cfg, tmp_path
) -> None:
    """--ensemble 2: the copy's targets are the mean of softmax(teacher of the run's seed) and
    softmax(teacher of seed + 1), each trained again here independently; the images and rates are the
    set's, and the mean differs from either teacher alone."""
    cfg = compose_cfg(SMALL)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    original = _soft_set(dm, tmp_path / "run" / "soft")
    argv = ["--set", str(tmp_path / "run" / "soft"), "--out", str(tmp_path / "o"), "--ensemble", "2"]
    assert _bench().main([*argv, "--", *SMALL]) == 0
    expected = []
    for seed in (0, 1):
        c = compose_cfg([*SMALL, f"seed={seed}"])
        d = instantiate(c.data)
        d.prepare_data()
        d.setup()
        with torch.no_grad():
            teacher = train_texture_teacher(c, d, network_factory(c, d))
            expected.append(torch.softmax(teacher(original.images), 1))
    copy_ = DistilledSet.load(tmp_path / "o" / "ensemble2" / "soft")
    mean = (expected[0] + expected[1]) / 2
    torch.testing.assert_close(copy_.soft_targets().detach(), mean, atol=1e-5, rtol=0)
    assert torch.equal(copy_.images, original.images) and torch.equal(copy_.raw_lrs, original.raw_lrs)
    assert not torch.allclose(expected[0], expected[1], atol=1e-3)


@pytest.mark.parametrize(
    ("mode", "epochs", "message"),
    [("soft", "3", "--epochs must lie in 1..2"), ("hard", "1", "a hard-label set; soft labels need")],
)
def test_refusals_say_what_to_do(compose_cfg, tmp_path, capsys, mode, epochs, message) -> None:
    cfg = compose_cfg(SMALL)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    _soft_set(dm, tmp_path / "set", mode)
    argv = ["--set", str(tmp_path / "set"), "--out", str(tmp_path / "o"), "--epochs", epochs, "--", *SMALL]
    with pytest.raises(SystemExit) as info:
        _bench().main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_no_set_is_overwritten_and_a_missing_set_is_one_line(compose_cfg, tmp_path, capsys) -> None:
    """An --out that holds the input set (or an earlier copy) is refused before the teacher trains, the
    set's bytes unchanged; a folder without a set is an argparse error, not a traceback."""
    cfg = compose_cfg(SMALL)
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup()
    setdir = tmp_path / "e1" / "soft"
    _soft_set(dm, setdir)
    before = (setdir / "distilled.safetensors").read_bytes()
    for argv, message in (
        (["--set", str(setdir), "--out", str(tmp_path), "--epochs", "1"], "choose another --out"),
        (["--set", str(tmp_path / "none"), "--out", str(tmp_path / "o")], f"--set {tmp_path / 'none'}: "),
        (["--set", str(setdir), "--out", str(tmp_path / "o"), "--ensemble", "1"], "at least 2 teachers"),
    ):
        with pytest.raises(SystemExit) as info:
            _bench().main([*argv, "--", *SMALL])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert (setdir / "distilled.safetensors").read_bytes() == before
