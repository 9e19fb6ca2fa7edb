"""``reproduce.parallel_modes``: the soft and hard runs in two processes give the sets of one process."""

from __future__ import annotations

import torch

from gastrodistill.distillation.distilled_set import DistilledSet


def test_modes_in_two_processes_equal_one_process(compose_cfg, tmp_path):
    from gastrodistill.cli.reproduce import run

    run(compose_cfg(["experiment=tiny", "stages=[generate,patches]"]))
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"workers{workers}"
        run(
            compose_cfg(
                [
                    "experiment=tiny",
                    "stages=[distill]",
                    f"paths.output_dir={out}",
                    f"+reproduce.parallel_modes={workers}",
                ]
            )
        )
        outs[workers] = out
    for mode in ("soft", "hard"):
        one = DistilledSet.load(outs[1] / "distill" / mode)
        two = DistilledSet.load(outs[2] / "distill" / mode)
        assert one.mode == two.mode == mode
        for name in ("images", "label_logits", "raw_lrs"):
            torch.testing.assert_close(getattr(two, name), getattr(one, name), rtol=0, atol=0)
        # each process wrote its own logs and its own summary
        assert (outs[2] / "distill" / mode / "summary.json").is_file()
        assert (outs[2] / "logs" / "csv" / f"distill-{mode}" / "metrics.csv").is_file()
