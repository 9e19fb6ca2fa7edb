"""The Hydra entry point end to end in a fresh process: a 2-job ``-m`` sweep on two real digit classes."""

from __future__ import annotations

from pathlib import Path

from _distill_helpers import TINY, run_distill_cli

from gastrodistill.distillation.distilled_set import DistilledSet

HERE = Path(__file__).resolve().parent


def test_cli_multirun_sweep_on_two_classes(tmp_path):
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "digits01.yaml").write_text(
        "_target_: gastrodistill.data.digits.DigitsDataModule\nclasses: [0, 1]\nn_val: 40\nn_test: 40\n"
    )
    proc = run_distill_cli(
        tmp_path,
        "-m",
        "distill.ipc=1,2",
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "data=digits01",
        f"paths.root_dir={tmp_path}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "logger=csv",
        *(o for o in TINY if not o.startswith("distill.ipc=")),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for job, ipc in ((0, 1), (1, 2)):
        out = tmp_path / "sweep" / str(job) / "soft"
        ds = DistilledSet.load(out)
        assert (ds.num_classes, ds.ipc) == (2, ipc)
        assert ds.images.shape == (2 * 2 * ipc, 1, 8, 8)
        assert ds.class_names == ["0", "1"]
        assert (out / "grid.png").is_file() and (out / "run_info.json").is_file()
        assert f"ipc: {ipc}" in (out / "config.yaml").read_text()
    assert "distilled soft set" in proc.stdout
