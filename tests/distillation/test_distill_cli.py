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


def test_the_command_distils_the_configured_data_into_its_run_folder_and_says_what_it_made(
    tmp_path, monkeypatch, capsys
):
    """main() in-process with the distillation stubbed: the data module of ``cfg.data`` and the run folder
    go to run_distillation; the closing line gives the set's shape, its learning rates' range (min..max,
    four decimals) and its folder <run>/<mode>."""
    import sys

    import torch
    from hydra.core.global_hydra import GlobalHydra

    from gastrodistill.cli import distill
    from gastrodistill.distillation import run

    seen = []

    class Made:
        mode = "hard"
        images = torch.zeros(6, 1, 8, 8)

        def lrs(self):
            return torch.tensor([0.02, 0.00512, 0.0125])

    def stub(cfg, datamodule, out):
        seen.append((type(datamodule).__name__, str(out)))
        return Made()

    monkeypatch.setattr(run, "run_distillation", stub)
    run_dir = tmp_path / "run"
    argv = ["gastrodistill-distill", "data=digits", f"paths.root_dir={tmp_path}", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", [*argv, "logger=csv"])
    GlobalHydra.instance().clear()
    try:
        distill.main()
    finally:
        GlobalHydra.instance().clear()
    assert seen == [("DigitsDataModule", str(run_dir))]
    assert capsys.readouterr().out.strip().split("\n")[-1] == (
        f"distilled hard set: (6, 1, 8, 8) images, lrs 0.0051..0.0200 -> {run_dir}/hard"
    )


def test_check_values_checks_this_machines_devices_launch_and_collection_only_for_a_job_run_here(
    compose_cfg, monkeypatch
):
    """A sweep for other machines (here=False) is not checked against this machine: not its GPUs, not its
    launch, not the collection on its disk (mutants: the collection checked for any sweep, a check
    dropped)."""
    from gastrodistill.cli import distill
    from gastrodistill.utils import distributed

    seen = []
    monkeypatch.setattr(distill, "check_synthetic_collection", lambda cfg: seen.append(("collection", cfg)))
    monkeypatch.setattr(distributed, "check_accelerator_here", lambda t: seen.append(("accelerator", t)))
    monkeypatch.setattr(distributed, "check_launch", lambda t: seen.append(("launch", t)))
    cfg = compose_cfg(["experiment=tiny"])
    distill.check_values(cfg, ["seed=1"], here=False)
    assert seen == []
    distill.check_values(cfg)
    assert seen == [("accelerator", cfg.trainer), ("launch", cfg.trainer), ("collection", cfg)]
