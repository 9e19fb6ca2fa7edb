"""``reproduce.parallel_modes``: the soft and hard runs in two processes give the sets of one process."""

from __future__ import annotations

import torch

from gastrodistill.distillation.distilled_set import DistilledSet


def _run_tiny(compose_cfg, out, workers: int, stages: str, extra: list[str] | None = None) -> None:
    """``reproduce`` of the tiny experiment's ``stages`` into ``out`` with ``workers`` mode processes."""
    from gastrodistill.cli.reproduce import run

    overrides = ["experiment=tiny", f"stages={stages}", f"paths.output_dir={out}"]
    run(compose_cfg([*overrides, f"reproduce.parallel_modes={workers}", *(extra or [])]))


def test_modes_in_two_processes_equal_one_process(compose_cfg, tmp_path):
    from gastrodistill.cli.reproduce import run

    run(compose_cfg(["experiment=tiny", "stages=[generate,patches]"]))
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"workers{workers}"
        _run_tiny(compose_cfg, outs[workers], workers, "[distill]")
    for mode in ("soft", "hard"):
        one = DistilledSet.load(outs[1] / "distill" / mode)
        two = DistilledSet.load(outs[2] / "distill" / mode)
        assert one.mode == two.mode == mode
        for name in ("images", "label_logits", "raw_lrs"):
            torch.testing.assert_close(getattr(two, name), getattr(one, name), rtol=0, atol=0)
        # each process wrote its own logs and its own summary
        assert (outs[2] / "distill" / mode / "summary.json").is_file()
        assert (outs[2] / "logs" / "csv" / f"distill-{mode}" / "metrics.csv").is_file()


def test_one_shared_teacher_and_the_reference_ahead_give_the_single_process_results(
    compose_cfg, tmp_path, capsys
):
    """With texture matching under a teacher, two processes train the teacher once (the modes load it) and
    the evaluation's reference network beside it; the sets, every record and the reference weights equal
    those of one process, which trains the teacher once in the parent and the reference in the evaluation,
    and a soft run that trains its own teacher gives the same set."""
    import json

    import numpy as np
    from hydra.utils import instantiate
    from safetensors.torch import load_file

    from gastrodistill.cli.reproduce import run
    from gastrodistill.distillation.run import run_distillation
    from gastrodistill.evaluation.report import load_record

    matching = [
        "distill.texture_matching.steps=3",
        "distill.texture_matching.features=teacher",
        "distill.texture_matching.teacher_labels=1.0",
        "distill.texture_matching.progress=false",
        "eval.baselines.real.precision=32-true",
    ]
    run(compose_cfg(["experiment=tiny", "stages=[generate,patches]"]))
    outs = {}
    for workers in (1, 2):
        outs[workers] = tmp_path / f"workers{workers}"
        _run_tiny(compose_cfg, outs[workers], workers, "[distill,evaluate]", matching)
        said = capsys.readouterr().out
        assert "texture-matching teacher (once, for every mode)" in said  # one process trains it once too
        shared = "texture-matching teacher (once, for every mode) beside the evaluation's reference network"
        assert (shared in said) == (workers == 2)
    # independently: a soft run that trains its own teacher gives the sets the shared teacher gave
    own = tmp_path / "own"
    cfg = compose_cfg(["experiment=tiny", f"paths.output_dir={own}", *matching])
    dm = instantiate(cfg.data)
    own_soft = run_distillation(cfg, dm, own / "distill", mode="soft", resume=None)
    for name in ("images", "label_logits", "raw_lrs"):
        want = getattr(DistilledSet.load(outs[1] / "distill" / "soft"), name)
        torch.testing.assert_close(getattr(own_soft, name), want, rtol=0, atol=0)
    for mode in ("soft", "hard"):
        one = DistilledSet.load(outs[1] / "distill" / mode)
        two = DistilledSet.load(outs[2] / "distill" / mode)
        for name in ("images", "label_logits", "raw_lrs"):
            torch.testing.assert_close(getattr(two, name), getattr(one, name), rtol=0, atol=0)
        summary = json.loads((outs[2] / "distill" / mode / "summary.json").read_text())
        assert summary["texture_matching_steps"] == 3
    # the soft labels started at the shared teacher's predictions (not one-hot x scale)
    soft = DistilledSet.load(outs[2] / "distill" / "soft")
    assert not torch.allclose(soft.label_logits, DistilledSet.load(outs[2] / "distill" / "hard").label_logits)
    # the handed-over teacher is gone; the reference network is where the evaluation keeps it
    assert not list((outs[2] / "distill").glob(".teacher-*"))
    ref = {k: load_file(str(outs[w] / "eval" / "reference.safetensors")) for k, w in (("one", 1), ("two", 2))}
    assert ref["one"].keys() == ref["two"].keys()
    for k in ref["one"]:
        torch.testing.assert_close(ref["two"][k], ref["one"][k], rtol=0, atol=0)
    records = {w: sorted((outs[w] / "eval" / "records").glob("*.npz")) for w in (1, 2)}
    assert [p.name for p in records[2]] == [p.name for p in records[1]]
    assert "full__real__same__0.npz" in [p.name for p in records[2]]
    for a, b in zip(records[1], records[2], strict=True):
        one, two = load_record(a), load_record(b)
        assert one.keys() == two.keys(), a.name
        for k, v in one.items():
            np.testing.assert_array_equal(np.asarray(two[k]), np.asarray(v), err_msg=f"{a.name}: {k}")
